"""`livecam batch` in-process: inputs and names, outputs, errors, resume (livecam/batch/, livecam/cli/batch.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import BOUND_S, ENV, assert_user_error, run
from livecam.batch.plan import Job
from livecam.batch.ray_run import pool_size
from livecam.batch.store import Store, part_columns
from livecam.errors import UserError

SAME = ("input", "frame_index", "class_id", "class_name", "topk_ids", "label", "overlay")


def _archive(tmp_path: Path, make_video, make_image_folder, folders: int = 1) -> list[str]:
    """Image folders (one with a corrupt image), a video and a truncated video, and a manifest."""
    inputs = []
    for k in range(folders):
        folder = make_image_folder(tmp_path / "data" / f"set{k}", 3)
        inputs.append(str(folder))
    (tmp_path / "data" / "set0" / "frame_9.png").write_bytes(b"not a picture")
    video = make_video(tmp_path / "data" / "clip.mp4", 6)
    truncated = tmp_path / "data" / "cut.mp4"
    truncated.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    (tmp_path / "data" / "m").mkdir()
    make_image_folder(tmp_path / "data" / "m" / "img", 2)
    (tmp_path / "data" / "m" / "list.csv").write_text('path,label,box\nimg/frame_1.png,circle,"4,4,40,30"\nimg/frame_2.png,0,\n')
    return [*inputs, str(video), str(truncated), str(tmp_path / "data" / "m" / "list.csv")]


def _rows(out: Path) -> list[dict]:
    return pq.read_table(out / "results.parquet").to_pylist()


def test_colliding_inputs_are_refused_before_anything_runs(tmp_path, capsys, make_video):
    (tmp_path / "a").mkdir()
    make_video(tmp_path / "a" / "clip.mp4", 2)
    make_video(tmp_path / "a" / "clip.mov", 2)
    code, err = run(
        capsys, "batch", tmp_path / "a" / "clip.mp4", tmp_path / "a" / "clip.mov", "--model", "demo", "--out", tmp_path / "out"
    )
    assert_user_error(code, err, "clip.mov", "overlays/clip.mp4")
    assert not (tmp_path / "out").exists()
    code, err = run(capsys, "batch", tmp_path / "a" / "clip.mp4", tmp_path / "a" / "clip.mp4", "--out", tmp_path / "out")
    assert_user_error(code, err, "the same file given twice")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["nowhere.mp4"], "does not exist"),
        (["--workers", "2", "{video}"], "add --ray"),
        (["--resume", "{video}"], "no earlier livecam batch run"),
        (["{bad_manifest}"], "needs a 'path' column"),
    ],
)
def test_user_mistakes_are_one_sentence(tmp_path, capsys, make_video, args, fragment):
    video = make_video(tmp_path / "clip.mp4", 2)
    bad = tmp_path / "bad.csv"
    bad.write_text("file\nx.png\n")
    args = [a.format(video=video, bad_manifest=bad) for a in args]
    code, err = run(capsys, "batch", *args, "--model", "demo", "--out", tmp_path / "out")
    assert_user_error(code, err, fragment)


@pytest.mark.slow
def test_batch_takes_the_viewers_trust_settings(tmp_path, capsys, make_image_folder):
    """--faithfulness, --contrast, --box and --normalize reach every row as in the viewer; the pictures say how they were made."""
    import PIL.Image

    folder = make_image_folder(tmp_path / "set", 2)
    out = tmp_path / "out"
    args = ["--model", "demo", "--out", out, "--quiet", "--faithfulness", "1", "--contrast", "circle", "--box", "0,0,0.5,0.5"]
    code, err = run(capsys, "batch", folder, *args, "--normalize", "session")
    assert code == 0, err
    rows = _rows(out)
    assert len(rows) == 2 and all(r["faith_frame"] == r["frame_index"] and r["faith_shown"] is not None for r in rows)
    assert all(r["faith_deletion_auc"] is not None for r in rows)  # --faithfulness 1: the offline curves too
    assert {r["contrast_name"] for r in rows} == {"circle"} and {r["class_name"] for r in rows} == {"square"}
    assert all(r["box_xywh"] == [0, 0, 80, 60] and r["box_energy"] is not None for r in rows)
    stamp = json.loads(PIL.Image.open(out / rows[0]["overlay"]).text["livecam"])
    assert stamp["model"] == "demo" and stamp["normalize"] == "session"
    code, err = run(capsys, "batch", folder, "--model", "demo", "--out", tmp_path / "other", "--compare", "classes")
    assert code == 2 and "--compare is the viewer's" in err


def test_out_with_files_needs_resume_or_overwrite(tmp_path, capsys, make_video):
    video = make_video(tmp_path / "clip.mp4", 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    code, err = run(capsys, "batch", video, "--model", "demo", "--out", tmp_path / "out")
    assert_user_error(code, err, "--resume", "--overwrite")


@pytest.mark.slow
def test_batch_writes_every_output_and_the_errors(tmp_path, capsys, make_video, make_image_folder):
    inputs = _archive(tmp_path, make_video, make_image_folder)
    out = tmp_path / "out"
    code, err = run(capsys, "batch", *inputs, "--model", "demo", "--out", out, "--save-maps")
    assert code == 0, err
    assert "8/8 [" in err and "frames=11]" in err  # the progress bar, of inputs and frames
    rows = _rows(out)
    assert len(rows) == 3 + 6 + 2  # the good images, the video's frames, the manifest's images
    assert (out / "overlays" / "set0" / "frame_1.png").is_file() and (out / "overlays" / "clip.mp4").is_file()
    assert (out / "overlays" / "m" / "img" / "frame_2.png").is_file()
    for row in rows:
        assert (out / row["overlay"]).is_file() and (out / row["map"]).is_file()
        assert row["worker"].startswith(os.uname().nodename)
    manifest = [r for r in rows if r["input"].startswith("img/")]
    assert [(r["label_name"], r["box"]) for r in manifest] == [("circle", [4, 4, 40, 30]), ("circle", None)]
    # the manifest's box is scored: the share of the heat on the labelled thing
    assert manifest[0]["box_xywh"] == [4, 4, 40, 30] and 0.0 <= manifest[0]["box_energy"] <= 1.0
    assert manifest[1]["box_xywh"] is None and manifest[1]["box_energy"] is None
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["path"]).name for e in errors) == ["cut.mp4", "frame_9.png"]
    assert not list((out / ".livecam-batch" / "tmp").iterdir())
    html = (out / "report.html").read_text()
    assert "Accuracy" in html and "Mean map per class" in html


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_killed_and_resumed_gives_the_rows_of_one_run(tmp_path, make_video, make_image_folder, how):
    inputs = _archive(tmp_path, make_video, make_image_folder, folders=8)
    command = [sys.executable, "-m", "livecam", "batch", *inputs, "--model", "demo", "--quiet"]
    subprocess.run([*command, "--out", str(tmp_path / "whole")], env=ENV, check=True, timeout=BOUND_S * 3)
    parts = tmp_path / "cut" / ".livecam-batch" / "parts"
    child = subprocess.Popen([*command, "--out", str(tmp_path / "cut")], env=ENV)
    try:
        deadline = time.monotonic() + BOUND_S * 3
        while not (parts.is_dir() and any(parts.iterdir())) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(how)  # SIGKILL: no chance to tidy up; Ctrl-C: the jobs under way end at once, not kept
    finally:
        code = child.wait(timeout=BOUND_S)
    assert not (tmp_path / "cut" / "results.parquet").exists(), "the run ended before it was killed"
    assert code == (-signal.SIGKILL if how == signal.SIGKILL else 130)
    kept = {part.name: part.stat().st_mtime_ns for part in parts.iterdir()}
    subprocess.run([*command, "--out", str(tmp_path / "cut"), "--resume"], env=ENV, check=True, timeout=BOUND_S * 3)
    assert kept and all(parts.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in kept.items())  # not redone
    whole, cut = _rows(tmp_path / "whole"), _rows(tmp_path / "cut")
    assert [{k: r[k] for k in SAME} for r in cut] == [{k: r[k] for k in SAME} for r in whole]
    assert [r["probability"] for r in cut] == pytest.approx([r["probability"] for r in whole], abs=1e-5)
    assert (tmp_path / "cut" / "errors.jsonl").read_text().count("\n") == 2


def test_resume_keeps_the_whole_jobs_of_a_killed_ray_runs_files(tmp_path):
    def entries(job: str, count: int) -> pa.Table:
        return pa.table(part_columns(job, [{"frame_index": i} for i in range(count)], []))

    Store(tmp_path / "out", {"s": 1})
    staging = tmp_path / "out" / ".livecam-batch" / "tmp" / "run-killed"
    staging.mkdir(parents=True)
    whole, split = entries("whole", 3), entries("split", 4)
    pq.write_table(whole.slice(0, 2), staging / "a.parquet")  # a job Ray Data wrote as two blocks, both finished
    pq.write_table(pa.concat_tables([whole.slice(2), split.slice(0, 2)]), staging / "b.parquet")
    (staging / "c.parquet").write_bytes(b"PAR1 cut short")  # the rest of "split": the kill came mid-write
    store = Store(tmp_path / "out", {"s": 1}, resume=True)
    assert store.done_jobs() == {"whole"}
    rows, _ = store.gather([])
    assert rows == []  # jobs no longer planned are not gathered
    rows, _ = store.gather([Job("whole", "images", ())])
    assert [r["frame_index"] for r in rows] == [0, 1, 2]


def test_pool_takes_what_fits():
    assert pool_size([1, 1], None, 0.5) == 4  # every CPU: the writer asks for none, so nothing waits for one
    assert pool_size([2, 2], None, 1) == 4
    assert pool_size([2, 2], 2, 1) == 2
    assert pool_size([2], 3, 1) == 2
    assert pool_size([1.5], None, 1) == 1
    with pytest.raises(UserError, match="lower --cpus-per-worker"):
        pool_size([1, 0.5], None, 2)


CLAIM = """
import json, os, sys, threading
from livecam.batch.cpus import CoreClaim
threading.Thread(target=threading.Event().wait, daemon=True).start()  # a thread started before the claim
claim = CoreClaim(float(sys.argv[1]))
seen = {tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")}
print(json.dumps([claim.cores, sorted(seen)]), flush=True)
sys.stdin.readline()
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to pin")
def test_workers_claim_their_own_cores_until_they_end(tmp_path):
    env = {**ENV, "TMPDIR": str(tmp_path)}  # the claims' lock files: this test's own

    def claim(cpus: float) -> tuple[subprocess.Popen, list, list]:
        process = subprocess.Popen(
            [sys.executable, "-c", CLAIM, str(cpus)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        cores, threads = json.loads(process.stdout.readline())
        return process, cores, threads

    first, a, a_threads = claim(1)
    second, b, b_threads = claim(0.5)
    assert len(a) == len(b) == 1 and a != b  # every core once before any core twice
    assert a_threads == [a] and b_threads == [b]  # every thread of the worker is held there
    first.communicate("\n", timeout=BOUND_S)  # a worker that ends (or is killed) frees its core
    third, c, _ = claim(1)
    assert c == a
    for process in (second, third):
        process.communicate("\n", timeout=BOUND_S)


def test_ray_without_the_extra_says_how_to_install(tmp_path, capsys, make_video, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray.data", None)  # as if Ray Data were not installed
    video = make_video(tmp_path / "clip.mp4", 2)
    code, err = run(capsys, "batch", video, "--model", "demo", "--out", tmp_path / "out", "--ray")
    assert_user_error(code, err, "pip install 'livecam[ray]'")
    assert not (tmp_path / "out").exists()
