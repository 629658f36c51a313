"""``address: auto`` in profiles: accepted, and the duplicate address:port check sees each target's own address."""

from __future__ import annotations

from tray.domain.addresses import auto_address
from tray.profiles import parse_profiles

from tests.unit.profiles.helpers import _doc, _errors_of, _p


def test_auto_is_accepted_and_kept() -> None:
    (profile,) = parse_profiles(_doc(_p("pg", '["5432"]', "svc/pg", address="auto"))).profiles
    assert profile.address == "auto"
    assert profile.to_dict()["address"] == "auto"


def test_two_auto_forwards_to_different_targets_share_a_port() -> None:
    doc = _doc(_p("pg-a", '["5432"]', "svc/pg-a", address="auto"),
               _p("pg-b", '["5432"]', "svc/pg-b", address="auto"),
               _p("pg-c", '["5432"]', "svc/pg-a", address="auto", namespace="other"),
               _p("pg-d", '["5432"]', "svc/pg-a", address="auto", context="tender-b"))
    assert _errors_of(doc) == []


def test_the_same_target_twice_on_auto_clashes() -> None:
    doc = _doc(_p("pg-a", '["5432"]', "svc/pg", address="auto"),
               _p("pg-b", '["5432:pg"]', "svc/pg", address="auto"))
    (error,) = _errors_of(doc)
    assert error.startswith("p.yaml:9: profiles[1].ports[0]: local address auto:5432 (the address of pg in "
                            "the default namespace of the current context) is already used by profile 'pg-a'")


def test_a_known_auto_address_clashes_with_the_same_address_written_out_and_a_wildcard() -> None:
    ip = auto_address("tender-a", "demo", "pg")
    auto = _p("auto", '["5432"]', "svc/pg", address="auto", context="tender-a", namespace="demo")
    written = _p("written", '["5432"]', "svc/other", address=ip)
    (error,) = _errors_of(_doc(auto, written))
    assert f"local address {ip}:5432 is already used by profile 'auto'" in error
    (error,) = _errors_of(_doc(_p("any", '["5432"]', "svc/x", address="0.0.0.0"), auto))
    assert f"local address {ip}:5432 (address auto) is already used by profile 'any'" in error
    # 127.0.0.1 is never an auto address: no clash on the same port.
    assert _errors_of(_doc(auto, _p("plain", '["5432"]', "svc/y"))) == []


def test_a_bad_target_with_auto_is_one_error() -> None:
    doc = _doc(_p("a", '["5432"]', "frob/x", address="auto"), _p("b", '["5432"]', "frob/x", address="auto"))
    errors = _errors_of(doc)
    assert len(errors) == 2 and all("target" in e for e in errors), errors


def test_a_misspelt_auto_names_auto_in_the_error() -> None:
    (error,) = _errors_of(_doc(_p("a", address="Auto")))
    assert error.endswith('invalid address "Auto": expected an IP address, "localhost" or "auto"')
