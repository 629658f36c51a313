"""The profile field ``balance:`` (issue 14 part 3): how a Service target spreads its connections."""

from __future__ import annotations

import pytest

from tray.profiles import parse_profiles
from tray.profiles.model import Profile

from tests.unit.profiles.helpers import _doc, _first_error, _one_line, _p


@pytest.mark.parametrize("written", ["round-robin", "pin", "sticky"])
def test_a_service_takes_every_mode(written: str) -> None:
    (profile,) = parse_profiles(_doc(_p("a", balance=written))).profiles
    assert profile.balance == written
    assert profile.to_dict()["balance"] == written


def test_without_balance_the_target_decides() -> None:
    (profile,) = parse_profiles(_doc(_p("a"))).profiles
    assert profile.balance == "auto" and "balance" not in profile.to_dict()


def test_pin_suits_every_target() -> None:
    (profile,) = parse_profiles(_doc(_p("a", target="deploy/web", balance="pin"))).profiles
    assert profile.balance == "pin"


@pytest.mark.parametrize("target, written, words", [
    ("svc/web", "random", "unknown balance 'random': expected round-robin, pin, sticky"),
    ("deploy/web", "round-robin", "balance 'round-robin' needs a Service target"),
    ("pod/web-0", "sticky", "balance 'sticky' needs a Service target"),
])
def test_a_bad_balance_is_one_line_naming_the_field(target: str, written: str, words: str) -> None:
    err = _first_error(_doc(_p("a", target=target, balance=written)))
    assert err.field == "profiles[0].balance"
    line = _one_line(err)
    assert words in line and "\n" not in line


def test_a_namespace_profile_gives_its_services_a_balance() -> None:
    (profile,) = parse_profiles(_doc("  - {name: all, target: namespace/shop, balance: pin}\n")).profiles
    assert profile.balance == "pin" and profile.to_dict()["balance"] == "pin"
    err = _first_error(_doc("  - {name: all, target: namespace/shop, balance: spread}\n"))
    assert err.field == "profiles[0].balance"


def test_profile_default() -> None:
    assert Profile(name="a", target=parse_profiles(_doc(_p("a"))).profiles[0].target, ports=()).balance == "auto"


def test_a_started_profile_asks_for_its_balance() -> None:
    from tests.unit.profiles.test_run import Engine
    from tray.profiles.run import start_profiles

    (profile,) = parse_profiles(_doc(_p("a", balance="sticky"))).profiles
    engine = Engine()
    start_profiles(engine, [profile], lambda: "ctx")
    assert [s.balance for s in engine.specs] == ["sticky"]
