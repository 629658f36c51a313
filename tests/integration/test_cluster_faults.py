"""Fault injection is real: a stopped API server refuses connections, and a
restarted one serves again.  Cluster b takes the outage so that tests on
cluster a are not disturbed; the apiserver is always restarted.
"""

from __future__ import annotations

import pytest

from tests.clusterlib import Cluster, eventually

pytestmark = pytest.mark.cluster


def test_stopped_apiserver_refuses_then_recovers(two_clusters: tuple[Cluster, Cluster]) -> None:
    a, b = two_clusters
    ns = b.new_namespace()
    try:
        b.stop("apiserver")
        try:
            r = b.kubectl("get", "pods", "-n", ns, check=False, timeout=30)
            assert r.returncode != 0
            assert "refused" in r.stderr, r.stderr
            assert f"127.0.0.1:{b.state['api_port']}" in r.stderr, r.stderr
            # The other cluster is unaffected.
            a.kubectl("get", "pods", "-n", "default")
        finally:
            b.start("apiserver")

        def serving() -> bool:
            r = b.kubectl("get", "pods", "-n", ns, check=False, timeout=10)
            assert r.returncode == 0, r.stderr
            return True

        eventually(serving, timeout=30, interval=0.5, what="cluster b's apiserver to serve again")
        # Its data survived (etcd kept running): the namespace is still there.
        b.kubectl("get", "namespace", ns)
    finally:
        b.kubectl("delete", "namespace", ns, "--wait=false", check=False)
