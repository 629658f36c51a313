"""The Clusters submenu's lists: ordering, forbidden and unreachable clusters, what is listed."""

from __future__ import annotations

from collections.abc import Iterable

from tray.engine.browse import Resource
from tray.errors import ClusterUnreachable, ForbiddenError
from tray.ui.loader import ResourceLoader, priority
from tray.ui.resources import KIND_SECTIONS, Failed, Hit, Loading, Ready, ResourceStore


def test_priority_order() -> None:
    assert priority(["b", "a", "demo", "kube-system"], ["demo", "missing", "b"]) == ["demo", "b", "a", "kube-system"]


class FakeBrowser:
    """The browse API's answers from a table: namespaces (or the error), and per namespace per kind."""

    def __init__(self, namespaces: tuple[str, ...] | Exception,
                 resources: dict[tuple[str, str], tuple[Resource, ...] | Exception] | None = None) -> None:
        self._namespaces = namespaces
        self._resources = resources or {}
        self.asked: list[tuple[str, ...]] = []

    def default_namespace(self, cluster: str) -> str:
        return "mine"

    def namespaces(self, cluster: str, timeout: float | None = None) -> tuple[str, ...]:
        self.asked.append(("namespaces", cluster))
        if isinstance(self._namespaces, Exception):
            raise self._namespaces
        return self._namespaces

    def resources(self, cluster: str, namespace: str, kinds: Iterable[str] = (),
                  timeout: float | None = None) -> dict[str, tuple[Resource, ...] | Exception]:
        self.asked.append(("resources", cluster, namespace))
        return {kind: self._resources.get((namespace, kind), ()) for kind in kinds}


def load(browser: FakeBrowser, auto: int = 10) -> ResourceStore:
    store = ResourceStore()
    loader = ResourceLoader(browser, store, lambda fn: fn(), auto=auto)
    loader.load_cluster("c", prefer=["demo"])
    return store


def test_namespaces_then_resources_ahead() -> None:
    browser = FakeBrowser(("alpha", "demo", "mine", "zeta"), {
        ("demo", "Deployment"): (Resource("web"),),
        ("demo", "DaemonSet"): ForbiddenError("daemonsets is forbidden"),
    })
    tree = load(browser, auto=2).get("c")
    assert tree.namespaces == Ready(("alpha", "demo", "mine", "zeta"))
    assert tree.namespace_requested("mine") and tree.namespace_requested("demo")  # own, then preferred
    assert not tree.namespace_requested("alpha")  # beyond the 2 loaded ahead
    assert browser.asked == [("namespaces", "c"), ("resources", "c", "mine"), ("resources", "c", "demo")]
    assert tree.resources[("demo", "Deployment")] == Ready((Resource("web"),))
    assert tree.resources[("demo", "DaemonSet")] == Failed("forbidden: daemonsets is forbidden")
    assert tree.resources[("demo", "Pod")] == Ready(())
    assert {kind for ns, kind in tree.resources if ns == "demo"} == {kind for kind, _ in KIND_SECTIONS}


def test_forbidden_namespace_list_falls_back_to_the_contexts_namespace() -> None:
    tree = load(FakeBrowser(ForbiddenError("namespaces is forbidden"))).get("c")
    assert tree.namespaces == Ready(("mine",)) and "Cannot list namespaces" in tree.namespaces_note


def test_unreachable_cluster_says_so() -> None:
    tree = load(FakeBrowser(ClusterUnreachable("cluster unreachable: connection refused"))).get("c")
    assert tree.namespaces == Failed("cluster unreachable: connection refused")


def test_a_namespace_that_times_out_says_how_long_it_waited() -> None:
    class Slow(FakeBrowser):
        def resources(self, *args: object, **kwargs: object) -> dict[str, tuple[Resource, ...] | Exception]:
            raise TimeoutError

    tree = load(Slow(("mine",))).get("c")
    assert tree.resources[("mine", "Pod")] == Failed("no answer within 20 s")


def test_system_namespaces_are_not_loaded_ahead_unless_used() -> None:
    browser = FakeBrowser(("kube-public", "kube-system", "mine", "zeta"))
    store = ResourceStore()
    ResourceLoader(browser, store, lambda fn: fn(), auto=10).load_cluster("c", prefer=["kube-public"])
    tree = store.get("c")
    assert [ns for ns in ("kube-public", "kube-system", "mine", "zeta") if tree.namespace_requested(ns)] == \
        ["kube-public", "mine", "zeta"]  # kube-public holds a forward or a profile: loaded


def test_search_finds_names_containing_the_text_in_every_namespace() -> None:
    from tray.ui.resources import Hit, Search

    web, api = Resource("web"), Resource("Web-API")
    browser = FakeBrowser(("alpha", "demo", "kube-system"), {
        ("demo", "Service"): (web, Resource("db")),
        ("demo", "Deployment"): (api,),
        ("alpha", "Pod"): (Resource("webhook-1"),),
        ("kube-system", "Pod"): ForbiddenError("pods is forbidden"),
        ("kube-system", "Service"): (Resource("kube-dns"),),
    })
    store = ResourceStore()
    loader = ResourceLoader(browser, store, lambda fn: fn())
    loader.search("c", "  web ")
    search = store.get("c").search
    assert search == Search("web", Ready((Hit("alpha", "Pod", Resource("webhook-1")), Hit("demo", "Service", web),
                                          Hit("demo", "Deployment", api))), "Some kinds refused in kube-system")
    # nothing matches: an empty result, not a failure
    loader.search("c", "nothing")
    assert store.get("c").search == Search("nothing", Ready(()), "Some kinds refused in kube-system")


def test_a_search_says_which_namespaces_it_could_not_search_and_an_old_one_does_not_win() -> None:
    class Flaky(FakeBrowser):
        def resources(self, cluster: str, namespace: str, kinds: Iterable[str] = (),
                      timeout: float | None = None) -> dict[str, tuple[Resource, ...] | Exception]:
            if namespace == "slow":
                raise TimeoutError
            return super().resources(cluster, namespace, kinds, timeout)

    store = ResourceStore()
    browser = Flaky(("demo", "slow"), {("demo", "Pod"): (Resource("web-1"),)})
    ResourceLoader(browser, store, lambda fn: fn()).search("c", "web")
    search = store.get("c").search
    assert search.hits == Ready((Hit("demo", "Pod", Resource("web-1")),))
    assert search.note == "Not searched (slow): no answer or refused"
    # an unreachable cluster: the search failed, with the reason
    ResourceLoader(FakeBrowser(ClusterUnreachable("cluster unreachable: refused")), store, lambda fn: fn()).search("c", "x")
    assert store.get("c").search.hits == Failed("cluster unreachable: refused")
    # results of an older search arriving after a newer one was asked for are dropped
    later: list = []
    loader = ResourceLoader(browser, store, later.append)
    loader.search("c", "old")
    loader.search("c", "new")
    later[0]()  # the old search finishes last...
    assert store.get("c").search.text == "new" and store.get("c").search.hits == Loading()
    later[1]()
    assert store.get("c").search.text == "new" and isinstance(store.get("c").search.hits, Ready)
