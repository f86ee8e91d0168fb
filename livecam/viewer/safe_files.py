"""Whether a file may be written, and writing it without destroying anything: the one place for both.

Every file livecam writes (recordings, snapshots, ``--results``, ``--save-maps``, per-image
outputs, ``--stats-json``) goes through here. ``check_target`` says whether an output may take a
name (only a new name or a regular file, never an input or another output: ``KeepOut``);
``check_output`` adds what is checked before a run (it exists and ``--overwrite`` was not given,
its folder cannot be written). ``write_file_atomic`` and ``open_replacing`` make a new file that
replaces whatever had the name, never writing through it; ``reserve_beside`` and
``link_to_free_name`` give the recorder its temporary name and its final one without replacing
a file someone else wrote; ``free_name`` picks a name that is not taken.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from livecam.errors import UserError, file_kind

__all__ = [
    "VIDEO_SUFFIXES",
    "KeepOut",
    "SinkError",
    "check_output",
    "check_target",
    "check_video_output",
    "check_writable",
    "file_identity",
    "free_bytes",
    "free_name",
    "link_to_free_name",
    "open_replacing",
    "remove_files",
    "reserve_beside",
    "write_file_atomic",
]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")


class SinkError(RuntimeError):
    """Writing failed (disk full, encoder gone or stuck). The message says what the saved file holds."""


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
    check_writable(folder)
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
            f"{str(path)!r} is {file_kind(mode)}{link}, not a regular file; livecam writes only regular files, so {advice}."
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


def check_writable(folder: Path) -> None:
    """Raise UserError unless a file can be made in ``folder``."""
    # Trying beats os.access, which says yes to root and knows nothing of read-only mounts.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(
            f"Cannot write to the folder {str(folder)!r} ({error.strerror or error}); choose another folder or "
            f"fix its permissions."
        ) from error


def remove_files(paths: list[Path]) -> None:
    """Deletes these files; one that is gone already or cannot be deleted is left as it is."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


def free_name(path: str | os.PathLike) -> Path:
    """``path``, or ``name-2.ext``, ``name-3.ext``... whichever does not exist yet (not even as a broken link)."""
    path = Path(path)
    if not os.path.lexists(path):
        return path
    n = 2
    while os.path.lexists(candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")):
        n += 1
    return candidate


def reserve_beside(path: Path, tag: str) -> Path:
    """A new empty file ``<stem>.<tag>-<random><suffix>`` in ``path``'s folder, created exclusively."""
    stem = path.stem.split(".partial-")[0]
    while True:
        candidate = path.with_name(f"{stem}.{tag}-{secrets.token_hex(3)}{path.suffix}")
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            raise SinkError(f"Could not create a file in {path.parent} ({error.strerror or error}).") from error


def link_to_free_name(source: Path, target: Path) -> Path:
    """Move ``source`` to ``target`` or, if that name is taken, ``name-2.ext``...; never replaces a file."""
    candidate, n = target, 1
    while True:
        try:
            os.link(source, candidate)  # fails if the name exists, even if it appeared a moment ago
        except FileExistsError:
            n += 1
            candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
            continue
        except OSError:  # a file system without hard links: check, then rename (a small race)
            if os.path.lexists(candidate):
                n += 1
                candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
                continue
            os.rename(source, candidate)
            return candidate
        os.unlink(source)
        return candidate


def file_identity(path: Path) -> tuple[int, ...] | None:
    """What tells whether a directory entry was replaced or changed: None when there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def free_bytes(folder: Path) -> int | None:
    """Free space on ``folder``'s disk, in bytes; None when it cannot be told."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None
