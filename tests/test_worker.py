"""Tests for livecam.engine.worker: one engine thread, batches by method, one row per submitter."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from livecam.engine.core import CamEngine
from livecam.engine.worker import EngineWorker, Job, WorkerClosed
from livecam.errors import UserError

SIZE = 32
N_CLASSES = 4
LONG_WAIT_MS = 60_000  # a wait cap no test reaches: batches then go only when full


@pytest.fixture(scope="module")
def engine(tiny_engine) -> CamEngine:
    """conftest's tiny engine: SIZE x SIZE input, N_CLASSES classes."""
    assert tiny_engine.input_size == (SIZE, SIZE) and tiny_engine.num_classes == N_CLASSES
    return tiny_engine


def frames(n: int, size: tuple[int, int] = (SIZE, SIZE), seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]


class CountingEngine:
    """The real engine, with a record of each call (thread, batch size, class ids, method), and failures on demand."""

    def __init__(self, engine: CamEngine) -> None:
        self.engine = engine
        self.calls: list[tuple[str, int, list[int], str]] = []
        self.fail_next = False

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def __call__(self, batch, class_id=None, *, method=None):
        self.calls.append((threading.current_thread().name, len(batch), list(np.asarray(class_id)), method))
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the model fell over")
        return self.engine(batch, class_id=class_id, method=method)


def test_each_submitter_gets_its_own_row_with_its_own_class(engine):
    spy = CountingEngine(engine)
    images = frames(4)
    class_ids = [None, 2, 0, None]
    with EngineWorker(spy, max_batch=4, max_wait_ms=LONG_WAIT_MS) as worker:
        jobs = [worker.submit(f, class_id=c) for f, c in zip(images, class_ids)]
        rows = [job.result(timeout=60) for job in jobs]
        stats = worker.snapshot()
    assert [c[1:] for c in spy.calls] == [(4, [-1, 2, 0, -1], "gradcam")]  # one call, four rows
    assert spy.calls[0][0] == "livecam-engine-worker"
    for image, class_id, row, job in zip(images, class_ids, rows, jobs):
        alone = engine(image, class_id=class_id)
        assert len(row) == 1
        assert row.class_ids[0] == alone.class_ids[0]
        if class_id is not None:
            assert row.class_ids[0] == class_id
        np.testing.assert_allclose(row.cam, alone.cam, atol=1e-5)
        np.testing.assert_allclose(row.probs, alone.probs, atol=1e-6)
        assert isinstance(job, Job) and job.batch_size == 4 and job.engine_ms > 0 and job.queued_ms >= 0
    assert (stats.batches, stats.frames, stats.batch_sizes, stats.mean_batch) == (1, 4, {4: 1}, 4.0)


def test_a_batch_goes_when_full_and_never_holds_more_than_max_batch(engine):
    spy = CountingEngine(engine)
    with EngineWorker(spy, max_batch=3, max_wait_ms=LONG_WAIT_MS) as worker:
        jobs = [worker.submit(f) for f in frames(6)]
        for job in jobs:
            job.result(timeout=60)
        assert worker.snapshot().batch_sizes == {3: 2}
    assert [c[1] for c in spy.calls] == [3, 3]


def test_a_lone_frame_goes_after_the_wait_cap(engine):
    with EngineWorker(engine, max_batch=8, max_wait_ms=20) as worker:
        row = worker.submit(frames(1)[0]).result(timeout=60)
        assert len(row) == 1
        assert worker.snapshot().batch_sizes == {1: 1}


def test_a_lone_stream_is_answered_at_once_without_the_wait_cap(engine):
    # Every active stream already has its frame waiting: nobody is worth waiting for.
    with EngineWorker(engine, max_batch=8, max_wait_ms=LONG_WAIT_MS) as worker:
        for image in frames(3):
            row = worker.submit(image, stream="client-1").result(timeout=30)
            assert len(row) == 1
        assert worker.snapshot().batch_sizes == {1: 3}


def test_a_frame_waits_for_the_other_active_streams_then_they_share_a_batch(engine):
    spy = CountingEngine(engine)
    a, b, c = frames(3)
    with EngineWorker(spy, max_batch=8, max_wait_ms=LONG_WAIT_MS) as worker:
        worker.submit(a, stream="one").result(timeout=30)  # the only stream: at once
        waiting = worker.submit(b, stream="two")  # "one" was active a moment ago: its next frame may come
        with pytest.raises(TimeoutError):
            waiting.result(timeout=0.3)
        other = worker.submit(c, stream="one")  # now everyone is here: one batch of two
        assert len(waiting.result(timeout=30)) == len(other.result(timeout=30)) == 1
    assert [call[1] for call in spy.calls] == [1, 2]


def test_pending_frames_are_grouped_by_method(engine):
    spy = CountingEngine(engine)
    images = frames(4)
    methods = ["gradcam", "gradcam++", "gradcam", "gradcam++"]
    with EngineWorker(spy, max_batch=2, max_wait_ms=LONG_WAIT_MS) as worker:
        jobs = [worker.submit(f, method=m) for f, m in zip(images, methods)]
        rows = [job.result(timeout=60) for job in jobs]
    assert sorted((c[1], c[3]) for c in spy.calls) == [(2, "gradcam"), (2, "gradcam++")]
    for image, method, row in zip(images, methods, rows):
        assert row.method == method
        np.testing.assert_allclose(row.cam, engine(image, method=method).cam, atol=1e-5)


def test_frames_of_any_size_are_resized_in_the_submitters_thread(engine):
    big = frames(1, size=(160, 120))[0]
    before = big.copy()
    with EngineWorker(engine, max_batch=1) as worker:
        row = worker.submit(big).result(timeout=60)
    np.testing.assert_allclose(row.cam, engine(big).cam, atol=1e-5)
    np.testing.assert_array_equal(big, before)  # the caller's frame is not modified


def test_an_engine_error_goes_to_that_batch_only_and_the_worker_goes_on(engine):
    spy = CountingEngine(engine)
    spy.fail_next = True
    with EngineWorker(spy, max_batch=2, max_wait_ms=LONG_WAIT_MS) as worker:
        failed = [worker.submit(f) for f in frames(2)]
        for job in failed:
            with pytest.raises(RuntimeError, match="the model fell over"):
                job.result(timeout=60)
        ok = [worker.submit(f) for f in frames(2, seed=1)]
        assert all(len(job.result(timeout=60)) == 1 for job in ok)
        stats = worker.snapshot()
    assert (stats.failed, stats.frames, stats.batches) == (2, 2, 1)


def test_a_cancelled_frame_never_reaches_the_engine(engine):
    spy = CountingEngine(engine)
    with EngineWorker(spy, max_batch=2, max_wait_ms=LONG_WAIT_MS) as worker:
        replaced = worker.submit(frames(1)[0], class_id=1)
        assert replaced.cancel()  # latest wins: its sender sent a newer frame
        jobs = [worker.submit(f, class_id=3) for f in frames(2, seed=2)]
        for job in jobs:
            job.result(timeout=60)
        stats = worker.snapshot()
    assert [c[2] for c in spy.calls] == [[3, 3]]
    assert stats.cancelled == 1 and stats.frames == 2


def worker_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "livecam-engine-worker" and t.is_alive()}


def test_close_fails_what_still_waits_and_joins_the_thread(engine):
    before = worker_threads()
    worker = EngineWorker(engine, max_batch=8, max_wait_ms=LONG_WAIT_MS)
    ours = worker_threads() - before
    assert len(ours) == 1
    jobs = [worker.submit(f) for f in frames(3)]
    worker.close()
    for job in jobs:
        with pytest.raises(WorkerClosed, match="closed before this frame was explained"):
            job.result(timeout=0)
    assert worker.closed
    assert not ours.pop().is_alive()
    with pytest.raises(WorkerClosed, match="no more frames can be submitted"):
        worker.submit(frames(1)[0])
    worker.close()  # idempotent


def test_many_threads_submit_at_once_and_each_gets_its_own_answer(engine):
    images = frames(24)
    expected = [engine(f, class_id=i % N_CLASSES) for i, f in enumerate(images)]
    rows: dict[int, object] = {}
    with EngineWorker(engine, max_batch=8, max_wait_ms=5) as worker:

        def client(k: int):
            for i in range(k, len(images), 4):  # stop-and-wait, like a browser client
                rows[i] = worker.submit(images[i], class_id=i % N_CLASSES).result(timeout=60)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        stats = worker.snapshot()
    assert stats.frames == len(images)
    for i, want in enumerate(expected):
        assert rows[i].class_ids[0] == i % N_CLASSES
        np.testing.assert_allclose(rows[i].cam, want.cam, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"class_id": N_CLASSES}, r"Expected class_id None or an int in \[0, 3\]\. Received: class_id=4"),
        ({"class_id": -1}, r"Received: class_id=-1"),
        ({"class_id": 1.5}, r"Received: class_id=1.5"),
        ({"method": "gradcm"}, r"Expected method in .*Received: method='gradcm'"),
    ],
)
def test_bad_requests_are_refused_at_submit_and_nothing_is_queued(engine, kwargs, message):
    with EngineWorker(engine) as worker:
        with pytest.raises(UserError, match=message):
            worker.submit(frames(1)[0], **kwargs)
        assert worker.snapshot().pending == 0


def test_bad_frames_are_refused_at_submit(engine):
    with EngineWorker(engine) as worker:
        with pytest.raises(UserError, match=r"Expected one frame of shape \(H, W, 3\)"):
            worker.submit(np.zeros((2, SIZE, SIZE, 3), np.uint8))
        with pytest.raises(UserError, match=r"Expected uint8 BGR frames"):
            worker.submit(np.zeros((SIZE, SIZE, 3), np.float32))


@pytest.mark.parametrize("kwargs, message", [({"max_batch": 0}, "max_batch >= 1"), ({"max_wait_ms": -1}, "max_wait_ms >= 0")])
def test_bad_settings_are_refused(engine, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EngineWorker(engine, **kwargs)
