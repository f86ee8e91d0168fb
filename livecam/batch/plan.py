"""``livecam batch``'s inputs -> the jobs it runs and the names their outputs get, all checked before anything runs.

Each INPUT is a video file, an image folder or glob, or a manifest (``.csv`` or ``.parquet``
with a ``path`` column and optional ``label`` and ``box`` columns). Every file's outputs mirror
its path below the deepest folder that holds all the inputs, so that two inputs never share an
output name unless they share a path; those that would are refused before the run starts.

A job is the unit of work and of completion: one video, or up to ``IMAGES_PER_JOB`` images of
one folder (one folder's images have distinct names, which is what the per-image outputs key on).
A job's id is a digest of what it reads, so the same inputs give the same jobs in a later run
(``--resume``).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from livecam.errors import UserError, shown
from livecam.sources.folders import is_image_name, natural_sorted

IMAGES_PER_JOB = 32  # small enough that a kill loses little and two workers share a small set; large enough to batch
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
MANIFEST_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class Input:
    """One file to explain.

    Attributes:
        path: where it is read from (absolute).
        given: its path as the user wrote it (the ``input`` column).
        kind: "video" or "image".
        name: its outputs' name below DIR/overlays and DIR/maps, in POSIX form (``val/cat/1.jpg``).
        label: the manifest's label as written (a class id or name); None without one.
        box: the manifest's box (x, y, w, h) in frame pixels; None without one.
    """

    path: str
    given: str
    kind: str
    name: str
    label: str | None = None
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Job:
    """One video, or images of one folder; ``id`` is stable across runs over the same inputs."""

    id: str
    kind: str
    inputs: tuple[Input, ...]


def job_to_json(job: Job) -> str:
    """The job as text, for a worker elsewhere (Ray)."""
    return json.dumps(dataclasses.asdict(job))


def job_from_json(text: str) -> Job:
    data = json.loads(text)
    inputs = tuple(Input(**{**item, "box": tuple(item["box"]) if item["box"] else None}) for item in data["inputs"])
    return Job(data["id"], data["kind"], inputs)


def plan(arguments: list[str]) -> list[Job]:
    """The jobs for the command line's INPUTs, in order.

    Raises:
        UserError: an input that is none of the kinds above, a bad manifest, or two inputs whose
            outputs would take one name.
    """
    if not arguments:
        raise UserError("Give at least one INPUT: a video file, an image folder or glob, or a .csv/.parquet manifest.")
    found: list[tuple[str, str, str, str | None, tuple[int, int, int, int] | None]] = []  # (path, given, kind, label, box)
    for argument in arguments:
        found += _expand(argument)
    root = _common_folder([path for path, *_ in found])
    inputs = [
        Input(path=path, given=given, kind=kind, name=_output_name(path, root), label=label, box=box)
        for path, given, kind, label, box in found
    ]
    _refuse_collisions(inputs)
    return _jobs(inputs)


def overlay_name(item: Input) -> str:
    """The annotated output's name below DIR/overlays: videos become .mp4; an image keeps its name
    (``.png`` is added where OpenCV cannot write the format, as ``-o DIR/`` does)."""
    if item.kind == "video":
        return str(PurePosixPath(item.name).with_suffix(".mp4"))
    from livecam.viewer.outputs import ImageFolderWriter

    name = PurePosixPath(item.name)
    return str(name.with_name(ImageFolderWriter.file_name(ImageFolderWriter, name.name)))


def _expand(argument: str) -> list[tuple[str, str, str, str | None, tuple[int, int, int, int] | None]]:
    path = Path(argument).expanduser()
    if path.is_dir():
        images = natural_sorted([p for p in path.iterdir() if p.is_file() and is_image_name(p)])
        if not images:
            raise UserError(f"The folder {shown(argument)} has no images; give a folder of images, a video or a manifest.")
        return [(os.path.abspath(p), str(Path(argument) / p.name), "image", None, None) for p in images]
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in MANIFEST_SUFFIXES:
            return _manifest(path)
        kind = _kind(path)
        if kind is None:
            raise UserError(
                f"{shown(argument)} is not a video, an image or a manifest (by its suffix); give a video file, an image "
                f"folder or glob, or a .csv/.parquet manifest with a path column."
            )
        return [(os.path.abspath(path), argument, kind, None, None)]
    if re.search(r"[*?[]", argument):
        matches = natural_sorted([Path(p) for p in glob.glob(os.path.expanduser(argument), recursive=True)])
        files = [(os.path.abspath(p), str(p), _kind(p), None, None) for p in matches if p.is_file() and _kind(p)]
        if not files:
            raise UserError(f"No images or videos match {shown(argument)}; check the pattern and that the files exist.")
        return files
    raise UserError(f"The input {shown(argument)} does not exist; give a video file, an image folder or glob, or a manifest.")


def _kind(path: Path) -> str | None:
    if is_image_name(path):
        return "image"
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else None


def _manifest(path: Path) -> list[tuple[str, str, str, str | None, tuple[int, int, int, int] | None]]:
    """A manifest's rows; relative paths are relative to the manifest's folder."""
    rows = _manifest_rows(path)
    if not rows or "path" not in rows[0]:
        raise UserError(f"The manifest {shown(str(path))} needs a 'path' column (and optionally 'label' and 'box').")
    found = []
    for number, row in enumerate(rows, start=2 if path.suffix.lower() == ".csv" else 1):
        where = f"row {number} of {shown(str(path))}"
        given = str(row["path"] or "").strip()
        if not given:
            raise UserError(f"The path in {where} is empty; every row needs a file.")
        file = (path.parent / Path(given).expanduser()).resolve() if not Path(given).is_absolute() else Path(given)
        kind = _kind(file)
        if kind is None or not file.is_file():
            raise UserError(f"{where} names {shown(given)}, which is not an image or video file that exists; fix the row.")
        label = row.get("label")
        label = None if label is None or str(label).strip() == "" else str(label).strip()
        found.append((str(file), given, kind, label, _box(row.get("box"), where)))
    return found


def _manifest_rows(path: Path) -> list[dict]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as file:
            return list(csv.DictReader(file))
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow's many errors for a file that is not Parquet
        raise UserError(f"The manifest {shown(str(path))} could not be read as Parquet ({exc}).") from None


def _box(value, where: str) -> tuple[int, int, int, int] | None:
    """``x,y,w,h`` in pixels (a string, or a list in Parquet); None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    parts = value if isinstance(value, (list, tuple)) else re.split(r"[,\s]+", str(value).strip().strip("[]()"))
    try:
        x, y, w, h = (int(round(float(v))) for v in parts)
    except (TypeError, ValueError):
        raise UserError(f"Expected the box in {where} as x,y,w,h in pixels. Received: {value!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise UserError(f"Expected the box in {where} to have x, y >= 0 and a positive width and height. Received: {value!r}")
    return (x, y, w, h)


def _common_folder(paths: list[str]) -> str:
    return os.path.commonpath([os.path.dirname(p) for p in paths])


def _output_name(path: str, root: str) -> str:
    return PurePosixPath(*Path(os.path.relpath(path, root)).parts).as_posix()


def _refuse_collisions(inputs: list[Input]) -> None:
    """Two inputs whose outputs would take one name: refused, naming both."""
    seen: dict[str, Input] = {}
    for item in inputs:
        key = overlay_name(item).casefold()  # one file on case-insensitive disks (macOS, Windows)
        other = seen.get(key)
        if other is not None:
            same = os.path.realpath(other.path) == os.path.realpath(item.path)
            raise UserError(
                f"{shown(other.given)} and {shown(item.given)} "
                + ("are the same file given twice" if same else f"would both be written as overlays/{overlay_name(item)}")
                + "; give each file once, or rename one of them."
            )
        seen[key] = item


def _jobs(inputs: list[Input]) -> list[Job]:
    """Videos one job each; a folder's images in jobs of ``IMAGES_PER_JOB``, placed where the folder first appears."""
    order: list[tuple[str, Input | str]] = []
    folders: dict[str, list[Input]] = {}
    for item in inputs:
        if item.kind == "video":
            order.append(("video", item))
            continue
        folder = os.path.dirname(item.path)
        if folder not in folders:
            folders[folder] = []
            order.append(("images", folder))
        folders[folder].append(item)
    jobs: list[Job] = []
    for kind, value in order:
        items = [value] if kind == "video" else folders[value]
        jobs += [_job(kind, items[i : i + IMAGES_PER_JOB]) for i in range(0, len(items), IMAGES_PER_JOB)]
    return jobs


def _job(kind: str, items: list[Input]) -> Job:
    digest = hashlib.sha1("\0".join(f"{i.path}\1{i.label}\1{i.box}" for i in items).encode("utf-8", "surrogateescape"))
    return Job(digest.hexdigest()[:16], kind, tuple(items))
