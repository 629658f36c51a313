"""The tray on a real desktop panel, as a person meets it.

Each test runs ``tender tray`` (by default from ``.venv-user``: a plain
``pip install .``, no PyGObject) on a hermetic desktop (tests/ui/harness/desktop.py):
Xvfb, a private session bus that activates only the harness's services, the
real xfce4-panel whose Status Tray plugin is the StatusNotifierWatcher and
host and draws the item's dbusmenu menu itself, and, per test, the real
xfce4-notifyd, a notification service that crashes on activation, one that
never answers, or none.

What is asserted is what the user gets: the icon drawn in the panel within
2 s of the start (pixels of a screenshot), a menu window opening when the
icon is clicked and a row chosen in it reaching the tray, the menu read and
clicked over ``com.canonical.dbusmenu`` as the panel does, the item back
after the panel restarts, the bus found at ``$XDG_RUNTIME_DIR/bus``, one line
and exit 2 without a session bus, one log line when notifications cannot be
shown, no PyGObject loaded.  Screenshots are saved in tests/artifacts/ and are worth a look.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import hostname, wait_for
from tests.ui.harness.app import DEFAULT_VENV, USER_VENV, user_venv_problem
from tests.ui.harness.dbusmenu import Node, TrayMenu
from tests.ui.harness.desktop import PANEL_HEIGHT, Desktop, Window, drawn_boxes, missing_desktop
from tests.ui.harness.launch import TrayLauncher, free_port, port_closed

pytestmark = pytest.mark.cluster

#: How soon after the start the icon must be in the panel (issue 12: "the icon appears within 2 s").
APPEARS_WITHIN = 2.0


def _skip_without_desktop() -> None:
    missing = missing_desktop()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (make debian-deps installs them)")
    if DEFAULT_VENV == "user" and not (USER_VENV / "bin" / "tender").exists():
        pytest.fail(user_venv_problem() or "no .venv-user")


@pytest.fixture(scope="module")
def desktop() -> Iterator[Desktop]:
    """xfce4-panel and xfce4-notifyd on a private bus, shared by this module's tests."""
    _skip_without_desktop()
    with Desktop(width=1000, height=640) as d:
        yield d


@pytest.fixture
def launch(desktop: Desktop, cluster: Cluster, tmp_path: Path) -> Iterator[TrayLauncher]:
    """``launch(profiles_text, on=desktop, wait=…, **kwargs of tests.ui.harness.app.TrayApp)`` starts a tray; all are stopped after the test."""
    launcher = TrayLauncher(desktop, cluster.kubeconfig, tmp_path)
    yield launcher
    launcher.stop_all()


def failing_profile(namespace: str, port: int, name: str = "broken") -> str:
    """A profile whose target does not exist: it ends in error, which the tray notifies."""
    return (f"version: 1\nprofiles:\n  - name: {name}\n    context: tender-a\n    namespace: {namespace}\n"
            f"    target: deploy/does-not-exist\n    ports: [\"{port}:80\"]\n    autostart: true\n")


def systray_window(desktop: Desktop) -> Window:
    """The Status Tray plugin's window: the small one at the panel's right end."""
    panel = desktop.panel_window()
    plugs = [w for w in desktop.windows() if w.name == "wrapper-2.0" and w.y == panel.y and w.x >= 0
             and w.height <= panel.height + 2 and w.x + w.width <= panel.x + panel.width]
    assert plugs, f"no Status Tray plugin window in the panel: {desktop.windows()}"
    return max(plugs, key=lambda w: w.x)


def icon_in_panel(desktop: Desktop, shot_name: str) -> tuple[tuple[int, int, int, int], Path]:
    """Screenshot; the one icon drawn in the panel (box in screen pixels) and the PNG.

    Asserts that exactly one thing is drawn on the panel, inside the Status Tray, of an icon's size.
    """
    panel = desktop.panel_window()
    deadline = time.monotonic() + 3  # the panel draws the item a moment after the watcher registered it
    while True:
        shot = desktop.screenshot(shot_name)
        drawn = drawn_boxes(shot, panel.box)
        if len(drawn) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(drawn) == 1, f"expected our icon alone on the panel, found {drawn} (see {shot})"
    [box] = drawn
    tray = systray_window(desktop)
    assert tray.x <= box[0] and box[2] <= tray.x + tray.width, f"icon {box} outside the Status Tray {tray} ({shot})"
    width, height = box[2] - box[0], box[3] - box[1]
    assert 12 <= width <= PANEL_HEIGHT and 12 <= height <= PANEL_HEIGHT, f"icon of {width}x{height} px ({shot})"
    return box, shot


def open_menu_by_clicking(desktop: Desktop, box: tuple[int, int, int, int]) -> Window:
    """Left-click the icon as a person does; the menu window the panel opened (AssertionError if none)."""
    before = {w.id for w in desktop.windows()}
    desktop.xdotool("mousemove", str((box[0] + box[2]) // 2), str((box[1] + box[3]) // 2), "click", "1")
    panel = desktop.panel_window()

    def menu_window() -> list[Window]:
        return [w for w in desktop.windows() if w.id not in before and w.width > 120 and w.height > 60
                and w.y >= panel.y + panel.height - 4]

    return wait_for(menu_window, 5, f"a menu window under the panel after clicking the icon at {box}")[0]


def find_paths(root: Node, last: callable, through: callable) -> list[tuple[str, ...]]:
    """Label paths (from ``root``) to items whose label satisfies ``last`` with one step satisfying ``through``."""
    return [path for path, node in root.walk() if last(node.label) and any(through(step) for step in path[:-1])]


# ---------------------------------------------------------------------------------------------
def test_icon_appears_in_the_panel_and_a_click_opens_its_menu(desktop: Desktop, launch) -> None:  # noqa: ANN001
    app = launch()
    assert app.appeared_after is not None and app.appeared_after <= APPEARS_WITHIN, (
        f"the icon was registered {app.appeared_after:.2f} s after the start\n{app.output()}")
    props = app.menu.item_properties()
    assert props["ItemIsMenu"] is True, props  # left-click opens the menu
    assert props["Id"] == "tender" and props["Title"].startswith("Tender"), props
    box, shot = icon_in_panel(desktop, "panel-icon.png")

    menu = open_menu_by_clicking(desktop, box)
    try:
        shot = desktop.screenshot("panel-menu.png")
        lines = drawn_boxes(shot, menu.box, min_size=4)
        assert lines, f"the menu window {menu} is empty ({shot})"
        top = app.menu.layout().labels()
        assert top[-1] == "Quit", top
        # The panel drew every top-level item: the menu is as tall as their rows (±1 row).
        assert menu.height >= 18 * len(top), f"{menu} too short for {top} ({shot})"
    finally:
        desktop.xdotool("key", "Escape")
    wait_for(lambda: not [w for w in desktop.windows() if w.id == menu.id], 5, "the menu to close")


def test_menu_read_and_clicked_over_dbusmenu_starts_and_stops_a_forward(
        cluster: Cluster, namespace: str, launch) -> None:  # noqa: ANN001
    port = free_port()  # the container port; the menu offers it as the local port too
    cluster.apply(deployment_manifest("web", args=f"netexec --http-port={port}", port=port), namespace)
    [pod] = cluster.wait_ready(namespace, "app=web", 1)
    app = launch()
    menu = app.menu

    def forward_item() -> list[tuple[str, ...]]:
        root = menu.find("Clusters", lambda label: label.split(" ")[0] == "tender-a")
        if root is None:
            return []
        for path, node in root.walk():  # a namespace still loading offers "Load resources…"
            if path[0].split(" ")[0] == namespace and node.label.startswith("Load resources") and node.enabled:
                menu.click(node)
        return find_paths(root, lambda label: label.startswith(f"Forward {port}"),
                          lambda step: step == "web" or step.startswith(("web ", "deploy/web")))

    path = wait_for(forward_item, 30, f"'Forward {port}' for deploy/web under Clusters → tender-a")[0]
    menu.click_path("Clusters", lambda label: label.split(" ")[0] == "tender-a", *path)
    assert wait_for(lambda: _safe_hostname(port), 30, "traffic through the forward") == pod

    def row() -> Node | None:
        return next((c for c in menu.layout().children if "deploy/web" in c.label and "active" in c.label), None)

    forward = wait_for(row, 20, "the forward's row in the menu")
    assert f"{port}" in forward.label, forward.label
    menu.click_path(forward.label, "Stop")
    wait_for(lambda: row() is None, 20, "the forward's row to go")
    assert wait_for(lambda: port_closed(port), 10, "the port to close")


def _safe_hostname(port: int) -> str | None:
    try:
        return hostname(port, timeout=3)
    except Exception:  # noqa: BLE001 -- not forwarding yet
        return None


def test_the_item_comes_back_when_the_panel_restarts(desktop: Desktop, launch) -> None:  # noqa: ANN001
    app = launch()
    for _ in range(2):  # twice: a second restart is no different from the first
        desktop.restart_panel()
        started = time.monotonic()
        app.menu.wait_item(pid=app.proc.pid, timeout=10)
        back_after = time.monotonic() - started
        assert back_after <= APPEARS_WITHIN, f"registered again {back_after:.2f} s after the watcher came back"
        assert len(app.menu.items_of(app.proc.pid)) == 1, app.menu.registered_items()  # once, not twice
    # Its menu works: the Notifications check item toggles, read back over dbusmenu.
    before = app.menu.wait_for("Notifications").toggle_state
    app.menu.click_path("Notifications")
    app.menu.wait_for("Notifications", where=lambda n: n.toggle_state == 1 - before, timeout=5)
    app.menu.click_path("Notifications")
    app.menu.wait_for("Notifications", where=lambda n: n.toggle_state == before, timeout=5)
    box, _ = icon_in_panel(desktop, "panel-icon-after-restart.png")
    menu = open_menu_by_clicking(desktop, box)
    desktop.xdotool("key", "Escape")
    assert menu.height > 60
    assert app.proc.poll() is None and "Traceback" not in app.output()


@pytest.mark.parametrize("bus", ["unset", "never answers"])
def test_no_session_bus_is_one_line_and_the_dashboard(
        desktop: Desktop, launch, tmp_path: Path, bus: str) -> None:  # noqa: ANN001
    """No tray without a bus; on a display the engine runs with its dashboard instead (issue 13), until SIGTERM."""
    runtime = tmp_path / "runtime"  # no "bus" socket in it
    runtime.mkdir(mode=0o700)
    env: dict[str, str | None] = {"DBUS_SESSION_BUS_ADDRESS": None, "XDG_RUNTIME_DIR": str(runtime)}
    silent = None
    if bus == "never answers":  # a socket that accepts connections (the kernel's backlog) and never speaks
        silent = socket.socket(socket.AF_UNIX)
        silent.bind(str(tmp_path / "silent-bus"))
        silent.listen(16)
        env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path / 'silent-bus'}"
    try:
        started = time.monotonic()
        app = launch(env=env, wait=False)
        wait_for(lambda: "dashboard at" in app.stdout() or app.proc.poll() is not None, 5,
                 f"the no-tray line with the session bus {bus}\n{app.output()}")
        took = time.monotonic() - started
        assert app.proc.poll() is None, f"exit {app.proc.returncode}\n{app.output()}"
        app.stop()  # SIGTERM
        code = app.proc.returncode
    finally:
        if silent:
            silent.close()
    out = app.stdout()
    assert code == 0, f"exit {code}\n{app.output()}"
    assert "Traceback" not in out and "Traceback" not in app.log(), app.output()
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"{len(lines)} lines:\n{out}"
    assert "bus" in lines[0].lower() and "Tender runs without an icon: dashboard at http://127.0.0.1:" in lines[0]
    assert took < 5


@pytest.mark.parametrize("service", ["crash", "hang", None], ids=["crashes-on-activation", "hangs", "none"])
def test_a_broken_or_missing_notification_service_costs_one_log_line(
        cluster: Cluster, namespace: str, launch, service: str | None) -> None:  # noqa: ANN001
    _skip_without_desktop()
    with Desktop(width=1000, height=640, notifications=service) as broken:
        app = launch(failing_profile(namespace, free_port()), on=broken)
        assert app.appeared_after <= APPEARS_WITHIN, f"icon after {app.appeared_after:.2f} s\n{app.output()}"
        if service == "hang":  # while a call waits for the service, the tray answers its menu at once
            broken.notifications.wait_for(lambda m: [c for c in m.calls if not c.answered], 60,
                                          "a call waiting for the hanging service")
            asked = time.monotonic()
            assert app.menu.layout().labels()[-1] == "Quit"
            assert time.monotonic() - asked < 1.0, f"the menu took {time.monotonic() - asked:.2f} s to read"
        # The forward fails; the tray tries to say so, the bus answers with an error.
        attempt = broken.notifications.wait_for(lambda m: m.failed_calls, 60,
                                                "failed call to the notification service")[0]
        want = {"crash": "org.freedesktop.DBus.Error.Spawn.ChildExited",
                "hang": "org.freedesktop.DBus.Error.TimedOut",  # the bus's service_start_timeout, 5 s
                None: "org.freedesktop.DBus.Error.ServiceUnknown"}[service]
        assert attempt.error == want, broken.notifications.calls
        def notification_warnings() -> list[str]:
            return [line for line in app.log().splitlines() if " WARNING " in line and "otification" in line]

        wait_for(notification_warnings, 10, f"a warning about notifications in the log\n{app.output()}")
        time.sleep(2)  # and no second one
        assert app.proc.poll() is None, app.output()
        log = app.log()
        assert len(notification_warnings()) == 1, f"expected one warning about notifications:\n{log}"
        assert "Traceback" not in log and "Traceback" not in app.stdout(), app.output()
        # The tray still answers: its menu shows the failure.
        app.menu.wait_for(lambda label: "broken" in label and "error" in label, timeout=10)
        box, _ = icon_in_panel(broken, f"panel-icon-notifications-{service or 'none'}.png")


def test_the_tray_runs_without_pygobject(desktop: Desktop, launch) -> None:  # noqa: ANN001
    if DEFAULT_VENV != "user":
        pytest.skip("the tray does not run from .venv-user yet")
    probe = subprocess.run([str(USER_VENV / "bin" / "python"), "-c", "import gi"], capture_output=True, text=True,
                           cwd="/")
    assert probe.returncode != 0 and "No module named 'gi'" in probe.stderr, probe
    app = launch()
    cmdline = Path(f"/proc/{app.proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert str(USER_VENV) in cmdline, cmdline
    maps = app.loaded_libraries()
    assert "gi/_gi" not in maps and "libgirepository" not in maps and "libgtk" not in maps
    where = subprocess.run([str(USER_VENV / "bin" / "python"), "-c", "import tray; print(tray.__file__)"],
                           capture_output=True, text=True, cwd=app.home).stdout
    assert str(USER_VENV) in where, f"the tray runs from {where}, not the plain install"  # not the checkout
    menu: TrayMenu = app.menu
    menu.wait_for("Quit")  # the menu's first state ("Starting…") is replaced once the files are read
    assert menu.layout().labels()[-1] == "Quit"


def test_a_click_in_the_panels_menu_reaches_the_tray(desktop: Desktop, launch) -> None:  # noqa: ANN001
    """The person's path: the panel draws the menu, a row is chosen there, the tray acts on it."""
    app = launch()
    before = app.menu.wait_for("Notifications").toggle_state
    assert before in (0, 1)
    box, _ = icon_in_panel(desktop, "panel-icon-before-choosing.png")
    menu = open_menu_by_clicking(desktop, box)
    time.sleep(0.3)
    # Keyboard, as in any GTK menu: Up from nothing selects the last row (Quit), then Open dashboard…,
    # then Notifications (separators are skipped).
    desktop.xdotool("key", "Up", "Up", "Up")
    time.sleep(0.3)
    desktop.screenshot("panel-menu-notifications-selected.png")
    desktop.xdotool("key", "Return")
    wait_for(lambda: not [w for w in desktop.windows() if w.id == menu.id], 5, "the menu to close")
    app.menu.wait_for("Notifications", where=lambda n: n.toggle_state == 1 - before, timeout=5)
    assert app.proc.poll() is None


def test_the_session_bus_found_in_xdg_runtime_dir(desktop: Desktop, launch) -> None:  # noqa: ANN001
    """systemd's user bus: no DBUS_SESSION_BUS_ADDRESS, the socket at $XDG_RUNTIME_DIR/bus."""
    socket_path = desktop.bus.split("unix:path=", 1)[1].split(",", 1)[0]
    (desktop.runtime_dir / "bus").unlink(missing_ok=True)
    (desktop.runtime_dir / "bus").symlink_to(socket_path)
    try:
        app = launch(env={"DBUS_SESSION_BUS_ADDRESS": None, "XDG_RUNTIME_DIR": str(desktop.runtime_dir)})
        assert app.appeared_after <= APPEARS_WITHIN, f"icon after {app.appeared_after:.2f} s\n{app.output()}"
        assert app.menu.layout().labels()[-1] == "Quit"
    finally:
        (desktop.runtime_dir / "bus").unlink(missing_ok=True)


def test_the_desktop_is_hermetic(desktop: Desktop) -> None:
    """Only the harness's services can be activated; nothing of the real session reaches the bus."""
    from tests.ui.harness.bus import DBUS, Bus

    bus = Bus(desktop.bus)
    try:
        [names] = bus.call(*DBUS, "ListActivatableNames")
    finally:
        bus.close()
    assert set(names) == {"org.freedesktop.DBus", "org.xfce.Xfconf", "org.freedesktop.Notifications"}, names
    daemon = next(p for p in desktop.procs if p.args[0] == "dbus-daemon")
    environ = Path(f"/proc/{daemon.pid}/environ").read_text().split("\0")
    env = dict(line.split("=", 1) for line in environ if "=" in line)
    assert env["DISPLAY"] == desktop.display and env["HOME"] == str(desktop.home)
    assert env["XDG_RUNTIME_DIR"] == str(desktop.runtime_dir)
    leaked = [k for k in env if k.startswith(("DBUS_", "WAYLAND_", "XDG_CURRENT_DESKTOP", "SESSION_MANAGER"))]
    assert not leaked, leaked


def test_a_profile_that_cannot_start_has_one_card_and_sigterm_closes_it(desktop: Desktop, launch) -> None:  # noqa: ANN001
    """Issue 12, defects 5 and 3: a profile whose context is not in the kubeconfig gets one card naming it,
    the cause in its body, with Retry (the menu's Retry replaces that card, adds none); a tray stopped by
    SIGTERM (log out, kill) closes the cards it still shows, as Quit does, so no button is left reaching
    no process."""
    name = f"nowhere-{free_port()}"  # the module's desktop is shared: a name of this test's own
    profiles = (f"version: 1\nprofiles:\n  - name: {name}\n    context: no-such-context\n    namespace: default\n"
                f"    target: svc/web\n    ports: [\"{free_port()}:80\"]\n    autostart: true\n")
    app = launch(profiles)
    notes = desktop.notifications
    [card] = notes.wait_for(lambda m: [n for n in m.about(f"Profile {name} could not start") if n.id], 20,
                            f"the card of profile {name}\n{app.output()}")
    assert card.body.startswith('context "no-such-context" not found in the kubeconfig'), card.body
    assert list(card.actions.values()) == ["Retry", "Edit profiles"], card.actions
    # The menu's Retry fails the same way: the card is replaced (replaces_id), not doubled.
    app.menu.click_path(lambda label: label.startswith(f"{name}  "), "Retry")
    again = notes.wait_for(lambda m: m.about(f"Profile {name} could not start")[1:], 20, "the card again")[0]
    assert again.replaces_id == card.id, (again, card)
    time.sleep(0.5)
    assert len(notes.about(f"Profile {name} could not start")) == 2
    # SIGTERM: the card is closed by the tray itself (within ~1 s) before its bus connection goes.
    app.proc.terminate()
    signalled = time.monotonic()
    notes.wait_for(lambda m: card.id in m.closed_by_app, 5, f"CloseNotification({card.id})\n{app.output()}")
    assert time.monotonic() - signalled < 1.5, f"closed {time.monotonic() - signalled:.2f} s after SIGTERM"
    assert app.proc.wait(10) == 0, app.output()
    assert "Traceback" not in app.log(), app.output()
