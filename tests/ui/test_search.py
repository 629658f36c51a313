"""Search… in a context, through the controller: the dialog asks, the hits appear at the top of the context."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ui.fakes import FakeDialogs, FakeManager, FakeNotifier, FakeView
from tests.ui.test_loader import FakeBrowser
from tray.engine.browse import Resource
from tray.ui.controller import Controller
from tray.ui.model import Action, ActionKind, Item


class AskingDialogs(FakeDialogs):
    def __init__(self, text: str | None) -> None:
        super().__init__()
        self.text = text

    def ask_text(self, title: str, prompt: str) -> str | None:
        self.asked.append(("text", title, prompt))
        return self.text


def wait_for(fn, what: str, timeout: float = 5.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def context_items(view: FakeView, context: str) -> tuple[Item, ...]:
    """The context's submenu items, () while the menu does not show that context yet."""
    menu = context_menu(view, context)
    return menu.children if menu is not None else ()


def context_menu(view: FakeView, context: str) -> Item | None:
    if not view.shown:
        return None
    for item in view.menu.child("Clusters").children:
        if item.label.split(" ")[0] == context:
            return item
    return None


@pytest.mark.parametrize("typed", ["web", None])
def test_search_asks_and_shows_the_hits_at_the_top_of_the_context(tmp_path: Path, monkeypatch, typed) -> None:  # noqa: ANN001
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("placeholder")
    manager = FakeManager(kubeconfig=str(kubeconfig))
    view, dialogs = FakeView(), AskingDialogs(typed)
    c = Controller(manager, view, dialogs, FakeNotifier(), profiles_path=tmp_path / "profiles.yaml",
                   settings_file=tmp_path / "settings.json", refresh_interval=0.05, watch_interval=0.05)
    browser = FakeBrowser(("demo", "kube-system", "shop"), {("shop", "Service"): (Resource("web", ((80, "http", "TCP"),)),),
                                                            ("demo", "Deployment"): (Resource("web-api"),),
                                                            ("demo", "Service"): (Resource("db"),)})
    c.loader.browser = browser
    c.start()
    try:
        search = wait_for(lambda: next((i for i in context_items(view, "tender-a") if i.label == "Search…"),
                                       None), "Search…")
        assert search.action == Action(ActionKind.SEARCH, ("tender-a",))
        c.dispatch(search.action)
        wait_for(lambda: [x for x in dialogs.asked if x[0] == "text"], "the question")
        assert dialogs.asked[-1] == ("text", "Search tender-a — Tender",
                                     "Pods, services and workloads in tender-a whose name contains:")
        if typed is None:  # cancelled: nothing searched, nothing shown
            time.sleep(0.3)
            assert not [x for x in browser.asked if x[0] == "resources" and x[2] == "kube-system"]
            assert not context_menu(view, "tender-a").children[0].label.startswith("Results")
            return
        results = wait_for(lambda: next((i for i in context_items(view, "tender-a")
                                         if i.label == "Results for “web”" and i.children[0].label != "Searching…"),
                                        None), "the results")
        assert context_menu(view, "tender-a").children[0].label == "Results for “web”"  # at the top
        assert [i.label for i in results.children if not i.separator] == \
            ["Services", "web  (shop)", "Deployments", "web-api  (demo)"]
        # every namespace was searched, the system ones too
        assert {x[2] for x in browser.asked if x[0] == "resources"} >= {"demo", "kube-system", "shop"}
        forward = results.child("web  (shop)").child("Forward 80 (http)").action
        assert forward == Action(ActionKind.FORWARD, ("tender-a", "shop", "Service", "web", "http", 80))
    finally:
        c.close()
