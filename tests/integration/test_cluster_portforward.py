"""`kubectl port-forward` against the test cluster reaches the pod itself.

kubectl (v1.30+) speaks WebSocket to the apiserver by default (the
apiserver tunnels it to the kubelet as SPDY); KUBECTL_PORT_FORWARD_WEBSOCKETS
=false makes it use SPDY end to end.  kubectl runs with -v=6, whose request
log shows which one was used: `GET .../portforward 101` for the WebSocket
upgrade, `POST .../portforward 101` for SPDY.  Both must work, or Tender's
tests would only cover one of the paths real users hit.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.clusterlib import Cluster, PortForward, deployment_manifest, eventually

pytestmark = pytest.mark.cluster


def upgrade_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "/portforward" in line and " 101 " in line]
    assert lines, f"no successful portforward upgrade in kubectl's log:\n{stderr}"
    return lines[0]


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
def test_port_forward_to_deployment_returns_pod_hostname(cluster: Cluster, namespace: str, websockets: bool) -> None:
    cluster.apply(deployment_manifest("web"), namespace)
    [pod] = cluster.wait_ready(namespace, "app=web")

    with PortForward(cluster, "deployment/web", 8080, namespace, websockets=websockets) as pf:
        # Two requests on two connections: one session carries several streams.
        assert pf.get("/hostname") == pod
        assert pf.get("/hostname") == pod
        assert pf.proc.poll() is None, "kubectl port-forward exited after serving requests"

    method = "GET" if websockets else "POST"
    line = upgrade_line(pf.stderr)
    assert re.search(rf"\b{method} https://\S+/namespaces/{namespace}/pods/{pod}/portforward 101\b", line), line
    if websockets:
        assert "WebSocket" in pf.stderr  # tunneling_dialer: "Before WebSocket Upgrade Connection..."
        assert "falling back" not in pf.stderr.lower()


def test_termination_grace_period_keeps_pod_serving_port_forward(cluster: Cluster, namespace: str) -> None:
    """A deleted pod keeps serving through its grace period, then goes away.

    The port-forward is opened before the delete: new connections through it
    still reach the pod 1 s after `kubectl delete --wait=false` (grace 4 s),
    and the pod object disappears only once the grace period has run out.
    """
    grace = 4
    cluster.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: graceful, labels: {{app: graceful}}}}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
    - name: app
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: ["netexec", "--http-port=8080"]
      ports: [{{containerPort: 8080}}]
""", namespace)
    cluster.wait_ready(namespace, "app=graceful")

    with PortForward(cluster, "pod/graceful", 8080, namespace) as pf:
        assert pf.get("/hostname") == "graceful"
        deleted_at = time.time()
        cluster.kubectl("delete", "pod", "graceful", "-n", namespace, "--wait=false")
        pod = cluster.get("pod", "graceful", namespace)
        assert pod["metadata"].get("deletionTimestamp"), "pod is not terminating"
        assert pod["metadata"]["deletionGracePeriodSeconds"] == grace

        time.sleep(1)
        assert pf.get("/hostname") == "graceful", "pod stopped serving during its grace period"
        # It is Terminating, not gone.
        assert cluster.kubectl("get", "pod", "graceful", "-n", namespace, check=False).returncode == 0

        def gone() -> bool:
            r = cluster.kubectl("get", "pod", "graceful", "-n", namespace, check=False)
            assert r.returncode != 0, "pod still exists"
            assert "NotFound" in r.stderr, r.stderr
            return True

        eventually(gone, timeout=grace + 10, what="the pod to be removed")
        elapsed = time.time() - deleted_at
        assert elapsed >= grace - 1, f"pod removed after {elapsed:.1f}s, before its {grace}s grace period"
