"""Tests for livecam.mailbox: one slot, the latest item wins (Mailbox for threads, AsyncLatest for asyncio)."""

from __future__ import annotations

import asyncio
import threading

from livecam.mailbox import AsyncLatest, Mailbox


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


# --- AsyncLatest: the newest item for any number of asyncio readers ---


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))  # a bound on waiting, not a timing check


def test_async_latest_numbers_items_and_a_reader_behind_skips_to_the_newest():
    async def go():
        latest: AsyncLatest[str] = AsyncLatest()
        assert latest.latest is None
        assert latest.put("a") is None
        assert latest.put("b") == "a"  # no reader got "a": the writer counts it as dropped
        assert await latest.next_after(0) == (2, "b")
        assert latest.put("c") is None  # a reader got "b"
        assert await latest.next_after(2) == (3, "c")
        assert await latest.next_after(0) == (3, "c")  # another reader, further behind
        assert latest.latest == (3, "c")

    run(go())


def test_async_latest_wakes_every_waiting_reader_with_the_same_item():
    async def go():
        latest: AsyncLatest[str] = AsyncLatest()
        readers = [asyncio.create_task(latest.next_after(0)) for _ in range(3)]
        await asyncio.sleep(0)
        assert not any(reader.done() for reader in readers)  # nothing yet: they wait
        latest.put("frame")
        return await asyncio.gather(*readers)

    assert run(go()) == [(1, "frame")] * 3


def test_async_latest_takes_items_from_a_writer_thread_in_order_never_twice():
    async def go():
        latest: AsyncLatest[int] = AsyncLatest()
        got = []

        async def read() -> None:
            seen = 0
            while seen < 200:
                seen, item = await latest.next_after(seen)
                got.append((seen, item))

        reader = asyncio.create_task(read())
        await asyncio.sleep(0)  # the reader waits before the writer starts
        writer = threading.Thread(target=lambda: [latest.put(i) for i in range(1, 201)])
        writer.start()
        await reader
        writer.join(timeout=30)
        return got

    got = run(go())
    assert all(number == item for number, item in got)  # each item under the number it was put with
    numbers = [number for number, _ in got]
    assert numbers == sorted(set(numbers)) and numbers[-1] == 200


def test_async_latest_close_from_a_thread_wakes_readers_and_keeps_the_last_item():
    async def go():
        latest: AsyncLatest[str] = AsyncLatest()
        waiting = asyncio.create_task(latest.next_after(0))
        await asyncio.sleep(0)
        await asyncio.to_thread(latest.close)
        assert await waiting is None and latest.closed
        assert latest.put("late") == "late"  # not delivered
        assert await latest.next_after(0) is None

        latest = AsyncLatest()
        latest.put("last")
        latest.close()
        assert await latest.next_after(0) == (1, "last")  # what came before the close is still there
        assert await latest.next_after(1) is None

    run(go())


def test_async_latest_made_outside_the_loop_for_a_writer_thread():
    loop = asyncio.new_event_loop()
    try:
        latest: AsyncLatest[str] = AsyncLatest(loop)
        writer = threading.Thread(target=lambda: latest.put("frame"))
        reader = loop.create_task(latest.next_after(0))
        loop.run_until_complete(asyncio.sleep(0))  # the reader waits before the writer starts
        writer.start()
        assert loop.run_until_complete(asyncio.wait_for(reader, 30)) == (1, "frame")
        writer.join(timeout=30)
    finally:
        loop.close()
