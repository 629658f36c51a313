"""Ports suggested by annotations (issue 14 part 4): ``GET /v1/contexts/C/namespaces/NS/suggestions`` of a
``tender daemon`` on the test cluster, in a namespace of the test's own with annotated objects.

The annotations are written in each tool's documented format: k9s's README ("FastForwards":
``container::[local:]port``) and kftray's docs/kftui/USAGE.md ("Service Auto-Discovery":
``alias-localport-port``).
"""

from __future__ import annotations

import pytest

from tests.clusterlib import Cluster
from tests.integration.daemon import Daemon
from tests.integration.engine import AGNHOST, hostname, pod_manifest, wait_for

pytestmark = pytest.mark.cluster

# Local ports below the ephemeral range (32768-60999), where outgoing connections could hold them.
WEB_LOCAL, DEPLOY_LOCAL, DEBUG_PORT, NAMED_LOCAL = 29311, 29312, 29313, 29314


def manifests() -> str:
    return f"""
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
    kftray.app/configs: "web-{WEB_LOCAL}-8080,named-{WEB_LOCAL + 10}-http"
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: broken
  annotations: {{kftray.app/configs: "not-a-valid-config-at-all"}}
spec:
  selector: {{app: web}}
  ports: [{{port: 81, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata:
  name: named
  annotations: {{kftray.app/configs: "named-{NAMED_LOCAL}-8080"}}
spec:
  selector: {{app: web}}
  ports: [{{name: web, port: 83, targetPort: http}}]
---
apiVersion: v1
kind: Service
metadata: {{name: plain}}
spec:
  selector: {{app: web}}
  ports: [{{port: 82, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata:
      labels: {{app: web}}
      annotations: {{k9scli.io/port-forwards: "app::{DEPLOY_LOCAL}:http"}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: {AGNHOST}
          args: [netexec, --http-port=8080]
          ports: [{{name: http, containerPort: 8080}}]
"""


@pytest.fixture
def annotated(cluster: Cluster, namespace: str) -> str:
    cluster.apply(manifests(), namespace)
    cluster.apply(pod_manifest("debug", port=DEBUG_PORT, args=f"netexec --http-port={DEBUG_PORT}",
                               annotations={"k9scli.io/auto-port-forwards": f"app::{DEBUG_PORT}"}), namespace)
    cluster.wait_ready(namespace, "app=web")
    cluster.wait_ready(namespace, "app=debug")
    return namespace


def test_the_namespace_s_annotations_are_suggested_and_each_starts(cluster: Cluster, daemon: Daemon, annotated: str):
    path = f"/v1/contexts/{cluster.context}/namespaces/{annotated}/suggestions"

    def complete() -> dict | None:  # the EndpointSlices name the pods' port once a pod is ready: soon after
        answer = daemon.api("GET", path)
        assert answer.status_code == 200, answer.text
        return answer.json() if len(answer.json()["suggestions"]) == 5 else None

    body = wait_for(complete, 20, "every suggestion, svc/named's once its EndpointSlice names port 8080")
    assert (body["context"], body["namespace"], body["errors"]) == (cluster.context, annotated, [])
    shown = [(s["target"], s["ports"], s["alias"], s["annotation"]) for s in body["suggestions"]]
    assert shown == [
        # 8080 is the pods' port of the named targetPort "http": matched through the EndpointSlices
        ("svc/named", [f"{NAMED_LOCAL}:83"], "named", "kftray.app/configs"),
        ("svc/web", [f"{WEB_LOCAL}:80"], "web", "kftray.app/configs"),  # kftray's 8080 is the pods' port: svc port 80
        ("svc/web", [f"{WEB_LOCAL + 10}:http"], "named", "kftray.app/configs"),
        ("deploy/web", [f"{DEPLOY_LOCAL}:http"], "app", "k9scli.io/port-forwards"),
        ("pod/debug", [str(DEBUG_PORT)], "app", "k9scli.io/auto-port-forwards"),
    ]
    assert len(body["problems"]) == 1 and body["problems"][0].startswith("svc/broken: kftray.app/configs: ")
    assert {s["kind"] for s in body["suggestions"]} == {"Service", "Deployment", "Pod"}

    # Start buttons post the suggestion as it is: each forward works.
    web_pod = cluster.ready_pods(annotated, "app=web")[0]
    for suggestion, pod in ((body["suggestions"][0], web_pod), (body["suggestions"][1], web_pod),
                            (body["suggestions"][3], web_pod), (body["suggestions"][4], "debug")):
        fwd = daemon.start_forward({"context": cluster.context, "namespace": annotated,
                                    "target": suggestion["target"], "ports": suggestion["ports"]})
        assert hostname(fwd["local_port"]) == pod
        assert str(fwd["local_port"]) == suggestion["ports"][0].split(":")[0]


def test_bad_requests(cluster: Cluster, daemon: Daemon, namespace: str):
    missing = daemon.api("GET", f"/v1/contexts/nope/namespaces/{namespace}/suggestions")
    assert missing.status_code == 404 and missing.json()["field"] == "context"
    assert "tender-a" in missing.json()["error"] or cluster.context in missing.json()["error"]
    bad = daemon.api("GET", f"/v1/contexts/{cluster.context}/namespaces/Not_A_Namespace/suggestions")
    assert bad.status_code == 400 and bad.json()["field"] == "namespace"
    empty = daemon.api("GET", f"/v1/contexts/{cluster.context}/namespaces/{namespace}/suggestions")
    assert empty.status_code == 200 and empty.json()["suggestions"] == [] and empty.json()["problems"] == []
