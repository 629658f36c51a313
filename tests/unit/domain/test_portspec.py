"""Tests for tray.domain.portspec: kubectl's [LOCAL:]REMOTE port specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray.errors import UsageError
from tray.domain.portspec import PortSpec, is_port_name, parse_port_spec


@pytest.mark.parametrize(
    "text,expected",
    [
        ("8080", PortSpec(8080, 8080)),
        ("1", PortSpec(1, 1)),
        ("65535", PortSpec(65535, 65535)),
        ("8080:80", PortSpec(8080, 80)),
        (":80", PortSpec(None, 80)),
        ("0:80", PortSpec(None, 80)),
        ("000:80", PortSpec(None, 80)),
        ("08080:080", PortSpec(8080, 80)),  # leading zeros, as Go's ParseUint
        ("8080:http", PortSpec(8080, "http")),
        (":http", PortSpec(None, "http")),
        ("0:http", PortSpec(None, "http")),
        ("http", PortSpec(None, "http", local_same_as_remote=True)),
        ("grpc-web", PortSpec(None, "grpc-web", local_same_as_remote=True)),
        ("h2c", PortSpec(None, "h2c", local_same_as_remote=True)),
        ("8080:a", PortSpec(8080, "a")),
        ("1:abcdefghijklmno", PortSpec(1, "abcdefghijklmno")),  # 15 chars
        ("1:80a", PortSpec(1, "80a")),  # has a letter: a name
    ],
)
def test_parse_valid(text: str, expected: PortSpec) -> None:
    assert parse_port_spec(text) == expected


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty port spec"),
        ("0", 'invalid port spec "0": port 0 is out of range 1-65535'),
        ("0:0", 'invalid port spec "0:0": remote port 0 is out of range 1-65535'),
        ("80:0", "remote port 0 is out of range"),
        ("70000", 'invalid port spec "70000": port 70000 is out of range 1-65535'),
        ("65536", "port 65536 is out of range"),
        ("80:65536", "remote port 65536 is out of range"),
        ("70000:80", "local port 70000 is out of range"),
        ("1" * 40, "is out of range"),
        ("-1", 'invalid port spec "-1": port -1 is out of range'),
        ("80:-1", "remote port -1 is out of range"),
        ("-1:80", 'local port "-1" is not a number'),
        ("+80", 'port "+80" is neither a number'),
        ("a:b", 'invalid port spec "a:b": local port "a" is not a number'),
        ("http:80", 'local port "http" is not a number'),
        ("::", 'invalid port spec "::": too many'),
        ("1:2:3", 'invalid port spec "1:2:3": too many'),
        (":", "empty remote port"),
        ("80:", "empty remote port"),
        (" 80", "whitespace"),
        ("80 ", "whitespace"),
        ("80: 80", "whitespace"),
        ("\t", "whitespace"),
        ("HTTP", 'port "HTTP" is neither a number 1-65535 nor a valid port name'),
        ("8080:Http", 'remote port "Http" is neither'),
        ("8080:-http", "neither"),
        ("8080:http-", "neither"),
        ("8080:ht--tp", "neither"),
        ("8080:abcdefghijklmnop", "neither"),  # 16 chars
        ("8080:web_ui", "neither"),
        ("8080:80.5", "neither"),
        ("٨٠", "neither"),  # Arabic-Indic digits are not ASCII digits
        ("8080:x\x00", "neither"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_port_spec(text)
    assert message in str(info.value)


def test_error_message_escapes_control_characters() -> None:
    with pytest.raises(UsageError) as info:
        parse_port_spec("80\n")
    assert "\n" not in str(info.value)
    assert '"80\\n"' in str(info.value)


def test_non_string_rejected() -> None:
    with pytest.raises(UsageError):
        parse_port_spec(8080)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name,ok",
    [
        ("http", True),
        ("a", True),
        ("a1", True),
        ("1a", True),
        ("my-port", True),
        ("abcdefghijklmno", True),
        ("abcdefghijklmnop", False),
        ("1", False),
        ("123", False),
        ("-a", False),
        ("a-", False),
        ("a--b", False),
        ("A", False),
        ("", False),
        ("a_b", False),
    ],
)
def test_is_port_name(name: str, ok: bool) -> None:
    assert is_port_name(name) is ok


def test_portspec_invariants() -> None:
    with pytest.raises(ValueError):
        PortSpec(0, 80)
    with pytest.raises(ValueError):
        PortSpec(80, 0)
    with pytest.raises(ValueError):
        PortSpec(80, "HTTP")
    with pytest.raises(ValueError):
        PortSpec(80, "http", local_same_as_remote=True)
    with pytest.raises(ValueError):
        PortSpec(None, 80, local_same_as_remote=True)
    with pytest.raises(ValueError):
        PortSpec(True, 80)  # type: ignore[arg-type]


def test_local_port_for() -> None:
    assert parse_port_spec("8080:80").local_port_for(80) == 8080
    assert parse_port_spec("8080").local_port_for(8080) == 8080
    assert parse_port_spec(":80").local_port_for(80) == 0
    assert parse_port_spec(":http").local_port_for(8080) == 0
    assert parse_port_spec("http").local_port_for(8080) == 8080
    with pytest.raises(ValueError):
        parse_port_spec("http").local_port_for(0)


def test_free_local() -> None:
    assert parse_port_spec(":80").free_local
    assert parse_port_spec("0:http").free_local
    assert not parse_port_spec("http").free_local
    assert not parse_port_spec("80").free_local


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("8080", "8080"),
        ("8080:8080", "8080"),
        ("8080:80", "8080:80"),
        ("0:80", ":80"),
        (":80", ":80"),
        ("http", "http"),
        (":http", ":http"),
        ("8080:http", "8080:http"),
        ("00080", "80"),
    ],
)
def test_str_is_canonical(text: str, canonical: str) -> None:
    spec = parse_port_spec(text)
    assert str(spec) == canonical
    assert parse_port_spec(str(spec)) == spec


def test_frozen() -> None:
    spec = parse_port_spec("80")
    with pytest.raises(AttributeError):
        spec.local = 81  # type: ignore[misc]


def check_only_usage_error(text: str) -> None:
    try:
        spec = parse_port_spec(text)
    except UsageError:
        return
    assert parse_port_spec(str(spec)) == spec


@given(st.text())
def test_any_text_raises_only_usage_error(text: str) -> None:
    check_only_usage_error(text)


@given(st.text(alphabet="0123456789:-abcHTTP ", max_size=20))
def test_port_alphabet_raises_only_usage_error(text: str) -> None:
    # Random unicode rarely hits the interesting paths; this alphabet does.
    check_only_usage_error(text)


port_numbers = st.integers(min_value=1, max_value=65535)
port_names = st.from_regex(r"[a-z]([a-z0-9]|-(?=[a-z0-9])){0,14}", fullmatch=True).filter(
    lambda s: len(s) <= 15 and not s.endswith("-")
)


@given(local=st.one_of(st.none(), port_numbers), remote=st.one_of(port_numbers, port_names))
def test_roundtrip_generated(local: int | None, remote: int | str) -> None:
    text = f"{'' if local is None else local}:{remote}"
    spec = parse_port_spec(text)
    assert spec == PortSpec(local, remote)
    assert parse_port_spec(str(spec)) == spec
