"""StreamPool: spares are kept only while busy, only for the current pod."""

from __future__ import annotations

import asyncio

from websockets.protocol import State

from tray.engine import pool as pool_mod
from tray.engine.pool import StreamPool


class FakeStream:
    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.state = State.OPEN
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        self.state = State.CLOSED


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_pool(size: int = 2):
    opened: list[FakeStream] = []

    async def opener(pod: str, port: int) -> FakeStream:
        s = FakeStream((pod, port))
        opened.append(s)
        return s

    clock = Clock()
    return StreamPool(opener, size=size, clock=clock), opened, clock


def run(coro):
    return asyncio.run(coro)


def test_first_take_is_empty_then_spares_are_ready():
    async def main():
        pool, opened, _ = make_pool(size=2)
        assert pool.take("web-1", 8080) is None
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        s = pool.take("web-1", 8080)
        assert s is not None and s.key == ("web-1", 8080)
        pool.close()
    run(main())


def test_spares_for_another_pod_are_closed_not_used():
    async def main():
        pool, opened, _ = make_pool(size=2)
        pool.take("web-1", 8080)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        old = list(opened)
        s = pool.take("web-2", 8080)
        assert s is None
        await asyncio.sleep(0)
        assert all(o.closed for o in old)
        await asyncio.sleep(0)
        s = pool.take("web-2", 8080)
        assert s is not None and s.key == ("web-2", 8080)
        pool.close()
    run(main())


def test_closed_spare_is_skipped():
    async def main():
        pool, opened, _ = make_pool(size=2)
        pool.take("web-1", 8080)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        opened[0].state = State.CLOSED
        s = pool.take("web-1", 8080)
        assert s is opened[1]
        pool.close()
    run(main())


def test_idle_pool_lets_spares_go(monkeypatch):
    monkeypatch.setattr(pool_mod, "WARM_FOR", 0.05)

    async def main():
        pool, opened, clock = make_pool(size=1)
        pool.take("web-1", 8080)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert len(opened) == 1 and not opened[0].closed
        clock.now = 1.0  # long after the last connection
        await asyncio.sleep(0.1)
        assert opened[0].closed
        pool.close()
    run(main())


def test_failed_open_is_not_fatal():
    async def main():
        async def opener(pod, port):
            raise OSError("refused")

        pool = StreamPool(opener, size=1)
        assert pool.take("web-1", 8080) is None
        await asyncio.sleep(0)
        assert pool.take("web-1", 8080) is None
        pool.close()
    run(main())
