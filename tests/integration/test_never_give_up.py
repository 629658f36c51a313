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
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

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
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("StatefulSet", "db"), 8080, local_port=0))
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
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("StatefulSet", "db"), 8080, local_port=0))
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
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("StatefulSet", "db"), 8080, local_port=0))
    info = wait_status(manager, sid, "error")
    assert info.recoverable and "db-0" in info.status_reason, info
    cluster.annotate("pod", "db-0", namespace, HOLD, "true")
    info = wait_status(manager, sid, "active", timeout=20, allow_error=True)
    assert hostname(info.local_port) == "db-0"


def test_the_reported_case_slow_readiness_probe_through_the_cli(cluster: Cluster, namespace: str) -> None:
    """The report as it was filed: a single-replica StatefulSet whose new pod takes 40 s to be
    Ready (a readiness probe with initialDelaySeconds: 40).  `tender forward` goes to error after
    5 attempts (31 s) but keeps running, and is active again on its own when the pod is Ready;
    `tender forward --exit-on-error` keeps the old behaviour for scripts and exits 1."""
    import json
    import subprocess
    import sys
    import threading
    import time

    from tests.clusterlib import ROOT

    probe = ('{"readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, '
             '"initialDelaySeconds": 40, "periodSeconds": 1}}')
    cluster.apply(_sts(), namespace)
    cluster.wait_ready(namespace, "app=db")

    def tender(*extra: str) -> tuple[subprocess.Popen[str], list[dict]]:
        proc = subprocess.Popen([sys.executable, "-m", "tray", "forward", "--kubeconfig", cluster.kubeconfig,
                                 "--context", cluster.context, "-n", namespace, *extra, "sts/db", ":8080",
                                 "-o", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        events: list[dict] = []
        threading.Thread(target=lambda: events.extend(json.loads(line) for line in proc.stdout), daemon=True).start()
        return proc, events

    def statuses(events: list[dict]) -> list[str]:
        return [e["status"] for e in list(events) if e.get("event") == "status"]

    keeps, keep_events = tender()
    quits, quit_events = tender("--exit-on-error")
    try:
        for events in (keep_events, quit_events):
            wait_for(lambda: "active" in statuses(events), 30, "both forwards active")
        t0 = time.monotonic()
        patch = '{"spec": {"template": {"spec": {"containers": [{"name": "app", %s}]}}}}' % probe[1:-1]
        cluster.kubectl("patch", "sts/db", "-n", namespace, "--type=strategic", "-p", patch)
        wait_for(lambda: "error" in statuses(keep_events), 60, "error after the backoff")
        assert quits.wait(timeout=20) == 1, quit_events[-3:]
        errored = time.monotonic() - t0
        assert keeps.poll() is None, "tender forward exited although the StatefulSet exists"
        wait_for(lambda: statuses(keep_events)[-1] == "active", 60, "active again, on its own")
        recovered = time.monotonic() - t0
        last = [e for e in keep_events if e.get("event") == "status"][-1]
        assert last["pod_name"] == "db-0" and hostname(last["local_port"]) == "db-0"
        assert collapse(statuses(keep_events))[-3:] == ["reconnecting", "error", "active"], statuses(keep_events)
        print(f"error after {errored:.0f}s, active again after {recovered:.0f}s")
        assert recovered >= 38, "the new pod cannot have been Ready before its probe's initial delay"
    finally:
        for proc in (keeps, quits):
            if proc.poll() is None:
                proc.send_signal(2)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert keeps.returncode == 0


def test_going_to_error_lets_open_connections_finish(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                     fast_backoff: None) -> None:
    """A forward that fails (its only pod unready past the backoff; a bare pod terminating)
    stops taking new connections, but the ones open finish on the pod that still serves them,
    as kubectl's do (a long pg_dump must not die because a readiness probe failed)."""
    import threading
    import time

    from tests.clusterlib import deployment_manifest
    from tests.integration.engine import http_request, pod_manifest

    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    cluster.apply(pod_manifest("solo", grace=30), namespace)
    web = cluster.wait_ready(namespace, "app=web")[0]
    cluster.wait_ready(namespace, "app=solo")
    results: dict[str, tuple[int, bytes] | Exception] = {}

    def slow(key: str, port: int) -> None:
        try:
            results[key] = http_request(port, "/delay?ms=6000", timeout=20)
        except Exception as exc:  # recorded, asserted below
            results[key] = exc

    dep = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    solo = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "solo"), 8080, local_port=0))
    threads = []
    for key, sid in (("dep", dep), ("solo", solo)):
        port = wait_status(manager, sid, "active").local_port
        threads.append(threading.Thread(target=slow, args=(key, port)))
        threads[-1].start()
    time.sleep(0.5)  # both requests are in the pods now
    cluster.annotate("pod", web, namespace, HOLD, "false")
    cluster.kubectl("delete", "pod", "solo", "-n", namespace, "--wait=false")
    assert "gave up" in wait_status(manager, dep, "error", timeout=20).status_reason
    assert "solo" in wait_status(manager, solo, "error", timeout=20).status_reason
    for t in threads:
        t.join(30)
    for key in ("dep", "solo"):
        assert not isinstance(results[key], Exception), (key, results[key])
        status, body = results[key]
        assert status == 200, (key, status, body)
