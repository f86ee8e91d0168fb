"""`livecam batch --ray` on Ray Data: same rows as in-process, clusters of two nodes, small nodes, a killed worker.

Ray runs here on loopback (no usage stats, no token); each test's cluster is shut down by its fixture.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
import ray
from ray.cluster_utils import Cluster

from helpers import BOUND_S, ENV, assert_user_error, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(autouse=True)
def _ray_here(monkeypatch):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a cluster on loopback, for this test alone
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


@pytest.fixture
def local_ray(_ray_here):
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # never another test's cluster
    yield
    ray.shutdown()


@pytest.fixture
def two_nodes(request, _ray_here):
    """Two nodes of ``request.param`` CPUs each on this machine."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": request.param, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=request.param)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _inputs(tmp_path: Path, make_video, make_image_folder, folders: int = 4) -> list[str]:
    inputs = [str(make_image_folder(tmp_path / "in" / f"set{k}", 2)) for k in range(folders)]
    return [*inputs, str(make_video(tmp_path / "in" / "clip.mp4", 4))]


def _batch(capsys, inputs, out: Path, *extra, quiet: bool = True) -> list[dict]:
    code, err = run(capsys, "batch", *inputs, "--model", "demo", "--out", out, *(["--quiet"] if quiet else []), *extra)
    assert code == 0, err
    _batch.err = err
    return pq.read_table(out / "results.parquet").to_pylist()


def test_local_ray_gives_the_classes_and_maps_of_in_process(tmp_path, capsys, make_video, make_image_folder, local_ray):
    inputs = _inputs(tmp_path, make_video, make_image_folder, folders=2)
    here = _batch(capsys, inputs, tmp_path / "here", "--save-maps")
    on_ray = _batch(capsys, inputs, tmp_path / "ray", "--save-maps", "--ray", "--workers", "1")
    assert [(r["input"], r["frame_index"], r["class_id"]) for r in on_ray] == [
        (r["input"], r["frame_index"], r["class_id"]) for r in here
    ]
    for a, b in zip(here, on_ray):
        np.testing.assert_allclose(np.load(tmp_path / "ray" / b["map"]), np.load(tmp_path / "here" / a["map"]), atol=1e-5)
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)


@pytest.mark.parametrize("two_nodes", [2], indirect=True)
def test_two_nodes_both_work(tmp_path, capsys, make_video, make_image_folder, two_nodes):
    rows = _batch(capsys, _inputs(tmp_path, make_video, make_image_folder, folders=8), tmp_path / "out", "--ray", quiet=False)
    nodes = {row["worker"].rpartition("@")[2] for row in rows}
    assert len(nodes) == 2, nodes
    assert "livecam: 4 workers of 1 CPU on 2 nodes" in _batch.err
    assert "17/17 [" in _batch.err and "frames=20]" in _batch.err  # livecam's bar, of inputs and frames


@pytest.mark.parametrize("two_nodes", [1], indirect=True)
def test_small_nodes_do_not_deadlock(tmp_path, capsys, make_video, make_image_folder, two_nodes):
    rows = _batch(capsys, _inputs(tmp_path, make_video, make_image_folder), tmp_path / "out", "--ray", "--cpus-per-worker", "0.5")
    assert len(rows) == 4 * 2 + 4
    assert len({row["worker"] for row in rows}) > 1  # the pool took every CPU (four workers of 0.5) and still ran


def test_a_killed_worker_is_retried_and_every_input_kept_once(tmp_path, capsys, make_video, make_image_folder, local_ray):
    inputs = _inputs(tmp_path, make_video, make_image_folder, folders=6)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_a_worker_mid_job() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            if (out / "overlays").is_dir() and any((out / "overlays").rglob("*.png")):
                for child in psutil.Process().children(recursive=True):  # only what this test started
                    try:
                        if "JobRunner" in " ".join(child.cmdline()):
                            os.kill(child.pid, signal.SIGKILL)
                            killed.append(child.pid)
                            return
                    except psutil.Error:
                        continue
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_mid_job, daemon=True)
    killer.start()
    rows = _batch(capsys, inputs, out, "--ray", "--workers", "1")
    killer.join(timeout=10)
    assert killed, "no worker was killed"
    keys = [(r["input"], r["frame_index"]) for r in rows]
    assert len(keys) == len(set(keys)) == 6 * 2 + 4


def test_a_killed_run_resumes_with_the_jobs_it_had_written(tmp_path, make_video, make_image_folder):
    inputs = _inputs(tmp_path, make_video, make_image_folder, folders=10)
    out, parts = tmp_path / "out", tmp_path / "out" / ".livecam-batch" / "parts"

    def batch(where: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "livecam", "batch", *inputs, "--model", "demo", "--out", str(where), "--quiet", *extra]

    alone = {**ENV, "RAY_ADDRESS": "local"}  # a Ray of its own, even beside another test's cluster
    child = subprocess.Popen(batch(out, "--ray", "--workers", "1"), env=alone, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while child.poll() is None and time.monotonic() < deadline:
            if [p for p in (out / ".livecam-batch" / "tmp").glob("run-*/*.parquet") if _whole(p)]:
                break
            time.sleep(0.02)
        os.killpg(child.pid, signal.SIGKILL)  # the driver, and the Ray it started
    finally:
        child.wait(timeout=BOUND_S)
    assert not (out / "results.parquet").exists(), "the run ended before it was killed"
    subprocess.run(batch(out, "--ray", "--workers", "1", "--resume"), env=alone, check=True, timeout=600)
    kept = {j for p in parts.iterdir() if p.is_file() for j in pq.read_table(p, columns=["job"]).column("job").to_pylist()}
    redone = {j for p in parts.iterdir() if p.is_dir() for j in pq.read_table(p, columns=["job"]).column("job").to_pylist()}
    assert kept and redone and not kept & redone  # what the killed run had written is kept, not run again
    subprocess.run(batch(tmp_path / "whole"), env=ENV, check=True, timeout=BOUND_S * 3)
    rows = pq.read_table(out / "results.parquet").to_pylist()
    expected = pq.read_table(tmp_path / "whole" / "results.parquet").to_pylist()
    assert [(r["input"], r["frame_index"], r["class_id"]) for r in rows] == [
        (r["input"], r["frame_index"], r["class_id"]) for r in expected
    ]


def _whole(path: Path) -> bool:
    try:
        pq.read_metadata(path)
        return True
    except Exception:
        return False


def test_a_cluster_with_token_authentication_is_joined_with_the_users_token(tmp_path, make_video):
    port = _free_port()
    # Its own temporary folder (a short path: Ray's sockets live there), so that the address a `ray start` leaves
    # behind for later ray.init() calls is not left in /tmp/ray for other tests.
    temp = Path(tempfile.mkdtemp(prefix="lcray-", dir="/tmp"))
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
         "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)],
        env={**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "livecam-test-token"}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        video = make_video(tmp_path / "clip.mp4", 2)
        address = f"127.0.0.1:{port}"
        _wait_for_port(port)

        def batch(out: str, token: str) -> subprocess.CompletedProcess:  # each a process of its own, as a user's
            return subprocess.run(
                [sys.executable, "-m", "livecam", "batch", str(video), "--model", "demo", "--out", str(tmp_path / out),
                 "--quiet", "--ray", address],
                env={**ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}, capture_output=True, text=True, timeout=600,
            )  # fmt: skip

        refused = batch("refused", "not-the-token")
        assert_user_error(refused.returncode, refused.stderr, f"The Ray cluster at {address} refused the connection")
        joined = batch("out", "livecam-test-token")
        assert joined.returncode == 0, joined.stderr
        assert pq.read_table(tmp_path / "out" / "results.parquet").num_rows == 2
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head and what it started
        head.wait(timeout=BOUND_S)
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_alone_starts_its_own_even_where_ray_remembers_a_cluster_that_is_gone(tmp_path, make_video):
    temp = Path(tempfile.mkdtemp(prefix="lcray-", dir="/tmp"))  # a short path: Ray's sockets live there
    try:
        (temp / "ray").mkdir()
        (temp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")  # a `ray start` long stopped
        video = make_video(tmp_path / "clip.mp4", 2)
        env = {key: value for key, value in ENV.items() if key != "RAY_ADDRESS"}
        done = subprocess.run(
            [sys.executable, "-m", "livecam", "batch", str(video), "--model", "demo", "--out", str(tmp_path / "out"),
             "--quiet", "--ray"],
            env={**env, "RAY_TMPDIR": str(temp), "RAY_AUTH_MODE": "disabled"}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert pq.read_table(tmp_path / "out" / "results.parquet").num_rows == 2
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"ray start --head did not listen on {port}")


def test_a_refused_connection_is_one_sentence(tmp_path, capsys, make_video):
    video = make_video(tmp_path / "clip.mp4", 2)
    code, err = run(capsys, "batch", video, "--model", "demo", "--out", tmp_path / "out", "--ray", "127.0.0.1:9")
    assert_user_error(code, err, "Could not connect to the Ray cluster at 127.0.0.1:9")
