"""The controllers really run: Deployments heal, EndpointSlices follow the
pods, DaemonSets cover every node, and readiness is what the pod spec (and
the test kubelet's hold annotation) says it is.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from tests.clusterlib import Cluster, deployment_manifest, eventually

pytestmark = pytest.mark.cluster

READY_ANNOTATION = "testcluster.tender.dev/ready"


def pod_ip(cluster: Cluster, namespace: str, name: str) -> str:
    ip = cluster.get("pod", name, namespace)["status"].get("podIP")
    assert ip, f"{name} has no IP"
    return ip


def slice_endpoints(cluster: Cluster, namespace: str, service: str) -> dict[str, dict]:
    """address -> {ready, pod} over the Service's EndpointSlices."""
    out = cluster.kubectl("get", "endpointslices", "-n", namespace,
                          "-l", f"kubernetes.io/service-name={service}", "-o", "json").stdout
    eps = {}
    for s in json.loads(out)["items"]:
        for ep in s.get("endpoints") or []:
            for addr in ep["addresses"]:
                eps[addr] = {"ready": ep.get("conditions", {}).get("ready"),
                             "pod": (ep.get("targetRef") or {}).get("name")}
    return eps


def timestamp(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def pod_ready(pod: dict) -> bool:
    conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return conds.get("Ready") == "True"


def test_deleted_deployment_pod_is_replaced_and_endpointslice_follows(cluster: Cluster, namespace: str) -> None:
    cluster.apply(deployment_manifest("web", grace=1), namespace)
    cluster.kubectl("expose", "deployment", "web", "--port=80", "--target-port=http", "-n", namespace)
    [old] = cluster.wait_ready(namespace, "app=web")
    old_ip = pod_ip(cluster, namespace, old)
    eventually(lambda: slice_endpoints(cluster, namespace, "web") == {old_ip: {"ready": True, "pod": old}},
               timeout=20, what="the EndpointSlice to list the first pod")

    cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")

    def replaced() -> str:
        ready = cluster.ready_pods(namespace, "app=web")
        assert ready and old not in ready, f"ready: {ready}"
        return ready[0]

    new = eventually(replaced, timeout=30, what="a new Ready pod")
    new_ip = pod_ip(cluster, namespace, new)
    assert new_ip != old_ip

    def follows() -> bool:
        eps = slice_endpoints(cluster, namespace, "web")
        assert eps == {new_ip: {"ready": True, "pod": new}}, eps
        return True

    eventually(follows, timeout=30, what="the EndpointSlice to swap the old pod's IP for the new one's")
    # The old pod is really gone, not just unready.
    r = cluster.kubectl("get", "pod", old, "-n", namespace, check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_daemonset_runs_one_pod_per_node(cluster: Cluster, namespace: str) -> None:
    nodes = sorted(n["metadata"]["name"] for n in
                   json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"])
    assert len(nodes) == 2, nodes
    cluster.apply("""
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: registry.k8s.io/e2e-test-images/agnhost:2.53
          args: ["netexec", "--http-port=8080"]
          ports: [{containerPort: 8080}]
""", namespace)
    ready = cluster.wait_ready(namespace, "app=agent", count=2, timeout=30)
    pods = cluster.pods(namespace, "app=agent")
    assert sorted(p["metadata"]["name"] for p in pods) == ready, "more pods than nodes"
    assert sorted(p["spec"]["nodeName"] for p in pods) == nodes

    def status_settled() -> dict:
        st = cluster.get("daemonset", "agent", namespace)["status"]
        return st if st.get("numberReady") == 2 else None

    st = eventually(status_settled, timeout=20, what="the DaemonSet's status")
    assert st["desiredNumberScheduled"] == st["currentNumberScheduled"] == st["numberAvailable"] == 2
    assert st.get("numberMisscheduled", 0) == 0


def test_readiness_probe_initial_delay_is_honoured(cluster: Cluster, namespace: str) -> None:
    delay = 3
    created = time.time()
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: slow, labels: {{app: slow}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: ["netexec", "--http-port=8080"]
      ports: [{{containerPort: 8080}}]
      readinessProbe:
        httpGet: {{path: /healthz, port: 8080}}
        initialDelaySeconds: {delay}
        periodSeconds: 1
""", namespace)

    # Running (the container has started) but not Ready yet.
    def running() -> dict:
        pod = cluster.get("pod", "slow", namespace)
        return pod if pod["status"].get("phase") == "Running" else None

    pod = eventually(running, timeout=20, what="the pod to run")
    running_at = time.time()
    assert not pod_ready(pod), "Ready before initialDelaySeconds"
    assert pod["status"]["containerStatuses"][0]["ready"] is False

    ready_at = eventually(lambda: pod_ready(cluster.get("pod", "slow", namespace)) and time.time(),
                          timeout=delay + 10, interval=0.1, what="the pod to become Ready")
    assert ready_at - created >= delay - 0.5, f"Ready {ready_at - created:.1f}s after creation (delay {delay}s)"
    assert ready_at - running_at <= delay + 3, f"Ready only {ready_at - running_at:.1f}s after it ran"
    pod = cluster.get("pod", "slow", namespace)
    started = pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
    ready_cond = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    # RFC 3339 seconds: the transition is at least (delay - 1) s after the start.
    assert timestamp(ready_cond["lastTransitionTime"]) - timestamp(started) >= delay - 1, (started, ready_cond)


def test_ready_annotation_holds_pod_unready_until_removed(cluster: Cluster, namespace: str) -> None:
    cluster.apply(deployment_manifest("held", grace=1), namespace)
    [pod] = cluster.wait_ready(namespace, "app=held")

    cluster.annotate("pod", pod, namespace, READY_ANNOTATION, "false")
    eventually(lambda: not pod_ready(cluster.get("pod", pod, namespace)), timeout=15,
               what="the annotation to make the pod unready")
    # It stays unready (still Running) while the annotation is there.
    for _ in range(4):
        p = cluster.get("pod", pod, namespace)
        assert p["status"]["phase"] == "Running"
        assert not pod_ready(p), "Ready despite ready=false"
        time.sleep(0.5)
    ready = next(c for c in p["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady"
    assert READY_ANNOTATION in ready.get("message", "")
    assert cluster.kubectl("get", "pod", pod, "-n", namespace, "--no-headers").stdout.split()[1] == "0/1"

    cluster.annotate("pod", pod, namespace, READY_ANNOTATION, None)
    eventually(lambda: pod_ready(cluster.get("pod", pod, namespace)), timeout=15,
               what="the pod to become Ready once the annotation is removed")
    assert cluster.ready_pods(namespace, "app=held") == [pod]


def test_ready_annotation_at_creation_keeps_pod_out_of_service(cluster: Cluster, namespace: str) -> None:
    """A pod created with ready=false never becomes Ready (and never enters the
    Service's ready endpoints) until the annotation goes."""
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata:
  name: gated
  labels: {{app: gated}}
  annotations: {{"{READY_ANNOTATION}": "false"}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: ["netexec", "--http-port=8080"]
      ports: [{{containerPort: 8080}}]
""", namespace)
    cluster.kubectl("create", "service", "clusterip", "gated", "--tcp=80:8080", "-n", namespace)
    cluster.kubectl("set", "selector", "service", "gated", "app=gated", "-n", namespace)
    eventually(lambda: cluster.get("pod", "gated", namespace)["status"].get("phase") == "Running",
               timeout=20, what="the pod to run")
    ip = pod_ip(cluster, namespace, "gated")
    eventually(lambda: slice_endpoints(cluster, namespace, "gated").get(ip, {}).get("ready") is False,
               timeout=20, what="the EndpointSlice to list the pod as not ready")
    time.sleep(1)
    assert not pod_ready(cluster.get("pod", "gated", namespace))

    cluster.annotate("pod", "gated", namespace, READY_ANNOTATION, None)
    eventually(lambda: slice_endpoints(cluster, namespace, "gated").get(ip, {}).get("ready") is True,
               timeout=20, what="the EndpointSlice to mark the pod ready")
