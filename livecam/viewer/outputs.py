"""Per-frame outputs beside the video: results (JSON Lines or CSV), raw maps (.npy), one picture per input image.

Each is a ``FrameSink`` (``livecam.viewer.sinks``): the loop hands it every processed frame
(``write(processed)``); each is also a context manager. Files are checked before any work starts, never replace what exists without
``overwrite``, and are written as the run goes (results line by line, each line whole), so a run
that is killed keeps what it did. No file is ever written through a link or onto an input
(``livecam.viewer.safe_files.check_target``): each is a new file that takes its name. A write that fails
(a full disk) raises ``SinkError`` with a sentence that says what was kept; the output stops there.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from livecam.engine.compare import contrast_fields
from livecam.errors import UserError
from livecam.trust.faithfulness import FIELDS as FAITH_FIELDS
from livecam.trust.faithfulness import faith_fields
from livecam.trust.region import FIELDS as REGION_FIELDS
from livecam.trust.region import region_fields
from livecam.trust.stamp import picture_with_stamp
from livecam.viewer.safe_files import KeepOut, SinkError, check_output, check_target, open_replacing, write_file_atomic
from livecam.viewer.sinks import Processed

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
    "contrast_id",
    "contrast_name",
    "cam_max",
    *REGION_FIELDS,
    *FAITH_FIELDS,
)


def result_record(processed: Processed, class_names: Sequence[str], source: str) -> dict[str, Any]:
    """One line of ``--results``: the frame, its top-k, the explained class and the map's hottest point.

    The hottest point is the centre of the map's hottest cell, in frame pixels (x right, y
    down), with the map's value there (maps are scaled to a maximum of 1, so 0 means no map).
    The map lies where the network looked (``result.box``): under ``--fit pad`` the point can
    fall on the padding, outside the frame. ``cam_max`` is the map's raw maximum (how strong it
    is, which the scaled map no longer says); ``box_xywh``, ``box_energy`` and ``box_peak_inside``
    are the region score in the user's box (``livecam.trust.region``), null without one.
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
    record.update(region_fields(processed.region))
    record.update(faith_fields(processed.faith))
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
        **contrast_fields(result, class_names),
        cam_max=cam_max_of(result),
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
    no class name can split it. The file is UTF-8; a file name that is not
    (a byte that ``os.fsdecode`` makes ``\\udcff``) is written as that escape, ``\\udcff``: in
    JSON Lines it is JSON's own, so ``os.fsencode(json.loads(line)["source"])`` gives the name's bytes.

    Args:
        path: the file; its suffix chooses the format.
        class_names: the model's class names.
        source: what to put in the ``source`` column for frames without a file name of their own
            (a video's file name, "camera 0", ...).
        overwrite: whether an existing file may be replaced.
        others: (role, path) of the files it must not be (see ``check_output``).
        made_with: how the results were made (``livecam.trust.stamp``): JSON Lines start with a
            header line ``{"made_with": {...}}``; a CSV gets it beside it, in ``NAME.meta.json``.

    Raises:
        UserError: an unknown suffix, or the file cannot be written (see ``check_output``).
    """

    keeps_output = True  # a FrameSink that keeps a file

    def __init__(
        self,
        path: str | Path,
        *,
        class_names: Sequence[str],
        source: str,
        overwrite: bool = False,
        others: Iterable[tuple[str, str | Path]] | KeepOut = (),
        made_with: dict[str, Any] | None = None,
    ) -> None:
        self.path = check_results_path(path, overwrite=overwrite, others=others)
        self.meta_path = (
            self.path.with_suffix(".meta.json") if made_with is not None and self.path.suffix.lower() == ".csv" else None
        )
        if self.meta_path is not None:
            check_output(self.meta_path, overwrite=overwrite, others=others)
        self.format = RESULT_FORMATS[self.path.suffix.lower()]
        self._names = class_names
        self._source = source
        self.lines = 0
        self._whole_bytes = 0  # the file up to the end of its last complete line
        try:
            self._file = open_replacing(self.path)
        except OSError as exc:
            raise UserError(
                f"Could not create the --results file {str(self.path)!r} ({exc.strerror or exc}); choose another file."
            ) from None
        self._line = io.StringIO()  # the CSV writer's line, written to the file whole
        self._csv = None
        header = ""
        if self.format == "csv":
            self._csv = csv.DictWriter(self._line, fieldnames=RESULT_FIELDS)
            self._csv.writeheader()
            header = self._take_line()
        elif made_with is not None:
            header = json.dumps({"made_with": made_with}, ensure_ascii=False) + "\n"
        try:
            if header:
                self._append(header)
            if self.meta_path is not None:
                write_file_atomic(self.meta_path, (json.dumps({"made_with": made_with}, indent=2) + "\n").encode())
        except (SinkError, OSError) as exc:
            self.close()
            raise UserError(f"Could not write the --results header ({exc}); choose another file.") from None

    def write(self, processed: Processed) -> None:
        """Appends the frame's line, whole (unbuffered: a killed run keeps every line so far).

        Raises:
            SinkError: the disk took only part of it (full): the part is cut off again, so the
                file ends on its last complete line, and the writer is closed.
        """
        record = result_record(processed, self._names, self._source)
        if self._csv is not None:
            self._csv.writerow(
                {
                    k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else ("" if v is None else v)
                    for k, v in record.items()
                }
            )
            line = self._take_line()
        else:
            line = json.dumps(record, ensure_ascii=False) + "\n"
        self._append(line)
        self.lines += 1

    def _take_line(self) -> str:
        line = self._line.getvalue()
        self._line.seek(0)
        self._line.truncate()
        return line

    def _append(self, line: str) -> None:
        # Lone surrogates (file names that are not UTF-8) as \udcXX, JSON's escape for them.
        encoded = line.encode("utf-8", "backslashreplace")
        data = memoryview(encoded)
        try:
            while data:
                data = data[self._file.write(data) :]
        except OSError as exc:
            with contextlib.suppress(OSError):  # cutting a file shorter needs no space
                self._file.truncate(self._whole_bytes)
            self.close()
            raise SinkError(
                f"Stopped writing the results to {self.path} ({exc.strerror or exc}); it keeps {self.lines} whole "
                f"lines. Free some space or write them to another disk."
            ) from exc
        self._whole_bytes += len(encoded)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _FolderWriter:
    """What the per-frame folder outputs share: the folder, checked (and made) before the run; a
    count of the files saved; names that never collide. Each file is written whole beside its
    name and renamed onto it (a link there is replaced, never written through), after the name
    is checked against every input and the other outputs; so closing has nothing left to do.

    Args:
        folder: created if missing; must be empty unless ``overwrite``.
        overwrite: allow a folder that already has files (files of the same name are replaced).
        others: (role, path) of the files no file of this folder may be: the inputs, the other outputs.
        names: the input file names the run will save, so that their files are checked before it starts.
    """

    flag = ""  # the option that names the folder, for messages
    what = "files"  # what it saves, for messages
    keeps_output = True  # a FrameSink that keeps files

    def __init__(
        self,
        folder: str | Path,
        *,
        overwrite: bool = False,
        others: Iterable[tuple[str, str | Path]] | KeepOut = (),
        names: Iterable[str] = (),
    ) -> None:
        self.folder = check_output_folder(folder, self.flag, overwrite=overwrite)
        self.saved = 0
        self._names = _UniqueNames()
        self._keep_out = others if isinstance(others, KeepOut) else KeepOut(others)
        for name in names:
            self._check(self.folder / self.file_name(name))

    def file_name(self, name: str) -> str:
        """The name the file for an input of this name gets (before a repeated one gets its frame index)."""
        return name

    def _check(self, path: Path) -> None:
        check_target(path, self._keep_out, advice=f"choose another {self.flag} folder")

    def _save(self, file_name: str, index: int, data: bytes) -> None:
        path = self.folder / self._names.claim(file_name, index)
        self._check(path)
        try:
            write_file_atomic(path, data)
        except OSError as exc:
            raise SinkError(
                f"Stopped writing {self.flag} {self.what}: {path.name} could not be written ({exc.strerror or exc}); "
                f"the {self.saved} saved before are whole. Free some space or choose a folder on another disk."
            ) from exc
        self.saved += 1

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

    Args: as ``_FolderWriter``'s.
    """

    flag = "--save-maps"
    what = "maps"

    def file_name(self, name: str) -> str:
        return f"{Path(name).stem}.npy"

    def write(self, processed: Processed) -> None:
        result = processed.result
        if result is None or not bool(result.finite[0]):
            return
        frame = processed.frame
        data = io.BytesIO()
        np.save(data, np.asarray(result.cam[0], np.float32), allow_pickle=False)
        self._save(self.file_name(frame.name or f"frame-{frame.index:06d}"), frame.index, data.getvalue())


class ImageFolderWriter(_FolderWriter):
    """``-o DIR/`` for image folders and globs: one annotated picture per input, under the input's name.

    A format OpenCV reads but cannot write keeps its name with ``.png`` added. PNG and JPEG
    pictures say how they were made (``made_with``, ``livecam.trust.stamp.picture_with_stamp``).

    Args: as ``_FolderWriter``'s.

    Attributes:
        made_with: how the pictures are made, set once the engine is known; each picture's
            method is its own. None: no stamp.
    """

    flag = "-o"
    what = "images"
    made_with: dict[str, Any] | None = None

    def file_name(self, name: str) -> str:
        suffix = Path(name).suffix
        return name if suffix and cv2.haveImageWriter(f"x{suffix}") else f"{name}.png"

    def write(self, processed: Processed) -> None:
        frame = processed.frame
        name = frame.name or f"frame-{frame.index:06d}.png"
        file_name = self.file_name(name)
        ok, data = cv2.imencode(Path(file_name).suffix, processed.picture)
        if not ok:  # OpenCV has a writer for the format but could not use it on this picture
            file_name, (ok, data) = f"{name}.png", cv2.imencode(".png", processed.picture)
        data = data.tobytes()
        if self.made_with is not None:
            method = processed.result.method if processed.result is not None else self.made_with["method"]
            data = picture_with_stamp(data, Path(file_name).suffix, {**self.made_with, "method": method})
        self._save(file_name, frame.index, data)


def check_results_path(
    path: str | Path, *, overwrite: bool = False, others: Iterable[tuple[str, str | Path]] | KeepOut = ()
) -> Path:
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
        raise UserError(
            f"The {flag} folder {str(folder)!r} already has files; pass --overwrite to write into it, or choose a new folder."
        )
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


def cam_max_of(result: Any) -> float | None:
    """A one-row result's raw map maximum, rounded as the records keep numbers; None where it does not say."""
    cam_max = getattr(result, "cam_max", None)  # a result made by hand may not say
    return None if cam_max is None else _number(cam_max[0])


def _number(value: Any) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None
