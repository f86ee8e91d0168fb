"""The one loop: source -> engine -> renderer -> sinks, in overlapping stages.

Stages are threads joined by bounded queues (OpenCV, TensorFlow and the ffmpeg pipe release the
GIL, so they really overlap):

    reader (files only) --q--> engine stage --q--> render + record --mailbox--> display (main thread)
                                   |   ^
                          submit   v   | one row each
                                EngineWorker (the one thread that runs the engine)

Live sources already run their own capture thread where the latest frame wins, so the engine
stage reads them directly: a frame is never queued behind another, and latency stays at about
one engine step. File sources get a reader thread that decodes and resizes ahead, and the engine
stage keeps up to two batches at the worker; every frame is kept, in order.

The window's keys become commands for this viewer's ``Controller`` (``livecam.viewer.control``), the
same commands a browser sends; the pipeline only carries out their effects.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from livecam.viewer.control import MESSAGE_S, Action, Controller, Outcome, ViewerState
from livecam.engine.core import CamEngine, CamResult
from livecam.errors import shown
from livecam.viewer.keys import action_for_key
from livecam.mailbox import Mailbox
from livecam.viewer.outputs import Processed
from livecam.meters import RateMeter, StageTimes
from livecam.render import HudInfo, Renderer, Views
from livecam.viewer.recorder import VideoWriter
from livecam.viewer.sinks import SinkError, SnapshotWriter, free_name, write_file_atomic
from livecam.sources import Frame, FrameSource
from livecam.engine.worker import EngineWorker, Job

_END = object()  # sentinel: the source has ended
_POLL_S = 0.05  # how long a blocked stage waits before it looks at the stop flag again
_HISTORY = 64  # image folders in a window: how many pictures p / Left can go back
_BATCH_WAIT_MS = 5.0  # files: how long a frame waits for the rest of its batch (the reader is ahead, so rarely)


# ---------------------------------------------------------------------- what a run did


@dataclass
class Stats:
    """What a run did; written by ``--stats-json``."""

    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    dropped: int = 0
    corrupt: int = 0
    non_finite: int = 0
    traces: int = 0
    recording_error: str | None = None
    output_errors: list[str] = field(default_factory=list)  # per-frame outputs and --stats-json that stopped (a full disk)
    recordings: list[str] = field(default_factory=list)
    runtime: dict[str, str] = field(default_factory=dict)  # {"name": "openvino", "reason": "..."}

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Options:
    """How a run behaves (the CLI fills this from its flags)."""

    batch: int = 1
    every: int = 1
    max_frames: int | None = None
    output: Path | None = None  # where the r key starts recording (a free name next to it)
    size: tuple[int, int] | None = None  # --size: (width, height) of recordings; None: see recording_size
    snapshot_dir: Path = Path(".")
    stats_json: Path | None = None
    progress: bool = False
    class_id: int | None = None
    step_images: bool = False  # a window on an image folder: each picture stays until a key (or delay_s)
    delay_s: float | None = None  # with step_images: go on to the next picture after this long


@dataclass
class _Item:
    """One frame on its way through the stages."""

    frame: Frame
    prepared: np.ndarray  # the frame at the model's input size
    job: Job | None = None  # its map on its way; None: it reuses the map before it (--every N)
    result: CamResult | None = None  # a one-row result
    map_seq: int = 0  # names the map, for the renderer's smoothing (reused maps keep the number)
    class_lock: int | None = None  # the locked class the map was asked for
    scene: int = 0  # counts unrelated pictures (Frame.unrelated): a new one restarts the smoothing
    image: np.ndarray | None = None  # the rendered overlay, as the window shows it
    file_image: np.ndarray | None = None  # ... and as recordings and snapshots keep it

    @property
    def explains(self) -> tuple[str, int | None, int] | None:
        """What the map answers, for the renderer: a new method, locked class or picture restarts the smoothing."""
        return None if self.result is None else (self.result.method, self.class_lock, self.scene)


class Pipeline:
    """Runs a source through the engine and renderer into the sinks until the source ends or the user quits.

    The user steers the run through ``controller`` (the window's keys are turned into its
    commands); ``state`` is what they steer.

    Args:
        source: where frames come from (see ``livecam.sources``).
        engine: the compiled CamEngine.
        renderer: the overlay renderer (this viewer's own: it holds the smoothing).
        options: run options.
        window: a ``WindowSink`` for display, or None for headless runs.
        recorder: a recording to write from the start, or None.
        worker: an ``EngineWorker`` shared with other viewers; None: the run makes its own
            (batches of ``options.batch`` for files, single frames for live sources).
        outputs: per-frame sinks (``livecam.viewer.outputs``: results, maps, one picture per image),
            each given every processed frame in order and closed at the end.
        log: where to print one-line messages; by default stderr, with names escaped and
            secrets redacted (``livecam.errors.shown``).
    """

    def __init__(
        self,
        source: FrameSource,
        engine: CamEngine,
        renderer: Renderer,
        options: Options,
        *,
        window: Any = None,
        recorder: VideoWriter | None = None,
        worker: EngineWorker | None = None,
        outputs: Sequence[Any] = (),
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.engine = engine
        self.renderer = renderer
        self.options = options
        self.window = window
        self.worker = worker
        self._own_worker = worker is None
        self.state = ViewerState(
            method=engine.method,
            class_id=options.class_id,
            alpha=renderer.alpha,
            colormap=renderer.colormap,
            help_shown=renderer.show_help,
            fullscreen=bool(getattr(window, "fullscreen", False)),
            recording=recorder is not None,
        )
        self.controller = Controller(self.state, class_names=engine.class_names)
        info = engine.runtime_info
        self.stats = Stats(runtime={"name": info.runtime, "reason": info.reason, "head": info.head})
        self.times = StageTimes()
        self.engine_rate = RateMeter()
        self.display_rate = RateMeter()
        self._log = log or (lambda text: print(shown(text), file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._recorder = recorder
        self._outputs = list(outputs)
        self._recorder_lock = threading.Lock()
        self._snapshots = SnapshotWriter(options.snapshot_dir)
        self._first_capture: float | None = None
        self._last_output: float | None = None
        self._dropped_before = 0
        self._frames_out = 0  # frames rendered and recorded (in a window, some live ones go unshown)
        self._shown: Mailbox[_Item] = Mailbox()  # render stage -> display; closed at the end
        self._render_lock = threading.Lock()
        self._first_map_s: float | None = None  # when the first map came (files: the HUD's engine rate)
        self._map_ids = itertools.count(1)  # numbers the maps, so that the renderer folds each into its smoothing once
        self._scene = 0  # the Frame.unrelated pictures so far (read by one stage only)
        self._last_map: tuple[CamResult, int, int | None] | None = None  # (row, map_seq, class_lock), for --every N
        self._progress = None
        if recorder is not None:
            self.stats.recordings.append(str(recorder.path))

    @property
    def frames_out(self) -> int:
        """Frames rendered and recorded so far."""
        return self._frames_out

    # ------------------------------------------------------------------ the run

    def run(self) -> Stats:
        """Runs to the end of input, the user's quit, Ctrl-C (KeyboardInterrupt) or an error.

        Whatever ends it, the recording is closed (playable) and the threads are joined.
        """
        live = self.source.live
        self._dropped_before = int(getattr(self.source, "dropped", 0))
        if self.worker is None:
            # Files: every frame, batched. Live: one frame at a time, sent at once (no one to wait for).
            self.worker = EngineWorker(self.engine, max_batch=1 if live else self.options.batch, max_wait_ms=_BATCH_WAIT_MS)
        to_engine: queue.Queue = queue.Queue(maxsize=max(2, 2 * self.options.batch))
        to_render: queue.Queue = queue.Queue(maxsize=1 if live else max(2, 2 * self.options.batch))
        threads = [
            threading.Thread(target=self._guard(self._engine_stage), args=(to_engine, to_render), name="livecam-engine", daemon=True),
            threading.Thread(target=self._guard(self._render_stage), args=(to_render,), name="livecam-render", daemon=True),
        ]
        if not live:
            threads.append(threading.Thread(target=self._guard(self._read_stage), args=(to_engine,), name="livecam-reader", daemon=True))
        if self.options.progress and not live:
            from tqdm import tqdm

            total = self.source.frame_count
            if self.options.max_frames is not None:
                total = min(total, self.options.max_frames) if total else self.options.max_frames
            self._progress = tqdm(total=total, unit="frame", dynamic_ncols=True, leave=True)
        try:
            for thread in threads:
                thread.start()
            if self.window is not None:
                self._display_loop()
            else:
                while any(t.is_alive() for t in threads) and not self._stop.is_set():
                    threads[1].join(timeout=_POLL_S)
        finally:
            self._stop.set()
            self._shown.close()
            for thread in threads:
                thread.join(timeout=10)
            # Every step runs even if one before it raises (callbacks run last-in, first-out).
            with contextlib.ExitStack() as cleanup:
                cleanup.callback(self._finish_stats)
                if self._progress is not None:
                    cleanup.callback(self._progress.close)
                if self.window is not None:
                    cleanup.callback(self.window.close)
                cleanup.callback(self.source.close)
                cleanup.callback(self._close_recorder)
                for output in self._outputs:
                    cleanup.callback(output.close)
                if self._own_worker:
                    cleanup.callback(self.worker.close, timeout_s=10)
        if self._errors:
            raise self._errors[0]
        return self.stats

    def _guard(self, stage: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                stage(*args)
            except BaseException as exc:  # handed to the main thread, which re-raises it
                self._errors.append(exc)
                self._stop.set()

        return run

    # ------------------------------------------------------------------ stages

    def _read_stage(self, out: queue.Queue) -> None:
        """Files: decode and resize ahead of the engine, every frame, in order."""
        count = 0
        while not self._stop.is_set():
            if self.options.max_frames is not None and count >= self.options.max_frames:
                break
            t0 = time.perf_counter()
            frame = self.source.read()
            if frame is None:
                break
            item = self._new_item(frame)
            self.times.add("capture", (time.perf_counter() - t0) * 1000)
            self._first_capture = self._first_capture or frame.timestamp_s
            self._put(out, item)
            count += 1
        self._put(out, _END)

    def _new_item(self, frame: Frame) -> _Item:
        """A frame on its way, resized for the engine; an unrelated picture starts a new scene."""
        self._scene += frame.unrelated
        return _Item(frame, self.engine.prepare(frame.image_bgr), scene=self._scene)

    def _engine_stage(self, inbox: queue.Queue, out: queue.Queue) -> None:
        """Hands frames to the worker and passes them on, in order, with their maps."""
        if self.source.live:
            self._explain_live(out)
        else:
            self._explain_files(inbox, out)
        self._put(out, _END)

    def _explain_live(self, out: queue.Queue) -> None:
        """Live: the newest frame, one at a time, so that latency stays at one engine step."""
        count = 0
        while not self._stop.is_set():
            if self.state.paused:
                time.sleep(_POLL_S)
                continue
            if self.options.max_frames is not None and count >= self.options.max_frames:
                break
            t0 = time.perf_counter()
            frame = self.source.read(timeout_s=0.5)
            if frame is None:
                if self.source.status == "ended":
                    break
                continue  # reconnecting: the display shows the status meanwhile
            item = self._new_item(frame)
            self.times.add("capture", (time.perf_counter() - t0) * 1000)
            self._first_capture = self._first_capture or frame.timestamp_s
            self._submit(item, count)
            self._pass_on(item, out)
            count += 1

    def _explain_files(self, inbox: queue.Queue, out: queue.Queue) -> None:
        """Files: every frame, in order, with up to two batches at the worker so that it never waits for us."""
        in_flight: collections.deque[_Item] = collections.deque()
        count = 0
        while not self._stop.is_set():
            while in_flight and (len(in_flight) >= 2 * self.options.batch or _ready(in_flight[0])):
                self._pass_on(in_flight.popleft(), out)
            if self.state.paused:
                time.sleep(_POLL_S)
                continue
            try:
                item = inbox.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                break
            self._submit(item, count)
            in_flight.append(item)
            count += 1
        while in_flight and not self._stop.is_set():
            self._pass_on(in_flight.popleft(), out)

    def _submit(self, item: _Item, count: int) -> None:
        # --every N: the map (and the label with it) is computed for every Nth frame and reused
        # in between, so the engine's cost drops N-fold.
        if count % self.options.every == 0:
            item.class_lock = self.state.class_id
            item.job = self.worker.submit(item.prepared, class_id=item.class_lock, method=self.state.method)

    def _pass_on(self, item: _Item, out: queue.Queue) -> None:
        """Waits for the item's map (or takes the last one) and hands the item to the render stage."""
        if item.job is not None:
            row = self._wait(item.job)
            if row is None:
                return  # stopping
            self.times.add("engine", item.job.engine_ms / item.job.batch_size)
            self.engine_rate.tick()
            self._first_map_s = self._first_map_s or time.monotonic()
            item.result, item.map_seq, item.job = self._placed(row, item), next(self._map_ids), None
            self._last_map = (row, item.map_seq, item.class_lock)
        elif self._last_map is not None:
            item.result, item.map_seq, item.class_lock = self._last_map
        self._put(out, item)

    def _wait(self, job: Job) -> CamResult | None:
        """The job's row; None if the run stops first. The engine's exception is raised here."""
        while not self._stop.is_set():
            try:
                return job.result(timeout=_POLL_S)
            except FutureTimeout:
                continue
        return None

    def _render_stage(self, inbox: queue.Queue) -> None:
        while not self._stop.is_set():
            try:
                item = inbox.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                break
            if item.result is not None and not item.result.finite[0]:
                self.stats.non_finite += 1
            t0 = time.perf_counter()
            # Both pictures, even with no recorder yet: r may start one and s take a snapshot.
            views = self._render(item, window=self.window is not None)
            item.image, item.file_image = views.window, views.file
            t1 = time.perf_counter()
            self.times.add("render", (t1 - t0) * 1000)
            self._record(item)
            self._write_outputs(item)
            self.times.add("write", (time.perf_counter() - t1) * 1000)
            self._frames_out += 1
            if self.window is not None:
                # Live: the display shows the newest frame. Files: every frame is shown, so the
                # stage waits for the display to take the previous one.
                if not self.source.live:
                    while not self._shown.wait_empty(_POLL_S) and not self._stop.is_set():
                        pass
                self._shown.put(item)
            else:
                self._delivered(item.frame)
            if self._progress is not None:
                self._progress.update(1)
        self._shown.close()  # the end: the display shows what is left, then stops

    # ------------------------------------------------------------------ display and keys

    def _display_loop(self) -> None:
        current: _Item | None = None
        redraw = False  # the frozen frame was drawn again (or another one brought back) and is yet to be shown
        # Image folders in a window (options.step_images): each picture stays until n / Right (or
        # --delay), p / Left goes back through the last pictures shown.
        stepping, delay_s = self.options.step_images, self.options.delay_s
        holding, shown_at = False, 0.0
        back: collections.deque[_Item] = collections.deque(maxlen=_HISTORY)
        ahead: list[_Item] = []
        while not self._stop.is_set():
            paused = self.state.paused
            frozen = paused or holding
            item = self._shown.get(timeout_s=_POLL_S) if not frozen else None
            if item is not None:
                if current is not None and stepping:
                    back.append(current)
                current = item
                image = item.image
                self._delivered(item.frame)
                holding, shown_at = stepping, time.monotonic()
            elif current is not None and frozen:
                image = current.image if redraw else None  # else it stays on screen; poll() waits for keys
                redraw = False
            elif self._shown.closed:
                break  # the end of input, all of it shown
            elif current is not None and self.source.status == "reconnecting":
                image = self._render(current, file=False).window  # the last frame, with "reconnecting" on the HUD
            else:
                image = None
            if image is not None:
                key = self.window.show(image)
            else:  # nothing new: wait for keys a little, so that a frozen window does not spin
                key = self.window.poll(30) if frozen else self.window.poll()
            if self.window.closed:
                break
            command = action_for_key(key)
            outcome = self._apply(command.action, command.arg, current)
            if outcome.effect is Action.QUIT:
                break
            due = holding and not paused and delay_s is not None and time.monotonic() - shown_at >= delay_s
            if stepping and current is not None and (outcome.effect is Action.NEXT_IMAGE or due):
                if ahead:  # forward again through pictures gone back over
                    back.append(current)
                    current, redraw, shown_at = ahead.pop(), True, time.monotonic()
                else:
                    holding = False  # take the next picture from the pipeline
            elif stepping and outcome.effect is Action.PREV_IMAGE and back and current is not None:
                ahead.append(current)
                current, redraw, holding, shown_at = back.pop(), True, True, time.monotonic()
            if current is not None and frozen and outcome.redraw:
                if outcome.reexplain:
                    self._explain_again(current)
                views = self._render(current)
                current.image, current.file_image = views.window, views.file
                redraw = True

    def _apply(self, action: Action, arg: Any, current: _Item | None) -> Outcome:
        """Applies a command from the window and carries out its effect (snapshot, recording)."""
        result = current.result if current is not None else None
        outcome = self.controller.apply(action, arg, topk_ids=result.topk_ids[0] if result is not None else ())
        if outcome.action is Action.FULLSCREEN and outcome.changed and hasattr(self.window, "set_fullscreen"):
            self.window.set_fullscreen(self.state.fullscreen)
        if outcome.effect is Action.SNAPSHOT and current is not None:
            self._snapshot(current)
        elif outcome.effect is Action.RECORD:
            self._toggle_recording()
        return outcome

    def _explain_again(self, item: _Item) -> None:
        """The frozen frame, explained with the method and class the user just chose."""
        item.class_lock = self.state.class_id
        row = self._wait(self.worker.submit(item.prepared, class_id=item.class_lock, method=self.state.method))
        if row is not None:
            item.result, item.map_seq = self._placed(row, item), next(self._map_ids)

    # ------------------------------------------------------------------ helpers

    def _placed(self, row: CamResult, item: _Item) -> CamResult:
        """The row with its map placed on the item's frame: the worker was given the frame prepared (at the input size)."""
        return replace(row, box=self.engine.map_box(item.frame.image_bgr.shape[1::-1]))

    def _render(self, item: _Item, *, window: bool = True, file: bool = True) -> Views:
        """The window's picture and the files' picture of an item (either can be left out)."""
        # The render thread and, while paused or reconnecting, the display thread both draw; the
        # renderer holds smoothing state, so one draws at a time.
        with self._render_lock:
            renderer, state = self.renderer, self.state
            renderer.alpha, renderer.colormap, renderer.show_help = state.alpha, state.colormap, state.help_shown
            result = item.result
            cam = result.cam[0] if result is not None and result.finite[0] else None
            hud = self._hud(result)
            box = result.box if result is not None else None
            return renderer.views(item.frame.image_bgr, cam, hud, window=window, file=file, explains=item.explains, map_id=item.map_seq, box=box)

    def _file_image(self, item: _Item) -> np.ndarray:
        """The picture for recordings and snapshots: the label and the legend, no REC badge or key hints."""
        if item.file_image is None:  # not drawn with the window's (a caller that asked for one only)
            item.file_image = self._render(item, window=False).file
        return item.file_image

    def _hud(self, result: CamResult | None) -> HudInfo | None:
        if result is None:
            return None
        names = self.engine.class_names
        class_id = int(result.class_ids[0])
        status = "reconnecting" if self.source.status == "reconnecting" else ""
        if self.state.paused:
            status = "paused"
        if not result.finite[0]:
            status = "no map (non-finite output)"
        return HudInfo(
            label=names[class_id],
            prob=float(result.probs[0, class_id]),
            locked=self.state.class_id is not None,
            topk=tuple((names[int(i)], float(p)) for i, p in zip(result.topk_ids[0], result.topk_probs[0])),
            method=result.method,
            layer=result.layer,
            engine_fps=self._engine_fps(),
            display_fps=self.display_rate.fps,
            # Files are read ahead and kept in order: their "latency" is time spent queued, not a delay anyone sees.
            latency_ms=self.times.last_latency_ms if self.source.live else None,
            dropped=self._dropped(),
            status=status,
            recording=self.state.recording,
            message=self.controller.message(),
        )

    def _engine_fps(self) -> float | None:
        """Maps per second. Files come in batches, whose rows are done together, so a rate over the
        last few rows would be a burst (tens of thousands per second): files get the run's average
        since its first map instead, once half a second has passed."""
        if self.source.live:
            return self.engine_rate.fps
        if self._first_map_s is None:
            return None
        elapsed_s = time.monotonic() - self._first_map_s
        maps = self.engine_rate.snapshot().events
        return (maps - 1) / elapsed_s if elapsed_s >= 0.5 and maps > 1 else None

    def _dropped(self) -> int:
        """Live frames dropped since the run began (not those that went by while the model loaded)."""
        return int(getattr(self.source, "dropped", 0)) - self._dropped_before

    def _delivered(self, frame: Frame) -> None:
        """A frame was shown (or, headless, written): the end of its latency."""
        now = time.monotonic()
        self.times.add_latency((now - frame.timestamp_s) * 1000)
        self.display_rate.tick(now)
        self._last_output = now

    def _record(self, item: _Item) -> None:
        # The writer never blocks for long (it gives up on a stuck encoder), so holding the lock is safe.
        with self._recorder_lock:
            if self._recorder is None:
                return
            media_time_s = getattr(item.frame, "media_time_s", None)
            try:
                self._recorder.write(self._file_image(item), item.frame.timestamp_s if media_time_s is None else media_time_s)
            except SinkError as exc:
                recorder, self._recorder = self._recorder, None
                with contextlib.suppress(SinkError):  # keeps the file playable; the first error is the one reported
                    recorder.close()
                self._recorder_notes(recorder)
                self._recording_failed(exc)
                self._stop_if_nothing_is_kept()
            else:
                self._recorder_notes(self._recorder)

    def _recorder_notes(self, recorder: VideoWriter) -> None:
        """Says once what the writer noticed (a size scaled down, a file saved under another name)."""
        for note in recorder.new_warnings() if hasattr(recorder, "new_warnings") else []:
            self._log(f"livecam: {note}")
        saved = getattr(recorder, "saved_path", None)
        listed = str(recorder.path) in self.stats.recordings
        if listed and _nothing_recorded(recorder):  # closed before its first frame: no file was made
            self.stats.recordings.remove(str(recorder.path))
        elif saved is not None and listed and saved != recorder.path:
            self.stats.recordings[self.stats.recordings.index(str(recorder.path))] = str(saved)

    def _write_outputs(self, item: _Item) -> None:
        if not self._outputs:
            return
        frame = item.frame
        source_time = getattr(frame, "media_time_s", None)
        if source_time is None and self._first_capture is not None:
            source_time = frame.timestamp_s - self._first_capture  # seconds since the run's first frame
        processed = Processed(frame, item.result, self._file_image(item), item.class_lock is not None, source_time)
        for output in list(self._outputs):
            try:
                output.write(processed)
            except SinkError as exc:  # a full disk: this output stops with what it kept, the others go on
                self._outputs.remove(output)
                output.close()
                self._output_failed(str(exc))
                self._stop_if_nothing_is_kept()

    def _output_failed(self, text: str) -> None:
        self.stats.output_errors.append(text)
        self._say(text, seconds=10)
        self._log(f"livecam: {text}")

    def _stop_if_nothing_is_kept(self) -> None:
        """Headless, once the recording and every per-frame output have stopped, the run has no job left."""
        if self.window is None and self._recorder is None and not self._outputs:
            self._stop.set()

    def _recording_failed(self, exc: SinkError) -> None:
        self.state.recording = False
        self.stats.recording_error = str(exc)
        self._say(f"recording stopped: {exc}", seconds=10)
        self._log(f"livecam: recording stopped: {exc}")

    def _toggle_recording(self) -> None:
        with self._recorder_lock:
            if self._recorder is not None:
                recorder, self._recorder = self._recorder, None
                try:
                    recorder.close()
                except SinkError as exc:
                    self._recording_failed(exc)
                    return
                finally:
                    self._recorder_notes(recorder)
                self.state.recording = False
                if _nothing_recorded(recorder):
                    text = f"recording stopped before its first frame; {recorder.path} was not written"
                else:
                    text = f"recording saved: {Path(getattr(recorder, 'saved_path', None) or recorder.path).resolve()}"
                self._say(text)
                self._log(f"livecam: {text}")
                return
            base = self.options.output or Path(f"livecam-{datetime.now():%Y%m%d-%H%M%S}.mp4")
            path = free_name(base)
            try:
                live = self.source.live or getattr(self.source, "variable_frame_rate", False)
                size = recording_size(self.source, self.options.size, side_by_side=self.renderer.side_by_side)
                self._recorder = VideoWriter(path, fps=self.source.fps or 30.0, size=size, live=live)
            except ValueError as exc:
                self._say(f"cannot record: {exc}", seconds=10)
                self._log(f"livecam: cannot record: {exc}")
                return
            self.stats.recordings.append(str(path))
            self.state.recording = True
            self._say(f"recording to {path}")
            self._log(f"livecam: recording to {path.resolve()}")

    def _close_recorder(self) -> None:
        with self._recorder_lock:
            recorder, self._recorder = self._recorder, None
            if recorder is not None:
                try:
                    recorder.close()
                except SinkError as exc:  # what the file keeps is in the message
                    self._recording_failed(exc)
                finally:
                    self._recorder_notes(recorder)
                    self.state.recording = False
                if _nothing_recorded(recorder):
                    self._log(f"livecam: no frame was recorded, so {recorder.path} was not written")

    def _snapshot(self, item: _Item) -> None:
        result = item.result
        record: dict[str, Any] = {"time": datetime.now().isoformat(timespec="milliseconds"), "frame_index": item.frame.index}
        if result is not None:
            class_id = int(result.class_ids[0])
            record.update(
                class_id=class_id,
                class_name=self.engine.class_names[class_id],
                probability=float(result.probs[0, class_id]),
                locked=self.state.class_id is not None,
                layer=result.layer,
                method=result.method,
                model=self.engine.model_name,
            )
        cam = result.cam[0] if result is not None else None
        try:
            paths = self._snapshots.save(item.frame.image_bgr, self._file_image(item), cam, record)
        except (SinkError, OSError) as exc:
            self._say(f"snapshot failed: {exc}", seconds=10)
            self._log(f"livecam: snapshot failed: {exc}")
            return
        self._say(f"snapshot saved: {paths[0].name if paths else ''}")
        self._log(f"livecam: snapshot saved: {', '.join(str(Path(p).resolve()) for p in paths)}")

    def _say(self, text: str, seconds: float = MESSAGE_S) -> None:
        self.controller.say(text, seconds)

    def _put(self, q: queue.Queue, item: Any) -> None:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _finish_stats(self) -> None:
        stats = self.stats
        stats.frames = self._frames_out
        if self._first_capture is not None and self._last_output is not None:
            stats.seconds = round(self._last_output - self._first_capture, 4)
        stats.fps = round(stats.frames / stats.seconds, 3) if stats.seconds > 0 else 0.0
        times = self.times.snapshot()
        stats.stage_ms = times.mean_ms
        stats.latency_p50_ms, stats.latency_p95_ms = times.latency_p50_ms, times.latency_p95_ms
        stats.dropped = self._dropped()
        stats.corrupt = int(getattr(self.source, "corrupt", 0))
        stats.traces = self.engine.runtime_info.traces
        if self.options.stats_json is not None:
            try:
                write_file_atomic(self.options.stats_json, (json.dumps(stats.to_json(), indent=2) + "\n").encode())
            except OSError as exc:
                self._output_failed(f"Could not write the statistics to {self.options.stats_json} ({exc.strerror or exc}).")


def recording_size(source: FrameSource, size: tuple[int, int] | None = None, *, side_by_side: bool = False) -> tuple[int, int] | None:
    """The (width, height) to record ``source`` at: ``size`` (--size), else for a folder of mixed
    sizes the size it chose from its images; twice as wide side by side (raw | overlay).
    None: the first frame's size."""
    size = size or (source.size if getattr(source, "mixed_sizes", False) else None)
    if size is None:
        return None
    return (2 * size[0], size[1]) if side_by_side else size


def _nothing_recorded(recorder: Any) -> bool:
    """The recorder was closed before its first frame, so it made no file."""
    return getattr(recorder, "frames_received", None) == 0


def _ready(item: _Item) -> bool:
    """Its map is there, or it reuses the one before it."""
    return item.job is None or item.job.done()
