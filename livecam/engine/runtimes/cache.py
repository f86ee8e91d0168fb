"""The on-disk cache of converted bodies: where it is, its entries, and what ``livecam cache`` lists and clears.

An entry is a folder ``openvino/<model>-<layer>-<size>-<key[:20]>`` holding the body's files and a
manifest with its full key, each file's checksum, and whatever else its writer keeps there (the
body's shapes; for a warm start the class names, the target layer and the head's kind; the head's
weights in a file beside it). It is written in a temporary folder and renamed into place, so a
crash never leaves half an entry; one that fails its checks is deleted, and its writer rebuilds it.
Nothing here imports OpenVINO or TensorFlow.

Model files are hashed for their keys (``file_digest_remembered``); the digest is remembered in
``digests/`` by the file's path, size and modification time, so a large file is read once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livecam.errors import first_line

CACHE_ENV = "LIVECAM_CACHE_DIR"
# Entries kept per model, layer and input size: new weights (a retrained model, or random ones
# with --weights none) make new entries, and the cache must not grow without bound.
KEEP_PER_LABEL = 3
MANIFEST = "manifest.json"
_BODIES, _DIGESTS = "openvino", "digests"


def cache_dir() -> Path | None:
    """Where converted bodies are kept: $LIVECAM_CACHE_DIR, else the platform's user cache folder.

    None when there is no folder of the user's to keep them in: ``HOME=""`` makes Python's home
    the filesystem's root, and a system account's home may not exist. Not a shared temporary
    folder instead: anyone on the machine could plant an entry there, and livecam would run it.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if sys.platform == "win32":
        base = _absolute(os.environ.get("LOCALAPPDATA")) or _home("AppData", "Local")
    elif sys.platform == "darwin":
        base = _home("Library", "Caches")
    else:  # the XDG spec: a relative $XDG_CACHE_HOME is invalid and ignored
        base = _absolute(os.environ.get("XDG_CACHE_HOME")) or _home(".cache")
    return base / "livecam" if base is not None else None


def _absolute(path: str | None) -> Path | None:
    return Path(path) if path and Path(path).is_absolute() else None


def _home(*parts: str) -> Path | None:
    """``parts`` under the user's home folder, when it is a real folder other than the root."""
    try:
        home = Path.home()
    except RuntimeError:  # no HOME and no password entry
        return None
    if not home.is_absolute() or home == Path(home.anchor) or not home.is_dir():
        return None
    return home.joinpath(*parts)


def entry_path(label: str, key: str) -> Path | None:
    """Where the entry for ``key`` goes (``label`` makes it readable), or None without a cache folder."""
    root = cache_dir()
    return root / _BODIES / f"{_safe(label)}-{key[:20]}" if root is not None else None


def find_entry(key: str) -> Path | None:
    """The entry folder written for ``key`` under any label (a warm start knows the key, not the label)."""
    root = cache_dir()
    if root is None:
        return None
    with contextlib.suppress(OSError):
        for path in (root / _BODIES).glob(f"*-{key[:20]}"):
            if path.is_dir():
                return path
    return None


def read_manifest(path: Path, key: str) -> dict[str, Any] | None:
    """The entry's manifest when it is ``key``'s and every file matches its checksum; else None (removed)."""
    if not path.is_dir():
        return None
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        if manifest.get("key") != key:  # a copied or swapped entry: another model, layer or size
            raise ValueError("the entry is another body's")
        for name, digest in manifest["files"].items():
            if digest != file_digest(path / name):
                raise ValueError(f"{name} does not match its checksum")
    except Exception:
        remove(path)
        return None
    # Last used, for eviction; a read-only cache keeps its order, and the entry is still good.
    with contextlib.suppress(OSError):
        os.utime(path)
    return manifest


def write_entry(path: Path, key: str, write_files: Callable[[Path], None], manifest: dict[str, Any]) -> str | None:
    """Save an entry at ``path`` atomically: ``write_files(folder)`` writes its files, the manifest
    (``manifest`` with the key and the files' checksums) goes beside them; why not, if it could not."""
    staging = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
        write_files(staging)
        files = {p.name: file_digest(p) for p in sorted(staging.iterdir())}
        (staging / MANIFEST).write_text(json.dumps({**manifest, "key": key, "files": files}))
        try:
            staging.rename(path)
        except OSError:  # another livecam wrote the same entry first: keep theirs
            pass
    except Exception as exc:  # OpenVINO says only "basic_ios::clear: iostream error" for a full disk
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
        return f"{first_line(exc)}; {_free_space(path.parent)}"
    finally:
        if staging is not None:
            remove(staging)
    return None


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MB free there"
    except OSError:
        return "the free space there is unknown"


def evict(path: Path, keep: int) -> None:
    """Keep the ``keep`` most recently used entries with ``path``'s label (its name up to the key); remove
    the others, and temporary folders older than an hour."""
    root, prefix = path.parent, path.name[:-20]
    try:
        entries = sorted((p for p in root.iterdir() if p.name.startswith(prefix)), key=lambda p: p.stat().st_mtime, reverse=True)
        stale = [p for p in root.iterdir() if p.name.startswith(".tmp-") and time.time() - p.stat().st_mtime > 3600]
    except OSError:
        return
    for old in entries[keep:] + stale:
        remove(old)


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_digest_remembered(path: Path) -> str:
    """``file_digest`` of a file, remembered by its path, size and modification time (read once while
    they stay the same; a file replaced with the same size and time keeps the old digest)."""
    path = path.resolve()
    stat = path.stat()
    identity = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    root = cache_dir()
    note = root / _DIGESTS / f"{hashlib.blake2b(str(path).encode(), digest_size=10).hexdigest()}.json" if root else None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        remembered = json.loads(note.read_text())
        if remembered["identity"] == identity:
            return remembered["digest"]
    digest = file_digest(path)
    with contextlib.suppress(OSError, AttributeError):  # no cache folder, or not writable: hashed again next time
        note.parent.mkdir(parents=True, exist_ok=True)
        staging = note.with_name(f".tmp-{os.getpid()}-{note.name}")
        staging.write_text(json.dumps({"identity": identity, "digest": digest}))
        staging.replace(note)
    return digest


# ---------------------------------------------------------------------- livecam cache list / clear


@dataclass(frozen=True)
class EntryInfo:
    """One entry as ``livecam cache list`` shows it."""

    name: str
    size_bytes: int
    last_used: float  # seconds since the epoch
    warm: bool  # it can start without TensorFlow (it holds a NumPy head)


def list_entries() -> list[EntryInfo]:
    """The entries, most recently used first."""
    root = cache_dir()
    found = []
    with contextlib.suppress(OSError):
        for path in (root / _BODIES).iterdir() if root is not None else ():
            if not path.is_dir() or path.name.startswith(".tmp-"):
                continue
            with contextlib.suppress(OSError):
                size = sum(p.stat().st_size for p in path.iterdir())
                warm = False
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    warm = json.loads((path / MANIFEST).read_text())["meta"]["head"] is not None
                found.append(EntryInfo(path.name, size, path.stat().st_mtime, warm))
    return sorted(found, key=lambda e: e.last_used, reverse=True)


def clear() -> tuple[int, int]:
    """Remove every entry and remembered digest: (entries removed, bytes freed)."""
    root = cache_dir()
    entries = list_entries()
    if root is not None:
        for folder in (_BODIES, _DIGESTS):
            remove(root / folder)
    return len(entries), sum(e.size_bytes for e in entries)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]
