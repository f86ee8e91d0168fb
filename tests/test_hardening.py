"""Faults lose nothing: unplugged cameras, corrupt input, a full disk in a window, unsafe models, subprocesses."""

from __future__ import annotations

import subprocess
import threading
import time

import imageio_ffmpeg
import keras
import numpy as np
import pytest

from helpers import FakeDevice, corrupt_avi_frames
from livecam import sinks
from livecam.cli import main
from livecam.pipeline import Options, Pipeline
from livecam.render import Renderer
from livecam.sinks import SinkError, VideoWriter
from livecam.sources import Frame, LiveSource


class FakeWindow:
    """Stands in for the OpenCV window: shows nothing, presses no key, is never closed."""

    closed = False

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

    monkeypatch.setattr(sinks.subprocess, "Popen", spy)
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
