"""Menu rebuilds are coalesced: a storm of events is a handful of rebuilds."""

from __future__ import annotations

import threading
import time

from tray.ui.coalesce import Coalescer, RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_poke_runs_at_once_then_at_most_every_interval() -> None:
    clock = Clock()
    limit = RateLimit(0.25)
    assert limit.delay(clock()) is None  # nothing pending
    limit.poke()
    assert limit.take(clock())  # leading edge: no wait
    for _ in range(200):  # 200 forwards change within the next 100 ms
        clock.now += 0.0005
        limit.poke()
        assert not limit.take(clock())
    assert limit.delay(clock()) == 0.25 - 0.1 or abs(limit.delay(clock()) - 0.15) < 1e-9
    clock.now = 100.25
    assert limit.take(clock())  # one run for all 200
    assert limit.delay(clock()) is None


def test_quiet_period_means_next_poke_runs_immediately() -> None:
    clock = Clock()
    limit = RateLimit(0.25)
    limit.poke()
    assert limit.take(clock())
    clock.now += 5
    limit.poke()
    assert limit.delay(clock()) == 0
    assert limit.take(clock())


def test_runs_per_second_are_bounded_under_a_steady_stream() -> None:
    clock = Clock()
    limit = RateLimit(0.25)
    runs = 0
    for _ in range(1000):  # one event per ms for a second
        clock.now += 0.001
        limit.poke()
        runs += limit.take(clock())
    assert 4 <= runs <= 5


def test_coalescer_thread_merges_a_storm() -> None:
    runs = []
    done = threading.Event()

    def work() -> None:
        runs.append(time.monotonic())
        done.set()

    c = Coalescer(work, interval=0.2)
    try:
        for _ in range(200):
            c.poke()
        done.wait(2)
        time.sleep(0.5)
        assert 1 <= len(runs) <= 2
        if len(runs) == 2:
            assert runs[1] - runs[0] >= 0.19
        before = len(runs)
        c.poke()
        time.sleep(0.4)
        assert len(runs) == before + 1
    finally:
        c.close()


def test_a_failing_rebuild_does_not_stop_later_ones() -> None:
    calls = []

    def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    c = Coalescer(work, interval=0.05)
    try:
        c.poke()
        time.sleep(0.2)
        c.poke()
        time.sleep(0.2)
        assert len(calls) == 2
    finally:
        c.close()
