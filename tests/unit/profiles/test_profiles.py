"""Tests for tray.profiles: loading, validation, errors, saving, the schema."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tray.profiles.reader
from tray import profiles as profiles_mod
from tray.errors import UsageError
from tray.domain.portspec import PortSpec, parse_port_spec
from tray.profiles import (
    EMPTY_PROFILES_TEXT,
    MAX_ERRORS,
    NAME_PATTERN,
    NAMESPACE_PATTERN,
    PROFILE_KEYS,
    REQUIRED_PROFILE_KEYS,
    TOP_LEVEL_KEYS,
    Profile,
    ProfilesFile,
    add_profile,
    check_profiles,
    default_profiles_path,
    dump_profiles,
    ensure_profiles_file,
    load_profiles,
    parse_profiles,
    save_profiles,
)
from tray.domain.targets import Target, parse_target
from tray.profiles.reader import check_data

REPO = Path(__file__).resolve().parents[3]
BAD = REPO / "tests" / "data" / "bad-profiles"
EXAMPLE = REPO / "config" / "profiles.example.yaml"
SCHEMA = REPO / "config" / "profiles.schema.json"
CONTEXTS = {"tender-a", "tender-b"}


def _one_line(err: UsageError) -> str:
    text = str(err)
    assert "\n" not in text and "\r" not in text, text
    return text


def _write(tmp_path: Path, text: str | bytes, name: str = "profiles.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _errors_of(text: str, **kwargs: Any) -> list[str]:
    return [str(e) for e in check_data(text, "p.yaml", kwargs.get("known_contexts"))[1]]


def _first_error(text: str | bytes, **kwargs: Any) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse_profiles(text, source="p.yaml", **kwargs)
    _one_line(info.value)
    return info.value


def _doc(*profiles: str) -> str:
    return "version: 1\nprofiles:\n" + "".join(profiles)


def _p(name: str, ports: str = '["8080:80"]', target: str = "svc/web", **extra: str) -> str:
    out = f"  - name: {name}\n    target: {target}\n    ports: {ports}\n"
    for key, value in extra.items():
        out += f"    {key}: {value}\n"
    return out


# --------------------------------------------------------------------------
# The corpus of broken files
# --------------------------------------------------------------------------


def _expected_rows() -> list[tuple[str, int | None, str]]:
    rows = []
    for raw in (BAD / "EXPECTED.tsv").read_text(encoding="utf-8").splitlines():
        if not raw or raw.startswith("#"):
            continue
        name, line, fragment = raw.split("\t")
        rows.append((name, None if line == "-" else int(line), fragment))
    return rows


ROWS = _expected_rows()


def test_corpus_table_matches_the_files() -> None:
    names = [name for name, _, _ in ROWS]
    assert len(names) == len(set(names)), "duplicate rows in EXPECTED.tsv"
    on_disk = {p.name for p in BAD.iterdir()} - {"EXPECTED.tsv"}
    assert set(names) == on_disk
    assert len(names) >= 40


@pytest.mark.parametrize(("name", "line", "fragment"), ROWS, ids=[r[0] for r in ROWS])
def test_bad_profiles_corpus(name: str, line: int | None, fragment: str) -> None:
    path = BAD / name
    with pytest.raises(UsageError) as info:
        load_profiles(path, known_contexts=CONTEXTS)
    err = info.value
    text = _one_line(err)
    assert err.source == str(path)
    assert err.line == line
    prefix = f"{path}:{line}: " if line is not None else f"{path}: "
    assert text.startswith(prefix), text
    assert fragment in text, text
    # check_profiles finds the same problem first, and no false "all good".
    found = check_profiles(path, CONTEXTS)
    assert found and str(found[0]) == text
    assert all(isinstance(e, UsageError) for e in found)
    assert all(_one_line(e).startswith(f"{path}:") for e in found)


def test_alias_bomb_is_refused_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(UsageError, match="anchors"):
        load_profiles(BAD / "alias-bomb.yaml")
    assert time.perf_counter() - start < 0.5


def test_bigger_alias_bomb_and_quadratic_blowup_are_refused_quickly(tmp_path: Path) -> None:
    lines = ['l0: &l0 ["' + "x" * 1000 + '"]']
    for i in range(1, 30):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    bomb = _write(tmp_path, "\n".join(lines) + "\n")
    # One big anchored value referenced many times ("quadratic blowup").
    big = "version: 1\nprofiles:\n  - &p {name: a" + ", x: " + "y" * 100_000 + "}\n" + "  - *p\n" * 5000
    quad = _write(tmp_path, big, "quad.yaml")
    for path in (bomb, quad):
        start = time.perf_counter()
        errors = check_profiles(path)
        assert time.perf_counter() - start < 0.5
        assert len(errors) == 1 and "not supported" in str(errors[0])


def test_alias_without_anchor_is_refused() -> None:
    err = _first_error("version: 1\nprofiles: *nothing\n")
    assert "aliases (*nothing) are not supported" in str(err)
    assert err.line == 2


# --------------------------------------------------------------------------
# File-level cases made at run time
# --------------------------------------------------------------------------


def test_huge_file_is_refused_without_reading_it(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB of NULs
    reads: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        reads.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(tray.profiles.reader.os, "read", counting_read)
    start = time.perf_counter()
    with pytest.raises(UsageError) as info:
        load_profiles(path)
    assert time.perf_counter() - start < 0.5
    assert reads == []
    text = _one_line(info.value)
    assert text.startswith(f"{path}: ")
    assert "file is too large (52428800 bytes; the limit is 1048576 bytes = 1 MiB)" in text


def test_file_just_over_the_limit_is_refused(tmp_path: Path) -> None:
    body = "version: 1\nprofiles: []\n"
    path = _write(tmp_path, body + "#" * (profiles_mod.MAX_FILE_SIZE + 1 - len(body)))
    assert path.stat().st_size == profiles_mod.MAX_FILE_SIZE + 1
    with pytest.raises(UsageError, match="too large"):
        load_profiles(path)


def test_file_at_the_limit_is_read(tmp_path: Path) -> None:
    body = "version: 1\nprofiles: []\n"
    path = _write(tmp_path, body + "#" * (profiles_mod.MAX_FILE_SIZE - len(body)))
    assert load_profiles(path).profiles == ()


def test_too_many_nodes_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\nprofiles: [" + "1," * 200_000 + "]\n")
    start = time.perf_counter()
    with pytest.raises(UsageError, match="too many YAML nodes"):
        load_profiles(path)
    assert time.perf_counter() - start < 3


def test_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.mkdir()
    with pytest.raises(UsageError) as info:
        load_profiles(path)
    assert _one_line(info.value) == f"{path}: is a directory, not a profiles file"


def test_unreadable_file_is_refused_simulated(tmp_path: Path, monkeypatch) -> None:
    # Tests run as root here, which chmod cannot lock out: simulate EACCES
    # (a real chmod 000 test would always be skipped on this machine).
    path = _write(tmp_path, EMPTY_PROFILES_TEXT)

    def denied(*args: Any, **kwargs: Any) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tray.profiles.reader.os, "open", denied)
    with pytest.raises(UsageError) as info:
        load_profiles(path)
    assert _one_line(info.value) == f"{path}: permission denied: cannot read the file"


def test_read_error_is_a_usage_error(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path, EMPTY_PROFILES_TEXT)

    def broken(fd: int, n: int) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(tray.profiles.reader.os, "read", broken)
    with pytest.raises(UsageError) as info:
        load_profiles(path)
    assert _one_line(info.value) == f"{path}: cannot read the file: Input/output error"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    start = time.perf_counter()
    with pytest.raises(UsageError, match="not a regular file"):
        load_profiles(path)
    assert time.perf_counter() - start < 1


def test_path_through_a_file_is_an_error(tmp_path: Path) -> None:
    parent = _write(tmp_path, "x", "afile")
    with pytest.raises(UsageError, match="cannot open the file"):
        load_profiles(parent / "profiles.yaml")


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(UsageError) as info:
        load_profiles(path)
    assert _one_line(info.value) == f"{path}: no such file"
    assert [str(e) for e in check_profiles(path)] == [f"{path}: no such file"]


def test_missing_file_with_missing_ok(tmp_path: Path) -> None:
    pf = load_profiles(tmp_path / "nope.yaml", missing_ok=True)
    assert pf.profiles == () and pf.path == tmp_path / "nope.yaml"
    assert check_profiles(tmp_path / "nope.yaml", missing_ok=True) == []


def test_missing_default_file_means_no_profiles(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("TENDER_PROFILES", raising=False)
    monkeypatch.setattr(tray.profiles.reader, "default_profiles_path", lambda: tmp_path / "cfg" / "profiles.yaml")
    pf = load_profiles()
    assert pf.profiles == ()
    assert pf.path == tmp_path / "cfg" / "profiles.yaml"
    assert check_profiles() == []


def test_missing_file_named_by_env_is_an_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "typo.yaml"
    monkeypatch.setenv("TENDER_PROFILES", str(path))
    with pytest.raises(UsageError) as info:
        load_profiles()
    assert str(info.value) == f"{path}: no such file"


def test_default_path_loads_existing_file(tmp_path: Path, monkeypatch) -> None:
    path = _write(tmp_path, _doc(_p("web")))
    monkeypatch.setenv("TENDER_PROFILES", str(path))
    assert load_profiles().names() == ["web"]


def test_default_profiles_path_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TENDER_PROFILES", str(tmp_path / "p.yaml"))
    assert default_profiles_path() == tmp_path / "p.yaml"
    monkeypatch.setenv("TENDER_PROFILES", "~/somewhere/p.yaml")
    assert default_profiles_path() == Path.home() / "somewhere" / "p.yaml"


def test_default_profiles_path_platformdirs(monkeypatch) -> None:
    import platformdirs

    monkeypatch.delenv("TENDER_PROFILES", raising=False)
    path = default_profiles_path()
    assert path.name == "profiles.yaml"
    assert path.parent == platformdirs.user_config_path("tender", appauthor=False)
    monkeypatch.setenv("TENDER_PROFILES", "")
    assert default_profiles_path() == path


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
    assert errors == ['p.yaml:3: ["two words"]: unknown key "two words"; expected one of: version, profiles']


def test_unsupported_version_stops_checking() -> None:
    errors = _errors_of("version: 3\nprofiles:\n  - {whatever: 1}\n")
    assert errors == ['p.yaml:1: version: unsupported version "3"; this Tender reads version 1']


def test_huge_version_number_is_just_unsupported() -> None:
    errors = _errors_of("version: " + "9" * 5000 + "\nprofiles: []\n")
    assert len(errors) == 1 and "unsupported version" in errors[0]


def test_usage_error_is_the_only_exception_for_non_text() -> None:
    with pytest.raises(UsageError, match="not a text file"):
        parse_profiles(bytes(range(256)) * 4)


# --------------------------------------------------------------------------
# Hypothesis: nothing but UsageError, whatever the input
# --------------------------------------------------------------------------

_YAMLISH = st.text(
    alphabet=st.sampled_from(list(" \t\n\r:-[]{},#&*!|>'\"%@`?.~\\0123456789abcnoprstvy_\x00\x85\ufeff\u2028é")),
    max_size=200,
)

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["svc/web", "8080:80", ":http", "localhost", "tender-a", "yes", "0:0", "web"]),
)
_KEYS = st.sampled_from([*PROFILE_KEYS, *TOP_LEVEL_KEYS, "other", "<<"])
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_KEYS, children, max_size=6),
    ),
    max_leaves=20,
)
_DOCS = st.one_of(
    _VALUES,
    st.fixed_dictionaries(
        {"version": st.one_of(st.just(1), _SCALARS), "profiles": st.lists(st.dictionaries(_KEYS, _VALUES), max_size=4)}
    ),
)


def _only_usage_errors(data: str | bytes) -> None:
    try:
        pf = parse_profiles(data, source="fuzz.yaml")
    except UsageError as err:
        text = _one_line(err)
        assert text.startswith("fuzz.yaml")
    else:
        assert all(isinstance(p, Profile) for p in pf)
    for err in check_data(data, "fuzz.yaml", CONTEXTS)[1]:
        _one_line(err)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_text(data: str) -> None:
    _only_usage_errors(data)


@settings(max_examples=300, deadline=None)
@given(_YAMLISH)
def test_fuzz_yamlish_text(data: str) -> None:
    _only_usage_errors(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes(data: bytes) -> None:
    _only_usage_errors(data)


@settings(max_examples=150, deadline=None)
@given(_DOCS)
def test_fuzz_structured_documents(doc: Any) -> None:
    _only_usage_errors(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=200), _YAMLISH.map(str.encode)))
def test_fuzz_through_a_file(tmp_path: Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    try:
        load_profiles(path, known_contexts=CONTEXTS)
    except UsageError as err:
        assert _one_line(err).startswith(str(path))
    for err in check_profiles(path, CONTEXTS):
        _one_line(err)


# --------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------

_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
_LABEL = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?", fullmatch=True)
_PORT = st.integers(min_value=1, max_value=65535)
_PORT_NAME = st.sampled_from(["http", "metrics", "grpc-web", "p8080", "db"])
_SPECS = st.one_of(
    st.builds(PortSpec, _PORT, st.one_of(_PORT, _PORT_NAME)),
    st.builds(PortSpec, st.none(), st.one_of(_PORT, _PORT_NAME)),
    st.builds(lambda n: PortSpec(None, n, local_same_as_remote=True), _PORT_NAME),
    st.builds(lambda n: PortSpec(n, n), _PORT),
)
_TARGETS = st.builds(Target, st.sampled_from(["Pod", "Service", "Deployment", "StatefulSet", "DaemonSet"]), _LABEL)
_FREE_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=15
)
_PROFILES = st.builds(
    lambda name, context, namespace, target, ports, address, autostart, group: Profile(
        name=name,
        context=context,
        namespace=namespace,
        target=target,
        ports=tuple(ports),
        address=address,
        autostart=autostart,
        group=group,
    ),
    _NAMES,
    st.one_of(st.none(), _FREE_TEXT),
    st.one_of(st.none(), _LABEL),
    _TARGETS,
    st.lists(_SPECS, min_size=1, max_size=4, unique_by=lambda s: s.local if s.local is not None else object()),
    st.sampled_from(["127.0.0.1", "localhost", "::1", "0.0.0.0", "10.1.2.3"]),
    st.booleans(),
    st.one_of(st.none(), _FREE_TEXT),
)


def _without_clashes(profiles: list[Profile]) -> list[Profile]:
    """Keep profiles whose names and local ports are unused so far (any address)."""
    out, names, ports = [], set(), set()
    for p in profiles:
        locals_ = {s.local for s in p.ports if s.local is not None}
        if p.name in names or locals_ & ports:
            continue
        out.append(p)
        names.add(p.name)
        ports |= locals_
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(_PROFILES, max_size=5).map(_without_clashes))
def test_dump_round_trip(profiles: list[Profile]) -> None:
    text = dump_profiles(profiles)
    loaded = parse_profiles(text).profiles
    assert list(loaded) == profiles
    assert dump_profiles(loaded) == text


def test_save_and_reload_the_example(tmp_path: Path) -> None:
    original = load_profiles(EXAMPLE)
    path = tmp_path / "saved.yaml"
    written = save_profiles(path, original)
    assert written.profiles == original.profiles
    again = load_profiles(path)
    assert again.profiles == original.profiles
    assert [p.line for p in again] == [p.line for p in written]
    text = path.read_text()
    assert text.startswith("# Tender profiles (format version 1)")
    assert "Comments and layout are kept when Tender edits this file" in text


def test_save_creates_private_file_and_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "profiles.yaml"
    save_profiles(path, [])
    assert load_profiles(path).profiles == ()
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_to_dict_leaves_out_defaults() -> None:
    p = Profile(name="a", target=parse_target("svc/web"), ports=(parse_port_spec("8080:80"), parse_port_spec("3000")))
    assert p.to_dict() == {"name": "a", "target": "svc/web", "ports": ["8080:80", "3000"]}
    full = Profile(
        name="b",
        context="c",
        namespace="n",
        target=parse_target("deployment.apps/web"),
        ports=(parse_port_spec(":http"),),
        address="localhost",
        autostart=True,
        group="g",
    )
    assert full.to_dict() == {
        "name": "b",
        "context": "c",
        "namespace": "n",
        "target": "deploy/web",
        "ports": [":http"],
        "address": "localhost",
        "autostart": True,
        "group": "g",
    }
    assert list(full.to_dict()) == [k for k in PROFILE_KEYS]


def test_dumped_ports_survive_yaml_number_traps() -> None:
    p = Profile(name="a", target=parse_target("web"), ports=(PortSpec(8080, 30), PortSpec(3000, 3000)))
    text = dump_profiles([p])
    assert parse_profiles(text).profiles == (p,)
    assert "'8080:30'" in text and "'3000'" in text


def test_profile_line_is_not_part_of_equality() -> None:
    a = Profile(name="a", target=parse_target("web"), ports=(PortSpec(1, 1),), line=3)
    b = Profile(name="a", target=parse_target("web"), ports=(PortSpec(1, 1),), line=9)
    assert a == b and hash(a) == hash(b)


def test_save_refuses_invalid_profiles_and_keeps_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, EXAMPLE.read_text())
    before = path.read_bytes()
    dup = Profile(name="x", target=parse_target("web"), ports=(PortSpec(1, 1),))
    with pytest.raises(UsageError, match="duplicate profile name 'x'") as info:
        save_profiles(path, [dup, dup])
    assert info.value.source == str(path)
    clash = Profile(name="y", target=parse_target("web"), ports=(PortSpec(1, 2),))
    with pytest.raises(UsageError, match="already used by profile 'x'"):
        save_profiles(path, [dup, clash])
    assert path.read_bytes() == before


def test_add_profile(tmp_path: Path) -> None:
    path = tmp_path / "new" / "profiles.yaml"
    first = Profile(name="a", target=parse_target("svc/web"), ports=(PortSpec(8080, 80),), group="g")
    second = Profile(name="b", target=parse_target("sts/db"), ports=(PortSpec(5432, 5432),), autostart=True)
    assert add_profile(path, first).profiles == (first,)
    result = add_profile(path, second)
    assert result.profiles == (first, second)
    assert load_profiles(path).profiles == (first, second)

    before = path.read_bytes()
    with pytest.raises(UsageError) as info:
        add_profile(path, Profile(name="a", target=parse_target("web"), ports=(PortSpec(1, 1),)))
    assert _one_line(info.value) == f"{path}:5: a profile named 'a' already exists"
    with pytest.raises(UsageError, match="already used by profile 'a'"):
        add_profile(path, Profile(name="c", target=parse_target("web"), ports=(PortSpec(8080, 1),)))
    assert path.read_bytes() == before


def test_add_profile_does_not_overwrite_a_broken_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "version: 1\nprofiles: [\n")
    with pytest.raises(UsageError, match="YAML syntax error"):
        add_profile(path, Profile(name="a", target=parse_target("web"), ports=(PortSpec(1, 1),)))
    assert path.read_text() == "version: 1\nprofiles: [\n"


def test_ensure_profiles_file(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "profiles.yaml"
    assert ensure_profiles_file(path) == (path, True)
    assert path.read_text() == "version: 1\nprofiles: []\n"
    assert load_profiles(path).profiles == ()
    path.write_text("garbage")
    assert ensure_profiles_file(path) == (path, False)
    assert path.read_text() == "garbage"


def test_empty_file_is_an_error_but_a_fresh_file_is_not(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    with pytest.raises(UsageError, match="file is empty"):
        load_profiles(path)
    path.unlink()
    ensure_profiles_file(path)
    assert check_profiles(path) == []


# --------------------------------------------------------------------------
# The JSON Schema must say what the loader does
# --------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def _profile_schema() -> dict[str, Any]:
    return _schema()["$defs"]["profile"]


def _ecma_search(pattern: str, text: str) -> bool:
    # JSON Schema patterns are ECMA-262: "$" matches only at the very end
    # (Python's also matches before a final newline).
    return re.search(pattern.replace("$", r"\Z"), text) is not None


def test_schema_keys_match_the_loader() -> None:
    schema = _schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(TOP_LEVEL_KEYS)
    assert set(schema["required"]) == set(TOP_LEVEL_KEYS)
    assert schema["properties"]["version"] == {**schema["properties"]["version"], "const": profiles_mod.VERSION}
    assert schema["properties"]["profiles"]["items"] == {"$ref": "#/$defs/profile"}
    profile = _profile_schema()
    assert profile["additionalProperties"] is False
    assert list(profile["properties"]) == list(PROFILE_KEYS)
    assert set(profile["required"]) == set(REQUIRED_PROFILE_KEYS)
    assert profile["properties"]["name"]["pattern"] == NAME_PATTERN
    assert profile["properties"]["namespace"]["pattern"] == NAMESPACE_PATTERN
    assert profile["properties"]["autostart"] == {**profile["properties"]["autostart"], "type": "boolean"}
    assert profile["properties"]["address"]["default"] == profiles_mod.DEFAULT_ADDRESS
    assert profile["properties"]["ports"]["minItems"] == 1


_TARGET_SAMPLES = [
    "web", "db-0", "a.b.c", "svc/web", "SVC/web", "service/web", "services/web", "po/x", "pod/x", "pods/x",
    "Pod/x", "deploy/web", "deployment/web", "Deployments/web", "deployment.apps/web", "deployments.v1.apps/web",
    "sts/db", "statefulset.apps/db", "ds/agent", "DaemonSets.V1.Apps/agent", "svc.apps/web", "pod.v1/x",
    "job/x", "rs/web", "rc/web", "jobs.batch/x", "job.apps/x", "rc.v1/x", "cronjob/x", "/web", "svc/", "", "svc/web/x", "svc/Web", "svc/-web", "svc/web-", "svc/we b", "svc/web\n",
    "svc/a..b", "deploy.extensions/web", "cronjob/x", "svc//web",
]

_PORT_SAMPLES = [
    "80", "8080", "65535", "65536", "0", "00080", "8080:80", "8080:http", ":80", ":http", "0:80", "http",
    "0:0", "1:0", "70000", "8080:70000", "99999:80", ":", "", "a:80", "-1", "+80", "8080:Http", "8080:web_ui",
    "8080:-web", "8080:web-", "8080:a--b", "8080:123", "8080:abcdefghijklmnop", "8080:abcdefghijklmno",
    "1:2:3", " 80", "80\n", "８０", "http2", "2http", "0000000000080",
]

_NAME_SAMPLES = ["web", "Shop.Web_1", "a", "a" * 63, "a" * 64, "-a", "_a", ".a", "a b", "", "ü", "a\n", "9"]
_NAMESPACE_SAMPLES = ["demo", "a", "a" * 63, "a" * 64, "Demo", "-a", "a-", "a.b", "a_b", "", "1", "a\n"]
_ADDRESS_SAMPLES = [
    "127.0.0.1", "0.0.0.0", "255.255.255.255", "256.0.0.1", "01.2.3.4", "1.2.3", "::1", "::", "fe80::1%eth0",
    "::ffff:1.2.3.4", "localhost", "LOCALHOST", "example.com", "127.0.0.1 ", "",
]


def _loader_accepts(field: str, value: str) -> bool:
    base = {"name": "p", "target": "svc/web", "ports": ["8080:80"]}
    if field == "ports":
        base["ports"] = [value]
    else:
        base[field] = value
    try:
        parse_profiles(yaml.safe_dump({"version": 1, "profiles": [base]}))
    except UsageError:
        return False
    return True


@pytest.mark.parametrize(
    ("field", "samples"),
    [
        ("target", _TARGET_SAMPLES),
        ("name", _NAME_SAMPLES),
        ("namespace", _NAMESPACE_SAMPLES),
        ("address", _ADDRESS_SAMPLES),
        ("context", ["tender-a", "any thing ✓", "", "a\tb", "a\u0085b"]),
        ("group", ["shop", "Shop & Co", "", "a\nb", "\x7f"]),
    ],
)
def test_schema_string_patterns_agree_with_the_loader(field: str, samples: list[str]) -> None:
    prop = _profile_schema()["properties"][field]
    for sample in samples:
        if field == "address":
            schema_ok = any(
                ("const" in alt and alt["const"] == sample)
                or ("pattern" in alt and _ecma_search(alt["pattern"], sample))
                for alt in prop["anyOf"]
            )
        else:
            schema_ok = _ecma_search(prop["pattern"], sample)
        assert schema_ok == _loader_accepts(field, sample), (field, sample)


def test_schema_port_pattern_agrees_with_the_loader() -> None:
    alternatives = _profile_schema()["properties"]["ports"]["items"]["anyOf"]
    (pattern,) = [alt["pattern"] for alt in alternatives if alt.get("type") == "string"]
    (integer,) = [alt for alt in alternatives if alt.get("type") == "integer"]
    assert (integer["minimum"], integer["maximum"]) == (1, 65535)
    for sample in _PORT_SAMPLES:
        assert _ecma_search(pattern, sample) == _loader_accepts("ports", sample), sample


# A tiny validator for the subset of JSON Schema the schema file uses, so the
# example can be checked against it without the jsonschema package.
_SUPPORTED = {
    "$schema", "title", "description", "$comment", "default", "format", "$defs", "$ref", "type", "properties",
    "required", "additionalProperties", "items", "minItems", "anyOf", "const", "pattern", "minimum", "maximum",
}


def _keywords(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    found |= _keywords(sub)
            elif key in ("items",):
                found |= _keywords(value)
            elif key == "anyOf":
                for sub in value:
                    found |= _keywords(sub)
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _valid(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/")
        return _valid(value, root["$defs"][ref[len("#/$defs/"):]], root)
    if "type" in schema and _json_type(value) != schema["type"]:
        return False
    if "const" in schema and not (_json_type(value) == _json_type(schema["const"]) and value == schema["const"]):
        return False
    if "pattern" in schema and isinstance(value, str) and not _ecma_search(schema["pattern"], value):
        return False
    if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
        return False
    if "maximum" in schema and isinstance(value, int) and value > schema["maximum"]:
        return False
    if "anyOf" in schema and not any(_valid(value, alt, root) for alt in schema["anyOf"]):
        return False
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return False
        if "items" in schema and not all(_valid(v, schema["items"], root) for v in value):
            return False
    if isinstance(value, dict):
        props = schema.get("properties", {})
        if any(key not in value for key in schema.get("required", ())):
            return False
        if schema.get("additionalProperties") is False and any(key not in props for key in value):
            return False
        if not all(_valid(v, props[k], root) for k, v in value.items() if k in props):
            return False
    return True


def test_schema_uses_only_keywords_the_test_validator_knows() -> None:
    assert _keywords(_schema()) - set(PROFILE_KEYS) - set(TOP_LEVEL_KEYS) - {"profile"} <= _SUPPORTED


def test_example_validates_against_the_schema() -> None:
    schema = _schema()
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert _valid(data, schema, schema)
    try:
        import jsonschema  # type: ignore[import-not-found]
    except ImportError:
        return
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)


_POOLS: dict[str, list[Any]] = {
    "name": ["web", "Web.2", "", "a b", True, 5, None],
    "context": ["tender-a", "", "a\nb", 5, None, False],
    "namespace": ["demo", "Demo", "a" * 64, 1, None],
    "target": ["svc/web", "web", "job/x", "", 8080, None],
    "ports": [
        ["8080:80"],
        ["9090", ":80", "http"],
        [443, "0444:http"],
        [],
        ["70000"],
        ["0:0"],
        [True],
        [80.5],
        [None],
        "8080:80",
        None,
    ],
    "address": ["127.0.0.1", "localhost", "::1", "example.com", "LOCALHOST", 127, None],
    "autostart": [True, False, "true", 1, None],
    "group": ["shop", "", "x\ty", 3, None],
}


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={key: st.sampled_from(pool) for key, pool in _POOLS.items()} | {"extra": st.just(1)},
    )
)
def test_schema_and_loader_agree_on_single_profiles(profile: dict[str, Any]) -> None:
    schema = _schema()
    doc = {"version": 1, "profiles": [profile]}
    try:
        parse_profiles(yaml.safe_dump(doc))
        loader_ok = True
    except UsageError:
        loader_ok = False
    assert _valid(doc, schema, schema) == loader_ok, profile
