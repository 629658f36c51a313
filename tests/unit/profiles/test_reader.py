"""Tests for tray.profiles.reader: reading a file strictly and within bounds, and the one-line
messages for broken files (the corpus in tests/data/bad-profiles), whatever the input.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

import tray.profiles.reader
from tray import profiles as profiles_mod
from tray.errors import UsageError
from tray.profiles import (
    EMPTY_PROFILES_TEXT,
    PROFILE_KEYS,
    TOP_LEVEL_KEYS,
    Profile,
    check_profiles,
    default_profiles_path,
    load_profiles,
    parse_profiles,
)
from tray.profiles.reader import check_data

from tests.unit.profiles.helpers import BAD, CONTEXTS, _one_line, _write, _first_error, _doc, _p


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
