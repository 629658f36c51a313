"""A tunnel that has carried many short connections still carries a large upload (issue 14, bug b14).

After about 52 short connections through one SPDY tunnel, an upload through
a new connection on it stalled after a few MB and never finished, and its
local socket stayed ESTABLISHED for good (counted, never logged), holding
the tunnel open: the frames of the short connections, never acknowledged
by a PING, counted as queued at the kubelet, and the PING the upload waited
for was refused because of them (tray.engine.kubeletqueues, behind_bulk).

What a user must see, through the SAME tunnel (one Tunnel for the whole
test, real cluster): 60 short GETs, then a 64 MiB upload and a 64 MiB
download, each within a deadline and whole; a client that gives up in the
middle of an upload (closes, or resets) leaves no connection open a few
seconds later.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import time

import pytest

import tray.engine.tunnel
from tests.clusterlib import Cluster, expected_sha256
from tests.integration.engine import http_get, pod_manifest, wait_for, wait_status
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target
from tray.engine.manager import ForwardManager

pytestmark = pytest.mark.cluster

SHORT_CONNECTIONS = 60
SIZE = 64 << 20
DEADLINE = 45.0  # seconds for 64 MiB either way (under 2 s when it works; for good when it stalls)
BLOCK = 1 << 20


def _upload(port: int, size: int) -> bytes:
    """POST ``size`` bytes to /upload on a new connection; the pod's answer (the length it read)."""
    deadline = time.monotonic() + DEADLINE
    block = bytes(range(256)) * (BLOCK // 256)
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode())
        sent = 0
        while sent < size:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                s.sendall(block[:size - sent])
            except TimeoutError:
                raise AssertionError(f"the upload stalled: {sent >> 20} of {size >> 20} MiB sent "
                                     f"in {DEADLINE:.0f} s") from None
            sent += min(BLOCK, size - sent)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    return answer.split(b"\r\n\r\n", 1)[1]


def _download(port: int, size: int) -> str:
    """GET /bytes?n=size on a new connection, within DEADLINE; the body's SHA-256."""
    deadline = time.monotonic() + DEADLINE
    digest = hashlib.sha256()
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(f"GET /bytes?n={size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(65536)
            assert chunk, f"no answer head: {head[:200]!r}"
            head += chunk
        head, body = head.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        digest.update(body)
        got = len(body)
        while got < size:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                chunk = s.recv(BLOCK)
            except TimeoutError:
                raise AssertionError(f"the download stalled: {got >> 20} of {size >> 20} MiB "
                                     f"in {DEADLINE:.0f} s") from None
            assert chunk, f"the download ended after {got} of {size} bytes"
            digest.update(chunk)
            got += len(chunk)
    return digest.hexdigest()


def _give_up(port: int, *, reset: bool) -> None:
    """Start a 1 GiB upload, send 16 MiB of it, then close (``reset``: with an RST)."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as s:
        s.sendall(f"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {1 << 30}\r\n\r\n".encode())
        block = b"g" * BLOCK
        for _ in range(16):
            s.sendall(block)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_large_transfers_after_many_short_connections_on_one_tunnel(
        cluster: Cluster, namespace: str, manager: ForwardManager, monkeypatch: pytest.MonkeyPatch) -> None:
    tunnels: list[tray.engine.tunnel.Tunnel] = []
    real_init = tray.engine.tunnel.Tunnel.__init__

    def spy(self: tray.engine.tunnel.Tunnel, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        tunnels.append(self)

    monkeypatch.setattr(tray.engine.tunnel.Tunnel, "__init__", spy)
    cluster.apply(pod_manifest("bulk"), namespace)
    cluster.wait_ready(namespace, "app=bulk")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "bulk"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port

    for _ in range(SHORT_CONNECTIONS):
        assert http_get(port, "/hostname") == "bulk"
    assert len(tunnels) == 1, "the short connections did not share one tunnel"

    t0 = time.monotonic()
    assert _upload(port, SIZE) == str(SIZE).encode()
    up_s = time.monotonic() - t0
    t0 = time.monotonic()
    assert _download(port, SIZE) == expected_sha256(SIZE)
    down_s = time.monotonic() - t0
    assert _upload(port, SIZE) == str(SIZE).encode()  # and again, on the same tunnel

    for reset in (False, True):
        _give_up(port, reset=reset)
        how = "reset" if reset else "closed"
        wait_for(lambda: manager.get(sid).connections == 0, 10,
                 f"the connection of a client that {how} mid-upload to end")

    (tunnel,) = tunnels  # everything went through the one tunnel, which still lives
    assert tunnel.closed_reason is None, tunnel.closed_reason
    info = manager.get(sid)
    assert info.status == "active" and info.connections == 0
    assert info.connections_total == SHORT_CONNECTIONS + 5, info.connections_total
    print(f"64 MiB up {up_s:.1f} s, down {down_s:.1f} s")
