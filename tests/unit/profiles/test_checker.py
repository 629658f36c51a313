"""Tests for tray.profiles.checker: what good files mean, local address clashes across profiles,
and how problems are reported (all of them, in file order, one line each).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tray.domain.portspec import PortSpec
from tray.domain.targets import Target
from tray.errors import UsageError
from tray.profiles import (
    EMPTY_PROFILES_TEXT,
    MAX_ERRORS,
    Profile,
    ProfilesFile,
    check_profiles,
    load_profiles,
    parse_profiles,
)
from tray.profiles.reader import check_data

from tests.unit.profiles.helpers import EXAMPLE, CONTEXTS, _one_line, _errors_of, _first_error, _doc, _p


# --------------------------------------------------------------------------
# Good files
# --------------------------------------------------------------------------


def test_example_file_loads() -> None:
    pf = load_profiles(EXAMPLE, known_contexts=CONTEXTS)
    assert len(pf) >= 5
    web = pf.by_name("shop-web")
    assert web is not None
    assert web.context == "tender-a"
    assert web.namespace == "demo"
    assert web.target == Target("Service", "web")
    assert web.ports == (PortSpec(8080, 80),)
    assert web.autostart is True
    assert web.group == "shop"
    assert {p.target.kind for p in pf} >= {"Service", "Deployment", "StatefulSet", "DaemonSet"}
    assert {p.context for p in pf} >= {"tender-a", "tender-b"}
    assert set(pf.groups()) >= {"shop", "infra"}
    assert sum(p.autostart for p in pf) >= 1
    assert all(p.namespace in (None, "demo") for p in pf)
    assert check_profiles(EXAMPLE, CONTEXTS) == []


def test_all_fields_and_defaults() -> None:
    pf = parse_profiles(
        _doc(
            _p(
                "full",
                ports='["8080:80", "9090:metrics", ":5432", "3000", 4000, http]',
                context="tender-a",
                namespace="shop",
                address="localhost",
                autostart="true",
                group="shop",
            ),
            _p("minimal", ports="[7000]", target="db-0"),
        ),
        source="x.yaml",
    )
    full, minimal = pf.profiles
    assert full == Profile(
        name="full",
        context="tender-a",
        namespace="shop",
        target=Target("Service", "web"),
        ports=(
            PortSpec(8080, 80),
            PortSpec(9090, "metrics"),
            PortSpec(None, 5432),
            PortSpec(3000, 3000),
            PortSpec(4000, 4000),
            PortSpec(None, "http", local_same_as_remote=True),
        ),
        address="localhost",
        autostart=True,
        group="shop",
    )
    assert full.bind_addresses == ("127.0.0.1", "::1")
    assert full.line == 3 and minimal.line == 11
    assert minimal.context is None and minimal.namespace is None and minimal.group is None
    assert minimal.address == "127.0.0.1" and minimal.bind_addresses == ("127.0.0.1",)
    assert minimal.autostart is False
    assert minimal.target == Target("Pod", "db-0")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        # YAML 1.1 reads 8080:30 (unquoted) as the base-60 integer 484830 and
        # 8080:80 as a string; both must mean the port spec as written.
        ("[8080:30]", PortSpec(8080, 30)),
        ("[8080:80]", PortSpec(8080, 80)),
        ("[1:59]", PortSpec(1, 59)),
        ("[0080]", PortSpec(80, 80)),
        ("\n      - :80", PortSpec(None, 80)),
        ("\n      - 0:80", PortSpec(None, 80)),
        ("[0:80]", PortSpec(None, 80)),
        ("['443']", PortSpec(443, 443)),
        ("[!!str 443]", PortSpec(443, 443)),
        ("[65535]", PortSpec(65535, 65535)),
    ],
)
def test_port_items_are_read_as_written(written: str, expected: PortSpec) -> None:
    (profile,) = parse_profiles(_doc(_p("a", ports=written))).profiles
    assert profile.ports == (expected,)


@pytest.mark.parametrize("written", ["[8_080]", "[+80]", "[-80]", "[80.0]", "[.inf]", "[1_0:80]"])
def test_odd_yaml_numbers_are_not_ports(written: str) -> None:
    err = _first_error(_doc(_p("a", ports=written)))
    assert err.field == "profiles[0].ports[0]"


def test_hex_looking_ports_are_port_names() -> None:
    # Not YAML's 0x50 == 80: the text is a valid port *name*, as kubectl reads it.
    (profile,) = parse_profiles(_doc(_p("a", ports="[0x50]"))).profiles
    assert profile.ports == (PortSpec(None, "0x50", local_same_as_remote=True),)


@pytest.mark.parametrize("value", ["true", "yes", "on", "True", "false", "no", "off"])
def test_autostart_accepts_yaml_booleans(value: str) -> None:
    (profile,) = parse_profiles(_doc(_p("a", autostart=value))).profiles
    assert profile.autostart is (value.lower() in ("true", "yes", "on"))


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("'::1'", "::1"),
        ("'0:0:0:0:0:0:0:1'", "::1"),
        ("'fe80::1%eth0'", "fe80::1%eth0"),
        ("localhost", "localhost"),
        ("192.168.10.20", "192.168.10.20"),
    ],
)
def test_addresses(written: str, stored: str) -> None:
    (profile,) = parse_profiles(_doc(_p("a", address=written))).profiles
    assert profile.address == stored


@pytest.mark.parametrize(
    "written", ["LOCALHOST", "example.com", "127.0.0.1:80", "127.000.0.1", "'1.2.3'", "''", "'[::1]'"]
)
def test_bad_addresses(written: str) -> None:
    err = _first_error(_doc(_p("a", address=written)))
    assert err.field == "profiles[0].address"


def test_bom_crlf_and_utf16_are_accepted() -> None:
    text = _doc(_p("web", group="'café ✓'"))
    expected = parse_profiles(text).profiles
    assert expected[0].group == "café ✓"
    assert parse_profiles(("\ufeff" + text).encode()).profiles == expected
    assert parse_profiles(text.replace("\n", "\r\n").encode()).profiles == expected
    assert parse_profiles(text.encode("utf-16")).profiles == expected


def test_empty_profile_list_and_flow_style() -> None:
    assert parse_profiles(EMPTY_PROFILES_TEXT).profiles == ()
    flow = '{version: 1, profiles: [{name: a, target: svc/web, ports: ["1:2"]}]}'
    assert parse_profiles(flow).names() == ["a"]


def test_known_contexts() -> None:
    text = _doc(_p("a", context="tender-a"), _p("b", ports="[81]"))
    assert len(parse_profiles(text, known_contexts=CONTEXTS)) == 2  # b has no context: not checked
    assert len(parse_profiles(text)) == 2  # no kubeconfig: not checked
    err = _first_error(text, known_contexts={"other"})
    assert str(err) == 'p.yaml:6: profiles[0].context: unknown context "tender-a"; the kubeconfig has: other'
    err = _first_error(text, known_contexts=set())
    assert "the kubeconfig has no contexts" in str(err)
    err = _first_error(text, known_contexts={"tender-b"})
    assert "did you mean 'tender-b'?" in str(err)


def test_profiles_file_helpers() -> None:
    pf = parse_profiles(
        _doc(
            _p("a", ports="[1]", group="g1"),
            _p("b", ports="[2]"),
            _p("c", ports="[3]", group="g2"),
            _p("d", ports="[4]", group="g1"),
        ),
        source="x.yaml",
    )
    assert isinstance(pf, ProfilesFile)
    assert pf.path == Path("x.yaml")
    assert pf.names() == ["a", "b", "c", "d"] == [p.name for p in pf]
    assert len(pf) == 4
    assert pf.by_name("c").name == "c"  # type: ignore[union-attr]
    assert pf.by_name("C") is None and pf.by_name("zzz") is None
    groups = pf.groups()
    assert list(groups) == ["g1", None, "g2"]
    assert [p.name for p in groups["g1"]] == ["a", "d"]
    assert [p.name for p in groups[None]] == ["b"]


# --------------------------------------------------------------------------
# Local address:port collisions
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "clash"),
    [
        ({}, {}, True),
        ({"address": "127.0.0.1"}, {"address": "127.0.0.2"}, False),
        ({"address": "localhost"}, {"address": "'::1'"}, True),
        ({"address": "localhost"}, {}, True),
        ({"address": "0.0.0.0"}, {}, True),
        ({"address": "0.0.0.0"}, {"address": "'::1'"}, False),
        ({"address": "'::'"}, {}, True),
        ({"address": "'::'"}, {"address": "'::1'"}, True),
        ({"address": "'::1'"}, {"address": "'::ffff:127.0.0.1'"}, False),
        ({}, {"address": "'::ffff:127.0.0.1'"}, True),
    ],
)
def test_local_address_collisions(first: dict[str, str], second: dict[str, str], clash: bool) -> None:
    text = _doc(_p("a", ports="[8080]", **first), _p("b", ports='["8080:9090"]', **second))
    errors = _errors_of(text)
    if clash:
        assert len(errors) == 1 and "is already used by profile 'a'" in errors[0]
    else:
        assert errors == []


def test_free_and_named_local_ports_never_collide() -> None:
    text = _doc(
        _p("a", ports='[":80", "0:80", http, "9000:http"]'),
        _p("b", ports='[":80", http, ":http"]'),
    )
    assert len(parse_profiles(text)) == 2


def test_collision_with_a_profile_that_has_other_errors_is_still_found() -> None:
    text = _doc(_p("a", ports="[8080]", target="cronjob/x"), _p("b", ports="[8080]"))
    errors = _errors_of(text)
    assert len(errors) == 2
    assert "unknown resource kind" in errors[0]
    assert "already used by profile 'a'" in errors[1]


# --------------------------------------------------------------------------
# Error reporting
# --------------------------------------------------------------------------


def test_check_collects_all_errors_in_file_order() -> None:
    text = _doc(
        _p("ok", ports="[1]"),
        _p("bad name", ports="[70000]"),
        "  - target: svc/web\n    ports: [3]\n    nmae: x\n",
        _p("ok", ports="[4]", autostart="maybe"),
    )
    errors = _errors_of(text)
    assert errors == [
        'p.yaml:6: profiles[1].name: invalid profile name "bad name": use letters, digits, \'.\', \'_\' and '
        "'-', starting with a letter or digit",
        'p.yaml:8: profiles[1].ports[0]: invalid port spec "70000": port 70000 is out of range 1-65535',
        "p.yaml:11: profiles[2].nmae: unknown key \"nmae\"; did you mean 'name'?",
        "p.yaml:9: profiles[2]: missing required key 'name'",
        "p.yaml:12: profiles[3].name: duplicate profile name 'ok' (first used at line 3)",
        "p.yaml:15: profiles[3].autostart: expected true or false, got a string",
    ]
    with pytest.raises(UsageError) as info:
        parse_profiles(text, source="p.yaml")
    assert str(info.value) == errors[0]


def test_error_count_is_bounded() -> None:
    text = _doc(*(_p(f"p{i}", ports="[70000]") for i in range(300)))
    errors = _errors_of(text)
    assert len(errors) == MAX_ERRORS + 1
    assert "too many problems" in errors[-1]


def test_error_messages_stay_on_one_line() -> None:
    text = (
        "version: 1\nprofiles:\n"
        '  - {"na\\nme": x, name: "a\\nb", target: "svc/a\\nb", ports: ["1\\n2"], group: "x\\ry"}\n'
    )
    errors = check_data(text, "p.yaml", None)[1]
    assert len(errors) == 5
    for err in errors:
        _one_line(err)


def test_error_keeps_unusual_keys_readable() -> None:
    errors = _errors_of('version: 1\nprofiles: []\n"two words": 1\n')
    assert errors == ['p.yaml:3: ["two words"]: unknown key "two words"; expected one of: version, relay, profiles']


def test_unsupported_version_stops_checking() -> None:
    errors = _errors_of("version: 3\nprofiles:\n  - {whatever: 1}\n")
    assert errors == ['p.yaml:1: version: unsupported version "3"; this Tender reads version 1']


def test_huge_version_number_is_just_unsupported() -> None:
    errors = _errors_of("version: " + "9" * 5000 + "\nprofiles: []\n")
    assert len(errors) == 1 and "unsupported version" in errors[0]


def test_usage_error_is_the_only_exception_for_non_text() -> None:
    with pytest.raises(UsageError, match="not a text file"):
        parse_profiles(bytes(range(256)) * 4)
