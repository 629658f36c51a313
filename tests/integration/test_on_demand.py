"""On-demand connection on the real clusters: forwards listen without a tunnel, dial at their first
connection, and let the tunnel go once it has been idle for ``TENDER_TUNNEL_IDLE`` seconds.

Tunnels are counted as this process's TCP connections to each API server (every tunnel is a
connection of its own; the watches' connections are the baseline), and by the forwards' dialers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.clusterlib import Cluster
from tests.integration.engine import hostname, pod_manifest, wait_for, wait_status
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target
from tray.engine.dialer import IDLE_ENV
from tray.engine.manager import ForwardManager

pytestmark = pytest.mark.cluster

IDLE = 2.0


def api_connections(cluster: Cluster) -> int:
    """This process's established TCP connections to ``cluster``'s API server."""
    port = int(cluster.state["api_port"])
    inodes = set()
    for fd in os.scandir("/proc/self/fd"):
        try:
            link = os.readlink(fd.path)
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "01" and parts[9] in inodes and int(parts[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def tunnels(manager: ForwardManager, ids: list[str]) -> int:
    """Tunnels the forwards' dialers hold open now."""
    return sum(manager._sessions[i]._dialer.tunnels for i in ids)  # noqa: SLF001


def test_twenty_forwards_listen_without_tunnels_and_dial_on_demand(
        two_clusters: tuple[Cluster, Cluster], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IDLE_ENV, str(IDLE))
    a, b = two_clusters
    spaces = [(c, c.new_namespace("ondemand")) for c in (a, b)]
    manager = ForwardManager(a.kubeconfig)
    try:
        for c, ns in spaces:
            c.apply(pod_manifest("web"), ns)
        for c, ns in spaces:
            c.wait_ready(ns, "app=web")
        ids: list[str] = []
        for c, ns in spaces:
            for _ in range(10):
                ids.append(manager.start(ForwardSpec(c.context, ns, Target("Pod", "web"), 8080, local_port=0)))
        for i in ids:
            wait_status(manager, i, "active")
        base = {c.context: api_connections(c) for c, _ in spaces}
        wait_for(lambda: all(api_connections(c) <= base[c.context] for c, _ in spaces), 5, "steady connections")
        # Listening, with no tunnel: nothing dialled, however long they wait.
        assert tunnels(manager, ids) == 0
        base = {c.context: api_connections(c) for c, _ in spaces}

        first_b = ids[10]
        port = manager.get(first_b).local_port
        assert hostname(port) == "web", "the first connection dials and is answered"
        assert tunnels(manager, ids) == 1
        assert api_connections(b) == base[b.context] + 1, "one tunnel, to cluster b only"
        assert api_connections(a) == base[a.context]
        assert hostname(port) == "web"
        assert tunnels(manager, ids) == 1, "the second connection uses the same tunnel"

        # Idle for IDLE seconds: the tunnel goes, the forward stays active and dials again when used.
        wait_for(lambda: tunnels(manager, ids) == 0, IDLE + 5, "the idle tunnel to close")
        wait_for(lambda: api_connections(b) <= base[b.context], 5, "the tunnel's connection to close")
        assert manager.get(first_b).status == "active"
        assert hostname(port) == "web"
        assert tunnels(manager, ids) == 1
    finally:
        manager.shutdown()
        for c, ns in spaces:
            c.kubectl("delete", "namespace", ns, "--wait=false", check=False)
