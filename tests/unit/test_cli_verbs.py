"""The engine verbs' plain-data parts (tray/cli/verbs.py): naming forwards, ages, sizes, API events."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from tray.api.schema import event_dict, forward_dict
from tray.cli import _Printer
from tray.cli.verbs import age, as_engine_event, human_bytes, resolve
from tray.engine.manager import ConnectionEvent, ListEvent, StatusEvent
from tray.engine.session import SessionInfo
from tray.errors import UsageError

BASE = SessionInfo(
    id="3f2a9c1e-0000-4000-8000-000000000001", cluster_id="tender-a", cluster_name="a", namespace="demo",
    pod_name="web-1", container_port=8080, local_port=18080, target_kind="Service", target_name="web",
    status="active", status_reason="", started_at="2026-11-30T14:00:00.000+00:00", address="127.0.0.1",
    remote_port="80", profile=None, attempts=0, connections=1, connections_total=3, bytes_in=1536, bytes_out=20,
)


def fwd(id_: str, **kw: object) -> dict:
    """A forward as ``GET /v1/forwards`` lists it."""
    return forward_dict(replace(BASE, id=id_, **kw))  # type: ignore[arg-type]


FORWARDS = [
    fwd("3f2a9c1e-0000-4000-8000-000000000001"),  # svc/web
    fwd("3f2b0000-0000-4000-8000-000000000002", target_kind="Deployment", target_name="api"),  # deploy/api
    fwd("a1b2c3d4-0000-4000-8000-000000000003", profile="shop"),  # shop (svc/web)
    fwd("a1b2ffff-0000-4000-8000-000000000004", profile="shop", remote_port="http"),  # shop (svc/web)
]


def ids(forwards: list[dict]) -> list[str]:
    return [f["session_id"][:8] for f in forwards]


# ---------------------------------------------------------------- resolve
@pytest.mark.parametrize("words, expected", [
    (["3f2a9c1e-0000-4000-8000-000000000001"], ["3f2a9c1e"]),  # a whole id
    (["3f2a"], ["3f2a9c1e"]),  # the shortest prefix: 4 characters
    (["a1b2c3"], ["a1b2c3d4"]),
    (["deploy/api"], ["3f2b0000"]),  # a name
    (["shop"], ["a1b2c3d4", "a1b2ffff"]),  # a name may name several
    (["svc/web"], ["3f2a9c1e", "a1b2c3d4", "a1b2ffff"]),  # the target names a profile's forwards too
    (["a1b2ffff", "3f2a"], ["3f2a9c1e", "a1b2ffff"]),  # in list order, not the words' order
    (["shop", "a1b2c3d4", "shop"], ["a1b2c3d4", "a1b2ffff"]),  # each once
    ([], []),
])
def test_resolve_names_forwards(words: list[str], expected: list[str]) -> None:
    assert ids(resolve(FORWARDS, words)) == expected


def test_resolve_refuses_an_ambiguous_prefix() -> None:
    with pytest.raises(UsageError) as err:
        resolve(FORWARDS, ["a1b2"])
    assert str(err.value) == "ID|NAME: 'a1b2' is the start of 2 forwards' ids; give more of it"


@pytest.mark.parametrize("word", ["3f2", "nosuch", "web", "3f2a9c1f", "SVC/WEB"])
def test_resolve_refuses_a_word_that_names_nothing(word: str) -> None:
    # Fewer than 4 characters are no prefix; names are matched whole and case counts.
    with pytest.raises(UsageError) as err:
        resolve(FORWARDS, ["svc/web", word])
    assert str(err.value) == (f"ID|NAME: no forward is called {word!r} (forwards: deploy/api, shop, svc/web; "
                              "see 'tender ls')")


def test_resolve_with_no_forwards_says_none_run() -> None:
    with pytest.raises(UsageError, match=r"no forward is called 'web' \(forwards: none running;"):
        resolve([], ["web"])


def test_a_whole_id_wins_over_a_longer_ids_prefix() -> None:
    # An id that is also the start of another's: the exact one only.
    forwards = [fwd("abcd"), fwd("abcdef")]
    assert [f["session_id"] for f in resolve(forwards, ["abcd"])] == ["abcd"]


# ---------------------------------------------------------------- age, human_bytes
NOW = datetime(2026, 11, 30, 14, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (45, "45s"), (59, "59s"), (60, "1m"), (179, "2m"), (119 * 60 + 59, "119m"),
    (2 * 3600, "2h"), (47 * 3600 + 3599, "47h"), (48 * 3600, "2d"), (400 * 86400, "400d"),
    (-30, "0s"),  # a clock a little behind the engine's
])
def test_age(seconds: int, text: str) -> None:
    started = (NOW - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    assert age(started, now=NOW) == text


def test_age_of_another_offset_and_of_nonsense() -> None:
    assert age("2026-11-30T15:00:00+01:00", now=NOW) == "0s"  # the same instant
    assert age("", now=NOW) == "?"
    assert age("yesterday", now=NOW) == "?"


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1536, "1.5 kB"), (999_949, "999.9 kB"),
    (999_999, "1.0 MB"),  # rounded, it is no longer below 1000 kB
    (2_000_000, "2.0 MB"), (1_234_567_890, "1.2 GB"), (5 * 10**12, "5.0 TB"), (7 * 10**15, "7.0 PB"),
])
def test_human_bytes(n: int, text: str) -> None:
    assert human_bytes(n) == text


# ---------------------------------------------------------------- as_engine_event
def status(**kw: object) -> StatusEvent:
    s = replace(BASE, **kw)  # type: ignore[arg-type]
    return StatusEvent(s.id, s.status, s.local_port, s.pod_name, s.status_reason, s)


def round_trip(event: object) -> object:
    """An engine event through the API (JSON on the wire) and back, as ``tender forward`` on the engine sees it."""
    return as_engine_event(json.loads(json.dumps(event_dict(event))))


EVENTS = [
    status(),
    status(profile="shop", address="::1"),
    status(status="reconnecting", status_reason="pod web-1 is gone", attempts=2,
           next_retry_at="2026-11-30T14:00:05.000+00:00", pod_name=""),
    status(status="error", status_reason="svc/web not found in namespace demo", recoverable=True),
    status(status="error", status_reason="svc/web has no port 81", usage_error=True),
    status(warning="pod web-1 declares no port 9080 (declares: http 8080/TCP)"),
    ListEvent([BASE, replace(BASE, id="other", profile="shop")]),
    ConnectionEvent(BASE.id, "web-1", 8080, "connection refused", 3, replace(BASE, profile="shop")),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_api_event_is_the_engine_event_again(event: object) -> None:
    # The same JSON object as the engine's event gives (what `tender forward -o json` prints).
    assert event_dict(round_trip(event)) == event_dict(event)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_api_event_prints_as_the_engine_event(event: object, capsys: pytest.CaptureFixture[str]) -> None:
    for output in ("text", "json"):
        _Printer(output).show(event)
        direct = capsys.readouterr().out
        _Printer(output).show(round_trip(event))
        assert capsys.readouterr().out == direct


def test_stats_and_ping_are_not_engine_events() -> None:
    assert as_engine_event({"event": "ping"}) is None
    assert as_engine_event({"event": "stats", "forwards": []}) is None
    assert as_engine_event({"event": "something-new", "x": 1}) is None  # fields may be added to v1
