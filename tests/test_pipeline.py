"""Tests for livecam.viewer.pipeline and its window front-end: runs over fake sources, windows and recorders (tests/fakes.py)."""

from __future__ import annotations

import threading
import time

import imageio_ffmpeg
import keras
import numpy as np
import pytest

from fakes import (
    AnotherProgramWritesThenDiskFills,
    CountingWindow,
    DiskFillsUp,
    DiskFull,
    FailsMidRun,
    FakeDevice,
    FakeSource,
    KeepPictures,
    ListRecorder,
    PausingUser,
    PressesAtOnce,
    PressesOnFirstPicture,
    ScriptedWindow,
    SilentCamera,
    SpyRenderer,
    StepWindow,
)
from helpers import video_info
from livecam.engine.core import CamEngine
from livecam.engine.worker import EngineWorker
from livecam.render import Renderer
from livecam.sources import LiveSource
from livecam.viewer.pipeline import Options, Pipeline
from livecam.viewer.recorder import VideoWriter

SIZE = 32  # the tiny model's input, and the fake frames' size: (32, 32)


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


def test_a_recording_that_fails_is_listed_and_told_where_it_was_saved(nan_for_dark_frames, tmp_path):
    path = tmp_path / "out.mp4"
    recorder = AnotherProgramWritesThenDiskFills(path, fps=10, full_after=12)
    logged: list[str] = []
    pipeline = Pipeline(
        FakeSource([bright(i) for i in range(40)]),
        nan_for_dark_frames,
        Renderer(),
        Options(batch=4),
        recorder=recorder,
        log=logged.append,
    )
    stats = pipeline.run()

    saved = tmp_path / "out-2.mp4"
    assert path.read_bytes() == b"another program's file"
    assert f"{saved} keeps the first 20 frames" in stats.recording_error
    assert stats.recordings == [str(saved)], "the list names the file the recording is in, not the other program's"
    assert any(f"this recording was saved as {saved}" in line for line in logged)
    assert imageio_ffmpeg.count_frames_and_secs(str(saved))[0] == 20


def test_a_recording_without_frames_is_not_said_to_be_saved(nan_for_dark_frames, tmp_path):
    path = tmp_path / "out.mp4"
    logged: list[str] = []
    recorder = VideoWriter(path, fps=10)
    pipeline = Pipeline(
        SilentCamera(), nan_for_dark_frames, Renderer(), Options(), window=PressesAtOnce(), recorder=recorder, log=logged.append
    )
    stats = pipeline.run()

    assert not path.exists() and recorder.saved_path is None
    assert stats.recordings == [] and stats.recording_error is None, "the CLI prints 'saved' for what is listed"
    assert logged == [f"livecam: no frame was recorded, so {path} was not written"]


def test_r_twice_before_a_frame_came_says_that_nothing_was_written(nan_for_dark_frames, tmp_path):
    path = tmp_path / "out.mp4"
    logged: list[str] = []
    pipeline = Pipeline(
        SilentCamera(), nan_for_dark_frames, Renderer(), Options(output=path), window=PressesAtOnce("rr"), log=logged.append
    )
    stats = pipeline.run()

    assert list(tmp_path.iterdir()) == [] and stats.recordings == []
    assert logged == [
        f"livecam: recording to {path.resolve()}",
        f"livecam: recording stopped before its first frame; {path} was not written",
    ]


def test_messages_escape_what_a_terminal_would_run(nan_for_dark_frames, tmp_path, capsys):
    path = tmp_path / "\x1b]0;owned\x07.mp4"
    pipeline = Pipeline(SilentCamera(), nan_for_dark_frames, Renderer(), Options(output=path), window=PressesAtOnce("rr"))
    pipeline.run()
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b]0;owned\\x07.mp4 was not written" in err


# ---------------------------------------------------------------------- the engine worker and the renderer's keys


def numbered(i: int) -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), 200, np.uint8)
    image[0, 0] = i  # the frame's number, in a pixel that alpha 0 leaves alone
    return image


@pytest.mark.parametrize("batch, every", [(1, 1), (4, 1), (3, 2)])
def test_file_mode_keeps_every_frame_in_order(nan_for_dark_frames, tmp_path, batch, every):
    frames = [numbered(i) for i in range(23)]
    recorder = ListRecorder(tmp_path / "out.mp4")
    renderer = SpyRenderer(alpha=0.0, hud=False)
    pipeline = Pipeline(FakeSource(frames), nan_for_dark_frames, renderer, Options(batch=batch, every=every), recorder=recorder)
    stats = pipeline.run()
    assert stats.frames == len(frames) and stats.traces == 1
    assert [int(image[0, 0, 0]) for image in recorder.images] == list(range(len(frames)))
    # A map reused for --every N frames keeps its number: the renderer folds it in once.
    assert [map_id for _, map_id in renderer.keys] == [1 + i // every for i in range(len(frames))]
    assert {explains for explains, _ in renderer.keys} == {
        ("gradcam", None, 0, -1)
    }  # (method, lock, picture, contrast): one video


def test_a_shared_worker_batches_the_files_frames_and_stays_open(nan_for_dark_frames):
    frames = [bright(i) for i in range(12)]
    renderer = SpyRenderer(hud=False)
    with EngineWorker(nan_for_dark_frames, max_batch=4, max_wait_ms=60_000) as worker:
        options = Options(batch=4, class_id=2)
        stats = Pipeline(FakeSource(frames), nan_for_dark_frames, renderer, options, worker=worker).run()
        assert not worker.closed
        done = worker.snapshot()
        assert all(job.result(timeout=60) for job in [worker.submit(f) for f in frames[:4]])  # still serving others
    assert stats.frames == 12
    assert (done.frames, done.batch_sizes) == (12, {4: 3})
    assert {explains for explains, _ in renderer.keys} == {("gradcam", 2, 0, -1)}  # the locked class, explicitly


def test_an_engine_error_ends_the_run_with_that_error(nan_for_dark_frames):
    class Broken:
        def __getattr__(self, name):
            return getattr(nan_for_dark_frames, name)

        def __call__(self, frames, class_id=None, *, method=None):
            raise RuntimeError("the model fell over")

    source = FakeSource([bright(i) for i in range(8)])
    with pytest.raises(RuntimeError, match="the model fell over"):
        Pipeline(source, Broken(), Renderer(), Options(batch=2)).run()
    assert source.closed


# ---------------------------------------------------------------------- image folders in a window


def step_pipeline(engine, window, n: int = 5, delay_s: float | None = None) -> Pipeline:
    frames = [numbered(i) for i in range(n)]
    options = Options(batch=2, step_images=True, delay_s=delay_s)
    return Pipeline(FakeSource(frames), engine, Renderer(alpha=0.0, hud="none"), options, window=window, log=lambda text: None)


def test_pictures_step_forward_and_back_with_keys(nan_for_dark_frames):
    window = StepWindow("npnn")  # then q
    step_pipeline(nan_for_dark_frames, window).run()
    assert window.shown == [0, 1, 0, 1, 2]


def test_a_picture_stays_until_a_key(nan_for_dark_frames):
    window = StepWindow(quit_when_done=False)
    pipeline = step_pipeline(nan_for_dark_frames, window)
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while not window.shown and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # a while with no key: the first picture stays
    assert window.shown == [0]
    window.release.set()
    runner.join(timeout=60)
    assert not runner.is_alive()


def test_with_a_delay_every_picture_is_shown_in_turn(nan_for_dark_frames):
    window = StepWindow(quit_when_done=False)
    step_pipeline(nan_for_dark_frames, window, delay_s=0.02).run()  # ends by itself after the last picture
    assert window.shown == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------------- the HUD's rates are this run's


def test_file_mode_hud_shows_no_burst_rates_and_no_queueing_latency(nan_for_dark_frames, tmp_path):
    # Batches of 8 rows finish together: a rate over the last rows would read about 10^5 fps.
    frames = [numbered(i) for i in range(23)]
    renderer = SpyRenderer(alpha=0.0, hud=False)
    Pipeline(FakeSource(frames), nan_for_dark_frames, renderer, Options(batch=8), recorder=ListRecorder(tmp_path / "o.mp4")).run()
    huds = [hud for hud in renderer.huds if hud is not None]
    assert len(huds) == len(frames)
    assert all(hud.latency_ms is None for hud in huds)  # read ahead and queued: not a delay anyone sees
    # The rate is the average since the first map, shown once 0.5 s have passed: never above 22 maps / 0.5 s.
    assert all(hud.engine_fps is None or 0 < hud.engine_fps <= 22 / 0.5 for hud in huds), [h.engine_fps for h in huds]


# ---------------------------------------------------------------------- smoothing never joins unrelated pictures


def _folder_pictures(tiny_engine, paths, tmp_path, every: int = 1):
    from livecam.sources import ImageFolderSource

    output = KeepPictures()
    renderer = Renderer(hud="label")  # the default smoothing
    Pipeline(ImageFolderSource(paths, where=str(tmp_path)), tiny_engine, renderer, Options(every=every), outputs=[output]).run()
    return output.processed


def test_every_n_never_gives_a_picture_of_a_folder_another_pictures_map(tiny_engine, tmp_path):
    """--every N reuses a map between related frames (a video's); each picture of a folder gets its own."""
    import cv2

    rng = np.random.default_rng(3)
    paths = [tmp_path / f"{i}.png" for i in range(4)]
    for path in paths:
        cv2.imwrite(str(path), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    every = _folder_pictures(tiny_engine, paths, tmp_path, every=3)
    each = _folder_pictures(tiny_engine, paths, tmp_path)
    assert [p.frame.name for p in every] == [p.frame.name for p in each]
    for with_every, alone in zip(every, each):
        np.testing.assert_allclose(with_every.result.cam, alone.result.cam, atol=1e-5)
        np.testing.assert_array_equal(with_every.result.class_ids, alone.result.class_ids)


def test_each_picture_of_a_folder_starts_its_smoothing_afresh(tiny_engine, tmp_path):
    import cv2

    from livecam.render import overlay

    a = np.zeros((96, 128, 3), np.uint8)
    a[8:40, 8:40] = 255  # a bright square top left ...
    b = np.full((96, 128, 3), 60, np.uint8)
    b[56:90, 80:120] = (0, 200, 255)  # ... and an orange one bottom right
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path, image in zip(paths, (a, b)):
        cv2.imwrite(str(path), image)

    in_folder = _folder_pictures(tiny_engine, paths, tmp_path)[1]
    alone = _folder_pictures(tiny_engine, paths[1:], tmp_path)[0]

    assert in_folder.frame.unrelated and in_folder.frame.name == "b.png"
    np.testing.assert_allclose(in_folder.result.cam, alone.result.cam, atol=1e-5)
    assert np.abs(in_folder.picture.astype(int) - alone.picture).max() <= 1, "b.png's overlay carries a.png's map"
    # The picture is the map of its own results line, drawn without any smoothing.
    from_row = overlay(in_folder.frame.image_bgr, in_folder.result, class_names=tiny_engine.class_names, hud="label")
    assert np.abs(in_folder.picture.astype(int) - from_row).max() <= 1


def test_a_cropping_engine_puts_the_map_on_the_central_crop_of_each_frame(tiny_engine):
    from livecam.viewer.outputs import result_record

    crop = CamEngine(tiny_engine.model, fit="crop")
    frames = [np.random.default_rng(i).integers(0, 256, (48, 80, 3), dtype=np.uint8) for i in range(3)]
    output = KeepPictures()
    Pipeline(FakeSource(frames), crop, Renderer(hud="none", smooth=0), Options(batch=2), outputs=[output]).run()
    for raw, processed in zip(frames, output.processed):
        assert processed.result.box == pytest.approx((16 / 80, 0.0, 64 / 80, 1.0))  # on the frame, not the prepared square
        np.testing.assert_array_equal(processed.picture[:, :16], raw[:, :16])  # no heat outside the crop
        np.testing.assert_array_equal(processed.picture[:, 64:], raw[:, 64:])
        assert np.any(processed.picture[:, 16:64] != raw[:, 16:64])
        record = result_record(processed, crop.class_names, "fake")
        assert 16 <= record["hot_x"] <= 64  # the hottest point, on the crop


# ---------------------------------------------------------------------- the padlock and full screen have one home


def test_the_padlock_is_drawn_from_the_frames_own_lock_not_the_lock_now(nan_for_dark_frames):
    # 1 locks the top class on the first picture: the frames in flight, and those reusing the
    # map before the lock (--every 4), were explained unlocked and must be drawn so.
    renderer = SpyRenderer(smooth=0)
    pipeline = Pipeline(
        FakeSource([bright(i) for i in range(20)]),
        nan_for_dark_frames,
        renderer,
        Options(every=4),
        window=PressesOnFirstPicture("1"),
        log=lambda text: None,
    )
    pipeline.run()
    assert pipeline.state.class_id is not None
    locks = [lock for _, lock in renderer.drawn]
    assert None in locks and pipeline.state.class_id in locks, "some frames were explained before the lock, some after"
    assert all(locked == (lock is not None) for locked, lock in renderer.drawn), renderer.drawn


def test_fullscreen_from_the_start_then_f_gives_the_window_back_its_size(xvfb_display, nan_for_dark_frames):
    import cv2

    from livecam.viewer.sinks import WindowSink

    class PressesF(WindowSink):
        """The real window; its user presses f on the first picture and q on the second."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.keys, self.modes = [ord("f"), ord("q")], []

        def show(self, image_bgr):
            super().show(image_bgr)
            self.poll(10)
            self.modes.append(cv2.getWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN))
            return self.keys.pop(0) if self.keys else ord("q")

    window = PressesF("livecam fullscreen then f", fullscreen=True)
    pipeline = Pipeline(
        FakeSource([bright(i) for i in range(6)]),
        nan_for_dark_frames,
        Renderer(),
        Options(),
        window=window,
        log=lambda text: None,
    )
    pipeline.run()
    assert window.modes[:2] == [cv2.WINDOW_FULLSCREEN, cv2.WINDOW_NORMAL], "the first f must leave full screen"
    assert not pipeline.state.fullscreen


# ---------------------------------------------------------------------- a paused live source


def test_a_paused_camera_drops_nothing_and_shows_a_fresh_frame_after_the_pause(nan_for_dark_frames):
    captured_at: dict[int, float] = {}

    def counted(i: int, size) -> np.ndarray:
        captured_at[i] = time.monotonic()
        image = np.full((size[1], size[0], 3), 200, np.uint8)
        image[0, 0, :2] = (i % 256, i // 256 % 256)  # the capture number, in a pixel that alpha 0 leaves alone
        return image

    device = FakeDevice(counted, size=(SIZE, SIZE))
    source = LiveSource(device.open, description="fake camera")
    window = PausingUser(source, device, captured_at)
    Pipeline(source, nan_for_dark_frames, Renderer(alpha=0.0, hud="none"), Options(), window=window, log=lambda text: None).run()

    assert window.stage == "resumed" and len(window.shown) > window.shown_before_resume
    assert window.dropped_while_paused == 0, "a pause is not a drop"
    first_after = window.shown[window.shown_before_resume]
    assert captured_at[first_after] >= window.resumed_s, "the first picture after the pause was captured after it"


# ---------------------------------------------------------------------- faults in a window: an unplugged camera, a full disk, keys while paused


def gradients(n: int) -> list[np.ndarray]:
    """``n`` 32x32 frames from ``gradient``."""
    return [gradient(i, (32, 32)) for i in range(n)]


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
    renderer = SpyRenderer()
    pipeline = Pipeline(
        source,
        tiny_engine,
        renderer,
        Options(max_frames=60, output=out),
        window=CountingWindow(),
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
def test_with_a_window_the_viewer_keeps_running_when_the_disk_fills(tiny_engine, tmp_path):
    out = tmp_path / "full.mp4"
    window = CountingWindow()
    messages: list[str] = []
    pipeline = Pipeline(
        FakeSource(gradients(20), fps=15.0),
        tiny_engine,
        Renderer(),
        Options(batch=4, output=out),
        window=window,
        recorder=DiskFull(VideoWriter(out, fps=15.0), n=6),
        log=messages.append,
    )
    stats = pipeline.run()
    assert stats.frames == 20 and window.shown == 20, "the viewer went on to the end of the input"
    assert "No space left" in stats.recording_error
    assert any("recording stopped" in m for m in messages)
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 6, "what was written stays playable"


@pytest.mark.slow
def test_keys_while_paused_recompute_the_frozen_frame(tiny_engine):
    calls = []

    class Spy:
        def __getattr__(self, name):
            return getattr(tiny_engine, name)

        def __call__(self, frames, class_id=None, *, method=None):
            calls.append((len(frames) if frames.ndim == 4 else 1, np.asarray(class_id).tolist(), method))
            return tiny_engine(frames, class_id=class_id, method=method)

    source = FakeSource(gradients(50), fps=15.0)
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


# ---------------------------------------------------------------------- a box drawn with the mouse


def test_a_box_drawn_in_the_window_is_read_out_on_the_frames_after_it(tiny_engine):
    """The window's user right-drags a box on the first picture: the frames after it carry its readout, drawn with the box."""
    from fakes import CountingWindow
    from livecam.viewer.outputs import result_record

    class DrawsABox(CountingWindow):
        """The user draws once the first picture is on the screen (a person cannot draw on none)."""

        def __init__(self) -> None:
            super().__init__()
            self.boxes = [(4, 6, 12, 10)]

        def take_box(self):
            return self.boxes.pop(0) if self.boxes and self.shown else None

    class WaitsForTheBox(FakeSource):
        """The frames after the first come once the box is drawn: on a busy machine the file could end first."""

        def read(self, timeout_s=None):
            deadline = time.monotonic() + 30
            while self._next >= 1 and pipeline.state.box is None and time.monotonic() < deadline:
                time.sleep(0.01)
            return super().read(timeout_s)

    output = KeepPictures()
    frames = [bright(i) for i in range(12)]
    pipeline = Pipeline(
        WaitsForTheBox(frames), tiny_engine, Renderer(hud="none", smooth=0), Options(), window=DrawsABox(), outputs=[output]
    )
    pipeline.run()
    assert pipeline.state.box is not None and pipeline.state.box.pixels((SIZE, SIZE)) == (4, 6, 12, 10)
    boxed = [p for p in output.processed if p.region is not None]
    assert boxed and output.processed[0].region is None  # drawn on the first picture, read out after it
    for processed in boxed:
        assert processed.region.box_xywh == (4, 6, 12, 10)
        assert processed.region.energy is None or 0.0 <= processed.region.energy <= 1.0
    assert result_record(boxed[-1], tiny_engine.class_names, "fake")["box_xywh"] == [4, 6, 12, 10]
