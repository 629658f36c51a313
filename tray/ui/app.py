"""``tender`` / ``tender tray``: find a tray, then run the controller behind its icon.

On Linux with a StatusNotifier host the icon is our own D-Bus item
(:class:`tray.ui.sni.SniView`, no PyGObject); on an XEmbed-only desktop,
macOS and Windows it is a pystray icon (:class:`tray.ui.view.PystrayView`).
No tray, no session bus, a bus that hangs: one line on stderr, exit 2.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from tray.ui.host import HINT, SNI, check_host, wait_for_host

log = logging.getLogger(__name__)


def run_tray(kubeconfig: str | None = None, profiles: str | None = None) -> int:
    """Run the tray until Quit; returns the exit status (0, or 2 when there is no tray here)."""
    from tray.ui.logs import setup_tray_logging

    log_file = setup_tray_logging()
    from tray.ui import instance

    claim = instance.claim("tray")  # one tray per user (tray.ui.instance)
    if claim is None:  # another one runs: it was told, and a line printed
        return 0
    wait = _seconds(os.environ.get("TENDER_TRAY_WAIT"))
    host = wait_for_host(wait) if wait else check_host()
    if host.backend is None:
        return _no_tray(host.reason)

    from tray.engine.manager import ForwardManager
    from tray.profiles import default_profiles_path
    from tray.ui.bus import BusUnavailable
    from tray.ui.controller import Controller
    from tray.ui.dialogs import Dialogs

    profiles_path = profiles or os.environ.get("TENDER_PROFILES") or str(default_profiles_path())
    launch_args = [*(["--kubeconfig", os.path.abspath(kubeconfig)] if kubeconfig else []),
                   *(["--profiles", os.path.abspath(profiles)] if profiles else [])]
    controller: Controller | None = None

    def dispatch(action: Any) -> None:
        if controller is not None:
            controller.dispatch(action)

    try:
        view = make_view(host.backend, dispatch)
    except BusUnavailable as exc:  # the bus went away since the check
        return _no_tray(str(exc))
    manager = ForwardManager(kubeconfig)
    try:
        controller = Controller(manager, view, Dialogs(), make_notifier(view, dispatch),
                                profiles_path=profiles_path, launch_args=launch_args)
        claim.serve(functools.partial(_already_running, controller))
        log.info("tray starting (backend %s, kubeconfig %s, profiles %s, log %s)",
                 host.backend or "default", manager.kubeconfig, profiles_path, log_file)
        # SniView: on Quit, SIGTERM (log out) or SIGINT alike, the controller closes while the loop still
        # serves the bus, so its notifications' cards are closed (CloseNotification) before the connection goes.
        closing = {"before_close": controller.close} if host.backend == SNI else {}
        try:
            view.run(controller.start, **closing)
        except BusUnavailable as exc:  # the item could not register
            return _no_tray(str(exc))
    finally:
        if controller is not None:
            controller.close()
        manager.shutdown()
        claim.close()
    return 0


def _already_running(controller: Any) -> None:
    """What a second launch gets from this one: a notification (a tray item cannot open its own menu)."""
    controller.notifications.send("Tender is already running", "Its menu is behind the Tender icon in the panel.",
                                  always=True)


def make_view(backend: str, dispatch: Callable[[Any], None]) -> Any:
    """The view for ``backend`` (a :func:`tray.ui.host.check_host` answer); clicks go to ``dispatch``.

    ``"sni"`` connects to the session bus (up to 2 s) and raises
    :class:`tray.ui.bus.BusUnavailable` if it cannot; any other value is a
    pystray backend, set in ``PYSTRAY_BACKEND`` before pystray is imported.
    """
    if backend == SNI:
        from tray.ui.sni import SniView

        return SniView(dispatch)
    if backend:
        os.environ["PYSTRAY_BACKEND"] = backend  # read by pystray at import
    from tray.ui.view import PystrayView

    return PystrayView(backend, dispatch)


def make_notifier(view: Any, dispatch: Callable[[Any], None]) -> Any:
    """The notifier for this view; a click on a notification's button goes to ``dispatch``.

    Linux: ``org.freedesktop.Notifications`` with actions (:mod:`tray.ui.dbusnotify`), on the
    :class:`~tray.ui.sni.SniView`'s own connection, or on one of its own for pystray's view (connecting
    blocks up to 2 s; no bus: one warning, then silence).  macOS and Windows: plyer.
    """
    if sys.platform.startswith("linux"):
        from tray.ui.dbusnotify import linux_notifier

        return linux_notifier(dispatch, getattr(view, "bus", None), getattr(view, "loop", None))
    from tray.ui.notify import PlyerNotifier

    return PlyerNotifier()


def _no_tray(reason: str) -> int:
    print(f"tender: no system tray here: {reason}; {HINT}", file=sys.stderr)
    log.info("not starting the tray: %s", reason)
    return 2


def _seconds(text: str | None) -> float:
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        return 0.0
