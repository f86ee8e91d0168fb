"""Time from the command to the first frame out, and the memory a run holds, the way a user meets them.

Each run is a fresh `python -m livecam ...` process (headless, recording, so that "out" is the
first frame handed to the recorder, which is when a window would show it); the clock starts at
the process's creation and stops at that first write. Each case starts twice on a cache folder
of its own: cold (an empty cache: the model is built and converted) and warm (the entry the cold
start wrote; the second start a user sees). The warm viewer run goes on to --frames frames of the
live source and reports the process's peak resident memory. `serve_demo` times `livecam serve
--demo` from the command until its page answers. For scale, the same run times
`python -c "import tensorflow"`. Prints the median of --runs runs of each.

    python scripts/startup_time.py [--runs 3] [--frames 300] [--case demo ...] [--root OTHER_CHECKOUT ...]

With --root, the same cases run from other livecam checkouts too (e.g. an older commit unpacked
with `git archive`), interleaved run by run, so that a busy machine slows every checkout alike.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Runs inside the child: stamps the first frame written, relative to the process's start (and
# the CPU time the process had used by then), and the peak resident memory at the end.
_CHILD = r"""
import json, os, sys, time
with open(f"/proc/{os.getpid()}/stat") as f:
    start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
with open("/proc/uptime") as f:
    uptime = float(f.read().split()[0])
boot = time.time() - uptime
start = boot + start_ticks / os.sysconf("SC_CLK_TCK")
from livecam.viewer import recorder
marks = {}
write = recorder.VideoWriter.write
def first_write(self, *args, **kwargs):
    if "first_frame_s" not in marks:  # wall time, and CPU time (what a busy machine changes least)
        marks.update(first_frame_s=time.time() - start, first_frame_cpu_s=sum(os.times()[:2]))
    return write(self, *args, **kwargs)
recorder.VideoWriter.write = first_write
from livecam.cli import main
code = main(sys.argv[2:])
with open("/proc/self/status") as f:
    marks["peak_mb"] = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
with open(sys.argv[1], "w") as f:
    json.dump(marks, f)
sys.exit(code)
"""

CASES = {
    "demo": ["--demo"],
    "mobilenet_v2": ["--source", "synth:", "--model", "mobilenet_v2", "--weights", "none"],
    "serve_demo": ["serve", "--demo", "--port", "0"],
}


def view_run(root: Path, cache: Path, args: list[str], frames: int, tmp: Path) -> dict[str, float]:
    """One viewer process: its first frame's time and its peak memory."""
    marks = tmp / "marks.json"
    command = [sys.executable, "-c", _CHILD, str(marks), *args]
    command += ["--no-display", "--quiet", "--max-frames", str(frames), "-o", str(tmp / "out.mp4"), "--overwrite"]
    subprocess.run(command, env=_env(root, cache), cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(marks.read_text())


def serve_run(root: Path, cache: Path, args: list[str], tmp: Path) -> dict[str, float]:
    """One `livecam serve` process: the time from its start until its page answers."""
    start = time.monotonic()
    command = [sys.executable, "-m", "livecam", *args]
    with subprocess.Popen(
        command, env=_env(root, cache), cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as server:
        try:
            for line in server.stdout:
                url = re.search(r"livecam: open (\S+)", line)
                if url:
                    with urllib.request.urlopen(url.group(1), timeout=60) as page:
                        page.read()
                    return {"ready_s": time.monotonic() - start}
            raise RuntimeError("livecam serve ended without opening its page")
        finally:
            server.terminate()
            server.wait(timeout=60)


def import_tensorflow_s() -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def _env(root: Path, cache: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(root), LIVECAM_CACHE_DIR=str(cache))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=300, help="frames of the warm viewer run (its peak memory)")
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--root", action="append", type=Path, default=[], help="another livecam checkout to time as well")
    args = parser.parse_args()
    roots = [Path(__file__).resolve().parents[1], *(r.resolve() for r in args.root)]
    cases = args.case or list(CASES)
    # (case, root, measure) -> values
    results: dict[tuple[str, Path, str], list[float]] = {}
    baseline = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for run in range(args.runs):
            baseline.append(import_tensorflow_s())
            for case in cases:
                for root in roots:
                    cache = tmp / f"cache-{case}-{roots.index(root)}-{run}"
                    for start in ("cold", "warm"):
                        if case == "serve_demo":
                            marks = serve_run(root, cache, CASES[case], tmp)
                        else:
                            marks = view_run(root, cache, CASES[case], args.frames if start == "warm" else 1, tmp)
                        for measure, value in marks.items():
                            if start == "warm" or measure != "peak_mb":
                                results.setdefault((case, root, f"{start} {measure}"), []).append(value)
    tf_s = statistics.median(baseline)
    print(f'python -c "import tensorflow": {tf_s:.2f} s (median of {args.runs}: {", ".join(f"{t:.2f}" for t in baseline)})')
    print("| case | checkout | measure | median | runs | / import tensorflow |")
    print("|---|---|---|---|---|---|")
    for (case, root, measure), values in results.items():
        unit = "MB" if measure.endswith("_mb") else "s"
        median = statistics.median(values)
        ratio = f"{median / tf_s:.2f}" if unit == "s" else ""
        runs = ", ".join(f"{v:.0f}" if unit == "MB" else f"{v:.2f}" for v in values)
        shown = f"{median:.0f} MB" if unit == "MB" else f"{median:.2f} s"
        print(f"| {case} | {root.name} | {measure} | {shown} | {runs} | {ratio} |")


if __name__ == "__main__":
    main()
