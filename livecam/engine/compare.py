"""Side by side and "why A and not B": what the engine is asked for a comparison, and how a result says it.

- ``--compare classes``: the maps of a frame's top 3 classes, in one engine call (its rows carry
  the ranked class ids -1, -2, -3: ``scoring.explained_classes``). ``--compare methods``: the
  frame under each CAM method (one call per method, since a call runs one method).
- ``--contrast B``: each map explains z_A - z_B of the pre-softmax scores, A the explained class
  (``scoring.explained_scores``); ``contrast_fields`` is how every record names B.

``submit_compare`` hands the worker a comparison and returns one future of its panels, each a
one-row ``CamResult``; the renderer tiles them (``livecam.render.grid``).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from livecam.engine.methods import METHOD_NAMES
from livecam.errors import UserError, close_matches

COMPARE_MODES = ("classes", "methods")
COMPARE_CLASSES = 3  # how many top classes ``--compare classes`` shows


def check_compare(value: Any) -> str | None:
    """A compare mode from ``COMPARE_MODES``, or None (also for "off" and "none")."""
    if value is None or value in ("off", "none", ""):
        return None
    if value not in COMPARE_MODES:
        close = close_matches(str(value), COMPARE_MODES, n=1)
        hint = f" Did you mean {close}?" if close else ""
        raise UserError(f"Expected compare in {', '.join(COMPARE_MODES)} or off. Received: compare={value!r}.{hint}")
    return value


def panel_count(mode: str | None, num_classes: int) -> int:
    """How many panels a comparison shows (1: none)."""
    if mode == "classes":
        return min(COMPARE_CLASSES, num_classes)
    return len(METHOD_NAMES) if mode == "methods" else 1


def contrast_fields(result: Any, class_names: Sequence[str], index: int = 0) -> dict[str, Any]:
    """``{"contrast_id", "contrast_name"}`` of a result's row: the class B its map was contrasted
    with (it explains z_A - z_B), or None for both. Every record (the WebSocket result,
    ``--results``, snapshots) takes these fields from here."""
    ids = getattr(result, "contrast_ids", None)
    contrast = -1 if ids is None else int(ids[index])
    if contrast < 0:
        return {"contrast_id": None, "contrast_name": None}
    return {"contrast_id": contrast, "contrast_name": class_names[contrast]}


class CompareJob(Future):
    """A future of a comparison's panels (a tuple of one-row ``CamResult``s), with the timing of
    its engine calls as the worker's ``Job`` has it (``engine_ms`` summed, ``batch_size`` the
    rows they explained)."""

    def __init__(self, jobs: Sequence[Future], split: bool) -> None:
        super().__init__()
        self._jobs, self._split = tuple(jobs), split
        self.engine_ms: float | None = None
        self.batch_size: int | None = None
        self.queued_ms: float | None = None
        self._left = len(self._jobs)
        self._lock = threading.Lock()  # a job already done calls back in the submitter's thread
        for job in self._jobs:
            job.add_done_callback(self._one_done)

    def cancel(self) -> bool:
        return all([job.cancel() for job in self._jobs]) and super().cancel()

    def _one_done(self, _: Future) -> None:
        with self._lock:
            self._left -= 1
            if self._left:
                return
        if not self.set_running_or_notify_cancel():
            return
        try:
            results = [job.result() for job in self._jobs]
        except BaseException as exc:  # the engine's exception, or the worker closed: the caller's business
            self.set_exception(exc)
            return
        self.engine_ms = sum(job.engine_ms for job in self._jobs)
        self.batch_size = sum(job.batch_size for job in self._jobs)
        self.queued_ms = self._jobs[0].queued_ms
        if self._split:
            from livecam.engine.worker import split_rows

            results = split_rows(results[0])
        self.set_result(tuple(results))


def submit_compare(
    worker: Any,
    frame_bgr: np.ndarray,
    mode: str,
    *,
    class_id: int | None,
    method: str,
    contrast: int | None = None,
    stream: Hashable | None = None,
) -> CompareJob:
    """Asks ``worker`` (an ``EngineWorker``) for a comparison of one frame.

    "classes": the frame's top classes, one call (``class_id``, the lock, is ignored: the panels
    are the top classes); "methods": the locked class (or the top one) under each method.
    """
    if mode == "classes":
        return CompareJob(
            [worker.submit_ranks(frame_bgr, COMPARE_CLASSES, method=method, stream=stream, contrast=contrast)], True
        )
    jobs = [worker.submit(frame_bgr, class_id=class_id, method=name, stream=stream, contrast=contrast) for name in METHOD_NAMES]
    return CompareJob(jobs, False)
