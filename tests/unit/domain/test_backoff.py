"""Tests for tray.domain.backoff."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray.domain.backoff import DELAYS, MAX_ATTEMPTS, MAX_DELAY, Backoff, delay_for


def test_constants() -> None:
    assert DELAYS == (1, 2, 4, 8, 16)
    assert MAX_DELAY == 30
    assert MAX_ATTEMPTS == 5


@pytest.mark.parametrize(
    "attempt,delay", [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 30), (7, 30), (100, 30), (10**9, 30)]
)
def test_delay_for(attempt: int, delay: float) -> None:
    assert delay_for(attempt) == delay
    assert isinstance(delay_for(attempt), float)


@pytest.mark.parametrize("attempt", [0, -1])
def test_delay_for_rejects_non_positive(attempt: int) -> None:
    with pytest.raises(ValueError):
        delay_for(attempt)


@pytest.mark.parametrize("attempt", [1.0, "1", True, None])
def test_delay_for_rejects_non_int(attempt: object) -> None:
    with pytest.raises(TypeError):
        delay_for(attempt)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**6))
def test_delay_monotonic_and_capped(attempt: int) -> None:
    assert 0 < delay_for(attempt) <= MAX_DELAY
    assert delay_for(attempt) <= delay_for(attempt + 1)


def test_backoff_sequence_then_none() -> None:
    b = Backoff()
    assert b.attempts == 0 and not b.exhausted
    assert [b.next_delay() for _ in range(5)] == [1, 2, 4, 8, 16]
    assert b.attempts == 5 and b.exhausted
    assert b.next_delay() is None
    assert b.next_delay() is None
    assert b.attempts == 5


def test_backoff_reset() -> None:
    b = Backoff()
    b.next_delay()
    b.next_delay()
    b.reset()
    assert b.attempts == 0
    assert b.next_delay() == 1
    for _ in range(4):
        b.next_delay()
    assert b.next_delay() is None
    b.reset()
    assert b.next_delay() == 1


def test_backoff_unlimited() -> None:
    b = Backoff(max_attempts=None)
    delays = [b.next_delay() for _ in range(10)]
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    assert not b.exhausted


def test_backoff_custom_limit() -> None:
    b = Backoff(max_attempts=2)
    assert [b.next_delay(), b.next_delay(), b.next_delay()] == [1, 2, None]
    assert Backoff(max_attempts=0).next_delay() is None


def test_backoff_validation() -> None:
    with pytest.raises(ValueError):
        Backoff(max_attempts=-1)
    with pytest.raises(ValueError):
        Backoff(attempts=-1)


def test_backoff_instances_independent() -> None:
    a, b = Backoff(), Backoff()
    a.next_delay()
    assert b.attempts == 0
