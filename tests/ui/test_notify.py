"""Notifications: which transitions notify, and bursts become one summary."""

from __future__ import annotations

import logging
import time

import pytest

from tests.ui.fakes import FakeNotifier, session
from tray.ui import notify
from tray.ui.notify import BurstBuffer, Notice, Notifications, PlyerNotifier, TransitionTracker, summarize


def feed_all(tracker: TransitionTracker, *snapshots) -> list[Notice]:
    return [n for s in snapshots if (n := tracker.feed(s)) is not None]


def test_transitions_that_notify() -> None:
    t = TransitionTracker()
    sid = "a"
    notices = feed_all(
        t,
        session(id=sid, status="starting"),
        session(id=sid, status="active", pod="web-1"),  # started: no notice
        session(id=sid, status="active", pod="web-1"),  # no change
        session(id=sid, status="reconnecting", reason="pod web-1 deleted; no ready pod"),
        session(id=sid, status="reconnecting", reason="retrying in 2s"),  # still reconnecting
        session(id=sid, status="active", pod="web-2"),
        session(id=sid, status="reconnecting", reason="again"),
        session(id=sid, status="error", reason="gave up after 5 attempts"),
        session(id=sid, status="starting"),  # the user retried
        session(id=sid, status="active", pod="web-3"),  # no "recovered": it was the user's retry
    )
    assert [(n.kind, n.detail) for n in notices] == [
        ("reconnecting", "pod web-1 deleted; no ready pod"),
        ("recovered", "web-2"),
        ("reconnecting", "again"),
        ("error", "gave up after 5 attempts"),
    ]


def test_a_move_to_another_pod_without_outage_notifies_as_reconnected() -> None:
    t = TransitionTracker()
    assert t.feed(session(id="m", status="active", pod="web-1")) is None
    n = t.feed(session(id="m", status="active", pod="web-2"))
    assert (n.kind, n.detail) == ("recovered", "web-2")


def test_a_forward_that_fails_to_start_notifies() -> None:
    t = TransitionTracker()
    assert t.feed(session(id="x", status="error", reason="svc/nope not found")).kind == "error"


def test_single_messages_are_worded_for_people() -> None:
    t = TransitionTracker()
    base = dict(id="a", target="svc/web", local=8080, remote=80, cluster="tender-a", namespace="shop")
    t.feed(session(**base, status="active"))
    [m] = summarize([t.feed(session(**base, status="reconnecting", reason="no ready pod"))])
    assert (m.title, m.body) == ("Reconnecting: svc/web 8080 → 80", "tender-a/shop: no ready pod")
    [m] = summarize([t.feed(session(**base, status="active", pod="web-5d8-x2"))])
    assert (m.title, m.body) == ("Reconnected: svc/web 8080 → 80", "tender-a/shop: reconnected to pod web-5d8-x2")
    [m] = summarize([t.feed(session(**base, status="error", reason="forbidden"))])
    assert m.title == "Forward failed: svc/web 8080 → 80"


def _down(i: int, cluster: str = "tender-a", kind: str = "reconnecting") -> Notice:
    return Notice(kind, f"s{i}", cluster, f"svc/s{i} {9000 + i} → 80", f"{cluster}/ns", "cluster unreachable: refused")


def test_a_burst_of_one_cluster_becomes_one_summary() -> None:
    buf = BurstBuffer(window=1.0)
    for i in range(50):
        buf.add(_down(i), now=10.0 + i * 0.01)
    assert buf.flush(now=10.5) == []  # window still open
    [m] = buf.flush(now=11.0)
    assert m.title == "50 forwards in tender-a reconnecting"
    assert m.body.startswith("svc/s0 9000 → 80, svc/s1 9001 → 80, svc/s2 9002 → 80 and 47 more")
    assert "cluster unreachable: refused" in m.body
    assert buf.flush(now=20.0) == []


def test_recovery_within_the_window_is_reported_once() -> None:
    a = _down(1)
    back = Notice("recovered", "s1", "tender-a", a.title, a.where, "web-2")
    [m] = summarize([a, back])
    assert m.title.startswith("Reconnected:") and "web-2" in m.body


def test_many_kinds_of_change_become_one_overall_summary() -> None:
    notices = [_down(i, "tender-a") for i in range(5)] + [_down(10 + i, "tender-b", "error") for i in range(3)]
    notices += [_down(20, "tender-c"), _down(30, "tender-d", "error")]
    [m] = summarize(notices)
    assert m.title == "10 forwards changed"
    assert "5 reconnecting in tender-a" in m.body and "3 failed in tender-b" in m.body


def test_two_clusters_get_one_message_each() -> None:
    msgs = summarize([_down(1, "tender-a"), _down(2, "tender-a"), _down(3, "tender-b")])
    assert [m.title for m in msgs] == ["2 forwards in tender-a reconnecting", "Reconnecting: svc/s3 9003 → 80"]


def _wait_for(pred, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_notification_thread_sends_one_summary_for_a_burst() -> None:
    fake = FakeNotifier()
    n = Notifications(fake, window=0.3)
    try:
        for i in range(50):
            n.feed(session(id=f"b{i}", status="active", cluster="tender-b"))
        for i in range(50):
            n.feed(session(id=f"b{i}", status="reconnecting", cluster="tender-b", reason="unreachable"))
        _wait_for(lambda: fake.sent)
        time.sleep(0.4)
        assert len(fake.sent) == 1 and fake.sent[0][0] == "50 forwards in tender-b reconnecting"
    finally:
        n.close()


def test_turned_off_means_silent_except_for_direct_messages() -> None:
    fake = FakeNotifier()
    n = Notifications(fake, window=0.05, enabled=lambda: False)
    try:
        n.feed(session(id="q", status="error", reason="x"))
        n.send("ignored", "off")
        n.send("Could not start the forward", "port 8080 is in use", always=True)
        _wait_for(lambda: fake.sent)
        time.sleep(0.2)
        assert fake.sent == [("Could not start the forward", "port 8080 is in use")]
    finally:
        n.close()


def test_no_notification_service_is_logged_once(monkeypatch, caplog) -> None:
    monkeypatch.setattr(notify.sys, "platform", "linux")
    monkeypatch.setattr(notify, "_linux_service_available", lambda: False)
    p = PlyerNotifier()
    with caplog.at_level(logging.WARNING, logger="tray.ui.notify"):
        p.send("a", "b")
        p.send("c", "d")
    assert len([r for r in caplog.records if "notifications are unavailable" in r.getMessage()]) == 1


@pytest.mark.filterwarnings("ignore::UserWarning")  # plyer's own warning about dbus-python
def test_plyer_failure_is_logged_once(monkeypatch, caplog) -> None:
    import plyer

    monkeypatch.setattr(notify, "_linux_service_available", lambda: True)

    def broken(**kwargs):
        raise NotImplementedError("no backend")

    monkeypatch.setattr(plyer.notification, "notify", broken)
    p = PlyerNotifier()
    with caplog.at_level(logging.WARNING, logger="tray.ui.notify"):
        p.send("a", "b")
        p.send("a", "b")
    assert len([r for r in caplog.records if "notifications are unavailable" in r.getMessage()]) == 1


def test_a_forward_that_recovers_from_error_on_its_own_notifies() -> None:
    """Forwards in error whose target exists come back by themselves (no Retry, so no
    "starting" in between): that is news, worded as a recovery."""
    t = TransitionTracker()
    notices = feed_all(
        t,
        session(id="r", status="active", pod="db-0"),
        session(id="r", status="reconnecting", reason="no ready pod"),
        session(id="r", status="error", reason="gave up after 5 attempts: no ready pod"),
        session(id="r", status="active", pod="db-0"),
    )
    assert [n.kind for n in notices] == ["reconnecting", "error", "recovered"]
