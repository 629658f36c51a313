"""The browse API on the real cluster: what the tray's Clusters submenu lists, and what RBAC refuses."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import AGNHOST, pod_manifest, service_manifest, wait_for
from tests.integration.kubeconfigs import user_with_rules
from tray.domain.targets import KINDS
from tray.engine.browse import Browser, Resource
from tray.engine.manager import ForwardManager
from tray.errors import ForbiddenError

pytestmark = pytest.mark.cluster

# Every kind that is not a pod, Deployment or Service: a StatefulSet, a DaemonSet, a bare
# ReplicaSet (and one scaled to zero), a ReplicationController, a Job that keeps running and one
# that finished (told to exit through netexec's /exit).
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
        - {{name: db, image: "{AGNHOST}", args: [netexec, --http-port=5432], ports: [{{name: pg, containerPort: 5432}}]}}
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
          image: "{AGNHOST}"
          args: [netexec, --http-port=9100]
          ports: [{{name: metrics, containerPort: 9100}}, {{containerPort: 9053, protocol: UDP}}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: cache}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: cache}}}}
  template:
    metadata: {{labels: {{app: cache}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - {{name: cache, image: "{AGNHOST}", args: [netexec, --http-port=6379], ports: [{{containerPort: 6379}}]}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: idle}}
spec:
  replicas: 0
  selector: {{matchLabels: {{app: idle}}}}
  template:
    metadata: {{labels: {{app: idle}}}}
    spec:
      containers:
        - {{name: idle, image: "{AGNHOST}", args: [netexec, --http-port=8080], ports: [{{containerPort: 8080}}]}}
---
apiVersion: v1
kind: ReplicationController
metadata: {{name: legacy}}
spec:
  replicas: 1
  selector: {{app: legacy}}
  template:
    metadata: {{labels: {{app: legacy}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - {{name: legacy, image: "{AGNHOST}", args: [netexec, --http-port=8000], ports: [{{name: web, containerPort: 8000}}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: worker}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
        - {{name: worker, image: "{AGNHOST}", args: [netexec, --http-port=7000], ports: [{{name: api, containerPort: 7000}}]}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: done}}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - {{name: done, image: "{AGNHOST}", args: [netexec, --http-port=7001], ports: [{{containerPort: 7001}}]}}
"""


@pytest.fixture(scope="module")
def shop(cluster: Cluster) -> str:
    """A namespace with one target of each kind (built once for the module)."""
    ns = cluster.new_namespace("browse")
    cluster.apply(deployment_manifest("web", replicas=1), ns)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}, "
                                                          "{name: dns, port: 53, protocol: UDP}]"), ns)
    cluster.apply(pod_manifest("solo", labels={"role": "solo"}), ns)
    cluster.apply(WORKLOADS, ns)
    cluster.wait_ready(ns, "app=web")
    cluster.wait_ready(ns, "role=solo")
    cluster.wait_ready(ns, "job-name=worker")
    [done] = cluster.wait_ready(ns, "job-name=done")
    host, port = cluster.direct_address(ns, done, 7001)
    urllib.request.urlopen(f"http://{host}:{port}/exit?code=0", timeout=10).read()
    wait_for(lambda: {"Complete", "Failed"} & set(cluster.kubectl(
        "get", "job", "done", "-n", ns, "-o", "jsonpath={.status.conditions[*].type}").stdout.split()), 60,
             "the finished Job")
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def browser(cluster: Cluster) -> Browser:
    m = ForwardManager(cluster.kubeconfig)
    try:
        yield Browser(m, timeout=20)
    finally:
        m.shutdown()


def _names(listed: object) -> list[str]:
    assert isinstance(listed, tuple), listed
    return [r.name for r in listed]


def test_namespaces_are_the_clusters(cluster: Cluster, browser: Browser, shop: str) -> None:
    names = browser.namespaces(cluster.context)
    assert shop in names and "kube-system" in names and "default" in names
    assert list(names) == sorted(names)
    assert browser.default_namespace(cluster.context) == "default"


def test_every_kind_lists_its_objects_with_their_declared_ports(cluster: Cluster, browser: Browser,
                                                                shop: str) -> None:
    listed = browser.resources(cluster.context, shop)
    assert list(listed) == list(KINDS)
    web_pod = cluster.ready_pods(shop, "app=web")[0]
    # Pods: running ones only (the finished Job's pod is not offered), sorted by name.
    pods = _names(listed["Pod"])
    assert pods == sorted(pods) and web_pod in pods and "solo" in pods
    assert not [p for p in pods if p.startswith("done-")], pods
    assert Resource(web_pod, ((8080, "http", "TCP"),)) in listed["Pod"]
    # Services: the service ports (what a user types), UDP kept with its protocol.
    assert listed["Service"] == (Resource("web", ((80, "http", "TCP"), (53, "dns", "UDP"))),)
    assert listed["Service"][0].tcp_ports == ((80, "http"),)
    assert listed["Deployment"] == (Resource("web", ((8080, "http", "TCP"),)),)
    assert listed["StatefulSet"] == (Resource("db", ((5432, "pg", "TCP"),)),)
    assert listed["DaemonSet"] == (Resource("agent", ((9100, "metrics", "TCP"), (9053, None, "UDP"))),)
    # The bare ReplicaSet only: the one scaled to zero is left out, and so is the
    # Deployment's (the Deployment is listed; its ReplicaSet changes with each rollout).
    replicasets = _names(listed["ReplicaSet"])
    assert replicasets == ["cache"], replicasets
    assert Resource("cache", ((6379, None, "TCP"),)) in listed["ReplicaSet"]
    assert listed["ReplicationController"] == (Resource("legacy", ((8000, "web", "TCP"),)),)
    # The running Job; the finished one is left out.
    assert listed["Job"] == (Resource("worker", ((7000, "api", "TCP"),)),)


def test_some_kinds_only(cluster: Cluster, browser: Browser, shop: str) -> None:
    listed = browser.resources(cluster.context, shop, ["Service", "Job"])
    assert list(listed) == ["Service", "Job"]
    assert _names(listed["Service"]) == ["web"] and _names(listed["Job"]) == ["worker"]
    with pytest.raises(KeyError):
        browser.resources(cluster.context, shop, ["CronJob"])


def test_an_empty_namespace_lists_nothing(cluster: Cluster, browser: Browser, namespace: str) -> None:
    assert browser.resources(cluster.context, namespace) == {kind: () for kind in KINDS}


def test_what_rbac_refuses_is_a_forbidden_error(cluster: Cluster, shop: str, tmp_path: Path) -> None:
    """A user who may list pods and services of one namespace, and nothing else: the namespace
    list is refused as a whole, each other kind on its own, and the allowed kinds still list."""
    rules = [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list"]}]
    m = ForwardManager(user_with_rules(cluster, shop, "lister", rules, tmp_path / "lister.yaml"))
    try:
        b = Browser(m, timeout=20)
        with pytest.raises(ForbiddenError, match="namespaces"):
            b.namespaces("lister")
        listed = b.resources("lister", shop)
        assert "solo" in _names(listed["Pod"]) and _names(listed["Service"]) == ["web"]
        for kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"):
            assert isinstance(listed[kind], ForbiddenError), (kind, listed[kind])
        assert "deployments" in str(listed["Deployment"])
        other = b.resources("lister", "default", ["Pod"])
        assert isinstance(other["Pod"], ForbiddenError), other
    finally:
        m.shutdown()
