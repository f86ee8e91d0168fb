"""Meters for a run: frame rates, time per stage, and the capture-to-output latency.

Each meter takes its clock as an argument (tests pass a fake one) and is read through
``snapshot()``, a frozen copy that is safe to keep and to read from another thread.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

Clock = Callable[[], float]


@dataclass(frozen=True)
class RateSnapshot:
    """A rate meter at one moment.

    Attributes:
        events: events counted since the meter was made.
        fps: events per second over the meter's window; None until two events span some time.
        span_s: seconds from the first event to the latest (0 before the second).
        mean_fps: events per second over the whole span, ``(events - 1) / span_s``: the rate for
            work that comes in bursts (a batch's rows finish together), where a window of the
            latest events would read a burst; None until the events span some time.
    """

    events: int
    fps: float | None
    span_s: float = 0.0
    mean_fps: float | None = None


class RateMeter:
    """Events per second over the last ``window`` events: (n - 1) / (t_last - t_first).

    Args:
        window: how many of the latest events the rate is taken over.
        clock: seconds, monotonic; ``time.monotonic`` by default.
    """

    def __init__(self, window: int = 30, *, clock: Clock = time.monotonic) -> None:
        if window < 2:
            raise ValueError(f"Expected window >= 2 (a rate needs two events). Received: window={window}")
        self._clock = clock
        self._lock = threading.Lock()
        self._times: collections.deque[float] = collections.deque(maxlen=window)
        self._events = 0
        self._first: float | None = None

    def tick(self, t: float | None = None) -> None:
        """Counts one event, at time ``t`` (seconds on the meter's clock) or now."""
        t = self._clock() if t is None else t
        with self._lock:
            self._times.append(t)
            self._events += 1
            if self._first is None:
                self._first = t

    @property
    def fps(self) -> float | None:
        return self.snapshot().fps

    def snapshot(self) -> RateSnapshot:
        with self._lock:
            times = self._times
            fps = None
            if len(times) >= 2 and times[-1] > times[0]:
                fps = (len(times) - 1) / (times[-1] - times[0])
            span_s = times[-1] - self._first if self._first is not None else 0.0
            mean_fps = (self._events - 1) / span_s if span_s > 0 else None
            return RateSnapshot(events=self._events, fps=fps, span_s=span_s, mean_fps=mean_fps)


@dataclass(frozen=True)
class StageSnapshot:
    """Stage times and latency at one moment.

    Attributes:
        mean_ms: mean milliseconds per frame for each stage that was timed, rounded to 1 us.
        frames: frames counted for each stage.
        latency_count: latencies recorded in all (the percentiles use at most the last ``keep``).
        latency_last_ms: the latest latency; None before the first.
        latency_p50_ms, latency_p95_ms: percentiles of the kept latencies; None before the first.
    """

    mean_ms: dict[str, float]
    frames: dict[str, int]
    latency_count: int
    latency_last_ms: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None


class StageTimes:
    """Mean milliseconds per frame for each named stage, and the capture-to-output latency.

    Args:
        keep: how many of the latest latencies to keep for the percentiles.
        clock: seconds, for ``timed``; ``time.perf_counter`` by default.
    """

    def __init__(self, *, keep: int = 100_000, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._total_ms: dict[str, float] = collections.defaultdict(float)
        self._count: dict[str, int] = collections.defaultdict(int)
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=keep)
        self._latency_count = 0

    def add(self, stage: str, ms: float, frames: int = 1) -> None:
        """Adds ``ms`` spent on ``frames`` frames in ``stage``."""
        with self._lock:
            self._total_ms[stage] += ms
            self._count[stage] += frames

    @contextlib.contextmanager
    def timed(self, stage: str, frames: int = 1) -> Iterator[None]:
        """Times the ``with`` block as ``frames`` frames of ``stage`` (also when it raises)."""
        t0 = self._clock()
        try:
            yield
        finally:
            self.add(stage, (self._clock() - t0) * 1000, frames)

    def add_latency(self, ms: float) -> None:
        """Records one frame's capture-to-output delay."""
        with self._lock:
            self._latency_ms.append(ms)
            self._latency_count += 1

    @property
    def last_latency_ms(self) -> float | None:
        """The latest latency (cheap: for a HUD on every frame); None before the first."""
        with self._lock:
            return self._latency_ms[-1] if self._latency_ms else None

    def latencies_ms(self) -> list[float]:
        """The kept latencies, oldest first (a copy)."""
        with self._lock:
            return list(self._latency_ms)

    def mean_ms(self) -> dict[str, float]:
        return self.snapshot().mean_ms

    def snapshot(self) -> StageSnapshot:
        with self._lock:
            mean = {k: round(self._total_ms[k] / self._count[k], 3) for k in self._total_ms if self._count[k]}
            frames = dict(self._count)
            latency = np.asarray(self._latency_ms) if self._latency_ms else None
            last = self._latency_ms[-1] if self._latency_ms else None
            count = self._latency_count
        p50 = p95 = None
        if latency is not None:
            p50, p95 = (round(float(v), 3) for v in np.percentile(latency, [50, 95]))
        return StageSnapshot(mean, frames, count, last, p50, p95)
