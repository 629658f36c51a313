"""The Linux tray icon over D-Bus: a StatusNotifierItem with a ``com.canonical.dbusmenu`` menu.

What KDE Plasma, GNOME's AppIndicator extension, xfce4-panel, Cinnamon,
waybar... host, served by us on dbus-fast (pure Python on asyncio, no
PyGObject, no compiler): the item at ``/StatusNotifierItem`` under the name
``org.kde.StatusNotifierItem-<pid>-1``, its menu at ``/MenuBar``.

* The icon is given as pixels (``IconPixmap``: ARGB32 in network byte order
  at 22, 32, 48 and 64 px from :func:`tray.ui.icon.render`), no files, no
  icon theme.  ``Status`` is ``NeedsAttention`` while a forward is in error.
* ``ItemIsMenu`` is true: a left click opens the menu where the host allows.
* The menu is :mod:`tray.ui.dbusmenu`'s layout of the controller's model;
  each change is told with ``ItemsPropertiesUpdated`` (labels, check marks)
  or ``LayoutUpdated`` (items added or removed) -- never a timer, nothing
  is sent when nothing visible changed.  ``AboutToShow`` (and the
  ``opened`` event) on any item calls :attr:`SniView.on_menu_shown`: the
  controller rebuilds the menu then, so counters that raise no event are
  current when looked at (the update follows as a signal).
* The item registers with ``org.kde.StatusNotifierWatcher`` and registers
  again whenever a watcher appears on the bus (the panel restarted).

Threads: one asyncio loop, on the thread that calls :meth:`SniView.run`
(the main thread), serves the bus; :meth:`SniView.show` and
:meth:`SniView.stop` may be called from any thread and hand over to it.

This module defines dbus-fast ``ServiceInterface`` classes, whose string
annotations are D-Bus signatures: it must not use ``from __future__ import
annotations``.
"""

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from dbus_fast import DBusError, Message, MessageType, NameFlag, PropertyAccess, RequestNameReply, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_property
from dbus_fast.service import method as dbus_method  # the names every dbus-fast version has
from dbus_fast.service import signal as dbus_signal

from tray.ui import bus as dbus
from tray.ui import dbusmenu, system
from tray.ui.icon import IconState, render
from tray.ui.model import Action, Item, note, root

log = logging.getLogger(__name__)

WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"
ITEM_INTERFACE = "org.kde.StatusNotifierItem"
ITEM_PATH = "/StatusNotifierItem"
MENU_INTERFACE = "com.canonical.dbusmenu"
MENU_PATH = "/MenuBar"
ICON_SIZES = (22, 32, 48, 64)
ITEM_ID = "tender"
TITLE = "Tender"
UNKNOWN_ID_ERROR = "com.canonical.dbusmenu.Error.UnknownId"
#: Seconds :meth:`SniView.run`'s ``before_close`` may take before the bus connection closes anyway.
BEFORE_CLOSE_TIMEOUT = 3.0

Pixmaps = list[list[Any]]  # a(iiay): [[width, height, ARGB32 big-endian bytes], ...]


def item_name(pid: int | None = None) -> str:
    """The well-known bus name the item owns: ``org.kde.StatusNotifierItem-<pid>-1``."""
    return f"{ITEM_INTERFACE}-{os.getpid() if pid is None else pid}-1"


def argb32(image: Any) -> bytes:
    """A Pillow RGBA image's pixels as StatusNotifierItem wants them: A, R, G, B bytes per pixel, row by row."""
    r, g, b, a = image.convert("RGBA").split()
    from PIL import Image

    return Image.merge("RGBA", (a, r, g, b)).tobytes()


@lru_cache(maxsize=32)
def pixmaps(state: IconState, count: int) -> tuple[tuple[int, int, bytes], ...]:
    """The icon at every size of :data:`ICON_SIZES`, as (width, height, ARGB32 bytes)."""
    return tuple((size, size, argb32(render(state, count, size))) for size in ICON_SIZES)


def split_tooltip(tooltip: str) -> tuple[str, str]:
    """(title, description) of a tooltip such as ``"Tender — 2 active"``; no " — ": ("Tender", tooltip)."""
    title, sep, rest = tooltip.partition(" — ")
    return (title, rest) if sep else (TITLE, tooltip)


def _variant(name: str, value: Any) -> Variant:
    return Variant(dbusmenu.PROPERTY_SIGNATURES.get(name, "s"), value)


def _props(props: dict[str, Any]) -> dict[str, Variant]:
    return {k: _variant(k, v) for k, v in props.items()}


def _layout_value(node: dbusmenu.LayoutNode) -> list[Any]:
    item_id, props, children = node
    return [item_id, _props(props), [Variant("(ia{sv}av)", _layout_value(c)) for c in children]]


def _unknown(exc: dbusmenu.UnknownItem) -> DBusError:
    return DBusError(UNKNOWN_ID_ERROR, str(exc))


class StatusNotifierItem(ServiceInterface):
    """``org.kde.StatusNotifierItem``: what the panel draws (state kept here, set by :class:`SniView`)."""

    def __init__(self) -> None:
        super().__init__(ITEM_INTERFACE)
        self.status = "Active"
        self.icon: Pixmaps = []
        self.tooltip = (TITLE, "")

    @dbus_property(access=PropertyAccess.READ)
    def Category(self) -> "s":
        return "ApplicationStatus"

    @dbus_property(access=PropertyAccess.READ)
    def Id(self) -> "s":
        return ITEM_ID

    @dbus_property(access=PropertyAccess.READ)
    def Title(self) -> "s":
        return TITLE

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":
        return self.status

    @dbus_property(access=PropertyAccess.READ)
    def WindowId(self) -> "i":
        return 0

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def IconName(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def IconPixmap(self) -> "a(iiay)":
        return self.icon

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconName(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def OverlayIconPixmap(self) -> "a(iiay)":
        return []

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconName(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def AttentionIconPixmap(self) -> "a(iiay)":
        return self.icon  # the icon already shows the error; hosts that swap icons keep it

    @dbus_property(access=PropertyAccess.READ)
    def AttentionMovieName(self) -> "s":
        return ""

    @dbus_property(access=PropertyAccess.READ)
    def ToolTip(self) -> "(sa(iiay)ss)":
        return ["", [], self.tooltip[0], self.tooltip[1]]

    @dbus_property(access=PropertyAccess.READ)
    def ItemIsMenu(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def Menu(self) -> "o":
        return MENU_PATH

    @dbus_method()
    def ContextMenu(self, x: "i", y: "i") -> None:
        pass  # the host shows the menu itself (from Menu)

    @dbus_method()
    def Activate(self, x: "i", y: "i") -> None:
        pass  # ItemIsMenu: hosts that still send it also open the menu

    @dbus_method()
    def SecondaryActivate(self, x: "i", y: "i") -> None:
        pass

    @dbus_method()
    def Scroll(self, delta: "i", orientation: "s") -> None:
        pass

    @dbus_signal()
    def NewTitle(self) -> None:
        pass

    @dbus_signal()
    def NewIcon(self) -> None:
        pass

    @dbus_signal()
    def NewAttentionIcon(self) -> None:
        pass

    @dbus_signal()
    def NewToolTip(self) -> None:
        pass

    @dbus_signal()
    def NewStatus(self, status: str) -> "s":
        return status


class DbusMenu(ServiceInterface):
    """``com.canonical.dbusmenu`` version 3 over a :class:`tray.ui.dbusmenu.Layout`.

    ``on_click(action)`` is called on the loop thread for an ``Event``
    ``clicked`` on an enabled item that has an action; ``on_show()`` (if
    given) for ``AboutToShow``, ``AboutToShowGroup`` and an ``opened`` event
    on a known item.  Both must return quickly.
    """

    def __init__(self, layout: dbusmenu.Layout, on_click: Callable[[Action], None],
                 on_show: Callable[[], None] | None = None) -> None:
        super().__init__(MENU_INTERFACE)
        self.layout = layout
        self.revision = 1
        self.on_click = on_click
        self.on_show = on_show

    def replace(self, layout: dbusmenu.Layout) -> dbusmenu.Changes:
        """Serve ``layout`` from now on and tell the clients what changed; returns the changes."""
        changes = dbusmenu.diff(self.layout, layout)
        self.layout = layout
        if changes.properties or changes.removed:
            self.ItemsPropertiesUpdated([[i, _props(p)] for i, p in changes.properties],
                                        [[i, list(names)] for i, names in changes.removed])
        if changes.layout_parent is not None:
            self.revision += 1
            self.LayoutUpdated(self.revision, changes.layout_parent)
        return changes

    @dbus_property(access=PropertyAccess.READ)
    def Version(self) -> "u":
        return 3

    @dbus_property(access=PropertyAccess.READ)
    def TextDirection(self) -> "s":
        return "ltr"

    @dbus_property(access=PropertyAccess.READ)
    def Status(self) -> "s":
        return "normal"

    @dbus_property(access=PropertyAccess.READ)
    def IconThemePath(self) -> "as":
        return []

    @dbus_method()
    def GetLayout(self, parent_id: "i", recursion_depth: "i", property_names: "as") -> "u(ia{sv}av)":
        try:
            node = self.layout.get_layout(parent_id, recursion_depth, property_names)
        except dbusmenu.UnknownItem as exc:
            raise _unknown(exc) from None
        return [self.revision, _layout_value(node)]

    @dbus_method()
    def GetGroupProperties(self, ids: "ai", property_names: "as") -> "a(ia{sv})":
        return [[i, _props(p)] for i, p in self.layout.group_properties(ids, property_names)]

    @dbus_method()
    def GetProperty(self, id: "i", name: "s") -> "v":
        try:
            return _variant(name, self.layout.property(id, name))
        except dbusmenu.UnknownItem as exc:
            raise _unknown(exc) from None
        except KeyError:
            raise DBusError("com.canonical.dbusmenu.Error.UnknownProperty",
                            f"item {id} has no property {name}") from None

    @dbus_method()
    def Event(self, id: "i", event_id: "s", data: "v", timestamp: "u") -> None:
        try:
            self._event(id, event_id)
        except dbusmenu.UnknownItem as exc:
            raise _unknown(exc) from None

    @dbus_method()
    def EventGroup(self, events: "a(isvu)") -> "ai":
        errors = []
        for item_id, event_id, _data, _timestamp in events:
            try:
                self._event(item_id, event_id)
            except dbusmenu.UnknownItem:
                errors.append(item_id)
        if events and len(errors) == len(events):
            raise DBusError(UNKNOWN_ID_ERROR, f"ids {errors} do not refer to menu items")
        return errors

    @dbus_method()
    def AboutToShow(self, id: "i") -> "b":
        if id not in self.layout:
            raise _unknown(dbusmenu.UnknownItem(id))
        self._shown()
        return False  # the structure is current; fresher labels follow as ItemsPropertiesUpdated

    @dbus_method()
    def AboutToShowGroup(self, ids: "ai") -> "aiai":
        if any(i in self.layout for i in ids):
            self._shown()
        return [[], [i for i in ids if i not in self.layout]]

    @dbus_signal()
    def ItemsPropertiesUpdated(self, updated: list[Any], removed: list[Any]) -> "a(ia{sv})a(ias)":
        return [updated, removed]

    @dbus_signal()
    def LayoutUpdated(self, revision: int, parent: int) -> "ui":
        return [revision, parent]

    @dbus_signal()
    def ItemActivationRequested(self, id: int, timestamp: int) -> "iu":
        return [id, timestamp]

    def _event(self, item_id: int, event_id: str) -> None:
        action = self.layout.click(item_id)  # raises UnknownItem
        if event_id == "opened":
            self._shown()
        if event_id == "clicked" and action is not None:
            log.debug("menu click on %d: %s", item_id, action.kind)
            self.on_click(action)

    def _shown(self) -> None:
        if self.on_show is not None:
            try:
                self.on_show()
            except Exception:
                log.exception("the menu's AboutToShow hook failed")


class SniView:
    """The controller's view on a StatusNotifier host (see the module doc).

    ``SniView(dispatch)`` connects to the session bus at once, blocking up to
    ``timeout`` seconds, and raises :class:`tray.ui.bus.BusUnavailable` if it
    cannot; :attr:`bus` and :attr:`loop` are then ready for other services on
    the same connection (a notifier), which run once :meth:`run` runs the
    loop.  ``dispatch(action)`` is called on the loop thread for each click
    and must return quickly.
    """

    def __init__(self, dispatch: Callable[[Action], None], *, address: str | None = None,
                 timeout: float = dbus.DEFAULT_TIMEOUT) -> None:
        self.dispatch = dispatch
        self.timeout = timeout
        self.name = item_name()
        self.loop = asyncio.new_event_loop()
        self._menu_model: Item = root([note("Starting…")])
        self._icon_key: tuple[IconState, int] = (IconState.IDLE, 0)
        self._pending: tuple[Item, IconState, int, str] | None = None
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.registrations = 0  # how many times the watcher accepted us (tests, logs)
        #: Called (on the loop thread; it must return at once) when the host is about to show the menu.
        self.on_menu_shown: Callable[[], None] | None = None
        self.item = StatusNotifierItem()
        self.item.icon = _pixmap_value(*self._icon_key)
        self.menu = DbusMenu(dbusmenu.build(self._menu_model), self._click, self._menu_shown)
        self._stopped: asyncio.Future[None] = self.loop.create_future()
        try:
            self.bus: MessageBus = self.loop.run_until_complete(dbus.connect(address, timeout))
        except BaseException:
            self.loop.close()
            raise

    # ------------------------------------------------------------ the View protocol
    def show(self, menu: Item, state: IconState, count: int, tooltip: str) -> None:
        """Show this menu, icon and tooltip (any thread; returns at once, applied on the loop).

        Of several calls before the loop gets to them, only the last is applied.
        """
        with self._lock:
            scheduled = self._pending is not None
            self._pending = (menu, state, count, tooltip)
        if not scheduled and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._apply)
            except RuntimeError:  # the loop closed meanwhile: nothing to show on
                pass

    def copy_text(self, text: str) -> None:
        """Put ``text`` on the clipboard with xclip/xsel/wl-copy; raises OSError if none is there."""
        system.copy_with_command(text)

    def stop(self) -> None:
        """End :meth:`run` (any thread; returns at once)."""
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self._stop)
        except RuntimeError:
            pass

    def run(self, setup: Callable[[], None], before_close: Callable[[], None] | None = None) -> None:
        """Register the item, call ``setup`` on a new thread, serve the bus until :meth:`stop`.

        Blocks the calling thread (the main thread) until :meth:`stop`, SIGTERM
        or SIGINT (when run on the main thread), or until the bus connection
        closes.  Then, unless the connection is gone, ``before_close()`` runs
        on a new thread while the loop still serves the bus (the controller's
        ``close``: its notifications close their cards over this connection,
        whichever way the stop came), for at most :data:`BEFORE_CLOSE_TIMEOUT`
        seconds; then the connection closes.  Raises
        :class:`tray.ui.bus.BusUnavailable` if the item cannot be registered
        at the start (no watcher, a bus that does not answer within
        ``timeout``); nothing is left open then.
        """
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):  # log out, Ctrl-C: a clean stop, forwards closed
                self.loop.add_signal_handler(signum, self._stop)
        try:
            self.loop.run_until_complete(self._start())
            threading.Thread(target=self._setup, args=(setup,), name="tender-setup", daemon=True).start()
            self.loop.run_until_complete(self._serve())
            if before_close is not None and self.bus.connected:
                self.loop.run_until_complete(self._before_close(before_close))
        finally:
            self._close()

    # ------------------------------------------------------------ loop side
    async def _start(self) -> None:
        try:
            await self._start_unguarded()
        except asyncio.TimeoutError:
            raise dbus.BusUnavailable(f"the session bus did not answer within {self.timeout:g} s") from None
        except (DBusError, OSError, EOFError) as exc:
            if isinstance(exc, EOFError) or not self.bus.connected:
                raise dbus.BusClosed(f"the session bus connection closed ({type(exc).__name__}) while the tray icon "
                                     "registered") from None
            raise dbus.BusUnavailable(f"cannot put the tray icon on the session bus: {exc}") from None

    async def _start_unguarded(self) -> None:
        self.bus.export(ITEM_PATH, self.item)
        self.bus.export(MENU_PATH, self.menu)
        reply = await asyncio.wait_for(self.bus.request_name(self.name, NameFlag.DO_NOT_QUEUE), self.timeout)
        if reply not in (RequestNameReply.PRIMARY_OWNER, RequestNameReply.ALREADY_OWNER):
            raise dbus.BusUnavailable(f"the bus name {self.name} is taken")
        self.bus.add_message_handler(self._on_message)
        await dbus.add_match(self.bus, "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                       f"member='NameOwnerChanged',arg0='{WATCHER}'", self.timeout)
        await self._register()

    async def _serve(self) -> None:
        # shielded: cancelling a wait on dbus-fast's disconnect future would cancel that future itself
        closed = asyncio.ensure_future(asyncio.shield(self.bus.wait_for_disconnect()))
        done, _ = await asyncio.wait({self._stopped, closed}, return_when=asyncio.FIRST_COMPLETED)
        if closed in done:
            reason = None if closed.cancelled() else closed.exception()  # retrieved, else asyncio logs it
            log.warning("the session bus connection closed (%s); the tray icon is gone",
                        type(reason).__name__ if reason else "closed")
        else:
            closed.cancel()

    async def _before_close(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on a thread of its own while this loop serves the bus; give up after the timeout."""
        done: asyncio.Future[None] = self.loop.create_future()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def work() -> None:
            try:
                fn()
            except Exception:
                log.exception("closing the tray failed")
            finally:
                try:
                    self.loop.call_soon_threadsafe(finished)
                except RuntimeError:  # the loop closed: given up already
                    pass

        threading.Thread(target=work, name="tender-close", daemon=True).start()
        try:
            await asyncio.wait_for(done, BEFORE_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("closing the tray took more than %g s; closing the bus connection anyway",
                        BEFORE_CLOSE_TIMEOUT)

    async def _register(self) -> None:
        await dbus.call(self.bus, WATCHER, WATCHER_PATH, WATCHER, "RegisterStatusNotifierItem", "s", (self.name,),
                        timeout=self.timeout)
        self.registrations += 1
        log.info("tray icon registered with the StatusNotifierWatcher as %s", self.name)

    async def _register_again(self) -> None:
        try:
            await self._register()
        except dbus.BusUnavailable as exc:
            log.warning("could not register the tray icon with the new StatusNotifierWatcher: %s", exc)

    def _on_message(self, msg: Message) -> None:
        if (msg.message_type == MessageType.SIGNAL and msg.member == "NameOwnerChanged"
                and msg.interface == "org.freedesktop.DBus" and len(msg.body) == 3
                and msg.body[0] == WATCHER and msg.body[2]):
            log.info("a StatusNotifierWatcher appeared on the bus: registering the tray icon again")
            task = self.loop.create_task(self._register_again())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return None

    def _setup(self, setup: Callable[[], None]) -> None:
        try:
            setup()
        except Exception:  # keep the icon up: the menu shows what did load
            log.exception("tray setup failed")

    def _stop(self) -> None:
        if not self._stopped.done():
            self._stopped.set_result(None)

    def _menu_shown(self) -> None:
        if self.on_menu_shown is not None:
            self.on_menu_shown()

    def _click(self, action: Action) -> None:
        try:
            self.dispatch(action)
        except Exception:
            log.exception("menu action %s failed", action.kind)

    def _apply(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is None or not self.bus.connected:
            return  # a bus that went away is reported once, by _serve
        try:
            self._update(*pending)
        except OSError as exc:
            if self.bus.connected:
                log.warning("could not update the tray icon: %s", exc)
            # else the connection closed during the update; _serve reports that once
        except Exception:  # a bug: keep serving what was shown before
            log.exception("could not update the tray icon")

    def _update(self, menu: Item, state: IconState, count: int, tooltip: str) -> None:
        if menu != self._menu_model:
            self.menu.replace(dbusmenu.build(menu, self.menu.layout))
            self._menu_model = menu
        if (state, count) != self._icon_key:
            self.item.icon = _pixmap_value(state, count)
            self._icon_key = (state, count)
            self.item.NewIcon()
            self.item.NewAttentionIcon()
        status = "NeedsAttention" if state is IconState.ERROR else "Active"
        if status != self.item.status:
            self.item.status = status
            self.item.NewStatus(status)
        tip = split_tooltip(tooltip)
        if tip != self.item.tooltip:
            self.item.tooltip = tip
            self.item.NewToolTip()

    def _close(self) -> None:
        loop = self.loop
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        try:
            if self.bus.connected:
                self.bus.disconnect()
                loop.run_until_complete(asyncio.wait_for(self.bus.wait_for_disconnect(), 1.0))
        except (Exception, asyncio.CancelledError):  # closing anyway
            pass
        for task in asyncio.all_tasks(loop):
            task.cancel()
        try:
            loop.run_until_complete(asyncio.sleep(0))
        except (Exception, asyncio.CancelledError):
            pass
        loop.close()


def _pixmap_value(state: IconState, count: int) -> Pixmaps:
    return [[w, h, data] for w, h, data in pixmaps(state, count)]
