"""The in-process runner, the default: one engine, the viewer's batched file pipeline, two jobs at once.

Nothing to install or start. Each job's frames are read ahead, explained in batches and drawn in
overlapping stages (``livecam.viewer.pipeline``), so the cores are busy within a job; two jobs run
at once (``LANES``), so that one's start and end (the first frames read, the last batch, the
overlays' and the video's close) overlap the other's middle, and the engine worker they share
fills its batches from both. The model is built once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from livecam.batch.plan import Job
from livecam.batch.store import Store
from livecam.batch.work import BatchSettings, run_job

LANES = 2  # measured on 2 cores: 1.04-1.13x the rows per second of one job at a time (docs/performance.md)


def run_local(
    jobs: Sequence[Job],
    store: Store,
    settings: BatchSettings,
    engine,
    *,
    done: Callable[[Job, int], None] = lambda job, rows: None,
    lanes: int = LANES,
) -> None:
    """Runs ``jobs`` and keeps each as a part when it ends (``done`` is told its rows, for the progress bar).

    An error or Ctrl-C cancels the jobs under way (their outputs closed, nothing of them kept) and
    is raised; the jobs kept before it stay kept, for ``--resume``.
    """
    from livecam.engine.worker import EngineWorker

    worker = EngineWorker(engine, max_batch=settings.batch, max_wait_ms=5.0)
    cancel = threading.Event()
    waiting = iter(jobs)
    running: dict[Future, Job] = {}
    try:
        with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="livecam-job") as lanes_pool:

            def start_next() -> None:
                job = next(waiting, None)
                if job is not None:
                    running[lanes_pool.submit(run_job, job, engine, settings, worker=worker, cancel=cancel)] = job

            try:
                for _ in range(lanes):
                    start_next()
                while running:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        job = running.pop(future)
                        outcome = future.result()
                        store.save_job(job, outcome.rows, outcome.errors)
                        done(job, len(outcome.rows))
                        start_next()
            except BaseException:
                cancel.set()  # the lanes end their jobs now; leaving the pool waits for them
                raise
    finally:
        worker.close(timeout_s=10)
