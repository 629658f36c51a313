"""Forwards that cannot work, and clusters that go away: the status and reason the user sees."""

from __future__ import annotations

import socket
import time

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import assert_stays, hostname, pod_manifest, port_refuses, wait_for, wait_status
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster


def test_apiserver_down_then_retry(two_clusters: tuple[Cluster, Cluster], manager: ForwardManager) -> None:
    """tender-b's API server stops: its forwards go to error ("cluster unreachable: ...") within
    30 s, while a tender-a forward keeps working; once it is back, the forwards are active again
    on their own, on the same local ports."""
    a, b = two_clusters
    ns_a, ns_b = a.new_namespace("down"), b.new_namespace("down")
    try:
        for c, ns in ((a, ns_a), (b, ns_b)):
            c.apply(deployment_manifest("web"), ns)
        pod_a = a.wait_ready(ns_a, "app=web")[0]
        pod_b = b.wait_ready(ns_b, "app=web")[0]
        sa = manager.start(ForwardSpec(a.context, ns_a, Target("Deployment", "web"), 8080, local_port=0))
        sb = manager.start(ForwardSpec(b.context, ns_b, Target("Deployment", "web"), 8080, local_port=0))
        sb2 = manager.start(ForwardSpec(b.context, ns_b, Target("Pod", pod_b), 8080, local_port=0))
        port_a = wait_status(manager, sa, "active").local_port
        port_b = wait_status(manager, sb, "active").local_port
        wait_status(manager, sb2, "active")
        assert hostname(port_b) == pod_b
        b.stop("apiserver")
        try:
            t0 = time.monotonic()
            for sid in (sb, sb2):
                info = wait_status(manager, sid, "error", timeout=30)
                assert info.status_reason.startswith("cluster unreachable"), info.status_reason
            detected = time.monotonic() - t0
            assert detected < 30
            # tender-a is not affected, on new connections, during the outage.
            for _ in range(5):
                assert hostname(port_a) == pod_a
            assert manager.get(sa).status == "active"
            # Retry while the server is still down: error again, not a hang.
            manager.retry(sb)
            info = wait_status(manager, sb, "error", timeout=30)
            assert info.status_reason.startswith("cluster unreachable"), info.status_reason
        finally:
            b.start("apiserver")
        wait_for(lambda: b.kubectl("get", "--raw", "/readyz", check=False).returncode == 0, 60,
                 "tender-b's API server to be ready")
        info = wait_status(manager, sb, "active", timeout=30, allow_error=True)
        assert info.pod_name == pod_b
        assert info.local_port == port_b, "the forward came back on another local port"
        assert hostname(port_b) == pod_b
        info = wait_status(manager, sb2, "active", timeout=30, allow_error=True)  # the bare Pod too
        assert hostname(info.local_port) == pod_b
        assert hostname(port_a) == pod_a
    finally:
        for c, ns in ((a, ns_a), (b, ns_b)):
            c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_viewer_is_forbidden(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """A context whose user may read but not port-forward: the forward goes to error at start
    (as kubectl's does), naming the user, the verb and resource, and the namespace; no retries."""
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    sid = manager.start(ForwardSpec(f"{cluster.context}-viewer", namespace, Target("Pod", "web"), 8080, local_port=0))
    info = wait_status(manager, sid, "error", timeout=15)
    reason = info.status_reason
    assert 'User "viewer"' in reason, reason
    assert "pods/portforward" in reason and "create" in reason, reason
    assert namespace in reason, reason
    assert info.attempts == 0
    assert info.local_port == 0 or port_refuses(info.local_port)
    assert_stays(manager, sid, "error", 1.5)
    assert manager.get(sid).attempts == 0


def test_local_port_in_use(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """A local port some other program listens on: error at once, naming the port."""
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        t0 = time.monotonic()
        sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "web"), 8080, local_port=port))
        info = wait_status(manager, sid, "error", timeout=5)
        assert time.monotonic() - t0 < 5
        assert str(port) in info.status_reason, info.status_reason
        assert "in use" in info.status_reason, info.status_reason
        assert info.attempts == 0
        assert_stays(manager, sid, "error", 0.5)
        # The other program's socket is untouched.
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass


def _wait_running(cluster: Cluster, namespace: str, selector: str) -> list[str]:
    def running() -> list[str]:
        pods = cluster.pods(namespace, selector)
        return [p["metadata"]["name"] for p in pods if p.get("status", {}).get("phase") == "Running"]

    return wait_for(running, 30, f"a Running pod for {selector}")


HELD = {"testcluster.tender.dev/ready": "false"}
HELD_DEPLOYMENT = "      annotations: {testcluster.tender.dev/ready: \"false\"}"


@pytest.mark.parametrize("kind", ["Pod", "Deployment"])
def test_pod_never_ready(cluster: Cluster, namespace: str, manager: ForwardManager, kind: str) -> None:
    """A pod that runs but is held unready: error with the "not ready" explanation, no retry loop."""
    if kind == "Pod":
        cluster.apply(pod_manifest("web", annotations=HELD), namespace)
    else:
        manifest = deployment_manifest("web").replace(
            "    metadata: {labels: {app: web}}",
            "    metadata:\n      labels: {app: web}\n" + HELD_DEPLOYMENT)
        cluster.apply(manifest, namespace)
    pod = _wait_running(cluster, namespace, "app=web")[0]
    assert cluster.ready_pods(namespace, "app=web") == []
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target(kind, "web"), 8080, local_port=0))
    info = wait_status(manager, sid, "error", timeout=10)
    assert f"pod {pod} is not ready" in info.status_reason, info.status_reason
    assert info.attempts == 0
    assert_stays(manager, sid, "error", 0.5)


def test_stop_cluster_stops_only_that_cluster(two_clusters: tuple[Cluster, Cluster],
                                             manager: ForwardManager) -> None:
    a, b = two_clusters
    ns_a, ns_b = a.new_namespace("stopc"), b.new_namespace("stopc")
    try:
        for c, ns in ((a, ns_a), (b, ns_b)):
            c.apply(deployment_manifest("web"), ns)
        pod_a = a.wait_ready(ns_a, "app=web")[0]
        pod_b = b.wait_ready(ns_b, "app=web")[0]
        a_ids = [manager.start(ForwardSpec(a.context, ns_a, Target("Deployment", "web"), 8080, local_port=0)),
                 manager.start(ForwardSpec(a.context, ns_a, Target("Pod", pod_a), 8080, local_port=0))]
        b_ids = [manager.start(ForwardSpec(b.context, ns_b, Target("Deployment", "web"), 8080, local_port=0))]
        ports = {sid: wait_status(manager, sid, "active").local_port for sid in a_ids + b_ids}
        stopped = manager.stop_cluster(a.context)
        assert sorted(stopped) == sorted(a_ids)
        assert [s.id for s in manager.list()] == b_ids
        for sid in a_ids:
            assert port_refuses(ports[sid])
        assert manager.get(b_ids[0]).status == "active"
        assert hostname(ports[b_ids[0]]) == pod_b
        assert [k for k in manager.watch_keys() if k[0] == a.context] == []
    finally:
        for c, ns in ((a, ns_a), (b, ns_b)):
            c.kubectl("delete", "namespace", ns, "--wait=false", check=False)
