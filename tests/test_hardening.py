"""Faults lose nothing: unplugged cameras, corrupt input, a full disk in a window, unsafe models, subprocesses."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import imageio_ffmpeg
import keras
import numpy as np
import pytest

from helpers import VFR_TIMES, FakeDevice, corrupt_avi_frames, read_frames, vfr_video, video_info
from livecam.cli import main
from livecam.render import Renderer
from livecam.sources import Frame, LiveSource
from livecam.viewer import encoders, sinks
from livecam.viewer.pipeline import Options, Pipeline
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.safe_files import SinkError


class FakeWindow:
    """Stands in for the OpenCV window: shows nothing, presses no key, is never closed."""

    closed = False
    fullscreen = False

    def set_fullscreen(self, on: bool) -> None:
        self.fullscreen = on

    def __init__(self) -> None:
        self.shown = 0

    def show(self, image_bgr: np.ndarray) -> int:
        self.shown += 1
        return -1

    def poll(self, wait_ms: int = 1) -> int:
        time.sleep(wait_ms / 1000)
        return -1

    def close(self) -> None:
        pass


class StatusSpy(Renderer):
    """A renderer that remembers the HUD status of every frame it draws."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[str] = []

    def views(self, frame_bgr, cam, hud, **keys):
        self.statuses.append(hud.status if hud is not None else "")
        return super().views(frame_bgr, cam, hud, **keys)


def gradient(i: int, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, :, 1] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    frame[:, :, 2] = (i * 7) % 256
    return frame


@pytest.mark.slow
def test_unplugged_camera_reconnects_says_so_and_the_recording_goes_on(tiny_engine, tmp_path):
    device = FakeDevice(gradient, size=(64, 48))
    source = LiveSource(device.open, fps=30.0, size=(64, 48), backoff_s=(0.05, 0.2), description="fake camera")
    out = tmp_path / "live.mp4"
    renderer = StatusSpy()
    pipeline = Pipeline(
        source,
        tiny_engine,
        renderer,
        Options(max_frames=60, output=out),
        window=FakeWindow(),
        recorder=VideoWriter(out, fps=30.0, live=True),
        log=lambda text: None,
    )

    def unplug_for_a_while():
        # Bounded, and a daemon: if the run fails before 15 frames, this must not keep pytest alive.
        deadline = time.monotonic() + 60
        while pipeline.frames_out < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        device.plugged.clear()
        time.sleep(0.8)
        device.plugged.set()

    unplugger = threading.Thread(target=unplug_for_a_while, daemon=True)
    unplugger.start()
    stats = pipeline.run()
    unplugger.join(timeout=60)

    assert "reconnecting" in renderer.statuses, "the HUD must say so while the camera is away"
    assert renderer.statuses[-1] == ""  # and stop saying it once frames flow again
    assert device.opens >= 2, "the camera must have been reopened"
    assert stats.frames >= 60
    # The recording follows the clock: it goes on after the reconnect, the time away included.
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert seconds >= 0.8 and frames >= 0.8 * 30


@pytest.mark.slow
def test_corrupt_frames_in_a_video_are_skipped_and_counted_by_the_cli(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "clip.avi", 24)
    corrupt_avi_frames(clip, {5, 6, 15})
    out = tmp_path / "out.mp4"
    stats = tmp_path / "stats.json"
    code = main(["--source", str(clip), "--model", "mobilenet_v2", "--weights", "none", "--input-size", "64",
                 "--no-display", "--quiet", "--output", str(out), "--stats-json", str(stats)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    import json

    report = json.loads(stats.read_text())
    assert report["corrupt"] == 3 and report["frames"] == 21
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 21


class _ListSource:
    live = False
    fps = 15.0
    variable_frame_rate = False
    mixed_sizes = False
    size = (32, 32)
    dropped = 0
    corrupt = 0
    description = "list"

    def __init__(self, n: int):
        self.frames = [Frame(gradient(i, (32, 32)), i, time.monotonic()) for i in range(n)]
        self.frame_count = n
        self.status = "ok"

    def read(self, timeout_s=None):
        if not self.frames:
            self.status = "ended"
            return None
        return self.frames.pop(0)

    def close(self):
        pass


class _DiskFull:
    """A recorder whose disk fills up after ``n`` frames."""

    def __init__(self, writer: VideoWriter, n: int):
        self.writer, self.n, self.path = writer, n, writer.path

    def write(self, frame_bgr, timestamp_s=None):
        if self.writer.frames_received >= self.n:
            self.writer.close()
            raise SinkError(f"No space left on device while writing {self.path}")
        self.writer.write(frame_bgr, timestamp_s)

    def close(self):
        self.writer.close()

    def __getattr__(self, name):  # the rest of the recorder (saved_path, frames_received, new_warnings) is the writer's
        return getattr(self.writer, name)


@pytest.mark.slow
def test_with_a_window_the_viewer_keeps_running_when_the_disk_fills(tiny_engine, tmp_path):
    out = tmp_path / "full.mp4"
    window = FakeWindow()
    messages: list[str] = []
    pipeline = Pipeline(
        _ListSource(20),
        tiny_engine,
        Renderer(),
        Options(batch=4, output=out),
        window=window,
        recorder=_DiskFull(VideoWriter(out, fps=15.0), n=6),
        log=messages.append,
    )
    stats = pipeline.run()
    assert stats.frames == 20 and window.shown == 20, "the viewer went on to the end of the input"
    assert "No space left" in stats.recording_error
    assert any("recording stopped" in m for m in messages)
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 6, "what was written stays playable"


@pytest.mark.slow
def test_ffmpeg_is_started_with_an_argument_list_never_a_shell(tmp_path, monkeypatch):
    calls = []
    real_popen = subprocess.Popen

    def spy(args, *rest, **kwargs):
        calls.append((args, kwargs))
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(encoders.subprocess, "Popen", spy)
    with VideoWriter(tmp_path / "x.mp4", fps=10.0) as writer:
        writer.write(np.zeros((32, 32, 3), np.uint8))
    assert calls, "the writer must have started ffmpeg"
    for args, kwargs in calls:
        assert isinstance(args, list) and all(isinstance(a, str) for a in args)
        assert not kwargs.get("shell", False)


def _lambda_model(path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, name="feat")(x)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, out).save(path)
    return path


@pytest.mark.slow
def test_model_file_with_lambda_needs_unsafe_model_load(tmp_path, make_video, capsys):
    model = _lambda_model(tmp_path / "lambda.keras")
    clip = make_video(tmp_path / "clip.avi", 6)
    args = ["--source", str(clip), "--model", str(model), "--no-display", "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Lambda layer" in err and "--unsafe-model-load" in err
    assert main([*args, "--unsafe-model-load", "--max-frames", "3"]) == 0


@pytest.mark.slow
def test_weights_for_another_architecture_exit_2(tmp_path, make_video, capsys):
    other = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3))
    weights = tmp_path / "other.weights.h5"
    other.save_weights(weights)
    clip = make_video(tmp_path / "clip.avi", 4)
    code = main(["--source", str(clip), "--model", "efficientnet_b0", "--weights", str(weights), "--no-display", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("livecam: error: Weights file") and "does not fit efficientnet_b0" in err
    assert err.count("\n") == 1


class ScriptedWindow(FakeWindow):
    """A window whose user presses the given keys, one per shown or polled frame, then q.

    The user waits for the first picture: polls before it press nothing (on a busy machine the
    first frame can take longer than the display loop's wait).
    """

    def __init__(self, keys: str) -> None:
        super().__init__()
        self.keys = [ord(k) for k in keys]

    def _next(self) -> int:
        if self.shown == 0:
            return -1
        return self.keys.pop(0) if self.keys else ord("q")

    def show(self, image_bgr: np.ndarray) -> int:
        super().show(image_bgr)
        return self._next()

    def poll(self, wait_ms: int = 1) -> int:
        super().poll(wait_ms)
        return self._next()


@pytest.mark.slow
def test_keys_while_paused_recompute_the_frozen_frame(tiny_engine):
    calls = []

    class Spy:
        def __getattr__(self, name):
            return getattr(tiny_engine, name)

        def __call__(self, frames, class_id=None, *, method=None):
            calls.append((len(frames) if frames.ndim == 4 else 1, np.asarray(class_id).tolist(), method))
            return tiny_engine(frames, class_id=class_id, method=method)

    source = _ListSource(50)
    window = ScriptedWindow(" m2]")  # pause, next method, lock on the 2nd class, more opacity; then q
    renderer = Renderer(alpha=0.4)
    pipeline = Pipeline(source, Spy(), renderer, Options(batch=1), window=window, log=lambda text: None)
    pipeline.run()
    assert pipeline.state.paused
    assert pipeline.state.method == "gradcam++"
    assert pipeline.state.class_id is not None
    assert renderer.alpha == 0.5
    recomputed = [c for c in calls if c[2] == "gradcam++"]
    assert recomputed and recomputed[-1][1] == [pipeline.state.class_id], "the frozen frame was explained again"
    assert window.shown < 50, "nothing moved on while paused"


@pytest.mark.slow
def test_synth_sizes_too_small_to_draw_are_a_user_error(capsys):
    assert main(["--source", "synth:20x20", "--no-display", "--quiet"]) == 2
    assert capsys.readouterr().err == "livecam: error: Expected a synth size of at least 32x32. Received: 20x20\n"


@pytest.mark.slow
def test_labels_file_that_is_not_utf8_is_a_user_error(tmp_path):
    from livecam.models import load_labels

    path = tmp_path / "labels.txt"
    path.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"is not UTF-8 text"):
        load_labels(path)


# ---------------------------------------------------------------------- honest inputs and outputs (issue 12)

DEMO = ("--model", "demo", "--no-display")


def test_variable_frame_rate_video_keeps_its_timing_in_the_recording(tmp_path, make_video, capsys):
    clip = vfr_video(make_video, tmp_path / "vfr.mkv")
    out, stats_path = tmp_path / "out.mp4", tmp_path / "stats.json"
    code = main(
        ["--source", str(clip), *DEMO, "--quiet", "--alpha", "0", "--no-hud", "-o", str(out), "--stats-json", str(stats_path)]
    )
    assert code == 0, capsys.readouterr().err
    import json

    stats = json.loads(stats_path.read_text())
    assert (stats["frames"], stats["corrupt"]) == (60, 0)
    # 10 fps: the frame shown at output frame k is the last input frame whose time is <= k / 10.
    shown = [make_video.index_of(f.astype(np.uint8)) for f in read_frames(out)]
    expected = [max(i for i, t in enumerate(VFR_TIMES) if t <= k / 10 + 1e-6) for k in range(len(shown))]
    assert len(shown) == 176 and shown == expected  # 17.5 s and the last frame's 0.1 s


@pytest.mark.slow
def test_folder_of_mixed_sizes_records_at_the_most_common_size_or_size(tmp_path, make_image_folder, capsys):
    folder = make_image_folder(tmp_path / "mixed", 5, sizes=[(1, 1), (160, 120), (96, 64), (160, 120), (160, 120)])
    out = tmp_path / "out.mp4"
    assert main(["--source", str(folder), *DEMO, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "3 different sizes; a recording is 160x120" in err
    info = video_info(out)
    assert (info["size"], info["frames"]) == ((160, 120), 5)
    assert main(["--source", str(folder), *DEMO, "--quiet", "-o", str(tmp_path / "big.mp4"), "--size", "320x240"]) == 0
    assert video_info(tmp_path / "big.mp4")["size"] == (320, 240)


@pytest.mark.slow
def test_recordings_larger_than_players_accept_are_scaled_down_once(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "in.mp4", 4)
    out = tmp_path / "out.mp4"
    assert main(["--source", str(clip), *DEMO, "--quiet", "-o", str(out), "--size", "12000x9000"]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "instead of 12000x9000" in line]
    assert len(notes) == 1 and "does not play in browsers" in notes[0], err
    width, height = video_info(out)["size"]
    assert abs(width / height - 4 / 3) < 0.01
    assert -(-width // 16) * -(-height // 16) <= 36_864, "within H.264 level 5.2: 4096x2304 worth of macroblocks"


def test_writer_scales_frames_beyond_level_5_2(tmp_path, make_video):
    with VideoWriter(tmp_path / "out.mp4", fps=15, size=(12000, 9000)) as writer:
        writer.write(make_video.frame(0))
    assert writer.size == encoders.playable_size((12000, 9000)) and writer.size != (12000, 9000)
    assert writer.warnings == [f"Recording out.mp4 at {writer.size[0]}x{writer.size[1]} instead of 12000x9000: larger H.264 "
                               f"video does not play in browsers and most players."]  # fmt: skip
    assert encoders.playable_size((4096, 2304)) == (4096, 2304) and encoders.playable_size((16000, 200))[0] <= 8688


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
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A real process: ffmpeg's and OpenCV's own messages go to the same stderr and count too.
    done = subprocess.run([sys.executable, "-m", "livecam", "--source", url.format(port=port), "--no-display"],
                          capture_output=True, text=True, timeout=120, env=_env())  # fmt: skip
    assert done.returncode == 2 and "could not be opened" in done.stderr
    for secret in secrets:
        assert secret not in done.stderr + done.stdout


def test_redact():
    from livecam.errors import redact

    assert redact("rtsp://admin:p@ss@host:554/s") == "rtsp://***@host:554/s"
    assert redact("rtsp://admin:pa/ss@host/stream") == "rtsp://***@host/stream"
    assert (
        redact("see http://h/v.mp4?token=abc&w=2&X-Amz-Signature=f0 now")
        == "see http://h/v.mp4?token=***&w=2&X-Amz-Signature=*** now"
    )
    assert redact("rtsp://cam.local/live?channel=1") == "rtsp://cam.local/live?channel=1"
    assert redact("rtsp://admin:pa?ss@host:554/s?token=1") == "rtsp://***@host:554/s?token=***"
    assert redact("rtsp://admin:pa#ss@host") == "rtsp://***@host"
    assert redact("http://host/p?email=a@b.com") == "http://host/p?email=a@b.com"


def test_names_with_terminal_escape_codes_are_printed_escaped(tmp_path, make_video, capsys):
    clip = make_video(tmp_path / "evil\x1b[2J\x1b]0;pwned\x07.mp4", 3)
    out = tmp_path / "out\x1b[31m.mp4"
    assert main(["--source", str(clip), *DEMO, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "video evil\\x1b[2J\\x1b]0;pwned\\x07.mp4" in err and "saved " in err and "out\\x1b[31m.mp4" in err
    assert main(["--source", str(tmp_path / "missing\x1b[2J.mp4"), *DEMO]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "missing\\x1b[2J.mp4" in err


def _env() -> dict:
    import os

    root = os.path.dirname(os.path.dirname(sinks.__file__))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


@pytest.mark.parametrize(
    ("size", "side_by_side", "expected"),
    [(None, False, (160, 120)), ((128, 96), True, (256, 96))],
    ids=["the folder's most common size, not the first recorded image's", "--size, twice as wide side by side"],
)
def test_r_key_records_a_folder_of_mixed_sizes_at_its_chosen_size(
    tiny_engine, tmp_path, make_image_folder, size, side_by_side, expected
):
    from livecam.sources import open_source

    sizes = [(160, 120), (1, 1), (96, 64), (160, 120), (160, 120), (160, 120)]
    source = open_source(make_image_folder(tmp_path / "mixed", 6, sizes=sizes))
    messages: list[str] = []
    # r on the first frame shown, then keys that do nothing until the folder ends.
    window = ScriptedWindow("r" + "\x00" * 20)
    out = tmp_path / "rec.mp4"
    options = Options(batch=1, output=out, size=size)
    pipeline = Pipeline(source, tiny_engine, Renderer(side_by_side=side_by_side), options, window=window, log=messages.append)
    stats = pipeline.run()
    assert stats.recordings == [str(out)] and stats.recording_error is None, messages
    info = video_info(out)
    assert info["size"] == expected
    assert info["frames"] >= 3
