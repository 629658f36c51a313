"""``tender`` / ``tender tray``: find a tray, then run the controller behind a pystray icon."""

from __future__ import annotations

import logging
import os
import sys

from tray.ui.host import HINT, check_host, wait_for_host

log = logging.getLogger(__name__)


def run_tray(kubeconfig: str | None = None, profiles: str | None = None) -> int:
    from tray.ui.logs import setup_tray_logging

    log_file = setup_tray_logging()
    wait = _seconds(os.environ.get("TENDER_TRAY_WAIT"))
    host = wait_for_host(wait) if wait else check_host()
    if host.backend is None:
        print(f"tender: no system tray here: {host.reason}; {HINT}", file=sys.stderr)
        log.info("not starting the tray: %s", host.reason)
        return 2
    if host.backend:
        os.environ["PYSTRAY_BACKEND"] = host.backend  # read by pystray at import

    from tray.engine.manager import ForwardManager
    from tray.profiles import default_profiles_path
    from tray.ui.controller import Controller
    from tray.ui.dialogs import Dialogs
    from tray.ui.notify import PlyerNotifier
    from tray.ui.view import PystrayView

    profiles_path = profiles or os.environ.get("TENDER_PROFILES") or str(default_profiles_path())
    launch_args = [*(["--kubeconfig", os.path.abspath(kubeconfig)] if kubeconfig else []),
                   *(["--profiles", os.path.abspath(profiles)] if profiles else [])]
    manager = ForwardManager(kubeconfig)
    controller: Controller | None = None
    try:
        view = PystrayView(host.backend or "", lambda action: controller.dispatch(action) if controller else None)
        controller = Controller(manager, view, Dialogs(), PlyerNotifier(), profiles_path=profiles_path,
                                launch_args=launch_args)
        log.info("tray starting (backend %s, kubeconfig %s, profiles %s, log %s)",
                 host.backend or "default", manager.kubeconfig, profiles_path, log_file)
        view.run(controller.start)
    finally:
        if controller is not None:
            controller.close()
        manager.shutdown()
    return 0


def _seconds(text: str | None) -> float:
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        return 0.0
