"""What the API server tells users: its version, and RBAC on port-forward."""

from __future__ import annotations

import json

import pytest

from tests.clusterlib import Cluster, deployment_manifest

pytestmark = pytest.mark.cluster


def test_server_version_is_the_built_one(cluster: Cluster) -> None:
    """The binary's version ldflags are set: the server says v1.37.2, not v0.0.0."""
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)  # skew warning goes to stderr
    server = out["serverVersion"]
    assert server["gitVersion"] == "v1.37.2"
    assert (server["major"], server["minor"]) == ("1", "37")
    assert server["gitTreeState"] == "clean"
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {"v1.37.2"}


def test_viewer_is_refused_port_forward(cluster: Cluster, namespace: str) -> None:
    viewer = f"{cluster.context}-viewer"
    cluster.apply(deployment_manifest("web", grace=1), namespace)
    [pod] = cluster.wait_ready(namespace, "app=web")

    # The viewer sees the pod...
    listed = cluster.kubectl("get", "pods", "-n", namespace, "-o", "name", context=viewer).stdout.split()
    assert listed == [f"pod/{pod}"]
    # ...but may not forward to it: kubectl fails at once (before listening).
    r = cluster.kubectl("port-forward", "-n", namespace, f"pod/{pod}", ":8080", context=viewer,
                        check=False, timeout=30)
    assert r.returncode != 0
    assert "Forwarding from" not in r.stdout
    assert "forbidden" in r.stderr
    assert 'User "viewer" cannot create resource "pods/portforward"' in r.stderr, r.stderr

    def can_i(context: str, *args: str) -> tuple[int, str]:
        res = cluster.kubectl("auth", "can-i", *args, "-n", namespace, context=context, check=False)
        return res.returncode, res.stdout.strip()

    assert can_i(viewer, "create", "pods", "--subresource=portforward") == (1, "no")
    assert can_i(viewer, "get", "pods") == (0, "yes")
    assert can_i(viewer, "create", "pods") == (1, "no")
    # The same question answered yes for the admin: the check is meaningful.
    assert can_i(cluster.context, "create", "pods", "--subresource=portforward") == (0, "yes")
