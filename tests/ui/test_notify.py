"""Notifications: which transitions notify, with which key, urgency and actions; bursts become one summary.

The policy is tested on plain data with the clock passed in (no sleeping for
the reconnect threshold); the thread at the end with a fake notifier.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tests.ui.fakes import FakeNotifier, session
from tray.ui import notify
from tray.ui.model import Action, ActionKind
from tray.ui.notify import (RECONNECT_NOTIFY_AFTER, SUMMARY_KEY, BurstBuffer, Flush, Message, Notice, NoticeKind,
                            Notifications, PlyerNotifier, TransitionTracker, Urgency, cluster_key, summarize)

T = RECONNECT_NOTIFY_AFTER
WEB = dict(target="svc/web", local=8080, remote=80, cluster="tender-a", namespace="shop")
DB = dict(target="sts/db", local=15432, remote=5432, cluster="tender-a", namespace="data")


def messages(*notices: Notice | None) -> list[Message]:
    return list(summarize([n for n in notices if n is not None]).messages)


def buttons(m: Message) -> list[tuple[str, Action]]:
    return list(m.actions)


# ------------------------------------------------------------------ the policy, one forward


def test_a_quiet_pod_switch_is_a_log_line_not_a_notification(caplog) -> None:
    t = TransitionTracker()
    with caplog.at_level(logging.INFO, logger="tray.ui.notify"):
        assert t.feed(session(id="a", status="starting", **WEB), now=0) is None
        assert t.feed(session(id="a", status="active", pod="web-1", **WEB), now=1) is None
        # active -> active on another pod: the engine moved without failing a connection
        assert t.feed(session(id="a", status="active", pod="web-2", **WEB), now=2) is None
        # a reconnect shorter than the threshold, then active again
        assert t.feed(session(id="a", status="reconnecting", reason="pod web-2 deleted", **WEB), now=3) is None
        assert t.due(now=3 + T - 0.5) == []
        assert t.feed(session(id="a", status="active", pod="web-3", **WEB), now=3 + T - 0.1) is None
        assert t.due(now=100) == [] and t.next_due() is None
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("moved from pod web-1 to pod web-2" in line for line in lines), lines
    assert any("reconnected to pod web-3 after 4.9 s" in line for line in lines), lines


def test_a_reconnect_longer_than_the_threshold_is_one_message_with_stop() -> None:
    t = TransitionTracker()
    t.feed(session(id="a", status="active", pod="web-1", **WEB), now=0)
    assert t.feed(session(id="a", status="reconnecting", reason="no ready pod", **WEB), now=10) is None
    assert t.next_due() == 10 + T
    t.feed(session(id="a", status="reconnecting", reason="retrying in 2s: no ready pod", **WEB), now=11)
    assert t.due(now=10 + T - 0.01) == []
    [n] = t.due(now=10 + T)
    assert t.due(now=60) == []  # once
    [m] = messages(n)
    assert (m.title, m.body) == ("Reconnecting: svc/web 8080 → 80", "tender-a/shop: retrying in 2s: no ready pod")
    assert m.key == "a" and m.urgency == Urgency.NORMAL
    assert buttons(m) == [("Stop", Action(ActionKind.STOP, ("a",)))]


def test_the_recovery_of_a_long_reconnect_replaces_it_under_the_same_key() -> None:
    t = TransitionTracker()
    t.feed(session(id="a", status="active", pod="web-1", **DB), now=0)
    t.feed(session(id="a", status="reconnecting", reason="no ready pod", **DB), now=1)
    [long] = messages(*t.due(now=1 + T))
    [back] = messages(t.feed(session(id="a", status="active", pod="db-0", **DB), now=20))
    assert back.key == long.key == "a"
    assert (back.title, back.body) == ("Reconnected: sts/db 15432 → 5432", "tender-a/data: reconnected to pod db-0")
    assert back.urgency == Urgency.LOW
    assert back.actions == ()  # 5432 is not HTTP: nothing to open


def test_the_recovery_of_an_http_forward_offers_open_with_the_menus_url() -> None:
    t = TransitionTracker()
    t.feed(session(id="h", status="active", pod="web-1", **WEB), now=0)
    t.feed(session(id="h", status="error", reason="gave up after 5 attempts", **WEB), now=1)
    [m] = messages(t.feed(session(id="h", status="active", pod="web-2", **WEB), now=40))
    assert buttons(m) == [("Open", Action(ActionKind.OPEN_URL, ("http://127.0.0.1:8080/",)))]
    # https, by the menu's rule (container port 8443)
    t.feed(session(id="s", status="active", target="svc/api", local=9443, remote=8443, container_port=8443), now=0)
    t.feed(session(id="s", status="error", target="svc/api", local=9443, remote=8443, container_port=8443), now=1)
    [m] = messages(t.feed(session(id="s", status="active", target="svc/api", local=9443, remote=8443,
                                  container_port=8443), now=2))
    assert buttons(m) == [("Open", Action(ActionKind.OPEN_URL, ("https://127.0.0.1:9443/",)))]


def test_an_error_is_critical_with_retry_and_stop() -> None:
    t = TransitionTracker()
    n = t.feed(session(id="e", status="error", reason="services \"nope\" not found", **WEB), now=0)
    [m] = messages(n)
    assert m.title == "Forward failed: svc/web 8080 → 80"
    assert m.body == 'tender-a/shop: services "nope" not found'
    assert m.key == "e" and m.urgency == Urgency.CRITICAL
    assert buttons(m) == [("Retry", Action(ActionKind.RETRY, ("e",))), ("Stop", Action(ActionKind.STOP, ("e",)))]


def test_a_long_reconnect_that_ends_in_error_replaces_its_card_and_recovers_later() -> None:
    t = TransitionTracker()
    got = [t.feed(session(id="r", status="active", pod="db-0", **DB), now=0),
           t.feed(session(id="r", status="reconnecting", reason="no ready pod", **DB), now=1),
           *t.due(now=1 + T),
           t.feed(session(id="r", status="error", reason="gave up after 5 attempts: no ready pod", **DB), now=31),
           t.feed(session(id="r", status="error", reason="gave up after 5 attempts: refused", **DB), now=61),
           t.feed(session(id="r", status="active", pod="db-0", **DB), now=91)]  # by itself, no Retry
    assert [n.kind for n in got if n] == ["reconnecting", "error", "recovered"]
    assert {m.key for n in got if n for m in messages(n)} == {"r"}


def test_an_error_shorter_than_the_reconnect_threshold_still_notifies() -> None:
    t = TransitionTracker()
    t.feed(session(id="x", status="active", **WEB), now=0)
    t.feed(session(id="x", status="reconnecting", **WEB), now=1)
    n = t.feed(session(id="x", status="error", reason="forbidden", **WEB), now=2)
    assert n.kind == "error" and t.next_due() is None  # no "reconnecting" card after the error


def test_the_users_retry_closes_the_stale_error_card_and_starts_quietly() -> None:
    t = TransitionTracker()
    t.feed(session(id="u", status="error", reason="x", **WEB), now=0)
    cleared = t.feed(session(id="u", status="starting", **WEB), now=5)
    assert summarize([cleared]) == Flush(close=("u",))
    assert t.feed(session(id="u", status="active", pod="web-3", **WEB), now=6) is None


def test_a_stopped_or_removed_forward_closes_its_card() -> None:
    t = TransitionTracker()
    t.feed(session(id="a", status="error", **WEB), now=0)
    t.feed(session(id="b", status="error", **WEB), now=0)
    t.feed(session(id="c", status="active", **WEB), now=0)
    assert summarize([t.feed(session(id="a", status="stopped", **WEB), now=1)]) == Flush(close=("a",))
    # b vanished from the list (removed); c never had a card: nothing to close for it
    assert summarize(t.forget_except({"c"})) == Flush(close=("b",))
    assert t.forget_except(set()) == []


# ------------------------------------------------------------------ bursts


def _down(i: int, cluster: str = "tender-a", kind: str = "reconnecting") -> Notice:
    return Notice(NoticeKind(kind), f"s{i}", cluster, f"svc/s{i} {9000 + i} → 80", f"{cluster}/ns",
                  "cluster unreachable: refused")


def test_a_burst_of_one_cluster_becomes_one_summary_without_actions() -> None:
    buf = BurstBuffer(window=1.0)
    for i in range(50):
        buf.add(_down(i, kind="error"), now=10.0 + i * 0.01)
    assert buf.flush(now=10.5) == Flush()  # window still open
    flush = buf.flush(now=11.0)
    [m] = flush.messages
    assert m.title == "50 forwards in tender-a failed"
    assert m.body.startswith("svc/s0 9000 → 80, svc/s1 9001 → 80, svc/s2 9002 → 80 and 47 more")
    assert "cluster unreachable: refused" in m.body
    assert m.key == cluster_key("tender-a") and m.actions == () and m.urgency == Urgency.CRITICAL
    assert set(flush.close) == {f"s{i}" for i in range(50)}  # their own cards, if any, are told by the summary
    assert buf.flush(now=20.0) == Flush()


def test_a_burst_recovery_replaces_the_clusters_summary() -> None:
    down = summarize([_down(i) for i in range(5)]).messages[0]
    back = summarize([Notice(NoticeKind.RECOVERED, f"s{i}", "tender-a", "t", "w", "p") for i in range(5)]).messages[0]
    assert down.key == back.key == "cluster:tender-a"
    assert back.title == "5 forwards in tender-a reconnected" and back.urgency == Urgency.LOW


def test_recovery_within_the_window_is_reported_once() -> None:
    a = _down(1)
    back = Notice(NoticeKind.RECOVERED, "s1", "tender-a", a.title, a.where, "web-2")
    [m] = summarize([a, back]).messages
    assert m.title.startswith("Reconnected:") and "web-2" in m.body


def test_many_kinds_of_change_become_one_overall_summary() -> None:
    notices = [_down(i, "tender-a") for i in range(5)] + [_down(10 + i, "tender-b", "error") for i in range(3)]
    notices += [_down(20, "tender-c"), _down(30, "tender-d", "error")]
    flush = summarize(notices)
    [m] = flush.messages
    assert m.title == "10 forwards changed" and m.key == SUMMARY_KEY and m.actions == ()
    assert "5 reconnecting in tender-a" in m.body and "3 failed in tender-b" in m.body
    assert m.urgency == Urgency.CRITICAL  # it includes errors
    assert set(flush.close) == {n.session_id for n in notices}


def test_two_clusters_get_one_message_each() -> None:
    msgs = summarize([_down(1, "tender-a"), _down(2, "tender-a"), _down(3, "tender-b")]).messages
    assert [(m.title, m.key) for m in msgs] == [("2 forwards in tender-a reconnecting", "cluster:tender-a"),
                                                 ("Reconnecting: svc/s3 9003 → 80", "s3")]


# ------------------------------------------------------------------ the thread


class RecordingNotifier:
    """A full notifier: what was shown (messages) and withdrawn (keys), in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self.cond = threading.Condition()

    def show(self, message: Message) -> None:
        with self.cond:
            self.log.append(("show", message))
            self.cond.notify_all()

    def withdraw(self, key: str) -> None:
        with self.cond:
            self.log.append(("withdraw", key))
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 3.0) -> list[tuple[str, object]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.log) >= n, timeout), self.log
            return list(self.log)


def _wait_for(pred, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_notification_thread_sends_one_summary_for_a_burst() -> None:
    fake = FakeNotifier()  # a plain notifier (title and body) still works
    n = Notifications(fake, window=0.3)
    try:
        for i in range(50):
            n.feed(session(id=f"b{i}", status="active", cluster="tender-b"))
        for i in range(50):
            n.feed(session(id=f"b{i}", status="error", cluster="tender-b", reason="unreachable"))
        _wait_for(lambda: fake.sent)
        time.sleep(0.4)
        assert fake.sent == [("50 forwards in tender-b failed", fake.sent[0][1])]
    finally:
        n.close()


def test_the_thread_notifies_a_long_reconnect_when_it_is_due_and_replaces_it() -> None:
    rec = RecordingNotifier()
    n = Notifications(rec, window=0.05, reconnect_after=0.3)
    try:
        n.feed(session(id="w", status="active", pod="web-1", **WEB))
        n.feed(session(id="w", status="reconnecting", reason="no ready pod", **WEB))
        started = time.monotonic()
        [(verb, m)] = rec.wait_for(1)
        assert time.monotonic() - started >= 0.3
        assert verb == "show" and m.title == "Reconnecting: svc/web 8080 → 80" and m.key == "w"
        n.feed(session(id="w", status="active", pod="web-2", **WEB))
        (verb, m) = rec.wait_for(2)[1]
        assert verb == "show" and m.title == "Reconnected: svc/web 8080 → 80" and m.key == "w"
        n.forget_except(set())  # stopped: its card goes
        assert rec.wait_for(3)[2] == ("withdraw", "w")
    finally:
        n.close()


def test_a_quick_reconnect_sends_nothing() -> None:
    rec = RecordingNotifier()
    n = Notifications(rec, window=0.05, reconnect_after=0.5)
    try:
        n.feed(session(id="q", status="active", pod="web-1", **WEB))
        n.feed(session(id="q", status="reconnecting", **WEB))
        n.feed(session(id="q", status="active", pod="web-2", **WEB))
        n.feed(session(id="q", status="active", pod="web-3", **WEB))
        time.sleep(0.8)
        assert rec.log == []
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


def test_a_direct_message_replaces_the_same_message() -> None:
    rec = RecordingNotifier()
    n = Notifications(rec, window=0.05)
    try:
        n.send("Could not start the forward", "port 8080 is in use", always=True)
        n.send("Could not start the forward", "port 8081 is in use", always=True)
        n.send("Saved as profile web", "in profiles.yaml", always=True)
        assert [(m.key, m.body) for _, m in rec.wait_for(3)] == [
            ("message:Could not start the forward", "port 8080 is in use"),
            ("message:Could not start the forward", "port 8081 is in use"),
            ("message:Saved as profile web", "in profiles.yaml")]
    finally:
        n.close()


def test_a_profile_that_cannot_start_has_one_card_named_after_it_with_retry() -> None:
    from tray.errors import UsageError

    rec = RecordingNotifier()
    n = Notifications(rec, window=0.05, enabled=lambda: False)  # shown even when turned off: the user asked
    try:
        unknown = UsageError('context "nowhere" not found in the kubeconfig (contexts: tender-a)',
                             source="/home/u/.kube/config", field="context")
        n.profile_failed("web", unknown)
        n.profile_failed("web", unknown)  # the menu's Retry failed again: the same card, replaced
        n.profile_failed("db", "profile db: the kubeconfig sets no current-context; set context: NAME")
        n.profile_ok("web")  # it started: its card goes
        log = rec.wait_for(4)
    finally:
        n.close()
    first, again, db, ok = log
    assert first == again and first[0] == "show"
    m = first[1]
    assert (m.title, m.key, m.urgency) == ("Profile web could not start", "profile:web", Urgency.CRITICAL)
    # The cause first, the file after it (a body cut at its end keeps the cause).
    assert m.body == 'context "nowhere" not found in the kubeconfig (contexts: tender-a) (/home/u/.kube/config)'
    assert buttons(m) == [("Retry", Action(ActionKind.PROFILE_START, ("web",))),
                          ("Edit profiles", Action(ActionKind.EDIT_PROFILES))]
    assert (db[1].title, db[1].key) == ("Profile db could not start", "profile:db")
    assert db[1].body == "the kubeconfig sets no current-context; set context: NAME"  # no "profile db:" twice
    assert ok == ("withdraw", "profile:web")


def test_a_long_reason_keeps_its_cause_and_loses_the_path() -> None:
    from tray.errors import UsageError

    deep = "/home/someone/" + "very/" * 60 + "config"
    m = notify.profile_failure_message("web", UsageError("kubeconfig not found", source=deep))
    assert m.body.startswith("kubeconfig not found (/home/someone/very/") and len(m.body) == 200
    assert m.body.endswith("…")


def test_closing_closes_the_notifier_too() -> None:
    class Closable(RecordingNotifier):
        def close(self) -> None:
            self.log.append(("close", None))

    rec = Closable()
    Notifications(rec).close()
    assert rec.log == [("close", None)]
    Notifications(FakeNotifier()).close()  # a notifier without close() is fine


def test_a_failing_notifier_does_not_stop_the_thread(caplog) -> None:
    class Broken(RecordingNotifier):
        def show(self, message: Message) -> None:
            super().show(message)
            raise RuntimeError("boom")

    rec = Broken()
    n = Notifications(rec, window=0.05)
    try:
        with caplog.at_level(logging.ERROR, logger="tray.ui.notify"):
            n.send("one", "1", always=True)
            rec.wait_for(1)
            n.send("two", "2", always=True)
            assert [m.title for _, m in rec.wait_for(2)] == ["one", "two"]
    finally:
        n.close()


# ------------------------------------------------------------------ plyer (macOS, Windows)


@pytest.mark.filterwarnings("ignore::UserWarning")  # plyer's own warning about dbus-python
def test_plyer_failure_is_logged_once(monkeypatch, caplog) -> None:
    import plyer

    def broken(**kwargs):
        raise NotImplementedError("no backend")

    monkeypatch.setattr(plyer.notification, "notify", broken)
    p = PlyerNotifier()
    with caplog.at_level(logging.WARNING, logger="tray.ui.notify"):
        p.show(Message("a", "b"))
        p.show(Message("a", "b", key="k"))
        p.withdraw("k")
    assert len([r for r in caplog.records if "notifications are unavailable" in r.getMessage()]) == 1


def test_the_linux_path_needs_no_gi() -> None:
    assert not hasattr(notify, "_linux_service_available")
    assert "gi" not in notify.__dict__
