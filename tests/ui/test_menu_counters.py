"""A forward's counters in its own submenu (issue 13, part 5), on plain data."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from tests.ui.fakes import session
from tray.ui import labels
from tray.ui.menu import MenuState, build_menu, session_item
from tray.ui.model import Item


def notes_of(item: Item) -> list[str]:
    return [c.label for c in item.children if not c.separator and c.action is None]


@pytest.fixture
def berlin_time(monkeypatch: pytest.MonkeyPatch):
    """The local time zone is Europe/Berlin (UTC+1 in winter) for the test."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1234, "1.2 kB"), (30_000, "30 kB"),
    (999_499, "999 kB"), (999_999, "1.0 MB"), (1_200_000, "1.2 MB"), (15_000_000_000, "15 GB"),
])
def test_sizes_are_short_si_units(n: int, text: str) -> None:
    assert labels.size_text(n) == text


def test_the_submenu_shows_connections_and_bytes(berlin_time: None) -> None:
    s = replace(session(), connections=2, connections_total=15, bytes_in=1_234_567, bytes_out=30_100)
    assert notes_of(session_item(s)) == ["Pod web-1", "2 connections open · 15 total", "↓ 1.2 MB  ↑ 30 kB"]
    one = replace(s, connections=1, connections_total=1)
    assert "1 connection open · 1 total" in notes_of(session_item(one))


def test_the_last_connection_error_shows_with_its_local_time(berlin_time: None) -> None:
    s = replace(session(), connections_total=3, last_connection_error="connection refused",
                last_connection_error_at="2026-11-30T13:03:07+00:00")
    assert notes_of(session_item(s))[-1] == "Last connection error: connection refused (14:03)"
    # A long error stays one short line.
    long = replace(s, last_connection_error="cannot reach pod web-1: " + "x" * 200)
    line = notes_of(session_item(long))[-1]
    assert line.startswith("Last connection error: cannot reach pod web-1: ") and len(line) <= 90
    # A time that cannot be read leaves the time out, not the error.
    odd = replace(s, last_connection_error_at="")
    assert notes_of(session_item(odd))[-1] == "Last connection error: connection refused"


def test_a_forward_without_connections_shows_no_counters() -> None:
    assert notes_of(session_item(session())) == ["Pod web-1"]


def test_an_errored_forward_keeps_its_counters_and_actions() -> None:
    s = replace(session(status="error", reason="gave up after 5 attempts: no ready pod"),
                connections_total=4, bytes_in=10, bytes_out=20, last_connection_error="no ready pod",
                last_connection_error_at="2026-11-30T13:03:07+00:00")
    item = session_item(s)
    notes = notes_of(item)
    assert notes[0] == "gave up after 5 attempts: no ready pod"
    assert "0 connections open · 4 total" in notes and "↓ 10 B  ↑ 20 B" in notes
    assert notes[-1].startswith("Last connection error: no ready pod (")
    assert [c.label for c in item.children if c.action is not None][:2] == ["Retry", "Remove"]


def test_counters_stay_out_of_the_status_line_and_the_row() -> None:
    s = replace(session(), connections=2, connections_total=15, bytes_in=5, bytes_out=6,
                last_connection_error="connection refused", last_connection_error_at="2026-11-30T13:03:07+00:00")
    menu = build_menu(MenuState(sessions=[s]))
    assert menu.children[0].label == "1 active"
    assert menu.children[2].label == "svc/web  8080 → 80  tender-a/shop  active"


def test_the_menu_is_still_a_pure_function_of_state() -> None:
    s = replace(session(id="s1"), connections=1, connections_total=2, bytes_in=3, bytes_out=4,
                last_connection_error="connection refused", last_connection_error_at="2026-11-30T13:03:07+00:00")
    assert build_menu(MenuState(sessions=[s])) == build_menu(MenuState(sessions=[replace(s)]))
