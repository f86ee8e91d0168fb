"""The one loop: source -> engine -> renderer -> sinks, in overlapping stages.

Stages are threads joined by bounded queues (OpenCV, TensorFlow and the ffmpeg pipe release the
GIL, so they really overlap):

    reader (files only) --q--> engine --q--> render + record --slot--> display (main thread)

Live sources already run their own capture thread where the latest frame wins, so the engine
thread reads them directly: a frame is never queued behind another, and latency stays at about
one engine step. File sources get a reader thread that decodes and resizes ahead, and the engine
takes them in batches; every frame is kept, in order.
"""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from livecam.engine import METHOD_NAMES, CamEngine, CamResult
from livecam.keys import Action, KeyAction, apply_alpha
from livecam.render import HudInfo, Renderer
from livecam.sinks import SinkError, SnapshotWriter, VideoWriter, free_name
from livecam.sources import Frame, FrameSource

_END = object()  # sentinel: the source has ended
_POLL_S = 0.05  # how long a blocked stage waits before it looks at the stop flag again


# ---------------------------------------------------------------------- timing


class RateMeter:
    """Frames per second over the last ``window`` events: (n - 1) / (t_last - t_first)."""

    def __init__(self, window: int = 30) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=window)

    def tick(self, t: float | None = None) -> None:
        self._times.append(time.monotonic() if t is None else t)

    @property
    def fps(self) -> float | None:
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return None
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


class StageTimes:
    """Mean milliseconds per frame for each named stage, and the latency distribution."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total_ms: dict[str, float] = collections.defaultdict(float)
        self._count: dict[str, int] = collections.defaultdict(int)
        self.latency_ms: collections.deque[float] = collections.deque(maxlen=100_000)

    def add(self, stage: str, ms: float, frames: int = 1) -> None:
        with self._lock:
            self._total_ms[stage] += ms
            self._count[stage] += frames

    def mean_ms(self) -> dict[str, float]:
        with self._lock:
            return {k: round(self._total_ms[k] / self._count[k], 3) for k in self._total_ms if self._count[k]}


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
    recordings: list[str] = field(default_factory=list)
    runtime: dict[str, str] = field(default_factory=dict)  # {"name": "openvino", "reason": "..."}

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------------- shared state


@dataclass
class Controls:
    """What the user steers with keys; read by the stage threads on every frame."""

    method: str
    class_id: int | None = None  # None: explain the top class
    paused: bool = False


@dataclass(frozen=True)
class Options:
    """How a run behaves (the CLI fills this from its flags)."""

    batch: int = 1
    every: int = 1
    max_frames: int | None = None
    output: Path | None = None  # where the r key starts recording (a free name next to it)
    snapshot_dir: Path = Path(".")
    stats_json: Path | None = None
    progress: bool = False
    class_id: int | None = None


@dataclass
class _Item:
    """One frame on its way through the stages."""

    frame: Frame
    prepared: np.ndarray  # the frame at the model's input size
    result: CamResult | None = None  # a one-row result
    image: np.ndarray | None = None  # the rendered overlay


class Pipeline:
    """Runs a source through the engine and renderer into the sinks until the source ends or the user quits.

    Args:
        source: where frames come from (see ``livecam.sources``).
        engine: the compiled CamEngine.
        renderer: the overlay renderer.
        options: run options.
        window: a ``WindowSink`` for display, or None for headless runs.
        log: where to print one-line messages (stderr by default).
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
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.source = source
        self.engine = engine
        self.renderer = renderer
        self.options = options
        self.window = window
        self.controls = Controls(method=engine.method, class_id=options.class_id)
        self.stats = Stats(runtime={"name": getattr(engine, "runtime", "tensorflow"), "reason": getattr(engine, "runtime_reason", "")})
        self.times = StageTimes()
        self.engine_rate = RateMeter()
        self.display_rate = RateMeter()
        self._log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._recorder = recorder
        self._recorder_lock = threading.Lock()
        self._message = ""
        self._message_until = 0.0
        self._snapshots = SnapshotWriter(options.snapshot_dir)
        self._first_capture: float | None = None
        self._last_output: float | None = None
        self._dropped_before = 0
        self._frames_out = 0  # frames rendered and recorded (in a window, some live ones go unshown)
        self._shown = _Slot()
        self._cam_of: tuple[CamResult, np.ndarray] | None = None  # the last result rendered and its map view
        self._render_lock = threading.Lock()
        self._explains: tuple[str, int | None] | None = None  # (method, locked class) of the last map drawn
        self._progress = None
        if recorder is not None:
            self.stats.recordings.append(str(recorder.path))

    # ------------------------------------------------------------------ the run

    def run(self) -> Stats:
        """Runs to the end of input, the user's quit, Ctrl-C (KeyboardInterrupt) or an error.

        Whatever ends it, the recording is closed (playable) and the threads are joined.
        """
        live = self.source.live
        self._dropped_before = int(getattr(self.source, "dropped", 0))
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
                self._display_loop(threads)
            else:
                while any(t.is_alive() for t in threads) and not self._stop.is_set():
                    threads[1].join(timeout=_POLL_S)
        finally:
            self._stop.set()
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
            prepared = self.engine.prepare(frame.image_bgr)
            self.times.add("capture", (time.perf_counter() - t0) * 1000)
            self._first_capture = self._first_capture or frame.timestamp_s
            self._put(out, _Item(frame, prepared))
            count += 1
        self._put(out, _END)

    def _engine_stage(self, inbox: queue.Queue, out: queue.Queue) -> None:
        live = self.source.live
        count = 0
        last: CamResult | None = None
        while not self._stop.is_set():
            if self.controls.paused:
                time.sleep(_POLL_S)
                continue
            if live:
                if self.options.max_frames is not None and count >= self.options.max_frames:
                    break
                t0 = time.perf_counter()
                frame = self.source.read(timeout_s=0.5)
                if frame is None:
                    if self.source.status == "ended":
                        break
                    continue  # reconnecting: the display shows the status meanwhile
                items = [_Item(frame, self.engine.prepare(frame.image_bgr))]
                self.times.add("capture", (time.perf_counter() - t0) * 1000)
                self._first_capture = self._first_capture or frame.timestamp_s
            else:
                items = self._take_batch(inbox)
                if not items:
                    break
            # --every N: the map (and the label with it) is computed for every Nth frame and
            # reused in between, so the engine's cost drops N-fold.
            todo = [i for i in range(len(items)) if (count + i) % self.options.every == 0 or (last is None and i == 0)]
            if todo:
                t0 = time.perf_counter()
                batch = np.stack([items[i].prepared for i in todo]) if len(todo) > 1 else items[todo[0]].prepared[None]
                result = self.engine(batch, class_id=self.controls.class_id, method=self.controls.method)
                self.times.add("engine", (time.perf_counter() - t0) * 1000, len(todo))
                rows = iter(_rows(result))
            for i, item in enumerate(items):
                if i in todo:
                    last = next(rows)
                    self.engine_rate.tick()
                item.result = last
                self._put(out, item)
            count += len(items)
        self._put(out, _END)

    def _take_batch(self, inbox: queue.Queue) -> list[_Item]:
        items: list[_Item] = []
        while len(items) < self.options.batch and not self._stop.is_set():
            try:
                item = inbox.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                inbox.put(_END)  # for the next call, which then returns nothing
                break
            items.append(item)
        return items

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
            item.image = self._render(item)
            t1 = time.perf_counter()
            self.times.add("render", (t1 - t0) * 1000)
            self._record(item)
            self.times.add("write", (time.perf_counter() - t1) * 1000)
            self._frames_out += 1
            if self.window is not None:
                # Live: the display shows the newest frame. Files: every frame is shown, so the
                # stage waits for the display to take the previous one.
                self._shown.put(item, wait_taken=not self.source.live, stop=self._stop)
            else:
                self._delivered(item.frame)
            if self._progress is not None:
                self._progress.update(1)
        self._shown.put(_END, wait_taken=not self.source.live, stop=self._stop)

    # ------------------------------------------------------------------ display and keys

    def _display_loop(self, threads: list[threading.Thread]) -> None:
        current: _Item | None = None
        redraw = False  # the paused frame was drawn again and is yet to be shown
        while not self._stop.is_set():
            item = self._shown.get(timeout=_POLL_S) if not self.controls.paused else None
            if item is _END:
                break
            if item is not None:
                current = item
                image = item.image
                self._delivered(item.frame)
            elif current is not None and self.controls.paused:
                image = current.image if redraw else None  # else it stays on screen; poll() waits for keys
                redraw = False
            elif current is not None and self.source.status == "reconnecting":
                image = self._render(current)  # the last frame, with "reconnecting" on the HUD
            else:
                image = None
            if image is not None:
                key = self.window.show(image)
            else:  # nothing new: wait for keys a little, so that a paused window does not spin
                key = self.window.poll(30) if self.controls.paused else self.window.poll()
            if self.window.closed:
                break
            action = self._handle_key(key, current)
            if action is Action.QUIT:
                break
            if current is not None and self.controls.paused and action in _REDRAW:
                if action in _REEXPLAIN:
                    current.result = _rows(self.engine(current.prepared, class_id=self.controls.class_id, method=self.controls.method))[0]
                current.image = self._render(current)
                redraw = True

    def _handle_key(self, key: int, current: _Item | None) -> Action:
        from livecam.keys import action_for_key

        pressed: KeyAction = action_for_key(key)
        action = pressed.action
        if action is Action.PAUSE:
            self.controls.paused = not self.controls.paused
        elif action in (Action.ALPHA_UP, Action.ALPHA_DOWN):
            self.renderer.alpha = apply_alpha(self.renderer.alpha, pressed)
        elif action is Action.NEXT_METHOD:
            self.controls.method = METHOD_NAMES[(METHOD_NAMES.index(self.controls.method) + 1) % len(METHOD_NAMES)]
            self._say(f"method: {self.controls.method}")
        elif action is Action.LOCK_CLASS and current is not None and current.result is not None:
            ids = current.result.topk_ids[0]
            if pressed.rank is not None and pressed.rank <= len(ids):
                self.controls.class_id = int(ids[pressed.rank - 1])
                self._say(f"locked to {self.engine.class_names[self.controls.class_id]}")
        elif action is Action.UNLOCK:
            self.controls.class_id = None
        elif action is Action.HELP:
            self.renderer.show_help = not self.renderer.show_help
        elif action is Action.SNAPSHOT and current is not None:
            self._snapshot(current)
        elif action is Action.RECORD:
            self._toggle_recording()
        return action

    # ------------------------------------------------------------------ helpers

    def _render(self, item: _Item) -> np.ndarray:
        # The render thread and, while paused, the display thread both draw; the renderer holds
        # smoothing state, so one draws at a time.
        with self._render_lock:
            return self._render_locked(item)

    def _render_locked(self, item: _Item) -> np.ndarray:
        result = item.result
        cam = None
        if result is not None:
            # A new method or a new locked class starts the smoothing afresh, decided here from the
            # result itself, so that maps still in flight from before the key press do not count.
            explains = (result.method, int(result.class_ids[0]) if self.controls.class_id is not None else None)
            if explains != self._explains:
                self._explains = explains
                self.renderer.reset()
        if result is not None and result.finite[0]:
            # The renderer folds a map into its smoothing once per array object, and result.cam[0]
            # is a new view on every call: a result reused for several frames (--every N, a redraw)
            # must hand over the same view, or its map is folded in again and again.
            cam_of = self._cam_of
            if cam_of is None or cam_of[0] is not result:
                cam_of = self._cam_of = (result, result.cam[0])
            cam = cam_of[1]
        return self.renderer.render(item.frame.image_bgr, cam, self._hud(result))

    def _hud(self, result: CamResult | None) -> HudInfo | None:
        if result is None:
            return None
        names = self.engine.class_names
        class_id = int(result.class_ids[0])
        status = "reconnecting" if self.source.status == "reconnecting" else ""
        if self.controls.paused:
            status = "paused"
        if not result.finite[0]:
            status = "no map (non-finite output)"
        latency = self.times.latency_ms[-1] if self.times.latency_ms else None
        message = self._message if time.monotonic() < self._message_until else ""
        return HudInfo(
            label=names[class_id],
            prob=float(result.probs[0, class_id]),
            locked=self.controls.class_id is not None,
            topk=tuple((names[int(i)], float(p)) for i, p in zip(result.topk_ids[0], result.topk_probs[0])),
            method=result.method,
            layer=result.layer,
            engine_fps=self.engine_rate.fps,
            display_fps=self.display_rate.fps,
            latency_ms=latency,
            dropped=self._dropped(),
            status=status,
            recording=self._recorder is not None,
            message=message,
        )

    def _dropped(self) -> int:
        """Live frames dropped since the run began (not those that went by while the model loaded)."""
        return int(getattr(self.source, "dropped", 0)) - self._dropped_before

    def _delivered(self, frame: Frame) -> None:
        """A frame was shown (or, headless, written): the end of its latency."""
        now = time.monotonic()
        self.times.latency_ms.append((now - frame.timestamp_s) * 1000)
        self.display_rate.tick(now)
        self._last_output = now

    def _record(self, item: _Item) -> None:
        with self._recorder_lock:
            if self._recorder is None:
                return
            try:
                self._recorder.write(item.image, item.frame.timestamp_s)
            except SinkError as exc:
                recorder, self._recorder = self._recorder, None
                with contextlib.suppress(SinkError):  # keeps the file playable; the first error is the one reported
                    recorder.close()
                self._recording_failed(exc)
                if self.window is None:  # headless: the recording was the whole job
                    self._stop.set()

    def _recording_failed(self, exc: SinkError) -> None:
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
                self._say(f"recording saved: {recorder.path}")
                self._log(f"livecam: recording saved: {recorder.path}")
                return
            base = self.options.output or Path(f"livecam-{datetime.now():%Y%m%d-%H%M%S}.mp4")
            path = free_name(base)
            try:
                self._recorder = VideoWriter(path, fps=self.source.fps or 30.0, live=self.source.live)
            except ValueError as exc:
                self._say(f"cannot record: {exc}", seconds=10)
                self._log(f"livecam: cannot record: {exc}")
                return
            self.stats.recordings.append(str(path))
            self._say(f"recording to {path}")

    def _close_recorder(self) -> None:
        with self._recorder_lock:
            if self._recorder is not None:
                try:
                    self._recorder.close()
                finally:
                    self._recorder = None

    def _snapshot(self, item: _Item) -> None:
        result = item.result
        record: dict[str, Any] = {"time": datetime.now().isoformat(timespec="milliseconds"), "frame_index": item.frame.index}
        if result is not None:
            class_id = int(result.class_ids[0])
            record.update(
                class_id=class_id,
                class_name=self.engine.class_names[class_id],
                probability=float(result.probs[0, class_id]),
                locked=self.controls.class_id is not None,
                layer=result.layer,
                method=result.method,
                model=self.engine.model_name,
            )
        cam = result.cam[0] if result is not None else None
        try:
            paths = self._snapshots.save(item.frame.image_bgr, item.image, cam, record)
        except (SinkError, OSError) as exc:
            self._say(f"snapshot failed: {exc}", seconds=10)
            self._log(f"livecam: snapshot failed: {exc}")
            return
        self._say(f"snapshot saved: {paths[0].name if paths else ''}")
        self._log(f"livecam: snapshot saved: {', '.join(str(p) for p in paths)}")

    def _say(self, text: str, seconds: float = 3.0) -> None:
        self._message = text
        self._message_until = time.monotonic() + seconds

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
        stats.stage_ms = self.times.mean_ms()
        if self.times.latency_ms:
            latency = np.asarray(self.times.latency_ms)
            stats.latency_p50_ms = round(float(np.percentile(latency, 50)), 3)
            stats.latency_p95_ms = round(float(np.percentile(latency, 95)), 3)
        stats.dropped = self._dropped()
        stats.corrupt = int(getattr(self.source, "corrupt", 0))
        stats.traces = self.engine.trace_count
        if self.options.stats_json is not None:
            self.options.stats_json.write_text(json.dumps(stats.to_json(), indent=2) + "\n")


# While paused: keys that need the frozen frame explained again, and keys that only need it redrawn.
_REEXPLAIN = {Action.LOCK_CLASS, Action.UNLOCK, Action.NEXT_METHOD}
_REDRAW = _REEXPLAIN | {Action.ALPHA_UP, Action.ALPHA_DOWN, Action.HELP, Action.SNAPSHOT, Action.RECORD}


class _Slot:
    """A one-place mailbox where the newest item wins (the display shows the freshest frame)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = False

    def put(self, item: Any, *, wait_taken: bool = False, stop: threading.Event | None = None) -> None:
        """Leaves ``item`` for the reader; with ``wait_taken``, first waits until the last one was taken."""
        with self._cond:
            while wait_taken and self._has and not (stop is not None and stop.is_set()):
                self._cond.wait(_POLL_S)
            if self._has and self._item is _END:
                return  # the end is never overwritten
            self._item, self._has = item, True
            self._cond.notify_all()

    def get(self, timeout: float) -> Any:
        with self._cond:
            if not self._has:
                self._cond.wait(timeout)
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            self._cond.notify_all()
            return item


def _rows(result: CamResult) -> list[CamResult]:
    """One single-row CamResult per frame (views into the batch result, no copies)."""
    return [
        CamResult(
            probs=result.probs[i : i + 1],
            class_ids=result.class_ids[i : i + 1],
            cam=result.cam[i : i + 1],
            topk_ids=result.topk_ids[i : i + 1],
            topk_probs=result.topk_probs[i : i + 1],
            finite=result.finite[i : i + 1],
            layer=result.layer,
            method=result.method,
        )
        for i in range(len(result))
    ]
