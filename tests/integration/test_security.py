"""Security: loopback by default, a warning otherwise, and no credential in any output."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.clusterlib import MANIFESTS, Cluster

pytestmark = pytest.mark.cluster

TENDER = [sys.executable, "-m", "tray"]


def _listening(port: int) -> list[str]:
    """Local addresses listening on `port`, from /proc (what `ss -ltn` shows)."""
    found = []
    for path, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state != "0A":  # LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            if int(port_hex, 16) != port:
                continue
            raw = bytes.fromhex(addr_hex)
            if family == 4:
                found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.append(socket.inet_ntop(socket.AF_INET6, words))
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TENDER, "-v", "-v", "forward", "--kubeconfig", cluster.kubeconfig, *args, "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )


def _wait_status(proc: subprocess.Popen[str], status: str, timeout: float = 30) -> tuple[dict, list[str]]:
    lines = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        event = json.loads(line)
        if event["event"] == "status" and event["status"] == status:
            return event, lines
    raise AssertionError(f"no {status} event; got {lines}")


@pytest.fixture(scope="module")
def demo(cluster: Cluster) -> Cluster:
    cluster.kubectl("apply", "-f", str(MANIFESTS / "demo.yaml"))
    cluster.wait_ready("demo", "app=web", 2)
    return cluster


def test_default_listener_is_loopback_only(demo: Cluster):
    port = _free_port()
    proc = _start(demo, "--context", demo.context, "-n", "demo", "svc/web", f"{port}:80")
    try:
        event, _ = _wait_status(proc, "active")
        assert event["address"] == "127.0.0.1"
        assert _listening(port) == ["127.0.0.1"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def test_other_address_only_when_asked_and_warned(demo: Cluster):
    port = _free_port()
    proc = _start(demo, "--context", demo.context, "-n", "demo", "--address", "0.0.0.0", "svc/web", f"{port}:80")
    try:
        _wait_status(proc, "active")
        assert _listening(port) == ["0.0.0.0"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "reachable from other machines" in err


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_no_token_in_logs_events_or_errors(demo: Cluster):
    """Debug logs, JSON events and a 403 error message never carry a credential."""
    token = demo.admin_token
    viewer_token = demo.state["viewer_token"]
    port, viewer_port = _free_port(), _free_port()
    ok = _start(demo, "--context", demo.context, "-n", "demo", "svc/web", f"{port}:80")
    denied = _start(demo, "--context", f"{demo.context}-viewer", "-n", "demo", "svc/web", f"{viewer_port}:80")
    try:
        _wait_status(ok, "active")
        assert b"200 OK" in _get(port)
        # The viewer may list pods but not create pods/portforward: the
        # forward goes to error at start, naming the user.
        event, _ = _wait_status(denied, "error")
        assert "viewer" in event["status_reason"] and "pods/portforward" in event["status_reason"]
    finally:
        for p in (ok, denied):
            p.send_signal(signal.SIGINT)
    out_ok, err_ok = ok.communicate(timeout=30)
    out_denied, err_denied = denied.communicate(timeout=30)
    everything = "\n".join([out_ok, err_ok, out_denied, err_denied])
    assert token not in everything
    assert viewer_token not in everything
    assert "Bearer" not in everything
