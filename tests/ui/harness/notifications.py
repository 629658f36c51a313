"""What the user was shown: every notification call on a test bus, seen by a bus monitor.

:class:`NotificationMonitor` connects to the bus, calls
``org.freedesktop.DBus.Monitoring.BecomeMonitor`` with match rules for the
``org.freedesktop.Notifications`` interface, and from then on receives a copy
of every matching message between any two peers without taking part (a
monitor never sends).  It records, in order:

* ``Notify`` calls (:class:`Notified`: app_name, replaces_id, app_icon,
  summary, body, actions as ``{key: label}``, hints unwrapped, expire_timeout,
  the sender's unique name) and the id the server answered (``id``, 0 until
  the reply is seen; it stays 0 if the call failed, e.g. no service);
* ``CloseNotification(id)`` calls (:attr:`closed_by_app`);
* the server's ``ActionInvoked(id, key)`` and ``NotificationClosed(id,
  reason)`` signals (:attr:`actions`, :attr:`closed`).

It never activates a notification service.  Every call to the interface
(``GetCapabilities``, ``GetServerInformation`` too) is kept in :attr:`calls`
with the error it got, if any: on a bus with no service, or one that crashes
on activation, the app's first call (often ``GetCapabilities``) fails with
``org.freedesktop.DBus.Error.ServiceUnknown`` or ``...Spawn.ChildExited``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from tests.ui.harness.bus import DBUS, connect, run

IFACE = "org.freedesktop.Notifications"
T = TypeVar("T")


@dataclass
class Notified:
    """One ``Notify`` call as the notification server received it."""

    app_name: str
    replaces_id: int
    app_icon: str
    summary: str
    body: str
    actions: dict[str, str]  # action key -> button label, in the app's order
    hints: dict[str, Any]
    expire_timeout: int
    sender: str
    serial: int
    id: int = 0  # the server's answer; 0 while unanswered or after an error
    error: str = ""  # the D-Bus error name if the call failed (no service, crashed service)

    def __getitem__(self, key: str) -> Any:  # old tests read notifications as dicts
        return getattr(self, key)

    @property
    def urgency(self) -> int | None:
        """0 low, 1 normal, 2 critical, or None if the hint is absent."""
        return self.hints.get("urgency")


@dataclass
class Call:
    """One method call to ``org.freedesktop.Notifications`` and how it ended."""

    member: str
    sender: str
    serial: int
    answered: bool = False
    error: str = ""  # the D-Bus error name, "" if it succeeded or is unanswered


@dataclass
class _Log:
    calls: list[Call] = field(default_factory=list)
    notified: list[Notified] = field(default_factory=list)
    closed_by_app: list[int] = field(default_factory=list)
    actions: list[tuple[int, str]] = field(default_factory=list)
    closed: list[tuple[int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Variant) else value


class NotificationMonitor:
    """Records notification traffic on the bus at ``address`` from :meth:`start` on.

    All reads are snapshots (lists copied under a lock); :meth:`wait_for`
    polls until a predicate holds.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._log = _Log()
        self._lock = threading.Lock()
        self._bus: MessageBus | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 10.0) -> "NotificationMonitor":
        """Connect and become a monitor; blocks up to ``timeout`` s (raises on failure)."""
        run(self._start(), timeout)
        return self

    async def _start(self) -> None:
        bus = await connect(self.address)
        rules = [f"type='method_call',interface='{IFACE}'", f"type='signal',interface='{IFACE}'",
                 "type='method_return'", "type='error'"]
        reply = await bus.call(Message(destination=DBUS[0], path=DBUS[1], interface="org.freedesktop.DBus.Monitoring",
                                       member="BecomeMonitor", signature="asu", body=[rules, 0]))
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"BecomeMonitor failed: {reply.error_name} {reply.body}")
        bus.add_message_handler(self._on_message)
        self._bus = bus

    def stop(self) -> None:
        """Disconnect (never raises)."""
        if self._bus is not None:
            from tests.ui.harness.bus import loop

            loop().call_soon_threadsafe(self._bus.disconnect)
            self._bus = None

    def clear(self) -> None:
        """Forget everything recorded so far."""
        with self._lock:
            self._log = _Log()

    # ------------------------------------------------------------ recording
    def _on_message(self, msg: Message) -> bool:
        try:
            self._record(msg)
        except Exception as exc:  # noqa: BLE001 -- a malformed call is the app's bug: record it
            with self._lock:
                self._log.errors.append(f"monitor could not read {msg.member}: {exc!r}")
        return True  # handled: a monitor must never answer

    def _record(self, msg: Message) -> None:
        log = self._log
        with self._lock:
            if msg.message_type == MessageType.METHOD_CALL and msg.interface == IFACE:
                log.calls.append(Call(msg.member, msg.sender or "", msg.serial))
                if msg.member == "Notify":
                    app, replaces, icon, summary, body, actions, hints, expire = msg.body
                    log.notified.append(Notified(
                        app_name=app, replaces_id=replaces, app_icon=icon, summary=summary, body=body,
                        actions=dict(zip(actions[::2], actions[1::2])),
                        hints={k: _unwrap(v) for k, v in hints.items()}, expire_timeout=expire,
                        sender=msg.sender or "", serial=msg.serial))
                elif msg.member == "CloseNotification":
                    log.closed_by_app.append(msg.body[0])
            elif msg.message_type == MessageType.SIGNAL and msg.interface == IFACE:
                if msg.member == "ActionInvoked":
                    log.actions.append((msg.body[0], msg.body[1]))
                elif msg.member == "NotificationClosed":
                    log.closed.append((msg.body[0], msg.body[1]))
            elif msg.message_type in (MessageType.METHOD_RETURN, MessageType.ERROR):
                for c in reversed(log.calls):
                    if c.serial == msg.reply_serial and c.sender == msg.destination and not c.answered:
                        c.answered = True
                        if msg.message_type == MessageType.ERROR:
                            c.error = msg.error_name or "error"
                        break
                for n in reversed(log.notified):
                    if n.serial == msg.reply_serial and n.sender == msg.destination and not (n.id or n.error):
                        if msg.message_type == MessageType.ERROR:
                            n.error = msg.error_name or "error"
                            log.errors.append(f"Notify {n.summary!r}: {n.error} {msg.body[0] if msg.body else ''}")
                        elif msg.signature == "u":
                            n.id = msg.body[0]
                        break

    # ------------------------------------------------------------ reading
    @property
    def notified(self) -> list[Notified]:
        """Every Notify call so far, oldest first."""
        with self._lock:
            return list(self._log.notified)

    @property
    def calls(self) -> list[Call]:
        """Every call to the Notifications interface so far (any method), oldest first."""
        with self._lock:
            return list(self._log.calls)

    @property
    def failed_calls(self) -> list[Call]:
        """The calls that got an error reply."""
        return [c for c in self.calls if c.error]

    @property
    def closed_by_app(self) -> list[int]:
        """Ids the app closed (CloseNotification), in order."""
        with self._lock:
            return list(self._log.closed_by_app)

    @property
    def actions(self) -> list[tuple[int, str]]:
        """ActionInvoked signals: (notification id, action key), in order."""
        with self._lock:
            return list(self._log.actions)

    @property
    def closed(self) -> list[tuple[int, int]]:
        """NotificationClosed signals: (id, reason 1 expired / 2 dismissed / 3 closed by call / 4 other)."""
        with self._lock:
            return list(self._log.closed)

    @property
    def errors(self) -> list[str]:
        """Notify calls that failed (one line each: summary, D-Bus error name, message)."""
        with self._lock:
            return list(self._log.errors)

    def about(self, text: str) -> list[Notified]:
        """Notify calls whose summary or body contains ``text``."""
        return [n for n in self.notified if text in f"{n.summary} {n.body}"]

    def wait_for(self, what: Callable[["NotificationMonitor"], T], timeout: float = 20.0,
                 message: str = "a notification") -> T:
        """Poll ``what(self)`` every 0.1 s until truthy; return it.

        Raises AssertionError naming ``message`` and listing what was seen after ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = what(self)
            if result:
                return result
            if time.monotonic() > deadline:
                seen = "\n".join(f"  {n.summary!r} {n.body!r} actions={n.actions} id={n.id} replaces={n.replaces_id}"
                                 for n in self.notified) or "  (none)"
                raise AssertionError(f"no {message} after {timeout}s; notifications seen:\n{seen}")
            time.sleep(0.1)
