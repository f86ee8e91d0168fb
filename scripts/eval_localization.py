"""How well the demo model classifies held-out scenes, and where each CAM method points.

    python scripts/eval_localization.py                 # 1,000 held-out scenes, Markdown table
    python scripts/eval_localization.py --n 200 --json
    python scripts/eval_localization.py --model my_scene_model.keras

For every scene (seeds from 500,000 up are never trained on) it runs the engine once per
method, explaining the scene's true class, upsamples the map to the frame with
``livecam.render.upsample_cam`` and scores it against the object's box:

- pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop"):
  a hit when the map's hottest pixel lies inside the box grown by ``--tolerance`` pixels;
- mass in box: the share of the map's total mass that lies inside the tight box.

Two references put the numbers in scale: the centre baseline (always point at the frame
centre, as in Zhang et al.), and the mass a uniform map would put in the box (its area share).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from livecam.demo import CLASS_NAMES, make_scene  # noqa: E402
from livecam.render import upsample_cam  # noqa: E402

METHODS = ("gradcam", "gradcam++", "layercam", "hirescam")
TOLERANCE_PX = 15
HELD_OUT_START = 500_000


def pointing_hit(cam_frame: np.ndarray, box_xyxy: tuple[int, int, int, int], tolerance_px: int = TOLERANCE_PX) -> bool:
    """Whether the hottest pixel of a frame-sized map lies in the box grown by ``tolerance_px``."""
    y, x = np.unravel_index(int(np.argmax(cam_frame)), cam_frame.shape)
    x0, y0, x1, y1 = box_xyxy
    return bool(x0 - tolerance_px <= x <= x1 + tolerance_px and y0 - tolerance_px <= y <= y1 + tolerance_px)


def mass_in_box(cam_frame: np.ndarray, box_xyxy: tuple[int, int, int, int]) -> float:
    """The share of a frame-sized map's mass inside the (inclusive) box; 0 for an all-zero map."""
    total = float(cam_frame.sum(dtype=np.float64))
    if total <= 0.0:
        return 0.0
    x0, y0, x1, y1 = box_xyxy
    return float(cam_frame[y0 : y1 + 1, x0 : x1 + 1].sum(dtype=np.float64)) / total


def evaluate(
    n: int,
    start: int,
    methods: tuple[str, ...] = METHODS,
    size_wh: tuple[int, int] = (224, 224),
    batch: int = 100,
    model: str = "demo",
) -> dict:
    """Accuracy and, per method, pointing game and mass in box over scenes start..start+n-1."""
    from livecam import CamEngine

    engine = CamEngine(model, method=methods[0])
    width, height = size_wh
    hits = {m: 0 for m in methods}
    mass = {m: 0.0 for m in methods}
    correct = centre_hits = 0
    area_share = 0.0
    for first in range(start, start + n, batch):
        seeds = range(first, min(first + batch, start + n))
        scenes = [make_scene(seed, size_wh) for seed in seeds]
        frames_bgr = np.stack([frame for frame, _, _ in scenes])
        class_ids = np.array([class_id for _, class_id, _ in scenes], dtype=np.int32)
        boxes = [box for _, _, box in scenes]
        for method in methods:
            result = engine(frames_bgr, class_id=class_ids, method=method)
            if method == methods[0]:
                correct += int(np.sum(np.argmax(result.probs, axis=1) == class_ids))
            for cam, box in zip(result.cam, boxes):
                cam_frame = upsample_cam(cam, (width, height))
                hits[method] += pointing_hit(cam_frame, box)
                mass[method] += mass_in_box(cam_frame, box)
        centre = np.zeros((height, width), np.float32)
        centre[height // 2, width // 2] = 1.0
        for x0, y0, x1, y1 in boxes:
            centre_hits += pointing_hit(centre, (x0, y0, x1, y1))
            area_share += (x1 - x0 + 1) * (y1 - y0 + 1) / (width * height)
    return {
        "scenes": n,
        "seeds": [start, start + n - 1],
        "frame_size_wh": [width, height],
        "model_input_hw": list(engine.input_size),
        "layer": engine.layer_name,
        "classes": list(CLASS_NAMES),
        "tolerance_px": TOLERANCE_PX,
        "explained_class": "true class",
        "top1_accuracy": correct / n,
        "methods": {m: {"pointing_game": hits[m] / n, "mass_in_box": mass[m] / n} for m in methods},
        "centre_baseline_pointing_game": centre_hits / n,
        "uniform_map_mass_in_box": area_share / n,
    }


def to_markdown(report: dict) -> str:
    lines = [
        f"Demo model on {report['scenes']} held-out scenes (seeds {report['seeds'][0]}..{report['seeds'][1]}, "
        f"{report['frame_size_wh'][0]}x{report['frame_size_wh'][1]}), layer `{report['layer']}`, "
        f"maps of the true class, tolerance {report['tolerance_px']} px.",
        "",
        f"Top-1 accuracy: {report['top1_accuracy']:.1%}",
        "",
        "| method | pointing game | mass in box |",
        "|---|---:|---:|",
    ]
    for method, scores in report["methods"].items():
        lines.append(f"| {method} | {scores['pointing_game']:.1%} | {scores['mass_in_box']:.1%} |")
    lines.append(
        f"| *centre baseline / uniform map* | {report['centre_baseline_pointing_game']:.1%} | {report['uniform_map_mass_in_box']:.1%} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of scenes")
    parser.add_argument("--start", type=int, default=HELD_OUT_START, help=f"first seed (held out from {HELD_OUT_START} up)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    parser.add_argument("--model", default="demo", help="demo, demo-vit, or a model file trained on the scenes")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"Expected --n >= 1. Received: {args.n}")
    if args.start < HELD_OUT_START:
        print(f"warning: seeds below {HELD_OUT_START} were used for training; these numbers are not held out.", file=sys.stderr)
    started = time.perf_counter()
    report = evaluate(args.n, args.start, tuple(args.methods), model=args.model)
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2) if args.json else to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
