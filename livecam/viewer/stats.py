"""What a run did: the ``Stats`` that ``--stats-json`` writes, and the sinks that count frames
(``StatsSink``) and show progress (``ProgressSink``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livecam.trust.faithfulness import Means
from livecam.viewer.safe_files import write_file_atomic
from livecam.viewer.sinks import Processed


@dataclass
class Stats:
    """What a run did; written by ``--stats-json``."""

    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    dropped: int = 0
    corrupt: int = 0
    non_finite: int = 0
    traces: int = 0
    recording_error: str | None = None
    output_errors: list[str] = field(default_factory=list)  # per-frame outputs and --stats-json that stopped (a full disk)
    recordings: list[str] = field(default_factory=list)
    runtime: dict[str, str] = field(default_factory=dict)  # {"name": "openvino", "reason": "...", "head": "numpy"}
    made_with: dict[str, Any] = field(default_factory=dict)  # how the run's outputs were made (livecam.trust.stamp)
    faith_means: Means = field(default_factory=Means)  # the faithfulness readouts (--faithfulness)

    def to_json(self) -> dict[str, Any]:
        record = dict(self.__dict__)
        record["faithfulness"] = record.pop("faith_means").summary()  # the means of the result fields
        return record


class StatsSink:
    """A ``FrameSink`` that counts the frames (and those without a map) into ``stats``; on close it
    asks ``finish`` for the run's totals and writes them to ``path`` (``--stats-json``), if given.

    Args:
        stats: filled as the run goes.
        path: the JSON file, or None.
        finish: fills in the totals the loop measured (seconds, rates, latency...), at the end.
        failed: told one sentence when the file cannot be written (a full disk).
    """

    keeps_output = False  # a summary, not an output: a headless run does not go on for it alone

    def __init__(
        self, stats: Stats, path: Path | None, *, finish: Callable[[Stats], None], failed: Callable[[str], None]
    ) -> None:
        self.stats = stats
        self.path = path
        self._finish = finish
        self._failed = failed
        self._closed = False

    def write(self, processed: Processed) -> None:
        self.stats.frames += 1
        if processed.result is not None and not processed.result.finite[0]:
            self.stats.non_finite += 1
        if processed.faith is not None:
            self.stats.faith_means.add(processed.faith)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finish(self.stats)
        if self.path is None:
            return
        try:
            write_file_atomic(self.path, (json.dumps(self.stats.to_json(), indent=2) + "\n").encode())
        except OSError as exc:
            self._failed(f"Could not write the statistics to {self.path} ({exc.strerror or exc}).")


class ProgressSink:
    """A ``FrameSink`` that moves a progress bar on the terminal (tqdm) by one for every frame.

    Args:
        total: the frames to expect, or None when unknown.
    """

    keeps_output = False

    def __init__(self, total: int | None) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="frame", dynamic_ncols=True, leave=True)

    def write(self, processed: Processed) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
