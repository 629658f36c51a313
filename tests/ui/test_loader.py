"""The Clusters submenu's lists: parsing, ordering, forbidden and unreachable clusters."""

from __future__ import annotations

import asyncio
from typing import Any

from tray.errors import ClusterUnreachable, ForbiddenError
from tray.ui.loader import ResourceLoader, parse_resources, priority
from tray.ui.resources import Failed, Ready, Resource, ResourceStore


def test_parse_resources_skips_finished_pods_and_reads_ports() -> None:
    data = {"items": [
        {"metadata": {"name": "web-2"}, "spec": {"containers": [{"ports": [{"containerPort": 8080, "name": "http"}]}]},
         "status": {"phase": "Running"}},
        {"metadata": {"name": "job-1"}, "spec": {"containers": []}, "status": {"phase": "Succeeded"}},
        {"metadata": {"name": "old", "deletionTimestamp": "x"}, "spec": {"containers": []}},
        {"metadata": {"name": "a-first"}, "spec": {"containers": [{"ports": [{"containerPort": 53, "protocol": "UDP"}]}]}},
    ]}
    assert parse_resources("Pod", data) == (Resource("a-first", ((53, None, "UDP"),)),
                                            Resource("web-2", ((8080, "http", "TCP"),)))
    svc = {"items": [{"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "name": "http"}]}}]}
    assert parse_resources("Service", svc)[0].tcp_ports == ((80, "http"),)


def test_priority_order() -> None:
    assert priority(["b", "a", "demo", "kube-system"], ["demo", "missing", "b"]) == ["demo", "b", "a", "kube-system"]


class Conn:
    default_namespace = "mine"

    def __init__(self, responses: dict[str, Any]) -> None:
        self.responses = responses
        self.api = self

    async def ensure_auth(self) -> None:
        pass

    async def get(self, path: str, params: Any = None) -> Any:
        r = self.responses.get(path, {"items": []})
        if isinstance(r, BaseException):
            raise r
        return r


class Manager:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def api_for(self, cluster: str) -> Conn:
        return self.conn

    def run(self, coro: Any, timeout: float | None = None) -> Any:
        return asyncio.run(coro)


def load(responses: dict[str, Any], auto: int = 10) -> ResourceStore:
    store = ResourceStore()
    loader = ResourceLoader(Manager(Conn(responses)), store, lambda fn: fn(), auto=auto)
    loader.load_cluster("c", prefer=["demo"])
    return store


def test_namespaces_then_resources_ahead() -> None:
    nss = {"items": [{"metadata": {"name": n}} for n in ("demo", "zeta", "mine", "alpha")]}
    store = load({"/api/v1/namespaces": nss,
                  "/apis/apps/v1/namespaces/demo/deployments": {"items": [{"metadata": {"name": "web"},
                                                                           "spec": {"template": {"spec": {}}}}]},
                  "/apis/apps/v1/namespaces/demo/daemonsets": ForbiddenError("daemonsets is forbidden")}, auto=2)
    tree = store.get("c")
    assert tree.namespaces == Ready(("alpha", "demo", "mine", "zeta"))
    assert tree.namespace_requested("mine") and tree.namespace_requested("demo")  # own, then preferred
    assert not tree.namespace_requested("alpha")  # beyond the 2 loaded ahead
    assert tree.resources[("demo", "Deployment")] == Ready((Resource("web", ()),))
    assert tree.resources[("demo", "DaemonSet")] == Failed("forbidden: daemonsets is forbidden")


def test_forbidden_namespace_list_falls_back_to_the_contexts_namespace() -> None:
    tree = load({"/api/v1/namespaces": ForbiddenError("namespaces is forbidden")}).get("c")
    assert tree.namespaces == Ready(("mine",)) and "Cannot list namespaces" in tree.namespaces_note


def test_unreachable_cluster_says_so() -> None:
    tree = load({"/api/v1/namespaces": ClusterUnreachable("cluster unreachable: connection refused")}).get("c")
    assert tree.namespaces == Failed("cluster unreachable: connection refused")
