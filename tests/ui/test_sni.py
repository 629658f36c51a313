"""The StatusNotifierItem and its dbusmenu, as a panel sees them, on a real private session bus.

Each test starts ``dbus-daemon`` with a configuration that activates nothing
(no service directories: nothing installed on the machine can answer), plays
the panel itself -- a StatusNotifierWatcher with a host, written here on
dbus-fast -- and reads and clicks the menu over ``com.canonical.dbusmenu``.
"""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, MessageType, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal
from PIL import Image

from tray.ui import bus as dbus
from tray.ui import host
from tray.ui.icon import IconState, render
from tray.ui.model import SEPARATOR, Action, ActionKind, Item, note, root, submenu
from tray.ui.sni import ICON_SIZES, ITEM_INTERFACE, MENU_INTERFACE, SniView, item_name

ROOT = Path(__file__).resolve().parents[2]
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:tmpdir=/tmp</listen><policy context="default">
<allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>
"""
WATCHER = "org.kde.StatusNotifierWatcher"
STOP = Action(ActionKind.STOP, ("s1",))
CALL_TIMEOUT = 10.0  # the test's own calls: generous, a loaded machine must not fail them
QUIT = Action(ActionKind.QUIT)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="D-Bus session bus: Linux")


@pytest.fixture
def bus_daemon(tmp_path: Path) -> Any:
    """(address, process) of a private dbus-daemon that activates nothing."""
    config = tmp_path / "bus.conf"
    config.write_text(BUS_CONFIG)
    proc = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    address = proc.stdout.readline().strip()
    assert address.startswith("unix:"), address
    yield address, proc
    proc.send_signal(signal.SIGCONT)  # in case a test stopped it and failed
    proc.terminate()
    proc.wait(5)


@pytest.fixture
def bus_address(bus_daemon: tuple[str, subprocess.Popen[str]]) -> str:
    return bus_daemon[0]


class Watcher(ServiceInterface):
    """What a panel runs: the registry of items, with a host."""

    def __init__(self) -> None:
        super().__init__(WATCHER)
        self.items: list[str] = []

    @dbus_method()
    def RegisterStatusNotifierItem(self, service: "s") -> None:
        self.items.append(service)
        self.StatusNotifierItemRegistered(service)

    @dbus_method()
    def RegisterStatusNotifierHost(self, service: "s") -> None:
        pass

    @dbus_property(access=PropertyAccess.READ)
    def RegisteredStatusNotifierItems(self) -> "as":
        return self.items

    @dbus_property(access=PropertyAccess.READ)
    def IsStatusNotifierHostRegistered(self) -> "b":
        return True

    @dbus_property(access=PropertyAccess.READ)
    def ProtocolVersion(self) -> "i":
        return 0

    @dbus_signal()
    def StatusNotifierItemRegistered(self, service: str) -> "s":
        return service


async def start_watcher(address: str) -> tuple[MessageBus, Watcher]:
    conn = await dbus.connect(address, CALL_TIMEOUT)
    watcher = Watcher()
    conn.export("/StatusNotifierWatcher", watcher)
    await conn.request_name(WATCHER)
    return conn, watcher


class RunningView:
    """An SniView served on its own thread, as ``tender tray`` serves it on the main thread."""

    def __init__(self, address: str) -> None:
        self.clicks: list[Action] = []
        self.ready = threading.Event()
        self.error: BaseException | None = None
        made = threading.Event()

        def main() -> None:
            try:
                self.view = SniView(self.clicks.append, address=address, timeout=CALL_TIMEOUT)
            except BaseException as exc:
                self.error = exc
                made.set()
                return
            made.set()
            try:
                self.view.run(self.ready.set)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        made.wait(10)
        if self.error:
            raise self.error

    def stop(self) -> None:
        self.view.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


class Panel:
    """The client side: properties, GetLayout, Event, and the signals the item sent."""

    def __init__(self, conn: MessageBus, name: str) -> None:
        self.conn = conn
        self.name = name
        self.signals: list[tuple[str, list[Any]]] = []
        conn.add_message_handler(self._on_message)

    @classmethod
    async def connect(cls, address: str, name: str) -> "Panel":
        conn = await dbus.connect(address, CALL_TIMEOUT)
        panel = cls(conn, name)
        await dbus.add_match(conn, f"type='signal',sender='{name}'", CALL_TIMEOUT)
        return panel

    def _on_message(self, msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.sender != "org.freedesktop.DBus":
            self.signals.append((msg.member, plain(list(msg.body))))

    async def prop(self, name: str) -> Any:
        return await dbus.get_property(self.conn, self.name, "/StatusNotifierItem", ITEM_INTERFACE, name,
                                       timeout=CALL_TIMEOUT)

    async def menu(self, method: str, signature: str, *body: Any) -> list[Any]:
        return plain(await dbus.call(self.conn, self.name, "/MenuBar", MENU_INTERFACE, method, signature, body,
                                     timeout=CALL_TIMEOUT))

    async def layout(self) -> dict[str, Any]:
        _revision, node = await self.menu("GetLayout", "iias", 0, -1, [])
        return tree(node)

    async def wait(self, what: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = what()
            if value:
                return value
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)


async def released(conn: MessageBus, name: str, timeout: float = 10.0) -> bool:
    """Whether ``name`` has no owner within ``timeout`` s (the daemon drops a closed connection's names later)."""
    deadline = time.monotonic() + timeout
    while await dbus.name_has_owner(conn, name, CALL_TIMEOUT):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def plain(value: Any) -> Any:
    """D-Bus structs arrive as tuples, arrays as lists: lists for both, to compare with literals."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def tree(node: list[Any]) -> dict[str, Any]:
    item_id, props, children = node
    values = {k: v.value for k, v in props.items()}
    return {"id": item_id, **values, "children": [tree(c.value) for c in children]}


def find(node: dict[str, Any], *path: str) -> dict[str, Any]:
    for label in path:
        node = next(c for c in node["children"] if c.get("label") == label)
    return node


def menu(status: str = "1 active", *, extra: bool = False) -> Item:
    rows = [submenu("web 8080 active", [note("Pod web-1"), Item("Stop", STOP)])]
    if extra:
        rows.append(submenu("db 5432 active", [Item("Stop", Action(ActionKind.STOP, ("s2",)))]))
    return root([note(status), *rows, SEPARATOR, Item("Quit", QUIT)])


def test_registers_serves_the_menu_and_clicks_reach_dispatch(bus_address: str) -> None:
    async def scenario() -> None:
        watcher_conn, watcher = await start_watcher(bus_address)
        app = RunningView(bus_address)
        try:
            panel = await Panel.connect(bus_address, item_name())
            await panel.wait(lambda: app.ready.is_set() and watcher.items)
            assert watcher.items == [item_name()]
            assert await panel.prop("ItemIsMenu") is True
            assert await panel.prop("Menu") == "/MenuBar"
            assert await panel.prop("Category") == "ApplicationStatus" and await panel.prop("Id") == "tender"
            assert await panel.prop("IconName") == ""
            assert (await panel.layout())["children"][0]["label"] == "Starting…"

            app.view.show(menu(), IconState.ACTIVE, 1, "Tender — 1 active")
            await panel.wait(lambda: any(s == "LayoutUpdated" for s, _ in panel.signals))
            shown = await panel.layout()
            assert [c.get("label") for c in shown["children"]] == ["1 active", "web 8080 active", None, "Quit"]
            assert find(shown, "1 active")["enabled"] is False
            assert plain(await panel.prop("ToolTip")) == ["", [], "Tender", "1 active"]

            stop = find(shown, "web 8080 active", "Stop")
            await panel.menu("Event", "isvu", stop["id"], "clicked", Variant("i", 0), 0)
            await panel.wait(lambda: app.clicks)
            assert app.clicks == [STOP]
            quit_ = find(shown, "Quit")
            errors = await panel.menu("EventGroup", "a(isvu)", [[quit_["id"], "clicked", Variant("i", 0), 0],
                                                                  [4242, "clicked", Variant("i", 0), 0]])
            assert errors == [[4242]]
            await panel.wait(lambda: len(app.clicks) == 2)
            assert app.clicks == [STOP, QUIT]
            # hovering or opening is not a click; a note has nothing to do
            await panel.menu("Event", "isvu", find(shown, "1 active")["id"], "clicked", Variant("i", 0), 0)
            await panel.menu("Event", "isvu", stop["id"], "hovered", Variant("i", 0), 0)
            with pytest.raises(dbus.BusUnavailable, match="does not refer to a menu item"):
                await panel.menu("Event", "isvu", 4242, "clicked", Variant("i", 0), 0)
            assert await panel.menu("AboutToShowGroup", "ai", [0, stop["id"], 4242]) == [[], [4242]]
            assert await panel.menu("AboutToShow", "i", 0) == [False]
            props = await panel.menu("GetGroupProperties", "aias", [stop["id"]], ["label"])
            assert props == [[[stop["id"], {"label": Variant("s", "Stop")}]]]
            assert (await panel.menu("GetProperty", "is", stop["id"], "enabled"))[0].value is True
            await asyncio.sleep(0.1)
            assert app.clicks == [STOP, QUIT]
        finally:
            app.stop()
            watcher_conn.disconnect()
        assert app.error is None

    asyncio.run(scenario())


def test_changes_are_told_as_property_or_layout_updates_and_nothing_else(bus_address: str) -> None:
    async def scenario() -> None:
        watcher_conn, watcher = await start_watcher(bus_address)
        app = RunningView(bus_address)
        try:
            panel = await Panel.connect(bus_address, item_name())
            await panel.wait(lambda: app.ready.is_set())
            app.view.show(menu(), IconState.ACTIVE, 1, "Tender — 1 active")
            await panel.wait(lambda: any(s == "NewToolTip" for s, _ in panel.signals))  # the update's last signal
            assert {"LayoutUpdated", "NewIcon", "NewAttentionIcon"} <= {s for s, _ in panel.signals}
            first = await panel.layout()
            panel.signals.clear()

            app.view.show(menu(), IconState.ACTIVE, 1, "Tender — 1 active")  # the same: nothing is sent
            await asyncio.sleep(0.3)
            assert panel.signals == []

            app.view.show(menu("1 reconnecting"), IconState.ACTIVE, 1, "Tender — 1 active")
            await panel.wait(lambda: panel.signals)
            await asyncio.sleep(0.2)
            assert [s for s, _ in panel.signals] == ["ItemsPropertiesUpdated"]
            updated, removed = panel.signals[0][1]
            status_id = find(first, "1 active")["id"]
            assert updated == [[status_id, {"label": Variant("s", "1 reconnecting")}]] and removed == []
            panel.signals.clear()

            app.view.show(menu("1 reconnecting", extra=True), IconState.ACTIVE, 1, "Tender — 1 active")
            await panel.wait(lambda: panel.signals)
            await asyncio.sleep(0.2)
            assert [s for s, _ in panel.signals] == ["LayoutUpdated"]
            revision, parent = panel.signals[0][1]
            assert parent == 0
            new_revision, _ = await panel.menu("GetLayout", "iias", 0, -1, [])
            assert new_revision == revision
            assert find(await panel.layout(), "db 5432 active")["children-display"] == "submenu"
            panel.signals.clear()

            app.view.show(menu("1 reconnecting", extra=True), IconState.ERROR, 1, "Tender — 1 error")
            await panel.wait(lambda: len(panel.signals) >= 4)
            await asyncio.sleep(0.2)
            assert sorted(s for s, _ in panel.signals) == ["NewAttentionIcon", "NewIcon", "NewStatus", "NewToolTip"]
            assert ("NewStatus", ["NeedsAttention"]) in panel.signals
            assert await panel.prop("Status") == "NeedsAttention"
            assert plain(await panel.prop("ToolTip")) == ["", [], "Tender", "1 error"]
        finally:
            app.stop()
            watcher_conn.disconnect()

    asyncio.run(scenario())


def test_icon_pixmaps_are_the_rendered_icon_in_argb32_network_order(bus_address: str) -> None:
    async def scenario() -> None:
        watcher_conn, _ = await start_watcher(bus_address)
        app = RunningView(bus_address)
        try:
            panel = await Panel.connect(bus_address, item_name())
            await panel.wait(lambda: app.ready.is_set())
            app.view.show(menu(), IconState.RECONNECTING, 3, "Tender — 3 active")
            await panel.wait(lambda: any(s == "NewIcon" for s, _ in panel.signals))
            pixmaps = await panel.prop("IconPixmap")
            assert [(w, h) for w, h, _ in pixmaps] == [(s, s) for s in ICON_SIZES]
            for width, height, data in pixmaps:
                assert len(data) == width * height * 4
                a, r, g, b = Image.frombytes("RGBA", (width, height), bytes(data)).split()  # bytes are A R G B
                decoded = Image.merge("RGBA", (r, g, b, a))
                assert decoded.tobytes() == render(IconState.RECONNECTING, 3, width).tobytes()
        finally:
            app.stop()
            watcher_conn.disconnect()

    asyncio.run(scenario())


def test_registers_again_when_the_watcher_comes_back(bus_address: str) -> None:
    async def scenario() -> None:
        watcher_conn, watcher = await start_watcher(bus_address)
        app = RunningView(bus_address)
        try:
            panel = await Panel.connect(bus_address, item_name())
            await panel.wait(lambda: app.view.registrations == 1)
            watcher_conn.disconnect()  # the panel exits...
            await asyncio.sleep(0.3)
            watcher_conn, watcher = await start_watcher(bus_address)  # ...and starts again
            await panel.wait(lambda: watcher.items)
            assert watcher.items == [item_name()]
            await panel.wait(lambda: app.view.registrations == 2)  # the watcher's reply reached the item
            await asyncio.sleep(0.2)
            assert app.view.registrations == 2 and watcher.items == [item_name()]  # once, not twice
        finally:
            app.stop()
            watcher_conn.disconnect()

    asyncio.run(scenario())


def test_stop_releases_the_name(bus_address: str) -> None:
    async def scenario() -> None:
        watcher_conn, watcher = await start_watcher(bus_address)
        app = RunningView(bus_address)
        assert await asyncio.get_running_loop().run_in_executor(None, app.ready.wait, 20)
        assert await dbus.name_has_owner(watcher_conn, item_name())
        app.stop()
        assert await released(watcher_conn, item_name())
        watcher_conn.disconnect()

    asyncio.run(scenario())


def test_without_a_watcher_run_raises_one_line(bus_address: str) -> None:
    app = RunningView(bus_address)
    app.thread.join(10)
    assert isinstance(app.error, dbus.BusUnavailable)
    assert "ServiceUnknown" in str(app.error) and "\n" not in str(app.error)


# ---------------------------------------------------------------- host detection


def test_host_is_sni_with_a_watcher_and_a_host(bus_address: str) -> None:
    async def scenario() -> str | None:
        conn, _ = await start_watcher(bus_address)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, lambda: host.check_host({"DISPLAY": ":99", "DBUS_SESSION_BUS_ADDRESS": bus_address},
                                              platform="linux", timeout=5).backend)
        finally:
            conn.disconnect()

    assert asyncio.run(scenario()) == "sni"


def test_host_without_a_watcher_on_gnome_names_the_extension(bus_address: str) -> None:
    env = {"WAYLAND_DISPLAY": "wayland-0", "DBUS_SESSION_BUS_ADDRESS": bus_address,
           "XDG_CURRENT_DESKTOP": "ubuntu:GNOME"}
    result = host.check_host(env, platform="linux")
    assert result.backend is None
    assert "AppIndicator and KStatusNotifierItem Support" in result.reason
    assert "appindicatorsupport@rgcjonas.gmail.com" in result.reason
    result = host.check_host({**env, "XDG_CURRENT_DESKTOP": "KDE"}, platform="linux")
    assert result.backend is None and result.reason == host.NO_HOST


def test_host_with_no_session_bus_says_so_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    result = host.check_host({"WAYLAND_DISPLAY": "wayland-0", "XDG_RUNTIME_DIR": str(tmp_path)}, platform="linux")
    assert result.backend is None and "no session bus" in result.reason
    gone = host.check_host({"WAYLAND_DISPLAY": "w", "DBUS_SESSION_BUS_ADDRESS": f"unix:path={tmp_path}/nothing"},
                           platform="linux")
    assert gone.backend is None and "cannot connect to the session bus" in gone.reason
    for address in ("nonsense", "autolaunch:"):
        bad = host.check_host({"WAYLAND_DISPLAY": "w", "DBUS_SESSION_BUS_ADDRESS": address}, platform="linux")
        assert bad.backend is None and address in bad.reason and "\n" not in bad.reason
    assert time.monotonic() - started < 2


def test_host_with_a_bus_that_never_answers_gives_up_in_time(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "silent"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)  # accepts, never speaks
    try:
        started = time.monotonic()
        result = host.check_host({"WAYLAND_DISPLAY": "w", "DBUS_SESSION_BUS_ADDRESS": f"unix:path={path}"},
                                 platform="linux", timeout=0.5)
        assert time.monotonic() - started < 1.5
        assert result.backend is None and "did not answer" in result.reason
    finally:
        server.close()


def test_the_runtime_dir_socket_is_the_fallback_address(tmp_path: Path) -> None:
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "bus"))
    try:
        assert dbus.session_bus_address({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"unix:path={tmp_path}/bus"
        both = {"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x", "XDG_RUNTIME_DIR": str(tmp_path)}
        assert dbus.session_bus_address(both) == "unix:path=/x"
    finally:
        sock.close()


def test_xorg_is_refused_with_what_to_install() -> None:
    result = host.check_host({"DISPLAY": ":99", "PYSTRAY_BACKEND": "xorg"}, platform="linux")
    assert result.backend is None and "pipx inject kube-tender PyGObject" in result.reason


def test_the_sni_path_never_imports_gi(bus_address: str, tmp_path: Path) -> None:
    """``tender``'s Linux path in a process where ``import gi`` fails: it still registers its item."""
    code = (
        "import sys; sys.modules['gi'] = None\n"
        "from tray.ui import host\n"
        "assert host.check_host(timeout=5).backend == 'sni', host.check_host(timeout=5)\n"
        "from tray.ui.app import make_view\n"
        "view = make_view('sni', print)\n"
        "view.run(lambda: (print('registered', view.registrations, flush=True), view.stop()))\n"
        "assert 'gi' not in sys.modules or sys.modules['gi'] is None\n"
        "assert 'pystray' not in sys.modules\n"
        "print('done', flush=True)\n"
    )

    async def scenario() -> subprocess.CompletedProcess[str]:
        conn, watcher = await start_watcher(bus_address)
        try:
            env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": bus_address, "DISPLAY": ":99", "HOME": str(tmp_path)}
            env.pop("PYSTRAY_BACKEND", None)
            return await asyncio.get_running_loop().run_in_executor(None, lambda: subprocess.run(
                [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=30))
        finally:
            conn.disconnect()

    proc = asyncio.run(scenario())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["registered 1", "done"], proc.stdout + proc.stderr


@pytest.mark.parametrize("case", ["no bus", "a bus that never answers"])
def test_tender_tray_without_a_working_bus_runs_the_engine_with_its_dashboard(case: str, tmp_path: Path) -> None:
    """A display but no tray: the engine runs without an icon, the dashboard opens, SIGTERM ends it (exit 0)."""
    import socket
    import urllib.request
    from http.cookiejar import CookieJar

    opened = tmp_path / "opened"
    browser = tmp_path / "browser"
    browser.write_text(f"#!/bin/sh\nprintf '%s' \"$1\" > {opened}\n")
    browser.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "PYSTRAY_", "WAYLAND_", "XDG_"))}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_RUNTIME_DIR=str(tmp_path), DISPLAY=":1999",  # no X server there: no XEmbed tray either
               BROWSER=str(browser))
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if case == "a bus that never answers":
        server.bind(str(tmp_path / "bus"))  # the $XDG_RUNTIME_DIR/bus fallback, accepting and silent
        server.listen(1)
    err = tmp_path / "stderr"
    started = time.monotonic()
    with open(err, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tray", "tray", "--kubeconfig", str(tmp_path / "none")],
                                env=env, stdout=out, stderr=out, cwd=ROOT)
    try:
        # With a bus that never answers, Python's webbrowser asks `xdg-settings`, whose dbus-send waits 25 s
        # for that bus (on a thread of its own: the engine does not wait): the line is what this case checks.
        browsed = case == "no bus"
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline and not (
                opened.exists() and opened.read_text() if browsed else "dashboard at" in err.read_text()):
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        lines = err.read_text().strip().splitlines()
        assert proc.poll() is None, lines
        assert len(lines) == 1 and lines[0].startswith("tender: no system tray here: "), lines
        assert ("no session bus" if case == "no bus" else "did not answer within") in lines[0]
        assert "Tender runs without an icon: dashboard at http://127.0.0.1:" in lines[0]
        assert "token" not in lines[0] and "'tender dashboard' opens it" in lines[0]
        assert elapsed < 10, elapsed  # the probe gives up after 1.5 s; the rest is Python starting
        from tray.api.client import EngineClient

        with EngineClient(tmp_path / "tender" / "engine.sock", timeout=10) as client:
            engine = client.get("/v1/engine")
            url = opened.read_text() if browsed else client.post("/v1/dashboard")["url"]
        assert url.startswith(lines[0].split("dashboard at ")[1].split()[0] + "?code=")
        web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        with web.open(url, timeout=10) as page:  # the one-time code traded for a cookie, then the page
            assert page.status == 200 and "Tender" in page.read().decode()
        assert (engine["host"], engine["pid"]) == ("daemon", proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not (tmp_path / "tender" / "engine.sock").exists()
    finally:
        server.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_tender_tray_without_a_display_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DBUS_", "PYSTRAY_", "WAYLAND_", "XDG_", "DISPLAY"))}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               XDG_RUNTIME_DIR=str(tmp_path), BROWSER="false")
    proc = subprocess.run([sys.executable, "-m", "tray", "tray"], env=env, capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tender: no system tray here: no display"), proc.stderr
    assert "`tender daemon` runs Tender without one" in lines[0]
    assert not (tmp_path / "tender" / "engine.sock").exists()  # the claim went with it


def test_tender_tray_registers_its_item_and_a_sigterm_stops_it_cleanly(bus_address: str, tmp_path: Path) -> None:
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "PYSTRAY_", "WAYLAND_", "XDG_"))}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               DISPLAY=":1999", DBUS_SESSION_BUS_ADDRESS=bus_address)

    async def scenario() -> tuple[int, str, float]:
        conn, watcher = await start_watcher(bus_address)
        proc = subprocess.Popen([sys.executable, "-m", "tray", "tray", "--kubeconfig", str(tmp_path / "none")],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            panel = Panel(conn, item_name(proc.pid))
            await panel.wait(lambda: watcher.items, timeout=20)
            assert watcher.items == [item_name(proc.pid)]
            first = None
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the controller's first menu replaces "Starting…"
                first = (await panel.layout())["children"][0].get("label")
                if first != "Starting…":
                    break
                await asyncio.sleep(0.1)
            assert first == "No forwards running"
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            rc = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
            assert await released(conn, item_name(proc.pid))
            return rc, proc.stdout.read() if proc.stdout else "", time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            conn.disconnect()

    rc, output, took = asyncio.run(scenario())
    assert rc == 0, output
    assert "Traceback" not in output
    assert took < 5


@pytest.mark.parametrize("sni, xembed, gtk, forced, expected", [
    (True, True, True, "", "sni"),  # xfce4-panel is both: our item, not pystray
    (False, True, True, "", "gtk"),
    (False, True, False, "", None),  # XEmbed only, no PyGObject: refused, saying what to install
    (True, True, True, "gtk", "gtk"),
    (False, False, True, "gtk", None),
    (True, False, False, "appindicator", "sni"),
    (False, True, True, "sni", None),
])
def test_host_choice(monkeypatch: pytest.MonkeyPatch, sni: bool, xembed: bool, gtk: bool, forced: str,
                     expected: str | None) -> None:
    monkeypatch.setattr(host, "status_notifier_host", lambda env, timeout: sni)
    monkeypatch.setattr(host, "xembed_tray", lambda display: xembed)
    monkeypatch.setattr(host, "has_gtk3", lambda: gtk)
    result = host.check_host({"DISPLAY": ":5", "PYSTRAY_BACKEND": forced}, platform="linux")
    assert result.backend == expected, result
    if expected is None:
        assert result.reason and "\n" not in result.reason
    if (sni, xembed, gtk, forced) == (False, True, False, ""):
        assert "pipx inject kube-tender PyGObject" in result.reason and "StatusNotifier host" in result.reason


def test_host_on_macos_and_windows_is_pystrays_own() -> None:
    assert host.check_host({}, platform="darwin") == host.HostCheck("")
    assert host.check_host({"PYSTRAY_BACKEND": "dummy"}, platform="win32") == host.HostCheck("dummy")


def test_a_bus_problem_is_named_first_even_where_an_xembed_tray_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_bus(env: object, timeout: float) -> bool:
        raise dbus.BusUnavailable("no session bus (DBUS_SESSION_BUS_ADDRESS is not set, no $XDG_RUNTIME_DIR/bus)")

    monkeypatch.setattr(host, "status_notifier_host", no_bus)
    monkeypatch.setattr(host, "xembed_tray", lambda display: True)
    monkeypatch.setattr(host, "has_gtk3", lambda: False)
    result = host.check_host({"DISPLAY": ":5"}, platform="linux")
    assert result.backend is None and result.reason.startswith("no session bus")
    assert "pipx inject kube-tender PyGObject" in result.reason and "\n" not in result.reason
    monkeypatch.setattr(host, "has_gtk3", lambda: True)
    assert host.check_host({"DISPLAY": ":5"}, platform="linux").backend == "gtk"  # GtkStatusIcon needs no bus


def test_a_bus_daemon_slow_to_read_does_not_cost_the_connection(bus_daemon: tuple[str, subprocess.Popen[str]]) -> None:
    """The daemon stops reading (a busy machine) while the item sends more than a socket buffer holds.

    dbus-fast would take the full buffer for a broken connection and the icon
    would vanish; the item must wait, then deliver everything in order.
    """
    address, daemon = bus_daemon

    def big(n: int) -> Item:
        rows = [Item(f"row {i} of update {n} " + "x" * 2000, Action(ActionKind.STOP, (str(i),))) for i in range(60)]
        return root([note(f"update {n}"), *rows])

    async def scenario() -> None:
        watcher_conn, watcher = await start_watcher(address)
        app = RunningView(address)
        try:
            panel = await Panel.connect(address, item_name())
            await panel.wait(lambda: app.ready.is_set() and watcher.items)
            daemon.send_signal(signal.SIGSTOP)
            try:
                for n in range(8):  # each update relabels 60 items: ~120 kB of ItemsPropertiesUpdated
                    app.view.show(big(n), IconState.ACTIVE, n, f"Tender — {n}")
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
            finally:
                daemon.send_signal(signal.SIGCONT)
            await panel.wait(lambda: sum(s == "NewToolTip" for s, _ in panel.signals) == 8)  # one per update
            shown = await panel.layout()
            assert shown["children"][0]["label"] == "update 7"
            assert app.view.bus.connected and app.thread.is_alive() and app.error is None
        finally:
            app.stop()
            watcher_conn.disconnect()
        assert app.error is None

    asyncio.run(scenario())


def test_when_the_session_bus_dies_tender_tray_ends_with_one_log_line(bus_daemon: tuple[str, subprocess.Popen[str]],
                                                                      tmp_path: Path) -> None:
    address, daemon = bus_daemon
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBUS_", "PYSTRAY_", "WAYLAND_", "XDG_"))}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"),
               DISPLAY=":1999", DBUS_SESSION_BUS_ADDRESS=address)

    async def scenario() -> tuple[int, str]:
        conn, watcher = await start_watcher(address)
        proc = subprocess.Popen([sys.executable, "-m", "tray", "tray", "--kubeconfig", str(tmp_path / "none")],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            panel = Panel(conn, item_name(proc.pid))
            await panel.wait(lambda: watcher.items)
            conn.disconnect()
            daemon.kill()  # the session ends under the tray
            daemon.wait(5)
            rc = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)
            return rc, proc.stdout.read() if proc.stdout else ""
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    rc, output = asyncio.run(scenario())
    log = (tmp_path / "state" / "tender" / "log" / "tender.log").read_text()
    assert rc == 0 and "Traceback" not in output, output
    assert "Traceback" not in log and "never retrieved" not in log, log
    assert log.count("the session bus connection closed") == 1, log
