"""One thread that owns every engine call, and batches what many submitters send it.

A viewer's file loop, its live loop, and each browser client submit single frames and get a
future each. The worker groups what is pending by CAM method (one compiled call runs one
method) and runs a group when it holds ``max_batch`` frames or when its oldest frame has waited
``max_wait_ms``, the way model servers batch requests, so several clients share the engine's
batch. Each submitter gets its own row. Submitters that name their ``stream`` (a browser
connection, say) tell the worker who else may be about to send: when every stream seen in the
last second already has a frame waiting, nobody is worth waiting for and the batch runs at once,
so one client alone is never held back by the wait cap. Frames submitted together
(``submit_group``: a frame and the hidden copies of the faithfulness test) share one call.

Frames are resized to the model's input in the submitter's thread (``CamEngine.prepare``): the
worker thread only runs the engine, and many submitters resize in parallel (OpenCV releases the
GIL). The file pipeline resizes in its reader thread ahead of time, as it always did.
"""

from __future__ import annotations

import collections
import itertools
import operator
import threading
import time
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from livecam.engine.core import CamResult
from livecam.engine.methods import check_method
from livecam.engine.scoring import MAX_RANK
from livecam.errors import UserError

# A stream that submitted within this many seconds counts as active: its next frame may be on its way.
ACTIVE_STREAM_S = 1.0


class WorkerClosed(RuntimeError):
    """The engine worker was closed before this frame was explained."""


class Job(Future):
    """A ``concurrent.futures.Future`` of one frame's one-row ``CamResult``, with its timing.

    The timing attributes are set before the result, so they can be read once it is done.

    Attributes:
        engine_ms: how long the engine call took for the whole batch the frame was in.
        batch_size: how many frames that call explained.
        queued_ms: how long the frame waited between ``submit`` and the start of the call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.engine_ms: float | None = None
        self.batch_size: int | None = None
        self.queued_ms: float | None = None


@dataclass(frozen=True)
class WorkerStats:
    """What the worker did so far (see ``EngineWorker.snapshot``).

    Attributes:
        batches: engine calls made.
        frames: frames answered with a result.
        failed: frames whose engine call raised (their futures hold the exception).
        cancelled: frames whose future was cancelled before they ran (never explained).
        pending: frames waiting now.
        batch_sizes: engine calls per batch size, e.g. ``{1: 10, 4: 3}``.
        engine_ms: total milliseconds spent in engine calls.
    """

    batches: int
    frames: int
    failed: int
    cancelled: int
    pending: int
    batch_sizes: dict[int, int] = field(default_factory=dict)
    engine_ms: float = 0.0

    @property
    def mean_batch(self) -> float | None:
        """Mean frames per engine call; None before the first."""
        total = sum(size * n for size, n in self.batch_sizes.items())
        return total / self.batches if self.batches else None


@dataclass
class _Request:
    prepared: np.ndarray
    class_ids: tuple[int, ...]  # one per row the frame gets (-1: the top class, -2: the second, ...)
    contrast: int  # -1: none
    method: str
    job: Job
    submitted_s: float
    stream: Hashable | None
    box: tuple[float, float, float, float]  # where the map lies on the frame as submitted (CamResult.box)
    group: int  # requests submitted together (``submit_group``) share one engine call
    now: bool = False  # a group that runs as soon as the worker is free (``submit_group(now=True)``)


class EngineWorker:
    """Runs a ``CamEngine`` in one thread for any number of submitters, batching their frames.

    Args:
        engine: the compiled engine; from now on only this worker should call it.
        max_batch: the most frames one engine call explains.
        max_wait_ms: the longest a frame waits for others to share its call; 0 runs whatever
            is pending as soon as the worker is free.
    """

    def __init__(self, engine: Any, *, max_batch: int = 8, max_wait_ms: float = 5.0) -> None:
        if max_batch < 1:
            raise ValueError(f"Expected max_batch >= 1. Received: max_batch={max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"Expected max_wait_ms >= 0. Received: max_wait_ms={max_wait_ms}")
        self.engine = engine
        self.max_batch = int(max_batch)
        self.max_wait_s = max_wait_ms / 1000.0
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._closed = False
        self._batches = 0
        self._frames = 0
        self._failed = 0
        self._cancelled = 0
        self._engine_ms = 0.0
        self._batch_sizes: collections.Counter[int] = collections.Counter()
        self._stream_seen_s: dict[Hashable, float] = {}  # stream -> its last submit
        self._groups = itertools.count()
        self._thread = threading.Thread(target=self._run, name="livecam-engine-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API

    def submit(
        self,
        frame_bgr: np.ndarray,
        *,
        class_id: int | None = None,
        method: str | None = None,
        stream: Hashable | None = None,
        contrast: int | None = None,
    ) -> Job:
        """Queues one frame to be explained.

        Args:
            frame_bgr: uint8 BGR (H, W, 3), any size; not to be modified until the job is done.
            class_id: the class to explain; None explains the frame's top class.
            method: the CAM method; None uses the engine's current one.
            contrast: a class B to explain "why the class and not B" (z_A - z_B); None: none.
            stream: who sends (one per client, e.g. a connection); None for an anonymous
                submitter, whose frames always wait up to ``max_wait_ms`` for company.

        Returns:
            A ``Job`` (a Future) resolving to a one-row ``CamResult`` (its ``box`` placed on
            ``frame_bgr``), or to the engine's
            exception, or ``WorkerClosed``. Cancelling it before it runs keeps it out of the engine.

        Raises:
            UserError: the frame, class id or method is not valid (nothing is queued).
            WorkerClosed: the worker is closed.
        """
        ids = (self._check_class_id(class_id),)
        return self._submit([frame_bgr], [ids], self._check_class_id(contrast, "contrast"), method, stream)[0]

    def submit_group(
        self,
        frames_bgr: Sequence[np.ndarray],
        *,
        class_ids: Sequence[int | None],
        method: str | None = None,
        stream: Hashable | None = None,
        contrast: int | None = None,
        now: bool = True,
    ) -> list[Job]:
        """Queues frames that must share one engine call (a frame and images that ride with it).

        A group is never split: it may make a call bigger than ``max_batch``. With ``now`` it runs
        as soon as the worker is free (it is its own company: a live frame); without, it waits for
        company like any frame (a file's frames, batched). Arguments as in ``submit``, one class id
        per frame (the contrast is every frame's); returns one ``Job`` per frame, in order.
        """
        if len(frames_bgr) != len(class_ids) or not frames_bgr:
            raise ValueError(
                f"Expected as many class ids as frames, at least one. Received: {len(frames_bgr)} and {len(class_ids)}"
            )
        ids = [(self._check_class_id(class_id),) for class_id in class_ids]
        return self._submit(frames_bgr, ids, self._check_class_id(contrast, "contrast"), method, stream, now=now)

    def submit_ranks(
        self,
        frame_bgr: np.ndarray,
        ranks: int,
        *,
        method: str | None = None,
        stream: Hashable | None = None,
        contrast: int | None = None,
    ) -> Job:
        """Queues one frame to be explained for each of its ``ranks`` most probable classes, in
        one engine call (its rows ride in the same batch; arguments as in ``submit``).

        Returns:
            A ``Job`` resolving to a ``ranks``-row ``CamResult``: the frame's top class, its
            second, ... (at most ``scoring.MAX_RANK``, and the number of classes).
        """
        ranks = min(int(ranks), MAX_RANK, self.engine.num_classes)
        ids = tuple(-rank for rank in range(1, ranks + 1))
        return self._submit([frame_bgr], [ids], self._check_class_id(contrast, "contrast"), method, stream)[0]

    def _submit(
        self,
        frames_bgr: Sequence[np.ndarray],
        class_ids: Sequence[tuple[int, ...]],
        contrast: int,
        method: str | None,
        stream: Hashable | None,
        *,
        now: bool = False,
    ) -> list[Job]:
        """Queues frames as one group, each with its rows' class ids; one ``Job`` per frame."""
        name = self.engine.method if method is None else check_method(method)
        submitted_s = time.monotonic()
        group = next(self._groups)
        requests = []
        for frame_bgr, ids in zip(frames_bgr, class_ids):
            if isinstance(frame_bgr, np.ndarray) and frame_bgr.ndim == 4:
                raise UserError(f"Expected one frame of shape (H, W, 3). Received: shape={frame_bgr.shape}")
            prepared = self.engine.prepare(frame_bgr)  # validates, and resizes here in the caller's thread
            box = self.engine.map_box(frame_bgr.shape[1::-1])
            requests.append(_Request(prepared, ids, contrast, name, Job(), submitted_s, stream, box, group, now))
        with self._cond:
            if self._closed:
                raise WorkerClosed("The engine worker is closed; no more frames can be submitted.")
            if stream is not None:
                self._stream_seen_s[stream] = submitted_s
            self._pending.extend(requests)
            self._cond.notify_all()
        return [request.job for request in requests]

    def snapshot(self) -> WorkerStats:
        """The counters now (a frozen copy)."""
        with self._cond:
            return WorkerStats(
                batches=self._batches,
                frames=self._frames,
                failed=self._failed,
                cancelled=self._cancelled,
                pending=len(self._pending),
                batch_sizes=dict(sorted(self._batch_sizes.items())),
                engine_ms=round(self._engine_ms, 3),
            )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, timeout_s: float | None = None) -> None:
        """Fails the frames still waiting with ``WorkerClosed``, lets a running call finish, joins the thread.

        Args:
            timeout_s: give up joining after this long (the thread is a daemon); None waits.
        """
        with self._cond:
            self._closed = True
            pending, self._pending = self._pending, []
            self._cond.notify_all()
        for request in pending:
            if request.job.set_running_or_notify_cancel():
                request.job.set_exception(WorkerClosed("The engine worker was closed before this frame was explained."))
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    def __enter__(self) -> EngineWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    batch, wait_s = self._next_batch()
                    if batch:
                        break
                    self._cond.wait(wait_s)
            self._dispatch(batch)

    def _next_batch(self) -> tuple[list[_Request], float | None]:
        """The group to run now, or none and how long to wait for one (None: until a submit)."""
        live = [r for r in self._pending if not r.job.cancelled()]
        self._cancelled += len(self._pending) - len(live)
        self._pending = live
        groups: dict[str, list[_Request]] = {}
        for request in live:  # oldest first, so the group with the oldest frame comes first
            groups.setdefault(request.method, []).append(request)
        now = time.monotonic()
        everyone_here = self._everyone_here(live, now)
        wait_s: float | None = None
        for group in groups.values():
            due_s = group[0].submitted_s + self.max_wait_s - now
            # one submit_group(now=True), nobody to wait for
            whole = len(group) > 1 and group[0].now and group[0].group == group[-1].group
            if _rows(group) >= self.max_batch or due_s <= 0 or everyone_here or whole:
                batch = _whole_groups(group, self.max_batch)
                taken = {id(r) for r in batch}
                self._pending = [r for r in live if id(r) not in taken]
                return batch, None
            wait_s = due_s if wait_s is None else min(wait_s, due_s)
        return [], wait_s

    def _everyone_here(self, pending: list[_Request], now: float) -> bool:
        """Whether every active stream already has a frame waiting (so waiting gains nothing)."""
        for stream, seen_s in list(self._stream_seen_s.items()):
            if now - seen_s > ACTIVE_STREAM_S:
                del self._stream_seen_s[stream]
        waiting = {r.stream for r in pending}
        return bool(pending) and None not in waiting and waiting >= set(self._stream_seen_s)

    def _dispatch(self, batch: list[_Request]) -> None:
        running = [r for r in batch if r.job.set_running_or_notify_cancel()]
        if len(running) < len(batch):
            with self._cond:
                self._cancelled += len(batch) - len(running)
        batch = running
        if not batch:
            return
        rows = [len(r.class_ids) for r in batch]
        frames = batch[0].prepared[None] if rows == [1] else np.stack([r.prepared for r in batch for _ in r.class_ids])
        class_ids = np.array([c for r in batch for c in r.class_ids], np.int32)
        contrast = [r.contrast for r in batch for _ in r.class_ids]
        options = {"contrast": contrast} if max(contrast) >= 0 else {}  # the engine's result then says so
        started_s = time.monotonic()
        t0 = time.perf_counter()
        try:
            result = self.engine(frames, class_id=class_ids, method=batch[0].method, **options)
        except Exception as exc:  # the submitters' business: each of them gets it
            with self._cond:
                self._failed += len(batch)
            for request in batch:
                request.job.set_exception(exc)
            return
        engine_ms = (time.perf_counter() - t0) * 1000
        with self._cond:
            self._batches += 1
            self._frames += len(class_ids)
            self._batch_sizes[len(class_ids)] += 1
            self._engine_ms += engine_ms
        starts = np.cumsum([0, *rows])
        for request, start, stop in zip(batch, starts, starts[1:]):
            request.job.engine_ms = engine_ms
            request.job.batch_size = len(class_ids)
            request.job.queued_ms = (started_s - request.submitted_s) * 1000
            # the batch was at the input size; the frames were not
            request.job.set_result(replace(rows_of(result, slice(start, stop)), box=request.box))

    def _check_class_id(self, class_id: int | None, name: str = "class_id") -> int:
        if class_id is None:
            return -1
        n = self.engine.num_classes
        try:
            value = operator.index(class_id)
        except TypeError:
            value = None
        if value is None or isinstance(class_id, bool) or not 0 <= value < n:
            raise UserError(f"Expected {name} None or an int in [0, {n - 1}]. Received: {name}={class_id!r}")
        return value


def _rows(requests: list[_Request]) -> int:
    return sum(len(r.class_ids) for r in requests)


def _whole_groups(requests: list[_Request], max_batch: int) -> list[_Request]:
    """The oldest requests, up to ``max_batch`` rows, without splitting a frame's rows or a group
    submitted together (either may go past ``max_batch``)."""
    batch: list[_Request] = []
    for request in requests:
        if batch and _rows(batch) + len(request.class_ids) > max_batch and request.group != batch[-1].group:
            break
        batch.append(request)
    return batch


def rows_of(result: CamResult, rows: slice) -> CamResult:
    """The CamResult of some of ``result``'s rows (views into it, no copies)."""
    return replace(
        result,
        probs=result.probs[rows],
        class_ids=result.class_ids[rows],
        cam=result.cam[rows],
        topk_ids=result.topk_ids[rows],
        topk_probs=result.topk_probs[rows],
        finite=result.finite[rows],
        contrast_ids=None if result.contrast_ids is None else result.contrast_ids[rows],
        cam_max=None if result.cam_max is None else result.cam_max[rows],
    )


def split_rows(result: CamResult) -> list[CamResult]:
    """One single-row CamResult per frame (views into the batch result, no copies)."""
    return [rows_of(result, slice(i, i + 1)) for i in range(len(result))]
