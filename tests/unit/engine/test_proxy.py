"""tray.engine.proxy on plain data: listen addresses, and what a name routes to (no cluster, no dialing)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tray.engine.proxy import ClusterProxy, ProxyRefusal, format_listen, parse_listen
from tray.errors import ForbiddenError, UsageError


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:1080", ("127.0.0.1", 1080)),
    ("localhost:1081", ("127.0.0.1", 1081)),
    ("1080", ("127.0.0.1", 1080)),
    ("[::1]:1080", ("::1", 1080)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
])
def test_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "::1:1080", "example.com:1080",
                                  "[::1]1080", "127.0.0.1:-1"])
def test_bad_listen(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_listen(text)
    assert err.value.field == "--listen"


def test_format_listen() -> None:
    assert format_listen("::1", 1080) == "[::1]:1080"
    assert format_listen("127.0.0.1", 1) == "127.0.0.1:1"


class _Cache:
    def __init__(self, objects: dict[str, Any], error: Exception | None = None) -> None:
        self.objects = objects
        self.error = error

    async def wait_synced(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class _Caches:
    def __init__(self, namespaces: dict[str, tuple[list[dict], list[dict]]], forbidden: set[str]) -> None:
        self.namespaces, self.forbidden = namespaces, forbidden
        self.held: list[tuple[str, str]] = []

    def acquire(self, cluster: str, api: Any, prefix: str, namespace: str, plural: str) -> _Cache:
        self.held.append((namespace, plural))
        if namespace in self.forbidden:
            return _Cache({}, ForbiddenError(f'services is forbidden: cannot list in "{namespace}"'))
        services, pods = self.namespaces.get(namespace, ([], []))
        items = services if plural == "services" else pods
        return _Cache({o["metadata"]["name"]: o for o in items})

    async def release(self, cluster: str, cache: Any) -> None:
        self.held.pop()


class _Conn:
    id = "ctx"
    default_namespace = "demo"
    api = None


def _pod(name: str, app: str, *, ready: bool = True, port_name: str = "http", port: int = 8080) -> dict:
    return {"metadata": {"name": name, "namespace": "demo", "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "ports": [{"name": port_name, "containerPort": port}]}],
                     "hostname": name if app == "db" else "", "subdomain": "db" if app == "db" else ""},
            "status": {"phase": "Running", "podIP": "10.10.0." + name[-1],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _svc(name: str, app: str, ports: list[dict], cluster_ip: str) -> dict:
    return {"metadata": {"name": name, "namespace": "demo"},
            "spec": {"selector": {"app": app}, "ports": ports, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip]}}


SERVICES = [
    _svc("web", "web", [{"port": 80, "targetPort": "http"}], "10.0.0.80"),
    _svc("db", "db", [{"port": 5432}], "None"),
    _svc("down", "down", [{"port": 80}], "10.0.0.81"),
]
PODS = [_pod("web-1", "web"), _pod("web-2", "web"), _pod("web-3", "web", port=9090),
        _pod("db-0", "db"), _pod("db-1", "db"), _pod("down-1", "down", ready=False)]


def _route(proxy: ClusterProxy, host: str, port: int) -> Any:
    return asyncio.run(proxy._route(host, port))


@pytest.fixture
def proxy() -> ClusterProxy:
    caches = _Caches({"demo": (SERVICES, PODS)}, {"secret"})
    return ClusterProxy(_Conn(), caches, "127.0.0.1", 0)  # type: ignore[arg-type]


def test_service_round_robin_with_named_target_ports(proxy: ClusterProxy) -> None:
    async def firsts() -> list[tuple[str, int]]:
        return [(await proxy._route("web.demo.svc.cluster.local", 80))[1][0] for _ in range(6)]

    assert asyncio.run(firsts()) == [("web-1", 8080), ("web-2", 8080), ("web-3", 9090)] * 2


def test_a_failed_dial_falls_to_the_next_pod(proxy: ClusterProxy) -> None:
    ns, candidates = _route(proxy, "web", 80)
    assert ns == "demo" and [c[0] for c in candidates] == ["web-1", "web-2", "web-3"]


def test_headless_and_pod_names_keep_the_port(proxy: ClusterProxy) -> None:
    assert _route(proxy, "db-1.db.demo.svc.cluster.local", 5432) == ("demo", [("db-1", 5432)])
    assert _route(proxy, "db.demo", 7777)[1][0] == ("db-0", 7777)


def test_a_cluster_ip_is_its_service(proxy: ClusterProxy) -> None:
    _route(proxy, "web.demo", 80)  # opens the namespace's caches
    assert _route(proxy, "10.0.0.80", 80)[1][0][0].startswith("web-")
    assert _route(proxy, "10.10.0.0", 5432) == ("demo", [("db-0", 5432)])


@pytest.mark.parametrize("host,port,kind,text", [
    ("nope.demo", 80, "unknown", 'no Service "nope" in namespace "demo"'),
    ("web.demo", 81, "unknown", "svc/web has no port 81"),
    ("db-7.db.demo", 5432, "unknown", 'no pod with hostname "db-7"'),
    ("www.example.com.au", 443, "unknown", "not a cluster name"),
    ("down.demo", 80, "no_endpoint", "no ready endpoint"),
    ("web.secret", 80, "forbidden", "forbidden"),
])
def test_refusals(proxy: ClusterProxy, host: str, port: int, kind: str, text: str) -> None:
    with pytest.raises(ProxyRefusal) as err:
        _route(proxy, host, port)
    assert err.value.kind == kind and text in str(err.value)
    assert "\n" not in str(err.value)


def test_a_forbidden_namespace_is_released(proxy: ClusterProxy) -> None:
    with pytest.raises(ProxyRefusal):
        _route(proxy, "web.secret", 80)
    assert proxy._caches.held == []  # type: ignore[attr-defined]


def test_refusals_speak_each_protocol() -> None:
    assert [(ProxyRefusal(k, "x").socks_reply, ProxyRefusal(k, "x").http_status)
            for k in ("unknown", "no_endpoint", "forbidden", "unreachable")] == [(4, 502), (5, 503), (2, 403), (4, 502)]


def test_a_namespace_without_services_keeps_no_watch(proxy: ClusterProxy) -> None:
    with pytest.raises(ProxyRefusal, match='no Service "google" in namespace "com"'):
        _route(proxy, "google.com", 443)
    assert proxy._caches.held == []  # type: ignore[attr-defined]
    _route(proxy, "web.demo", 80)
    with pytest.raises(ProxyRefusal):
        _route(proxy, "nope.demo", 80)
    assert sorted(proxy._caches.held) == [("demo", "pods"), ("demo", "services")]  # type: ignore[attr-defined]
