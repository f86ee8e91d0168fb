"""The server's resource limits on their own: the pixel budget and the guard of waiting connections."""

from __future__ import annotations

import asyncio

import pytest

from livecam.serve.limits import ConnectionGuard, PixelBudget


def test_pixel_budget_makes_a_request_over_it_wait_then_refuses_it():
    async def go():
        budget = PixelBudget(capacity=10, wait_s=0.05)
        async with budget.hold(8):
            with pytest.raises(asyncio.TimeoutError):
                async with budget.hold(5):
                    pass
            async with budget.hold(2):  # what is left may be used meanwhile
                pass
        async with budget.hold(5), budget.hold(5):  # all of it again, once released
            pass
        async with budget.hold(10**9):  # larger than the budget: takes all of it rather than waiting forever
            pass

    asyncio.run(go())


def test_a_waiting_request_goes_on_when_room_is_released():
    async def go():
        budget = PixelBudget(capacity=10, wait_s=60)
        order = []

        async def second():
            async with budget.hold(6):
                order.append("second")

        async with budget.hold(6):
            task = asyncio.create_task(second())
            await asyncio.sleep(0)
            order.append("first done")
        await task
        return order

    assert asyncio.run(go()) == ["first done", "second"]


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


class _Handler:
    def __init__(self) -> None:
        self.transport = _Transport()


class _Server:
    def __init__(self, n: int) -> None:
        self.connections = [_Handler() for _ in range(n)]


def test_the_oldest_waiting_connections_beyond_the_cap_are_closed_and_busy_ones_never():
    server = _Server(10)
    guard = ConnectionGuard(max_waiting=4)

    class Request:  # the oldest connection is handling a request (a WebSocket, say) while the guard sweeps
        protocol = server.connections[0]

    async def handler(request):
        return guard.sweep(server)

    assert asyncio.run(guard.middleware(Request(), handler)) == 5
    assert [h.transport.closed for h in server.connections] == [False] + [True] * 5 + [False] * 4
    assert guard.sweep(server) == 1  # the request is over: its connection waits too now
    assert guard.sweep(server, out_of_resources=True) == 1  # out of descriptors: the oldest quarter of those left too (4 // 4)
    assert [h.transport.closed for h in server.connections] == [True] * 7 + [False] * 3


def test_the_open_file_limit_is_raised_to_the_hard_limit():
    resource = pytest.importorskip("resource")  # POSIX; Windows has no such limit
    from livecam.serve.limits import raise_open_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    try:
        assert raise_open_file_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == (hard if hard != resource.RLIM_INFINITY else max(256, 65536))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
