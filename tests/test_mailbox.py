"""Tests for livecam.mailbox: the latest item wins (Mailbox for threads, Latest for asyncio readers)."""

from __future__ import annotations

import asyncio
import threading

from livecam.mailbox import Latest, Mailbox


def test_latest_wins_put_returns_what_it_replaced_and_each_item_is_taken_once():
    box: Mailbox[str] = Mailbox()
    assert box.get(timeout_s=0.01) is None
    assert box.put("a") is None
    assert box.put("b") == "a"  # "a" will never be read
    assert box.get(timeout_s=0.01) == "b"
    assert box.get(timeout_s=0.01) is None
    assert box.put("c") is None  # the slot was emptied by the read


def test_get_waits_for_a_writer():
    box: Mailbox[str] = Mailbox()
    got = []
    reader = threading.Thread(target=lambda: got.append(box.get(timeout_s=30)))
    reader.start()
    box.put("frame")
    reader.join(timeout=30)
    assert got == ["frame"]


def test_close_wakes_a_waiting_reader_and_keeps_the_last_item():
    box: Mailbox[str] = Mailbox()
    got = []
    reader = threading.Thread(target=lambda: got.append(box.get(timeout_s=30)))
    reader.start()
    box.close()
    reader.join(timeout=30)
    assert got == [None] and not reader.is_alive()

    box = Mailbox()
    box.put("last")
    box.close()
    assert box.closed
    assert box.get(timeout_s=30) == "last"  # what came before the end is still delivered
    assert box.get(timeout_s=30) is None  # then None at once, without waiting
    assert box.put("late") == "late"  # not delivered
    assert box.get(timeout_s=0) is None


def test_wait_empty_blocks_the_writer_until_the_reader_took_the_item():
    box: Mailbox[int] = Mailbox()
    assert box.wait_empty(timeout_s=0)
    box.put(1)
    assert not box.wait_empty(timeout_s=0.01)
    taken = threading.Event()

    def reader():
        box.get(timeout_s=30)
        taken.set()

    thread = threading.Thread(target=reader)
    thread.start()
    assert box.wait_empty(timeout_s=30)
    thread.join(timeout=30)
    assert taken.is_set()
    box.put(2)
    box.close()
    assert box.wait_empty(timeout_s=30)  # a closed mailbox never blocks a writer


def test_many_writers_lose_nothing_but_replaced_items():
    box: Mailbox[int] = Mailbox()
    replaced: list[int] = []
    lock = threading.Lock()

    def writer(base: int):
        for i in range(500):
            old = box.put(base + i)
            if old is not None:
                with lock:
                    replaced.append(old)

    taken: list[int] = []
    stop = threading.Event()

    def reader():
        while not (stop.is_set() and box.closed):
            item = box.get(timeout_s=0.01)
            if item is not None:
                taken.append(item)

    r = threading.Thread(target=reader)
    r.start()
    writers = [threading.Thread(target=writer, args=(k * 1000,)) for k in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=30)
    box.close()
    stop.set()
    r.join(timeout=30)
    # Every item was either taken once or reported replaced once: none lost, none twice.
    assert sorted(taken + replaced) == sorted(k * 1000 + i for k in range(4) for i in range(500))


def test_latest_gives_every_asyncio_reader_the_newest_item_put_from_a_thread():
    async def go():
        latest: Latest[str] = Latest(asyncio.get_running_loop())
        waiting = [asyncio.ensure_future(latest.next_after(0)) for _ in range(3)]
        await asyncio.sleep(0)
        writer = threading.Thread(target=lambda: [latest.put(n, f"item {n}") for n in (1, 2)])
        writer.start()
        writer.join()
        first = await asyncio.gather(*waiting)
        newest = await latest.next_after(1)  # a reader that had 1 skips to the newest
        latest.close()
        return first, newest, await latest.next_after(2), await latest.next_after(0)

    first, newest, after_close, old_after_close = asyncio.run(asyncio.wait_for(go(), 10))
    assert all(item in ((1, "item 1"), (2, "item 2")) for item in first)
    assert newest == (2, "item 2")
    assert after_close is None and old_after_close == (2, "item 2")  # what is newer is still handed out
