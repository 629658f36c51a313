"""The dashboard links' one-time codes (tray/api/server.py's ``_Codes``): once, and for CODE_LIFETIME seconds."""

from __future__ import annotations

import pytest

from tray.api import server
from tray.api.server import CODE_LIFETIME, _Codes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_code_works_once() -> None:
    codes = _Codes(Clock())
    code = codes.mint()
    assert len(code) >= 24 and code.replace("-", "").replace("_", "").isalnum()
    assert codes.redeem(code)
    assert not codes.redeem(code)


def test_every_link_has_its_own_code_and_using_one_leaves_the_others() -> None:
    codes = _Codes(Clock())
    first, second = codes.mint(), codes.mint()
    assert first != second
    assert codes.redeem(second) and codes.redeem(first)


def test_a_code_expires_after_its_lifetime_and_is_gone_even_if_the_clock_went_back() -> None:
    clock = Clock()
    codes = _Codes(clock)
    early, late = codes.mint(), codes.mint()
    clock.now += CODE_LIFETIME - 0.5
    assert codes.redeem(early)
    clock.now += 1.0
    assert not codes.redeem(late)
    clock.now -= 10.0  # a refused code was used up: it is not good again
    assert not codes.redeem(late)


@pytest.mark.parametrize("offered", ["", "x", "ü" * 40, "\udcff", "a" * 10000])
def test_anything_else_is_refused(offered: str) -> None:
    codes = _Codes(Clock())
    codes.mint()
    assert not codes.redeem(offered)


def test_unused_codes_are_bounded_the_oldest_forgotten_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_CODES", 3)
    clock = Clock()
    codes = _Codes(clock)
    minted = [codes.mint() for _ in range(4)]
    assert not codes.redeem(minted[0])
    assert all(codes.redeem(c) for c in minted[1:])
    # Expired ones are dropped first, so they never push out a fresh code.
    old = [codes.mint() for _ in range(2)]
    clock.now += CODE_LIFETIME + 1
    fresh = [codes.mint() for _ in range(3)]
    assert all(codes.redeem(c) for c in fresh) and not any(codes.redeem(c) for c in old)
