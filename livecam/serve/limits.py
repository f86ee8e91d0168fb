"""What keeps ``livecam serve`` within its means when clients are slow, many or hostile.

- ``HEADER_TIMEOUT_S``: a connection must finish a request's headers this long after it opened
  (or after its last answer), or it is closed; aiohttp's keep-alive timer does this, since it
  also runs before the first request.
- ``ConnectionGuard``: connections that wait for a request (half-sent, or idle between requests)
  may hold at most a quarter of the file descriptors; beyond that the oldest are closed, and when
  descriptors run out anyway the oldest quarter of them too, so that a flood of them never leaves
  a real client unaccepted for long. Running out is said in one line a minute, not one traceback
  per refused connection.
- ``PixelBudget``: how many decoded pixels ``POST /api/explain`` holds at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

try:
    import resource
except ImportError:  # Windows: no limit of open files to read or raise
    resource = None  # type: ignore[assignment]

HEADER_TIMEOUT_S = 10.0
SWEEP_INTERVAL_S = 0.25
_NO_LIMIT_KNOWN = 2048  # where the system says no limit of open files, the guard assumes this many
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def raise_open_file_limit() -> int:
    """Raises this process's soft limit of open files to its hard limit; returns the soft limit now in force."""
    if resource is None:
        return _NO_LIMIT_KNOWN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if wanted > soft:
        with contextlib.suppress(ValueError, OSError):  # a limit we may not raise: keep the one we have
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return soft


class ConnectionGuard:
    """Caps the connections that hold a descriptor without a request in progress.

    Args:
        max_waiting: how many such connections may be open at once; the oldest beyond it are closed.
            None: a quarter of the open files this process may have (read at each sweep).
    """

    def __init__(self, max_waiting: int | None = None) -> None:
        self._max_waiting = max_waiting
        self._busy: set[Any] = set()  # the protocols (connections) whose request is being handled
        self._last_said_s = -float("inf")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self._busy.discard(protocol)

    @property
    def max_waiting(self) -> int:
        if self._max_waiting is not None:
            return self._max_waiting
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0] if resource is not None else _NO_LIMIT_KNOWN
        return max(16, open_files // 4)

    def sweep(self, server: web.Server, *, out_of_resources: bool = False) -> int:
        """Closes the oldest waiting connections beyond ``max_waiting`` (out of resources: the oldest quarter too).

        Returns:
            How many it closed.
        """
        waiting = [
            handler.transport
            for handler in server.connections  # in the order they were opened
            if handler not in self._busy and handler.transport is not None and not handler.transport.is_closing()
        ]
        keep = min(self.max_waiting, len(waiting) * 3 // 4) if out_of_resources else self.max_waiting
        excess = waiting[: max(0, len(waiting) - keep)]
        for transport in excess:
            transport.close()
        return len(excess)

    async def keep(self, server: web.Server) -> None:
        """Sweeps until cancelled."""
        while True:
            self.sweep(server)
            await asyncio.sleep(SWEEP_INTERVAL_S)

    def exception_handler(self, server: web.Server) -> Callable[[asyncio.AbstractEventLoop, dict], None]:
        """An event-loop exception handler: running out of descriptors is one line a minute (and a sweep); the rest as usual."""

        def handle(loop: asyncio.AbstractEventLoop, context: dict) -> None:
            exc = context.get("exception")
            if not (isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES):
                loop.default_exception_handler(context)
                return
            # Room for the connections waiting to be accepted, once those just accepted have become connections.
            loop.call_later(SWEEP_INTERVAL_S, functools.partial(self.sweep, server, out_of_resources=True))
            now = time.monotonic()
            if now - self._last_said_s >= 60:
                self._last_said_s = now
                print(
                    f"livecam: warning: out of system resources ({exc.strerror}): new connections wait while the oldest idle ones "
                    "are closed. Raise the limit of open files (ulimit -n) if real clients need more.",
                    file=sys.stderr,
                    flush=True,
                )

        return handle


class PixelBudget:
    """At most ``capacity`` decoded pixels held at once; a request over it waits, then is refused.

    Args:
        capacity: pixels that may be decoded and held at once (an image larger than this takes all of it).
        wait_s: how long a request waits for room before ``asyncio.TimeoutError``.
    """

    def __init__(self, capacity: int, wait_s: float) -> None:
        self.capacity = capacity
        self.wait_s = wait_s
        self._free = capacity
        self._changed: asyncio.Condition | None = None  # made on first use, inside the server's loop

    @contextlib.asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        """Holds ``pixels`` of the budget for the ``async with`` block.

        Raises:
            asyncio.TimeoutError: no room within ``wait_s``.
        """
        pixels = min(pixels, self.capacity)
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self._free >= pixels), self.wait_s)
            self._free -= pixels
        try:
            yield
        finally:
            async with self._changed:
                self._free += pixels
                self._changed.notify_all()
