"""The pystray icon: shows what the controller computed, reports clicks back.

Used where our own StatusNotifierItem (:mod:`tray.ui.sni`) cannot be: an
XEmbed-only tray on X11 (pystray's ``gtk`` backend), macOS and Windows.

``show`` may be called from any thread: pystray's GTK backend marshals
icon and menu updates onto their main loop.  Unchanged menus and icons are
not pushed again, so a burst of events that changes nothing visible costs
nothing on the UI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pystray

from tray.ui import system
from tray.ui.icon import IconState, render
from tray.ui.model import Action, Item, note, root
from tray.ui.pystray_menu import to_pystray

log = logging.getLogger(__name__)

ICON_SIZE = 64


class PystrayView:
    def __init__(self, backend: str, dispatch: Callable[[Action], None]) -> None:
        self.backend = backend
        self.dispatch = dispatch
        self._shown: tuple[Any, ...] = (None, None, None)
        starting = root([note("Starting…")])
        self.icon = pystray.Icon("tender", render(IconState.IDLE, 0, ICON_SIZE), "Tender",
                                 menu=to_pystray(starting, dispatch))

    def show(self, menu: Item, state: IconState, count: int, tooltip: str) -> None:
        old_menu, old_icon, old_title = self._shown
        if menu != old_menu:
            self.icon.menu = to_pystray(menu, self.dispatch)
            self.icon.update_menu()
        if (state, count) != old_icon:
            self.icon.icon = render(state, count, ICON_SIZE)
        if tooltip != old_title:
            self.icon.title = tooltip
        self._shown = (menu, (state, count), tooltip)

    def copy_text(self, text: str) -> None:
        if self.backend == "gtk":
            from gi.repository import Gdk, GLib, Gtk

            def put() -> bool:
                clipboard = Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD)
                clipboard.set_text(text, -1)
                clipboard.store()
                return False

            GLib.idle_add(put)
        else:
            system.copy_with_command(text)

    def run(self, setup: Callable[[], None]) -> None:
        """Run the UI loop on this (the main) thread; ``setup`` runs on another once it is up."""

        def ready(icon: Any) -> None:
            icon.visible = True
            try:
                setup()
            except Exception:  # keep the icon up: the menu shows what did load
                log.exception("tray setup failed")

        self.icon.run(setup=ready)

    def stop(self) -> None:
        self.icon.stop()
