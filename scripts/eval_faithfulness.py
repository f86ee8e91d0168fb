"""How faithful each CAM method's maps are on the demo model's held-out scenes, against maps that know nothing.

    python scripts/eval_faithfulness.py                  # 300 held-out scenes, Markdown table
    python scripts/eval_faithfulness.py --n 50 --json

For every scene (seeds from 500,000 up are never trained on) and every method, the map of the
scene's true class is scored as ``livecam --faithfulness 1`` scores each picture of a folder
(``livecam.trust``): hide the hottest / coldest 20 % (the live readout), the deletion and
insertion curves in K steps (RISE, Petsiuk et al. 2018), and average drop / increase in
confidence (Grad-CAM++, Chattopadhay et al. 2018). Two baselines are scored the same way: a
random map and a centred Gaussian. Each picture's probes go through the engine in one call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from livecam.demo import make_scene  # noqa: E402
from livecam.engine.worker import split_rows  # noqa: E402
from livecam.trust.curves import DEFAULT_STEPS, centre_map, random_map  # noqa: E402
from livecam.trust.faithfulness import Means, answered, probe  # noqa: E402

METHODS = ("gradcam", "gradcam++", "layercam", "hirescam")
BASELINES = ("random map", "centred Gaussian")
HELD_OUT_START = 500_000


def evaluate(n: int, start: int, steps: int = DEFAULT_STEPS, size_wh: tuple[int, int] = (224, 224), model: str = "demo") -> dict:
    """The mean scores per method and baseline over scenes start..start+n-1 (``model``: "demo" or "demo-vit")."""
    from livecam import CamEngine

    engine = CamEngine(model)
    rng = np.random.default_rng(0)
    means = {name: Means() for name in (*METHODS, *BASELINES)}
    for seed in range(start, start + n):
        frame_bgr, class_id, _ = make_scene(seed, size_wh)
        prepared = engine.prepare(frame_bgr)  # what the network sees; the map covers it
        rows = {method: engine(prepared, class_id=class_id, method=method) for method in METHODS}
        row = rows[METHODS[0]]
        shape = row.cam.shape[1:]
        rows[BASELINES[0]] = _with_map(row, random_map(shape, rng))
        rows[BASELINES[1]] = _with_map(row, centre_map(shape))
        for name, result in rows.items():
            p = probe(prepared, result, seed, steps=steps)
            if p is not None:
                means[name].add(answered(p, split_rows(engine(p.images, class_id=p.class_id))))
    return {name: m.summary() for name, m in means.items()}


def _with_map(row, cam: np.ndarray):
    from dataclasses import replace

    return replace(row, cam=cam[None].astype(np.float32), finite=np.array([True]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="held-out scenes (default 300)")
    parser.add_argument("--start", type=int, default=HELD_OUT_START, help="first seed (default: the first held-out one)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"deletion/insertion steps K (default {DEFAULT_STEPS})")
    parser.add_argument("--model", default="demo", choices=("demo", "demo-vit"), help="the demo model to score (default demo)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    table = evaluate(args.n, args.start, args.steps, model=args.model)
    if args.json:
        print(json.dumps(table, indent=2))
        return
    print(f"{args.model}, {args.n} held-out scenes (seeds {args.start}..), K = {args.steps}; {time.perf_counter() - t0:.0f} s.\n")
    print(
        "| map | prob. shown | hot 20 % hidden | cold 20 % hidden | deletion AUC (lower is better) "
        "| insertion AUC (higher is better) | average drop (lower) | increase in confidence (higher) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in table.items():
        print(
            f"| {name} | {m['faith_shown']:.3f} | {m['faith_hot_hidden']:.3f} | {m['faith_cold_hidden']:.3f} "
            f"| {m['faith_deletion_auc']:.3f} | {m['faith_insertion_auc']:.3f} | {100 * m['faith_drop']:.1f} % "
            f"| {100 * m['faith_increase']:.1f} % |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
