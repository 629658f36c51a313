"""ReplicaSet, ReplicationController and Job targets on the real cluster (kubectl's rs/, rc/, job/).

kubectl finds their pod with polymorphichelpers.AttachablePodForObjectFn:
the object's selector (an RC's plain label map, the others' LabelSelector),
then the best pod by podutils.ActivePods.  The test cluster's
controller-manager runs every default controller, so the ReplicaSet,
ReplicationController and Job controllers create these pods for real.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.clusterlib import ROOT, Cluster
from tests.integration.engine import AGNHOST, hostname, http_request, wait_for, wait_hostname, wait_status
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster


def _template(app: str, port: int, port_name: str, restart: str = "Always") -> str:
    return f"""
    metadata: {{labels: {{app: {app}}}}}
    spec:
      restartPolicy: {restart}
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: {AGNHOST}
          args: ["netexec", "--http-port={port}"]
          ports: [{{name: {port_name}, containerPort: {port}}}]"""


WORKLOADS = f"""
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: web-7c9f}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: rsweb}}
    matchExpressions: [{{key: app, operator: In, values: [rsweb]}}]
  template:{_template("rsweb", 8080, "http")}
---
apiVersion: v1
kind: ReplicationController
metadata: {{name: legacy}}
spec:
  replicas: 1
  selector: {{app: legacy}}
  template:{_template("legacy", 9000, "api")}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: migrate}}
spec:
  backoffLimit: 0
  template:{_template("migrate", 7070, "admin", restart="Never")}
"""


@pytest.fixture(scope="module")
def more_ns(cluster: Cluster) -> str:
    ns = cluster.new_namespace("more")
    cluster.apply(WORKLOADS, ns)
    cluster.wait_ready(ns, "app=rsweb", 2)
    cluster.wait_ready(ns, "app=legacy", 1)
    cluster.wait_ready(ns, "app=migrate", 1)
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# kind, name, remote port as typed, container port, selector of its pods
CASES = [
    ("ReplicaSet", "web-7c9f", 8080, 8080, "app=rsweb"),
    ("ReplicaSet", "web-7c9f", "http", 8080, "app=rsweb"),
    ("ReplicationController", "legacy", 9000, 9000, "app=legacy"),
    ("ReplicationController", "legacy", "api", 9000, "app=legacy"),
    ("Job", "migrate", 7070, 7070, "app=migrate"),
    ("Job", "migrate", "admin", 7070, "app=migrate"),
]


@pytest.mark.parametrize("kind,name,remote,container_port,selector", CASES,
                         ids=[f"{k}-{r}" for k, _, r, _, _ in CASES])
def test_forward_to_each_new_kind(cluster: Cluster, more_ns: str, manager: ForwardManager, kind: str, name: str,
                                  remote: int | str, container_port: int, selector: str) -> None:
    sid = manager.start(ForwardSpec(cluster.context, more_ns, Target(kind, name), remote, local_port=0))
    info = wait_status(manager, sid, "active", timeout=20)
    assert info.container_port == container_port
    assert info.pod_name in cluster.ready_pods(more_ns, selector)
    assert hostname(info.local_port) == info.pod_name
    assert hostname(info.local_port) == info.pod_name  # a second connection, same pod


def test_replication_controller_pod_replaced(cluster: Cluster, more_ns: str, manager: ForwardManager) -> None:
    """The RC's pod deleted: its controller makes another, and the forward follows it (label-map selector)."""
    sid = manager.start(ForwardSpec(cluster.context, more_ns, Target("ReplicationController", "legacy"), 9000, local_port=0))
    first = wait_status(manager, sid, "active", timeout=20)
    cluster.kubectl("delete", "pod", first.pod_name, "-n", more_ns, "--wait=false")
    wait_for(lambda: (i := manager.get(sid)).status == "active" and i.pod_name != first.pod_name and i,
             60, "the forward on the RC's new pod")
    now = manager.get(sid).pod_name
    assert wait_hostname(first.local_port, now, timeout=30) == now


def test_replica_set_moves_to_the_other_replica(cluster: Cluster, more_ns: str, manager: ForwardManager) -> None:
    sid = manager.start(ForwardSpec(cluster.context, more_ns, Target("ReplicaSet", "web-7c9f"), 8080, local_port=0))
    first = wait_status(manager, sid, "active", timeout=20)
    cluster.annotate("pod", first.pod_name, more_ns, "testcluster.tender.dev/ready", "false")
    try:
        info = wait_for(lambda: (i := manager.get(sid)).status == "active" and i.pod_name != first.pod_name and i,
                        30, "the forward on the other replica")
        assert hostname(first.local_port) == info.pod_name
    finally:
        cluster.annotate("pod", first.pod_name, more_ns, "testcluster.tender.dev/ready", None)


def _tender(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tray", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("typed", ["rs/web-7c9f", "replicasets.apps/web-7c9f", "rc/legacy",
                                   "replicationcontroller/legacy", "job/migrate", "jobs.v1.batch/migrate"])
def test_cli_accepts_kubectl_spellings(cluster: Cluster, more_ns: str, typed: str) -> None:
    remote = {"rs": 8080, "re": 8080, "rc": 9000, "jo": 7070}[typed[:2]]
    if typed.startswith("replicationcontroller"):
        remote = 9000
    proc = _tender("forward", "--kubeconfig", cluster.kubeconfig, "--context", cluster.context, "-n", more_ns,
                   typed, f":{remote}")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Forwarding from 127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.split("Forwarding from 127.0.0.1:")[1].split()[0])
        pod = line.rsplit("pod ", 1)[1].rstrip(")\n")
        assert hostname(port) == pod
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _complete_the_job(cluster: Cluster, namespace: str, manager: ForwardManager) -> tuple[str, str]:
    """Run Job "migrate", forward to it, make its pod exit 0 through the forward: (pod, session id)."""
    cluster.apply(WORKLOADS.split("---")[2], namespace)
    (pod,) = cluster.wait_ready(namespace, "app=migrate", 1)
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Job", "migrate"), 7070, local_port=0))
    info = wait_status(manager, sid, "active", timeout=20)
    assert hostname(info.local_port) == pod
    http_request(info.local_port, "/exit?code=0")  # netexec exits 0: the pod Succeeds
    wait_for(lambda: cluster.pods(namespace, "app=migrate")[0].get("status", {}).get("phase") == "Succeeded",
             60, "the Job's pod to succeed")
    return pod, sid


def test_job_whose_pod_completes(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """A Job's pod that completes is no longer forwarded to, and the forward says why."""
    pod, sid = _complete_the_job(cluster, namespace, manager)
    gone = wait_status(manager, sid, "reconnecting", "error", timeout=30, allow_error=True)
    assert pod in gone.status_reason and "Succeeded" in gone.status_reason, gone


def test_finished_job_fails_the_forward_like_kubectl(cluster: Cluster, namespace: str,
                                                     manager: ForwardManager) -> None:
    """kubectl port-forward job/x whose pod completed: "unable to forward port because pod is not
    running. Current status=Succeeded", exit 1.  Tender: error naming the phase, not recoverable,
    and `tender forward` exits 1."""
    pod, _ = _complete_the_job(cluster, namespace, manager)
    wait_for(lambda: any(c.get("type") == "Complete" and c.get("status") == "True" for c in
                         cluster.get("job", "migrate", namespace).get("status", {}).get("conditions", [])),
             60, "the Job to be Complete")
    again = manager.start(ForwardSpec(cluster.context, namespace, Target("Job", "migrate"), 7070, local_port=0))
    failed = wait_status(manager, again, "error", timeout=20)
    assert pod in failed.status_reason and "Succeeded" in failed.status_reason, failed
    assert not failed.recoverable, failed
    proc = _tender("forward", "--kubeconfig", cluster.kubeconfig, "--context", cluster.context, "-n", namespace,
                   "job/migrate", ":7070")
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 1, (out, err)
    assert "Succeeded" in out and "job/migrate" in out, (out, err)
    assert "Traceback" not in err
