"""Tests for livecam.meters: rates and stage times, read through their snapshots."""

from __future__ import annotations

import pytest

from livecam.meters import RateMeter, StageTimes


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_rate_meter_is_events_minus_one_over_the_time_spanned():
    meter = RateMeter(window=30)
    assert meter.fps is None
    meter.tick(10.0)
    assert meter.fps is None  # one event spans no time
    for t in (10.5, 11.0, 12.0):
        meter.tick(t)
    assert meter.fps == pytest.approx(3 / 2.0)
    assert meter.snapshot().events == 4


def test_rate_meter_forgets_events_outside_its_window():
    meter = RateMeter(window=3)
    for t in (0.0, 100.0, 101.0, 101.5):  # the slow start falls out of the window
        meter.tick(t)
    assert meter.fps == pytest.approx(2 / 1.5)
    assert meter.snapshot().events == 4  # the count is of all events, not only the window's


def test_rate_meter_without_elapsed_time_has_no_rate():
    meter = RateMeter()
    meter.tick(5.0)
    meter.tick(5.0)
    assert meter.fps is None


def test_rate_meter_reads_its_own_clock():
    clock = FakeClock(100.0)
    meter = RateMeter(window=10, clock=clock)
    for _ in range(5):
        meter.tick()
        clock.t += 0.25
    snap = meter.snapshot()
    assert snap.fps == pytest.approx(4 / 1.0) and snap.events == 5


def test_rate_meter_rejects_a_window_that_cannot_hold_a_rate():
    with pytest.raises(ValueError, match=r"Expected window >= 2"):
        RateMeter(window=1)


def test_stage_times_are_means_per_frame():
    times = StageTimes()
    times.add("engine", 40.0, frames=4)
    times.add("engine", 20.0, frames=1)
    times.add("render", 3.0)
    snap = times.snapshot()
    assert snap.mean_ms == {"engine": 12.0, "render": 3.0}
    assert snap.frames == {"engine": 5, "render": 1}


def test_timed_block_uses_the_injected_clock_and_counts_on_errors():
    clock = FakeClock(1.0)
    times = StageTimes(clock=clock)
    with times.timed("capture"):
        clock.t += 0.010
    with pytest.raises(RuntimeError):
        with times.timed("capture"):
            clock.t += 0.030
            raise RuntimeError("boom")
    assert times.snapshot().mean_ms == {"capture": pytest.approx(20.0)}


def test_latency_percentiles_and_last():
    times = StageTimes(keep=100)
    empty = times.snapshot()
    assert empty.latency_p50_ms is None and empty.latency_last_ms is None and times.last_latency_ms is None
    for ms in range(1, 201):  # only the last 100 are kept for the percentiles: 101..200
        times.add_latency(float(ms))
    snap = times.snapshot()
    assert snap.latency_count == 200
    assert snap.latency_last_ms == times.last_latency_ms == 200.0
    assert snap.latency_p50_ms == pytest.approx(150.5)
    assert snap.latency_p95_ms == pytest.approx(195.05)
    assert times.latencies_ms()[0] == 101.0


def test_rate_meter_mean_rate_spans_every_event_so_bursts_do_not_read_as_a_rate():
    meter = RateMeter(window=3)
    for t in (0.0, 0.0, 0.0, 2.0, 2.0, 2.0):  # two batches of three rows, each finished together
        meter.tick(t)
    snap = meter.snapshot()
    assert snap.fps is None  # the window holds one burst: no time between its events
    assert (snap.span_s, snap.mean_fps) == (2.0, pytest.approx(5 / 2.0))
