"""The in-process runner, the default: one engine, the viewer's batched file pipeline, one job after another.

Nothing to install or start. Each job's frames are read ahead, explained in batches and drawn in
overlapping stages (``livecam.viewer.pipeline``), so the cores are busy within a job; the jobs
share one engine worker, so the model is built once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from livecam.batch.plan import Job
from livecam.batch.store import Store
from livecam.batch.work import BatchSettings, JobOutcome, run_job


def run_local(
    jobs: Sequence[Job],
    store: Store,
    settings: BatchSettings,
    engine,
    *,
    done: Callable[[Job, JobOutcome], None] = lambda j, o: None,
) -> None:
    """Runs ``jobs`` and keeps each as a part when it ends (``done`` is told, for the progress bar)."""
    from livecam.engine.worker import EngineWorker

    worker = EngineWorker(engine, max_batch=settings.batch, max_wait_ms=5.0)
    try:
        for job in jobs:
            outcome = run_job(job, engine, settings, worker=worker)
            store.save_job(job, outcome.rows, outcome.errors)
            done(job, outcome)
    finally:
        worker.close(timeout_s=10)
