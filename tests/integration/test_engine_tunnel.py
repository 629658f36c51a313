"""The SPDY tunnel in a WebSocket: one per pod for every connection, v4 as the last fallback.

Tender's first choice is the same session over the POST upgrade
(tray.engine.dialer); these tests pin the WebSocket (``TENDER_PORT_FORWARD=tunnel``)
to test it, kubectl's default path and Tender's first fallback, and
test_engine_spdy_upgrade.py runs the same rules on the upgrade.

What is counted comes from the API server's own metrics:
``apiserver_stream_tunnel_requests_total{code="101"}`` counts tunnels opened
(kubectl's path); ``apiserver_request_total`` for the portforward subresource
counts every port-forward request once it has ended, tunnels and v4
WebSockets alike.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

import tray.engine.tunnel
import tray.kube.spdyconn
from tests.clusterlib import Cluster
from tests.integration.engine import hostname, pod_manifest, wait_for, wait_hostname, wait_status
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster


@pytest.fixture(autouse=True)
def websocket_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The WebSocket tunnel for every test here (test_v4_path sets its own path)."""
    monkeypatch.setenv("TENDER_PORT_FORWARD", "tunnel")


def _metric(cluster: Cluster, name: str, labels: str) -> float:
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(label in line for label in labels.split(",") if label):
            total += float(line.rsplit(" ", 1)[1])
    return total


def tunnels_opened(cluster: Cluster) -> float:
    return _metric(cluster, "apiserver_stream_tunnel_requests_total", 'code="101"')


def portforward_requests(cluster: Cluster) -> float:
    return _metric(cluster, "apiserver_request_total", 'subresource="portforward"')


def v4_websockets(cluster: Cluster) -> float:
    """Port-forward requests that were not tunnels (counted when they end)."""
    return portforward_requests(cluster) - tunnels_opened(cluster)


def wait_v4_count(cluster: Cluster, since: float, at_least: int) -> float:
    return wait_for(lambda: (n := v4_websockets(cluster) - since) >= at_least and n, 10,
                    f"{at_least} v4 port-forward requests to be counted")


def _web_pod(cluster: Cluster, namespace: str, manager: ForwardManager) -> tuple[str, int]:
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "web"), 8080, local_port=0))
    return sid, wait_status(manager, sid, "active").local_port


def test_connections_share_one_tunnel(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """30 connections, one after another and 10 at once: one tunnel opened, no v4 WebSocket."""
    tunnels, requests = tunnels_opened(cluster), portforward_requests(cluster)
    sid, port = _web_pod(cluster, namespace, manager)
    for _ in range(20):
        assert hostname(port) == "web"
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(10)]
    for s in socks:
        s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    for s in socks:
        with s:
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"web"), reply
    assert tunnels_opened(cluster) - tunnels == 1
    manager.stop(sid)  # ends the tunnel, so that its request is counted too
    wait_for(lambda: portforward_requests(cluster) - requests >= 1, 10, "the tunnel's request to be counted")
    time.sleep(0.5)
    assert portforward_requests(cluster) - requests == 1  # the tunnel, and nothing else


@pytest.mark.parametrize("why", ["asked", "refused"])
def test_v4_path(why: str, cluster: Cluster, namespace: str, manager: ForwardManager,
                 monkeypatch: pytest.MonkeyPatch) -> None:
    """v4 (one WebSocket per connection, no tunnel) when asked (TENDER_PORT_FORWARD=v4), and
    by default when neither SPDY session opens (here the kubelet refuses both, offered protocols
    it does not know): the forward works anyway, over v4, and stays on it."""
    if why == "asked":
        monkeypatch.setenv("TENDER_PORT_FORWARD", "v4")
    else:
        monkeypatch.delenv("TENDER_PORT_FORWARD")
        monkeypatch.setattr(tray.engine.tunnel, "SUBPROTOCOL", "SPDY/3.1+unknown.tender.dev")
        monkeypatch.setattr(tray.kube.spdyconn, "STREAM_PROTOCOL", "unknown.tender.dev")
    tunnels, v4 = tunnels_opened(cluster), v4_websockets(cluster)
    _, port = _web_pod(cluster, namespace, manager)
    for _ in range(5):
        assert hostname(port) == "web"
    assert tunnels_opened(cluster) - tunnels == 0
    wait_v4_count(cluster, v4, 5)


def test_a_refused_upgrade_falls_back_to_the_websocket(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the POST upgrade comes first; refused (here by the kubelet, offered a stream
    protocol it does not know, as a proxy that passes no SPDY would refuse it), the forward
    opens the WebSocket tunnel instead, and keeps it: one tunnel for every connection."""
    monkeypatch.delenv("TENDER_PORT_FORWARD")
    monkeypatch.setattr(tray.kube.spdyconn, "STREAM_PROTOCOL", "unknown.tender.dev")
    tunnels = tunnels_opened(cluster)
    _, port = _web_pod(cluster, namespace, manager)
    for _ in range(5):
        assert hostname(port) == "web"
    assert tunnels_opened(cluster) - tunnels == 1


def test_half_close_gets_the_whole_reply(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """SPDY has a real half-close: after the client's FIN the pod's reply still arrives, and
    the connection ends when the pod closes (no linger wait)."""
    _, port = _web_pod(cluster, namespace, manager)
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"web"), reply
    assert time.monotonic() - t0 < 2


def test_refused_port_fails_one_connection_not_the_tunnel(cluster: Cluster, namespace: str,
                                                          manager: ForwardManager) -> None:
    """Nothing listens on the pod's port: each connection is closed (the kubelet's error stream
    says why) but the forward stays active and the tunnel is not reopened per connection."""
    cluster.apply(pod_manifest("web", port=9999), namespace)  # declares 9999, serves 8080
    cluster.wait_ready(namespace, "app=web")
    tunnels = tunnels_opened(cluster)
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "web"), 9999, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100) == b""
    assert manager.get(sid).status == "active"
    assert tunnels_opened(cluster) - tunnels == 1


def _kubelet_pid(cluster: Cluster) -> int:
    """This cluster's kubelet process (its command line names the cluster's directory, as testcluster checks)."""
    pid = int((cluster.dir / cluster.letter / "pids" / "kubelet.pid").read_text())
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    assert b"component\0kubelet\0" in cmdline and str(cluster.dir).encode() in cmdline, (pid, cmdline)
    return pid


def _freeze(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP ``pid`` and wait until every one of its threads is stopped (state T in /proc)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while True:
        states = {t.name: (t / "stat").read_text().rsplit(")", 1)[1].split()[0]
                  for t in Path(f"/proc/{pid}/task").iterdir()}
        if all(state == "T" for state in states.values()):
            return
        assert time.monotonic() < deadline, f"kubelet {pid} not stopped {timeout} s after SIGSTOP: {states}"
        time.sleep(0.01)


def test_frozen_kubelet_is_noticed(cluster: Cluster, namespace: str, manager: ForwardManager,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The kubelet stops answering without closing anything (SIGSTOP: as a network that
    silently drops, or a peer that slept).  The open tunnel looks fine, but a new connection's
    streams are never acknowledged: within the reply timeout the forward must leave "active";
    once the kubelet runs again it is active and answering."""
    monkeypatch.setattr(tray.engine.tunnel, "REPLY_TIMEOUT", 2.0)
    sid, port = _web_pod(cluster, namespace, manager)
    assert hostname(port) == "web"  # the tunnel is open
    pid = _kubelet_pid(cluster)
    try:
        _freeze(pid)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n")
            t0 = time.monotonic()
            assert s.recv(100) == b""  # closed, not hanging
            assert time.monotonic() - t0 < 5
        info = wait_for(lambda: manager.get(sid).status != "active" and manager.get(sid), 5,
                        "the forward to stop claiming active")
        assert info.status == "reconnecting", info
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_status(manager, sid, "active", timeout=40)
    wait_hostname(port, "web", timeout=10)


def _drops_logged(cluster: Cluster) -> int:
    log = cluster.dir / "logs" / f"{cluster.context}-kubelet.log"
    return log.read_text(errors="replace").count("drop-connections: closed")


def test_connection_after_a_silent_drop_is_not_lost(cluster: Cluster, namespace: str,
                                                    manager: ForwardManager) -> None:
    """drop-connections cuts the kubelet's side of the tunnel, and the API server keeps our
    WebSocket open until we next write to it.  The next connection meets a dead tunnel: it must
    not fail, but start again on a fresh one (the kubelet never saw it).  Five times over."""
    sid, port = _web_pod(cluster, namespace, manager)
    assert hostname(port) == "web"
    tunnels = tunnels_opened(cluster)
    for i in range(5):
        before = _drops_logged(cluster)
        cluster.drop_connections("web", namespace)
        wait_for(lambda: _drops_logged(cluster) > before, 10, "the kubelet to cut the connections")
        assert hostname(port) == "web", f"the request after drop {i + 1} failed"
    assert tunnels_opened(cluster) - tunnels == 5  # one fresh tunnel per drop
    assert manager.get(sid).status == "active"


def test_dead_tunnels_are_freed_at_once(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """Every drop replaces the tunnel; the dead ones (a zlib stream and TLS buffers each) must
    be freed by reference counting alone, not left for an occasional full collection: an
    hour of pod churn grew Tender by 25 MB in 12 minutes when a cycle kept them."""
    import gc

    import weakref

    # Earlier tests' engines are still referenced by pytest (their fixtures): count only ours.
    earlier = weakref.WeakSet(o for o in gc.get_objects() if type(o) is tray.engine.tunnel.Tunnel)
    sid, port = _web_pod(cluster, namespace, manager)
    assert hostname(port) == "web"
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            before = _drops_logged(cluster)
            cluster.drop_connections("web", namespace)
            wait_for(lambda: _drops_logged(cluster) > before, 10, "the kubelet to cut the connections")
            assert hostname(port) == "web"
        def live() -> list[tray.engine.tunnel.Tunnel]:
            return [o for o in gc.get_objects() if type(o) is tray.engine.tunnel.Tunnel and o not in earlier]

        # The last dead one may still be finishing its closing handshake: a few seconds, GC still off.
        try:
            wait_for(lambda: len(live()) == 1, 5, "the dead tunnels to be freed")
        except AssertionError:
            raise AssertionError([t.closed_reason for t in live()]) from None
    finally:
        gc.enable()
