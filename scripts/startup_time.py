"""Time from the command to the first frame out, the way a user waits for it.

Each run is a fresh `python -m livecam ...` process (headless, recording, so that "out" is the
first frame handed to the recorder, which is when a window would show it); the clock starts at
the process's creation and stops at that first write. Prints the median of --runs runs per case.

    python scripts/startup_time.py [--runs 3] [--case demo --case mobilenet_v2] [--root OTHER_CHECKOUT ...]

With --root, the same cases run from other livecam checkouts too (e.g. an older commit in a git
worktree), interleaved run by run, so that a busy machine slows every checkout alike.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs inside the child: stamps the first frame written, relative to the process's start.
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
    marks.setdefault("first_frame_s", time.time() - start)
    return write(self, *args, **kwargs)
recorder.VideoWriter.write = first_write
from livecam.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    json.dump(marks, f)
sys.exit(code)
"""

CASES = {
    "demo": ["--demo"],
    "mobilenet_v2": ["--source", "synth:", "--model", "mobilenet_v2", "--weights", "none"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    parser.add_argument("--root", action="append", type=Path, default=[], help="another livecam checkout to time as well")
    args = parser.parse_args()
    roots = [Path(__file__).resolve().parents[1], *(r.resolve() for r in args.root)]
    for case in args.case or list(CASES):
        times: dict[Path, list[float]] = {root: [] for root in roots}
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                for root in roots:
                    env = dict(os.environ, PYTHONPATH=str(root))
                    marks = Path(tmp) / "marks.json"
                    command = [sys.executable, "-c", _CHILD, str(marks), *CASES[case]]
                    command += [
                        "--no-display",
                        "--quiet",
                        "--max-frames",
                        "1",
                        "-o",
                        str(Path(tmp) / f"{run}.mp4"),
                        "--overwrite",
                    ]
                    subprocess.run(command, env=env, cwd=tmp, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    times[root].append(json.loads(marks.read_text())["first_frame_s"])
        for root, values in times.items():
            print(
                f"{case} ({root}): first frame after {statistics.median(values):.2f} s "
                f"(median of {args.runs}: {', '.join(f'{t:.2f}' for t in values)})"
            )


if __name__ == "__main__":
    main()
