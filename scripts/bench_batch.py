"""`livecam batch` throughput: in-process, local Ray with one worker, and local Ray with two workers of 1 CPU.

Generates an archive (640x480 images and short 640x480 videos) once, then for each model (weights
none: weights do not change speed) runs `livecam batch` in a process of its own per mode and
prints images and frames per second, and the ratios the docs quote:

  in-process            the default runner
  ray, 1 worker         --ray --workers 1 --cpus-per-worker 1
  ray, 2 workers        --ray --workers 2 --cpus-per-worker 1

The rate is the steady one, read from the outputs: every annotated picture and video is renamed
into place when whole, so the rows finished after the first output, over the time from the first
output to the last, is what the run explains once started. "start-up" is the rest of the wall
time (the model, and for Ray the local cluster and its workers). Ray is started fresh by each run
on this machine, with every CPU it has. Rounds interleave the modes; the medians are printed.

    python scripts/bench_batch.py [--models demo mobilenet_v2] [--images 1000] [--videos 10] [--frames 30] [--rounds 3] [--json]

Needs the `ray` extra: pip install -e ".[ray]".
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "in-process": [],
    "ray, 1 worker": ["--ray", "--workers", "1", "--cpus-per-worker", "1"],
    "ray, 2 workers": ["--ray", "--workers", "2", "--cpus-per-worker", "1"],
}


def make_archive(folder: Path, images: int, videos: int, frames: int) -> list[str]:
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    base = rng.integers(0, 255, (480, 640, 3), np.uint8)
    for i in range(images):
        cv2.imwrite(str(folder / "images" / f"{i:05d}.jpg"), np.roll(base, i * 7, axis=1))
    (folder / "videos").mkdir()
    for v in range(videos):
        writer = cv2.VideoWriter(str(folder / "videos" / f"{v:03d}.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 15, (640, 480))
        for f in range(frames):
            writer.write(np.roll(base, (v * frames + f) * 5, axis=0))
        writer.release()
    return [str(folder / "images"), *sorted(str(p) for p in (folder / "videos").iterdir())]


def timed(inputs: list[str], out: Path, model: str, mode: list[str]) -> dict:
    """One `livecam batch` process: its rows, wall time, steady rate and start-up."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "livecam", "batch", *inputs, "--model", model, "--weights", "none", "--out", str(out), *mode]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    rows = pq.read_table(out / "results.parquet", columns=["overlay"]).column("overlay").to_pylist()
    per_output = collections.Counter(rows)
    finished = sorted((os.stat(out / name).st_mtime_ns, name) for name in per_output)
    steady = (finished[-1][0] - finished[0][0]) / 1e9
    rate = (len(rows) - per_output[finished[0][1]]) / max(steady, 1e-6)
    return {"rows": len(rows), "seconds": seconds, "rows_per_s": rate, "startup_s": seconds - len(rows) / rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["demo", "mobilenet_v2"])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="livecam-bench-batch-") as tmp:
        tmp = Path(tmp)
        inputs = make_archive(tmp / "data", args.images, args.videos, args.frames)
        for round_ in range(args.rounds):
            for model in args.models:
                for name, mode in MODES.items():
                    out = tmp / re.sub(r"\W+", "-", f"{model}-{name}-{round_}")
                    run = timed(inputs, out, model, mode)
                    shutil.rmtree(out)
                    runs[model, name].append(run)
                    print(
                        f"round {round_ + 1}: {model:14s} {name:16s} {run['rows']:5d} rows {run['seconds']:7.1f} s "
                        f"(start-up {run['startup_s']:5.1f} s) {run['rows_per_s']:7.1f} rows/s",
                        flush=True,
                    )
    results = [
        {
            "model": model,
            "mode": name,
            "rows": found[0]["rows"],
            **{key: round(statistics.median(r[key] for r in found), 2) for key in ("seconds", "startup_s", "rows_per_s")},
        }
        for (model, name), found in runs.items()
    ]
    for model in args.models:
        rate = {r["mode"]: r["rows_per_s"] for r in results if r["model"] == model}
        print(
            f"{model} (medians): in-process {rate['in-process']:.1f}, 1 worker {rate['ray, 1 worker']:.1f}, "
            f"2 workers {rate['ray, 2 workers']:.1f} rows/s; ray 2 workers / in-process "
            f"{rate['ray, 2 workers'] / rate['in-process']:.2f}x (target >= 0.8); "
            f"2 workers / 1 worker {rate['ray, 2 workers'] / rate['ray, 1 worker']:.2f}x (target >= 1.6)"
        )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}")
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
