"""Long-run check: over N frames of a live, recorded run, nothing grows.

Runs the real pipeline (synthetic live source paced at --fps, engine, renderer, H.264 recording)
in this process and samples, once a second, the frames done, resident memory, threads, open file
descriptors and the latest capture-to-output latency. At the end it checks:

  traces    the compiled step traced exactly once
  memory    resident memory grew less than --max-rss-growth-mb from the 20% mark to the end
  threads   as many threads after the run as before (the stages were joined)
  fds       as many open file descriptors after the run as before (writer, capture closed)
  latency   the median latency of the last fifth is within 1.5x (+5 ms) of the second fifth's

and prints a JSON report; the exit code is 1 if any check fails.

    python scripts/soak.py --frames 5000                       # the long soak (about 3 minutes)
    python scripts/soak.py --frames 300 --input-size 96 --json # the short version CI runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import psutil  # noqa: E402

from livecam import CamEngine  # noqa: E402
from livecam.render import Renderer  # noqa: E402
from livecam.sources import open_source  # noqa: E402
from livecam.viewer.pipeline import Options, Pipeline  # noqa: E402
from livecam.viewer.recorder import VideoWriter  # noqa: E402


def soak(frames: int, model: str, input_size: int | None, fps: float, max_rss_growth_mb: float) -> dict:
    process = psutil.Process()
    engine = CamEngine(model, weights=None, input_size=input_size)
    renderer = Renderer()
    with tempfile.TemporaryDirectory() as tmp:
        # A short warm-up run first, so that one-off allocations (thread pools, codecs) are not
        # counted as growth, and the baselines are taken in the steady state.
        _run(engine, renderer, Path(tmp) / "warmup.mp4", 30, fps)
        threads_before = threading.active_count()
        fds_before = process.num_fds()
        samples: list[dict] = []
        stop = threading.Event()
        holder: dict = {}

        def monitor():
            while not stop.wait(1.0):
                pipeline = holder.get("pipeline")
                if pipeline is None:
                    continue
                latency = pipeline.times.latencies_ms()
                samples.append(
                    {
                        "t": time.monotonic(),
                        "frames": pipeline.frames_out,
                        "rss_mb": process.memory_info().rss / 2**20,
                        "threads": threading.active_count(),
                        "latency_ms": float(np.median(latency[-30:])) if latency else None,
                    }
                )

        watcher = threading.Thread(target=monitor, daemon=True)
        watcher.start()
        stats = _run(engine, renderer, Path(tmp) / "soak.mp4", frames, fps, holder)
        stop.set()
        watcher.join()
        # A thread that ends within seconds of the run is not a leak (a starved machine can be
        # slow to let it finish); one still there after 10 s is.
        settle = time.monotonic() + 10
        while threading.active_count() > threads_before and time.monotonic() < settle:
            time.sleep(0.1)
        threads_after = threading.active_count()
        fds_after = process.num_fds()

    lat = np.asarray(holder["pipeline"].times.latencies_ms())
    fifth = max(1, len(lat) // 5)
    early, late = float(np.median(lat[fifth : 2 * fifth])), float(np.median(lat[-fifth:]))
    rss = [s for s in samples if s["frames"] >= 0.2 * frames]
    rss_growth = (rss[-1]["rss_mb"] - rss[0]["rss_mb"]) if len(rss) >= 2 else 0.0
    info = engine.runtime_info
    checks = {
        "traces": info.traces == (0 if info.head == "numpy" else 1),  # the NumPy head traces nothing
        "memory": rss_growth < max_rss_growth_mb,
        "threads": threads_after <= threads_before,
        "fds": fds_after <= fds_before,
        "latency": late <= 1.5 * early + 5.0,
    }
    return {
        "frames": stats.frames,
        "seconds": stats.seconds,
        "fps": stats.fps,
        "dropped": stats.dropped,
        "traces": info.traces,
        "head": info.head,
        "rss_growth_mb": round(rss_growth, 1),
        "threads_before": threads_before,
        "threads_after": threads_after,
        "fds_before": fds_before,
        "fds_after": fds_after,
        "latency_p50_second_fifth_ms": round(early, 2),
        "latency_p50_last_fifth_ms": round(late, 2),
        "checks": checks,
        "ok": all(checks.values()),
        "samples": samples,
    }


def _run(engine: CamEngine, renderer: Renderer, output: Path, frames: int, fps: float, holder: dict | None = None):
    source = open_source(f"synth:fps={fps:g}")
    recorder = VideoWriter(output, fps=fps, live=True)
    options = Options(batch=1, max_frames=frames, output=output)
    pipeline = Pipeline(source, engine, renderer, options, recorder=recorder, log=lambda text: None)
    if holder is not None:
        holder["pipeline"] = pipeline
    return pipeline.run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    parser.add_argument("--json", action="store_true", help="print the whole report, samples included")
    args = parser.parse_args()
    report = soak(args.frames, args.model, args.input_size, args.fps, args.max_rss_growth_mb)
    if not args.json:
        report = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
