"""Close semantics: replies after a half-close arrive; a keep-alive stream does not outlive its client."""

from __future__ import annotations

import socket
import time

import pytest

import tray.engine.pool
import tray.engine.v4
from tests.clusterlib import Cluster
from tests.integration.engine import pod_manifest, wait_for, wait_status
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster


def _request(port: int, *, half_close: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return s.recv(65536)


def test_keepalive_streams_end_after_the_client_closes(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A keep-alive server never closes: once the client is gone and the pod silent for
    LINGER_IDLE, the stream must end (it used to stay open for good)."""
    monkeypatch.setattr(tray.engine.v4, "LINGER_IDLE", 0.5)
    monkeypatch.setattr(tray.engine.pool, "WARM_FOR", 0.5)
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    for _ in range(5):
        assert b"200 OK" in _request(port, half_close=False)
    wait_for(lambda: manager.get(sid).connections == 0, 10, "every forwarded connection to end")


def test_reply_after_half_close_is_delivered(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    """A client that shuts down its sending side still gets the whole reply (v4 has no half-close)."""
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    t0 = time.monotonic()
    reply = _request(port, half_close=True)
    assert b"200 OK" in reply and b"web" in reply
    assert time.monotonic() - t0 < 5
