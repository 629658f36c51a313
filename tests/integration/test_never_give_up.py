"""Forwards do not give up while their target exists (issue: a StatefulSet whose new pod
takes 40 s to be Ready ended in error for good after 31 s).

The design's statuses and backoff stay (1, 2, 4, 8, 16 s; `error` after 5 failed
attempts), but a forward in `error` whose target exists keeps its watch and comes back to
`active` by itself when a ready pod appears, on the same local port.  A bare Pod, or a
target that was deleted, stays in `error`.
"""

from __future__ import annotations

import pytest

from tests.clusterlib import Cluster
from tests.integration.engine import (AGNHOST, EventLog, collapse, hostname, port_refuses, wait_for,
                                      wait_hostname, wait_status, assert_stays)
from tray.manager import ForwardManager

pytestmark = pytest.mark.cluster

HOLD = "testcluster.tender.dev/ready"


def _sts(annotations: str = "{}") -> str:
    return f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: db}}
spec:
  replicas: 1
  serviceName: db
  selector: {{matchLabels: {{app: db}}}}
  template:
    metadata: {{labels: {{app: db}}, annotations: {annotations}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: {AGNHOST}
          args: ["netexec", "--http-port=8080"]
          ports: [{{name: http, containerPort: 8080}}]
"""


def test_statefulset_pod_slow_to_be_ready_recovers_by_itself(
        cluster: Cluster, namespace: str, manager: ForwardManager, events: EventLog, fast_backoff: None) -> None:
    cluster.apply(_sts(), namespace)
    cluster.wait_ready(namespace, "app=db")
    sid = manager.start(cluster.context, namespace, "StatefulSet", "db", 8080, local_port=0)
    info = wait_status(manager, sid, "active")
    port, uid_before = info.local_port, cluster.get("pod", "db-0", namespace)["metadata"]["uid"]
    assert hostname(port) == "db-0"

    # A rollout whose new db-0 is held unready (as a slow readiness probe would).
    cluster.apply(_sts(f'{{"{HOLD}": "false"}}'), namespace)
    info = wait_status(manager, sid, "error", timeout=60)
    assert "gave up after 5 attempts" in info.status_reason, info.status_reason
    assert info.recoverable and not info.usage_error, info
    assert port_refuses(port)  # in error: nothing listens, a client is refused at once
    assert_stays(manager, sid, "error", 2.0)  # error, truthfully, while no pod is ready

    new = wait_for(lambda: (lambda p: p if p["metadata"]["uid"] != uid_before else None)(
        cluster.get("pod", "db-0", namespace)), 30, "the new db-0")
    cluster.annotate("pod", "db-0", namespace, HOLD, "true")
    info = wait_status(manager, sid, "active", timeout=20, allow_error=True)
    assert info.local_port == port and info.pod_name == "db-0", info
    assert info.status_reason.startswith("recovered"), info.status_reason
    wait_hostname(port, "db-0", timeout=10)
    assert new["metadata"]["uid"] != uid_before
    assert collapse(events.statuses(sid))[-3:] == ["reconnecting", "error", "active"], events.statuses(sid)


def test_target_deleted_while_in_error_stays_error(
        cluster: Cluster, namespace: str, manager: ForwardManager, fast_backoff: None) -> None:
    cluster.apply(_sts(), namespace)
    cluster.wait_ready(namespace, "app=db")
    sid = manager.start(cluster.context, namespace, "StatefulSet", "db", 8080, local_port=0)
    wait_status(manager, sid, "active")
    cluster.kubectl("scale", "sts/db", "--replicas=0", "-n", namespace)
    info = wait_status(manager, sid, "error", timeout=60)
    assert info.recoverable, info
    cluster.kubectl("delete", "sts/db", "-n", namespace)
    info = wait_for(lambda: (lambda i: i if not i.recoverable else None)(manager.get(sid)), 20,
                    "the error to become final")
    assert info.status == "error" and "sts/db was deleted" in info.status_reason, info
    cluster.apply(_sts(), namespace)  # a new one of the same name is another target
    cluster.wait_ready(namespace, "app=db")
    assert_stays(manager, sid, "error", 2.0)


def test_a_start_with_no_ready_pod_comes_up_when_one_is(
        cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """Started while the only pod is not ready: error (the design's "pod not ready"), then
    active on its own when it turns ready — on the port kubectl's rule gives."""
    cluster.apply(_sts(f'{{"{HOLD}": "false"}}'), namespace)
    wait_for(lambda: cluster.pods(namespace, "app=db"), 30, "db-0 to exist")
    sid = manager.start(cluster.context, namespace, "StatefulSet", "db", 8080, local_port=0)
    info = wait_status(manager, sid, "error")
    assert info.recoverable and "db-0" in info.status_reason, info
    cluster.annotate("pod", "db-0", namespace, HOLD, "true")
    info = wait_status(manager, sid, "active", timeout=20, allow_error=True)
    assert hostname(info.local_port) == "db-0"
