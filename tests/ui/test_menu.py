"""The menu model is a pure function of the engine's state: checked on plain data."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ui.fakes import cluster, profile, session
from tray.ui import labels
from tray.ui.icon import IconState
from tray.ui.menu import MAX_TOP_LEVEL_FORWARDS, MenuState, build_menu, icon_of, session_item, status_text
from tray.ui.menu_clusters import GROUP_START
from tray.ui.model import Action, ActionKind, Item
from tray.ui.resources import KIND_SECTIONS, ClusterTree, Failed, Loading, Ready, Resource


def labels_of(item: Item) -> list[str]:
    return [c.label for c in item.children if not c.separator]


def actions_of(item: Item) -> set[ActionKind]:
    return {c.action.kind for c in item.children if c.action}


# ------------------------------------------------------------------ status line and labels
def test_status_line_counts_every_status() -> None:
    statuses = ["active"] * 3 + ["reconnecting", "error", "error"]
    assert labels.status_line(statuses) == "3 active · 1 reconnecting · 2 errors"
    assert labels.status_line(["active", "error"]) == "1 active · 1 error"
    assert labels.status_line(["starting", "active"]) == "1 active · 1 starting"
    assert labels.status_line([]) == "No forwards running"


def test_status_line_is_the_first_line_and_disabled() -> None:
    menu = build_menu(MenuState(sessions=[session(), session(status="reconnecting", reason="no ready pod")]))
    first = menu.children[0]
    assert first.label == "1 active · 1 reconnecting"
    assert not first.enabled and first.action is None


def test_session_label_format() -> None:
    s = session("svc/web", 8080, 80, cluster="tender-a", namespace="shop")
    assert labels.session_label(s) == "svc/web  8080 → 80  tender-a/shop  active"
    # named by its profile first, target and ports second
    p = session("svc/web", 8080, 80, cluster="tender-a", namespace="shop", profile="web", status="error")
    assert labels.session_label(p) == "web  svc/web  8080 → 80  tender-a/shop  error"
    # under its cluster's heading: the namespace only
    assert labels.session_label(p, cluster=False) == "web  svc/web  8080 → 80  shop  error"
    # a free local port that is not bound yet
    assert labels.session_label(session("deploy/api", 0, "http", status="starting")).startswith("deploy/api  … → http")


def test_one_notation_for_ports_in_rows_profiles_and_notifications() -> None:
    s = session("svc/web", 8080, 80, profile="web")
    assert labels.session_title(s) == "web: svc/web 8080 → 80"
    assert labels.session_title(session("svc/web", 0, "http", status="starting")) == "svc/web … → http"
    prof = build_menu(MenuState(profiles=[profile("web", ports=("8080:80", ":http", "9000"))],
                                clusters=[cluster("tender-a", True)])).child("Profiles")
    assert labels_of(prof)[0] == "web  (svc/web 8080 → 80, … → http, 9000 → 9000 · tender-a/shop)"


def test_forwards_in_several_clusters_are_grouped_under_a_heading_per_cluster() -> None:
    a = session("svc/web", 8080, 80, cluster="tender-a", profile="web")
    a2 = session("svc/api", 8081, 80, cluster="tender-a", status="error", reason="boom")
    b = session("sts/db", 15432, 5432, cluster="tender-b", namespace="data")
    menu = build_menu(MenuState(sessions=[a, b, a2]))
    assert labels_of(menu)[:6] == [
        "2 active · 1 error",
        "tender-a: 1 of 2 active, 1 error",
        "web  svc/web  8080 → 80  shop  active",
        "svc/api  8081 → 80  shop  error",
        "tender-b: 1 of 1 active",
        "sts/db  15432 → 5432  data  active",
    ]
    heading = menu.child("tender-a: 1 of 2 active, 1 error")
    assert not heading.enabled and not heading.children
    # one cluster: no heading, rows say where
    only = build_menu(MenuState(sessions=[a, a2]))
    assert labels_of(only)[1:3] == ["web  svc/web  8080 → 80  tender-a/shop  active",
                                    "svc/api  8081 → 80  tender-a/shop  error"]


def test_group_counts_never_call_a_failed_forward_running() -> None:
    assert labels.group_counts(["active"] * 3) == "3 of 3 active"
    assert labels.group_counts(["active", "active", "error"]) == "2 of 3 active, 1 error"
    assert labels.group_counts(["active", "reconnecting", "starting", "error", "error"]) == \
        "1 of 5 active, 1 reconnecting, 1 starting, 2 errors"


# ------------------------------------------------------------------ actions per status
def test_active_forward_actions() -> None:
    item = session_item(session("svc/web", 8080, 80, pod="web-7c9"))
    assert labels_of(item) == ["Pod web-7c9", "Open in browser", "Copy address", "Stop", "Save as profile…"]
    assert item.child("Open in browser").action == Action(ActionKind.OPEN_URL, ("http://127.0.0.1:8080/",))
    assert item.child("Copy address").action == Action(ActionKind.COPY, ("127.0.0.1:8080",))


def test_reconnecting_forward_shows_its_reason_and_can_be_stopped() -> None:
    item = session_item(session(status="reconnecting", reason="no ready pod behind svc/web; retrying in 4s"))
    first = item.children[0]
    assert first.label == "no ready pod behind svc/web; retrying in 4s" and not first.enabled
    assert {ActionKind.STOP, ActionKind.COPY, ActionKind.OPEN_URL} <= actions_of(item)
    assert ActionKind.RETRY not in actions_of(item) and ActionKind.REMOVE not in actions_of(item)


def test_error_forward_offers_retry_and_remove_but_not_stop() -> None:
    item = session_item(session(status="error", reason="deployments.apps \"web\" not found"))
    assert item.children[0].label == 'deployments.apps "web" not found'
    assert actions_of(item) == {ActionKind.RETRY, ActionKind.REMOVE, ActionKind.SAVE_PROFILE}


def test_starting_forward_can_be_stopped() -> None:
    assert ActionKind.STOP in actions_of(session_item(session(status="starting", local=0)))


def test_long_reasons_are_cut_to_one_line() -> None:
    item = session_item(session(status="error", reason="x" * 500 + "\nsecond line"))
    assert len(item.children[0].label) <= 100 and "\n" not in item.children[0].label


def test_open_in_browser_only_for_http_like_ports() -> None:
    for remote, name_or_port in ((80, 80), (443, 443), (3000, 3000), (9090, 9090), ("http", 8080), ("web-ui", 5000)):
        s = session("deploy/x", 18000, remote, container_port=name_or_port if isinstance(name_or_port, int) else 0)
        assert ActionKind.OPEN_URL in actions_of(session_item(s)), remote
    for remote in (5432, 6379, "metrics", "grpc"):
        s = session("deploy/x", 18000, remote, container_port=remote if isinstance(remote, int) else 7000)
        assert ActionKind.OPEN_URL not in actions_of(session_item(s)), remote


def test_https_ports_open_with_https_and_hosts_are_reachable() -> None:
    assert labels.browser_url(session("svc/api", 8443, 443)) == "https://127.0.0.1:8443/"
    assert labels.browser_url(session("svc/api", 8080, 80, address="localhost")) == "http://localhost:8080/"
    assert labels.local_address(session("svc/api", 8080, 80, address="::1")) == "[::1]:8080"
    assert labels.local_address(session("svc/api", 8080, 80, address="0.0.0.0")) == "127.0.0.1:8080"


def test_profile_sessions_are_not_offered_to_be_saved_again() -> None:
    s = session(profile="shop-web")
    item = session_item(s)
    assert ActionKind.SAVE_PROFILE not in actions_of(item)
    assert "Profile shop-web" in labels_of(item)
    # A forward saved by hand (no profile recorded by the engine) matches its profile by coordinates.
    adopted = session("svc/web", 8080, 80, cluster="tender-a", namespace="shop")
    menu = build_menu(MenuState(sessions=[adopted], profiles=[profile("web-80")], clusters=[cluster("tender-a", True)]))
    assert ActionKind.SAVE_PROFILE not in actions_of(menu.child(labels.session_label(adopted)))


def test_many_forwards_are_grouped_per_cluster() -> None:
    many = [session("svc/s%d" % i, 20000 + i, 80, cluster="tender-a") for i in range(MAX_TOP_LEVEL_FORWARDS)]
    many += [session("svc/b", 30000, 80, cluster="tender-b", status="error", reason="boom")]
    menu = build_menu(MenuState(sessions=many))
    groups = [c for c in menu.children if c.label.startswith("tender-")]
    assert [g.label for g in groups] == ["tender-a: 12 of 12 active", "tender-b: 0 of 1 active, 1 error"]
    assert len(groups[0].children) == MAX_TOP_LEVEL_FORWARDS
    assert groups[1].children[0].label == "svc/b  30000 → 80  shop  error"


# ------------------------------------------------------------------ profiles
def test_profiles_grouped_with_start_and_stop_all() -> None:
    profiles = [
        profile("loose", "svc/loose", ("7000",)),
        profile("shop-web", "svc/web", ("8080:80",), group="shop"),
        profile("shop-db", "sts/db", ("15432:5432",), group="shop"),
        profile("metrics", "ds/agent", ("9100",), group="infra", context=None),
    ]
    running = [session("svc/web", 8080, 80, profile="shop-web")]
    menu = build_menu(MenuState(sessions=running, profiles=profiles, clusters=[cluster("tender-a", True)]))
    prof = menu.child("Profiles")
    assert labels_of(prof) == [
        "loose  (svc/loose 7000 → 7000 · tender-a/shop)",
        "shop (1 of 2 running)",
        "infra (0 of 1 running)",
        "Edit profiles…",
    ]
    loose = prof.children[0]
    assert loose.checked is False and loose.action == Action(ActionKind.PROFILE_START, ("loose",))
    shop = prof.child("shop (1 of 2 running)")
    assert labels_of(shop)[:2] == ["Start all", "Stop all"]
    assert shop.child("Start all").enabled and shop.child("Stop all").enabled
    web = shop.child("shop-web  (svc/web 8080 → 80 · tender-a/shop)")
    assert web.checked is True and web.action == Action(ActionKind.PROFILE_STOP, ("shop-web",))
    infra = prof.child("infra (0 of 1 running)")
    assert not infra.child("Stop all").enabled
    # no context: the current one is shown
    assert "metrics  (ds/agent 9100 → 9100 · tender-a/shop)" in labels_of(infra)


def test_a_profile_in_error_is_counted_as_an_error_not_as_running() -> None:
    profiles = [profile("shop-web", "svc/web", ("8080:80",), group="shop"),
                profile("shop-db", "sts/db", ("15432:5432",), group="shop"),
                profile("shop-api", "svc/api", ("9000:80",), group="shop")]
    sessions = [session("svc/web", 8080, 80, profile="shop-web"),
                session("sts/db", 15432, 5432, profile="shop-db", status="error", reason="pod gone")]
    state = MenuState(sessions=sessions, profiles=profiles, clusters=[cluster("tender-a", True)],
                      profile_failures={"shop-api": "context tender-x not in the kubeconfig"})
    shop = build_menu(state).child("Profiles").child("shop (1 of 3 running, 2 errors)")
    assert "shop-db  (sts/db 15432 → 5432 · tender-a/shop)  error" in labels_of(shop)
    api = shop.child("shop-api  (svc/api 9000 → 80 · tender-a/shop)  error")
    assert api.checked is False and api.action == Action(ActionKind.PROFILE_START, ("shop-api",))


def test_a_profile_that_could_not_start_is_a_row_in_error_with_its_reason_and_retry() -> None:
    why = "/home/u/.kube/config: kubeconfig not found"
    state = MenuState(profiles=[profile("web", autostart=True), profile("db", "sts/db", ("15432:5432",))],
                      profile_failures={"web": why})
    menu = build_menu(state)
    assert menu.children[0].label == "1 profile could not start"  # never "No forwards running"
    row = menu.child("web  svc/web  8080 → 80  tender-a/shop  error")  # the columns of a forward's row
    assert row.children[0].label == why and not row.children[0].enabled
    assert row.child("Retry").action == Action(ActionKind.PROFILE_START, ("web",))
    assert icon_of(state) == (IconState.ERROR, 1)
    assert status_text(state) == "1 profile could not start"
    # with forwards running, it is counted after them
    busy = MenuState(sessions=[session()], profile_failures={"web": why, "gone": "no such context"})
    assert build_menu(busy).children[0].label == "1 active · 2 profiles could not start"
    assert "gone  profile  error" in labels_of(build_menu(busy))  # no longer in the file: named all the same
    assert icon_of(busy) == (IconState.ERROR, 2)
    assert icon_of(MenuState(sessions=[session()])) == (IconState.ACTIVE, 0)


def test_profiles_error_is_one_disabled_line_and_profiles_stay() -> None:
    err = "profiles.yaml:14: profiles[2].ports[1]: invalid port spec \"8080:x y\""
    menu = build_menu(MenuState(profiles=[profile("keep")], profiles_error=err))
    prof = menu.child("Profiles")
    line = [c for c in prof.children if c.label.startswith("⚠")]
    assert len(line) == 1 and not line[0].enabled and "profiles.yaml:14:" in line[0].label
    assert any(c.label.startswith("keep") for c in prof.children)
    assert prof.child("Edit profiles…").action == Action(ActionKind.EDIT_PROFILES)


def test_no_profiles_still_offers_editing() -> None:
    prof = build_menu(MenuState()).child("Profiles")
    assert labels_of(prof) == ["No profiles yet", "Edit profiles…"]


# ------------------------------------------------------------------ clusters
def _tree(nss: tuple[str, ...] = ("demo", "default"), resources: dict | None = None) -> ClusterTree:
    return ClusterTree(namespaces=Ready(nss), resources=resources or {})


def _ready(ns: str, **kinds: tuple[Resource, ...]) -> dict:
    out = {}
    for kind, _ in KIND_SECTIONS:
        out[(ns, kind)] = Ready(kinds.get(kind, ()))
    return out


def test_clusters_loading_failed_and_unreachable() -> None:
    clusters = [cluster("tender-a", True), cluster("tender-b"), cluster("tender-c")]
    trees = {"tender-a": ClusterTree(), "tender-b": ClusterTree(Failed("cluster unreachable: connection refused")),
             "tender-c": ClusterTree(Failed("forbidden: namespaces is forbidden"))}
    menu = build_menu(MenuState(clusters=clusters, trees=trees)).child("Clusters")
    assert labels_of(menu) == ["tender-a (current)", "tender-b — unreachable", "tender-c"]
    assert labels_of(menu.child("tender-a (current)"))[0] == "Loading…"
    b = menu.child("tender-b — unreachable")
    assert b.children[0].label == "⚠ cluster unreachable: connection refused" and not b.children[0].enabled
    assert "Refresh" in labels_of(b)


def test_namespace_resources_and_port_entries() -> None:
    web = Resource("web", ((8080, "http", "TCP"), (9100, None, "TCP"), (53, "dns", "UDP")))
    tree = _tree(resources=_ready("demo", Deployment=(web,)))
    menu = build_menu(MenuState(clusters=[cluster("tender-a", True)], trees={"tender-a": tree})).child("Clusters")
    a = menu.child("tender-a (current)")
    assert labels_of(a) == ["Search…", "demo", "default", "Cluster proxy (SOCKS5/HTTP)", "Refresh",
                            "Stop all in this cluster"]
    assert a.child("Search…").action == Action(ActionKind.SEARCH, ("tender-a",))
    demo = a.child("demo")
    assert labels_of(demo) == [GROUP_START, "Deployments", "web"]  # the kind is a heading; empty kinds are left out
    assert not demo.children[2].enabled and not demo.children[2].children
    entry = demo.child("web")
    assert labels_of(entry) == ["Forward 8080 (http)", "Forward 9100", "Forward 53/udp (dns)",
                                "Custom port…"]
    assert entry.child("Forward 8080 (http)").action == Action(ActionKind.FORWARD, ("tender-a", "demo", "Deployment", "web", "http", 8080))
    assert entry.child("Forward 9100").action.args[-2:] == (9100, 9100)
    # a UDP port goes through a relay pod: the action says UDP
    udp = entry.child("Forward 53/udp (dns)").action
    assert udp == Action(ActionKind.FORWARD, ("tender-a", "demo", "Deployment", "web", "dns", 53, "UDP"))
    custom = entry.child("Custom port…").action
    assert custom == Action(ActionKind.CUSTOM_PORT, ("tender-a", "demo", "Deployment", "web", ((8080, "http"), (9100, None))))
    # not loaded yet: an explicit "Load resources…"
    default = menu.child("tender-a (current)").child("default")
    assert default.children[2].action == Action(ActionKind.LOAD_NAMESPACE, ("tender-a", "default"))


def test_every_kind_a_forward_can_target_has_its_section_in_kubectls_order() -> None:
    listed = {kind: (Resource(f"{kind.lower()}-1", ((8080, "http", "TCP"),)),) for kind, _ in KIND_SECTIONS}
    tree = _tree(resources=_ready("demo", **listed))
    demo = build_menu(MenuState(clusters=[cluster("tender-a")], trees={"tender-a": tree})).child("Clusters") \
        .child("tender-a").child("demo")
    headings = [c.label for c in demo.children if not c.enabled and not c.separator]
    assert headings == ["Pods", "Services", "Deployments", "StatefulSets", "DaemonSets", "ReplicaSets",
                        "ReplicationControllers", "Jobs"]
    # a separator before each heading but the first, each heading followed by its resources
    assert [c.label or "-" for c in demo.children][2:8] == ["Pods", "pod-1", "-", "Services", "service-1", "-"]
    job = demo.child("job-1")
    assert job.child("Forward 8080 (http)").action == Action(ActionKind.FORWARD, ("tender-a", "demo", "Job", "job-1", "http", 8080))
    rc = demo.child("replicationcontroller-1")
    assert rc.child("Custom port…").action.args[2] == "ReplicationController"


def test_namespace_loading_and_empty() -> None:
    loading = {("demo", k): Loading() for k, _ in KIND_SECTIONS}
    tree = _tree(resources={**loading, **_ready("default")})
    a = build_menu(MenuState(clusters=[cluster("tender-a")], trees={"tender-a": tree})).child("Clusters").child("tender-a")
    assert labels_of(a.child("demo")) == [GROUP_START, "Loading…"]
    assert labels_of(a.child("default")) == [GROUP_START, "No pods, services or workloads"]


def test_port_in_use_or_privileged_goes_to_a_free_local_port() -> None:
    svc = Resource("web", ((80, "http", "TCP"), (8080, None, "TCP")))
    tree = _tree(resources=_ready("demo", Service=(svc,)))
    other = session("svc/other", 8080, 8080, namespace="elsewhere")
    state = MenuState(sessions=[other], clusters=[cluster("tender-a")], trees={"tender-a": tree}, privileged_below=1024)
    entry = build_menu(state).child("Clusters").child("tender-a").child("demo")
    web = entry.child("web")
    assert web.child("Forward 80 (http) on a free local port").action.args[-1] == 0
    assert web.child("Forward 8080 on a free local port (8080 is in use)").action.args[-1] == 0


def test_existing_forward_is_shown_instead_of_offered_again() -> None:
    svc = Resource("web", ((80, "http", "TCP"),))
    tree = _tree(resources=_ready("demo", Service=(svc,)))
    s = session("svc/web", 8080, "http", namespace="demo")
    cl = build_menu(MenuState(sessions=[s], clusters=[cluster("tender-a")], trees={"tender-a": tree})).child("Clusters")
    a = cl.child("tender-a")
    web = a.child("demo (1 forward)").child("web")
    assert web.children[0].label == "Forwarding 80 on 127.0.0.1:8080" and not web.children[0].enabled
    failed = session("svc/web", 8080, "http", namespace="demo", status="error", reason="boom")
    cl = build_menu(MenuState(sessions=[failed], clusters=[cluster("tender-a")], trees={"tender-a": tree})).child("Clusters")
    web = cl.child("tender-a").child("demo (1 forward)").child("web")
    assert web.children[0].label == "Forwarding 80 on 127.0.0.1:8080 (error)"  # never a failed forward as running
    stop_all = a.child("Stop all in this cluster (1)")
    assert stop_all.action == Action(ActionKind.STOP_CLUSTER, ("tender-a",))


def test_stop_all_in_cluster_disabled_without_forwards() -> None:
    a = build_menu(MenuState(clusters=[cluster("tender-a")], trees={"tender-a": _tree()})).child("Clusters").child("tender-a")
    assert not a.child("Stop all in this cluster").enabled


def test_resource_lists_are_capped() -> None:
    pods = tuple(Resource(f"p{i:04d}", ((80, None, "TCP"),)) for i in range(130))
    tree = _tree(resources=_ready("demo", Pod=pods))
    demo = build_menu(MenuState(clusters=[cluster("tender-a")], trees={"tender-a": tree})).child("Clusters").child("tender-a").child("demo")
    assert len(demo.children) == 2 + 1 + 101  # Forward every Service and a separator, the heading, 100 pods, the rest
    assert demo.children[-1].label.startswith("… and 30 more")


def test_system_namespaces_are_folded_at_the_end() -> None:
    nss = tuple(sorted(("default", "demo", "kube-node-lease", "kube-public", "kube-system", "openshift-monitoring",
                        "local-path-storage", "kube-flannel", "ops")))  # as the loader keeps them
    dns = Resource("kube-dns", ((53, "dns-tcp", "TCP"), (9153, "metrics", "TCP")))
    tree = _tree(nss, resources={**_ready("kube-system", Service=(dns,)), **_ready("kube-public")})
    state = MenuState(clusters=[cluster("tender-a")], trees={"tender-a": tree})
    a = build_menu(state).child("Clusters").child("tender-a")
    assert labels_of(a) == ["Search…", "default", "demo", "local-path-storage", "ops", "System namespaces",
                            "Cluster proxy (SOCKS5/HTTP)", "Refresh", "Stop all in this cluster"]
    system = a.child("System namespaces")
    assert labels_of(system) == [
        "kube-flannel", "Load resources…",
        "kube-node-lease", "Load resources…",
        "kube-public", "No pods, services or workloads",
        "kube-system · Services", "kube-dns",
        "openshift-monitoring", "Load resources…",
    ]
    assert system.children[1].action == Action(ActionKind.LOAD_NAMESPACE, ("tender-a", "kube-flannel"))
    assert system.child("kube-dns").child("Forward 53 (dns-tcp)").action == \
        Action(ActionKind.FORWARD, ("tender-a", "kube-system", "Service", "kube-dns", "dns-tcp", 53))
    # a system namespace holding a forward stays in the main list
    s = session("svc/kube-dns", 9153, "metrics", cluster="tender-a", namespace="kube-system")
    busy = build_menu(MenuState(sessions=[s], clusters=[cluster("tender-a")], trees={"tender-a": tree}))
    a = busy.child("Clusters").child("tender-a")
    assert "kube-system (1 forward)" in labels_of(a)
    assert "kube-system · Services" not in labels_of(a.child("System namespaces"))


def test_system_namespace_rule() -> None:
    from tray.ui.resources import is_system_namespace

    for ns in ("kube-system", "kube-public", "kube-node-lease", "kube-flannel", "openshift", "openshift-dns"):
        assert is_system_namespace(ns), ns
    for ns in ("default", "kubeflow", "my-kube-system", "openshiftish", "local-path-storage"):
        assert not is_system_namespace(ns), ns


def test_search_results_are_at_the_top_of_the_context() -> None:
    from tray.ui.resources import Hit, Search

    web = Resource("web", ((80, "http", "TCP"),))
    hits = (Hit("demo", "Service", web), Hit("shop", "Service", web), Hit("shop", "Deployment", Resource("web-api")))
    tree = ClusterTree(Ready(("demo", "shop")), search=Search("web", Ready(hits)))
    a = build_menu(MenuState(clusters=[cluster("tender-a")], trees={"tender-a": tree})).child("Clusters").child("tender-a")
    assert labels_of(a)[:2] == ["Results for “web”", "Search…"]
    results = a.child("Results for “web”")
    assert labels_of(results) == ["Services", "web  (demo)", "web  (shop)", "Deployments", "web-api  (shop)"]
    assert results.child("web  (shop)").child("Forward 80 (http)").action == \
        Action(ActionKind.FORWARD, ("tender-a", "shop", "Service", "web", "http", 80))
    # while searching, with nothing found, when it failed, when part of the cluster did not answer
    def results_of(search: Search) -> list[str]:
        t = ClusterTree(Ready(("demo",)), search=search)
        menu = build_menu(MenuState(clusters=[cluster("tender-a")], trees={"tender-a": t}))
        return labels_of(menu.child("Clusters").child("tender-a").child(f"Results for “{search.text}”"))

    assert results_of(Search("db", Loading())) == ["Searching…"]
    assert results_of(Search("db", Ready(()))) == ["No pods, services or workloads named like “db”"]
    assert results_of(Search("db", Failed("cluster unreachable: refused"))) == ["⚠ cluster unreachable: refused"]
    assert results_of(Search("web", Ready(hits[:1]), "Not searched (x): no answer or refused"))[0] == \
        "Not searched (x): no answer or refused"


def depth(item: Item) -> int:
    """Submenus to open from ``item`` to reach its deepest item."""
    return max((1 + depth(c) for c in item.children if c.children), default=0) if item.children else 0


def test_no_item_is_more_than_four_submenus_deep() -> None:
    from tray.ui.menu_clusters import MAX_DEPTH
    from tray.ui.resources import Hit, Search

    web = Resource("web", ((80, "http", "TCP"),))
    nss = ("demo", "kube-system")
    resources = {**_ready("demo", Service=(web,)), **_ready("kube-system", Pod=(web,))}
    tree = ClusterTree(Ready(nss), resources=resources, search=Search("w", Ready((Hit("demo", "Pod", web),))))
    many = [session(f"svc/s{i}", 20000 + i, 80, cluster=f"c{i % 2}") for i in range(MAX_TOP_LEVEL_FORWARDS + 1)]
    menu = build_menu(MenuState(sessions=many, profiles=[profile("p", group="g")],
                                clusters=[cluster("tender-a")], trees={"tender-a": tree}))
    # the tray menu is the root: Clusters (1) → context (2) → namespace (3) → resource (4) → "Forward 80"
    assert depth(menu) == MAX_DEPTH == 4
    deepest = [path for path, item in menu.walk() if len(path) == 5]
    assert ("Clusters", "tender-a", "System namespaces", "web", "Forward 80 (http)") in deepest
    assert ("Clusters", "tender-a", "Results for “w”", "web  (demo)", "Forward 80 (http)") in deepest


def test_kubeconfig_error_is_shown() -> None:
    menu = build_menu(MenuState(kubeconfig_error="/home/u/.kube/config: kubeconfig not found")).child("Clusters")
    assert labels_of(menu) == ["⚠ /home/u/.kube/config: kubeconfig not found"]


# ------------------------------------------------------------------ settings and quit
def test_settings_items_and_quit() -> None:
    menu = build_menu(MenuState(notifications=False, start_at_login=True))
    assert menu.child("Start at login").checked is True
    assert menu.child("Notifications").checked is False
    assert menu.children[-1] == Item("Quit", Action(ActionKind.QUIT))


def test_open_dashboard_sits_just_above_quit_when_the_engine_serves_one() -> None:
    menu = build_menu(MenuState(dashboard=True))
    assert [c.label for c in menu.children[-4:]] == ["Notifications", "", "Open dashboard…", "Quit"]
    assert menu.children[-2] == Item("Open dashboard…", Action(ActionKind.OPEN_DASHBOARD))
    assert "Open dashboard…" not in labels_of(build_menu(MenuState()))


# ------------------------------------------------------------------ invariants on random states
statuses = st.sampled_from(["starting", "active", "reconnecting", "error"])
sessions_st = st.lists(
    st.builds(lambda i, status, c, port: session(f"svc/s{i}", 10000 + i, port, status=status, cluster=c,
                                                  reason="why" if status in ("error", "reconnecting") else "",
                                                  id=f"id{i}"),
              st.integers(0, 999), statuses, st.sampled_from(["tender-a", "tender-b"]),
              st.sampled_from([80, 5432, "http"])),
    max_size=30, unique_by=lambda s: s.id)


@settings(max_examples=60, deadline=None)
@given(sessions_st)
def test_menu_invariants(sessions: list) -> None:
    state = MenuState(sessions=sessions, clusters=[cluster("tender-a", True), cluster("tender-b")],
                      trees={"tender-a": _tree(), "tender-b": ClusterTree()})
    menu = build_menu(state)
    assert build_menu(state) == menu  # pure: same input, same menu
    counts = {s: sum(1 for x in sessions if x.status == s) for s in ("active", "starting", "reconnecting", "error")}
    first = menu.children[0].label
    shown = {"active": f"{counts['active']} active", "starting": f"{counts['starting']} starting",
             "reconnecting": f"{counts['reconnecting']} reconnecting",
             "error": labels.plural(counts["error"], "error")}
    # Every status present is counted, in this order; a zero count is not shown.
    assert first == (" · ".join(shown[s] for s in shown if counts[s]) or "No forwards running")
    several = len({s.cluster_id for s in sessions}) > 1
    entries = [i for p, i in menu.walk() if i.label in {labels.session_label(s, not several) for s in sessions}]
    assert len(entries) == len(sessions)
    for _, item in menu.walk():
        assert not (item.children and item.action)
        if item.children:
            assert any(not c.separator for c in item.children)  # no empty submenu
        allowed = {ActionKind.STOP: {"starting", "active", "reconnecting"}, ActionKind.RETRY: {"error"},
                   ActionKind.REMOVE: {"error"}}
        if item.action and item.action.kind in allowed:
            sid = item.action.args[0]
            status = next(s.status for s in sessions if s.id == sid)
            assert status in allowed[item.action.kind]


def test_an_action_is_one_of_the_known_kinds() -> None:
    """A verb the controller has no handler for cannot be built (a typo'd string included)."""
    with pytest.raises(TypeError):
        Action("stop", ("s1",))  # type: ignore[arg-type]
    assert str(ActionKind.OPEN_URL) == "open-url"  # as log lines name it


def test_a_long_reason_is_wrapped_so_its_cause_shows() -> None:
    reason = ("/home/someone/work/kubeconfigs/production cluster/config.yaml: context prod-eu-west-1: "
              "credentials could not be loaded: [Errno 2] No such file or directory: 'aws'")
    lines = labels.reason_lines(reason)
    assert len(lines) == 2 and all(len(line) <= 100 for line in lines)
    assert lines[-1].endswith("No such file or directory: 'aws'")
    assert labels.reason_lines("x " * 400)[-1].endswith(labels.ELLIPSIS)
    assert len(labels.reason_lines("x " * 400)) == 3
    failed = session("svc/web", 8080, 80, status="error", reason=reason)
    row = next(i for _, i in build_menu(MenuState(sessions=[failed])).walk() if i.label.startswith("svc/web"))
    assert [c.label for c in row.children[:2]] == lines and not row.children[1].enabled


def test_a_service_spread_over_its_pods_names_them() -> None:
    from dataclasses import replace

    spread = replace(session("svc/web", 8080, 80, pod="web-a"), balance="round-robin",
                     pods=("web-a", "web-b", "web-c", "web-d"))
    assert labels_of(session_item(spread))[0] == "Pods web-a, web-b, web-c and 1 more (round-robin)"
    one = replace(spread, pods=("web-a",))
    assert labels_of(session_item(one))[0] == "Pod web-a"  # one ready pod: as kubectl shows it
