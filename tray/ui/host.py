"""Is there a tray to live in?  Which pystray backend serves it?

Checked before pystray is imported (pystray's X backend raises at import
time without a display).  Linux desktops offer one of two protocols:

* StatusNotifierItem over D-Bus (KDE, GNOME's AppIndicator extension,
  waybar, …): pystray's ``appindicator`` backend (AyatanaAppIndicator3).
* The XEmbed system tray on X11 (trayer, stalonetray, xfce4-panel, …):
  pystray's ``gtk`` backend (GtkStatusIcon), else ``xorg``.

macOS and Windows always have one.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

HINT = "use `tender run` for saved profiles or `tender forward` for one forward"


@dataclass(frozen=True)
class HostCheck:
    backend: str | None  # the pystray backend to use ("" = pystray's own choice); None: no tray
    reason: str = ""


def check_host(env: Mapping[str, str] | None = None, platform: str = sys.platform) -> HostCheck:
    env = os.environ if env is None else env
    if platform in ("darwin", "win32"):
        return HostCheck(env.get("PYSTRAY_BACKEND", ""))
    forced = env.get("PYSTRAY_BACKEND", "")
    if forced == "dummy":
        return HostCheck(forced)
    display, wayland = env.get("DISPLAY"), env.get("WAYLAND_DISPLAY")
    if not display and not wayland:
        return HostCheck(None, "no display (DISPLAY and WAYLAND_DISPLAY are not set)")
    sni = status_notifier_host()
    xembed = bool(display) and xembed_tray(display or "")
    if forced:
        if (forced == "appindicator" and sni is False) or (forced in ("gtk", "xorg") and not xembed):
            return HostCheck(None, f"no tray for PYSTRAY_BACKEND={forced}")
        return HostCheck(forced)
    if sni and _has_typelib("AyatanaAppIndicator3") or sni and _has_typelib("AppIndicator3"):
        return HostCheck("appindicator")
    if xembed:
        return HostCheck("gtk" if _has_typelib("Gtk", "3.0") else "xorg")
    if sni:
        return HostCheck(None, "the tray needs AyatanaAppIndicator3 (Debian: gir1.2-ayatanaappindicator3-0.1)")
    return HostCheck(None, "no tray host (no StatusNotifier host on the session bus, no XEmbed tray on the display)")


def wait_for_host(seconds: float, env: Mapping[str, str] | None = None) -> HostCheck:
    """Check again for up to ``seconds``: at login the panel may start after us."""
    deadline = time.monotonic() + seconds
    while True:
        result = check_host(env)
        if result.backend is not None or time.monotonic() >= deadline:
            return result
        time.sleep(1.0)


def status_notifier_host() -> bool | None:
    """Whether a StatusNotifierWatcher with a host is on the session bus; None if we cannot ask."""
    try:
        import gi

        gi.require_version("Gio", "2.0")
        from gi.repository import Gio, GLib
    except (ImportError, ValueError):
        return None
    try:
        bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
        reply = bus.call_sync("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher",
                              "org.freedesktop.DBus.Properties", "Get",
                              GLib.Variant("(ss)", ("org.kde.StatusNotifierWatcher", "IsStatusNotifierHostRegistered")),
                              GLib.VariantType("(v)"), Gio.DBusCallFlags.NO_AUTO_START, 2000, None)
        return bool(reply.unpack()[0])
    except Exception:  # no bus, no watcher
        return False


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


def _has_typelib(name: str, version: str = "0.1") -> bool:
    try:
        import gi

        gi.require_version(name, version)
        return True
    except (ImportError, ValueError):
        return False
