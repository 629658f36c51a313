"""Forwarding to every kind of target, several ports, several clusters, shared watches."""

from __future__ import annotations

import uuid

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import (
    AGNHOST,
    free_port,
    hostname,
    http_get,
    pod_manifest,
    service_manifest,
    wait_for,
    wait_status,
)
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster

WORKLOADS = f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  serviceName: db
  replicas: 1
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: db
          image: {AGNHOST}
          args: ["netexec", "--http-port=5432"]
          ports: [{{name: pg, containerPort: 5432}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: agent
          image: {AGNHOST}
          args: ["netexec", "--http-port=9100"]
          ports: [{{name: metrics, containerPort: 9100}}]
"""


@pytest.fixture(scope="module")
def kinds_ns(cluster: Cluster) -> str:
    """One namespace holding a target of every kind (built once for the module)."""
    ns = cluster.new_namespace("kinds")
    cluster.apply(deployment_manifest("web", replicas=2), ns)
    cluster.apply(pod_manifest("solo", labels={"role": "solo"}), ns)
    cluster.apply(WORKLOADS, ns)
    # Named targetPort, integer targetPort, omitted targetPort.
    cluster.apply(service_manifest("web-named", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), ns)
    cluster.apply(service_manifest("web-int", {"app": "web"}, "[{name: http, port: 81, targetPort: 8080}]"), ns)
    cluster.apply(service_manifest("web-same", {"app": "web"}, "[{name: http, port: 8080}]"), ns)
    cluster.wait_ready(ns, "app=web", 2)
    cluster.wait_ready(ns, "role=solo", 1)
    cluster.wait_ready(ns, "app=db", 1)
    cluster.wait_ready(ns, "app=agent", 2)  # one per node
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# kind, name, remote port (as the user types it), expected container port, pods' selector
KIND_CASES = [
    ("Pod", "solo", 8080, 8080, "role=solo"),
    ("Service", "web-named", 80, 8080, "app=web"),  # targetPort: http -> 8080
    ("Service", "web-int", 81, 8080, "app=web"),  # targetPort: 8080
    ("Service", "web-same", 8080, 8080, "app=web"),  # no targetPort: same as port
    ("Service", "web-named", "http", 8080, "app=web"),  # the service port by name
    ("Deployment", "web", 8080, 8080, "app=web"),
    ("Deployment", "web", "http", 8080, "app=web"),  # a container port by name
    ("StatefulSet", "db", 5432, 5432, "app=db"),
    ("DaemonSet", "agent", "metrics", 9100, "app=agent"),
]


@pytest.mark.parametrize("kind,name,remote,container_port,selector", KIND_CASES,
                         ids=[f"{k}-{n}-{r}" for k, n, r, _, _ in KIND_CASES])
def test_every_target_kind(cluster: Cluster, kinds_ns: str, manager: ForwardManager, kind: str, name: str,
                           remote: int | str, container_port: int, selector: str) -> None:
    sid = manager.start(ForwardSpec(cluster.context, kinds_ns, Target(kind, name), remote, local_port=0))
    info = wait_status(manager, sid, "active", timeout=15)
    assert info.container_port == container_port
    assert info.local_port > 0
    pods = cluster.ready_pods(kinds_ns, selector)
    assert info.pod_name in pods
    if kind == "Service":
        # Round-robin, a Service's default: new connections reach each ready pod in turn.
        assert info.balance == "round-robin" and sorted(info.pods) == sorted(pods), info
        assert {hostname(info.local_port) for _ in range(2 * len(pods))} == set(pods)
        return
    # curl through the local port: the pod the session says it uses answers.
    assert hostname(info.local_port) == info.pod_name
    assert hostname(info.local_port) == info.pod_name  # and again, on a new connection


def test_local_port_defaults_to_remote_port(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """local_port=None listens on the same number as the remote port (kubectl's rule)."""
    port = free_port()  # a number nothing on this machine listens on, for the pod to serve on
    cluster.apply(pod_manifest("same", args=f"netexec --http-port={port}", port=port), namespace)
    cluster.wait_ready(namespace, "app=same")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "same"), port))
    info = wait_status(manager, sid, "active", timeout=15)
    assert (info.local_port, info.container_port) == (port, port)
    assert hostname(port) == "same"


MULTI_PORT_POD = f"""
apiVersion: v1
kind: Pod
metadata: {{name: duo, labels: {{app: duo}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: first
      image: {AGNHOST}
      args: ["netexec", "--http-port=8080"]
      ports: [{{name: http, containerPort: 8080}}]
    - name: second
      image: {AGNHOST}
      args: ["netexec", "--http-port=9090"]
      ports: [{{name: admin, containerPort: 9090}}]
"""


def test_multi_port_pod(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """Both ports of a two-container pod, one session each; each reaches its own container."""
    cluster.apply(MULTI_PORT_POD, namespace)
    cluster.wait_ready(namespace, "app=duo")
    first = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "duo"), 8080, local_port=0))
    second = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "duo"), "admin", local_port=0))
    a = wait_status(manager, first, "active")
    b = wait_status(manager, second, "active")
    assert (a.container_port, b.container_port) == (8080, 9090)
    assert a.local_port != b.local_port
    assert hostname(a.local_port) == hostname(b.local_port) == "duo"
    # Each local port reaches its own container: the marker shows in that container's log only.
    marks = {"first": f"m{uuid.uuid4().hex[:10]}", "second": f"m{uuid.uuid4().hex[:10]}"}
    assert http_get(a.local_port, f"/echo?msg={marks['first']}") == marks["first"]
    assert http_get(b.local_port, f"/echo?msg={marks['second']}") == marks["second"]

    def logs(container: str) -> str:
        return cluster.kubectl("logs", "duo", "-c", container, "-n", namespace).stdout

    wait_for(lambda: marks["first"] in logs("first") and marks["second"] in logs("second"), 10,
             "the requests in the containers' logs")
    assert marks["second"] not in logs("first")
    assert marks["first"] not in logs("second")


def test_two_clusters_at_once(two_clusters: tuple[Cluster, Cluster], manager: ForwardManager) -> None:
    """The same forward on tender-a and tender-b: each local port answers its own cluster's pod."""
    a, b = two_clusters
    namespaces = []
    try:
        pods = {}
        for c in (a, b):
            ns = c.new_namespace("two")
            namespaces.append((c, ns))
            c.apply(deployment_manifest("web"), ns)
        for c, ns in namespaces:
            pods[c.context] = c.wait_ready(ns, "app=web")[0]
        ids = {c.context: manager.start(ForwardSpec(c.context, ns, Target("Deployment", "web"), 8080, local_port=0))
               for c, ns in namespaces}
        infos = {ctx: wait_status(manager, sid, "active") for ctx, sid in ids.items()}
        assert infos["tender-a"].local_port != infos["tender-b"].local_port
        for ctx, info in infos.items():
            assert info.cluster_id == ctx
            assert info.pod_name == pods[ctx]
            assert hostname(info.local_port) == pods[ctx]
        # The two test clusters name their pods independently; make sure the
        # answers really come from different clusters.
        assert pods["tender-a"] != pods["tender-b"]
    finally:
        for c, ns in namespaces:
            c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_shared_watches(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """5 forwards to 5 Deployments of one namespace share one pods and one deployments watch."""
    names = [f"app{i}" for i in range(5)]
    cluster.apply("\n---\n".join(deployment_manifest(n) for n in names), namespace)
    for n in names:
        cluster.wait_ready(namespace, f"app={n}")
    ids = [manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", n), 8080, local_port=0)) for n in names]
    infos = [wait_status(manager, sid, "active") for sid in ids]
    for n, info in zip(names, infos):
        assert hostname(info.local_port).startswith(f"{n}-")
    keys = [k for k in manager.watch_keys() if k[0] == cluster.context and k[1] == namespace]
    assert sorted(keys) == [(cluster.context, namespace, "deployments"), (cluster.context, namespace, "pods")]
    # The watches live as long as a forward uses them.
    for sid in ids[:4]:
        manager.stop(sid)
    assert len([k for k in manager.watch_keys() if k[1] == namespace]) == 2
    manager.stop(ids[4])
    assert [k for k in manager.watch_keys() if k[1] == namespace] == []
