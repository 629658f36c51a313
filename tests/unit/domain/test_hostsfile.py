"""tray.domain.hostsfile: the lines of auto-address Services, and the marked block kept in a hosts file."""

from __future__ import annotations

import pytest

from tray.domain.hostsfile import (BEGIN, END, HostsEntry, HostsFileError, entries_for, remove_block,
                                   replace_block, service_names)

HOSTS = ("127.0.0.1\tlocalhost\n"
         "::1     localhost ip6-localhost ip6-loopback\n"
         "# a comment the user wrote\n"
         "\n"
         "10.0.0.5  nas.lan   # trailing comment\n")
WEB = HostsEntry("127.10.20.30", service_names("web", "demo"))
DB = HostsEntry("127.40.50.60", service_names("db", "demo"))


def test_a_services_line_has_the_names_a_pod_would_use() -> None:
    assert WEB.line() == "127.10.20.30  web  web.demo  web.demo.svc  web.demo.svc.cluster.local"
    with pytest.raises(ValueError):
        service_names("web\n10.0.0.1 bank.example", "demo")
    with pytest.raises(ValueError):
        service_names("web", "Demo")


def test_insert_appends_a_block_and_keeps_every_other_byte() -> None:
    out = replace_block(HOSTS, [WEB, DB])
    assert out == HOSTS + f"{BEGIN}\n{WEB.line()}\n{DB.line()}\n{END}\n"
    assert remove_block(out) == HOSTS


def test_insert_after_a_last_line_without_its_end() -> None:
    out = replace_block("127.0.0.1 localhost", [WEB])
    assert out == f"127.0.0.1 localhost\n{BEGIN}\n{WEB.line()}\n{END}"  # still no line end at the end
    assert replace_block("", [WEB]) == f"{BEGIN}\n{WEB.line()}\n{END}\n"


def test_replace_keeps_the_block_where_it_is_and_the_lines_around_it() -> None:
    before = "127.0.0.1 localhost\n# mine\n"
    after = "# after the block, user's\n10.0.0.5 nas.lan\n"
    old = before + f"{BEGIN}\n127.1.1.1  old old.demo\n{END}\n" + after
    assert replace_block(old, [DB]) == before + f"{BEGIN}\n{DB.line()}\n{END}\n" + after
    assert remove_block(old) == before + after
    # Replacing with the same entries is the same text (nothing to write).
    same = replace_block(old, [DB])
    assert replace_block(same, [DB]) == same


def test_an_edited_begin_line_and_a_second_block_are_tidied() -> None:
    text = ("a\n# BEGIN tender (someone edited this)\n127.1.1.1 x\n# END tender\nb\n"
            f"{BEGIN}\n127.2.2.2 y\n{END}\nc\n")
    assert replace_block(text, [WEB]) == f"a\n{BEGIN}\n{WEB.line()}\n{END}\nb\nc\n"
    assert remove_block(text) == "a\nb\nc\n"


def test_crlf_files_keep_crlf() -> None:
    text = "127.0.0.1 localhost\r\n# comment\r\n"
    out = replace_block(text, [WEB])
    assert out == text + f"{BEGIN}\r\n{WEB.line()}\r\n{END}\r\n"
    assert remove_block(out) == text


def test_no_entries_removes_the_block_and_no_block_is_no_change() -> None:
    with_block = replace_block(HOSTS, [WEB])
    assert replace_block(with_block, []) == HOSTS
    assert remove_block(HOSTS) == HOSTS
    assert replace_block(HOSTS, []) == HOSTS


@pytest.mark.parametrize("text", [f"a\n{BEGIN}\n127.1.1.1 x\n", f"{BEGIN}\n{BEGIN}\n{END}\n"])
def test_a_begin_without_its_end_is_refused_not_guessed(text: str) -> None:
    with pytest.raises(HostsFileError, match="fix the file by hand"):
        replace_block(text, [WEB])
    with pytest.raises(HostsFileError):
        remove_block(text)


def test_entries_merge_ports_and_give_a_name_once() -> None:
    entries, notes = entries_for([
        ("127.10.20.30", "demo", "web"), ("127.10.20.30", "demo", "web"),  # two ports of one Service
        ("127.40.50.60", "demo", "db"),
        ("127.70.80.90", "other", "web"),  # "web" is demo's already
    ])
    assert entries == [WEB, DB, HostsEntry("127.70.80.90", ("web.other", "web.other.svc",
                                                            "web.other.svc.cluster.local"))]
    assert notes == ["web.other on 127.70.80.90: web already names another address (another namespace's or "
                     "context's web); left off this line"]


def test_entries_leave_out_what_must_not_reach_a_hosts_file() -> None:
    entries, notes = entries_for([("10.0.0.1", "demo", "web"), ("127.1.2.3", "demo", "we b"),
                                  ("127.1.2.3\n10.0.0.1", "demo", "web")])
    assert entries == [] and len(notes) == 3


@pytest.mark.parametrize("original", ["127.0.0.1 localhost", "127.0.0.1 localhost\n# last", "a\r\nb",
                                      "127.0.0.1 localhost\n", "a\r\nb\r\n"])
def test_write_then_remove_gives_the_file_back_byte_for_byte(original: str) -> None:
    entry = HostsEntry("127.1.2.3", ("db", "db.demo"))
    written = replace_block(original, [entry])
    assert written.startswith(original.rstrip("\r\n")) and entry.line() in written and END in written
    assert replace_block(written, [entry]) == written  # writing again changes nothing
    assert remove_block(written) == original
