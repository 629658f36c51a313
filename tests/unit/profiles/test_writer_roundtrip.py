"""Saving keeps the user's file: comments, blank lines, quoting and layout survive an edit.

Each test edits a hand-written file through the public save API and checks
the diff holds only the change that was asked for.  Where ruamel.yaml cannot
keep the bytes (a nested block list indented unlike the profiles list; a
comment whose line got longer), the test says so and checks what the user
reads instead.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tray.profiles.writer
from tray.errors import UsageError
from tray.domain.portspec import parse_port_spec
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
from tray.domain.targets import parse_target

REPO = Path(__file__).resolve().parents[3]
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
        dataclasses.replace(web, ports=(parse_port_spec("8080:80"),)),  # a block list stays one
        dataclasses.replace(db, autostart=True),
        dataclasses.replace(flow, group="x", ports=(parse_port_spec("7001:7000"),)),
        profile("new"),
    ])
    after = path.read_text()
    removed, added = diff(HAND_WRITTEN, after)
    # The nested ports list is indented unlike the profiles list (dash 2 columns in, not 4), and
    # ruamel writes one indentation everywhere: its lines are re-indented like the profiles list.
    # The user still reads the same list: block style, the port kept with its comment, 9090 gone.
    assert removed[:2] == ['          - "8080:80"    # the service port\n', "          - 9090\n"]
    assert added[0] == '            -   "8080:80" # the service port\n'
    assert "        ports:\n            -   \"8080:80\" # the service port\n        group: shop\n" in after
    # Everything else changed by exactly the edit.  The flow item's comment stays at its column
    # while it fits; the line is longer now, so it follows one space after the item.
    assert removed[2:] == ["        autostart: false\n",
                           "    -   {name: flow, target: svc/flow, ports: [7000]}   # a flow-style one\n"]
    assert added[1:] == ["        autostart: true\n",
                         '    -   {name: flow, target: svc/flow, ports: ["7001:7000"], group: x} # a flow-style one\n',
                         "\n", "    -   name: new\n", "        target: svc/new\n", '        ports: ["18000:80"]\n']
    assert after.startswith("# My forwards.   Edited by hand; keep this header!\nversion: 1   # always 1\n")
    assert after.endswith("# trailing words about nothing in particular\n")
    assert "    # the database; do not autostart\n" in after


def test_nested_lists_indented_like_the_profiles_list_are_kept_byte_for_byte(tmp_path: Path) -> None:
    text = ("version: 1\nprofiles:\n- name: web\n  target: svc/web\n  ports:\n  - '8080:80'   # svc\n  - 9090\n"
            "  group: shop\n- name: db\n  target: sts/db\n  ports: [5432]\n")
    path = write(tmp_path, text)
    web, db = load_profiles(path).profiles
    save_profiles(path, [dataclasses.replace(web, ports=(*web.ports, parse_port_spec("9443:443"))), db])
    assert path.read_text() == text.replace("  - 9090\n", "  - 9090\n  - '9443:443'\n")


def test_remove_every_profile_then_add_one(tmp_path: Path) -> None:
    path = write(tmp_path, "# mine\nversion: 1\nprofiles:\n  - name: a\n    target: svc/a\n    ports: [1]\n# end\n")
    save_profiles(path, [])
    assert path.read_text() == "# mine\nversion: 1\nprofiles: []\n# end\n"
    add_profile(path, profile("b"))
    assert path.read_text() == ('# mine\nversion: 1\nprofiles:\n  - name: b\n    target: svc/new\n'
                                '    ports: ["18000:80"]\n# end\n')


def test_first_profile_into_an_empty_list_keeps_its_comment(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nprofiles: []   # none yet\n# after the list\n")
    add_profile(path, profile("a", autostart=True))
    # The comment stays on the "profiles:" line, at its column; the line after the list stays after it.
    assert path.read_text() == ('version: 1\nprofiles:      # none yet\n  - name: a\n    target: svc/new\n'
                                '    ports: ["18000:80"]\n    autostart: true\n# after the list\n')


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
# written by editing the file (never by the write-anew fallback), loads back
# equal, and every comment stays with its profile and key.
_EXAMPLE_PROFILES = load_profiles(EXAMPLE).profiles
_TRICKY_STRINGS = ["g2", "yes", "on", "null", "2024-01-01", "1.5", "a: b", "# not a comment", "it's", "ünïcode"]


@st.composite
def _wanted(draw: st.DrawFn, profiles: tuple[Profile, ...] = _EXAMPLE_PROFILES) -> list[Profile]:
    kept = draw(st.lists(st.sampled_from(profiles), unique_by=lambda p: p.name)) if profiles else []
    out = []
    for p in draw(st.permutations(kept)):
        change = draw(st.sampled_from(["none", "group", "nogroup", "ns", "autostart", "ports", "context", "address",
                                       "rename"]))
        if change == "group":
            p = dataclasses.replace(p, group=draw(st.sampled_from(_TRICKY_STRINGS)))
        elif change == "nogroup":
            p = dataclasses.replace(p, group=None)
        elif change == "ns":
            p = dataclasses.replace(p, namespace=None if p.namespace else "ns2")
        elif change == "autostart":
            p = dataclasses.replace(p, autostart=not p.autostart)
        elif change == "ports":
            p = dataclasses.replace(p, ports=(parse_port_spec(f":{20000 + len(out)}"),))
        elif change == "context":
            p = dataclasses.replace(p, context=None if p.context else draw(st.sampled_from(_TRICKY_STRINGS)))
        elif change == "address":
            p = dataclasses.replace(p, address=draw(st.sampled_from(["127.0.0.1", "::1", "localhost", "10.0.0.1"])))
        elif change == "rename":
            p = dataclasses.replace(p, name=p.name + "-2")
        out.append(p)
    for i in range(draw(st.integers(0, 2))):
        extra = profile(f"extra-{i}", ports=f"{30000 + i}:80 :{40000 + i}",
                        group=draw(st.none() | st.sampled_from(_TRICKY_STRINGS)),
                        address=draw(st.sampled_from(["127.0.0.1", "::1", "localhost"])))
        out.insert(draw(st.integers(0, len(out))), extra)
    return out


def _comments(text: str) -> tuple[list[str], dict[str, list[str]], dict[str, dict[str, str]]]:
    """(full-line comments above "profiles:", those directly above each "- name: X" line, each key's end-of-line comment)."""
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("profiles:"))
    header = [line for line in lines[:top] if line.lstrip().startswith("#")]
    above: dict[str, list[str]] = {}
    eol: dict[str, dict[str, str]] = {}
    name = None
    for i, line in enumerate(lines[top + 1 :], top + 1):
        started = re.match(r"  - name: (\S+)", line)
        if started:
            name = started.group(1)
            above[name], eol[name] = [], {}
            j = i - 1
            while j > top and (lines[j].lstrip().startswith("#") or not lines[j].strip()):
                if lines[j].strip():
                    above[name].insert(0, lines[j])
                j -= 1
        keyed = re.match(r"\s*(?:- )?(\w+): .*?\s(#.*)$", line)
        if name is not None and keyed:
            eol[name][keyed.group(1)] = keyed.group(2)
    return header, above, eol


_BEFORE = _comments(EXAMPLE.read_text())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_wanted())
def test_any_edit_of_the_example_is_an_in_place_edit(wanted: list[Profile]) -> None:
    text = EXAMPLE.read_text()
    edited = edit_profiles_text(text, wanted)
    assert parse_profiles(edited).profiles == tuple(wanted)
    assert edited.startswith(text[: text.index("profiles:\n")])  # the header is untouched
    header, above, eol = _BEFORE
    header_after, above_after, eol_after = _comments(edited)
    assert header_after == header
    # One profile gone and one new at its place is a rename (edit_profiles_text's rule).
    old_names = [p.name for p in _EXAMPLE_PROFILES]
    gone = [i for i, name in enumerate(old_names) if name not in {p.name for p in wanted}]
    new = [i for i, p in enumerate(wanted) if p.name not in old_names]
    renamed = {wanted[new[0]].name: old_names[gone[0]]} if len(gone) == len(new) == 1 and new == gone else {}
    for p in wanted:
        was = renamed.get(p.name, p.name)
        assert above_after[p.name] == above.get(was, [])  # its own comment, and nobody else's
        kept_keys = set(p.to_dict()) - ({"name"} if p.name in renamed else set())
        assert {k: c for k, c in eol_after[p.name].items() if k in kept_keys} == \
            {k: c for k, c in eol.get(was, {}).items() if k in kept_keys}
    comment_lines = [line for line in edited.splitlines() if line.lstrip().startswith("#")]
    assert len(comment_lines) == len(header) + sum(len(above_after[p.name]) for p in wanted)


def test_dropping_the_key_on_the_dash_line_moves_the_next_key_up(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nprofiles:\n  - context: c   # gone\n    name: a\n    target: svc/a\n"
                           "    ports: [1]\n")
    (a,) = load_profiles(path).profiles
    save_profiles(path, [dataclasses.replace(a, context=None)])
    assert path.read_text() == "version: 1\nprofiles:\n  - name: a\n    target: svc/a\n    ports: [1]\n"


# --------------------------------------------------------------------------
# Whose comment is it?  ruamel attaches the lines between two entries to the
# end of the entry above; in the text they stand above the entry below, and
# go with it.
# --------------------------------------------------------------------------


def _example_block(text: str, name: str) -> str:
    """The example's text of profile *name*: the blank line and comment lines above it, then its lines."""
    lines = text.splitlines(keepends=True)
    start = end = next(i for i, line in enumerate(lines) if re.match(rf"  - name: {re.escape(name)}\b", line))
    while lines[start - 1].startswith("  #"):
        start -= 1
    if not lines[start - 1].strip():
        start -= 1
    while end + 1 < len(lines) and lines[end + 1].strip():
        end += 1
    return "".join(lines[start : end + 1])


@pytest.mark.parametrize("name", [p.name for p in load_profiles(EXAMPLE).profiles])
def test_remove_any_profile_takes_exactly_its_own_block(tmp_path: Path, name: str) -> None:
    # shop-web-direct's comment is held by ruamel at the end of shop-web (after the comment on
    # shop-web's last line), shop-db's at the end of shop-web-direct (whose last line has none).
    before = EXAMPLE.read_text()
    path = write(tmp_path, before)
    block = _example_block(before, name)
    assert before.count(block) == 1
    remove_profile(path, name)
    assert path.read_text() == before.replace(block, "")


def test_a_key_added_at_the_end_of_a_profile_goes_above_the_next_profiles_comment(tmp_path: Path) -> None:
    before = EXAMPLE.read_text()
    path = write(tmp_path, before)
    old = load_profiles(path).by_name("shop-web-direct")
    assert old is not None
    update_profile(path, old.name, dataclasses.replace(old, autostart=True, address="::1"))
    assert path.read_text() == before.replace(
        '    ports: ["18080:8080", ":http"]\n    group: shop\n\n  # The database',
        '    ports: ["18080:8080", ":http"]\n    address: \'::1\'\n    autostart: true\n    group: shop\n\n  # The database',
    )


KEY_COMMENTS = """\
version: 1
profiles:
  - name: a
    context: c1        # the shop cluster
    # the namespace of the shop
    namespace: shop
    target: svc/a
    # the ports
    ports:
      - 1              # one
      # about two
      - 2              # two
    # the group
    group: g
  - context: c2        # the other cluster
    # about b
    name: b
    target: svc/b
    ports: [3]
"""


def test_a_dropped_key_takes_the_comment_above_it_and_leaves_the_one_below(tmp_path: Path) -> None:
    path = write(tmp_path, KEY_COMMENTS)
    a, b = load_profiles(path).profiles
    save_profiles(path, [dataclasses.replace(a, namespace=None), dataclasses.replace(b, context=None)])
    removed, added = diff(KEY_COMMENTS, path.read_text())
    assert removed == ["    # the namespace of the shop\n", "    namespace: shop\n",
                       "  - context: c2        # the other cluster\n", "    name: b\n"]
    # b's first key is gone: "name" moves onto the "-" line, its comment above the item.
    assert added == ["  - name: b\n"]
    assert "    group: g\n    # about b\n  - name: b\n" in path.read_text()


def test_a_changed_block_list_stays_a_block_list_and_keeps_the_comments_of_its_ports(tmp_path: Path) -> None:
    path = write(tmp_path, KEY_COMMENTS)
    a, b = load_profiles(path).profiles
    save_profiles(path, [dataclasses.replace(a, ports=(parse_port_spec("2"), parse_port_spec("5000:50"))), b])
    removed, added = diff(KEY_COMMENTS, path.read_text())
    assert removed == ["      - 1              # one\n"]
    assert added == ['      - "5000:50"\n']
    assert "      # about two\n      - 2              # two\n" in path.read_text()


def test_removing_the_last_profile_keeps_the_lines_after_the_list(tmp_path: Path) -> None:
    path = write(tmp_path, HAND_WRITTEN)
    remove_profile(path, "flow")
    # (web's nested list is re-indented like the profiles list: see test_hand_written_layout.)
    assert path.read_text() == HAND_WRITTEN.replace(
        "\n    -   {name: flow, target: svc/flow, ports: [7000]}   # a flow-style one\n", ""
    ).replace('          - "8080:80"    # the service port\n          - 9090\n',
              '            -   "8080:80" # the service port\n            -   9090\n')
    remove_profile(path, "db")
    remove_profile(path, "web")  # the "--- shop ---" comment stood above web: it goes with it
    assert path.read_text() == ("# My forwards.   Edited by hand; keep this header!\nversion: 1   # always 1\n\n"
                                "profiles: []\n# trailing words about nothing in particular\n")


def test_what_the_user_wrote_is_not_respelt(tmp_path: Path) -> None:
    text = ("version: 1\nprofiles:\n  - name: a\n    target: svc/a\n    autostart: True\n"
            "    ports: [1, 8080:80, '9000']\n    address: 0.0.0.0\n    group: \"g\"\n")
    path = write(tmp_path, text)
    add_profile(path, profile("b", ports="9001"))
    assert path.read_text() == text + "  - name: b\n    target: svc/new\n    ports: [9001]\n"
    (a, _) = load_profiles(path).profiles
    update_profile(path, "a", dataclasses.replace(a, group="yes"))  # YAML 1.1 reads yes as a boolean
    assert '    group: "yes"\n' in path.read_text()
    assert load_profiles(path).by_name("a") == dataclasses.replace(a, group="yes")


def test_comments_above_the_document_start_are_kept(tmp_path: Path) -> None:
    text = "# about this file\n%YAML 1.1\n---   # the document\n# below\nversion: 1\nprofiles:\n- name: a\n" \
           "  target: svc/a\n  ports: [1]\n# at the end\n"
    path = write(tmp_path, text)
    add_profile(path, profile("b"))
    assert path.read_text() == text.replace(
        "# at the end\n", '- name: b\n  target: svc/new\n  ports: ["18000:80"]\n# at the end\n')


def test_a_flow_list_of_profiles_stays_one(tmp_path: Path) -> None:
    text = ("profiles: [{name: a, target: svc/a, ports: [1]}, {name: b, target: svc/b, ports: [2]}]  # both\n"
            "# about the version\nversion: 1   # v\n")
    path = write(tmp_path, text)
    a, b = load_profiles(path).profiles
    save_profiles(path, [b, profile("c")])
    # The comment after the list keeps its column while it fits: the line is longer now.
    assert path.read_text() == text.replace(
        "{name: a, target: svc/a, ports: [1]}, {name: b, target: svc/b, ports: [2]}]  # both",
        '{name: b, target: svc/b, ports: [2]}, {name: c, target: svc/new, ports: ["18000:80"]}] # both',
    )


def test_when_the_edit_goes_wrong_the_file_is_written_anew_and_the_log_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path, EXAMPLE.read_text())
    monkeypatch.setattr(tray.profiles.writer, "edit_profiles_text", lambda text, wanted: text)  # drops the change
    with caplog.at_level(logging.WARNING, logger="tray.profiles"):
        add_profile(path, profile("new-one"))
    assert load_profiles(path).profiles == (*load_profiles(EXAMPLE).profiles, profile("new-one"))
    assert path.read_text().startswith("# Tender profiles (format version 1)")
    assert [r.getMessage() for r in caplog.records] == [
        f"editing {path} in place went wrong (it loads back as other profiles); writing it anew, without its comments"
    ]


_LAYOUTS = {
    "hand-written": HAND_WRITTEN,
    "key comments": "# keys\n" + KEY_COMMENTS.replace("version: 1\n", "", 1) + "version: 1\n",
    "zero offset, CRLF, ---": "\r\n".join(["---", "profiles:", "- name: a   # first", "  target: svc/a",
                                           "  ports:", "  - 1   # one", "  - '2'", "", "# b", "- name: b",
                                           "  target: svc/b", "  ports: [3]", "version: 1"]),
    "flow list": "version: 1\nprofiles: [{name: a, target: svc/a, ports: [1]}]  # a\n# end\n",
    "empty": "version: 1   # v\nprofiles: []  # none\n# end\n",
}


@pytest.mark.parametrize("layout", _LAYOUTS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_edit_of_other_layouts_loads_back_equal(layout: str, data: st.DataObject) -> None:
    text = _LAYOUTS[layout]
    wanted = data.draw(_wanted(parse_profiles(text).profiles))
    edited = edit_profiles_text(text, wanted)
    assert parse_profiles(edited).profiles == tuple(wanted)
    if "\r\n" in text:
        assert edited.count("\n") == edited.count("\r\n")
