"""Tests for livecam.sources: auto-detection, file and folder readers, the live reader."""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from conftest import VideoFactory
from fakes import FakeDevice, FlakyCapture
from helpers import DEMO_QUIET, ENV, VFR_TIMES, assert_user_error, corrupt_avi_frames, ffmpeg_encode, read_frames, run, vfr_video
from livecam.errors import UserError
from livecam.sources import ImageFolderSource, LiveSource, VideoFileSource, list_cameras, open_source


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; a bound on waiting, not a timing check."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


# --- files and folders ---


def test_video_file_delivers_every_frame_in_order(tmp_path, make_video):
    path = make_video(tmp_path / "clip.mp4", 40, fps=15.0)
    with open_source(str(path)) as source:
        assert isinstance(source, VideoFileSource)
        assert (source.live, source.fps, source.size, source.frame_count) == (False, 15.0, (160, 120), 40)
        assert "clip.mp4" in source.description
        frames = list(source)
        assert source.status == "ended"
        assert source.read() is None
    assert [f.index for f in frames] == list(range(40))
    assert [make_video.index_of(f.image_bgr) for f in frames] == list(range(40))
    assert all(f.image_bgr.dtype == np.uint8 and f.image_bgr.shape == (120, 160, 3) for f in frames)
    assert not any(np.shares_memory(a.image_bgr, b.image_bgr) for a, b in zip(frames, frames[1:]))
    assert all(a.timestamp_s <= b.timestamp_s for a, b in zip(frames, frames[1:]))
    assert (source.dropped, source.corrupt) == (0, 0)


def test_video_file_loops(tmp_path, make_video):
    path = make_video(tmp_path / "clip.mp4", 10)
    with open_source(path, loop=True) as source:
        frames = [source.read() for _ in range(25)]
    assert [f.index for f in frames] == list(range(25))
    assert [make_video.index_of(f.image_bgr) for f in frames] == [i % 10 for i in range(25)]


def test_video_with_corrupt_frames_skips_and_counts_them(tmp_path, make_video):
    path = make_video(tmp_path / "clip.avi", 30)
    corrupt_avi_frames(path, {10, 11, 20})
    with open_source(path) as source:
        indices = [make_video.index_of(f.image_bgr) for f in source]
        assert source.corrupt == 3
    assert indices == [i for i in range(30) if i not in {10, 11, 20}]


@pytest.mark.parametrize(
    "bad_grabs, bad_retrieves, expected_corrupt",
    [((), {5, 6}, 2), ({8}, {3}, 2), (set(range(25, 30)), (), 5)],
    ids=["retrieve fails", "both fail", "truncated end"],
)
def test_video_decode_failures_are_skipped_and_counted(
    tmp_path, make_video, monkeypatch, bad_grabs, bad_retrieves, expected_corrupt
):
    path = make_video(tmp_path / "clip.mp4", 30)
    real = cv2.VideoCapture
    monkeypatch.setattr(cv2, "VideoCapture", lambda *args: FlakyCapture(real(*args), bad_grabs, bad_retrieves))
    with open_source(path) as source:
        indices = [make_video.index_of(f.image_bgr) for f in source]
        assert source.corrupt == expected_corrupt
    assert indices == [i for i in range(30) if i not in set(bad_grabs) | set(bad_retrieves)]


def test_image_folder_in_natural_order(image_folder, make_video):
    with open_source(image_folder) as source:
        assert isinstance(source, ImageFolderSource)
        assert (source.live, source.fps, source.frame_count, source.size) == (False, 30.0, 12, (160, 120))
        frames = list(source)
    assert [make_video.index_of(f.image_bgr) for f in frames] == list(range(12))
    assert [f.index for f in frames] == list(range(12))
    assert [f.name for f in frames] == [f"frame_{i}.png" for i in range(1, 13)]  # each picture's file name
    assert all(f.unrelated for f in frames)  # separate pictures: a viewer smooths none of them into the next


def test_image_folder_skips_unreadable_images_and_takes_any_size(tmp_path, make_image_folder, make_video):
    sizes = [(160, 120), (320, 240), (96, 64), (160, 120), (200, 100)]
    folder = make_image_folder(tmp_path / "mixed", 5, sizes=sizes)
    (folder / "frame_3.png").write_bytes(b"not a png at all")
    (folder / "notes.txt").write_text("ignored: not an image name")
    with open_source(folder, fps=12) as source:
        assert source.fps == 12
        frames = list(source)
        assert source.corrupt == 1
    assert [make_video.index_of(f.image_bgr) for f in frames] == [0, 1, 3, 4]
    assert [f.image_bgr.shape[1::-1] for f in frames] == [sizes[i] for i in (0, 1, 3, 4)]


def test_glob_pattern_and_single_image(image_folder, make_video):
    with open_source(str(image_folder / "frame_1*.png")) as source:
        assert isinstance(source, ImageFolderSource)
        assert [make_video.index_of(f.image_bgr) for f in source] == [0, 9, 10, 11]
    with open_source(image_folder / "frame_2.png", loop=True) as source:
        frames = [source.read() for _ in range(3)]
    assert [make_video.index_of(f.image_bgr) for f in frames] == [1, 1, 1]
    assert [f.index for f in frames] == [0, 1, 2]


def test_folder_with_all_images_unreadable(tmp_path):
    for name in ("a.png", "b.jpg"):
        (tmp_path / name).write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match=r"None of the 2 images in .* could be read"):
        open_source(tmp_path)


# --- auto-detection and user errors ---


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server over tmp_path/www; yields (root folder, base URL, the paths it was asked for)."""
    requests: list[str] = []

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()
    server.server_close()


def test_a_finite_video_file_over_http_is_read_as_a_file(http_root, make_video):
    root, base, requests = http_root
    make_video(root / "clip.mp4", 30)
    with open_source(f"{base}/clip.mp4?token=s3cr3t", timeout_s=5) as source:
        assert isinstance(source, VideoFileSource) and not source.live
        assert source.frame_count == 30
        assert source.description.startswith(f"video {base}/clip.mp4?token=*** (160x120, 15 fps, 30 frames)")
        indices = [make_video.index_of(frame.image_bgr) for frame in source]
    assert indices == list(range(30)), "every frame, once, in order"
    assert source.corrupt == 0
    assert len(requests) <= 4, f"fetched {len(requests)} times"


def test_a_live_mjpeg_stream_over_http_stays_live(make_video):
    """multipart/x-mixed-replace, what IP cameras serve: no end, so a LiveSource."""
    stop = threading.Event()

    class MjpegHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for i in range(600):  # bounded: at most 30 s
                if stop.is_set():
                    return
                jpeg = cv2.imencode(".jpg", make_video.frame(i))[1].tobytes()
                try:
                    self.wfile.write(
                        b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n"
                    )
                except OSError:
                    return
                time.sleep(0.05)

    server = ThreadingHTTPServer(("127.0.0.1", 0), MjpegHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with open_source(f"http://127.0.0.1:{server.server_port}/video.mjpg", timeout_s=5) as source:
            assert isinstance(source, LiveSource) and source.live
            assert source.read(timeout_s=10) is not None
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def test_synth_source(tmp_path):
    with open_source("synth:160x120,seed=3,fps=60") as source:
        assert isinstance(source, LiveSource)
        assert (source.live, source.fps, source.size, source.frame_count) == (True, 60.0, (160, 120), None)
        assert source.description == "synthetic scene 160x120 at 60 fps (seed 3)"
        frames = [source.read(timeout_s=10) for _ in range(3)]
    assert all(f.image_bgr.shape == (120, 160, 3) and f.image_bgr.dtype == np.uint8 for f in frames)
    assert frames[0].index < frames[1].index < frames[2].index
    with open_source("synth", resolution=(96, 64)) as source:
        assert (source.size, source.fps) == ((96, 64), 30.0)


def test_camera_index_forms_are_detected(monkeypatch):
    opened = []

    class FakeVideoCapture:
        def __init__(self, index, *args):
            self.index, self.props = index, {}
            opened.append(self)

        def isOpened(self):
            return self.index in (0, 2)

        def set(self, prop, value):
            self.props[prop] = value
            return True

        def get(self, prop):
            values = {
                cv2.CAP_PROP_FRAME_WIDTH: 640,
                cv2.CAP_PROP_FRAME_HEIGHT: 480,
                cv2.CAP_PROP_FPS: 30.0,
                cv2.CAP_PROP_FOURCC: cv2.VideoWriter.fourcc(*"MJPG"),
            }
            return values.get(prop, 0.0)

        def read(self):
            time.sleep(0.005)
            return True, np.zeros((480, 640, 3), np.uint8)

        def release(self):
            pass

        def getBackendName(self):
            return "FAKE"

    monkeypatch.setattr(cv2, "VideoCapture", FakeVideoCapture)
    with open_source("2", resolution=(1280, 720), fps=30) as source:
        assert source.description == "camera 2 at 640x480 30 fps (MJPG)"
        assert source.warnings == ["Camera 2 gives 640x480 instead of the 1280x720 asked for."]
        assert source.read(timeout_s=5).image_bgr.shape == (480, 640, 3)
    props = opened[-1].props
    assert props[cv2.CAP_PROP_BUFFERSIZE] == 1
    assert props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter.fourcc(*"MJPG")
    assert (props[cv2.CAP_PROP_FRAME_WIDTH], props[cv2.CAP_PROP_FRAME_HEIGHT]) == (1280, 720)
    with open_source(0) as source:
        assert source.description.startswith("camera 0 ")
        assert source.warnings == []
    assert [c["index"] for c in list_cameras()] == [0, 2]
    assert list_cameras()[0] == dict(index=0, width=640, height=480, fps=30.0, fourcc="MJPG", backend="FAKE")


def test_list_cameras_without_cameras_probes_each_index_and_releases_it(monkeypatch):
    probed, released = [], []

    class NoCamera:
        def __init__(self, index, *args):
            self.index = index
            probed.append(index)

        def isOpened(self):
            return False

        def release(self):
            released.append(self.index)

    monkeypatch.setattr(cv2, "VideoCapture", NoCamera)
    assert list_cameras(max_index=4) == []
    assert probed == released == [0, 1, 2, 3]


@pytest.mark.parametrize("spec", [57, "57"])
def test_camera_that_does_not_open(spec):
    message = (
        "Camera 57 did not open; check it is connected and not used by another program, "
        "or list cameras with `livecam --list-cameras`."
    )
    with pytest.raises(UserError, match=f"^{re.escape(message)}$"):
        open_source(spec)


def test_missing_file():
    with pytest.raises(UserError, match=r"The input 'no/such/clip.mp4' does not exist; check the path"):
        open_source("no/such/clip.mp4")


@pytest.mark.parametrize("name, content", [("broken.mp4", b"\x00\x01garbage" * 100), ("notes.txt", b"hello"), ("bad.png", b"xx")])
def test_file_that_is_not_a_video_or_image(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"'{re.escape(str(path))}' is not a readable video or image"):
        open_source(path)


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(UserError, match=r"has no images .*; put images in it"):
        open_source(tmp_path)
    with pytest.raises(UserError, match=r"No images match '.*\*\.png'; check the pattern"):
        open_source(str(tmp_path / "*.png"))


def test_stream_that_does_not_answer():
    with socket.socket() as server:  # accepts connections, never says a word
        server.bind(("127.0.0.1", 0))
        server.listen()
        url = f"http://127.0.0.1:{server.getsockname()[1]}/live"
        with pytest.raises(UserError, match=rf"^The stream {re.escape(url)} did not answer within 1 s"):
            open_source(url, timeout_s=1)


def test_stream_that_refuses_hides_the_password():
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match=r"could not be opened; check the address") as info:
        open_source(f"rtsp://admin:secret@127.0.0.1:{port}/stream", timeout_s=5)
    assert "secret" not in str(info.value) and "admin" not in str(info.value) and "rtsp://***@127.0.0.1" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(spec="ftp://example.com/a.mp4"), r"Unsupported URL scheme 'ftp'"),
        (dict(spec="synth:huge"), r"Unknown synth option 'huge'; expected synth:\[WxH\]"),
        (dict(spec="synth", fps=-3), r"Expected fps > 0. Received: fps=-3"),
        (dict(spec="synth", resolution=(640, 0)), r"Expected resolution as \(width, height\)"),
        (dict(spec=""), r"Expected an input"),
        (dict(spec=-1), r"Expected a camera index >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(UserError, match=match):
        open_source(**kwargs)


# --- the live reader ---


def test_latest_frame_wins_never_twice_and_drops_for_a_slow_consumer(make_video):
    device = FakeDevice(make_video.frame)
    source = LiveSource(device.open, description="fake camera")
    frames = []
    try:
        for _ in range(15):
            frames.append(source.read(timeout_s=10))
            # A slow consumer: at least three newer frames are captured before the next read.
            assert wait_until(lambda: source.captured >= frames[-1].index + 4)
    finally:
        source.close()
    indices = [f.index for f in frames]
    assert all(a < b for a, b in zip(indices, indices[1:]))
    gaps = sum(b - a - 1 for a, b in zip(indices, indices[1:]))
    assert source.dropped >= gaps >= 2 * 14
    # Each frame owns its pixels although the device reuses one buffer.
    assert [make_video.index_of(f.image_bgr) for f in frames] == [i % 256 for i in indices]
    assert source.read() is None and source.status == "ended"


def test_live_read_waits_for_a_new_frame_and_close_unblocks_it(make_video):
    device = FakeDevice(make_video.frame)
    device.plugged.clear()
    source = LiveSource(device.open, backoff_s=(0.01, 0.05))
    assert source.read(timeout_s=0.1) is None  # nothing yet, but not the end
    assert wait_until(lambda: source.status == "reconnecting")
    results = []
    reader = threading.Thread(target=lambda: results.append(source.read()))
    reader.start()
    source.close()
    reader.join(timeout=10)
    assert results == [None]
    source.close()  # idempotent


def test_reconnects_after_the_device_comes_back(make_video):
    device = FakeDevice(make_video.frame)
    with LiveSource(device.open, backoff_s=(0.02, 0.1), max_failed_reads=3, description="fake camera") as source:
        before = source.read(timeout_s=10)
        assert source.status == "ok"
        device.plugged.clear()  # unplugged
        assert wait_until(lambda: source.status == "reconnecting")
        source.read(timeout_s=0)  # at most the last frame captured before the failure
        assert source.read(timeout_s=0.2) is None  # no made-up frames while it is gone
        assert source.status == "reconnecting"
        device.plugged.set()  # back
        after = source.read(timeout_s=10)
        assert source.status == "ok"
        assert after.index > before.index
        assert device.opens >= 2 and source.reconnects >= 1


def test_a_pause_drops_nothing_and_the_first_frame_after_it_is_captured_after_it(make_video):
    device = FakeDevice(make_video.frame)
    with LiveSource(device.open, description="fake camera") as source:
        before = source.read(timeout_s=10)
        assert wait_until(lambda: source.captured > before.index + 1)  # a newer frame waits
        source.set_paused(True)
        assert source.paused
        dropped, counter = source.dropped, device.counter
        assert wait_until(lambda: device.counter >= counter + 20)  # the camera goes on meanwhile
        assert source.read(timeout_s=0.05) is None and source.status == "ok"  # nothing to read while paused
        assert source.dropped == dropped, "a pause is not a drop"
        resumed_s = time.monotonic()
        source.set_paused(False)
        after = source.read(timeout_s=10)
        assert after.timestamp_s >= resumed_s, "the first frame after the pause was captured after it"
        assert after.index > before.index
        later = source.read(timeout_s=10)  # and the latest frame wins again
    assert later.index > after.index


# --- honest timing and counts (issue 12) ---


@pytest.fixture
def vfr_clip(tmp_path, make_video):
    return vfr_video(make_video, tmp_path / "vfr.mkv")


def test_variable_frame_rate_counts_real_frames_and_keeps_their_times(vfr_clip, make_video):
    with open_source(vfr_clip) as source:
        assert source.variable_frame_rate and source.frame_count == 60
        assert source.fps == 10.0, "a grid fine enough for the closest frames"
        assert "variable frame rate" in source.description
        frames = list(source)
    assert source.corrupt == 0
    assert [make_video.index_of(f.image_bgr) for f in frames] == list(range(60))
    np.testing.assert_allclose([f.media_time_s for f in frames], VFR_TIMES, atol=0.002)


def test_frames_missing_from_the_timestamps_count_as_corrupt(tmp_path, make_video):
    """Two damaged packets of 240 vanish without an error; the file, written through a pipe, has no length."""
    clip = ffmpeg_encode(make_video, tmp_path / "damaged.mkv", 240, [
        "-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", "-bsf:v", r"noise=amount=if(eq(n\,100)+eq(n\,200)\,1\,0)",
        "-f", "matroska"], rate=24, pipe_output=True)  # fmt: skip
    with open_source(clip) as source:
        assert source.frame_count == 240
        frames = list(source)
    assert len(frames) == 238 and source.corrupt == 2


def test_folder_of_mixed_sizes_records_at_the_most_common_size(tmp_path, make_image_folder):
    sizes = [(1, 1), (160, 120), (96, 64), (160, 120), (160, 120)]
    folder = make_image_folder(tmp_path / "mixed", 5, sizes=sizes)
    with open_source(folder) as source:
        assert source.mixed_sizes and source.size == (160, 120)
        assert any("3 different sizes" in w and "160x120" in w and "--size" in w for w in source.warnings)
        shapes = [f.image_bgr.shape[:2] for f in source]
    assert shapes == [(h, w) for w, h in sizes], "each image is handed out at its own size"
    same = make_image_folder(tmp_path / "same", 3)
    with open_source(same) as source:
        assert not source.mixed_sizes and source.size == (160, 120) and not source.warnings


# ---------------------------------------------------------------------- what the command says of inputs


def test_folder_with_a_superscript_digit_in_a_name_plays_in_natural_order(capsys, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, name in enumerate(["1\u00b22.png", "2.png", "10.png"]):  # the natural order: 1, 2, 10
        cv2.imwrite(str(folder / name), VideoFactory.frame(index, (160, 120)))
    out = tmp_path / "out.mp4"
    code, err = run(capsys, "--source", folder, "--output", out, "--alpha", "0", "--no-hud", *DEMO_QUIET)
    assert code == 0, err
    assert [VideoFactory.index_of(f) for f in read_frames(out)] == [0, 1, 2]


def test_fifo_is_named_as_such(capsys, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, err = run(capsys, "--source", fifo, *DEMO_QUIET)
    assert_user_error(code, err, f"The input {str(fifo)!r} is a named pipe (FIFO), not a video or image file")


def test_broken_link_names_its_missing_target(capsys, tmp_path):
    link = tmp_path / "clip.mp4"
    link.symlink_to(tmp_path / "gone.mp4")
    code, err = run(capsys, "--source", link, *DEMO_QUIET)
    assert_user_error(code, err, f"is a link to {str(tmp_path / 'gone.mp4')!r}, which does not exist")


@pytest.mark.parametrize(
    "url, secrets",
    [
        ("rtsp://admin:p@ss@127.0.0.1:{port}/x", ["admin", "p@ss", "ss@"]),
        ("rtsp://admin:pa/ss@127.0.0.1:{port}/x", ["admin", "pa/ss", "ss@"]),
        ("http://127.0.0.1:{port}/x.mp4?token=S3CRET&size=2&api_key=K3Y", ["S3CRET", "K3Y"]),
    ],
    ids=["at-sign", "slash", "query"],
)
def test_secrets_in_urls_are_never_printed(url, secrets):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A real process: ffmpeg's and OpenCV's own messages go to the same stderr and count too.
    done = subprocess.run([sys.executable, "-m", "livecam", "--source", url.format(port=port), "--no-display"],
                          capture_output=True, text=True, timeout=120, env=ENV)  # fmt: skip
    assert done.returncode == 2 and "could not be opened" in done.stderr
    for secret in secrets:
        assert secret not in done.stderr + done.stdout
