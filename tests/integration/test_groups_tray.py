"""The tray's "Forward every Service (own addresses)" on a real engine (issue 14): the click (on a worker,
never the UI thread) starts the namespace group, whose members answer on their Services' own addresses;
the item then says "Stop forwarding every Service (N forwards)", and its click closes them all.

The controller runs with a real :class:`ForwardManager` on the test cluster and an in-memory view (as
tests/integration/test_proxy_ui.py's tray test does); the namespace is test_groups_engine.py's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusterlib import Cluster
from tests.integration.engine import wait_for
from tests.integration.test_groups_engine import SERVICES, all_answer, all_refuse, group_ns  # noqa: F401 - fixture
from tests.ui.fakes import FakeDialogs, FakeNotifier, FakeView
from tray.engine.manager import ForwardManager
from tray.ui.controller import Controller
from tray.ui.menu_clusters import GROUP_START, GROUP_STOP
from tray.ui.model import Item

pytestmark = pytest.mark.cluster


@pytest.fixture
def tray(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Controller, FakeView,
                                                                                                ForwardManager]]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    manager = ForwardManager(cluster.kubeconfig)
    view = FakeView()
    c = Controller(manager, view, FakeDialogs(), FakeNotifier(), profiles_path=tmp_path / "profiles.yaml",
                   settings_file=tmp_path / "settings.json", refresh_interval=0.05, watch_interval=60)
    c.start()
    try:
        yield c, view, manager
    finally:
        c.close()
        manager.shutdown()


def group_entry(view: FakeView, context: str, namespace: str) -> Item | None:
    if not view.shown:
        return None
    for item in view.menu.child("Clusters").children:
        if item.label.split(" ")[0] == context:
            ns = next((i for i in item.children if i.label.split(" (")[0] == namespace), None)
            return ns.children[0] if ns is not None and ns.children else None
    return None


def test_the_trays_click_forwards_every_service_and_a_second_click_stops_them(
        cluster: Cluster, group_ns: str, tray: tuple[Controller, FakeView, ForwardManager]) -> None:
    c, view, manager = tray
    ctx, ns = cluster.context, group_ns
    entry = wait_for(lambda: group_entry(view, ctx, ns), 20, f"the namespace {ns}'s first item")
    assert entry.label == GROUP_START
    t0 = time.monotonic()
    c.dispatch(entry.action)  # returns at once: the start runs on a worker
    assert time.monotonic() - t0 < 0.5
    all_answer(ctx, ns)
    [group] = manager.groups()
    assert (group.cluster_id, group.namespace, len(group.members)) == (ctx, ns, SERVICES)
    stop = wait_for(lambda: (lambda i: i if i is not None and i.label.startswith(GROUP_STOP) else None)(
        group_entry(view, ctx, ns)), 15, "the item to offer the stop")
    assert stop.label == f"{GROUP_STOP} ({SERVICES} forwards)"

    c.dispatch(stop.action).result(15)
    assert manager.groups() == [] and manager.list() == []
    all_refuse(ctx, ns)
    wait_for(lambda: (lambda i: i is not None and i.label == GROUP_START)(group_entry(view, ctx, ns)), 15,
             "the item to offer the start again")
