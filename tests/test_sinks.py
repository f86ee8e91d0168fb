"""Tests for livecam.viewer.recorder (the video writer) and livecam.viewer.sinks (snapshots, the window, output checks)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections import namedtuple

import cv2
import imageio_ffmpeg
import numpy as np
import pytest

from helpers import read_frames, video_info, visible_windows
from livecam.errors import UserError
from livecam.viewer import encoders, safe_files, sinks
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.safe_files import SinkError, free_name
from livecam.viewer.sinks import SnapshotWriter, WindowSink, gui_available


def decoded_indices(path, index_of) -> list[int]:
    return [index_of(image.astype(np.uint8)) for image in read_frames(path)]


def write_frames(writer: VideoWriter, make_video, indices, size=(160, 120), timestamps=None) -> None:
    for k, i in enumerate(indices):
        writer.write(make_video.frame(i, size), None if timestamps is None else timestamps[k])


# --- VideoWriter ---


def test_file_mode_writes_every_frame_once_as_h264(tmp_path, make_video):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=12.5) as writer:
        write_frames(writer, make_video, range(37))
    assert writer.backend == "ffmpeg" and writer.frames_written == 37
    info = video_info(path)
    assert info["codec"] == "h264" and info["pix_fmt"].startswith("yuv420p")
    assert (info["size"], info["fps"], info["frames"]) == ((160, 120), 12.5, 37)
    assert decoded_indices(path, make_video.index_of) == list(range(37))


def test_odd_sizes_are_padded_by_one_pixel(tmp_path, make_video):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, fps=15) as writer:
        write_frames(writer, make_video, range(20), size=(161, 121))
    info = video_info(path)
    assert (info["size"], info["frames"]) == ((162, 122), 20)


def test_frames_of_another_size_are_fitted(tmp_path, make_video):
    path = tmp_path / "fit.mp4"
    with VideoWriter(path, fps=15, size=(160, 120)) as writer:
        writer.write(make_video.frame(0, (160, 120)))
        writer.write(make_video.frame(1, (64, 96)))
        writer.write(make_video.frame(2, (320, 240)))
    info = video_info(path)
    assert (info["size"], info["frames"]) == ((160, 120), 3)


def test_live_mode_follows_capture_timestamps(tmp_path, make_video):
    path = tmp_path / "live.mp4"
    timestamps = [100.0, 100.1, 100.2, 100.21, 101.0]  # a 0.01 s pair, then a 0.79 s gap
    with VideoWriter(path, fps=10, live=True) as writer:
        write_frames(writer, make_video, range(5), timestamps=timestamps)
    # Slot n = round((t - 100) * 10): 0, 1, 2, 2 (the later wins), 10; the gap repeats frame 3.
    assert decoded_indices(path, make_video.index_of) == [0, 1, 3, 3, 3, 3, 3, 3, 3, 3, 4]
    assert (writer.frames_received, writer.frames_written, writer.repeated, writer.dropped) == (5, 11, 7, 1)
    assert video_info(path)["duration"] == pytest.approx(1.1, abs=0.05)


def test_no_frames_no_file(tmp_path):
    path = tmp_path / "empty.mp4"
    VideoWriter(path, fps=30).close()
    assert not path.exists()


def test_existing_file_needs_overwrite(tmp_path, make_video):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    with pytest.raises(UserError, match=r"out.mp4' already exists; pass --overwrite to replace it, or choose another name\.$"):
        VideoWriter(path, fps=30)
    with VideoWriter(path, fps=30, overwrite=True) as writer:
        write_frames(writer, make_video, range(3))
    assert video_info(path)["frames"] == 3


def unwritable_folder(tmp_path):
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return folder
    if sys.platform.startswith("linux"):
        return "/proc"  # not even root can create files there
    pytest.skip("running as root without /proc: no unwritable folder to test with")


def test_bad_output_paths(tmp_path):
    with pytest.raises(UserError, match=r"The folder '.*missing' for 'out.mp4' does not exist; create it first"):
        VideoWriter(tmp_path / "missing" / "out.mp4", fps=30)
    with pytest.raises(UserError, match=r"Expected an output file ending in .mp4 \(or .mov, .m4v, .mkv\). Received: '.*out.avi'"):
        VideoWriter(tmp_path / "out.avi", fps=30)
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UserError, match=r"is a folder; give a file name, such as"):
        VideoWriter(tmp_path / "dir.mp4", fps=30)
    with pytest.raises(UserError, match=r"^Cannot write to the folder '.*' \(.*\); choose another folder"):
        VideoWriter(os.path.join(unwritable_folder(tmp_path), "out.mp4"), fps=30)
    with pytest.raises(UserError, match=r"Expected fps > 0 for the video. Received: fps=0"):
        VideoWriter(tmp_path / "out.mp4", fps=0)


def test_bad_frames_and_writes_after_close(tmp_path, make_video):
    writer = VideoWriter(tmp_path / "out.mp4", fps=30)
    with pytest.raises(
        ValueError, match=r"Expected frame_bgr to be a uint8 BGR image of shape \(height, width, 3\). Received: float32"
    ):
        writer.write(np.zeros((120, 160, 3), np.float32))
    writer.write(make_video.frame(0))
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(SinkError, match=r"is closed; open a new VideoWriter"):
        writer.write(make_video.frame(1))


def test_exit_does_not_swallow_exceptions_and_keeps_the_file(tmp_path, make_video):
    path = tmp_path / "out.mp4"
    with pytest.raises(ZeroDivisionError):
        with VideoWriter(path, fps=30) as writer:
            write_frames(writer, make_video, range(4))
            raise ZeroDivisionError
    assert video_info(path)["frames"] == 4


def write_until_it_fails(writer: VideoWriter, make_video, start: int, bound_s: float = 60.0) -> SinkError:
    """Keep writing (the encoder's failure shows at a later write) until SinkError, at most ``bound_s``."""
    deadline = time.monotonic() + bound_s
    i = start
    while time.monotonic() < deadline:
        try:
            writer.write(make_video.frame(i))
        except SinkError as error:
            return error
        i += 1
        time.sleep(0.01)
    raise AssertionError(f"no SinkError within {bound_s} s")


def wait_handed_over(writer: VideoWriter, n: int, bound_s: float = 60.0) -> None:
    """Wait (bounded) until the writer thread gave ``n`` frames to ffmpeg."""
    deadline = time.monotonic() + bound_s
    while writer.frames_written < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer.frames_written >= n


def test_ffmpeg_killed_mid_recording_keeps_what_decodes_and_says_exactly_how_much(tmp_path, make_video):
    path = tmp_path / "out.mp4"
    writer = VideoWriter(path, fps=15)
    write_frames(writer, make_video, range(40))
    wait_handed_over(writer, 40)
    time.sleep(1.0)  # ffmpeg encodes and writes the fragments of the frames it has
    os.kill(writer._feed.encoder.pid, signal.SIGKILL)
    error = write_until_it_fails(writer, make_video, 40)
    message = str(error)
    assert "ffmpeg was stopped by signal 9" in message
    kept = int(re.search(r"keeps the first (\d+) frames", message).group(1))
    assert writer.saved_path == path and 15 <= kept <= 40
    # The number said is the number that decodes, by ffmpeg and by OpenCV, in order from the first.
    assert video_info(path)["frames"] == kept
    assert decoded_indices(path, make_video.index_of) == list(range(kept))
    writer.close()  # after a failure: nothing more to do, no second error
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"], "no temporary file is left behind"


def test_low_disk_space_stops_recording_with_a_playable_file(tmp_path, make_video, monkeypatch):
    path = tmp_path / "out.mp4"
    Usage = namedtuple("Usage", "total used free")
    free = [10 * 2**30]
    monkeypatch.setattr(safe_files.shutil, "disk_usage", lambda folder: Usage(20 * 2**30, 0, free[0]))
    writer = VideoWriter(path, fps=10)  # checks once every 10 frames
    write_frames(writer, make_video, range(15))
    free[0] = 5 * 2**20
    with pytest.raises(
        SinkError,
        match=r"Stopped recording .*out.mp4: only 5 MB left on the disk; .*out.mp4 keeps the first 20 frames \(2.0 s; checked by decoding it\)\.$",
    ):
        write_frames(writer, make_video, range(15, 30))
    writer.close()
    assert video_info(path)["frames"] == 20


def test_falls_back_to_opencv_when_ffmpeg_cannot_start(tmp_path, make_video, monkeypatch):
    def no_ffmpeg():
        raise RuntimeError("No ffmpeg exe could be found")

    monkeypatch.setattr(encoders.imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg)
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=15) as writer:
        with pytest.warns(RuntimeWarning, match=r"Could not start ffmpeg .*OpenCV's mp4v codec instead"):
            writer.write(make_video.frame(0))
        write_frames(writer, make_video, range(1, 12))
    assert writer.backend == "opencv" and len(writer.warnings) == 1
    assert decoded_indices(path, make_video.index_of) == list(range(12))


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from livecam.viewer.recorder import VideoWriter

    path, n = sys.argv[1], int(sys.argv[2])
    with VideoWriter(path, fps=15) as writer:
        for i in range(n):
            writer.write(np.full((120, 160, 3), 10 * i, np.uint8))
        deadline = time.monotonic() + 60
        while writer.frames_written < n and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer thread hands them to ffmpeg
        print("written", flush=True)
        time.sleep(120)
    """
)


@pytest.mark.subprocess
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_recording_survives_the_process_being_stopped(tmp_path, signum):
    path = tmp_path / "out.mp4"
    # Its own process group, like a program in a terminal; the signal goes to the whole group.
    root = os.path.dirname(os.path.dirname(sinks.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "12"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready and child.stdout.readline() == b"written\n", child.stderr.read().decode()
        os.killpg(child.pid, signum)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    stderr = child.stderr.read().decode()
    if signum == signal.SIGINT:
        # Python stopped on the KeyboardInterrupt and closed the writer; ffmpeg never saw the signal.
        assert "KeyboardInterrupt" in stderr and "SinkError" not in stderr, stderr
        assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
    else:
        # Python died at once: ffmpeg, orphaned, sees the end of its input and finishes the file,
        # which stays under its temporary name beside the target (nobody is left to rename it).
        assert not path.exists()
        (partial,) = tmp_path.glob("out.partial-*.mp4")
        path = partial
    deadline = time.monotonic() + 30
    while True:
        try:
            frames = imageio_ffmpeg.count_frames_and_secs(str(path))[0]
        except (RuntimeError, OSError):
            frames = None
        if frames == 12 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert frames == 12


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
