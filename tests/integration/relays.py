"""What the relay tests share (test_relay, test_relay_profiles, test_dashboard_relay): a server only the
node reaches, and the relay pods of a namespace."""

from __future__ import annotations

import socket
import threading

from tests.clusterlib import Cluster

#: The label selector of Tender's relay pods.
RELAYS = "app.kubernetes.io/managed-by=tender,app.kubernetes.io/name=tender-relay"


def node_only_server(greeting: bytes = b"node-only server got: ") -> tuple[socket.socket, int]:
    """A TCP server on this machine's loopback, which only the node (so the relay's process) reaches.

    Each connection gets ``greeting`` and the first bytes it sent (up to 100), then is closed.  Returns
    the listening socket (close it to stop) and its port.
    """
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.sendall(greeting + conn.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def relay_pods(cluster: Cluster, namespace: str) -> list[dict]:
    """The relay pods in ``namespace`` (being deleted or not)."""
    return cluster.pods(namespace, RELAYS)
