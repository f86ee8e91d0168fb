"""`livecam batch` throughput: in-process, local Ray with one worker, and local Ray with two workers of 1 CPU.

Generates an archive (640x480 images and short 640x480 videos) once, then for each model (weights
none: weights do not change speed) runs `livecam batch` in a process of its own per mode and
prints images and frames per second, and the ratios the docs quote:

  in-process            the default runner
  ray, 1 worker         --ray --workers 1 --cpus-per-worker 1
  ray, 2 workers        --ray --workers 2 --cpus-per-worker 1

Each mode is timed twice: over the whole archive and over one image; the second is the fixed
cost (start-up: the model, for Ray the cluster and its workers), and the rate is the archive's
rows over the difference, so that start-up does not hide the steady rate. Ray is started fresh
by each run on this machine, with every CPU it has.

    python scripts/bench_batch.py [--models demo mobilenet_v2] [--images 1000] [--videos 10] [--frames 30] [--json]

Needs the `ray` extra: pip install -e ".[ray]".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

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
    one = folder / "one"
    one.mkdir()
    (one / "0.jpg").write_bytes((folder / "images" / "00000.jpg").read_bytes())
    return [str(folder / "images"), *sorted(str(p) for p in (folder / "videos").iterdir())]


def timed(inputs: list[str], out: Path, model: str, mode: list[str]) -> tuple[float, int]:
    """(seconds, rows) of one `livecam batch` process, from its own summary line."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "livecam", "batch", *inputs, "--model", model, "--weights", "none", "--out", str(out), *mode]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    rows = int(re.search(r"livecam: (\d+) rows", done.stderr)[1])
    return seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["demo", "mobilenet_v2"])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="livecam-bench-batch-") as tmp:
        tmp = Path(tmp)
        inputs = make_archive(tmp / "data", args.images, args.videos, args.frames)
        for model in args.models:
            for name, mode in MODES.items():
                slug = re.sub(r"\W+", "-", f"{model}-{name}")
                whole, rows = timed(inputs, tmp / f"{slug}-all", model, mode)
                fixed, _ = timed([str(tmp / "data" / "one")], tmp / f"{slug}-one", model, mode)
                rate = rows / max(whole - fixed, 1e-6)
                results.append(
                    {
                        "model": model,
                        "mode": name,
                        "rows": rows,
                        "seconds": round(whole, 2),
                        "startup_s": round(fixed, 2),
                        "rows_per_s": round(rate, 2),
                    }
                )
                print(
                    f"{model:14s} {name:16s} {rows:5d} rows {whole:7.1f} s (start-up {fixed:5.1f} s) {rate:7.1f} rows/s",
                    flush=True,
                )
    for model in args.models:
        rate = {r["mode"]: r["rows_per_s"] for r in results if r["model"] == model}
        print(
            f"{model}: ray 2 workers / in-process {rate['ray, 2 workers'] / rate['in-process']:.2f}x (target >= 0.8); "
            f"2 workers / 1 worker {rate['ray, 2 workers'] / rate['ray, 1 worker']:.2f}x (target >= 1.6)"
        )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}")
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
