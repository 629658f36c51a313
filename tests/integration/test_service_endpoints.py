"""A Service forward goes to a pod that serves the requested port (issue: a named
targetPort looked up on the wrong pod).

Two Deployments share one Service (selector lb: shared): port 80 targets the named port
`a` (only app1's pods declare it), port 81 targets `b` (only app2's).  kubectl picks the
Service's first pod and fails on the other name; a Service sends port 81 only to the
endpoints that resolve `b`, and so does Tender.
"""

from __future__ import annotations

import time

import pytest

from tests.clusterlib import Cluster
from tests.integration.engine import AGNHOST, EventLog, hostname, wait_for, wait_hostname, wait_status
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster


def _app(name: str, port_name: str, port: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}, lb: shared}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: {AGNHOST}
          args: ["netexec", "--http-port={port}"]
          ports: [{{name: {port_name}, containerPort: {port}}}]
"""


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: shared}
spec:
  selector: {lb: shared}
  ports: [{name: first, port: 80, targetPort: a}, {name: second, port: 81, targetPort: b}]
"""


def test_named_target_port_is_served_by_the_pods_that_declare_it(
        cluster: Cluster, namespace: str, manager: ForwardManager, events: EventLog) -> None:
    cluster.apply(_app("app1", "a", 8080), namespace)
    cluster.apply(_app("app2", "b", 9090), namespace)
    cluster.apply(SERVICE, namespace)
    app1 = cluster.wait_ready(namespace, "app=app1")
    app2 = cluster.wait_ready(namespace, "app=app2")
    # Several tries: whichever pod sorts first, each port reaches the pods that serve it.
    s80 = manager.start(ForwardSpec(cluster.context, namespace, Target("Service", "shared"), 80, local_port=0))
    s81 = manager.start(ForwardSpec(cluster.context, namespace, Target("Service", "shared"), 81, local_port=0))
    i80, i81 = wait_status(manager, s80, "active"), wait_status(manager, s81, "active")
    assert (i80.pod_name, i80.container_port) == (app1[0], 8080)
    assert (i81.pod_name, i81.container_port) == (app2[0], 9090)
    assert hostname(i80.local_port) == app1[0] and hostname(i81.local_port) == app2[0]

    # app1's pods go away: the port-81 forward is not disturbed (no status change at all).
    mark = events.mark()
    cluster.kubectl("delete", "pod", app1[0], "-n", namespace, "--wait=false")
    new1 = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=app1") if p != app1[0]], 60,
                    "app1's new pod")[0]
    wait_hostname(i80.local_port, new1, timeout=20)
    time.sleep(1)
    assert [e.status for e in events.since(mark, s81)] == [], events.since(mark, s81)
    assert hostname(i81.local_port) == app2[0]

    # A rollout of app2 that changes the number behind the name: the forward follows it.
    cluster.apply(_app("app2", "b", 9191), namespace)
    info = wait_for(lambda: (lambda i: i if i.status == "active" and i.pod_name != app2[0] else None)(
        manager.get(s81)), 60, "the port-81 forward on app2's new pod")
    assert info.container_port == 9191, info
    wait_hostname(i81.local_port, info.pod_name, timeout=20)


def test_a_port_no_pod_serves_says_why(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """Only app1 exists: port 81 (targetPort b) has no endpoint; the forward says which name
    is missing on which pod (it is not a usage error: app2 may be deployed later)."""
    cluster.apply(_app("app1", "a", 8080), namespace)
    cluster.apply(SERVICE, namespace)
    app1 = cluster.wait_ready(namespace, "app=app1")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Service", "shared"), 81, local_port=0))
    info = wait_status(manager, sid, "error")
    assert 'no port named "b"' in info.status_reason and app1[0] in info.status_reason, info.status_reason
