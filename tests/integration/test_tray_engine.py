"""The tray hosts the one engine (issue 13): what the CLI does shows in the menu, and the other way round.

Each test runs ``tender tray`` from ``.venv-user`` on the hermetic desktop
(tests/ui/harness/desktop.py: Xvfb, a private bus, the real xfce4-panel as
the StatusNotifier host) with the test cluster's kubeconfig, and the
``tender`` verbs as separate processes with the SAME ``XDG_RUNTIME_DIR`` and
``KUBECONFIG`` as the tray, as a user's terminal in that session would have.
The menu is read and clicked over ``com.canonical.dbusmenu`` as the panel
does.  Asserted: a ``tender forward --detach`` appears in the menu and
``tender stop`` removes it; ``tender events`` saw both; ``tender ls -o json``
agrees with the menu; counters moved by traffic show when the menu is about
to be shown, and follow the traffic while it may be open; "Open dashboard…" opens a URL whose page answers with a
cookie; two launches make one engine and one icon.  A screenshot of the open
menu is saved as tests/artifacts/tray-engine-menu.png.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import hostname, wait_for
from tests.ui.harness.app import USER_VENV, TrayApp, user_venv_problem
from tests.ui.harness.dbusmenu import Node, TrayMenu
from tests.ui.harness.desktop import Desktop, drawn_boxes, missing_desktop
from tests.ui.harness.launch import TrayLauncher, port_closed

pytestmark = pytest.mark.cluster

TENDER = USER_VENV / "bin" / "tender"

SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: {port}}}]
"""


@pytest.fixture(scope="module")
def desktop() -> Iterator[Desktop]:
    missing = missing_desktop()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (make debian-deps installs them)")
    if not TENDER.exists():
        pytest.fail(user_venv_problem() or "no .venv-user")
    with Desktop(width=1000, height=640) as d:
        yield d


@pytest.fixture
def launch(desktop: Desktop, cluster: Cluster, tmp_path: Path) -> Iterator[TrayLauncher]:
    launcher = TrayLauncher(desktop, cluster.kubeconfig, tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> str:
    """svc/web (port 80, named http) in front of one agnhost netexec pod; returns the pod's name."""
    cluster.apply(deployment_manifest("web", args="netexec --http-port=8080", port=8080), namespace)
    cluster.apply(SERVICE.format(port=8080), namespace)
    [pod] = cluster.wait_ready(namespace, "app=web", 1)
    return pod


def tender(app: TrayApp, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``tender ARGS`` in the tray's session: its XDG_RUNTIME_DIR, and KUBECONFIG naming the tray's kubeconfig."""
    return subprocess.run([str(TENDER), *args], env=cli_env(app), cwd=app.home, capture_output=True, text=True,
                          timeout=timeout)


def cli_env(app: TrayApp) -> dict[str, str]:
    return {**app.env(), "KUBECONFIG": app.kubeconfig}


def engine_socket(desktop: Desktop) -> Path:
    return desktop.runtime_dir / "tender" / "engine.sock"


def rows(menu: TrayMenu, target: str = "svc/web") -> list[Node]:
    """The forwards' rows of the menu (top level) for ``target``."""
    return [c for c in menu.layout().children if c.children and f"  {target}  " in f"  {c.label}  "]


def about_to_show(menu: TrayMenu, node_id: int = 0) -> None:
    """What a panel sends before it shows the menu (or a submenu): AboutToShow(id)."""
    menu.bus.call(menu.service, menu.menu_path, "com.canonical.dbusmenu", "AboutToShow", "i", [node_id])


def _safe_hostname(port: int) -> str | None:
    try:
        return hostname(port, timeout=3)
    except Exception:  # noqa: BLE001 -- not forwarding yet
        return None


# ---------------------------------------------------------------------------------------------
def test_a_forward_from_the_cli_shows_in_the_menu_and_tender_stop_removes_it(
        desktop: Desktop, cluster: Cluster, namespace: str, web: str, launch) -> None:  # noqa: ANN001
    app = launch()
    menu = app.menu
    events = subprocess.Popen([str(TENDER), "events"], env=cli_env(app), cwd=app.home, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(events.stdout.readline())  # following before anything starts
        assert first == {"event": "list", "forwards": []}, first

        out = tender(app, "forward", "svc/web", ":80", "-n", namespace, "--detach")
        assert out.returncode == 0, out.stdout + out.stderr + app.output()
        [forward] = _ls(app)
        sid, port = forward["session_id"], forward["local_port"]
        assert forward["status"] == "active" and port > 0, forward
        assert wait_for(lambda: _safe_hostname(port), 30, "traffic through the forward") == web

        row = wait_for(lambda: [r for r in rows(menu) if r.label.endswith("  active")], 20,
                       f"the forward's row in the menu\n{app.output()}")[0]
        # `tender ls -o json` and the menu agree: the same forwards, local ports and statuses.
        listed = _ls(app)
        assert [(f["target"], f["local_port"], str(f["remote_port"]), f["status"]) for f in listed] == [
            ("svc/web", port, "80", "active")], listed
        assert row.label == f"svc/web  {port} → 80  tender-a/{namespace}  active", row.label
        assert [r.label for r in rows(menu)] == [row.label]  # one row: the menu has the same forwards
        assert f"Pod {web}" in row.labels()

        # Counters raise no event: the menu is rebuilt when the panel is about to show it.
        about_to_show(menu)
        submenu = wait_for(lambda: next((r for r in rows(menu) if any("connection" in x for x in r.labels())), None),
                           10, "the counters in the forward's submenu after AboutToShow")
        [line] = [x for x in submenu.labels() if x.endswith(" total") and "open" in x]
        total = int(line.split("· ")[1].split()[0])
        # While the menu may be open (30 s after the panel last showed it) the counters follow the traffic.
        assert _safe_hostname(port) == web
        wait_for(lambda: any(x.endswith(f"· {total + 1} total") for r in rows(menu) for x in r.labels()), 10,
                 f"{total + 1} connections in the open menu")

        out = tender(app, "stop", "svc/web")
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: not rows(menu), 20, "the row to leave the menu")
        assert wait_for(lambda: port_closed(port), 10, "the port to close")
        assert _ls(app) == []
    finally:
        events.terminate()
        seen_out, _ = events.communicate(timeout=10)
    seen = [json.loads(line) for line in seen_out.splitlines() if line.strip()]
    statuses = [e["status"] for e in seen if e["event"] == "status" and e["session_id"] == sid]
    assert "active" in statuses, seen
    lists = [[f["session_id"] for f in e["forwards"]] for e in seen if e["event"] == "list"]
    assert [sid] in lists, lists  # the forward appeared …
    assert lists[-1] == [], lists  # … and went


def _ls(app: TrayApp) -> list[dict[str, Any]]:
    out = tender(app, "ls", "-o", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    return data["forwards"] if isinstance(data, dict) else data


def test_open_dashboard_in_the_menu_opens_the_page_with_its_secret(desktop: Desktop, launch, tmp_path: Path) -> None:  # noqa: ANN001
    opened = tmp_path / "opened-url"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {opened}\n")
    browser.chmod(0o755)
    app = launch(env={"BROWSER": str(browser)})
    app.menu.wait_for("Open dashboard…")
    labels = app.menu.layout().labels()
    assert labels[-2:] == ["Open dashboard…", "Quit"], labels
    app.menu.click_path("Open dashboard…")
    url = wait_for(lambda: opened.exists() and opened.read_text(), 15, f"the browser to be started\n{app.output()}")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]{16,}/\?code=[A-Za-z0-9_-]{32,}", url), url
    page_url, code = url.split("?code=")
    jar = CookieJar()
    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with web.open(url, timeout=10) as page:  # 303 to the prefix with the cookie, then the page
        assert page.status == 200 and page.url == page_url
        html = page.read().decode()
    assert "Tender" in html
    assert [(c.name, c.domain, c.path) for c in jar] == [("tender_session", "127.0.0.1", urlsplit(page_url).path)]
    with pytest.raises(urllib.error.HTTPError) as used:  # the link was good for one visit
        web.open(url, timeout=10)
    assert used.value.code == 403
    assert code not in app.stdout() and code not in app.log()  # the link is never logged
    assert [c.value for c in jar][0] not in app.stdout() + app.log()


def test_two_launches_make_one_engine_and_one_icon(desktop: Desktop, launch) -> None:  # noqa: ANN001
    first = launch()
    before = len(desktop.notifications.about("Tender is already running"))
    second = launch(wait=False)
    assert second.proc.wait(30) == 0, second.output()
    assert second.stdout() == "tender: Tender is already running (its icon is in the system tray)\n", second.output()
    desktop.notifications.wait_for(lambda m: len(m.about("Tender is already running")) > before, 10,
                                   "the first tray's notification")
    # One engine: one socket, answered by the first launch.
    sockets = sorted(p.name for p in (desktop.runtime_dir / "tender").iterdir() if p.is_socket())
    assert sockets == ["engine.sock"], sockets
    from tray.api.client import EngineClient

    with EngineClient(engine_socket(desktop), timeout=10) as client:
        engine = client.get("/v1/engine")
    assert (engine["pid"], engine["host"]) == (first.proc.pid, "tray"), engine
    # One icon: the watcher (the panel) has one item, the first launch's.
    assert first.menu.items_of(None) == first.menu.items_of(first.proc.pid), first.menu.registered_items()
    assert len(first.menu.registered_items()) == 1, first.menu.registered_items()
    assert first.proc.poll() is None


def test_screenshot_of_the_menu_with_open_dashboard(desktop: Desktop, launch) -> None:  # noqa: ANN001
    """The panel draws the menu; the new item is in it (tests/artifacts/tray-engine-menu.png: look at it)."""
    app = launch()
    app.menu.wait_for("Open dashboard…")
    panel = desktop.panel_window()
    deadline = time.monotonic() + 5
    while True:
        shot = desktop.screenshot("tray-engine-icon.png")
        drawn = drawn_boxes(shot, panel.box)
        if len(drawn) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(drawn) == 1, f"expected our icon alone on the panel, found {drawn} ({shot})"
    [box] = drawn
    before = {w.id for w in desktop.windows()}
    desktop.xdotool("mousemove", str((box[0] + box[2]) // 2), str((box[1] + box[3]) // 2), "click", "1")
    try:
        menu_window = wait_for(lambda: [w for w in desktop.windows() if w.id not in before and w.width > 120
                                        and w.height > 60], 5, "the menu window")[0]
        time.sleep(0.5)
        shot = desktop.screenshot("tray-engine-menu.png")
        assert drawn_boxes(shot, menu_window.box, min_size=4), f"the menu window is empty ({shot})"
        top = app.menu.layout().labels()
        assert top[-2:] == ["Open dashboard…", "Quit"], top
        assert menu_window.height >= 18 * len(top), f"{menu_window} too short for {top} ({shot})"
    finally:
        desktop.xdotool("key", "Escape")


def test_two_hundred_forwards_through_the_api_keep_the_menu_rebuilds_coalesced(
        desktop: Desktop, cluster: Cluster, namespace: str, web: str, launch) -> None:  # noqa: ANN001
    """200 forwards started and stopped through the API: the menu follows, at most one rebuild per interval.

    Each rebuild that changes the menu bumps the dbusmenu layout revision
    (LayoutUpdated); uncoalesced, 200 starts and stops would be well over a
    thousand (each forward's starting/active/stopped status events and a list
    event each).  The coalescer allows one rebuild per
    ``tray.ui.coalesce.DEFAULT_INTERVAL`` (0.25 s).
    """
    from tray.api.client import EngineClient
    from tray.ui.coalesce import DEFAULT_INTERVAL

    app = launch()
    menu = app.menu

    def revision() -> int:
        rev, _root = menu.bus.call(menu.service, menu.menu_path, "com.canonical.dbusmenu", "GetLayout", "iias",
                                   [0, -1, []])
        return int(rev)

    with EngineClient(engine_socket(desktop), timeout=120) as client:
        before, started_at = revision(), time.monotonic()
        ids = []
        for _ in range(2):
            answer = client.post("/v1/forwards", {"target": "svc/web", "namespace": namespace,
                                                  "ports": [":80"] * 100})
            ids += [f["session_id"] for f in answer["forwards"]]
        assert len(set(ids)) == 200
        wait_for(lambda: all(f["status"] == "active" for f in client.get("/v1/forwards")["forwards"]), 120,
                 "200 forwards active")
        wait_for(lambda: "200 active" in menu.layout().labels()[0], 30,
                 f"the menu's first line to count 200 active forwards ({menu.layout().labels()[:1]})")
        stopped = client.post("/v1/forwards/stop", {"ids": ids})["stopped"]
        assert sorted(stopped) == sorted(ids)
        wait_for(lambda: not any("active" in label for label in menu.layout().labels()), 60,
                 "the menu to show no forward")
        after, elapsed = revision(), time.monotonic() - started_at
    rebuilds = after - before
    allowed = elapsed / DEFAULT_INTERVAL + 5
    assert 2 <= rebuilds <= allowed, f"{rebuilds} menu rebuilds in {elapsed:.1f} s (at most {allowed:.0f})"
    assert app.proc.poll() is None, app.output()
