"""Notifications: what a person must act on or know about their forwards.

The policy (what is worth a pop-up), plain data and an injected clock:

* an **error** (a forward that fails, at start or after its retries): a
  critical notification with the actions Retry and Stop;
* a **reconnect that lasts** more than :data:`RECONNECT_NOTIFY_AFTER`
  seconds: a normal notification with Stop;
* the **recovery** after either of those: a low-urgency notification that
  replaces it, with Open when the forward speaks HTTP (the menu's rule,
  :func:`tray.ui.labels.session_is_http`);
* everything else is a log line (``logger.info``): a pod switch that failed
  no connection (``active`` on another pod, or a reconnect shorter than the
  threshold), a start;
* a forward stopped or removed closes its notification, if still shown; so
  does the user's Retry (``error`` → ``starting``): the card is stale;
* a **profile that could not start** (no kubeconfig, an unknown context, a
  local port taken): a critical notification naming the profile, the cause
  first in its body, with Retry and Edit profiles; one per profile
  (:func:`profile_key`), replaced by the next failure and closed when the
  profile starts or stops (:meth:`Notifications.profile_failed`,
  :meth:`Notifications.profile_ok`).

One notification per forward, keyed by its session id and replaced as its
state changes, not a pile.  A burst still becomes one summary
(:class:`BurstBuffer`, :func:`summarize`): 50 forwards of one cluster failing
at once is one notification keyed ``cluster:NAME``, with no per-forward
actions.

The parts, each testable on its own:

* :class:`TransitionTracker` turns session snapshots (and the clock, for
  the reconnect threshold) into :class:`Notice` objects;
* :class:`BurstBuffer` / :func:`summarize` turn a window's notices into
  :class:`Message` objects (title, body, key, urgency, actions) and the keys
  of notifications to close;
* :class:`Notifications` runs both on a thread of its own and hands the
  result to a :class:`Notifier`: :class:`tray.ui.dbusnotify.DbusNotifier` on
  Linux (actions, replacement, urgency), :class:`PlyerNotifier` on macOS and
  Windows, or a fake in tests.

**Why plyer stays on macOS and Windows**: there is no
org.freedesktop.Notifications there, and plyer is the one maintained pure
Python library that reaches both platforms' notification centres without a
compiler (pyobjc / winrt wheels are per platform and per Python version, and
pull in far more).  It has no actions and no replacement, so there the
notifications only inform (title and body); the menu stays the place to act.
On Linux plyer is not used: :mod:`tray.ui.dbusnotify` speaks the protocol
itself over dbus-fast, without PyGObject.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Protocol, runtime_checkable

from tray.domain.status import Status
from tray.errors import UsageError
from tray.ui import labels
from tray.ui.model import Action, ActionKind

log = logging.getLogger(__name__)

BURST_WINDOW = 1.0
#: A forward ``reconnecting`` for longer than this many seconds is notified (with Stop); a shorter
#: reconnect (a pod switch, a dropped tunnel re-dialled) is only logged.
RECONNECT_NOTIFY_AFTER = 5.0
#: More messages than this from one window become one overall summary.
MAX_MESSAGES = 3
APP_NAME = "Tender"
#: The key of the one overall summary ("10 forwards changed").
SUMMARY_KEY = "summary"


def cluster_key(cluster: str) -> str:
    """The key of one cluster's summary notification: ``cluster:NAME``."""
    return f"cluster:{cluster}"


def profile_key(name: str) -> str:
    """The key of one profile's "could not start" notification: ``profile:NAME``."""
    return f"profile:{name}"


class Urgency(IntEnum):
    """The freedesktop notification urgency levels (the hint ``urgency`` is this byte)."""

    LOW = 0
    NORMAL = 1
    CRITICAL = 2


class NoticeKind(StrEnum):
    """What a notice reports about one forward (a ``str``, as its value)."""

    RECONNECTING = "reconnecting"
    """It has been ``reconnecting`` for longer than :data:`RECONNECT_NOTIFY_AFTER`."""
    ERROR = "error"
    """It went to ``error``."""
    RECOVERED = "recovered"
    """It is ``active`` again after a notified outage."""
    CLEARED = "cleared"
    """Its notification (if shown) is stale: the forward stopped, was removed or retried."""


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    session_id: str
    cluster: str
    title: str  # "svc/web 8080 → 80"
    where: str  # "tender-a/shop"
    detail: str  # the reason, or the pod reached again ("pod db-0", "relay pod tender-relay-x7k2q")
    url: str = ""  # the forward's browser URL when it speaks HTTP (for "Open"), else ""


@dataclass(frozen=True)
class Message:
    """One notification as the notifier shows it.

    ``key``: the forward's session id, :func:`cluster_key`,
    :func:`profile_key`, :data:`SUMMARY_KEY` or ``message:TITLE``
    (:meth:`Notifications.send`);
    a message with a key replaces the one shown under that key, one without
    is a card of its own.  ``actions``: (label,
    action) pairs, in the order the buttons are shown.  ``category``: a
    freedesktop notification category (``network.error``…) or ``""``.
    """

    title: str
    body: str
    key: str | None = None
    urgency: Urgency = Urgency.NORMAL
    actions: tuple[tuple[str, Action], ...] = ()
    category: str = ""


@dataclass(frozen=True)
class Flush:
    """What one window of notices comes to: keys to close first, then messages to show."""

    close: tuple[str, ...] = ()
    messages: tuple[Message, ...] = ()


def cause_first(error: BaseException | str, name: str = "") -> str:
    """One line saying why, the cause first (a notification body cut at its end loses the least).

    ``error``: the exception, or its text.  A :class:`tray.errors.UsageError`
    gives its message, then where in parentheses (``(FILE:LINE)``), instead of
    ``str()``'s location first; a leading ``profile NAME:`` is dropped when
    ``name`` is that profile (the summary names it already).  Not shortened.
    """
    if isinstance(error, UsageError):
        where = ":".join(str(p) for p in (error.source, error.line) if p is not None and p != "")
        text = f"{error.message} ({where})" if where else error.message
    else:
        text = str(error) or type(error).__name__
    text = " ".join(text.split())
    prefix = f"profile {name}: "
    if name and text.startswith(prefix):
        text = text[len(prefix):]
    return text


def profile_failure_message(name: str, error: BaseException | str) -> Message:
    """The notification of profile ``name`` that could not start because of ``error``.

    Summary "Profile NAME could not start", body :func:`cause_first` (at most
    200 characters), key :func:`profile_key`, critical, with the actions Retry
    (``PROFILE_START``, ``(name,)``) and Edit profiles (``EDIT_PROFILES``).
    """
    return Message(f"Profile {name} could not start", labels.shorten(cause_first(error, name), 200),
                   key=profile_key(name), urgency=Urgency.CRITICAL,
                   actions=(("Retry", Action(ActionKind.PROFILE_START, (name,))),
                            ("Edit profiles", Action(ActionKind.EDIT_PROFILES))))


@dataclass
class _Track:
    status: str
    pod: str
    since: float  # when it entered ``status`` (clock seconds)
    notified: bool = False  # an outage notice (error / long reconnect) went out and is not over yet
    card: bool = False  # a notice went out under its key since the last CLEARED (it may still be shown)
    due: float | None = None  # when the current reconnect becomes worth a notice
    session: labels.SessionLike | None = field(default=None, repr=False)  # the latest snapshot


def _notice(kind: NoticeKind, s: labels.SessionLike, detail: str) -> Notice:
    url = labels.browser_url(s) if kind == NoticeKind.RECOVERED and s.local_port and labels.session_is_http(s) else ""
    return Notice(kind, str(s.id), s.cluster_id, labels.session_title(s), labels.where_text(s), detail, url)


class TransitionTracker:
    """Remembers each forward's status; turns its snapshots into the notices worth a notification.

    ``feed`` and ``due`` take the clock (seconds, any monotonic origin) from
    the caller, so the reconnect threshold is testable without sleeping.
    Not thread-safe: :class:`Notifications` calls it under its lock.
    """

    def __init__(self, reconnect_after: float = RECONNECT_NOTIFY_AFTER) -> None:
        self.reconnect_after = reconnect_after
        self._tracks: dict[str, _Track] = {}

    def feed(self, s: labels.SessionLike, now: float) -> Notice | None:
        """The notice for this snapshot at clock time ``now``, if any (a reconnect's comes later: :meth:`due`)."""
        sid = str(s.id)
        t = self._tracks.get(sid)
        if s.status == Status.STOPPED:
            self._tracks.pop(sid, None)
            return _notice(NoticeKind.CLEARED, s, "stopped") if t is not None and t.card else None
        if t is None:
            t = self._tracks[sid] = _Track("", s.pod_name, now)
        before, pod_before, since = t.status, t.pod, t.since
        t.session, t.pod = s, s.pod_name
        if s.status == before:
            if s.status == Status.ACTIVE and pod_before and s.pod_name and s.pod_name != pod_before:
                kind = "relay pod" if getattr(s, "relay_pod", "") else "pod"
                log.info("%s (%s): moved from %s %s to %s; no connection failed",
                         labels.session_title(s), labels.where_text(s), kind, pod_before, labels.pod_text(s))
            return None
        t.status, t.since = s.status, now
        if s.status == Status.RECONNECTING:
            # A notified error going back to reconnecting is the same outage: its card stays.
            t.due = None if t.notified else now + self.reconnect_after
            log.info("%s (%s): reconnecting: %s", labels.session_title(s), labels.where_text(s),
                     s.status_reason or "no reason given")
            return None
        t.due = None
        if s.status == Status.ERROR:
            t.notified = t.card = True
            return _notice(NoticeKind.ERROR, s, s.status_reason or "failed")
        if s.status == Status.ACTIVE and before in (Status.RECONNECTING, Status.ERROR):  # on its own from error too
            if t.notified:
                t.notified = False
                return _notice(NoticeKind.RECOVERED, s, labels.pod_text(s) or "its target")
            log.info("%s (%s): reconnected to %s after %.1f s; no notification (shorter than %g s)",
                     labels.session_title(s), labels.where_text(s), labels.pod_text(s) or "its target",
                     now - since, self.reconnect_after)
            return None
        if s.status == Status.STARTING and t.card:  # the user's Retry: the error card is stale
            t.notified = t.card = False
            return _notice(NoticeKind.CLEARED, s, "retried")
        return None

    def due(self, now: float) -> list[Notice]:
        """The reconnects that have lasted past the threshold by ``now`` (each once)."""
        out: list[Notice] = []
        for t in self._tracks.values():
            if t.due is not None and t.due <= now and t.session is not None:
                t.due, t.notified, t.card = None, True, True
                s = t.session
                out.append(_notice(NoticeKind.RECONNECTING, s, s.status_reason or "reconnecting"))
        return out

    def next_due(self) -> float | None:
        """The clock time of the next :meth:`due` notice, or ``None`` if none is pending."""
        return min((t.due for t in self._tracks.values() if t.due is not None), default=None)

    def forget_except(self, session_ids: Iterable[str]) -> list[Notice]:
        """Forget the forwards not listed (stopped, removed); the CLEARED notices of those notified."""
        keep = {str(i) for i in session_ids}
        out: list[Notice] = []
        for sid in [sid for sid in self._tracks if sid not in keep]:
            t = self._tracks.pop(sid)
            if t.card and t.session is not None:
                out.append(_notice(NoticeKind.CLEARED, t.session, "removed"))
        return out


_VERB = {NoticeKind.RECONNECTING: "reconnecting", NoticeKind.ERROR: "failed", NoticeKind.RECOVERED: "reconnected"}
_URGENCY = {NoticeKind.RECONNECTING: Urgency.NORMAL, NoticeKind.ERROR: Urgency.CRITICAL,
            NoticeKind.RECOVERED: Urgency.LOW}
_CATEGORY = {NoticeKind.RECONNECTING: "network.disconnected", NoticeKind.ERROR: "network.error",
             NoticeKind.RECOVERED: "network.connected"}


def _single(n: Notice) -> Message:
    stop = ("Stop", Action(ActionKind.STOP, (n.session_id,)))
    common = dict(key=n.session_id, urgency=_URGENCY[n.kind], category=_CATEGORY[n.kind])
    if n.kind == NoticeKind.RECONNECTING:
        return Message(f"Reconnecting: {n.title}", f"{n.where}: {labels.shorten(n.detail, 160)}",
                       actions=(stop,), **common)
    if n.kind == NoticeKind.ERROR:
        return Message(f"Forward failed: {n.title}", f"{n.where}: {labels.shorten(n.detail, 160)}",
                       actions=(("Retry", Action(ActionKind.RETRY, (n.session_id,))), stop), **common)
    return Message(f"Reconnected: {n.title}", f"{n.where}: reconnected to {n.detail}",
                   actions=(("Open", Action(ActionKind.OPEN_URL, (n.url,))),) if n.url else (), **common)


def _group(kind: NoticeKind, cluster: str, notices: list[Notice]) -> Message:
    names = ", ".join(n.title for n in notices[:3])
    more = f" and {len(notices) - 3} more" if len(notices) > 3 else ""
    reasons = {n.detail for n in notices}
    why = f"\n{labels.shorten(next(iter(reasons)), 160)}" if kind != NoticeKind.RECOVERED and len(reasons) == 1 else ""
    return Message(f"{len(notices)} forwards in {cluster} {_VERB[kind]}", f"{names}{more}{why}",
                   key=cluster_key(cluster), urgency=_URGENCY[kind], category=_CATEGORY[kind])


def summarize(notices: list[Notice]) -> Flush:
    """What one window's notices come to (the last notice of each forward counts).

    One forward's notice is a message keyed by its session id, with its
    actions; several of one kind in one cluster are one message keyed
    :func:`cluster_key` without actions (their own notifications are
    closed); more than :data:`MAX_MESSAGES` messages become one keyed
    :data:`SUMMARY_KEY`.  A CLEARED notice closes its forward's notification.
    """
    last: dict[str, Notice] = {}
    for n in notices:
        last.pop(n.session_id, None)  # re-insert: order by the latest change
        last[n.session_id] = n
    close = [sid for sid, n in last.items() if n.kind == NoticeKind.CLEARED]
    groups: dict[tuple[str, str], list[Notice]] = {}
    for n in last.values():
        if n.kind != NoticeKind.CLEARED:
            groups.setdefault((n.kind, n.cluster), []).append(n)
    messages: list[Message] = []
    for (kind, cluster), g in groups.items():
        if len(g) == 1:
            messages.append(_single(g[0]))
        else:
            messages.append(_group(NoticeKind(kind), cluster, g))
            close += [n.session_id for n in g]  # their own cards are now told by the summary
    if len(messages) > MAX_MESSAGES:
        parts = [f"{len(g)} {_VERB[NoticeKind(kind)]} in {cluster}" for (kind, cluster), g in groups.items()]
        close += [sid for sid in last if sid not in close]  # every forward's own card: told by the summary
        count = sum(len(g) for g in groups.values())
        messages = [Message(f"{count} forwards changed", ", ".join(parts), key=SUMMARY_KEY,
                            urgency=max(m.urgency for m in messages), category="network")]
    return Flush(tuple(close), tuple(messages))


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
        """Seconds until :meth:`flush` has something (0: now); ``None`` when empty."""
        if self._since is None:
            return None
        return max(0.0, self._since + self.window - now)

    def flush(self, now: float) -> Flush:
        d = self.delay(now)
        if d is None or d > 0:
            return Flush()
        notices, self._notices, self._since = self._notices, [], None
        return summarize(notices)


@runtime_checkable
class Notifier(Protocol):
    """Shows and closes notifications; both calls return quickly and never raise for the desktop's sake."""

    def show(self, message: Message) -> None:
        """Show ``message``, replacing the one shown under ``message.key`` if any."""

    def withdraw(self, key: str) -> None:
        """Close the notification shown under ``key``; nothing if there is none."""

    # Optional: ``close()``, called by :meth:`Notifications.close` (withdraw what is still shown, let go).


class PlainNotifier(Protocol):
    """A notifier that only shows a title and a body (the tests' fake)."""

    def send(self, title: str, body: str) -> None: ...


class _TitleAndBody:
    """A :class:`PlainNotifier` as a :class:`Notifier`: no keys, no actions, nothing to close."""

    def __init__(self, plain: PlainNotifier) -> None:
        self._plain = plain

    def show(self, message: Message) -> None:
        self._plain.send(message.title, message.body)

    def withdraw(self, key: str) -> None:
        pass


class Notifications:
    """The notification thread: ``feed`` from any thread, messages leave from here.

    ``notifier``: a :class:`Notifier`, or a :class:`PlainNotifier` (it then
    gets titles and bodies only).  ``enabled`` is asked before each message
    about forwards (the menu's Notifications check item); ``window`` is the
    burst window and ``reconnect_after`` the reconnect threshold, in seconds;
    ``clock`` returns seconds.  Every public method returns at once except
    :meth:`close` (joins the thread, at most 5 s).
    """

    def __init__(self, notifier: Notifier | PlainNotifier, *, enabled: Callable[[], bool] = lambda: True,
                 window: float = BURST_WINDOW, reconnect_after: float = RECONNECT_NOTIFY_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._notifier: Notifier = notifier if isinstance(notifier, Notifier) else _TitleAndBody(notifier)
        self._enabled = enabled
        self._clock = clock
        self._tracker = TransitionTracker(reconnect_after)
        self._buffer = BurstBuffer(window)
        self._direct: list[Message | str] = []  # in order: a Message to show, or the key of one to close
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="tender-notify", daemon=True)
        self._thread.start()

    @property
    def reconnect_after(self) -> float:
        """The reconnect threshold in seconds (settable, e.g. by tests)."""
        return self._tracker.reconnect_after

    @reconnect_after.setter
    def reconnect_after(self, seconds: float) -> None:
        with self._cond:
            self._tracker.reconnect_after = seconds

    def feed(self, s: labels.SessionLike) -> None:
        """A forward's new snapshot (a ``StatusEvent``'s session)."""
        with self._cond:
            now = self._clock()
            notice = self._tracker.feed(s, now)
            if notice is not None:
                self._buffer.add(notice, now)
            self._cond.notify()  # a reconnect may have set a new deadline

    def forget_except(self, session_ids: Iterable[str]) -> None:
        """The forwards that still exist (a ``ListEvent``); the others' notifications are closed."""
        with self._cond:
            now = self._clock()
            for notice in self._tracker.forget_except(session_ids):
                self._buffer.add(notice, now)
            self._cond.notify()

    def send(self, title: str, body: str, *, always: bool = False) -> None:
        """A message of its own (an action failed, a context vanished); ``always``: even if turned off.

        Keyed by its title (``message:TITLE``): the same message again replaces the first.
        """
        if always or self._enabled():
            with self._cond:
                self._direct.append(Message(title, body, key=f"message:{title}"))
                self._cond.notify()

    def profile_failed(self, name: str, error: BaseException | str) -> None:
        """Profile ``name`` could not start because of ``error`` (the exception, or its text).

        Shown even when notifications are turned off (the user asked for the
        start, or marked it autostart): :func:`profile_failure_message`, under
        :func:`profile_key`, so a failed Retry replaces the card instead of
        adding one.
        """
        with self._cond:
            self._direct.append(profile_failure_message(name, error))
            self._cond.notify()

    def profile_ok(self, name: str) -> None:
        """Profile ``name`` started or was stopped: its "could not start" card, if shown, is closed."""
        with self._cond:
            self._direct.append(profile_key(name))
            self._cond.notify()

    def close(self) -> None:
        """Stop the thread (what is still buffered is dropped), then the notifier's ``close()`` if it has one.

        Blocks up to 5 s for the thread, plus what the notifier's ``close`` takes (DbusNotifier: about 1 s).
        """
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(5)
        close = getattr(self._notifier, "close", None)
        if callable(close):
            self._call(close)

    def _wait(self) -> float | None:
        """Seconds until the next thing to do (0: now; None: nothing pending).  Under the lock."""
        now = self._clock()
        waits = [d for d in (self._buffer.delay(now),) if d is not None]
        due = self._tracker.next_due()
        if due is not None:
            waits.append(max(0.0, due - now))
        return min(waits, default=None)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._direct:
                    delay = self._wait()
                    if delay == 0:
                        break
                    self._cond.wait(delay)
                if self._closed:
                    return
                out, self._direct = self._direct, []
                now = self._clock()
                for notice in self._tracker.due(now):
                    self._buffer.add(notice, now)
                burst = self._buffer.flush(now)
            for key in burst.close:  # closing is never turned off: a stale card is worse than none
                self._call(self._notifier.withdraw, key)
            for m in [*out, *burst.messages] if self._enabled() else out:
                if isinstance(m, str):
                    self._call(self._notifier.withdraw, m)
                else:
                    self._call(self._notifier.show, m)

    @staticmethod
    def _call(fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("notification failed")


class PlyerNotifier:
    """Desktop notifications through plyer (macOS, Windows): title and body only.

    plyer has no actions, no replacement and no way to close a notification,
    so ``withdraw`` does nothing and the menu stays the place to act.  No
    backend or a failing one: one warning in the log, then silence.
    """

    def __init__(self, icon_path: str = "") -> None:
        self.icon_path = icon_path
        self._warned = False

    def show(self, message: Message) -> None:
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # plyer warns about dbus-python on every import
                from plyer import notification

                notification.notify(title=message.title, message=message.body, app_name=APP_NAME,
                                    app_icon=self.icon_path, timeout=8)
        except Exception as exc:  # NotImplementedError when plyer has no backend, platform errors…
            self._warn_once(f"{type(exc).__name__}: {exc}")

    def withdraw(self, key: str) -> None:
        pass

    def _warn_once(self, why: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("notifications are unavailable (%s); Tender keeps running without them", why)
