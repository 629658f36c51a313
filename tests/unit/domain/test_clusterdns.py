"""tray.domain.clusterdns: the names a pod would resolve, and what they name among API objects."""

from __future__ import annotations

from typing import Any

import pytest

from tray.domain.clusterdns import (
    CLUSTER_DOMAIN,
    AddressName,
    PodName,
    ServiceName,
    UnknownName,
    find_by_ip,
    is_headless,
    parse_host,
    pod_for_hostname,
    service_pods,
)
from tray.errors import TargetError


@pytest.mark.parametrize("host,expected", [
    ("web", ServiceName("home", "web")),
    ("web.demo", ServiceName("demo", "web")),
    ("web.demo.svc", ServiceName("demo", "web")),
    ("web.demo.svc.cluster.local", ServiceName("demo", "web")),
    ("web.demo.svc.cluster.local.", ServiceName("demo", "web")),
    ("WEB.Demo.SVC.Cluster.Local", ServiceName("demo", "web")),
    ("web.", ServiceName("home", "web")),
    ("db-0.db.demo", PodName("demo", "db", "db-0")),
    ("db-0.db.demo.svc", PodName("demo", "db", "db-0")),
    ("db-1.db.demo.svc.cluster.local", PodName("demo", "db", "db-1")),
    ("db-1.db.demo.svc.cluster.local.", PodName("demo", "db", "db-1")),
    ("10.0.13.219", AddressName("10.0.13.219")),
    ("fd00:0::1", AddressName("fd00::1")),
    ("[fd00::1]", AddressName("fd00::1")),
])
def test_names(host: str, expected: Any) -> None:
    assert parse_host(host, "home") == expected


def test_cluster_domain_is_the_default() -> None:
    assert CLUSTER_DOMAIN == "cluster.local"


@pytest.mark.parametrize("host", ["", ".", "a.b.c.d", "www.example.com.au", "web_1.demo", "-web.demo",
                                  "web..demo", "web.demo.svc.cluster.other", "a" * 64])
def test_not_cluster_names(host: str) -> None:
    with pytest.raises(UnknownName):
        parse_host(host, "home")


def test_a_bare_name_needs_a_namespace() -> None:
    with pytest.raises(UnknownName, match="namespace"):
        parse_host("web", "")


def _pod(name: str, labels: dict[str, str], *, ip: str = "", phase: str = "Running", hostname: str = "",
         subdomain: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "app"}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    return {"metadata": {"name": name, "namespace": "demo", "labels": labels}, "spec": spec,
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}] if ip else []}}


def _svc(name: str, selector: dict[str, str] | None, cluster_ip: str = "10.0.0.10") -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterIP": cluster_ip, "ports": [{"port": 80}]}
    if cluster_ip != "None":
        spec["clusterIPs"] = [cluster_ip]
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": "demo"}, "spec": spec}


DB = _svc("db", {"app": "db"}, "None")
PODS = [
    _pod("db-1", {"app": "db"}, ip="10.10.0.4", hostname="db-1", subdomain="db"),
    _pod("db-0", {"app": "db"}, ip="10.10.0.3", hostname="db-0", subdomain="db"),
    _pod("web-a", {"app": "web"}, ip="10.10.0.1"),
    _pod("loose", {"app": "db"}, ip="10.10.0.9", subdomain="db"),  # no hostname: its own name
    _pod("other", {"app": "db"}, ip="10.10.0.8", hostname="db-2", subdomain="elsewhere"),
]


def test_service_pods_by_selector_sorted() -> None:
    assert [p["metadata"]["name"] for p in service_pods(DB, PODS)] == ["db-0", "db-1", "loose", "other"]


def test_service_without_selector() -> None:
    with pytest.raises(TargetError, match="no selector"):
        service_pods(_svc("ext", None), PODS)


def test_headless() -> None:
    assert is_headless(DB) and not is_headless(_svc("web", {"app": "web"}))


def test_pod_by_hostname_and_subdomain() -> None:
    assert pod_for_hostname(DB, PODS, "db-1")["metadata"]["name"] == "db-1"
    assert pod_for_hostname(DB, PODS, "DB-0")["metadata"]["name"] == "db-0"
    assert pod_for_hostname(DB, PODS, "loose")["metadata"]["name"] == "loose"
    assert pod_for_hostname(DB, PODS, "db-2") is None  # its subdomain is another Service
    assert pod_for_hostname(DB, PODS, "web-a") is None  # not selected
    assert pod_for_hostname(DB, PODS, "db-9") is None


def test_find_by_ip() -> None:
    web = _svc("web", {"app": "web"}, "10.0.13.219")
    assert find_by_ip("10.0.13.219", [DB, web], PODS) == ("service", web)
    assert find_by_ip("10.10.0.4", [DB, web], PODS)[1]["metadata"]["name"] == "db-1"
    assert find_by_ip("10.10.0.77", [DB, web], PODS) is None
    assert find_by_ip("None", [DB], PODS) is None  # a headless Service's "None" is no address
    assert find_by_ip("not an ip", [web], PODS) is None


def test_find_by_ip_prefers_a_running_pod_and_skips_finished_ones() -> None:
    done = _pod("job-x", {}, ip="10.10.0.50", phase="Succeeded")
    pending = _pod("new", {}, ip="10.10.0.51", phase="Pending")
    running = _pod("now", {}, ip="10.10.0.51")
    assert find_by_ip("10.10.0.50", [], [done]) is None
    assert find_by_ip("10.10.0.51", [], [pending, running])[1]["metadata"]["name"] == "now"
    assert find_by_ip("10.10.0.51", [], [pending])[1]["metadata"]["name"] == "new"
