"""Is there a tray to live in, and which view serves it?

Checked before any view is built (pystray picks its backend, and its X
backend needs a display, at import time).  Linux desktops offer one of two
protocols:

* StatusNotifierItem over D-Bus (KDE Plasma, GNOME with the AppIndicator
  extension, XFCE, Cinnamon, waybar, ...): our own item on dbus-fast
  (:mod:`tray.ui.sni`), backend ``"sni"``; it needs no PyGObject.
* The XEmbed system tray of X11 alone (trayer, stalonetray, old panels):
  pystray's ``gtk`` backend, which needs PyGObject with GTK 3.  pystray's
  ``xorg`` backend has no menus, so it is never chosen: the user is told
  what to install instead.

macOS and Windows always have a tray: pystray's own backend (``""``).

Nothing here imports ``gi`` unless no StatusNotifier host was found and an
XEmbed tray was.  Finding the host takes at most :data:`PROBE_TIMEOUT`
seconds (a session bus that hangs included).

``PYSTRAY_BACKEND`` forces a choice (tests, troubleshooting): ``sni`` or
``appindicator`` (our StatusNotifierItem), ``gtk``, ``dummy`` (no display
needed); ``xorg`` is refused (no menus).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from tray.ui.bus import BusUnavailable

HINT = "use `tender run` for saved profiles or `tender forward` for one forward"

SNI = "sni"
#: The longest a host check waits for the session bus and the StatusNotifierWatcher, seconds.
PROBE_TIMEOUT = 1.5

WATCHER = "org.kde.StatusNotifierWatcher"
WATCHER_PATH = "/StatusNotifierWatcher"

NEEDS_PYGOBJECT = ("this desktop has only an XEmbed tray, whose menus need PyGObject: install it "
                   "(pipx inject kube-tender PyGObject) or use a desktop with a StatusNotifier host")
GNOME_EXTENSION = ("GNOME shows tray icons only with the extension \"AppIndicator and KStatusNotifierItem Support\" "
                   "(appindicatorsupport@rgcjonas.gmail.com): install or enable it, then start tender again")
NO_HOST = "no tray host (no StatusNotifier host on the session bus, no XEmbed tray on the display)"


@dataclass(frozen=True)
class HostCheck:
    """The outcome of a host check.

    ``backend``: ``"sni"`` (our StatusNotifierItem), a pystray backend name
    (``"gtk"``, ``"dummy"``; ``""`` = pystray's own choice), or None: no tray
    here, ``reason`` says why in one line.
    """

    backend: str | None
    reason: str = ""


def check_host(env: Mapping[str, str] | None = None, platform: str = sys.platform,
               timeout: float = PROBE_TIMEOUT) -> HostCheck:
    """Which tray serves this session (see the module doc).  Blocks up to ``timeout`` s (the bus probe)."""
    env = os.environ if env is None else env
    if platform in ("darwin", "win32"):
        return HostCheck(env.get("PYSTRAY_BACKEND", ""))
    forced = env.get("PYSTRAY_BACKEND", "")
    if forced == "dummy":
        return HostCheck(forced)
    display, wayland = env.get("DISPLAY"), env.get("WAYLAND_DISPLAY")
    if not display and not wayland:
        return HostCheck(None, "no display (DISPLAY and WAYLAND_DISPLAY are not set)")
    if forced == "xorg":
        return HostCheck(None, "pystray's xorg backend has no menus; " + NEEDS_PYGOBJECT.split(": ", 1)[1])
    try:
        sni, bus_problem = status_notifier_host(env, timeout), ""
    except BusUnavailable as exc:
        sni, bus_problem = False, str(exc)
    if forced in (SNI, "appindicator"):
        if sni:
            return HostCheck(SNI)
        return HostCheck(None, bus_problem or f"no StatusNotifier host for PYSTRAY_BACKEND={forced}")
    if sni and not forced:
        return HostCheck(SNI)
    xembed = bool(display) and xembed_tray(display or "")
    if forced == "gtk":
        if not xembed:
            return HostCheck(None, "no XEmbed tray for PYSTRAY_BACKEND=gtk")
        return HostCheck("gtk") if has_gtk3() else HostCheck(None, NEEDS_PYGOBJECT)
    if forced:
        return HostCheck(None, f"unknown PYSTRAY_BACKEND={forced} (sni, gtk or dummy)")
    if xembed:
        if has_gtk3():
            return HostCheck("gtk")
        if bus_problem:  # the cause to fix first: a StatusNotifier host may well be there
            return HostCheck(None, f"{bus_problem}; the XEmbed tray here would need PyGObject for menus "
                                   "(pipx inject kube-tender PyGObject)")
        return HostCheck(None, NEEDS_PYGOBJECT)
    if bus_problem:
        return HostCheck(None, bus_problem)
    if "GNOME" in env.get("XDG_CURRENT_DESKTOP", "").upper().split(":"):
        return HostCheck(None, GNOME_EXTENSION)
    return HostCheck(None, NO_HOST)


def wait_for_host(seconds: float, env: Mapping[str, str] | None = None) -> HostCheck:
    """Check again for up to ``seconds``: at login the panel may start after us."""
    deadline = time.monotonic() + seconds
    while True:
        result = check_host(env)
        if result.backend is not None or time.monotonic() >= deadline:
            return result
        time.sleep(1.0)


def status_notifier_host(env: Mapping[str, str] | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a StatusNotifierWatcher with a host is on the session bus.

    Connects to the session bus of ``env`` (:func:`tray.ui.bus.session_bus_address`)
    and asks the watcher without activating one; blocks up to ``timeout``
    seconds in all.  Raises :class:`tray.ui.bus.BusUnavailable` when there is
    no bus, or the bus or the watcher does not answer in time.
    """
    from tray.ui import bus

    address = bus.session_bus_address(env)

    async def probe() -> bool:
        conn = await bus.connect(address, timeout)
        try:
            return bool(await bus.get_property(conn, WATCHER, WATCHER_PATH, WATCHER, "IsStatusNotifierHostRegistered",
                                               timeout=timeout, auto_start=False))
        except BusUnavailable as exc:
            if exc.error_name:  # no watcher (ServiceUnknown), or one without that property
                return False
            raise
        finally:
            conn.disconnect()

    async def bounded() -> bool:
        try:
            return await asyncio.wait_for(probe(), timeout)
        except asyncio.TimeoutError:
            raise BusUnavailable(f"the session bus did not answer within {timeout:g} s ({address})") from None

    return asyncio.run(bounded())


def xembed_tray(display: str) -> bool:
    """Whether some program owns the XEmbed system tray selection of the default screen."""
    try:
        from Xlib import X
        from Xlib import display as xdisplay
    except ImportError:
        return False
    try:
        d = xdisplay.Display(display)
    except Exception:
        return False
    try:
        screen = d.get_default_screen()
        owner = d.get_selection_owner(d.intern_atom(f"_NET_SYSTEM_TRAY_S{screen}"))
        return getattr(owner, "id", owner) not in (X.NONE, None)
    finally:
        d.close()


def has_gtk3() -> bool:
    """Whether PyGObject is installed with GTK 3's typelib (what pystray's gtk backend needs)."""
    try:
        import gi

        gi.require_version("Gtk", "3.0")
        return True
    except (ImportError, ValueError):
        return False
