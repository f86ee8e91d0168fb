"""Holds a Ray worker to the CPUs it asked for: a worker of one CPU runs on one core.

Ray counts CPUs but does not place processes on them, and a worker runs more than its
TensorFlow and OpenVINO threads: the pipeline decodes, draws and encodes (PNG, H.264) beside
them, so a worker of one CPU would use about one and a half, and its neighbours on the node wait.
Each worker claims whole cores of its node (``ceil(cpus)`` of them) through lock files in the
node's temporary folder, the least shared first, and pins all of its threads there (the encoder
processes it starts inherit it). A lock lives as long as its process: a killed worker's cores are
free again for the worker that replaces it.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

MAX_SHARING = 64  # workers per core before a worker gives up claiming and runs unpinned


class CoreClaim:
    """The cores this process holds (empty where the platform cannot pin, the temporary folder is not
    writable, or every core is taken ``MAX_SHARING`` times)."""

    def __init__(self, cpus: float) -> None:
        self.cores: tuple[int, ...] = ()
        self._locks: list[int] = []  # open descriptors: each holds its core's lock until the process ends
        if not hasattr(os, "sched_setaffinity"):
            return
        usable = sorted(os.sched_getaffinity(0))
        wanted = min(len(usable), max(1, math.ceil(cpus - 1e-9)))
        folder = Path(tempfile.gettempdir()) / f"livecam-cores-{os.getuid()}"
        claimed: list[int] = []
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            if folder.lstat().st_uid != os.getuid() or not folder.is_dir():
                return  # another user's folder of that name: not ours to trust
            for sharing in range(MAX_SHARING):  # every core once before any core twice
                for core in usable:
                    if len(claimed) < wanted and core not in claimed and self._lock(folder / f"core{core}.{sharing}"):
                        claimed.append(core)
            if len(claimed) < wanted:
                self.release()
                return
            for thread in os.listdir("/proc/self/task"):  # threads started later inherit their starter's cores
                with contextlib.suppress(OSError):  # a thread that has just ended
                    os.sched_setaffinity(int(thread), claimed)
        except OSError:  # no temporary folder or /proc: the worker runs where the system puts it
            self.release()
            return
        self.cores = tuple(sorted(claimed))

    def _lock(self, path: Path) -> bool:
        import fcntl  # where sched_setaffinity is, so is fcntl

        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            return False
        self._locks.append(descriptor)
        return True

    def release(self) -> None:
        for descriptor in self._locks:
            os.close(descriptor)
        self._locks.clear()
