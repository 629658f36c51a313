"""Tests for tray.profiles.writer: saving, adding and creating files (the round trip that keeps
comments is in test_writer_roundtrip.py).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from tray.domain.portspec import PortSpec, parse_port_spec
from tray.domain.targets import Target, parse_target
from tray.errors import UsageError
from tray.profiles import (
    PROFILE_KEYS,
    Profile,
    add_profile,
    check_profiles,
    dump_profiles,
    ensure_profiles_file,
    load_profiles,
    parse_profiles,
    save_profiles,
)

from tests.unit.profiles.helpers import EXAMPLE, _one_line, _write


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
        balance="pin",
    )
    assert full.to_dict() == {
        "name": "b",
        "context": "c",
        "namespace": "n",
        "target": "deploy/web",
        "ports": [":http"],
        "address": "localhost",
        "balance": "pin",
        "autostart": True,
        "group": "g",
    }
    # selector: namespace/NS only; protocol and relay: relay forwards (below)
    assert list(full.to_dict()) == [k for k in PROFILE_KEYS if k not in ("selector", "protocol", "relay")]
    relay = Profile(name="r", target=parse_target("ip/10.0.0.10"), target_port=53, protocol="UDP",
                    ports=(PortSpec(53, 53, protocol="UDP"),), relay_image="mirror.example/python:3.13-alpine",
                    file_relay_image="ignored:1")
    assert relay.to_dict() == {"name": "r", "target": "ip/10.0.0.10:53", "protocol": "UDP",
                               "relay": {"image": "mirror.example/python:3.13-alpine"}}


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
