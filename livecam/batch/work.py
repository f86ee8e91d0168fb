"""One job through the viewer's batched file pipeline: its rows, its errors, its files in DIR.

The same function runs in-process and inside a Ray worker, so the two give the same rows and
maps. A job's files (the annotated picture of each image or the video of a video, and with
``--save-maps`` the maps) are each written under a temporary name and renamed when whole, so a
job that runs again (resumed, or retried on another worker) replaces them with the same files.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from livecam.batch.plan import Input, Job, overlay_name
from livecam.cli.configs import EngineConfig, LookConfig, class_id_of, contrast_id_of, renderer_from_look
from livecam.errors import UserError
from livecam.trust.region import RegionBox, region_fields, result_region
from livecam.viewer.outputs import result_record
from livecam.viewer.sinks import Processed

OVERLAYS, MAPS = "overlays", "maps"


@dataclass(frozen=True)
class BatchSettings:
    """What every job runs with; plain values, so that a Ray worker gets them as they are."""

    out: str
    engine: EngineConfig
    look: LookConfig
    save_maps: bool = False
    batch: int = 8
    tmp: str = ""  # where videos are recorded before their rename (DIR/.livecam-batch/tmp)


@dataclass
class JobOutcome:
    rows: list[dict[str, Any]]
    errors: list[dict[str, Any]]


def worker_name(node: str | None = None) -> str:
    """The ``worker`` column: the host and the process (and, on Ray, the node) that computed a row."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    return f"{name}@{node[:12]}" if node else name


def run_job(
    job: Job,
    engine,
    settings: BatchSettings,
    *,
    worker=None,
    worker_label: str | None = None,
    cancel: threading.Event | None = None,
) -> JobOutcome:
    """Explains every frame of ``job``; an input that cannot be read becomes an error, the others go on.

    Args:
        job: the job.
        engine: a CamEngine built from ``settings.engine``.
        settings: the run's settings.
        worker: an ``EngineWorker`` shared by the jobs of this process (None: the pipeline makes one).
        worker_label: the ``worker`` column (default: ``worker_name()``).
        cancel: ends the job early when set (its outcome is then partial: not to be kept).
    """
    label = worker_label or worker_name()
    try:
        if job.kind == "video":
            return _video(job.inputs[0], engine, settings, worker, label, cancel)
        return _images(job.inputs, engine, settings, worker, label, cancel)
    except UserError as exc:
        return JobOutcome([], [error(item, str(exc)) for item in job.inputs])


def error(item: Input, reason: str) -> dict[str, Any]:
    """One line of errors.jsonl."""
    return {"input": item.given, "path": item.path, "kind": item.kind, "error": reason}


class _Rows:
    """A ``FrameSink`` that keeps each frame's results record, with the batch's columns."""

    keeps_output = True

    def __init__(self, class_names: Sequence[str], inputs: dict[str | None, Input], worker_label: str, *, maps: bool) -> None:
        self.rows: list[dict[str, Any]] = []
        self.seen: set[str | None] = set()
        self._names, self._inputs, self._worker, self._maps = class_names, inputs, worker_label, maps

    def write(self, processed: Processed) -> None:
        name = processed.frame.name
        item = self._inputs[name] if name in self._inputs else self._inputs[None]
        self.seen.add(name)
        record = result_record(processed, self._names, PurePosixPath(item.name).name)
        if item.box is not None:  # the manifest's box: how much of the heat is on the labelled thing
            box = RegionBox(*item.box, fractions=False)
            record.update(region_fields(result_region(processed.result, processed.frame.image_bgr.shape[1::-1], box)))
        label_id, label_name = _label(item, self._names)
        record.update(
            input=item.given,
            overlay=f"{OVERLAYS}/{overlay_name(item)}",
            label=label_id,
            label_name=label_name,
            box=list(item.box) if item.box is not None else None,
            worker=self._worker,
        )
        if self._maps:
            record["map"] = _map_name(item, processed) if record["finite"] else None
        self.rows.append(record)

    def close(self) -> None:
        pass


def _map_name(item: Input, processed: Processed) -> str:
    """Where ``MapWriter`` keeps the frame's map: beside the image's name, or the video's frames in a folder of its name."""
    name = PurePosixPath(item.name)
    if item.kind == "video":
        return f"{MAPS}/{name.with_suffix('')}/frame-{processed.frame.index:06d}.npy"
    return f"{MAPS}/{name.with_suffix('.npy')}"


def _label(item: Input, class_names: Sequence[str]) -> tuple[int | None, str | None]:
    if item.label is None:
        return None, None
    from livecam.models import class_index

    class_id = class_index(tuple(class_names), item.label)
    return class_id, class_names[class_id]


def _stamp(engine, settings: BatchSettings) -> dict[str, Any]:
    """How the job's pictures and videos are made (``livecam.trust.stamp``), as the viewer's say."""
    from livecam.trust.stamp import made_with

    return made_with(engine, normalize=settings.look.normalize)


def _pipeline(source, engine, settings: BatchSettings, worker, outputs, recorder=None, cancel=None):
    from livecam.viewer.pipeline import Options, Pipeline

    look = settings.look
    options = Options(
        batch=settings.batch,
        class_id=class_id_of(engine, settings.engine),
        contrast_id=contrast_id_of(engine, look),
        faithfulness=settings.engine.faithfulness,
        box=look.box,
        normalize=look.normalize,
        progress=False,
    )
    messages: list[str] = []
    pipeline = Pipeline(
        source, engine, renderer_from_look(settings.look), options, recorder=recorder, worker=worker, outputs=outputs,
        log=messages.append, cancel=cancel,
    )  # fmt: skip
    return pipeline, messages


def _images(items: Sequence[Input], engine, settings: BatchSettings, worker, label: str, cancel) -> JobOutcome:
    from livecam.sources.folders import ImageFolderSource
    from livecam.viewer.outputs import ImageFolderWriter, MapWriter

    for item in items:
        _label(item, engine.class_names)  # an unknown label: said before any work
    out = Path(settings.out)
    folder = PurePosixPath(items[0].name).parent
    by_name: dict[str | None, Input] = {Path(item.path).name: item for item in items}
    rows = _Rows(engine.class_names, by_name, label, maps=settings.save_maps)
    names = list(by_name)
    overlays = ImageFolderWriter(out / OVERLAYS / folder, overwrite=True, names=names)
    overlays.made_with = _stamp(engine, settings)
    outputs: list[Any] = [rows, overlays]
    if settings.save_maps:
        outputs.append(MapWriter(out / MAPS / folder, overwrite=True, names=names))
    source = ImageFolderSource([Path(item.path) for item in items], where=str(folder))
    try:
        pipeline, messages = _pipeline(source, engine, settings, worker, outputs, cancel=cancel)
        stats = pipeline.run()
    finally:
        source.close()
    errors = [
        error(item, "the image could not be decoded (corrupt, or a type OpenCV cannot read)")
        for name, item in by_name.items()
        if name not in rows.seen
    ]
    if stats.output_errors:
        raise UserError("; ".join(messages) or "an output could not be written")
    return JobOutcome(rows.rows, errors)


def _video(item: Input, engine, settings: BatchSettings, worker, label: str, cancel) -> JobOutcome:
    from livecam.sources.files import VideoFileSource
    from livecam.viewer.outputs import MapWriter
    from livecam.viewer.recorder import VideoWriter
    from livecam.viewer.recording import recording_size

    _label(item, engine.class_names)
    out = Path(settings.out)
    target = out / OVERLAYS / overlay_name(item)
    source = VideoFileSource(item.path)
    try:
        # One per attempt and per job under way in this process: a retry, or another job's clip.mp4, never shares it.
        partial = Path(settings.tmp or out) / f"{os.getpid()}-{threading.get_ident()}-{target.name}"
        recorder = VideoWriter(
            partial, fps=source.fps, size=recording_size(source, None, side_by_side=settings.look.side_by_side),
            live=source.variable_frame_rate, overwrite=True, made_with=_stamp(engine, settings),
        )  # fmt: skip
        rows = _Rows(engine.class_names, {None: item}, label, maps=settings.save_maps)
        outputs: list[Any] = [rows]
        if settings.save_maps:
            outputs.append(MapWriter(out / MAPS / PurePosixPath(item.name).with_suffix(""), overwrite=True))
        pipeline, messages = _pipeline(source, engine, settings, worker, outputs, recorder, cancel)
        stats = pipeline.run()
        expected, corrupt = source.frame_count, source.corrupt
    finally:
        source.close()
    if cancel is not None and cancel.is_set():
        return JobOutcome(rows.rows, [])  # cut short: its video is not put in place, and the job is not kept
    if stats.recording_error is not None or stats.output_errors or not stats.recordings:
        raise UserError("; ".join(messages) or f"the annotated video {target.name} could not be written")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(stats.recordings[-1], target)
    errors = []
    if corrupt or (expected and len(rows.rows) < expected):
        errors.append(
            error(item, f"decoded {len(rows.rows)} of {expected or '?'} frames ({corrupt} corrupt or missing); the rest are kept")
        )
    return JobOutcome(rows.rows, errors)
