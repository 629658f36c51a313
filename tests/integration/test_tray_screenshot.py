"""The tray on an XEmbed-only desktop: its menu, as a person sees it.

Runs under Xvfb with a real XEmbed tray (Debian's ``trayer``, no StatusNotifier
host) and the tray from ``.venv`` (which has PyGObject: pystray's ``gtk``
backend, GtkStatusIcon), with a few forwards on the test cluster:
right-clicks the icon with xdotool, hovers the first forward to open its
submenu, and saves the picture to ``tests/artifacts/menu-xembed.png``.
The StatusNotifier panel (xfce4-panel) is tests/integration/test_tray_desktop.py.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.clusterlib import Cluster, deployment_manifest

pytest.importorskip("gi", reason="needs PyGObject (pip install -e '.[tray]')")
from tests.integration.engine import wait_for
from tests.ui.harness.app import TrayApp
from tests.ui.harness.desktop import ROOT, Desktop, missing_tools

pytestmark = pytest.mark.cluster
ARTIFACT = ROOT / "tests" / "artifacts" / "menu-xembed.png"

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def port(preferred: int) -> int:
    """The preferred local port if it is free (nicer in a picture), else any free one."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shop(cluster: Cluster) -> str:
    """A namespace whose name reads well in the picture."""
    ns = cluster.new_namespace("shop")
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_menu_screenshot(cluster: Cluster, shop: str, tmp_path: Path) -> None:
    missing = missing_tools("Xvfb", "dbus-daemon", "trayer", "xdotool", "import")
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    namespace = shop
    cluster.apply(deployment_manifest("web", replicas=2), namespace)
    cluster.apply(deployment_manifest("db", args="netexec --http-port=5432", port=5432, port_name="pg"), namespace)
    cluster.apply(SERVICE, namespace)
    cluster.wait_ready(namespace, "app=web", 2)
    cluster.wait_ready(namespace, "app=db", 1)
    web, db, direct = port(8080), port(15432), port(18080)
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(f"""version: 1
profiles:
  - {{name: shop-web, context: tender-a, namespace: {namespace}, target: svc/web, ports: ["{web}:80"],
      group: shop, autostart: true}}
  - {{name: shop-db, context: tender-a, namespace: {namespace}, target: deploy/db, ports: ["{db}:5432"],
      group: shop, autostart: true}}
  - {{name: web-direct, context: tender-a, namespace: {namespace}, target: deploy/web, ports: ["{direct}:http"],
      autostart: true}}
  - {{name: gone, context: tender-a, namespace: {namespace}, target: deploy/old-api, ports: ["19090:9090"],
      autostart: true}}
""")
    with Desktop(panel=False, notifications=None, width=1000, height=640) as desktop:
        desktop.start_trayer()
        app = TrayApp(desktop, tmp_path / "home", cluster.kubeconfig, profiles, venv="dev", backend="gtk").start(wait_registered=False)
        try:
            icon = wait_for(lambda: [w for w in desktop.windows() if w[1].startswith("Tender — 3 active")], 40,
                            f"the tray icon with 3 active forwards\n{app.output()}")[0]
            time.sleep(1.0)  # let the last menu rebuild land
            desktop.xdotool("mousemove", "--window", icon[0], str(icon[4] // 2), str(icon[5] // 2), "click", "3")
            menu = wait_for(lambda: [w for w in desktop.windows() if w[4] > 200 and w[5] > 150 and w[2] > 0], 10,
                            "the menu to open")[0]
            # Hover the first forward (the row under the status line) to open its submenu.
            desktop.xdotool("mousemove", str(menu[2] + 120), str(menu[3] + 44))
            wait_for(lambda: len([w for w in desktop.windows() if w[4] > 100 and w[5] > 60 and w[2] > 0]) >= 2, 10,
                     "the submenu to open")
            time.sleep(0.5)
            shot = desktop.screenshot(tmp_path / "root.png")
            boxes = [w for w in desktop.windows() if w[4] > 60 and w[5] > 20 and w[2] >= 0 and w[3] >= 0
                     and w[4] < 1000]
            boxes.append(icon)
            left = max(0, min(w[2] for w in boxes) - 24)
            top = 0
            right = min(1000, max(w[2] + w[4] for w in boxes) + 24)
            bottom = min(640, max(w[3] + w[5] for w in boxes) + 24)
            image = Image.open(shot).crop((left, top, right, bottom))
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            image.save(ARTIFACT)
            assert image.width > 300 and image.height > 200
        finally:
            app.stop()
