"""The one loop: source -> engine -> renderer -> sinks, in overlapping stages.

Stages are threads joined by bounded queues (OpenCV, TensorFlow and the ffmpeg pipe release the
GIL, so they really overlap):

    reader (files only) --q--> engine stage --q--> render stage --> sinks --> front-end (main thread)
                                   |   ^
                          submit   v   | one row each
                                EngineWorker (the one thread that runs the engine)

Live sources already run their own capture thread where the latest frame wins, so the engine
stage reads them directly: a frame is never queued behind another, and latency stays at about
one engine step. File sources get a reader thread that decodes and resizes ahead, and the engine
stage keeps up to two batches at the worker; every frame is kept, in order.

The render stage hands each processed frame (``livecam.viewer.sinks.Processed``) to the sinks
(the statistics, the recording, the per-frame outputs, the progress bar), then to the front-end:
the window (``livecam.viewer.window``), whose keys steer this viewer's ``Controller``, or, without
one, ``Headless``, which only waits for the end. The stages that explain frames are
``livecam.viewer.stages``; the pictures and HUD are drawn by ``livecam.viewer.drawing``.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from livecam.engine.compare import panel_count
from livecam.engine.core import CamEngine
from livecam.engine.worker import EngineWorker
from livecam.errors import shown
from livecam.meters import RateMeter, StageTimes
from livecam.render import Renderer
from livecam.sources import Frame, FrameSource
from livecam.trust.curves import DEFAULT_STEPS
from livecam.trust.faithfulness import Schedule
from livecam.trust.region import RegionBox
from livecam.trust.stamp import made_with
from livecam.viewer.control import Controller, ViewerState
from livecam.viewer.drawing import Drawer
from livecam.viewer.keys import KEY_HELP
from livecam.viewer.recording import Recorder, RecordingSession, recording_size, writer_for
from livecam.viewer.safe_files import SinkError
from livecam.viewer.sinks import FrameSink, Processed, SnapshotWriter
from livecam.viewer.stages import END, POLL_S, ExplainStages, Item
from livecam.viewer.stats import ProgressSink, Stats, StatsSink
from livecam.viewer.window import Window, WindowFrontEnd

__all__ = ["Headless", "Options", "Pipeline", "Stats", "recording_size"]

_BATCH_WAIT_MS = 5.0  # files: how long a frame waits for the rest of its batch (the reader is ahead, so rarely)


@dataclass(frozen=True)
class Options:
    """How a run behaves (the CLI fills this from its flags)."""

    batch: int = 1
    every: int = 1
    faithfulness: int = 0  # test every Nth map (livecam.trust.faithfulness); 0: off
    max_frames: int | None = None
    output: Path | None = None  # where the r key starts recording (a free name next to it)
    size: tuple[int, int] | None = None  # --size: (width, height) of recordings; None: see recording_size
    snapshot_dir: Path = Path(".")
    stats_json: Path | None = None
    progress: bool = False
    class_id: int | None = None
    contrast_id: int | None = None  # --contrast: each map explains "why the class and not this one"
    compare: str | None = None  # --compare: "classes" or "methods" side by side
    step_images: bool = False  # a window on an image folder: each picture stays until a key (or delay_s)
    delay_s: float | None = None  # with step_images: go on to the next picture after this long
    box: RegionBox | None = None  # --box: the region whose share of the heat is read out
    normalize: str = "frame"  # --normalize: the maps' scale (livecam.trust.scale)


class Headless:
    """The front-end of a run without a window: a frame is delivered once the sinks have it; ``run`` waits for the end."""

    keeps_output = False
    draws_window = False

    def __init__(self, delivered: Callable[[Frame], None]) -> None:
        self._delivered = delivered
        self._ended = threading.Event()

    def write(self, processed: Processed) -> None:
        self._delivered(processed.frame)

    def end(self) -> None:
        self._ended.set()

    def run(self, viewer: Pipeline) -> None:
        while not self._ended.wait(POLL_S) and not viewer.stopping():
            pass

    def close(self) -> None:
        self._ended.set()


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
        cancel: set from another thread to end the run early (as the user's quit would), its
            outputs closed; shared by runs that end together (``livecam batch``'s jobs).
    """

    def __init__(
        self,
        source: FrameSource,
        engine: CamEngine,
        renderer: Renderer,
        options: Options,
        *,
        window: Window | None = None,
        recorder: Recorder | None = None,
        worker: EngineWorker | None = None,
        outputs: Sequence[FrameSink] = (),
        log: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        self.source = source
        self.engine = engine
        self.renderer = renderer
        self.options = options
        self.worker = worker
        self._own_worker = worker is None
        self.state = ViewerState(
            method=engine.method,
            class_id=options.class_id,
            contrast_id=options.contrast_id,
            compare=options.compare,
            alpha=renderer.alpha,
            colormap=renderer.colormap,
            help_shown=renderer.show_help,
            fullscreen=window is not None and window.fullscreen,
            recording=recorder is not None,
            box=options.box,
            normalize=options.normalize,
        )
        self.controller = Controller(self.state, class_names=engine.class_names)
        self.made_with = made_with(engine, normalize=options.normalize)
        self.stats = Stats(runtime=runtime_info(engine), made_with=self.made_with)
        self.times = StageTimes()
        self.engine_rate = RateMeter()
        self.display_rate = RateMeter()
        self.drawer = Drawer(
            renderer, self.state, self.controller, source, engine.class_names,
            times=self.times, engine_rate=self.engine_rate, display_rate=self.display_rate,
        )  # fmt: skip
        self._log = log or (lambda text: print(shown(text), file=sys.stderr, flush=True))
        self._stop = threading.Event()
        self._cancel = cancel or threading.Event()
        self._errors: list[BaseException] = []
        self._last_output: float | None = None
        self._stages: ExplainStages  # made by run(), with the worker
        self._stats_sink = StatsSink(self.stats, options.stats_json, finish=self._finish_stats, failed=self._output_failed)
        self.recording = RecordingSession(
            recorder,
            state=self.state,
            stats=self.stats,
            new_writer=writer_for(
                source,
                options.size,
                side_by_side=renderer.side_by_side,
                panels=panel_count(options.compare, engine.num_classes),
                made_with=lambda: {**self.made_with, "method": self.state.method, "normalize": self.state.normalize},
            ),
            output=options.output,
            say=self.controller.say,
            log=self._log,
        )
        self._sinks: list[FrameSink] = [self._stats_sink, self.recording, *outputs]
        self.front_end: WindowFrontEnd | Headless = Headless(self.delivered)
        if window is not None:
            renderer.help_rows = KEY_HELP  # the window's keys, for its help panel (key h)
            self.front_end = WindowFrontEnd(
                window,
                controller=self.controller,
                recording=self.recording,
                snapshots=SnapshotWriter(options.snapshot_dir),
                class_names=engine.class_names,
                model_name=engine.model_name,
                made_with=self.made_with,
                every_frame=not source.live,
                step_images=options.step_images,
                delay_s=options.delay_s,
                log=self._log,
            )

    @property
    def frames_out(self) -> int:
        """Frames rendered and handed to the sinks so far."""
        return self.stats.frames

    # ------------------------------------------------------------------ the run

    def run(self) -> Stats:
        """Runs to the end of input, the user's quit, Ctrl-C (KeyboardInterrupt) or an error.

        Whatever ends it, the recording is closed (playable) and the threads are joined.
        """
        live = self.source.live
        self.drawer.start()
        if self.worker is None:
            # Files: every frame, batched. Live: one frame at a time, sent at once (no one to wait for).
            self.worker = EngineWorker(self.engine, max_batch=1 if live else self.options.batch, max_wait_ms=_BATCH_WAIT_MS)
        options = self.options
        self._stages = stages = ExplainStages(
            self.source, self.engine, self.worker, self.state, every=options.every, batch=options.batch, max_frames=options.max_frames,
            stop=self._stop, times=self.times, engine_rate=self.engine_rate, faith=self._faith_schedule(),
        )  # fmt: skip
        to_engine: queue.Queue = queue.Queue(maxsize=max(2, 2 * self.options.batch))
        to_render: queue.Queue = queue.Queue(maxsize=1 if live else max(2, 2 * self.options.batch))
        threads = [
            threading.Thread(
                target=self._guard(stages.engine_stage), args=(to_engine, to_render), name="livecam-engine", daemon=True
            ),
            threading.Thread(target=self._guard(self._render_stage), args=(to_render,), name="livecam-render", daemon=True),
        ]
        if not live:
            threads.append(
                threading.Thread(target=self._guard(stages.read_stage), args=(to_engine,), name="livecam-reader", daemon=True)
            )
            if self.options.progress:
                self._sinks.append(ProgressSink(self._frames_expected()))
        try:
            for thread in threads:
                thread.start()
            self.front_end.run(self)
        finally:
            self._stop.set()
            self.front_end.end()
            for thread in threads:
                thread.join(timeout=10)
            # Every step runs even if one before it raises. Callbacks run last-in, first-out: the
            # worker, the outputs and the recording, the source, the window, the statistics last.
            with contextlib.ExitStack() as cleanup:
                cleanup.callback(self._stats_sink.close)
                cleanup.callback(self.front_end.close)
                cleanup.callback(self.source.close)
                for sink in self._sinks:
                    if sink is not self._stats_sink:
                        cleanup.callback(sink.close)
                if self._own_worker:
                    cleanup.callback(self.worker.close, timeout_s=10)
        if self._errors:
            raise self._errors[0]
        return self.stats

    def stopping(self) -> bool:
        """The run is stopping (an error, the end of a headless run's job, ``cancel``)."""
        return self._stop.is_set() or self._cancel.is_set()

    def reconnecting(self) -> bool:
        return self.source.status == "reconnecting"

    def _frames_expected(self) -> int | None:
        total = self.source.frame_count
        if self.options.max_frames is not None:
            total = min(total, self.options.max_frames) if total else self.options.max_frames
        return total

    def _guard(self, stage: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            try:
                stage(*args)
            except BaseException as exc:  # handed to the main thread, which re-raises it
                self._errors.append(exc)
                self._stop.set()

        return run

    # ------------------------------------------------------------------ stages

    def _render_stage(self, inbox: queue.Queue) -> None:
        front_end = self.front_end
        while not self._stop.is_set():
            try:
                item = inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is END:
                break
            t0 = time.perf_counter()
            # Both pictures, even with no recorder yet: r may start one and s take a snapshot.
            processed = self.drawer.drawn(self._processed(item), window=front_end.draws_window)
            t1 = time.perf_counter()
            self.times.add("render", (t1 - t0) * 1000)
            self._write_sinks(processed)
            self.times.add("write", (time.perf_counter() - t1) * 1000)
            front_end.write(processed)
        front_end.end()  # the end: a window shows what is left, then stops

    def _faith_schedule(self) -> Schedule:
        """Every Nth map tested; ``--faithfulness 1`` on files adds the offline curves to each."""
        every = self.options.faithfulness
        return Schedule(every, steps=DEFAULT_STEPS if every == 1 and not self.source.live else 0)

    def _processed(self, item: Item) -> Processed:
        """The item as the sinks get it (its pictures are drawn next)."""
        frame = item.frame
        source_time_s = frame.media_time_s
        first_capture = self._stages.first_capture
        if source_time_s is None and first_capture is not None:
            source_time_s = frame.timestamp_s - first_capture  # seconds since the run's first frame
        return Processed(
            frame, item.result, frame.image_bgr, item.class_lock is not None, source_time_s,
            class_lock=item.class_lock, map_id=item.map_seq, scene=item.scene, panels=item.panels, faith=item.faith,
        )  # fmt: skip

    def _write_sinks(self, processed: Processed) -> None:
        """Hands the frame to every sink; one that fails (a full disk) stops with what it kept, the others go on."""
        keeping = any(sink.keeps_output for sink in self._sinks) or self.front_end.keeps_output
        for sink in list(self._sinks):
            try:
                sink.write(processed)
            except SinkError as exc:
                self._sinks.remove(sink)
                sink.close()
                self._output_failed(str(exc))
        if keeping and not (any(sink.keeps_output for sink in self._sinks) or self.front_end.keeps_output):
            self._stop.set()  # the last thing this run kept has stopped (the recording's disk is full...): no job left

    # ------------------------------------------------------------------ what the front-end asks

    def redraw(self, processed: Processed, *, reexplain: bool = False, file: bool = True) -> Processed:
        """The frame drawn again with the state as it is now; ``reexplain``: first explained again
        with the method and class the user just chose (a frozen frame)."""
        again = self._stages.explain_again(processed.frame) if reexplain else None
        if again is not None:
            result, class_lock, map_id, panels = again
            processed = replace(
                processed, result=result, locked=class_lock is not None, class_lock=class_lock, map_id=map_id, panels=panels
            )
        return self.drawer.drawn(processed, file=file)

    def delivered(self, frame: Frame) -> None:
        """A frame was shown (or, headless, written): the end of its latency."""
        now = time.monotonic()
        self.times.add_latency((now - frame.timestamp_s) * 1000)
        self.display_rate.tick(now)
        self._last_output = now

    # ------------------------------------------------------------------ messages and the end

    def _output_failed(self, text: str) -> None:
        self.stats.output_errors.append(text)
        self.controller.say(text, 10)
        self._log(f"livecam: {text}")

    def _finish_stats(self, stats: Stats) -> None:
        first_capture = self._stages.first_capture
        if first_capture is not None and self._last_output is not None:
            stats.seconds = round(self._last_output - first_capture, 4)
        stats.fps = round(stats.frames / stats.seconds, 3) if stats.seconds > 0 else 0.0
        times = self.times.snapshot()
        stats.stage_ms = times.mean_ms
        stats.latency_p50_ms, stats.latency_p95_ms = times.latency_p50_ms, times.latency_p95_ms
        stats.dropped = self.drawer.dropped()
        stats.corrupt = self.source.corrupt
        stats.traces = self.engine.runtime_info.traces


def runtime_info(engine: CamEngine) -> dict[str, str]:
    """Which runtime runs the engine and why, for ``--stats-json``."""
    info = engine.runtime_info
    return {"name": info.runtime, "reason": info.reason, "head": info.head}
