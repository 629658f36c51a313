"""The cluster proxy's item in each context's submenu (issue 14), and the tray's click on it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ui.fakes import FakeDialogs, FakeManager, FakeNotifier, FakeView, cluster
from tray.errors import UsageError
from tray.ui.controller import Controller
from tray.ui.menu import MenuState, build_menu
from tray.ui.model import Action, ActionKind, Item


def context_menu(state: MenuState, label: str) -> Item:
    return build_menu(state).child("Clusters").child(label)


def test_each_context_offers_its_proxy_unchecked_when_off() -> None:
    state = MenuState(clusters=[cluster("tender-a", True), cluster("tender-b")])
    for label, context in (("tender-a (current)", "tender-a"), ("tender-b", "tender-b")):
        item = context_menu(state, label).child("Cluster proxy (SOCKS5/HTTP)")
        assert item.checked is False and item.enabled
        assert item.action == Action(ActionKind.TOGGLE_PROXY, (context,))


def test_a_running_proxy_is_checked_and_says_where_it_listens() -> None:
    state = MenuState(clusters=[cluster("tender-a", True), cluster("tender-b")],
                      proxies={"tender-b": "127.0.0.1:1081"})
    on = context_menu(state, "tender-b").child("Cluster proxy on 127.0.0.1:1081")
    assert on.checked is True and on.action == Action(ActionKind.TOGGLE_PROXY, ("tender-b",))
    off = context_menu(state, "tender-a (current)")
    assert off.child("Cluster proxy (SOCKS5/HTTP)").checked is False
    assert not [c for c in off.children if c.label.startswith("Cluster proxy on")]


def test_the_proxy_item_sits_above_refresh_between_separators() -> None:
    children = context_menu(MenuState(clusters=[cluster("tender-a", True)]), "tender-a (current)").children
    i = [c.label for c in children].index("Cluster proxy (SOCKS5/HTTP)")
    assert children[i - 1].separator and children[i + 1].separator and children[i + 2].label == "Refresh"


# ---------------------------------------------------------------- the click
@dataclass(frozen=True)
class Info:
    context: str
    listen: str
    connections: int = 0
    connections_total: int = 0
    last_error: str = ""


class ProxyManager(FakeManager):
    """FakeManager with proxies that bind nothing (the ports are chosen by tray.api.proxies)."""

    def __init__(self) -> None:
        super().__init__([cluster("tender-a", True), cluster("tender-b")])
        self.running: dict[str, Info] = {}
        self.refuse: str | None = None

    def proxies(self) -> list[Info]:
        return list(self.running.values())

    def start_proxy(self, context: str, listen: str = "127.0.0.1:1080") -> Info:
        self.calls.append(("start_proxy", context, listen))
        if self.refuse:
            raise UsageError(self.refuse, field="listen")
        self.running[context] = Info(context, listen)
        return self.running[context]

    def stop_proxy(self, context: str) -> None:
        self.calls.append(("stop_proxy", context))
        del self.running[context]


@pytest.fixture
def tray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    from tray.api import proxies

    monkeypatch.setattr(proxies, "port_is_free", lambda host, port: port != 1080)  # 1080: someone else's
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    manager = ProxyManager()
    view, notifier = FakeView(), FakeNotifier()
    c = Controller(manager, view, FakeDialogs(), notifier, profiles_path=tmp_path / "profiles.yaml",
                   settings_file=tmp_path / "settings.json", refresh_interval=0.01, watch_interval=60)
    c.notifications._buffer.window = 0.05
    c.start()
    yield c, manager, view, notifier
    c.close()


def last_menu_item(view: FakeView, context_label: str, prefix: str) -> Item:
    deadline = time.monotonic() + 5
    while True:
        menu = view.menu if view.shown else None
        if menu is not None:
            found = [i for i in menu.child("Clusters").child(context_label).children if i.label.startswith(prefix)]
            if found or time.monotonic() > deadline:
                return found[0] if found else None  # type: ignore[return-value]
        elif time.monotonic() > deadline:
            raise AssertionError("no menu shown")
        time.sleep(0.02)


def test_clicking_starts_the_proxy_on_a_free_default_port_and_clicking_again_stops_it(tray) -> None:  # noqa: ANN001
    c, manager, view, notifier = tray
    c.dispatch(Action(ActionKind.TOGGLE_PROXY, ("tender-b",))).result(5)
    assert manager.calls[-1] == ("start_proxy", "tender-b", "127.0.0.1:1081")  # 1080 was taken
    item = last_menu_item(view, "tender-b", "Cluster proxy on")
    assert item is not None and item.label == "Cluster proxy on 127.0.0.1:1081" and item.checked

    c.dispatch(item.action).result(5)
    assert manager.calls[-1] == ("stop_proxy", "tender-b") and manager.running == {}
    assert last_menu_item(view, "tender-b", "Cluster proxy (SOCKS5/HTTP)").checked is False


def test_a_proxy_that_cannot_start_is_a_notification(tray) -> None:  # noqa: ANN001
    c, manager, view, notifier = tray
    manager.refuse = "the engine says no"
    c.dispatch(Action(ActionKind.TOGGLE_PROXY, ("tender-a",))).result(5)
    deadline = time.monotonic() + 5
    while ("Could not start the cluster proxy", "listen: the engine says no") not in notifier.sent:
        assert time.monotonic() < deadline, notifier.sent
        time.sleep(0.02)
    assert manager.running == {}
    assert last_menu_item(view, "tender-a (current)", "Cluster proxy (SOCKS5/HTTP)").checked is False
