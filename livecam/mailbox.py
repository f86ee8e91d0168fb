"""Latest-wins places: the newest item replaces the one before, nothing queues.

A camera that delivers faster than the model, or a browser that sends frames faster than the
server answers, must not build a queue: the reader wants the newest item, and an item it did
not take in time is replaced.

- ``Mailbox``, for threads: one reader takes each item at most once. ``put`` hands back the item
  it replaced, so the writer can count it as dropped (or tell its sender that it will never be
  answered).
- ``Latest``, for asyncio: any number of readers each wait for an item newer than the one they
  have (a source's frame for every viewer); a slow reader skips to the newest.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """One slot, thread-safe; the newest item wins and each item is taken at most once.

    ``close()`` ends the mailbox: an item still in it can be taken, after that ``get`` returns
    None at once, and ``put`` no longer delivers.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has = False
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> T | None:
        """Leaves ``item`` for the reader.

        Returns:
            The item it replaced, which no reader will ever get; None if the slot was empty.
            After ``close`` the item is not delivered and is itself returned.
        """
        with self._cond:
            if self._closed:
                return item
            replaced = self._item if self._has else None
            self._item, self._has = item, True
            self._cond.notify_all()
            return replaced

    def get(self, timeout_s: float | None = None) -> T | None:
        """Takes the item, waiting up to ``timeout_s`` seconds for one (None: as long as it takes).

        Returns:
            The item; None when none came in time, or when the mailbox is closed and empty
            (``closed`` tells the two apart).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while not self._has and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            self._cond.notify_all()  # for wait_empty
            return item

    def wait_empty(self, timeout_s: float | None = None) -> bool:
        """Waits until the reader took the item (for a writer that must not lose any).

        Returns:
            True when the slot is empty or the mailbox closed; False when ``timeout_s`` ran out.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._has and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self) -> None:
        """Ends the mailbox and wakes every waiting reader and writer (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Latest(Generic[T]):
    """The newest of a numbered series of items, for asyncio readers on ``loop``.

    ``put`` may be called from any thread; ``close()`` ends the series (readers get what is
    newer than theirs, then None).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._item: tuple[int, T] | None = None
        self._closed = False
        self._changed = asyncio.Event()

    def put(self, number: int, item: T) -> None:
        """Makes ``item``, numbered ``number`` (above the last one's), the newest."""
        self._item = (number, item)
        self._wake()

    async def next_after(self, number: int) -> tuple[int, T] | None:
        """The newest (number, item) numbered above ``number``, waiting for one; None once closed without one."""
        while True:
            item = self._item
            if item is not None and item[0] > number:
                return item
            if self._closed:
                return None
            changed = self._changed
            await changed.wait()

    def close(self) -> None:
        """Ends the series and wakes every reader (idempotent)."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        # On the loop, so that a reader between its check and its wait cannot miss the change.
        def wake() -> None:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

        try:
            self._loop.call_soon_threadsafe(wake)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass
