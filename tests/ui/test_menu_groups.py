"""A namespace's "Forward every Service (own addresses)" in the tray (issue 14): the item, the click (a worker
thread starts the namespace group; a second click stops it), and a namespace profile stopped before it has
members."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ui.fakes import FakeDialogs, FakeManager, FakeNotifier, FakeView, cluster
from tray.domain.servicegroup import NamespaceSpec, NamespaceTarget
from tray.errors import UsageError
from tray.profiles.model import Profile
from tray.ui.controller import Controller
from tray.ui.menu import MenuState, build_menu
from tray.ui.menu_clusters import GROUP_START, GROUP_STOP
from tray.ui.model import Action, ActionKind, Item
from tray.ui.resources import ClusterTree, Ready

TREE = ClusterTree(namespaces=Ready(("demo", "shop")))


def namespace_menu(state: MenuState, context_label: str, ns: str) -> Item:
    context = build_menu(state).child("Clusters").child(context_label)
    return next(c for c in context.children if c.label.split(" (")[0] == ns)


def test_each_namespace_starts_with_forward_every_service() -> None:
    state = MenuState(clusters=[cluster("tender-a", True)], trees={"tender-a": TREE})
    for ns in ("demo", "shop"):
        children = namespace_menu(state, "tender-a (current)", ns).children
        assert children[0].label == GROUP_START and children[0].enabled
        assert children[0].action == Action(ActionKind.NAMESPACE_GROUP, ("tender-a", ns))
        assert children[1].separator and children[2].label == "Load resources…"


def test_a_forwarded_namespace_offers_to_stop_and_counts_its_forwards() -> None:
    state = MenuState(clusters=[cluster("tender-a", True), cluster("tender-b")],
                      trees={"tender-a": TREE, "tender-b": TREE}, groups={("tender-a", "shop"): 3})
    shop = namespace_menu(state, "tender-a (current)", "shop").children[0]
    assert shop.label == f"{GROUP_STOP} (3 forwards)" == "Stop forwarding every Service (3 forwards)"
    assert shop.action == Action(ActionKind.NAMESPACE_GROUP, ("tender-a", "shop"))
    # Another namespace, and the same namespace of another context, are not forwarded.
    assert namespace_menu(state, "tender-a (current)", "demo").children[0].label == GROUP_START
    assert namespace_menu(state, "tender-b", "shop").children[0].label == GROUP_START
    none_yet = MenuState(clusters=[cluster("tender-a", True)], trees={"tender-a": TREE},
                         groups={("tender-a", "shop"): 0})
    assert namespace_menu(none_yet, "tender-a (current)", "shop").children[0].label == f"{GROUP_STOP} (0 forwards)"


# ---------------------------------------------------------------- the click
@dataclass(frozen=True)
class Group:
    id: str
    cluster_id: str
    namespace: str
    profile: str | None = None
    members: tuple[str, ...] = ()


class GroupManager(FakeManager):
    """FakeManager with namespace groups that forward nothing; records the thread each start runs on."""

    def __init__(self) -> None:
        super().__init__([cluster("tender-a", True)])
        self.running: dict[str, Group] = {}
        self.threads: list[str] = []

    def groups(self) -> list[Group]:
        return list(self.running.values())

    def start_group(self, spec: NamespaceSpec) -> str:
        self.calls.append(("start_group", spec))
        self.threads.append(threading.current_thread().name)
        gid = f"g{len(self.calls)}"
        self.running[gid] = Group(gid, spec.cluster, spec.namespace or "default", spec.profile)
        return gid

    def stop(self, sid: str) -> None:
        if sid in self.running:
            self.calls.append(("stop", sid))
            del self.running[sid]
            return
        super().stop(sid)


@pytest.fixture
def tray(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    manager = GroupManager()
    view, notifier = FakeView(), FakeNotifier()
    c = Controller(manager, view, FakeDialogs(), notifier, profiles_path=tmp_path / "profiles.yaml",
                   settings_file=tmp_path / "settings.json", refresh_interval=0.01, watch_interval=60)
    c.start()
    c.notifications._buffer.window = 0.05
    yield c, manager, notifier
    c.close()


def test_the_click_starts_the_group_off_the_ui_thread_and_a_second_click_stops_it(tray) -> None:  # noqa: ANN001
    c, manager, notifier = tray
    c.dispatch(Action(ActionKind.NAMESPACE_GROUP, ("tender-a", "shop"))).result(5)
    assert manager.calls[-1] == ("start_group", NamespaceSpec("tender-a", "shop"))
    assert manager.threads == [t for t in manager.threads if t != threading.main_thread().name] != []
    assert c.menu_state().groups == {("tender-a", "shop"): 0}
    c.dispatch(Action(ActionKind.NAMESPACE_GROUP, ("tender-a", "shop"))).result(5)
    assert manager.calls[-1] == ("stop", "g1") and manager.running == {}
    assert c.menu_state().groups == {}


def test_a_namespace_profile_without_members_yet_stops(tray) -> None:  # noqa: ANN001
    c, manager, notifier = tray
    p = Profile(name="shop-all", context="tender-a", namespace="shop", target=NamespaceTarget("shop"), ports=())
    c.start_profile(p)
    assert [g.profile for g in manager.groups()] == ["shop-all"]
    c.stop_profile(p)
    assert manager.running == {} and ("stop", "g1") in manager.calls


def test_an_unknown_context_is_a_notification(tray) -> None:  # noqa: ANN001
    c, manager, notifier = tray

    def refuse(spec: NamespaceSpec) -> str:
        raise UsageError('context "gone" not found in the kubeconfig (contexts: tender-a)', field="context")

    manager.start_group = refuse  # type: ignore[method-assign]
    c.dispatch(Action(ActionKind.NAMESPACE_GROUP, ("gone", "shop"))).result(5)
    deadline = time.monotonic() + 5
    while not any(title == "Could not forward every Service" for title, _ in notifier.sent):
        assert time.monotonic() < deadline, notifier.sent
        time.sleep(0.02)
    assert manager.running == {}


def test_a_namespace_profile_whose_group_runs_without_members_is_checked_and_offers_stop() -> None:
    p = Profile(name="shop-all", context="tender-a", namespace="shop", target=NamespaceTarget("shop"), ports=())
    stopped = build_menu(MenuState(profiles=[p], clusters=[cluster("tender-a", True)])).child("Profiles").children[0]
    assert stopped.checked is False and stopped.action == Action(ActionKind.PROFILE_START, ("shop-all",))
    running = build_menu(MenuState(profiles=[p], clusters=[cluster("tender-a", True)],
                                   grouped_profiles=frozenset({"shop-all"}))).child("Profiles").children[0]
    assert running.checked is True and running.action == Action(ActionKind.PROFILE_STOP, ("shop-all",))


def test_the_menu_state_names_the_profiles_whose_group_runs(tray) -> None:  # noqa: ANN001
    c, manager, notifier = tray
    p = Profile(name="shop-all", context="tender-a", namespace="shop", target=NamespaceTarget("shop"), ports=())
    c.start_profile(p)
    assert c.menu_state().grouped_profiles == {"shop-all"}
    c.stop_profile(p)
    assert c.menu_state().grouped_profiles == frozenset()
