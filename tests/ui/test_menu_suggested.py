"""The namespace menu's "Suggested by annotations" section (issue 14 part 4): a pure function of the loaded lists."""

from __future__ import annotations

from tests.ui.fakes import cluster, session
from tray.engine.browse import resources_of
from tray.ui.menu import MenuState, build_menu
from tray.ui.menu_clusters import GROUP_START
from tray.ui.model import Action, ActionKind, Item
from tray.ui.resources import KIND_SECTIONS, ClusterTree, Loading, Ready


def loaded(ns: str, **answers: list[dict]) -> dict:
    """The tree's lists of ``ns``: each kind's LIST items as the browse API reads them (annotations and all)."""
    return {(ns, kind): Ready(resources_of(kind, {"items": answers.get(kind, [])})) for kind, _ in KIND_SECTIONS}


SERVICE = {"metadata": {"name": "web", "annotations": {"kftray.app/configs": "web-18080-8080,api-18081-http"}},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
DEPLOYMENT = {"metadata": {"name": "api"}, "spec": {"template": {"metadata": {"annotations": {
    "k9scli.io/port-forwards": "app::http,app::9000:9090"}}}}}
POD = {"metadata": {"name": "debug", "annotations": {"k9scli.io/auto-port-forwards": "80"}},
       "spec": {"containers": []}, "status": {"phase": "Running"}}


def demo_menu(resources: dict, sessions: list | None = None, **state: object) -> Item:
    tree = ClusterTree(namespaces=Ready(("demo",)), resources=resources)
    menu = build_menu(MenuState(clusters=[cluster("tender-a", True)], trees={"tender-a": tree},
                                sessions=sessions or [], **state))
    context = menu.child("Clusters").child("tender-a (current)")
    return next(c for c in context.children if c.label.split(" (")[0] == "demo")


def test_suggestions_come_first_services_then_workloads_then_pods_one_entry_per_port() -> None:
    demo = demo_menu(loaded("demo", Service=[SERVICE], Deployment=[DEPLOYMENT], Pod=[POD]))
    shown = [c.label for c in demo.children if not c.separator]
    assert shown[1:7] == ["Suggested by annotations", "svc/web  18080 → 80  (web)", "svc/web  18081 → http  (api)",
                         "deploy/api  … → http  (app)", "deploy/api  9000 → 9090  (app)", "pod/debug  80 → 80"]
    assert shown[7:] == ["Pods", "debug", "Services", "web", "Deployments", "api"]
    assert not demo.children[2].enabled
    assert demo.child("svc/web  18080 → 80  (web)").action == \
        Action(ActionKind.FORWARD, ("tender-a", "demo", "Service", "web", 80, 18080))
    # a port name without a local port: the same number as the port, as `tender forward deploy/api http`
    assert demo.child("deploy/api  … → http  (app)").action.args[-2:] == ("http", None)


def test_a_running_suggestion_says_where_and_a_taken_port_falls_back_to_a_free_one() -> None:
    running = session("svc/web", 18080, 80, namespace="demo")
    other = session("deploy/x", 9000, 1, namespace="elsewhere")
    demo = demo_menu(loaded("demo", Service=[SERVICE], Deployment=[DEPLOYMENT]), [running, other])
    shown = [c.label for c in demo.children if not c.separator]
    assert shown[2] == "svc/web  Forwarding 80 on 127.0.0.1:18080  (web)" and not demo.children[3].enabled
    taken = demo.child("deploy/api  9000 → 9090  (app) on a free local port (9000 is in use)")
    assert taken.action.args[-2:] == (9090, 0)


def test_no_annotations_no_section_and_kinds_still_loading_add_theirs_later() -> None:
    plain = demo_menu(loaded("demo", Service=[{"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}]))
    assert [c.label for c in plain.children if not c.separator] == [GROUP_START, "Services", "web"]
    partial = {**loaded("demo", Service=[SERVICE]), ("demo", "Deployment"): Loading()}
    labels = [c.label for c in demo_menu(partial).children if not c.separator]
    assert labels[1:4] == ["Suggested by annotations", "svc/web  18080 → 80  (web)", "svc/web  18081 → http  (api)"]
