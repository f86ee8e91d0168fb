"""Per-frame outputs beside the video: results (JSON Lines or CSV), raw maps (.npy), one picture per input image.

Each is a small sink the pipeline hands every processed frame to (``write(processed)``), and a
context manager. Files are checked before any work starts, never replace what exists without
``overwrite``, and are written as the run goes (results are flushed line by line), so a run
that is killed keeps what it did.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from livecam.errors import UserError
from livecam.sinks import check_output

RESULT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
RESULT_FIELDS = (
    "frame_index",
    "source_time_s",
    "source",
    "class_id",
    "class_name",
    "probability",
    "locked",
    "method",
    "layer",
    "topk_ids",
    "topk_names",
    "topk_probs",
    "hot_x",
    "hot_y",
    "hot_value",
    "finite",
)


@dataclass(frozen=True)
class Processed:
    """One frame after the engine and the renderer: what per-frame outputs are given.

    Attributes:
        frame: the ``livecam.sources.Frame`` (its ``name`` is the image's file name, for folders).
        result: its one-row ``CamResult``, or None before the first map.
        picture: the annotated picture as recordings get it (uint8 BGR).
        locked: True when the class was chosen by the user rather than the top one.
        source_time_s: the frame's time in its source (seconds; video: its time in the file).
    """

    frame: Any
    result: Any
    picture: np.ndarray
    locked: bool
    source_time_s: float | None


def result_record(processed: Processed, class_names: Sequence[str], source: str) -> dict[str, Any]:
    """One line of ``--results``: the frame, its top-k, the explained class and the map's hottest point.

    The hottest point is the centre of the map's hottest cell, in frame pixels (x right, y
    down), with the map's value there (maps are scaled to a maximum of 1, so 0 means no map).
    The map lies where the network looked (``result.box``): under ``--fit pad`` the point can
    fall on the padding, outside the frame.
    """
    frame, result = processed.frame, processed.result
    height, width = frame.image_bgr.shape[:2]
    record: dict[str, Any] = dict.fromkeys(RESULT_FIELDS)
    record.update(
        frame_index=int(frame.index),
        source_time_s=None if processed.source_time_s is None else round(float(processed.source_time_s), 6),
        source=frame.name or source,
        locked=bool(processed.locked),
    )
    if result is None:
        return record
    class_id = int(result.class_ids[0])
    ids = [int(i) for i in result.topk_ids[0]]
    record.update(
        class_id=class_id,
        class_name=class_names[class_id],
        probability=_number(result.probs[0, class_id]),
        method=result.method,
        layer=result.layer,
        topk_ids=ids,
        topk_names=[class_names[i] for i in ids],
        topk_probs=[_number(p) for p in result.topk_probs[0]],
        finite=bool(result.finite[0]),
    )
    cam = np.asarray(result.cam[0])
    if record["finite"] and cam.size:
        row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
        x0, y0, x1, y1 = getattr(result, "box", (0.0, 0.0, 1.0, 1.0))  # where the map lies on the frame (--fit)
        record.update(
            hot_x=round(x0 * width + (col + 0.5) * ((x1 - x0) * width) / cam.shape[1]),
            hot_y=round(y0 * height + (row + 0.5) * ((y1 - y0) * height) / cam.shape[0]),
            hot_value=_number(cam[row, col]),
        )
    return record


class ResultsWriter:
    """``--results FILE``: one line per processed frame, JSON Lines (.jsonl) or CSV (.csv), flushed as it goes.

    In CSV a top-k list is one cell holding the list as JSON (``["dog", "semi;colon"]``), so that
    no class name can split it.

    Args:
        path: the file; its suffix chooses the format.
        class_names: the model's class names.
        source: what to put in the ``source`` column for frames without a file name of their own
            (a video's file name, "camera 0", ...).
        overwrite: whether an existing file may be replaced.

    Raises:
        UserError: an unknown suffix, or the file cannot be written (see ``check_output``).
    """

    def __init__(self, path: str | Path, *, class_names: Sequence[str], source: str, overwrite: bool = False) -> None:
        self.path = check_results_path(path, overwrite=overwrite)
        self.format = RESULT_FORMATS[self.path.suffix.lower()]
        self._names = class_names
        self._source = source
        self._file = self.path.open("w", encoding="utf-8", newline="")
        self._csv = None
        if self.format == "csv":
            self._csv = csv.DictWriter(self._file, fieldnames=RESULT_FIELDS)
            self._csv.writeheader()
            self._file.flush()
        self.lines = 0

    def write(self, processed: Processed) -> None:
        record = result_record(processed, self._names, self._source)
        if self._csv is not None:
            self._csv.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else ("" if v is None else v) for k, v in record.items()})
        else:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()  # a killed run keeps every line written so far
        self.lines += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _FolderWriter:
    """What the per-frame folder outputs share: the folder, checked (and made) before the run; a
    count of the files saved; names that never collide. Each file is whole once written, so
    closing has nothing left to do.
    """

    flag = ""  # the option that names the folder, for messages

    def __init__(self, folder: str | Path, *, overwrite: bool = False) -> None:
        self.folder = check_output_folder(folder, self.flag, overwrite=overwrite)
        self.saved = 0
        self._names = _UniqueNames()

    def close(self) -> None:
        pass

    def __enter__(self) -> _FolderWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class MapWriter(_FolderWriter):
    """``--save-maps DIR``: each frame's raw map as float32 ``.npy`` at the target layer's resolution.

    Names follow the input: ``<image name>.npy`` for image folders, ``frame-000123.npy`` (the
    frame index) otherwise. Frames without a finite map are skipped.

    Args:
        folder: created if missing; must be empty unless ``overwrite``.
        overwrite: allow a folder that already has files (files of the same name are replaced).
    """

    flag = "--save-maps"

    def write(self, processed: Processed) -> None:
        result = processed.result
        if result is None or not bool(result.finite[0]):
            return
        frame = processed.frame
        stem = Path(frame.name).stem if frame.name else f"frame-{frame.index:06d}"
        path = self.folder / self._names.claim(f"{stem}.npy", frame.index)
        np.save(path, np.asarray(result.cam[0], np.float32))
        self.saved += 1


class ImageFolderWriter(_FolderWriter):
    """``-o DIR/`` for image folders and globs: one annotated picture per input, under the input's name.

    Args:
        folder: created if missing; must be empty unless ``overwrite``.
        overwrite: allow a folder that already has files (files of the same name are replaced).
    """

    flag = "-o"

    def write(self, processed: Processed) -> None:
        frame = processed.frame
        name = frame.name or f"frame-{frame.index:06d}.png"
        path = self.folder / self._names.claim(name, frame.index)
        ok, data = cv2.imencode(path.suffix or ".png", processed.picture)
        if not ok:  # a format OpenCV reads but cannot write: keep the name, add .png
            path = path.with_name(path.name + ".png")
            ok, data = cv2.imencode(".png", processed.picture)
        try:
            path.write_bytes(data.tobytes())
        except OSError as exc:
            raise UserError(f"Could not write {str(path)!r} ({exc.strerror}); free some space or choose another -o folder.") from None
        self.saved += 1



def check_results_path(path: str | Path, *, overwrite: bool = False, others: Iterable[tuple[str, str | Path]] = ()) -> Path:
    """Checks a ``--results`` file name before the run: a known suffix, a writable place, no overwrite
    unless asked, and never one of ``others`` ((role, path) of the inputs and other outputs)."""
    path = Path(path).expanduser()
    if path.suffix.lower() not in RESULT_FORMATS:
        raise UserError(f"Expected --results to end in .jsonl or .csv. Received: {str(path)!r}")
    return check_output(path, overwrite=overwrite, others=others)


def check_output_folder(folder: str | Path, flag: str, *, overwrite: bool = False) -> Path:
    """Checks (and creates) a folder for per-frame files: not a file, empty unless ``overwrite``, writable."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {str(folder)!r} is a file; give a folder (it is created if missing).")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise UserError(f"The {flag} folder {str(folder)!r} already has files; pass --overwrite to write into it, or choose a new folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"Could not create the {flag} folder {str(folder)!r} ({exc.strerror}); choose another folder.") from None
    check_output(folder / ".livecam-write-test", overwrite=True)
    return folder


class _UniqueNames:
    """File names used in this run: a name seen before (a looped folder, two images of one stem) gets the frame index."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def claim(self, name: str, index: int) -> str:
        if name in self._used:
            stem, dot, suffix = name.rpartition(".")
            name = f"{stem}-{index}.{suffix}" if dot else f"{name}-{index}"
        self._used.add(name)
        return name


def _number(value: Any) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None
