"""DbusNotifier against a real private session bus and the real xfce4-notifyd (Debian's), on Xvfb.

Each test gets its own hermetic desktop (tests.ui.harness.desktop: a
dbus-daemon whose only service directory is the test's, xfce4-notifyd or a
broken stand-in activated from it).  Buttons are clicked on the popup as a
person would (xdotool), so ActionInvoked comes from the daemon itself.
Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from dbus_fast import Message as DbusMessage
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method

from tests.ui.harness.bus import Bus, connect, loop, run
from tests.ui.harness.desktop import XFCE4_NOTIFYD, Desktop, Window, drawn_boxes, missing_tools
from tray.ui.dbusnotify import ACTIVATION_TIMEOUT, DbusNotifier, SilentNotifier, linux_notifier
from tray.ui.model import Action, ActionKind
from tests.ui.fakes import FakeDialogs, FakeManager, FakeView, session
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target
from tray.ui.controller import Controller
from tray.ui.notify import Message, Notifications, Urgency

pytestmark = pytest.mark.skipif(
    bool(missing_tools("Xvfb", "dbus-daemon", "xdotool", "import") or not os.access(XFCE4_NOTIFYD, os.X_OK)),
    reason="needs Xvfb, dbus-daemon, xdotool, imagemagick and xfce4-notifyd (tests/debian-packages.txt)")

NOTIFICATIONS = ("org.freedesktop.Notifications", "/org/freedesktop/Notifications", "org.freedesktop.Notifications")
STOP = Action(ActionKind.STOP, ("s1",))
RETRY = Action(ActionKind.RETRY, ("s1",))
UNAVAILABLE = "notifications are unavailable"


def error_card(key: str = "s1") -> Message:
    return Message("Forward failed: svc/web 8080 → 80", "tender-a/shop: gave up after 5 attempts", key=key,
                   urgency=Urgency.CRITICAL, category="network.error",
                   actions=(("Retry", Action(ActionKind.RETRY, (key,))), ("Stop", Action(ActionKind.STOP, (key,)))))


class Clicks:
    """What on_action received, in order, from the bus's thread."""

    def __init__(self) -> None:
        self.got: list[Action] = []

    def __call__(self, action: Action) -> None:
        self.got.append(action)

    def wait(self, n: int = 1, timeout: float = 20.0) -> list[Action]:
        deadline = time.monotonic() + timeout
        while len(self.got) < n:
            assert time.monotonic() < deadline, f"on_action got {self.got}, wanted {n}"
            time.sleep(0.05)
        return list(self.got)


@pytest.fixture
def desktop(request) -> Iterator[Desktop]:  # noqa: ANN001
    """A desktop whose notification service is the test's parameter (default: xfce4-notifyd)."""
    d = Desktop(panel=False, notifications=getattr(request, "param", "xfce4-notifyd")).start()
    try:
        yield d
    finally:
        d.stop()


@contextmanager
def notifier_on(desktop: Desktop, **kw) -> Iterator[tuple[DbusNotifier, Clicks, MessageBus]]:  # noqa: ANN003
    """A DbusNotifier on a connection of its own to the desktop's bus, served by the harness's loop."""
    bus = run(connect(desktop.bus))
    clicks = Clicks()
    n = DbusNotifier(bus, loop(), clicks, **kw)
    try:
        yield n, clicks, bus
    finally:
        n.close()
        loop().call_soon_threadsafe(bus.disconnect)


def popups(desktop: Desktop) -> list[Window]:
    return [w for w in desktop.windows() if w.name == "xfce4-notifyd" and w.width > 100 and w.height > 40]


def wait_popups(desktop: Desktop, n: int, timeout: float = 10.0) -> list[Window]:
    deadline = time.monotonic() + timeout
    while len(found := popups(desktop)) != n:
        assert time.monotonic() < deadline, f"{len(found)} popups, wanted {n}: {desktop.windows()}"
        time.sleep(0.1)
    time.sleep(0.5)  # drawn (xfce4-notifyd fades in)
    return popups(desktop)


def buttons(desktop: Desktop, popup: Window, shot: str) -> list[tuple[int, int]]:
    """The centres of the popup's buttons, left to right (found in a screenshot: the bottom band of the card)."""
    png = desktop.screenshot(shot)
    band = (popup.x + 2, popup.y + popup.height - 40, popup.x + popup.width - 2, popup.y + popup.height - 6)
    boxes = [b for b in drawn_boxes(png, band) if b[2] - b[0] >= 40]  # a button, not a glyph
    return [((left + right) // 2, (top + bottom) // 2) for left, top, right, bottom in boxes]


def wait_buttons(desktop: Desktop, cards: int, want: int, shot: str,
                 pick: Callable[[list[Window]], Window] = lambda cards: cards[0],
                 timeout: float = 20.0) -> list[tuple[int, int]]:
    """The centres of one card's buttons once ``cards`` popups are up and that card shows ``want`` buttons.

    ``pick`` chooses the card among the popups.  A card is drawn some time after it is mapped, and a
    replaced card is redrawn (with its new buttons) some time after the server answered: polled.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = popups(desktop)
        got = buttons(desktop, pick(found), shot) if len(found) == cards else []
        if len(got) == want:
            return got
        assert time.monotonic() < deadline, f"{len(found)} popups, the card's buttons {got}, wanted {want}"
        time.sleep(0.2)


def click(desktop: Desktop, xy: tuple[int, int]) -> None:
    desktop.xdotool("mousemove", str(xy[0]), str(xy[1]), "click", "1")


def warnings_in(caplog) -> list[str]:  # noqa: ANN001
    return [r.getMessage() for r in caplog.records
            if r.name == "tray.ui.dbusnotify" and r.levelno >= logging.WARNING]

# ------------------------------------------------------------------ the real xfce4-notifyd


def test_a_click_on_a_button_is_the_action_and_a_forward_has_one_card(desktop: Desktop) -> None:
    with notifier_on(desktop) as (n, clicks, _):
        n.show(Message("Reconnecting: svc/web 8080 → 80", "tender-a/shop: no ready pod", key="s1",
                       actions=(("Stop", STOP),), category="network.disconnected"))
        n.flush()
        [first] = desktop.notifications.wait_for(lambda m: [x for x in m.notified if x.id], message="Notify")
        wait_popups(desktop, 1)
        n.show(error_card("s1"))  # the same forward, now in error: replaces its card
        n.flush()
        second = desktop.notifications.wait_for(lambda m: len(m.notified) > 1 and m.notified[1].id and m.notified[1])
        assert second.replaces_id == first.id and second.id == first.id
        assert (second.app_name, second.app_icon, second.summary) == ("Tender", "tender",
                                                                       "Forward failed: svc/web 8080 → 80")
        assert second.actions == {"retry": "Retry", "stop": "Stop"}
        image = second.hints.pop("image-data")  # the logo: width, height, rowstride, alpha, 8 bits, 4 channels
        assert tuple(image[:6]) == (48, 48, 192, True, 8, 4) and len(image[6]) == 48 * 48 * 4
        assert second.hints == {"urgency": 2, "desktop-entry": "tender", "category": "network.error"}
        assert second.expire_timeout == 0  # an error waits for the user
        retry, stop = wait_buttons(desktop, 1, 2, "notify-error-card.png")  # one card, not a pile
        click(desktop, retry)
        assert clicks.wait(1) == [RETRY]
        assert desktop.notifications.wait_for(lambda m: m.actions) == [(first.id, "retry")]


def test_another_clients_action_is_ignored(desktop: Desktop) -> None:
    other = Bus(desktop.bus)
    with notifier_on(desktop) as (n, clicks, _):
        n.show(error_card("mine"))
        n.flush()
        [ours] = desktop.notifications.wait_for(lambda m: [x for x in m.notified if x.id])
        # Another program's card with the same action key ("stop"): its click is broadcast to us too.
        [theirs] = other.call(*NOTIFICATIONS, "Notify", "susssasa{sv}i",
                              ["other", 0, "", "Another program", "its card", ["stop", "Stop it"], {}, 0])
        cards = wait_popups(desktop, 2)
        by_buttons = {len(buttons(desktop, c, f"notify-two-cards-{i}.png")): c for i, c in enumerate(cards)}
        assert set(by_buttons) == {1, 2}, by_buttons
        click(desktop, buttons(desktop, by_buttons[1], "notify-two-cards.png")[0])
        desktop.notifications.wait_for(lambda m: (theirs, "stop") in m.actions, message="their ActionInvoked")
        # A signal from someone who is not the server, naming our id: also ignored.
        run(other.bus.send(DbusMessage.new_signal(NOTIFICATIONS[1], NOTIFICATIONS[2], "ActionInvoked", "us",
                                                  [ours.id, "stop"])))
        time.sleep(0.5)
        n.flush()
        assert clicks.got == []
        click(desktop, buttons(desktop, by_buttons[2], "notify-ours-left.png")[1])  # our Stop
        assert clicks.wait(1) == [Action(ActionKind.STOP, ("mine",))]
    other.close()


def test_withdraw_closes_the_card_and_markup_is_escaped(desktop: Desktop) -> None:
    with notifier_on(desktop) as (n, clicks, _):
        n.show(Message("Reconnected: svc/web 8080 → 80", "pod <web-2> & co", key="s1", urgency=Urgency.LOW))
        n.flush()
        [shown] = desktop.notifications.wait_for(lambda m: [x for x in m.notified if x.id])
        assert shown.body == "pod &lt;web-2&gt; &amp; co"  # xfce4-notifyd has body-markup
        assert shown.hints["urgency"] == 0 and shown.expire_timeout == 8000 and shown.actions == {}
        wait_popups(desktop, 1)
        n.withdraw("s1")
        n.withdraw("never-shown")  # nothing to close: no call
        n.flush()
        assert desktop.notifications.wait_for(lambda m: m.closed_by_app) == [shown.id]
        wait_popups(desktop, 0)


def test_the_policy_through_the_daemon_one_card_per_forward_and_its_buttons(desktop: Desktop) -> None:
    """Notifications (the policy) on a DbusNotifier: what a person sees and clicks when a forward fails."""
    with notifier_on(desktop) as (n, clicks, _):
        policy = Notifications(n, window=0.05, reconnect_after=0.2)
        try:
            for s in ("a", "b"):
                policy.feed(session(id=s, status="active", pod="web-1", local=8080 if s == "a" else 8081))
            policy.feed(session(id="b", status="error", reason="forbidden", local=8081))
            desktop.notifications.wait_for(lambda m: [x for x in m.notified if x.id], message="b's card")
            # b's error card is there (first, so the top one); a's reconnect lasts past the threshold: its card comes
            policy.feed(session(id="a", status="reconnecting", reason="no ready pod"))
            desktop.notifications.wait_for(lambda m: len([x for x in m.notified if x.id]) == 2, message="a's card")
            policy.feed(session(id="a", status="error", reason="gave up after 5 attempts"))
            seen = desktop.notifications.wait_for(lambda m: len(m.notified) == 3 and m.notified[2].id and m.notified)
            assert [x.summary.split(":")[0] for x in seen] == ["Forward failed", "Reconnecting", "Forward failed"]
            assert seen[2].replaces_id == seen[1].id  # a's card replaced, not a second one
            # xfce4-notifyd stacks the newer card below: a's, now with Retry and Stop
            [_, stop] = wait_buttons(desktop, 2, 2, "notify-two-forwards.png",
                                     pick=lambda cs: max(cs, key=lambda c: c.y))
            click(desktop, stop)
            assert clicks.wait(1) == [Action(ActionKind.STOP, ("a",))]
            policy.forget_except({"a"})  # b was removed from the menu: its card goes
            desktop.notifications.wait_for(lambda m: m.closed_by_app == [seen[0].id], message="b's card closed")
        finally:
            policy.close()


def test_closing_the_notifier_closes_its_cards(desktop: Desktop) -> None:
    """Quit: the cards still shown would have buttons that reach nobody."""
    with notifier_on(desktop) as (n, clicks, _):
        n.show(error_card("a"))
        n.show(error_card("b"))
        n.flush()
        shown = desktop.notifications.wait_for(lambda m: len([x for x in m.notified if x.id]) == 2 and m.notified)
        wait_popups(desktop, 2)
        started = time.monotonic()
        n.close()
        assert time.monotonic() - started < 1.5
        assert sorted(desktop.notifications.closed_by_app) == sorted(x.id for x in shown)
        wait_popups(desktop, 0)
        n.show(error_card("c"))  # after close: nothing
        time.sleep(0.3)
        assert len(desktop.notifications.notified) == 2


def wait_call(manager: FakeManager, call: tuple, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while call not in manager.calls:
        assert time.monotonic() < deadline, manager.calls
        time.sleep(0.05)


def test_the_controller_acts_on_a_click(desktop: Desktop, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The tray's wiring: engine status -> policy -> card -> click -> Controller.dispatch -> the engine."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    (tmp_path / "profiles.yaml").write_text("version: 1\nprofiles: []\n")
    (tmp_path / "kubeconfig").write_text("placeholder")
    manager = FakeManager(kubeconfig=str(tmp_path / "kubeconfig"))
    controller: Controller | None = None
    bus = run(connect(desktop.bus))
    n = DbusNotifier(bus, loop(), lambda action: controller.dispatch(action) if controller else None)
    controller = Controller(manager, FakeView(), FakeDialogs(), n, profiles_path=tmp_path / "profiles.yaml",
                            settings_file=tmp_path / "settings.json", refresh_interval=0.05, watch_interval=0.05)
    controller.notifications._buffer.window = 0.05
    try:
        controller.start()
        sid = manager.start(ForwardSpec(cluster="tender-a", namespace="shop", target=Target("Service", "web"),
                                        remote_port=80, local_port=8080))
        manager.set_status(sid, "active", pod="web-1")
        manager.set_status(sid, "error", "gave up after 5 attempts: no ready pod")
        retry, stop = wait_buttons(desktop, 1, 2, "notify-controller.png")
        click(desktop, retry)
        wait_call(manager, ("retry", sid))
        manager.set_status(sid, "starting")  # the retry runs...
        manager.set_status(sid, "error", "gave up after 5 attempts: no ready pod")  # ...and fails again
        retry, stop = wait_buttons(desktop, 1, 2, "notify-controller.png")
        click(desktop, stop)
        wait_call(manager, ("stop", sid))
        wait_popups(desktop, 0)
        assert manager.list() == []
    finally:
        controller.close()
        loop().call_soon_threadsafe(bus.disconnect)


# ------------------------------------------------------------------ a server without actions or body


class Bare(ServiceInterface):
    """A minimal notification server with the given capabilities."""

    def __init__(self, caps: list[str]) -> None:
        super().__init__("org.freedesktop.Notifications")
        self.caps = caps

    @method()
    def GetCapabilities(self) -> "as":  # noqa: F821, N802
        return self.caps

    @method()
    def Notify(self, app: "s", replaces: "u", icon: "s", summary: "s", body: "s", actions: "as",  # noqa: F821, N802
               hints: "a{sv}", expire: "i") -> "u":  # noqa: F821
        return 7


@pytest.mark.parametrize("desktop", [None], indirect=True)
def test_capabilities_are_checked_and_degraded(desktop: Desktop) -> None:
    for caps, body in ((["body"], "tender-a/shop: gave up after 5 attempts\nUse the Tender menu to retry or stop."),
                       ([], "")):
        server = run(connect(desktop.bus))
        server.export(NOTIFICATIONS[1], Bare(caps))
        run(server.request_name(NOTIFICATIONS[0]))
        desktop.notifications.clear()
        with notifier_on(desktop) as (n, clicks, _):
            n.show(error_card())
            n.flush()
            [sent] = desktop.notifications.wait_for(lambda m: [x for x in m.notified if x.id])
            assert sent.actions == {} and sent.body == body and sent.summary == "Forward failed: svc/web 8080 → 80"
            n.show(Message("Reconnected: svc/web 8080 → 80", "tender-a/shop: reconnected to pod web-2", key="s1",
                           actions=(("Open", Action(ActionKind.OPEN_URL, ("http://127.0.0.1:8080/",))),)))
            n.flush()
            opened = desktop.notifications.wait_for(lambda m: len(m.notified) == 2 and m.notified[1].id and m.notified)
            assert opened[1].body == ("tender-a/shop: reconnected to pod web-2" if caps else "")  # no hint for Open
        loop().call_soon_threadsafe(server.disconnect)
        desktop.wait_name(NOTIFICATIONS[0], owned=False)


# ------------------------------------------------------------------ never die


def assert_quiet_failure(n: DbusNotifier, caplog, within: float, why: str) -> None:  # noqa: ANN001
    """One show fails within ``within`` s with one warning naming ``why``; the next ones are dropped at once."""
    started = time.monotonic()
    n.show(error_card())
    assert time.monotonic() - started < 0.1  # the caller never waits
    n.flush(timeout=within + 5)
    assert time.monotonic() - started < within
    [warning] = warnings_in(caplog)
    assert UNAVAILABLE in warning and why in warning and "Traceback" not in caplog.text
    started = time.monotonic()
    n.show(error_card("s2"))
    n.withdraw("s1")
    n.flush()
    assert time.monotonic() - started < 0.5
    assert len(warnings_in(caplog)) == 1


@pytest.mark.parametrize("desktop", ["crash"], indirect=True)
def test_a_service_that_crashes_on_activation_then_one_started_later_is_used(desktop: Desktop, caplog) -> None:
    with notifier_on(desktop, retry_after=2.0) as (n, clicks, _), \
            caplog.at_level(logging.INFO, logger="tray.ui.dbusnotify"):
        assert_quiet_failure(n, caplog, 3.0, "Spawn.ChildExited")
        assert desktop.notifications.notified == []  # nothing reached a server
        desktop.add_service(NOTIFICATIONS[0], XFCE4_NOTIFYD)  # the user installs a working daemon
        time.sleep(2.1)
        n.show(error_card("s3"))
        n.flush()
        [shown] = desktop.notifications.wait_for(lambda m: [x for x in m.notified if x.id])
        assert shown.actions == {"retry": "Retry", "stop": "Stop"}
        wait_popups(desktop, 1)
        assert "notifications work again" in caplog.text


@pytest.mark.parametrize("desktop", [None], indirect=True)
def test_no_notification_service(desktop: Desktop, caplog) -> None:
    with notifier_on(desktop) as (n, clicks, _), caplog.at_level(logging.INFO, logger="tray.ui.dbusnotify"):
        assert_quiet_failure(n, caplog, 2.0, "ServiceUnknown")


@pytest.mark.parametrize("desktop", ["hang"], indirect=True)
def test_a_service_that_never_answers_is_given_up_within_the_timeout(desktop: Desktop, caplog) -> None:
    with notifier_on(desktop) as (n, clicks, _), caplog.at_level(logging.INFO, logger="tray.ui.dbusnotify"):
        # The first call may start the server, so it waits up to ACTIVATION_TIMEOUT; this
        # bus gives up activating after 5 s (the harness's service_start_timeout) and says so.
        assert_quiet_failure(n, caplog, min(ACTIVATION_TIMEOUT, 5.0) + 1.5, "timed out")


def test_a_closed_bus_connection_is_one_warning(desktop: Desktop, caplog) -> None:
    with notifier_on(desktop) as (n, clicks, bus), caplog.at_level(logging.INFO, logger="tray.ui.dbusnotify"):
        run(asyncio.sleep(0))
        loop().call_soon_threadsafe(bus.disconnect)
        time.sleep(0.2)
        assert_quiet_failure(n, caplog, 2.0, "")


def test_a_view_without_a_bus_connection_gets_one_of_its_own(desktop: Desktop) -> None:
    clicks = Clicks()
    n = linux_notifier(clicks, address=desktop.bus)
    try:
        assert isinstance(n, DbusNotifier)
        n.show(error_card())
        n.flush()
        [shown] = desktop.notifications.wait_for(lambda m: [x for x in m.notified if x.id])
        assert shown.actions == {"retry": "Retry", "stop": "Stop"}
    finally:
        n.close()
    deadline = time.monotonic() + 5
    while any(t.name == "tender-notify-bus" for t in threading.enumerate()):  # its loop thread ends
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_no_session_bus_is_a_silent_notifier_and_one_warning(tmp_path, caplog) -> None:  # noqa: ANN001
    with caplog.at_level(logging.INFO, logger="tray.ui.dbusnotify"):
        started = time.monotonic()
        n = linux_notifier(Clicks(), address=f"unix:path={tmp_path}/no-bus")
        assert time.monotonic() - started < 3
        n.show(error_card())
        n.withdraw("s1")
    assert isinstance(n, SilentNotifier)
    [warning] = warnings_in(caplog)
    assert UNAVAILABLE in warning and "Traceback" not in caplog.text


def test_a_closed_loop_is_no_error() -> None:
    dead = asyncio.new_event_loop()
    dead.close()
    n = DbusNotifier(None, dead, Clicks())  # type: ignore[arg-type]
    n.show(error_card())
    n.withdraw("s1")
    n.close()


def test_the_linux_notifications_import_no_gi() -> None:
    code = "import sys, tray.ui.dbusnotify, tray.ui.notify; sys.exit('gi' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
