"""A forward's counters and log on a real API server and kubelet (issue 13, part 5).

What ``tender ls -o wide``, the dashboard and the tray's submenu show: connections
open and in total, bytes each way (counted while they pass, on both paths: the
SPDY tunnel and v4), the last connection that failed, and the forward's log
(``ForwardManager.logs``) through a pod switch.
"""

from __future__ import annotations

import socket
from datetime import datetime, timezone

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import http_request, pod_manifest, wait_for, wait_hostname, wait_status
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target
from tray.engine.manager import ForwardManager
from tray.errors import UsageError

pytestmark = pytest.mark.cluster

UPLOAD = 300_000  # bytes each upload sends (several socket reads, several frames)
DOWNLOAD = 500_000  # bytes the download asks for


def _recent(iso: str) -> bool:
    return abs((datetime.now(timezone.utc) - datetime.fromisoformat(iso)).total_seconds()) < 60


@pytest.mark.parametrize("path", ["tunnel", "v4"])
def test_counters_count_connections_and_bytes(cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch,
                                              path: str) -> None:
    monkeypatch.setenv("TENDER_PORT_FORWARD", path)  # read by each forward's dialer when it is made
    manager = ForwardManager(cluster.kubeconfig)
    try:
        cluster.apply(pod_manifest("web"), namespace)
        cluster.wait_ready(namespace, "app=web")
        sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "web"), 8080, local_port=0))
        info = wait_status(manager, sid, "active")
        assert (info.connections, info.connections_total, info.bytes_in, info.bytes_out) == (0, 0, 0, 0)
        port = info.local_port

        # Three uploads, one connection each: the pod answers how much it read.
        for _ in range(3):
            status, body = http_request(port, "/upload", method="POST", body=b"u" * UPLOAD)
            assert (status, body) == (200, str(UPLOAD).encode())
        # One download.
        status, body = http_request(port, f"/bytes?n={DOWNLOAD}")
        assert status == 200 and len(body) == DOWNLOAD

        info = wait_for(lambda: (i := manager.get(sid)).connections == 0 and i, 10, "every connection closed")
        assert info.connections_total == 4
        assert info.bytes_out >= 3 * UPLOAD, info.bytes_out
        assert info.bytes_out < 3 * UPLOAD + 4 * 1000, info.bytes_out  # the request heads, nothing twice
        assert info.bytes_in >= DOWNLOAD + 3 * len(str(UPLOAD)), info.bytes_in
        assert info.bytes_in < DOWNLOAD + 4 * 1000, info.bytes_in  # the answers' heads, nothing twice
        assert (info.last_connection_error, info.last_connection_error_at) == ("", "")

        # Counted while they pass: a connection still open has its upload counted, and counts as open.
        before = info.bytes_out
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            head = f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {2 * UPLOAD}\r\n\r\n".encode()
            sock.sendall(head + b"u" * UPLOAD)  # half the body: the pod waits for the rest
            open_now = wait_for(lambda: (i := manager.get(sid)).bytes_out >= before + UPLOAD and i, 10,
                                "the first half counted")
            assert (open_now.connections, open_now.connections_total) == (1, 5)
            sock.sendall(b"u" * UPLOAD)
            answer = b""
            while not answer.endswith(str(2 * UPLOAD).encode()):
                chunk = sock.recv(4096)
                assert chunk, f"closed early: {answer!r}"
                answer += chunk
        info = wait_for(lambda: (i := manager.get(sid)).connections == 0 and i, 10, "the connection closed")
        assert info.bytes_out >= before + len(head) + 2 * UPLOAD
        assert info.connections_total == 5
        assert manager.get(sid).to_dict()["bytes_out"] == info.bytes_out
    finally:
        manager.shutdown()


def test_a_refused_port_is_the_last_connection_error(cluster: Cluster, namespace: str,
                                                     manager: ForwardManager) -> None:
    """Port 9090 of a pod that listens only on 8080: the forward is active, each connection is
    refused inside the pod, and the counters and the log say so."""
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "web"), 9090, local_port=0))
    info = wait_status(manager, sid, "active")
    for _ in range(2):
        with socket.create_connection(("127.0.0.1", info.local_port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert sock.recv(100) == b""  # closed without an answer: refused in the pod
    info = wait_for(lambda: (i := manager.get(sid)).last_connection_error and i.connections == 0 and i, 10,
                    "the refused connection recorded")
    assert info.last_connection_error == "connection refused"
    assert _recent(info.last_connection_error_at), info.last_connection_error_at
    assert info.status == "active" and info.connections_total == 2 and info.bytes_in == 0
    lines = manager.logs(sid)
    failed = [line for line in lines if line.message.startswith("connection to pod web port 9090 failed")]
    assert failed and failed[0].level == "warning", [line.message for line in lines]
    assert failed[0].message == "connection to pod web port 9090 failed: connection refused"


def test_the_log_holds_a_pod_switch_in_order(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """A Deployment's only pod deleted: the log says which pod was used, that the forward
    reconnected (or switched at once) to the new one, in that order; the counters carry on."""
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    old = cluster.wait_ready(namespace, "app=web")[0]
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    assert wait_hostname(port, old) == old
    cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
    new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 30,
                   "a replacement pod")[0]
    wait_for(lambda: (i := manager.get(sid)).status == "active" and i.pod_name == new, 30, f"the forward on {new}")
    assert wait_hostname(port, new) == new

    said = [line.message for line in manager.logs(sid)]
    assert said[:3] == ["starting", f"using pod {old}", "active"], said
    switched = said.index(f"switched to pod {new} (was {old})")
    # After the switch: "active: reconnected to pod NEW" when the forward had gone reconnecting, or
    # nothing when it switched while still active (the old pod was terminating but the new one was
    # already ready: the status never changed, so no status line; one clean run saw this).
    rest = said[switched + 1:]
    assert not rest or rest[0].startswith("active"), said
    assert all(line.time <= later.time for line, later in zip(manager.logs(sid), manager.logs(sid)[1:]))
    for message in said[3:switched]:  # between them: reconnecting and its attempts, nothing else
        assert message.startswith(("reconnecting", "reconnect attempt", "active")), said
    levels = {line.message: line.level for line in manager.logs(sid)}
    assert all(levels[m] == "warning" for m in said if m.startswith("reconnecting")), levels

    info = manager.get(sid)
    assert info.connections_total >= 2 and info.bytes_in > 0  # the forward's, not the pod's
    manager.stop(sid)
    with pytest.raises(UsageError):
        manager.logs(sid)  # a stopped forward is gone from the list, and so is its log
