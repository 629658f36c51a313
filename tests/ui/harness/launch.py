"""Starting trays in a test, and the small socket checks the tray tests share.

``TrayLauncher(desktop, kubeconfig, tmp_path)`` is what the ``launch`` fixtures of
tests/integration/test_tray_*.py yield: calling it writes a profiles file and starts
``tender tray`` (:class:`tests.ui.harness.app.TrayApp`); :meth:`TrayLauncher.stop_all`
stops every tray it started and prints each one's output (pytest shows it when the
test failed).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from tests.ui.harness.app import TrayApp
from tests.ui.harness.desktop import Desktop

EMPTY_PROFILES = "version: 1\nprofiles: []\n"


class TrayLauncher:
    def __init__(self, desktop: Desktop, kubeconfig: str, tmp_path: Path) -> None:
        self.desktop = desktop
        self.kubeconfig = kubeconfig
        self.tmp_path = tmp_path
        self.apps: list[TrayApp] = []

    def __call__(self, profiles_text: str = EMPTY_PROFILES, *, kubeconfig: str | None = None,
                 on: Desktop | None = None, wait: bool = True, **kw: Any) -> TrayApp:
        """Start a tray with ``profiles_text`` as its profiles file, on ``on`` (default: the module's desktop).

        ``kw`` goes to :class:`TrayApp` (``env``, ``venv``, ``args``, …).  With ``wait``, blocks until
        its item is registered with the panel (up to 30 s; AssertionError after that).
        """
        n = len(self.apps)
        profiles = self.tmp_path / ("profiles.yaml" if n == 0 else f"profiles{n}.yaml")
        profiles.write_text(profiles_text)
        app = TrayApp(on or self.desktop, self.tmp_path / f"home{n}", kubeconfig or self.kubeconfig, profiles, **kw)
        self.apps.append(app)
        return app.start(wait_registered=wait)

    def stop_all(self) -> None:
        for app in self.apps:
            alive = app.proc is not None and app.proc.poll() is None
            app.stop()
            status = "running" if alive else f"exited {app.proc.returncode if app.proc else '(never started)'}"
            print(f"tray {app.home.name}: {status} at the end\n{app.output()}")


def free_port() -> int:
    """A local TCP port nobody listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_closed(port: int) -> bool:
    """Whether nothing accepts connections on 127.0.0.1:``port`` (within 1 s)."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0
