"""Tests for livecam.viewer.sinks and the OpenCV window: snapshots, the window, and the rules every output follows.

Outputs never replace inputs or each other, never write through a link, never open a FIFO or a
device, and replace a file in one step. The video writer is tested in test_recorder.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import DEMO_QUIET, decodable, unwritable_folder, visible_windows
from livecam.cli import main
from livecam.errors import UserError
from livecam.viewer import safe_files, sinks
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.sinks import SnapshotWriter, WindowSink, free_name, gui_available

# --- SnapshotWriter ---


def test_snapshots_never_overwrite(tmp_path, monkeypatch, make_video):
    import datetime as dt

    moment = dt.datetime(2026, 11, 28, 4, 15, 2, 123000).astimezone()
    monkeypatch.setattr(sinks, "_now", lambda: moment)
    folder = tmp_path / "snaps"
    writer = SnapshotWriter(folder)  # created on demand
    raw, overlay = make_video.frame(1), make_video.frame(2)
    cam = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    record = {"class": "tabby", "probability": np.float32(0.75), "layer": "conv5", "method": "gradcam"}
    first = writer.save(raw, overlay, cam, record)
    assert [p.name for p in first] == [
        "livecam-20261128-041502-001-raw.png",
        "livecam-20261128-041502-001-overlay.png",
        "livecam-20261128-041502-001-cam.npy",
        "livecam-20261128-041502-001-record.json",
    ]
    assert np.array_equal(cv2.imread(str(first[0])), raw) and np.array_equal(cv2.imread(str(first[1])), overlay)
    assert np.array_equal(np.load(first[2]), cam)
    saved = json.loads(first[3].read_text())
    assert saved["class"] == "tabby" and saved["probability"] == 0.75 and saved["method"] == "gradcam"
    assert saved["time"].startswith("2026-11-28T04:15:02.123")
    assert saved["files"]["raw"] == first[0].name

    second = writer.save(raw, overlay, None, record)  # same second: the next number, no .npy
    assert [p.name for p in second] == [
        "livecam-20261128-041502-002-raw.png",
        "livecam-20261128-041502-002-overlay.png",
        "livecam-20261128-041502-002-record.json",
    ]
    squatter = folder / "livecam-20261128-041502-003-overlay.png"
    squatter.write_bytes(b"someone else's")
    third = writer.save(raw, overlay, cam, record)
    assert third[0].name == "livecam-20261128-041502-004-raw.png"
    assert squatter.read_bytes() == b"someone else's"
    assert first[0].read_bytes() == cv2.imencode(".png", raw)[1].tobytes()


def test_snapshot_folder_errors(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"is a file, not a folder; choose a folder for the snapshots"):
        SnapshotWriter(tmp_path / "file")
    with pytest.raises(UserError, match=r"^Cannot write to the folder"):
        SnapshotWriter(unwritable_folder(tmp_path))


# --- WindowSink ---


def test_no_gui_without_a_display(monkeypatch):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("windows there need no DISPLAY")
    monkeypatch.delenv("DISPLAY", raising=False)
    assert gui_available() is False
    with pytest.raises(UserError, match=r"No window can be opened here .*; run with --no-display --output out.mp4"):
        WindowSink()


def test_window_shows_frames_and_closes(xvfb_display, make_video):
    assert gui_available()
    with WindowSink("livecam test") as window:
        assert not window.closed
        assert window.show(make_video.frame(0, (320, 240))) == -1
        assert window.poll() == -1
        x, y, width, height = cv2.getWindowImageRect("livecam test")
        assert width > 0 and height > 0
    assert window.closed
    assert window.show(make_video.frame(1)) == -1  # closed: shows nothing, opens nothing
    window.close()  # idempotent


def test_window_returns_the_key_pressed(xvfb_display, xdotool, make_video):
    # Bounds on waiting for X to map the window and deliver the key, not timing checks.
    with WindowSink("livecam keys") as window:
        window.show(make_video.frame(0))
        window_id = None
        deadline = time.monotonic() + 30
        while window_id is None and time.monotonic() < deadline:
            window.poll(10)  # let the GUI map the window
            window_id = next((str(w["WINDOW"]) for w in visible_windows(xdotool, "livecam keys")), None)
        assert window_id is not None, "the window was never mapped"
        keys = []
        deadline = time.monotonic() + 30
        while ord("q") not in keys and time.monotonic() < deadline:
            subprocess.run(
                [xdotool, "key", "--window", window_id, "q"], check=True, timeout=30
            )  # no window manager, no focus: aim it
            keys += [window.show(make_video.frame(1)) for _ in range(20)]
        assert ord("q") in keys
        assert set(keys) <= {-1, ord("q")}


@pytest.mark.x11
@pytest.mark.parametrize("size, expected", [((640, 480), (640, 480)), ((1600, 1000), (1037, 648))])
def test_window_opens_at_the_frame_size_fitted_to_the_screen(xvfb_display, size, expected):
    # The session's Xvfb screen is 1280x720: a 1600x1000 frame is fitted into 90 % of it.
    assert sinks.screen_size() == (1280, 720)
    frame = np.full((size[1], size[0], 3), 90, np.uint8)
    with WindowSink("livecam size") as window:
        window.show(frame)
        deadline = time.monotonic() + 30  # a bound on X mapping the window, not a timing check
        while time.monotonic() < deadline:
            window.poll(10)
            _, _, width, height = cv2.getWindowImageRect("livecam size")
            if (width, height) == expected:
                break
        assert (width, height) == pytest.approx(expected, abs=2)


@pytest.mark.x11
def test_window_goes_fullscreen_and_back(xvfb_display):
    with WindowSink("livecam full", fullscreen=True) as window:
        window.show(np.zeros((240, 320, 3), np.uint8))
        window.poll(10)
        assert window.fullscreen and cv2.getWindowProperty("livecam full", cv2.WND_PROP_FULLSCREEN) == cv2.WINDOW_FULLSCREEN
        window.set_fullscreen(False)
        window.poll(10)
        assert not window.fullscreen and cv2.getWindowProperty("livecam full", cv2.WND_PROP_FULLSCREEN) == cv2.WINDOW_NORMAL


@pytest.mark.parametrize(
    "size, screen, expected",
    [((640, 480), (1920, 1080), (640, 480)), ((3840, 2160), (1920, 1080), (1728, 972)), ((640, 480), None, (640, 480))],
)
def test_fit_to_screen_keeps_the_aspect_and_never_enlarges(size, screen, expected):
    assert sinks.fit_to_screen(size, screen) == expected


def test_check_output_for_any_file(tmp_path):
    stats = tmp_path / "stats.json"
    assert safe_files.check_output(stats) == stats
    stats.write_text("{}")
    assert safe_files.check_output(stats, overwrite=True) == stats
    with pytest.raises(UserError, match=r"stats.json' already exists; pass --overwrite"):
        safe_files.check_output(stats)
    with pytest.raises(UserError, match=r"does not exist; create it first"):
        safe_files.check_output(tmp_path / "nope" / "stats.json", overwrite=True)


# ---------------------------------------------------------------------- free_name


def test_free_name_never_returns_an_existing_path(tmp_path):
    base = tmp_path / "clip.mp4"
    assert free_name(base) == base
    names = []
    for _ in range(4):
        path = free_name(base)
        assert not path.exists()
        path.write_bytes(b"")
        names.append(path.name)
    assert names == ["clip.mp4", "clip-2.mp4", "clip-3.mp4", "clip-4.mp4"]
    (tmp_path / "clip-6.mp4").write_bytes(b"")  # a gap is filled, an existing later name skipped
    assert free_name(base).name == "clip-5.mp4"
    (tmp_path / "clip-5.mp4").write_bytes(b"")
    assert free_name(base).name == "clip-7.mp4"


def test_free_name_passes_over_a_broken_link(tmp_path):
    """A dangling link's name is taken too: the writer refuses it (it never writes through), so
    the r key would fail where a free name was promised."""
    base = tmp_path / "clip.mp4"
    base.symlink_to(tmp_path / "elsewhere" / "gone.mp4")
    assert free_name(base).name == "clip-2.mp4"
    VideoWriter(free_name(base), fps=10).close()  # accepted as it is


# ---------------------------------------------------------------------- outputs never replace inputs, links or special files


def test_stats_json_follows_the_overwrite_rule_of_output(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "clip.mp4", 6)
    old = tmp_path / "old.json"
    old.write_text('{"mine": 1}')
    assert main(["--source", str(clip), *DEMO_QUIET, "--stats-json", str(old)]) == 2
    err = capsys.readouterr().err
    assert "old.json' already exists; pass --overwrite to replace it" in err and err.count("\n") == 1
    assert old.read_text() == '{"mine": 1}'


@pytest.mark.parametrize("link", ["same name", "symlink", "hard link"])
@pytest.mark.parametrize("flag", ["--output", "--stats-json"])
def test_no_output_is_ever_an_input_even_with_overwrite(tmp_path, make_video, capsys, flag, link):
    clip = make_video(tmp_path / "in.mp4", 6)
    before = clip.read_bytes()
    out = tmp_path / "alias.mp4"
    if link == "same name":
        out = clip
    elif link == "symlink":
        out.symlink_to(clip)
    else:
        os.link(clip, out)
    assert main(["--source", str(clip), *DEMO_QUIET, flag, str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"is the same file as the input '{clip}'" in err and "choose another name" in err and err.count("\n") == 1
    assert clip.read_bytes() == before


def test_stats_json_is_not_the_recording_and_not_the_labels(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "in.mp4", 6)
    out = tmp_path / "rec.mp4"
    assert main(["--source", str(clip), *DEMO_QUIET, "-o", str(out), "--stats-json", str(out)]) == 2
    assert f"is the same file as --output '{out}'" in capsys.readouterr().err
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    assert main(["--source", str(clip), *DEMO_QUIET, "--labels", str(labels), "--stats-json", str(labels), "--overwrite"]) == 2
    assert "is the same file as --labels" in capsys.readouterr().err
    assert labels.read_text() == "a\nb\n"


def test_an_image_of_an_input_folder_is_never_an_output(tmp_path, make_image_folder, capsys):
    folder = make_image_folder(tmp_path / "frames", 3)
    image = next(folder.iterdir())
    assert main(["--source", str(folder), *DEMO_QUIET, "--stats-json", str(image), "--overwrite"]) == 2
    assert "is the same file as the input image" in capsys.readouterr().err


def test_a_file_in_an_input_folder_that_is_not_read_may_be_replaced(tmp_path, make_image_folder, capsys):
    """The folder source reads only its images: last run's recording beside them is no input."""
    folder = make_image_folder(tmp_path / "frames", 3)
    out, stats = folder / "out.mp4", folder / "stats.json"
    out.write_bytes(b"last run")
    stats.write_text("{}")
    assert main(["--source", str(folder), *DEMO_QUIET, "-o", str(out), "--stats-json", str(stats), "--overwrite"]) == 0, (
        capsys.readouterr().err
    )
    assert decodable(out) == 3 and json.loads(stats.read_text())["frames"] == 3


def test_a_dangling_symlink_as_output_is_never_written_through(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "in.mp4", 4)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out.mp4"
    out.symlink_to(elsewhere / "target.mp4")
    assert main(["--source", str(clip), *DEMO_QUIET, "-o", str(out)]) == 2
    assert "is a symbolic link to" in capsys.readouterr().err
    assert main(["--source", str(clip), *DEMO_QUIET, "-o", str(out), "--overwrite"]) == 0, capsys.readouterr().err
    assert not (elsewhere / "target.mp4").exists(), "the link's target was created"
    assert not out.is_symlink() and decodable(out) == 4, "the link itself was replaced by the recording"


def tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("link", ["symlink", "hard link"])
@pytest.mark.parametrize("flag, folder, name", [("-o", "out/", "frame_1.png"), ("--save-maps", "maps", "frame_1.npy")])
def test_per_frame_files_are_never_an_input_even_through_links(tmp_path, make_image_folder, capsys, link, flag, folder, name):
    images = make_image_folder(tmp_path / "in", 3)
    before = tree(images)
    out = tmp_path / folder
    out.mkdir()
    if link == "symlink":
        (out / name).symlink_to(images / "frame_1.png")
    else:
        os.link(images / "frame_1.png", out / name)
    assert main(["--source", str(images), *DEMO_QUIET, flag, str(tmp_path / folder), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"is the same file as the input image '{images / 'frame_1.png'}'" in err, err
    assert f"choose another {flag} folder" in err and err.count("\n") == 1, err
    assert tree(images) == before


@pytest.mark.parametrize("flag, folder, name", [("-o", "out/", "frame_1.png"), ("--save-maps", "maps", "frame_1.npy")])
def test_a_link_in_an_output_folder_is_replaced_never_written_through(tmp_path, make_image_folder, capsys, flag, folder, name):
    images = make_image_folder(tmp_path / "in", 3)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "kept.bin").write_bytes(b"precious")
    (mine / "also kept.bin").write_bytes(b"precious too")
    out = tmp_path / folder
    out.mkdir()
    (out / name).symlink_to(mine / "kept.bin")
    other = name.replace("_1", "_2")
    os.link(mine / "also kept.bin", out / other)
    assert main(["--source", str(images), *DEMO_QUIET, flag, str(tmp_path / folder), "--overwrite"]) == 0, capsys.readouterr().err
    assert tree(mine) == {"also kept.bin": b"precious too", "kept.bin": b"precious"}
    assert not (out / name).is_symlink() and (out / other).stat().st_ino != (mine / "also kept.bin").stat().st_ino
    assert sorted(p.name for p in out.iterdir()) == sorted(name.replace("_1", f"_{i}") for i in (1, 2, 3))
    if flag == "-o":
        assert cv2.imread(str(out / name)).shape == (120, 160, 3)
    else:
        assert np.load(out / name).dtype == np.float32


def special_file(path: Path, kind: str) -> Path:
    if kind == "fifo":
        os.mkfifo(path)
    else:  # a copy of /dev/null
        if os.geteuid() != 0:
            pytest.skip("making a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return path


@pytest.mark.timeout(60)  # before the fix, --results opened a FIFO and waited for a reader forever
@pytest.mark.parametrize("overwrite", [True, False])
@pytest.mark.parametrize("kind, said", [("fifo", "a named pipe (FIFO)"), ("device", "a character device")])
@pytest.mark.parametrize(
    "flag, name", [("--stats-json", "s.json"), ("--results", "r.jsonl"), ("--results", "r.csv"), ("-o", "o.mp4")]
)
def test_no_output_replaces_or_opens_a_fifo_or_a_device(tmp_path, make_video, capsys, flag, name, kind, said, overwrite):
    clip = make_video(tmp_path / "in.mp4", 4)
    target = special_file(tmp_path / name, kind)
    mode = os.lstat(target).st_mode
    assert main(["--source", str(clip), *DEMO_QUIET, flag, str(target), *(["--overwrite"] if overwrite else [])]) == 2
    err = capsys.readouterr().err
    assert f"'{target}' is {said}, not a regular file" in err and err.count("\n") == 1, err
    assert "already exists" not in err
    assert os.lstat(target).st_mode == mode


@pytest.mark.parametrize("flag, folder, name", [("-o", "out/", "frame_2.png"), ("--save-maps", "maps", "frame_2.npy")])
def test_a_fifo_in_an_output_folder_is_never_replaced(tmp_path, make_image_folder, capsys, flag, folder, name):
    images = make_image_folder(tmp_path / "in", 3)
    (tmp_path / folder).mkdir()
    fifo = special_file(tmp_path / folder / name, "fifo")
    assert main(["--source", str(images), *DEMO_QUIET, flag, str(tmp_path / folder), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"'{fifo}' is a named pipe (FIFO), not a regular file" in err and err.count("\n") == 1, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_link_to_a_file_of_a_process_is_not_replaced(tmp_path, make_video, capsys):
    """/dev/stdout is such a link: as root, replacing it would replace the system's own."""
    clip = make_video(tmp_path / "in.mp4", 4)
    stdout = tmp_path / "stdout.json"
    stdout.symlink_to("/proc/self/fd/1")
    assert main(["--source", str(clip), *DEMO_QUIET, "--stats-json", str(stdout), "--overwrite"]) == 2
    assert "an open file of a process, not a file of its own" in capsys.readouterr().err
    assert os.readlink(stdout) == "/proc/self/fd/1"


def test_stats_json_is_written_whole_or_not_at_all(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "in.mp4", 4)
    stats = tmp_path / "stats.json"
    link_target = tmp_path / "kept.json"
    link_target.write_text("precious")
    stats.symlink_to(link_target)
    assert main(["--source", str(clip), *DEMO_QUIET, "--stats-json", str(stats), "--overwrite"]) == 0, capsys.readouterr().err
    assert link_target.read_text() == "precious", "the link was replaced, not written through"
    assert json.loads(stats.read_text())["frames"] == 4


def test_stats_json_gets_the_permissions_of_any_new_file(tmp_path):
    umask = os.umask(0o022)
    try:
        safe_files.write_file_atomic(tmp_path / "stats.json", b"{}")
    finally:
        os.umask(umask)
    assert (tmp_path / "stats.json").stat().st_mode & 0o777 == 0o644, "readable by others, as the recording is"
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]
