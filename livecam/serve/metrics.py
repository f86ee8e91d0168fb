"""The server's Prometheus metrics (``GET /metrics``), in a registry of its own per server.

Counters and the latency histogram are kept by prometheus_client; the engine's batch sizes are
read from the worker's public snapshot when the page is scraped, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Round-trip inside the server, receive to answer: an engine step is 10-100 ms on a CPU.
_LATENCY_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """What ``livecam serve`` counts, and its exposition.

    Args:
        worker: the ``EngineWorker``; its ``snapshot()`` gives the batch sizes.
    """

    def __init__(self, worker: Any) -> None:
        self.registry = CollectorRegistry()
        self._answered = Counter(
            "livecam_frames_answered", "Frames explained and answered, by endpoint.", ["endpoint"], registry=self.registry
        )
        self._errors = Counter(
            "livecam_frame_errors",
            "Frames answered with an error (undecodable, too large, bad settings).",
            registry=self.registry,
        )
        self._dropped = Counter(
            "livecam_frames_dropped",
            "Client frames replaced by a newer one before the engine took them (never answered).",
            registry=self.registry,
        )
        self._latency = Histogram(
            "livecam_server_latency_seconds",
            "Time from receiving a frame to sending its answer.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._clients = Gauge("livecam_clients", "Connected clients, by kind (ws, mjpeg).", ["kind"], registry=self.registry)
        for kind in ("ws", "mjpeg"):
            self._clients.labels(kind).set(0)
        for endpoint in ("ws", "api", "source"):
            self._answered.labels(endpoint)
        self.registry.register(_WorkerCollector(worker))

    def answered(self, endpoint: str, latency_s: float) -> None:
        self._answered.labels(endpoint).inc()
        self._latency.labels(endpoint).observe(latency_s)

    def error(self) -> None:
        self._errors.inc()

    def dropped(self) -> None:
        self._dropped.inc()

    def clients(self, kind: str, change: int) -> None:
        self._clients.labels(kind).inc(change)

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _WorkerCollector:
    """The worker's batch sizes as a histogram, and its engine time, read at scrape time."""

    def __init__(self, worker: Any) -> None:
        self._worker = worker

    def collect(self) -> Iterator[Any]:
        stats = self._worker.snapshot()
        buckets, running = [], 0
        for bound in _BATCH_BUCKETS:
            running = sum(n for size, n in stats.batch_sizes.items() if size <= bound)
            buckets.append((str(bound), running))
        buckets.append(("+Inf", stats.batches))
        total_frames = sum(size * n for size, n in stats.batch_sizes.items())
        yield HistogramMetricFamily(
            "livecam_engine_batch_size", "Frames per engine call.", buckets=buckets, sum_value=total_frames
        )
        yield CounterMetricFamily("livecam_engine_seconds", "Time spent in engine calls.", value=stats.engine_ms / 1000)
        yield CounterMetricFamily("livecam_engine_frames", "Frames the engine explained.", value=stats.frames)
