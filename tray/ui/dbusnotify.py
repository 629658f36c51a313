"""Notifications on Linux: ``org.freedesktop.Notifications`` over dbus-fast, with actions.

:class:`DbusNotifier` is the :class:`tray.ui.notify.Notifier` for Linux
desktops (the Desktop Notifications Specification 1.2).  It speaks to the
notification server on the tray's own session bus connection (dbus-fast,
pure Python, no PyGObject):

* ``Notify`` with app name "Tender", the app icon (its name, and the logo
  itself as the ``image-data`` hint: shown even when ``tender
  install-desktop`` never put the icon in the theme), urgency (``urgency``
  byte hint), ``desktop-entry`` "tender" and a ``category`` hint, and the
  message's actions as the flat ``[key, label, ...]`` list; a message with a
  key replaces the notification shown under that key (``replaces_id``), so
  each forward has one card;
* ``CloseNotification`` for :meth:`DbusNotifier.withdraw`;
* ``GetCapabilities`` once per server: without ``actions`` no buttons are
  sent and the body says where to act instead; without ``body`` only the
  summary; with ``body-markup`` the body is escaped;
* ``ActionInvoked`` and ``NotificationClosed`` through a match rule, kept
  only for the ids this notifier got back (``ActionInvoked`` is broadcast
  to every client), each action key mapped back to its
  :class:`tray.ui.model.Action` and handed to ``on_action``.

It never takes the tray down.  No notification service
(``ServiceUnknown``), one that crashes on activation
(``Spawn.ChildExited``), one that hangs (every call has
:data:`CALL_TIMEOUT` seconds), a bus connection gone: one warning in the
log, no traceback, and the messages of the next :data:`RETRY_AFTER`
seconds are dropped; then it tries again, so a server started later is
used.

:func:`linux_notifier` gives the tray its notifier: on the view's own
connection when it has one (the StatusNotifierItem view), else on a
connection and event loop thread of its own (pystray's XEmbed view), else,
with no session bus at all, one that only logs that it cannot notify.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from dbus_fast import Message as DbusMessage
from dbus_fast import MessageType, Variant
from dbus_fast.aio import MessageBus

from tray.ui import bus as dbus
from tray.ui.model import Action, ActionKind
from tray.ui.notify import APP_NAME, Message, Urgency

log = logging.getLogger(__name__)

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
IFACE = "org.freedesktop.Notifications"
#: Seconds one call to the notification server (or the bus) may take before it is given up.
CALL_TIMEOUT = 3.0
#: Seconds the first call to a server may take: it may start the server (D-Bus activation of a
#: GTK daemon on a busy machine can take seconds).  The bus's own limit is 25 s by default.
ACTIVATION_TIMEOUT = 10.0
#: Seconds after a failure during which messages are dropped without asking the bus again.
RETRY_AFTER = 60.0
#: The icon name (the launcher's ``Icon=``, installed by ``tender install-desktop``).
APP_ICON = "tender"
DESKTOP_ENTRY = "tender"
#: expire_timeout by urgency, milliseconds (-1: the server's default; 0: until the user acts).
EXPIRE_MS = {Urgency.LOW: 8000, Urgency.NORMAL: -1, Urgency.CRITICAL: 0}
#: What a body says when the server shows no buttons.
NO_ACTIONS_HINT = "Use the Tender menu to {verbs}."
#: How many notifications' actions are remembered (an action can arrive after its card closed).
REMEMBERED = 256

#: The logo's size in the ``image-data`` hint, pixels.
IMAGE_SIZE = 48

_MATCH_RULES = tuple(f"type='signal',interface='{IFACE}',path='{PATH}',member='{member}'"
                     for member in ("ActionInvoked", "NotificationClosed"))


class _Unavailable(Exception):
    """A call to the server or the bus failed; ``str`` is one line for the log."""


class DbusNotifier:
    """Notifications with actions on the session bus; usable from any thread.

    ``bus``: a connected dbus-fast :class:`MessageBus` served by ``loop``
    (the tray's connection; it is not closed here).  ``on_action(action)``
    is called on ``loop``'s thread when the user clicks a button of one of
    our notifications; it must return quickly (``Controller.dispatch``
    does).  ``app_icon``: an icon name or an absolute path.

    :meth:`show` and :meth:`withdraw` schedule the work on ``loop`` and
    return at once; the calls run there one after another, each given up
    after ``timeout`` seconds (the first to a server, which may start it,
    after ``activation_timeout``).  Nothing here raises for the desktop's sake.
    ``owns_connection``: :meth:`close` also disconnects ``bus`` and stops
    ``loop`` (they were made for this notifier alone).
    """

    def __init__(self, bus: MessageBus, loop: asyncio.AbstractEventLoop, on_action: Callable[[Action], None],
                 app_icon: str = APP_ICON, *, timeout: float = CALL_TIMEOUT, retry_after: float = RETRY_AFTER,
                 activation_timeout: float = ACTIVATION_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic, owns_connection: bool = False) -> None:
        self._bus = bus
        self._loop = loop
        self._on_action = on_action
        self.app_icon = app_icon
        self._timeout = timeout
        self._activation_timeout = activation_timeout
        self._retry_after = retry_after
        self._clock = clock
        # Only touched on the loop's thread:
        self._lock: asyncio.Lock | None = None
        self._caps: frozenset[str] | None = None  # the server's capabilities, once asked
        self._server = ""  # the unique bus name that answered Notify (signals must come from it)
        self._ids: dict[str, int] = {}  # message key -> the id of the notification shown under it
        self._actions: OrderedDict[int, dict[str, Action]] = OrderedDict()  # our ids -> action key -> Action
        self._subscribed = False
        self._down_until: float | None = None
        self._warned = False
        self._handler_added = False
        self._closed = False
        self._owns_connection = owns_connection

    # ------------------------------------------------------------ any thread
    def show(self, message: Message) -> None:
        """Show ``message`` (replacing the card under its key); returns at once."""
        self._submit(self._show(message))

    def withdraw(self, key: str) -> None:
        """Close the card shown under ``key``, if any; returns at once."""
        self._submit(self._withdraw(key))

    def close(self, timeout: float = 1.0) -> None:
        """Close the cards still shown (their buttons would reach nobody) and stop listening.

        Blocks until done, at most ``timeout`` seconds (returns at once on
        ``loop``'s own thread, or when the loop is not running).  The bus
        stays open unless this notifier owns it (``owns_connection``).  Later
        :meth:`show` calls do nothing.
        """
        future = self._submit(self._close())
        self._closed = True
        if future is None or not self._loop.is_running() or _on_loop(self._loop):
            return
        try:
            future.result(timeout)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            pass

    def flush(self, timeout: float = 10.0) -> None:
        """Block until what was scheduled before this call has run; ``TimeoutError`` after ``timeout`` s.

        For tests and for a caller that must know a message left (not from ``loop``'s thread).
        """
        asyncio.run_coroutine_threadsafe(self._serialized(self._noop()), self._loop).result(timeout)

    def _submit(self, coro: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None] | None:
        wrapped = self._serialized(coro)
        try:
            return asyncio.run_coroutine_threadsafe(wrapped, self._loop)
        except RuntimeError:  # the loop is closed: the tray is going away
            wrapped.close()
            coro.close()
            return None

    # ------------------------------------------------------------ the loop's thread
    async def _noop(self) -> None:
        pass

    async def _serialized(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            try:
                await coro
            except Exception:  # a bug here must not end the loop's other work
                log.exception("notification failed")

    def _available(self) -> bool:
        if self._closed:
            return False
        if self._down_until is None:
            return True
        if self._clock() < self._down_until:
            return False
        self._down_until = None  # time to try again
        return True

    def _failed(self, why: str) -> None:
        """The server or the bus did not serve us: say so once, drop messages for a while."""
        self._down_until = self._clock() + self._retry_after
        self._caps = None  # another server may answer next time
        self._ids.clear()
        if not self._warned:
            self._warned = True
            log.warning("notifications are unavailable (%s); Tender keeps running without them "
                        "and tries again in %g s", why, self._retry_after)
        else:
            log.debug("notifications still unavailable: %s", why)

    async def _call(self, member: str, signature: str = "", body: Sequence[Any] = (), *,
                    destination: str = NAME, path: str = PATH, interface: str = IFACE,
                    timeout: float | None = None) -> DbusMessage:
        msg = DbusMessage(destination=destination, path=path, interface=interface, member=member,
                          signature=signature, body=list(body))
        timeout = self._timeout if timeout is None else timeout
        try:
            reply = await asyncio.wait_for(self._bus.call(msg), timeout)
        except asyncio.TimeoutError:
            raise _Unavailable(f"{destination} did not answer {member}: timed out after {timeout:g} s") from None
        except Exception as exc:  # the connection closed under us, or could not send
            raise _Unavailable(f"{member}: {' '.join(str(exc).split()) or type(exc).__name__}") from None
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise _Unavailable(f"{reply.error_name}: {' '.join(text.split())}" if text else str(reply.error_name))
        return reply

    async def _ready(self) -> bool:
        """Signals subscribed and capabilities known; False (after logging) if the server cannot be had."""
        if not self._available():
            return False
        try:
            if not self._handler_added:
                self._bus.add_message_handler(self._on_message)
                self._handler_added = True
            if not self._subscribed:
                for rule in _MATCH_RULES:
                    await self._call("AddMatch", "s", (rule,), destination="org.freedesktop.DBus",
                                     path="/org/freedesktop/DBus", interface="org.freedesktop.DBus")
                self._subscribed = True
            if self._caps is None:
                # The first call to a server: it may be started by it (D-Bus activation).
                reply = await self._call("GetCapabilities", timeout=max(self._timeout, self._activation_timeout))
                self._caps = frozenset(reply.body[0])
                self._server = reply.sender or ""
                if self._warned:
                    self._warned = False  # a new outage is worth its own warning
                    log.info("notifications work again")
                log.debug("notification server %s: capabilities %s", self._server, sorted(self._caps))
        except _Unavailable as exc:
            self._failed(str(exc))
            return False
        return True

    async def _show(self, message: Message) -> None:
        if not await self._ready():
            return
        caps = self._caps or frozenset()
        use_actions = "actions" in caps
        body = message.body
        needed = [label for label, action in message.actions if action.kind is not ActionKind.OPEN_URL]
        if needed and not use_actions:  # say where to act instead (opening a URL is no call to act)
            verbs = " or ".join(label.lower() for label in needed)
            body = f"{body}\n{NO_ACTIONS_HINT.format(verbs=verbs)}" if body else NO_ACTIONS_HINT.format(verbs=verbs)
        if "body" not in caps:
            body = ""
        elif "body-markup" in caps:
            body = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        keyed: dict[str, Action] = {}
        flat: list[str] = []
        if use_actions:
            for label, action in message.actions:
                key = action.kind.value if action.kind.value not in keyed else f"{action.kind.value}-{len(keyed)}"
                keyed[key] = action
                flat += [key, label]
        hints = {"urgency": Variant("y", int(message.urgency)), "desktop-entry": Variant("s", DESKTOP_ENTRY),
                 "image-data": _image_data()}
        if message.category:
            hints["category"] = Variant("s", message.category)
        replaces = self._ids.get(message.key, 0) if message.key else 0
        try:
            reply = await self._call("Notify", "susssasa{sv}i", (
                APP_NAME, replaces, self.app_icon, message.title, body, flat, hints,
                EXPIRE_MS.get(message.urgency, -1)))
        except _Unavailable as exc:
            self._failed(str(exc))
            return
        nid = int(reply.body[0])
        self._server = reply.sender or self._server
        if message.key:
            self._ids[message.key] = nid
        self._actions.pop(nid, None)
        self._actions[nid] = keyed
        while len(self._actions) > REMEMBERED:
            self._actions.popitem(last=False)

    async def _withdraw(self, key: str) -> None:
        nid = self._ids.pop(key, None)
        if nid is None or not self._available():
            return
        try:
            await self._call("CloseNotification", "u", (nid,))
        except _Unavailable as exc:
            self._failed(str(exc))

    async def _close(self) -> None:
        shown, self._ids = list(self._ids.values()), {}
        if shown and self._caps is not None:  # the server answered, and has not failed since
            try:
                for nid in shown:
                    await self._call("CloseNotification", "u", (nid,))
            except _Unavailable:
                pass  # going away anyway
        self._closed = True
        if self._handler_added:
            self._bus.remove_message_handler(self._on_message)
            self._handler_added = False
        if self._owns_connection:
            self._bus.disconnect()
            self._loop.call_soon(self._loop.stop)

    def _on_message(self, msg: DbusMessage) -> None:
        """Every message on the connection: keep the server's signals about our own notifications."""
        if (msg.message_type != MessageType.SIGNAL or msg.interface != IFACE or msg.path != PATH
                or (self._server and msg.sender != self._server)):
            return None
        if msg.member == "ActionInvoked" and msg.signature == "us":
            nid, key = msg.body
            action = self._actions.get(nid, {}).get(key)
            if action is None:
                return None  # another client's notification, or a key we did not send ("default")
            log.info("notification action: %s", action.kind.value)
            try:
                self._on_action(action)
            except Exception:
                log.exception("notification action %s failed", key)
        elif msg.member == "NotificationClosed" and msg.signature == "uu":
            nid = msg.body[0]
            if nid in self._actions:  # ours; its actions stay known (ActionInvoked may come after)
                for key in [k for k, v in self._ids.items() if v == nid]:
                    del self._ids[key]
        return None  # never "handled": the tray's other handlers see the signal too


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class SilentNotifier:
    """The notifier when there is no session bus: shows nothing (the log said why, once)."""

    def show(self, message: Message) -> None:
        pass

    def withdraw(self, key: str) -> None:
        pass

    def close(self) -> None:
        pass


def linux_notifier(on_action: Callable[[Action], None], bus: MessageBus | None = None,
                   loop: asyncio.AbstractEventLoop | None = None, *, address: str | None = None,
                   timeout: float = dbus.DEFAULT_TIMEOUT) -> DbusNotifier | SilentNotifier:
    """The tray's notifier on Linux; ``on_action`` as for :class:`DbusNotifier`.

    With ``bus`` and ``loop`` (a view's connection and the loop serving it):
    a :class:`DbusNotifier` on them, at once.  Without: a new connection to
    ``address`` (default: the session bus) served by a new daemon thread,
    which blocks for up to ``timeout`` seconds; if that fails (no bus, one
    that does not answer), one warning and a :class:`SilentNotifier`.
    Never raises for the bus's sake.
    """
    if bus is not None and loop is not None:
        return DbusNotifier(bus, loop, on_action)
    own = asyncio.new_event_loop()

    def serve() -> None:
        own.run_forever()
        own.close()

    thread = threading.Thread(target=serve, name="tender-notify-bus", daemon=True)
    thread.start()
    try:
        connected = asyncio.run_coroutine_threadsafe(dbus.connect(address, timeout), own).result(timeout + 1)
    except (dbus.BusUnavailable, concurrent.futures.TimeoutError) as exc:
        own.call_soon_threadsafe(own.stop)
        thread.join(1)
        why = str(exc) if isinstance(exc, dbus.BusUnavailable) else f"no session bus within {timeout:g} s"
        log.warning("notifications are unavailable (%s); Tender keeps running without them", why)
        return SilentNotifier()
    return DbusNotifier(connected, own, on_action, owns_connection=True)


@functools.lru_cache(maxsize=1)
def _image_data() -> Variant:
    """The logo as the spec's ``image-data`` hint: (width, height, rowstride, has alpha, 8 bits, 4 channels, RGBA)."""
    from tray.ui.icon import app_icon

    image = app_icon(IMAGE_SIZE).convert("RGBA")
    w, h = image.size
    return Variant("(iiibiiay)", [w, h, w * 4, True, 8, 4, image.tobytes()])
