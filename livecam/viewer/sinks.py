"""The sink contract, snapshots, and the checks every output goes through.

The run's loop hands each processed frame (``Processed``: the frame, its map, its pictures and
HUD) to a list of sinks that share one contract, ``FrameSink``: the window front-end
(``livecam.viewer.window``), the recording (``livecam.viewer.recording``), the per-frame outputs
(``livecam.viewer.outputs``) and the statistics (``livecam.viewer.stats``).

``check_target`` is the one place that says whether an output may take a name (only a new name
or a regular file, never an input or another output: ``KeepOut``), ``check_output`` adds what is
checked before a run (it exists and ``--overwrite`` was not given, its folder cannot be written),
and ``write_file_atomic`` and ``open_replacing`` make a new file that replaces whatever had the
name, never writing through it. The OpenCV window itself is ``livecam.viewer.cvwindow`` (its
names are here too, where callers have always found them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from livecam.errors import UserError, check_bgr_image
from livecam.viewer.cvwindow import WindowSink, fit_to_screen, gui_available, screen_size

if TYPE_CHECKING:
    from livecam.engine.core import CamResult
    from livecam.render import HudInfo
    from livecam.sources import Frame

__all__ = [
    "FrameSink",
    "KeepOut",
    "Processed",
    "SinkError",
    "SnapshotWriter",
    "WindowSink",
    "check_output",
    "check_target",
    "check_video_output",
    "fit_to_screen",
    "free_name",
    "gui_available",
    "open_replacing",
    "screen_size",
    "write_file_atomic",
]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")


class SinkError(RuntimeError):
    """Writing failed (disk full, encoder gone or stuck). The message says what the saved file holds."""


@dataclass(frozen=True)
class Processed:
    """One frame after the engine and the renderer: what every sink is given.

    Attributes:
        frame: the ``livecam.sources.Frame`` (its ``name`` is the image's file name, for folders).
        result: its one-row ``CamResult``, or None before the first map.
        picture: the annotated picture as recordings, snapshots and image outputs keep it (uint8 BGR).
        locked: True when the map was made for a class the user chose rather than the top one.
        source_time_s: the frame's time in its source (seconds; video: its time in the file).
        window_picture: the picture as a window shows it (HUD, key hints); None where no window asked.
        hud: what the HUD said; None before the first map.
        class_lock: the class the map was made for (None: the top one), whatever the lock is now.
        map_id: numbers the map; a map reused for ``--every`` frames keeps its number.
        scene: counts unrelated pictures (image folders): a new one restarts the smoothing.
    """

    frame: Frame
    result: CamResult | None
    picture: np.ndarray
    locked: bool
    source_time_s: float | None
    window_picture: np.ndarray | None = None
    hud: HudInfo | None = None
    class_lock: int | None = None
    map_id: int = 0
    scene: int = 0

    @property
    def explains(self) -> tuple[str, int | None, int] | None:
        """What the map answers, for the renderer: a new method, locked class or picture restarts the smoothing."""
        return None if self.result is None else (self.result.method, self.class_lock, self.scene)


class FrameSink(Protocol):
    """Where processed frames go: the window, the recording, the per-frame outputs, the statistics.

    The loop calls ``write`` for every frame, in order, from one thread, and ``close`` once at
    the end (``close`` is idempotent). A ``write`` that raises ``SinkError`` (a full disk) ends
    that sink: the loop closes it, says why, and goes on with the others.

    Attributes:
        keeps_output: whether the sink keeps something of the run now (a window, a recording
            under way, a file being written). A run without a window stops once a failure
            leaves no sink that does: it would work for nothing.
    """

    keeps_output: bool

    def write(self, processed: Processed) -> None: ...
    def close(self) -> None: ...


class SnapshotWriter:
    """Save what is on screen: raw frame, overlay, raw CAM map and a JSON record.

    Names are ``<prefix>-YYYYmmdd-HHMMSS-NNN-{raw.png,overlay.png,cam.npy,record.json}`` in
    local time; NNN counts up from 001 until no file of that name exists: nothing is ever
    overwritten.

    Args:
        folder: where to save; created if missing.
        prefix: start of every file name.

    Raises:
        UserError: the folder cannot be created or written to.
    """

    def __init__(self, folder: str | os.PathLike, *, prefix: str = "livecam"):
        self.folder = Path(folder).expanduser()
        self.prefix = prefix
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{str(self.folder)!r} is a file, not a folder; choose a folder for the snapshots.")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UserError(
                f"Could not create the snapshot folder {str(self.folder)!r} ({error.strerror}); choose another folder."
            ) from error
        _check_writable(self.folder)

    def save(self, raw_bgr: np.ndarray, overlay_bgr: np.ndarray, cam: np.ndarray | None, record: dict) -> list[Path]:
        """Write one snapshot.

        Args:
            raw_bgr: the camera frame, uint8 (height, width, 3).
            overlay_bgr: the frame with the heat map, uint8 (height, width, 3).
            cam: the raw map before colouring (any float array), or None to skip the .npy.
            record: what to remember, e.g. class, probability, layer, method. ``time`` (local,
                ISO 8601) is added unless given; ``files`` lists the other files' names.

        Returns:
            The paths written: raw, overlay, cam (if given), record.

        Raises:
            SinkError: the disk refused a file; none of this snapshot's files are left behind.
        """
        blobs = {
            "raw.png": _png(check_bgr_image(raw_bgr, "raw_bgr")),
            "overlay.png": _png(check_bgr_image(overlay_bgr, "overlay_bgr")),
        }
        if cam is not None:
            blobs["cam.npy"] = _npy(np.asarray(cam))
        now = _now()
        stamp = now.strftime("%Y%m%d-%H%M%S")
        record = {"time": now.isoformat(timespec="milliseconds"), **record}
        sequence = 1
        while True:
            stem = f"{self.prefix}-{stamp}-{sequence:03d}"
            paths = {kind: self.folder / f"{stem}-{kind}" for kind in [*blobs, "record.json"]}
            if not any(p.exists() for p in paths.values()):
                files = {kind.split(".")[0]: paths[kind].name for kind in blobs}
                blobs["record.json"] = json.dumps({**record, "files": files}, indent=2, default=_jsonable).encode()
                if self._write_all(paths, blobs):
                    return list(paths.values())
                del blobs["record.json"]
            sequence += 1

    def _write_all(self, paths: dict[str, Path], blobs: dict[str, bytes]) -> bool:
        written: list[Path] = []
        try:
            for kind, path in paths.items():
                with open(path, "xb") as file:  # "x": fail rather than overwrite, even in a race
                    written.append(path)
                    file.write(blobs[kind])
            return True
        except FileExistsError:
            remove_files(written)
            return False
        except OSError as error:
            remove_files(written)
            raise SinkError(f"Could not save the snapshot in {self.folder}: {error.strerror or error}.") from error


def check_video_output(
    path: str | os.PathLike, *, overwrite: bool = False, others: Iterable[tuple[str, str | os.PathLike]] = ()
) -> Path:
    """``check_output`` for a video: also the file type must be one livecam writes."""
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"Expected an output file ending in .mp4 (or .mov, .m4v, .mkv). Received: {str(path)!r}.")
    return check_output(path, overwrite=overwrite, others=others)


def check_output(
    path: str | os.PathLike, *, overwrite: bool = False, others: Iterable[tuple[str, str | os.PathLike]] | KeepOut = ()
) -> Path:
    """Check, before any work starts, that a file can be written at ``path``.

    Args:
        path: the file to be written.
        overwrite: whether an existing file may be replaced. A symbolic link is itself
            replaced, never written through; a device, FIFO or socket never (``check_target``).
        others: (role, path) of the files that must not be this one, whatever ``overwrite``
            says: the inputs, and the other outputs; e.g. ``[("the input", "in.mp4")]``.
            Compared as files (symbolic and hard links included), not as names.

    Returns:
        ``path`` as a ``Path`` (``~`` expanded).

    Raises:
        UserError: ``path`` is a folder or anything but a regular file, its folder is missing
            or read-only, the file exists and ``overwrite`` is False, or it is one of ``others``.
    """
    path = Path(path).expanduser()
    check_target(path, others if isinstance(others, KeepOut) else KeepOut(others))
    folder = path.parent
    if not folder.is_dir():
        raise UserError(
            f"The folder {str(folder)!r} for {path.name!r} does not exist; create it first or choose another output path."
        )
    if os.path.islink(path) and not path.exists() and not overwrite:
        raise UserError(
            f"{str(path)!r} is a symbolic link to {os.readlink(path)!r}, which does not exist; pass --overwrite to "
            f"replace the link itself, or choose another name."
        )
    if os.path.lexists(path) and not overwrite:
        raise UserError(f"{str(path)!r} already exists; pass --overwrite to replace it, or choose another name.")
    _check_writable(folder)
    return path


class KeepOut:
    """Files no output may be: the inputs and the other outputs, as (role, path).

    Compared as files, not as names: by real path (symbolic links followed) and by device and
    inode (hard links). Built once, so that checking each of thousands of per-frame files is cheap.
    """

    def __init__(self, files: Iterable[tuple[str, str | os.PathLike]] = ()) -> None:
        self._by_path: dict[str, tuple[str, Path]] = {}
        self._by_inode: dict[tuple[int, int], tuple[str, Path]] = {}
        for role, path in files:
            path = Path(path).expanduser()
            self._by_path.setdefault(os.path.realpath(path), (role, path))
            with contextlib.suppress(OSError):  # an output yet to be made: its name is enough
                info = os.stat(path)
                self._by_inode.setdefault((info.st_dev, info.st_ino), (role, path))

    def find(self, path: str | os.PathLike) -> tuple[str, Path] | None:
        """(role, path) of the kept-out file that ``path`` is, or None."""
        found = self._by_path.get(os.path.realpath(path))
        if found is None and self._by_inode:
            with contextlib.suppress(OSError):
                info = os.stat(path)
                found = self._by_inode.get((info.st_dev, info.st_ino))
        return found


def check_target(path: str | os.PathLike, keep_out: KeepOut | None = None, *, advice: str = "choose another name") -> None:
    """What every output file must be, ``--overwrite`` or not: a new name or a regular file (or a
    symbolic link to one, which is replaced itself), and none of ``keep_out``. ``advice`` ends
    the message.

    Raises:
        UserError: ``path`` is a folder, a device, a FIFO, a socket (or a link to one), or one of ``keep_out``.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode  # follows a link: a link to /dev/null is no place to write either
    except OSError:
        mode = None  # a new name, or a dangling link
    if mode is not None and stat.S_ISDIR(mode):
        raise UserError(f"{str(path)!r} is a folder; give a file name, such as {str(path / 'livecam.mp4')!r}.")
    if mode is not None and not stat.S_ISREG(mode):
        link = f" (a symbolic link to {os.readlink(path)!r})" if os.path.islink(path) else ""
        raise UserError(
            f"{str(path)!r} is {_file_kind(mode)}{link}, not a regular file; livecam writes only regular files, so {advice}."
        )
    through = _link_into_proc(path)
    if through is not None:  # /dev/stdout, /dev/fd/1: replacing the link would replace the system's own
        raise UserError(
            f"{str(path)!r} leads to {through!r}, an open file of a process, not a file of its own; livecam writes "
            f"only regular files, so {advice}."
        )
    found = keep_out.find(path) if keep_out is not None else None
    if found is not None:
        role, other = found
        raise UserError(
            f"{str(path)!r} is the same file as {role} {str(other)!r}; an output never replaces an input or "
            f"another output, so {advice}."
        )


def _link_into_proc(path: Path) -> str | None:
    """The /proc path that ``path`` leads to through symbolic links (as /dev/stdout does), or None."""
    followed = False
    for _ in range(40):  # the kernel's own limit on links in a row
        folder = os.path.realpath(path.parent)
        followed = followed or folder != os.path.abspath(path.parent)
        if followed and (folder == "/proc" or folder.startswith("/proc/")):
            return str(Path(folder) / path.name)
        if not path.is_symlink():
            return None
        path, followed = path.parent / os.readlink(path), True
    return None


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def write_file_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and one rename.

    A reader never sees half a file, a crash leaves the old file whole, and whatever is at
    ``path`` is replaced, never written through: a symbolic link, or a hard link (its other
    names keep the old content).
    """
    temporary, fd = _new_file_beside(Path(path))
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        remove_files([temporary])
        raise


def open_replacing(path: str | os.PathLike) -> io.FileIO:
    """A new, empty file (binary, unbuffered) that takes the name ``path`` at once, for files
    written as a run goes (``--results``).

    As ``write_file_atomic``, nothing at ``path`` is ever opened: a link there is replaced, not
    written through, and a FIFO or device put there meanwhile is not opened (which could block).
    """
    temporary, fd = _new_file_beside(Path(path))
    try:
        os.replace(temporary, path)
    except BaseException:
        os.close(fd)
        remove_files([temporary])
        raise
    return io.FileIO(fd, "wb")


def _new_file_beside(path: Path) -> tuple[Path, int]:
    while True:
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            # Not mkstemp, whose files are private (0600): the umask decides, as for any file the user makes.
            return temporary, os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue


def _check_writable(folder: Path) -> None:
    # Trying beats os.access, which says yes to root and knows nothing of read-only mounts.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(
            f"Cannot write to the folder {str(folder)!r} ({error.strerror or error}); choose another folder or "
            f"fix its permissions."
        ) from error


def _png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"Could not encode an image of shape {image.shape} as PNG.")
    return data.tobytes()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (Path, dt.datetime, dt.date)):
        return str(value)
    raise TypeError(f"Cannot store {type(value).__name__} in a snapshot record; use numbers, strings, lists or dicts.")


def remove_files(paths: list[Path]) -> None:
    """Deletes these files; one that is gone already or cannot be deleted is left as it is."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


def free_name(path: str | os.PathLike) -> Path:
    """``path``, or ``name-2.ext``, ``name-3.ext``... whichever does not exist yet (not even as a broken link)."""
    path = Path(path)
    if not os.path.lexists(path):
        return path
    n = 2
    while os.path.lexists(candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")):
        n += 1
    return candidate
