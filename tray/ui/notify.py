"""Notifications: a forward reconnecting, failing, or recovering.

Three parts, each testable on its own:

* :class:`TransitionTracker` turns session snapshots into :class:`Notice`
  objects on transitions *into* reconnecting and error, and on recovery
  (reconnecting → active, "reconnected to pod web-…").
* :class:`BurstBuffer` collects notices for a short window (1 s) and turns
  them into few messages: 50 forwards of one cluster going down at once is
  one summary, not 50 pop-ups.  A forward that recovers within the window is
  reported once, as recovered.
* :class:`Notifications` runs the above on a thread of its own and hands
  messages to a notifier (:class:`PlyerNotifier`, or a fake in tests).  With
  no notification service the app keeps running and says so once in the log.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from tray.domain.status import Status
from tray.ui import labels

log = logging.getLogger(__name__)

BURST_WINDOW = 1.0
#: More messages than this from one window become one overall summary.
MAX_MESSAGES = 3
APP_NAME = "Tender"


class NoticeKind(StrEnum):
    """What a notification reports about one forward (a ``str``, as its value)."""

    RECONNECTING = "reconnecting"
    """It went to ``reconnecting``."""
    ERROR = "error"
    """It went to ``error``."""
    RECOVERED = "recovered"
    """It is ``active`` again after an outage, or on another pod."""


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    session_id: str
    cluster: str
    title: str  # "svc/web 8080 → 80"
    where: str  # "tender-a/shop"
    detail: str  # the reason, or the new pod


@dataclass(frozen=True)
class Message:
    title: str
    body: str


class TransitionTracker:
    """Remembers each session's last status and pod; reports the transitions worth a notification."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[str, str]] = {}  # session id -> (status, pod)

    def feed(self, s: labels.SessionLike) -> Notice | None:
        sid = str(s.id)
        before, pod_before = self._last.get(sid, (None, ""))
        self._last[sid] = (s.status, s.pod_name)
        if s.status == before:
            if s.status == Status.ACTIVE and pod_before and s.pod_name and s.pod_name != pod_before:
                # The engine moved to another pod without a visible outage (its pod went away
                # while another was ready): still worth knowing, in the same words.
                return Notice(NoticeKind.RECOVERED, sid, s.cluster_id, labels.session_title(s), labels.where_text(s),
                              s.pod_name)
            return None
        common = dict(session_id=sid, cluster=s.cluster_id, title=labels.session_title(s), where=labels.where_text(s))
        if s.status == Status.RECONNECTING:
            return Notice(NoticeKind.RECONNECTING, detail=s.status_reason or "reconnecting", **common)
        if s.status == Status.ERROR:
            return Notice(NoticeKind.ERROR, detail=s.status_reason or "failed", **common)
        if s.status == Status.ACTIVE and before in (Status.RECONNECTING, Status.ERROR):  # on its own from error too
            return Notice(NoticeKind.RECOVERED, detail=s.pod_name, **common)
        return None

    def forget_except(self, session_ids: set[str]) -> None:
        for sid in list(self._last):
            if sid not in session_ids:
                del self._last[sid]


_VERB = {NoticeKind.RECONNECTING: "reconnecting", NoticeKind.ERROR: "failed", NoticeKind.RECOVERED: "reconnected"}


def _single(n: Notice) -> Message:
    if n.kind == NoticeKind.RECONNECTING:
        return Message(f"Reconnecting: {n.title}", f"{n.where}: {labels.shorten(n.detail, 160)}")
    if n.kind == NoticeKind.ERROR:
        return Message(f"Forward failed: {n.title}", f"{n.where}: {labels.shorten(n.detail, 160)}")
    return Message(f"Reconnected: {n.title}", f"{n.where}: reconnected to pod {n.detail}")


def _group(kind: NoticeKind, cluster: str, notices: list[Notice]) -> Message:
    names = ", ".join(n.title for n in notices[:3])
    more = f" and {len(notices) - 3} more" if len(notices) > 3 else ""
    reasons = {n.detail for n in notices}
    why = f"\n{labels.shorten(next(iter(reasons)), 160)}" if kind != NoticeKind.RECOVERED and len(reasons) == 1 else ""
    return Message(f"{len(notices)} forwards in {cluster} {_VERB[kind]}", f"{names}{more}{why}")


def summarize(notices: list[Notice]) -> list[Message]:
    """The messages for one window's notices (the last notice of each session counts)."""
    last: dict[str, Notice] = {}
    for n in notices:
        last.pop(n.session_id, None)  # re-insert: order by the latest change
        last[n.session_id] = n
    groups: dict[tuple[str, str], list[Notice]] = {}
    for n in last.values():
        groups.setdefault((n.kind, n.cluster), []).append(n)
    messages = [_single(g[0]) if len(g) == 1 else _group(kind, cluster, g) for (kind, cluster), g in groups.items()]
    if len(messages) <= MAX_MESSAGES:
        return messages
    parts = [f"{len(g)} {_VERB[kind]} in {cluster}" for (kind, cluster), g in groups.items()]
    return [Message(f"{len(last)} forwards changed", ", ".join(parts))]


class BurstBuffer:
    """Holds notices until ``window`` seconds after the first one of a burst."""

    def __init__(self, window: float = BURST_WINDOW) -> None:
        self.window = window
        self._notices: list[Notice] = []
        self._since: float | None = None

    def add(self, notice: Notice, now: float) -> None:
        if self._since is None:
            self._since = now
        self._notices.append(notice)

    def delay(self, now: float) -> float | None:
        if self._since is None:
            return None
        return max(0.0, self._since + self.window - now)

    def flush(self, now: float) -> list[Message]:
        d = self.delay(now)
        if d is None or d > 0:
            return []
        notices, self._notices, self._since = self._notices, [], None
        return summarize(notices)


class Notifier(Protocol):
    def send(self, title: str, body: str) -> None: ...


class Notifications:
    """The notification thread: ``feed`` from any thread, messages leave from here."""

    def __init__(self, notifier: Notifier, *, enabled: Callable[[], bool] = lambda: True,
                 window: float = BURST_WINDOW, clock: Callable[[], float] = time.monotonic) -> None:
        self._notifier = notifier
        self._enabled = enabled
        self._clock = clock
        self._tracker = TransitionTracker()
        self._buffer = BurstBuffer(window)
        self._direct: list[Message] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="tender-notify", daemon=True)
        self._thread.start()

    def feed(self, s: labels.SessionLike) -> None:
        with self._cond:
            notice = self._tracker.feed(s)
            if notice is not None:
                self._buffer.add(notice, self._clock())
                self._cond.notify()

    def forget_except(self, session_ids: set[str]) -> None:
        with self._cond:
            self._tracker.forget_except(session_ids)

    def send(self, title: str, body: str, *, always: bool = False) -> None:
        """A message of its own (an action failed, a context vanished); ``always``: even if turned off."""
        if always or self._enabled():
            with self._cond:
                self._direct.append(Message(title, body))
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._direct:
                    delay = self._buffer.delay(self._clock())
                    if delay == 0:
                        break
                    self._cond.wait(delay)
                if self._closed:
                    return
                out, self._direct = self._direct, []
                burst = self._buffer.flush(self._clock())
            if self._enabled():
                out += burst
            for m in out:
                try:
                    self._notifier.send(m.title, m.body)
                except Exception:
                    log.exception("notification failed")


class PlyerNotifier:
    """Desktop notifications through plyer; no service → log once and carry on."""

    def __init__(self, icon_path: str = "") -> None:
        self.icon_path = icon_path
        self._warned = False

    def send(self, title: str, body: str) -> None:
        if sys.platform.startswith("linux") and not _linux_service_available():
            self._warn_once("no notification service on the session bus")
            return
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # plyer warns about dbus-python on every import
                from plyer import notification

                notification.notify(title=title, message=body, app_name=APP_NAME, app_icon=self.icon_path,
                                    timeout=8)
        except Exception as exc:  # NotImplementedError when plyer has no backend, D-Bus errors…
            self._warn_once(f"{type(exc).__name__}: {exc}")

    def _warn_once(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("notifications are unavailable (%s); Tender keeps running without them", why)


def _linux_service_available() -> bool:
    """Whether org.freedesktop.Notifications has an owner or can be started on the session bus."""
    try:
        from gi.repository import Gio, GLib
    except ImportError:
        return True  # cannot tell: let plyer try
    try:
        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        name = "org.freedesktop.Notifications"
        for method, wanted in (("NameHasOwner", True), ("ListActivatableNames", None)):
            args = GLib.Variant("(s)", (name,)) if method == "NameHasOwner" else None
            reply = bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                  method, args, None, Gio.DBusCallFlags.NONE, 2000, None).unpack()[0]
            if (reply is True) if wanted else (name in reply):
                return True
        return False
    except Exception:
        return False
