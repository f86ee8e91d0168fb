"""The short CI version of scripts/soak.py: a live, recorded run leaks nothing and never retraces.

Latency flatness is a timing measure, so it is reported by the script and not asserted here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soak.py"


@pytest.mark.slow
@pytest.mark.subprocess
def test_short_soak_keeps_traces_memory_threads_and_fds_flat():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--frames", "240", "--input-size", "96", "--fps", "60"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.stdout, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["frames"] == 240
    assert report["traces"] == (0 if report["head"] == "numpy" else 1)
    assert report["threads_after"] <= report["threads_before"]
    assert report["fds_after"] <= report["fds_before"]
    assert report["rss_growth_mb"] < 50
    checks = report["checks"]
    assert checks["traces"] and checks["memory"] and checks["threads"] and checks["fds"]
