"""The CLI's text lines for engine events, on plain SessionInfo data."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from tray.cli import _Printer
from tray.engine.manager import ConnectionEvent, ListEvent, StatusEvent
from tray.engine.session import SessionInfo

BASE = SessionInfo(
    id="s1", cluster_id="tender-a", cluster_name="a", namespace="demo", pod_name="web-1", container_port=8080,
    local_port=18080, target_kind="Deployment", target_name="web", status="active", status_reason="",
    started_at="2026-11-30T00:00:00+00:00", address="127.0.0.1", remote_port="8080", profile=None, attempts=0,
    connections=0,
)


def status(**kw: object) -> StatusEvent:
    s = replace(BASE, **kw)  # type: ignore[arg-type]
    return StatusEvent(s.id, s.status, s.local_port, s.pod_name, s.status_reason, s)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_active_names_context_and_profile(capsys: pytest.CaptureFixture[str]) -> None:
    p = _Printer("text")
    p.show(status())
    p.show(status(profile="shop", id="s2", address="::1"))
    assert lines(capsys) == [
        "tender-a: Forwarding from 127.0.0.1:18080 -> 8080 (deploy/web in demo, pod web-1)",
        "shop (tender-a): Forwarding from [::1]:18080 -> 8080 (deploy/web in demo, pod web-1)",
    ]


def test_reconnecting_shows_attempt_and_next_time_once_each(capsys: pytest.CaptureFixture[str]) -> None:
    p = _Printer("text")
    why = "no pods match deploy/web"
    burst = [status(status="reconnecting", status_reason=why),  # entering: no attempt yet
             status(status="reconnecting", status_reason=why, attempts=1, next_retry_at="2026-11-30T00:00:01+00:00")]
    p.show_batch(burst)
    p.show(burst[-1])  # the same again: not printed
    p.show(status(status="reconnecting", status_reason=why, attempts=2, next_retry_at="2026-11-30T00:00:03+00:00"))
    out = lines(capsys)
    assert len(out) == 2, out
    assert re.fullmatch(r"tender-a: deploy/web 18080 -> 8080: reconnecting \(attempt 1, next at \d\d:\d\d:01\): "
                        + why, out[0])
    assert "(attempt 2, next at" in out[1]


def test_error_lines(capsys: pytest.CaptureFixture[str]) -> None:
    p = _Printer("text")
    p.show(status(status="error", status_reason="gave up after 5 attempts: x", recoverable=True,
                  next_retry_at="2026-11-30T00:00:31+00:00", attempts=6))
    p.show(status(status="error", status_reason="gave up after 5 attempts: x", recoverable=True, attempts=7))
    p.show(status(status="error", status_reason="deploy/web was deleted"))
    p.show(status(id="s3", status="error", status_reason="svc/web has no port 9", usage_error=True))
    assert lines(capsys) == [
        "tender-a: deploy/web 18080 -> 8080: error: gave up after 5 attempts: x; still watching deploy/web, "
        "forwards again when a pod is ready",
        "tender-a: deploy/web 18080 -> 8080: error: deploy/web was deleted",
    ]


def test_warning_once_and_connection_errors(capsys: pytest.CaptureFixture[str]) -> None:
    p = _Printer("text")
    warned = status(warning="pod web-1 declares no port 9080 (declares: http 8080/TCP)")
    p.show(warned)
    p.show(replace(warned, session=replace(warned.session, status_reason="reconnected to pod web-1")))
    p.show(ConnectionEvent("s1", "web-1", 9080, "connection refused", 0, warned.session))
    p.show(ConnectionEvent("s1", "web-1", 9080, "connection refused", 7, warned.session))
    assert lines(capsys) == [
        "tender-a: Forwarding from 127.0.0.1:18080 -> 8080 (deploy/web in demo, pod web-1)",
        "tender-a: warning: pod web-1 declares no port 9080 (declares: http 8080/TCP); "
        "connections to it will likely be refused",
        "tender-a: error forwarding 127.0.0.1:18080 -> pod web-1 port 9080: connection refused",
        "tender-a: error forwarding 127.0.0.1:18080 -> pod web-1 port 9080: connection refused (and 7 more)",
    ]


def test_timestamps(capsys: pytest.CaptureFixture[str]) -> None:
    _Printer("text", timestamps=True).show(status())
    (line,) = lines(capsys)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d tender-a: Forwarding from .*", line)


def test_json_events(capsys: pytest.CaptureFixture[str]) -> None:
    p = _Printer("json", timestamps=True)
    p.show_batch([ListEvent([BASE]), ListEvent([BASE]), status(),
                  ConnectionEvent("s1", "web-1", 8080, "connection refused", 2, BASE)])
    events = [json.loads(line) for line in lines(capsys)]
    assert [e["event"] for e in events] == ["list", "status", "connection-error"]
    assert events[1]["status"] == "active" and events[1]["recoverable"] is False and "time" in events[1]
    assert {k: events[2][k] for k in ("pod_name", "port", "error", "suppressed", "cluster_id", "local_port")} == {
        "pod_name": "web-1", "port": 8080, "error": "connection refused", "suppressed": 2,
        "cluster_id": "tender-a", "local_port": 18080}
    assert "status" not in events[2]
