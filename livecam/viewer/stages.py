"""The stages before the renderer: reading ahead (files), and the engine stage, which hands
frames to the engine worker and passes them on in order with their maps.

Live sources are read by the engine stage itself, the newest frame one at a time, so that
latency stays at about one engine step; files are read ahead by a reader thread, and the engine
stage keeps up to two batches at the worker, every frame in order. ``--every N`` explains every
Nth frame and lets the frames between reuse its map. ``--faithfulness N`` tests every Nth map
(``livecam.trust.faithfulness``): live, its hidden copies ride in the next frame's engine call
and the readout comes with that frame; files, they ride with the frames at the worker and the
readout comes with the frame itself.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from livecam.engine.compare import CompareJob, submit_compare
from livecam.engine.core import CamEngine, CamResult
from livecam.engine.worker import EngineWorker, Job
from livecam.meters import RateMeter, StageTimes
from livecam.sources import Frame, FrameSource
from livecam.trust.faithfulness import Faithfulness, Probe, Schedule, answered
from livecam.viewer.control import ViewerState

END = object()  # sentinel: the source has ended
POLL_S = 0.05  # how long a blocked stage waits before it looks at the stop flag again


@dataclass
class Item:
    """One frame on its way to the render stage."""

    frame: Frame
    prepared: np.ndarray  # the frame at the model's input size
    job: Job | None = None  # its map on its way; None: it reuses the map before it (--every N)
    result: CamResult | None = None  # a one-row result
    map_seq: int = 0  # names the map, for the renderer's smoothing (reused maps keep the number)
    class_lock: int | None = None  # the locked class the map was asked for
    panels: tuple[CamResult, ...] = ()  # side by side (--compare): every panel's one-row result; result is the first
    scene: int = 0  # counts unrelated pictures (Frame.unrelated): a new one restarts the smoothing
    probed: bool = False  # files: its map was offered to the faithfulness schedule
    # Its faithfulness probe and the jobs of the probe's images (None: not submitted yet, files).
    riders: tuple[Probe, list[Job] | None] | None = None
    faith: Faithfulness | None = None  # the readout that came with this frame


class ExplainStages:
    """The reader and engine stages of one run (each method is a thread's body, or called from one).

    Args:
        source, engine: the run's.
        worker: the engine worker the maps are asked of.
        state: the viewer's state (the method, the locked class, paused).
        every: explain every Nth frame (``--every``).
        batch: files: the batch size (up to two batches are kept at the worker).
        max_frames: stop after this many frames; None: the whole source.
        stop: set when the run stops.
        times, engine_rate: the run's meters (capture and engine times; maps per second).
        faith: which maps get a faithfulness probe; None: none.
    """

    def __init__(
        self,
        source: FrameSource,
        engine: CamEngine,
        worker: EngineWorker,
        state: ViewerState,
        *,
        every: int,
        batch: int,
        max_frames: int | None,
        stop: threading.Event,
        times: StageTimes,
        engine_rate: RateMeter,
        faith: Schedule | None = None,
    ) -> None:
        self.source, self.engine, self.worker, self.state = source, engine, worker, state
        self.every, self.batch, self.max_frames = every, batch, max_frames
        self._stop = stop
        self.times, self.engine_rate = times, engine_rate
        self.faith = faith or Schedule(0)
        self.first_capture: float | None = None  # when the run's first frame was captured (monotonic seconds)
        self._map_ids = itertools.count(1)  # numbers the maps, so that the renderer folds each into its smoothing once
        self._scene = 0  # the Frame.unrelated pictures so far (read by one stage only)
        self._last_map: tuple | None = None  # (row, map_seq, class_lock, panels), for --every N
        self._probed: Item | None = None  # files: the frame whose probe waits in faith.riding

    def explain_again(self, frame: Frame) -> tuple[CamResult, int | None, int, tuple[CamResult, ...]] | None:
        """The frame explained with the method, class, contrast and comparison chosen now: (row
        placed on the frame, its class lock, its map number, the panels side by side); None if
        the run stops first."""
        class_lock = self.state.class_id
        rows = self.wait(self.submit(self.engine.prepare(frame.image_bgr), class_lock))
        if rows is None:
            return None
        panels = self.placed_panels(rows, frame)
        return panels[0], class_lock, next(self._map_ids), panels if len(panels) > 1 else ()

    def submit(self, prepared: np.ndarray, class_lock: int | None) -> Job | CompareJob:
        """Asks the worker for a frame's map, or for its panels side by side (``state.compare``)."""
        state = self.state
        if state.compare is None:
            return self.worker.submit(prepared, class_id=class_lock, method=state.method, contrast=state.contrast_id)
        return submit_compare(
            self.worker, prepared, state.compare, class_id=class_lock, method=state.method, contrast=state.contrast_id
        )

    def read_stage(self, out: queue.Queue) -> None:
        """Files: decode and resize ahead of the engine, every frame, in order."""
        count = 0
        while not self._stop.is_set():
            if self.max_frames is not None and count >= self.max_frames:
                break
            t0 = time.perf_counter()
            frame = self.source.read()
            if frame is None:
                break
            item = self._new_item(frame)
            self.times.add("capture", (time.perf_counter() - t0) * 1000)
            self.first_capture = self.first_capture or frame.timestamp_s
            self.put(out, item)
            count += 1
        self.put(out, END)

    def _new_item(self, frame: Frame) -> Item:
        """A frame on its way, resized for the engine; an unrelated picture starts a new scene."""
        self._scene += frame.unrelated
        return Item(frame, self.engine.prepare(frame.image_bgr), scene=self._scene)

    def engine_stage(self, inbox: queue.Queue, out: queue.Queue) -> None:
        """Hands frames to the worker and passes them on, in order, with their maps."""
        if self.source.live:
            self._explain_live(out)
        else:
            self._explain_files(inbox, out)
        self.put(out, END)

    def _explain_live(self, out: queue.Queue) -> None:
        """Live: the newest frame, one at a time, so that latency stays at one engine step."""
        count = 0
        source_paused = False
        while not self._stop.is_set():
            if self.state.paused != source_paused:  # frames that go by in a pause are not dropped
                source_paused = self.state.paused
                self.source.set_paused(source_paused)
            if self.state.paused:
                time.sleep(POLL_S)
                continue
            if self.max_frames is not None and count >= self.max_frames:
                break
            t0 = time.perf_counter()
            frame = self.source.read(timeout_s=0.5)
            if frame is None:
                if self.source.status == "ended":
                    break
                continue  # reconnecting: the display shows the status meanwhile
            item = self._new_item(frame)
            self.times.add("capture", (time.perf_counter() - t0) * 1000)
            self.first_capture = self.first_capture or frame.timestamp_s
            self._submit(item, count)
            self._pass_on(item, out)
            count += 1

    def _explain_files(self, inbox: queue.Queue, out: queue.Queue) -> None:
        """Files: every frame, in order, with up to two batches at the worker so that it never waits for us."""
        in_flight: collections.deque[Item] = collections.deque()
        count = 0
        while not self._stop.is_set():
            while in_flight:
                self._probe_files(in_flight)
                if not (_at_worker(in_flight) >= 2 * self.batch or _ready(in_flight[0])):
                    break
                self._pass_on(in_flight.popleft(), out)
            if self.state.paused:
                time.sleep(POLL_S)
                continue
            try:
                item = inbox.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is END:
                break
            self._submit(item, count)
            in_flight.append(item)
            count += 1
        while in_flight and not self._stop.is_set():
            self._pass_on(in_flight.popleft(), out)

    def _submit(self, item: Item, count: int) -> None:
        # --every N: the map (and the label with it) is computed for every Nth frame and reused
        # in between, so the engine's cost drops N-fold. An unrelated picture (of a folder) is
        # always explained: another picture's map would be a wrong answer, not an old one.
        if count % self.every == 0 or item.frame.unrelated:
            item.class_lock = self.state.class_id
            probe, self.faith.riding = self.faith.riding, None
            if probe is None or self.state.compare is not None:  # side by side: no probe rides (see _pass_on)
                item.job = self.submit(item.prepared, item.class_lock)
                return
            # A frame before's hidden copies ride in this frame's engine call (one step, a bigger
            # batch). Live, the readout comes with this frame; files, with the frame probed.
            jobs = self.worker.submit_group(
                [item.prepared, *probe.images],
                class_ids=[item.class_lock] + [probe.class_id] * len(probe.images),
                method=self.state.method,
                contrast=self.state.contrast_id,
                now=self.source.live,  # files: the group waits for company, batched as the frames are
            )
            owner, self._probed = self._probed or item, None
            item.job, owner.riders = jobs[0], (probe, jobs[1:])

    def _pass_on(self, item: Item, out: queue.Queue) -> None:
        """Waits for the item's map (or takes the last one) and hands the item to the render stage."""
        row = None
        if item.job is not None:
            rows = self.wait(item.job)
            if rows is None:
                return  # stopping
            self.times.add("engine", item.job.engine_ms / item.job.batch_size)
            self.engine_rate.tick()
            panels = self.placed_panels(rows, item.frame)
            item.result, item.map_seq, item.job = panels[0], next(self._map_ids), None
            item.panels = panels if len(panels) > 1 else ()
            self._last_map = (item.result, item.map_seq, item.class_lock, item.panels)
            # The faithfulness test probes single maps; side by side (--compare) has none.
            row = rows if not isinstance(rows, tuple) else None
            if row is not None and not self.source.live and not item.probed:
                self._probe_file(item, row)
        elif self._last_map is not None:
            item.result, item.map_seq, item.class_lock, item.panels = self._last_map
        if item.riders is not None:
            probe, jobs = item.riders
            if jobs is None:  # no frame came to ride with (the file ended): the probe goes alone
                self.faith.riding = self._probed = None
                jobs = self._submit_alone(probe)
            rows = [self.wait(job) for job in jobs]
            if any(r is None for r in rows):
                return  # stopping
            item.faith, item.riders = answered(probe, rows), None
        self.put(out, item)
        if row is not None and self.source.live:
            # Made once the frame is on its way to the screen (never delaying it); it rides with the next frame.
            self.faith.riding = self.faith.after(item.prepared, row, item.frame.index)

    def _probe_files(self, in_flight: collections.deque[Item]) -> None:
        """Files: probes go to the worker as soon as their maps are back, in order."""
        for item in in_flight:
            if item.job is not None and not item.probed:
                if not item.job.done():
                    return
                rows = item.job.result()
                if isinstance(rows, tuple):  # side by side: nothing to probe
                    item.probed = True
                    continue
                self._probe_file(item, rows)

    def _probe_file(self, item: Item, row: CamResult) -> None:
        """Files: offers an explained frame's map to the faithfulness schedule; a probe rides in the
        engine call of the next frame submitted (as live), and its readout comes with this frame."""
        item.probed = True
        probe = self.faith.after(item.prepared, row, item.frame.index)
        if probe is None:
            return
        if self._probed is not None:  # the one before found no frame to ride with: it goes alone
            self._probed.riders = (self.faith.riding, self._submit_alone(self.faith.riding))
        self.faith.riding, self._probed, item.riders = probe, item, (probe, None)

    def _submit_alone(self, probe: Probe) -> list[Job]:
        n = len(probe.images)
        return self.worker.submit_group(list(probe.images), class_ids=[probe.class_id] * n, method=self.state.method)

    def wait(self, job: Job | CompareJob) -> Any:
        """The job's row; None if the run stops first. The engine's exception is raised here."""
        while not self._stop.is_set():
            try:
                return job.result(timeout=POLL_S)
            except FutureTimeout:
                continue
        return None

    def placed(self, row: CamResult, frame: Frame) -> CamResult:
        """The row with its map placed on the frame: the worker was given the frame prepared (at the input size)."""
        return replace(row, box=self.engine.map_box(frame.image_bgr.shape[1::-1]))

    def placed_panels(self, rows: CamResult | tuple[CamResult, ...], frame: Frame) -> tuple[CamResult, ...]:
        """A job's answer (one row, or a comparison's panels) placed on the frame."""
        return tuple(self.placed(row, frame) for row in (rows if isinstance(rows, tuple) else (rows,)))

    def put(self, q: queue.Queue, item: Any) -> None:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue


def _ready(item: Item) -> bool:
    """Its map is there, or it reuses the one before it, and its faithfulness readout is there."""
    riders_done = item.riders is None or (item.riders[1] is not None and all(job.done() for job in item.riders[1]))
    return (item.job is None or (item.job.done() and item.probed)) and riders_done


def _at_worker(in_flight: collections.deque[Item]) -> int:
    """Frames whose maps are still on their way (a frame waiting only for its readout is not one)."""
    return sum(item.job is not None and not item.job.done() for item in in_flight)
