"""Saving keeps the user's file: comments, blank lines, quoting and layout survive an edit.

Each test edits a hand-written file through the public save API and checks
the diff holds only the change that was asked for.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tray.errors import UsageError
from tray.portspec import parse_port_spec
from tray.profiles import (
    Profile,
    add_profile,
    edit_profiles_text,
    load_profiles,
    parse_profiles,
    remove_profile,
    save_profiles,
    update_profile,
)
from tray.targets import parse_target

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "profiles.example.yaml"

HAND_WRITTEN = """\
# My forwards.   Edited by hand; keep this header!
version: 1   # always 1

profiles:
    # --- shop ---
    -   name: web        # the shop front
        context: tender-a
        target: 'deployment.apps/web'
        ports:
          - "8080:80"    # the service port
          - 9090
        group: shop

    # the database; do not autostart
    -   name: db
        target: sts/db
        ports: ['15432:5432']
        autostart: false

    -   {name: flow, target: svc/flow, ports: [7000]}   # a flow-style one
# trailing words about nothing in particular
"""


def write(tmp_path: Path, text: str, name: str = "profiles.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def diff(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed lines, added lines)."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True)):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


def profile(name: str, target: str = "svc/new", ports: str = "18000:80", **kw: object) -> Profile:
    return Profile(name=name, target=parse_target(target), ports=tuple(parse_port_spec(p) for p in ports.split()),
                   **kw)  # type: ignore[arg-type]


def test_add_keeps_every_line_of_the_example(tmp_path: Path) -> None:
    before = EXAMPLE.read_text()
    path = write(tmp_path, before)
    new = profile("new-one", "rs/web-7c9f", "18001:8080", group="shop")
    result = add_profile(path, new)
    after = path.read_text()
    removed, added = diff(before, after)
    assert removed == []
    assert added == ["\n", "  - name: new-one\n", "    target: rs/web-7c9f\n", '    ports: ["18001:8080"]\n',
                     "    group: shop\n"]
    assert result.profiles[-1] == new
    assert load_profiles(path).profiles == (*load_profiles(EXAMPLE).profiles, new)


def test_remove_takes_the_profile_and_its_comment_only(tmp_path: Path) -> None:
    before = EXAMPLE.read_text()
    path = write(tmp_path, before)
    remove_profile(path, "shop-db")
    block = (
        "\n"
        '  # The database StatefulSet (in the demo cluster an HTTP stand-in listens on\n'
        '  # 5432). "localhost" listens on both 127.0.0.1 and ::1.\n'
        "  - name: shop-db\n    context: tender-a\n    namespace: demo\n    target: sts/db\n"
        '    ports: ["15432:5432"]\n    address: localhost\n    group: shop\n'
    )
    assert before.count(block) == 1
    assert path.read_text() == before.replace(block, "")
    assert [p.name for p in load_profiles(path)] == [p.name for p in load_profiles(EXAMPLE) if p.name != "shop-db"]


@pytest.mark.parametrize("name", ["shop-web", "web-current-context"])
def test_remove_first_and_last(tmp_path: Path, name: str) -> None:
    before = EXAMPLE.read_text()
    path = write(tmp_path, before)
    remove_profile(path, name)
    removed, added = diff(before, path.read_text())
    assert added == []
    assert any(line.startswith(f"  - name: {name} ") or line == f"  - name: {name}\n" for line in removed)
    assert all(line.strip() == "" or line.startswith("  ") for line in removed)  # nothing outside the list
    assert "version: 1        # the format version; required, always 1\n" in path.read_text()
    assert name not in load_profiles(path).names()


def test_edit_a_value_keeps_the_comment_on_its_line(tmp_path: Path) -> None:
    before = EXAMPLE.read_text()
    path = write(tmp_path, before)
    old = load_profiles(path).by_name("shop-web")
    assert old is not None
    update_profile(path, "shop-web", dataclasses.replace(old, ports=(parse_port_spec("8081:80"),),
                                                          namespace="shop"))
    removed, added = diff(before, path.read_text())
    assert removed == [
        '    namespace: demo                 # default: the context\'s namespace, else "default"\n',
        '    ports: ["8080:80"]              # [LOCAL:]REMOTE; quote them (YAML reads 8080:30 as a number)\n',
    ]
    assert added == [
        '    namespace: shop                 # default: the context\'s namespace, else "default"\n',
        '    ports: ["8081:80"]              # [LOCAL:]REMOTE; quote them (YAML reads 8080:30 as a number)\n',
    ]


def test_add_and_drop_keys(tmp_path: Path) -> None:
    before = EXAMPLE.read_text()
    path = write(tmp_path, before)
    old = load_profiles(path).by_name("web-current-context")
    assert old is not None
    # group goes after ports (the key order Tender writes), autostart before it; namespace is dropped.
    update_profile(path, old.name, dataclasses.replace(old, namespace=None, group="misc", autostart=True))
    removed, added = diff(before, path.read_text())
    assert removed == ["    namespace: demo\n"]
    assert added == ["    autostart: true\n", "    group: misc\n"]
    assert path.read_text().endswith('    ports: ["28080:80"]\n    autostart: true\n    group: misc\n')


def test_rename_in_place(tmp_path: Path) -> None:
    before = EXAMPLE.read_text()
    path = write(tmp_path, before)
    old = load_profiles(path).by_name("shop-db")
    assert old is not None
    update_profile(path, "shop-db", dataclasses.replace(old, name="shop-postgres"))
    assert diff(before, path.read_text()) == (["  - name: shop-db\n"], ["  - name: shop-postgres\n"])


def test_hand_written_layout(tmp_path: Path) -> None:
    path = write(tmp_path, HAND_WRITTEN)
    web, db, flow = load_profiles(path).profiles
    save_profiles(path, [
        dataclasses.replace(web, ports=(parse_port_spec("8080:80"),)),  # block list -> one flow list
        dataclasses.replace(db, autostart=True),
        dataclasses.replace(flow, group="x", ports=(parse_port_spec("7001:7000"),)),
        profile("new"),
    ])
    after = path.read_text()
    removed, added = diff(HAND_WRITTEN, after)
    assert removed == ['        ports:\n', '          - "8080:80"    # the service port\n', '          - 9090\n',
                       "        autostart: false\n",
                       "    -   {name: flow, target: svc/flow, ports: [7000]}   # a flow-style one\n"]
    assert added == ['        ports: ["8080:80"]\n', "        autostart: true\n",
                     '    -   {name: flow, target: svc/flow, ports: ["7001:7000"], group: x}   # a flow-style one\n',
                     "\n", "    -   name: new\n", "        target: svc/new\n", '        ports: ["18000:80"]\n']
    assert after.startswith("# My forwards.   Edited by hand; keep this header!\nversion: 1   # always 1\n")
    assert after.endswith("# trailing words about nothing in particular\n")
    assert "    # the database; do not autostart\n" in after


def test_remove_every_profile_then_add_one(tmp_path: Path) -> None:
    path = write(tmp_path, "# mine\nversion: 1\nprofiles:\n  - name: a\n    target: svc/a\n    ports: [1]\n# end\n")
    save_profiles(path, [])
    assert path.read_text() == "# mine\nversion: 1\nprofiles: []\n# end\n"
    add_profile(path, profile("b"))
    assert path.read_text() == ('# mine\nversion: 1\nprofiles:\n  - name: b\n    target: svc/new\n'
                                '    ports: ["18000:80"]\n# end\n')


def test_first_profile_into_an_empty_list_keeps_its_comment(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nprofiles: []   # none yet\n")
    add_profile(path, profile("a", autostart=True))
    assert path.read_text() == ('version: 1\nprofiles:   # none yet\n  - name: a\n    target: svc/new\n'
                                '    ports: ["18000:80"]\n    autostart: true\n')


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_zero_offset_lists_crlf_bom_document_start_and_no_final_newline(tmp_path: Path, newline: str) -> None:
    text = newline.join(["\ufeff---", "profiles:", "- name: a   # first", "  target: svc/a", "  ports: [1]",
                         "- name: b", "  target: svc/b", "  ports: [2]", "version: 1"])
    path = write(tmp_path, text)
    a, b = load_profiles(path).profiles
    save_profiles(path, [a, dataclasses.replace(b, context="tender-b"), profile("c")])
    after = path.read_bytes().decode("utf-8")
    assert after == newline.join(["\ufeff---", "profiles:", "- name: a   # first", "  target: svc/a", "  ports: [1]",
                                  "- name: b", "  context: tender-b", "  target: svc/b", "  ports: [2]",
                                  "- name: c", "  target: svc/new", '  ports: ["18000:80"]', "version: 1"])


def test_reorder_moves_profiles_with_their_comments(tmp_path: Path) -> None:
    text = "version: 1\nprofiles:\n  # A\n  - name: a\n    target: svc/a\n    ports: [1]\n  # B\n  - name: b\n" \
           "    target: svc/b\n    ports: [2]\n"
    path = write(tmp_path, text)
    a, b = load_profiles(path).profiles
    save_profiles(path, [b, a])
    assert path.read_text() == ("version: 1\nprofiles:\n  # B\n  - name: b\n    target: svc/b\n    ports: [2]\n"
                                "  # A\n  - name: a\n    target: svc/a\n    ports: [1]\n")


def test_values_that_yaml_would_retype_are_quoted(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nprofiles:\n  - name: a\n    target: svc/a\n    ports: [1]\n")
    (a,) = load_profiles(path).profiles
    changed = dataclasses.replace(a, group="yes", context="2024-01-01", ports=(parse_port_spec("8080:30"),
                                                                             parse_port_spec("0080")))
    save_profiles(path, [changed])
    assert load_profiles(path).profiles == (changed,)
    assert "group: 'yes'" in path.read_text() and '"8080:30"' in path.read_text()


def test_a_broken_file_is_still_refused_by_add(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nprofiles:\n  - name: a\n    target: svc/a\n    ports: [1]\n    bogus: 1\n")
    with pytest.raises(UsageError, match="unknown key"):
        add_profile(path, profile("b"))
    with pytest.raises(UsageError, match="no profile named 'nope'"):
        remove_profile(write(tmp_path, EXAMPLE.read_text(), "ok.yaml"), "nope")


def test_a_missing_file_is_written_anew(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "profiles.yaml"
    add_profile(path, profile("a"))
    text = path.read_text()
    assert text.startswith("# Tender profiles (format version 1)")
    assert parse_profiles(text).profiles == (profile("a"),)


# Any list of profiles, made from the example's (some edited) and new ones, is
# written by editing the file (never by the write-anew fallback) and loads back equal.
_EXAMPLE_PROFILES = load_profiles(EXAMPLE).profiles


@st.composite
def _wanted(draw: st.DrawFn) -> list[Profile]:
    kept = draw(st.lists(st.sampled_from(_EXAMPLE_PROFILES), unique_by=lambda p: p.name))
    out = []
    for p in draw(st.permutations(kept)):
        change = draw(st.sampled_from(["none", "group", "nogroup", "ns", "autostart", "ports", "context"]))
        if change == "group":
            p = dataclasses.replace(p, group="g2")
        elif change == "nogroup":
            p = dataclasses.replace(p, group=None)
        elif change == "ns":
            p = dataclasses.replace(p, namespace=None if p.namespace else "ns2")
        elif change == "autostart":
            p = dataclasses.replace(p, autostart=not p.autostart)
        elif change == "ports":
            p = dataclasses.replace(p, ports=(parse_port_spec(f":{20000 + len(out)}"),))
        elif change == "context":
            p = dataclasses.replace(p, context=None if p.context else "tender-c")
        out.append(p)
    for i in range(draw(st.integers(0, 2))):
        out.insert(draw(st.integers(0, len(out))), profile(f"extra-{i}", ports=f"{30000 + i}:80"))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_wanted())
def test_any_edit_of_the_example_is_an_in_place_edit(wanted: list[Profile]) -> None:
    text = EXAMPLE.read_text()
    edited = edit_profiles_text(text, wanted)
    assert edited is not None
    assert parse_profiles(edited).profiles == tuple(wanted)
    assert edited.startswith(text[: text.index("profiles:\n")])  # the header is untouched


def test_dropping_the_key_on_the_dash_line_moves_the_next_key_up(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nprofiles:\n  - context: c   # gone\n    name: a\n    target: svc/a\n"
                           "    ports: [1]\n")
    (a,) = load_profiles(path).profiles
    save_profiles(path, [dataclasses.replace(a, context=None)])
    assert path.read_text() == "version: 1\nprofiles:\n  - name: a\n    target: svc/a\n    ports: [1]\n"
