"""``livecam batch --ray``: the jobs as a Ray Data dataset, explained by a pool of workers, written by Ray Data.

Each job (a video, or images of one folder) is one row of the dataset; ``map_batches`` hands
them to a callable class, ``JobRunner``, of which each worker (a Ray actor) holds one: it builds
its own ``CamEngine`` from the settings (the model is loaded there from its path or the zoo,
never pickled; warm, without TensorFlow, where the cache allows), on cores of its own
(``livecam.batch.cpus``) with TensorFlow's and OpenVINO's threads set to its CPUs, and runs each
job through the same function as the in-process runner (``livecam.batch.work.run_job``): videos
are decoded in the worker by livecam's own reader. Their rows are written with Ray Data's
Parquet writer into a staging folder, which becomes a part of DIR when the write is complete
(``livecam.batch.store``; a killed run's finished files are kept by ``--resume``); the progress
bar reads the same files as they are written. A worker killed mid-job is restarted and its job
retried by Ray.

DIR must be reachable from every node at the same path (a shared file system) on a cluster.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from livecam.batch.plan import Job, job_from_json, job_to_json
from livecam.batch.store import PART_COLUMNS, JobTally, Store, finished_part_file, part_columns
from livecam.batch.work import BatchSettings, run_job, worker_name
from livecam.errors import UserError, counted, first_line

WRITER_CPUS = 0  # Ray Data's writer asks for none: a job's rows are a Parquet file of a few KB, and workers may take every CPU
PROGRESS_POLL_S = 0.5  # how often the progress bar looks for rows Ray Data has written
WORKER_START_S = 900  # how long the pool may take to start (TensorFlow's import and the model, on busy nodes)
INSTALL = "--ray needs Ray Data, which is not installed; install it with pip install 'livecam[ray]'."


def check_ray(address: str) -> None:
    """Refuses (``UserError``) ``--ray`` when Ray Data is missing or nothing answers at the address."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise UserError(INSTALL) from None
    _answers(address or os.environ.get("RAY_ADDRESS", ""))


def pool_size(node_cpus: Sequence[float], workers: int | None, cpus_per_worker: float) -> int:
    """How many workers of ``cpus_per_worker`` to start on nodes of ``node_cpus``: ``workers``, or as many as fit.

    Every worker holds its CPUs for the whole run, so the pool may take every CPU of every node
    only because nothing else of the job asks for one: the jobs come from the driver (no read
    tasks) and Ray Data's writer asks for ``WRITER_CPUS`` (none). Never more workers than fit.

    Raises:
        UserError: not one worker fits on any node.
    """
    fit = sum(math.floor(cpus / cpus_per_worker + 1e-9) for cpus in node_cpus)
    if fit < 1:
        raise UserError(
            f"No worker of {cpus_per_worker:g} CPUs fits on this cluster (nodes with "
            f"{', '.join(f'{c:g}' for c in node_cpus)} CPUs); lower --cpus-per-worker."
        )
    return min(workers or fit, fit)


class JobRunner:
    """The callable class of ``map_batches``: one engine per worker, built here, then job after job."""

    def __init__(self, settings: BatchSettings, cpus: float) -> None:
        import ray

        from livecam.batch.cpus import CoreClaim

        self.cores = CoreClaim(cpus)  # before TensorFlow and OpenVINO start their threads
        threads = len(self.cores.cores) or max(1, math.floor(cpus))
        for name in ("TF_NUM_INTRAOP_THREADS", "LIVECAM_OPENVINO_THREADS", "OMP_NUM_THREADS"):
            os.environ[name] = str(threads)  # read when TensorFlow and OpenVINO start, just below
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
        import cv2

        cv2.setNumThreads(threads)
        from livecam import logs
        from livecam.cli.configs import engine_from_config
        from livecam.engine.worker import EngineWorker

        logs.configure(False)  # TensorFlow is imported only where the engine cannot start warm
        with logs.native_stderr_silenced(True):
            self.engine = engine_from_config(settings.engine)
        self.worker = EngineWorker(self.engine, max_batch=settings.batch, max_wait_ms=5.0)
        self.settings = settings
        self.label = worker_name(ray.get_runtime_context().get_node_id())

    def __call__(self, batch: dict) -> dict:
        columns: dict[str, list] = {name: [] for name in PART_COLUMNS}
        for text in batch["job"]:
            job = job_from_json(str(text))
            outcome = run_job(job, self.engine, self.settings, worker=self.worker, worker_label=self.label)
            for name, values in part_columns(job.id, outcome.rows, outcome.errors).items():
                columns[name] += values
        import pyarrow as pa

        return pa.table(columns)


def run_on_ray(
    jobs: Sequence[Job],
    store: Store,
    settings: BatchSettings,
    *,
    address: str,
    workers: int | None,
    cpus_per_worker: float,
    done: Callable[[Job, int], None] = lambda job, rows: None,
    say: Callable[[str], None] = lambda text: None,
) -> None:
    """Runs ``jobs`` on Ray (``address`` "" : $RAY_ADDRESS, or a Ray started here) and keeps them as one part.

    ``done`` is told of each job (and its rows) as its rows are written, for the progress bar.
    """
    from livecam import logs

    if logs.quiet():  # Ray's notes on its own settings and deprecations are not the user's to read
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"ray(\.|$)")
    import ray

    started = not ray.is_initialized()
    if started:
        _connect(ray, address)
    try:
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False  # livecam's bar, of inputs and frames, as in-process
        context.enable_operator_progress_bars = False
        context.print_on_execution_start = False
        # Jobs go out once every worker is up, so that the first one ready does not take the first
        # jobs of all (each worker builds its engine first, which takes seconds to minutes).
        context.wait_for_min_actors_s = WORKER_START_S
        nodes = [node["Resources"].get("CPU", 0.0) for node in ray.nodes() if node.get("Alive")]
        pool = min(pool_size(nodes, workers, cpus_per_worker), len(jobs))  # a worker without a job would only start
        say(
            f"livecam: {counted(pool, 'worker')} of {counted(cpus_per_worker, 'CPU')} on {counted(len(nodes), 'node')}"
            + (f" (not {workers}: {'no more fit' if pool < len(jobs) else 'one per job'})" if workers and pool < workers else "")
            + "; each builds its engine first"
        )
        dataset = ray.data.from_items([{"job": job_to_json(job)} for job in jobs], override_num_blocks=len(jobs))
        dataset = dataset.map_batches(
            JobRunner,
            fn_constructor_kwargs={"settings": settings, "cpus": cpus_per_worker},
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=pool),  # a fixed pool: every worker starts, on every node it fits
            num_cpus=cpus_per_worker,
            # A killed worker comes back and its job is tried again: Ray Data's own defaults for a pool's
            # actors (max_restarts=-1, max_task_retries=-1), which the killed-worker test holds it to.
        )
        staging = store.staging()
        with _Written(staging, jobs, done):
            # Writers of no CPU could start without bound, each in a new process: as many at a time as nodes.
            dataset.write_parquet(str(staging), ray_remote_args={"num_cpus": WRITER_CPUS}, concurrency=len(nodes))
        store.adopt(staging)
    finally:
        if started:
            ray.shutdown()


class _Written:
    """Tells ``done`` of each job whose rows Ray Data's writer has finished in ``folder``
    (``livecam.batch.store.JobTally``), from a thread while the run goes on, and once more at its end."""

    def __init__(self, folder: Path, jobs: Sequence[Job], done: Callable[[Job, int], None]) -> None:
        self._folder, self._done = folder, done
        self._jobs = {job.id: job for job in jobs}
        self._read: set[str] = set()
        self._tally = JobTally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="livecam-progress", daemon=True)

    def __enter__(self) -> _Written:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if exc_info[0] is None:
            self._look()

    def _watch(self) -> None:
        while not self._stop.wait(PROGRESS_POLL_S):
            try:
                self._look()
            except Exception:  # the bar only: the run and its rows do not depend on it
                continue

    def _look(self) -> None:
        with self._lock:
            if not self._folder.is_dir():
                return
            for file in sorted(self._folder.glob("*.parquet")):
                if file.name in self._read or (table := finished_part_file(file)) is None:
                    continue
                self._read.add(file.name)
                for job_id in self._tally.add(table):
                    if job_id in self._jobs:
                        self._done(self._jobs[job_id], self._tally.whole[job_id])


def _connect(ray, address: str) -> None:
    """Joins the cluster with the user's own Ray settings (RAY_ADDRESS, RAY_AUTH_MODE, the token file), or starts one here.

    ``address`` "auto" is Ray's own: the cluster running on this machine.
    """
    from livecam import logs

    with tempfile.TemporaryFile() as core_lines:  # what Ray's C++ core says while it connects: the refusal's reason
        try:
            with logs.native_stderr_silenced(True, into=core_lines.fileno()):
                ray.init(
                    # Alone: $RAY_ADDRESS, else a Ray of the run's own ("local"), never the last `ray start` Ray
                    # remembers in its temporary folder (which may long be gone: Ray would wait for it).
                    address=address or os.environ.get("RAY_ADDRESS") or "local",
                    include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                )  # fmt: skip
        except Exception as exc:  # Ray's errors for an address that does not answer, or refuses us, vary by version
            core_lines.seek(0)
            said = core_lines.read().decode("utf-8", "replace")
            text = first_line(exc)
            where = address or os.environ.get("RAY_ADDRESS") or "a Ray started here"
            if any(word in f"{said} {text}".lower() for word in ("unauthenticated", "invalidauthtoken", "auth token")):
                raise UserError(
                    f"The Ray cluster at {where} refused the connection (its token authentication did not accept ours); "
                    "set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                    "~/.ray/auth_token) as for its `ray start`."
                ) from None
            raise UserError(
                f"Could not connect to the Ray cluster at {where} ({text}); check the address and that it runs."
            ) from None
        finally:
            if not logs.quiet():  # --debug: the core's lines, as Ray would have shown them
                core_lines.seek(0)
                sys.stderr.write(core_lines.read().decode("utf-8", "replace"))


def _answers(address: str) -> None:
    """Says at once when nothing listens at ``host:port`` (Ray itself retries for a minute or more)."""
    import socket

    match = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:([0-9]{1,5})", address.strip())
    if match is None:
        return  # "auto", "local" or another form Ray resolves itself
    try:
        socket.create_connection((match[1], int(match[2])), timeout=10).close()
    except OSError as exc:
        raise UserError(
            f"Could not connect to the Ray cluster at {address} ({exc.strerror or exc}); check the address and that it runs."
        ) from None
