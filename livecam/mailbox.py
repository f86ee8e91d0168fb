"""One place where the latest item wins: ``Mailbox`` for threads, ``AsyncLatest`` for asyncio.

A camera that delivers faster than the model, or a browser that sends frames faster than the
server answers, must not build a queue: the reader wants the newest item, and an item it did
not take in time is replaced. ``put`` hands back the item it replaced, so the writer can count
it as dropped (or tell its sender that it will never be answered).

``Mailbox`` has one reader thread, which takes each item at most once. ``AsyncLatest`` has any
number of readers on an event loop, each waiting for an item newer than the last it got (the
newest frame for every viewer), and writers on the loop or in other threads.
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


class AsyncLatest(Generic[T]):
    """The newest item for asyncio readers; items are numbered 1, 2, ... as they are put.

    Each reader keeps the number of the item it got last and asks for one newer
    (``next_after``); a reader that falls behind skips to the newest item, and no reader gets
    an item twice. ``put`` and ``close`` may come from any thread; readers run on ``loop``.
    ``close()`` ends it: readers still get an item newer than theirs, then None.

    Args:
        loop: the event loop the readers wait on; by default the running one (so, made
            outside a loop, it must be given).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._lock = threading.Lock()  # the item and its number; a writer may be another thread
        self._item: T | None = None
        self._number = 0
        self._taken = True  # whether a reader got the newest item (the empty start counts as taken)
        self._closed = False
        self._changed = asyncio.Event()  # replaced, on the loop, each time something changes

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def latest(self) -> tuple[int, T] | None:
        """The newest item and its number, without waiting; None before the first ``put``."""
        with self._lock:
            return (self._number, self._item) if self._number else None

    def put(self, item: T) -> T | None:
        """Makes ``item`` the newest and wakes the readers.

        Returns:
            The item it replaced if no reader got it (the writer counts it as dropped); None
            if a reader got it or there was none. After ``close`` the item is not delivered
            and is itself returned.
        """
        with self._lock:
            if self._closed:
                return item
            replaced = None if self._taken else self._item
            self._item, self._number, self._taken = item, self._number + 1, False
        self._wake()
        return replaced

    async def next_after(self, number: int) -> tuple[int, T] | None:
        """The newest item numbered above ``number``, with its number, waiting for one.

        Returns:
            ``(number, item)``; None once closed with nothing newer than ``number``.
        """
        while True:
            with self._lock:
                if self._number > number:
                    self._taken = True
                    return self._number, self._item
                if self._closed:
                    return None
                changed = self._changed  # swapped only on the loop, so not before we wait on it
            await changed.wait()

    def close(self) -> None:
        """Ends it and wakes every waiting reader (idempotent)."""
        with self._lock:
            self._closed = True
        self._wake()

    def _wake(self) -> None:
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:  # no loop in this thread: a writer thread
            on_loop = False
        if on_loop:
            self._swap()
            return
        try:
            self._loop.call_soon_threadsafe(self._swap)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _swap(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
