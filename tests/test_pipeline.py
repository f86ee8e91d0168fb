"""Tests for livecam.pipeline: the meters, the display mailbox, free names, and runs over fake sources."""

from __future__ import annotations

import threading
import time

import imageio_ffmpeg
import keras
import numpy as np
import pytest

from livecam.engine import CamEngine
from livecam.pipeline import Options, Pipeline, RateMeter, _END, _Slot
from livecam.render import Renderer
from livecam.sinks import SinkError, VideoWriter
from livecam.sources import Frame

SIZE = 32  # the tiny model's input, and the fake frames' size: (32, 32)


# ---------------------------------------------------------------------- RateMeter


def test_rate_meter_is_events_minus_one_over_the_time_spanned():
    meter = RateMeter(window=30)
    assert meter.fps is None
    meter.tick(10.0)
    assert meter.fps is None  # one event spans no time
    for t in (10.5, 11.0, 12.0):
        meter.tick(t)
    assert meter.fps == pytest.approx(3 / 2.0)


def test_rate_meter_forgets_events_outside_its_window():
    meter = RateMeter(window=3)
    for t in (0.0, 100.0, 101.0, 101.5):  # the slow start falls out of the window
        meter.tick(t)
    assert meter.fps == pytest.approx(2 / 1.5)


def test_rate_meter_without_elapsed_time_has_no_rate():
    meter = RateMeter()
    meter.tick(5.0)
    meter.tick(5.0)
    assert meter.fps is None


# ---------------------------------------------------------------------- _Slot


def test_slot_latest_wins_and_each_item_is_taken_once():
    slot = _Slot()
    assert slot.get(timeout=0.01) is None
    slot.put("a")
    slot.put("b")
    assert slot.get(timeout=0.01) == "b"
    assert slot.get(timeout=0.01) is None


def test_slot_never_overwrites_the_end():
    slot = _Slot()
    slot.put("a")
    slot.put(_END)
    slot.put("late")
    assert slot.get(timeout=0.01) is _END


def test_slot_wakes_a_waiting_reader():
    slot = _Slot()
    got = []
    reader = threading.Thread(target=lambda: got.append(slot.get(timeout=30)))
    reader.start()
    slot.put("frame")
    reader.join(timeout=30)
    assert got == ["frame"]


# ---------------------------------------------------------------------- runs over a fake source


class SqrtBelowGrey(keras.layers.Layer):
    """sqrt(x / 255 - 0.5): NaN for values below mid-grey."""

    def call(self, x):
        return keras.ops.sqrt(x / 255.0 - 0.5)


@pytest.fixture(scope="module")
def nan_for_dark_frames() -> CamEngine:
    """A tiny engine whose model outputs NaN for dark frames and finite numbers for bright ones.

    The NaN comes from the frame's mean brightness in a branch beside the convolution: a NaN fed
    into a Conv2D+ReLU is squashed to 0 by TensorFlow's fused graph kernel, so it would never
    reach the output there.
    """
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="target")(x)
    features = keras.layers.GlobalAveragePooling2D()(x)
    brightness = SqrtBelowGrey()(keras.layers.GlobalAveragePooling2D()(inputs))
    x = keras.layers.Concatenate()([features, brightness])
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return CamEngine(keras.Model(inputs, outputs))


class FakeSource:
    """A file-like FrameSource over a list of frames."""

    live = False
    fps = 10.0
    dropped = 0
    corrupt = 0
    description = "fake frames"

    def __init__(self, frames: list[np.ndarray]):
        self.frames = frames
        self.size = (frames[0].shape[1], frames[0].shape[0])
        self.frame_count = len(frames)
        self.warnings: list[str] = []
        self.closed = 0
        self._next = 0

    @property
    def status(self) -> str:
        return "ended" if self.closed or self._next == len(self.frames) else "ok"

    def read(self, timeout_s: float | None = None) -> Frame | None:
        if self.closed or self._next == len(self.frames):
            return None
        frame = Frame(self.frames[self._next], self._next, time.monotonic())
        self._next += 1
        return frame

    def close(self) -> None:
        self.closed += 1


class ListRecorder:
    """A recorder that keeps what it is given."""

    def __init__(self, path):
        self.path = path
        self.images: list[np.ndarray] = []
        self.closed = False

    def write(self, frame_bgr: np.ndarray, timestamp_s: float | None = None) -> None:
        self.images.append(frame_bgr.copy())

    def close(self) -> None:
        self.closed = True


def dark(i: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), 20 + i, np.uint8)


def bright(i: int) -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), 230, np.uint8)
    image[:, i % SIZE] = 250  # a little structure
    return image


@pytest.mark.parametrize("batch", [1, 4])
def test_non_finite_model_output_is_counted_and_shown_without_a_map(nan_for_dark_frames, tmp_path, batch):
    pattern = "dbddbbdbdd"
    frames = [dark(i) if c == "d" else bright(i) for i, c in enumerate(pattern)]
    source = FakeSource(frames)
    recorder = ListRecorder(tmp_path / "out.mp4")
    renderer = Renderer(alpha=0.5, hud=False, smooth=0)
    pipeline = Pipeline(source, nan_for_dark_frames, renderer, Options(batch=batch), recorder=recorder)
    stats = pipeline.run()

    assert stats.frames == len(frames)
    assert stats.non_finite == pattern.count("d")
    assert stats.traces == 1
    assert source.closed and recorder.closed
    assert len(recorder.images) == len(frames)
    for c, raw, shown in zip(pattern, frames, recorder.images):
        if c == "d":  # no map: the frame as it came
            np.testing.assert_array_equal(shown, raw)
        else:  # a finite row in the same batch still gets its map
            assert np.abs(shown.astype(int) - raw).mean() > 20


class DiskFillsUp(VideoWriter):
    """A real writer whose disk fills up after ``full_after`` frames (it stops at its next space check)."""

    def __init__(self, *args, full_after: int, **kwargs):
        super().__init__(*args, min_free_bytes=0, **kwargs)
        self._full_after = full_after

    def write(self, frame_bgr, timestamp_s=None):
        if self.frames_received == self._full_after:
            self.min_free_bytes = 2**62
        super().write(frame_bgr, timestamp_s)


class FailsMidRun:
    """A recorder that raises SinkError at frame ``fail_at`` and leaves closing the file to its owner."""

    def __init__(self, writer: VideoWriter, fail_at: int):
        self.writer, self.path, self.fail_at, self.writes = writer, writer.path, fail_at, 0

    def write(self, frame_bgr, timestamp_s=None):
        if self.writes == self.fail_at:
            raise SinkError(f"Writing {self.path} failed: the encoder went away.")
        self.writer.write(frame_bgr, timestamp_s)
        self.writes += 1

    def close(self):
        self.writer.close()


@pytest.mark.parametrize("failure", ["disk full", "write raises"])
def test_headless_run_stops_when_recording_fails_and_keeps_a_playable_file(nan_for_dark_frames, tmp_path, failure):
    path = tmp_path / "out.mp4"
    frames = [bright(i) for i in range(60)]
    if failure == "disk full":  # fps 10: the free space is checked every 10 frames, so 20 are kept
        recorder, kept = DiskFillsUp(path, fps=10, full_after=12), 20
    else:
        recorder, kept = FailsMidRun(VideoWriter(path, fps=10), fail_at=17), 17
    source = FakeSource(frames)
    pipeline = Pipeline(source, nan_for_dark_frames, Renderer(), Options(batch=4), recorder=recorder, log=lambda text: None)
    stats = pipeline.run()

    assert stats.recording_error is not None
    assert ("left on the disk" if failure == "disk full" else "the encoder went away") in stats.recording_error
    assert stats.frames < len(frames)  # the recording was the whole job: the run stopped
    assert source.closed
    assert imageio_ffmpeg.count_frames_and_secs(str(path))[0] == kept
