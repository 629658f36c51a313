"""`tender forward` end to end, as a subprocess on the test cluster."""

from __future__ import annotations

import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.clusterlib import ROOT, Cluster, deployment_manifest
from tests.integration.engine import hostname, service_manifest

pytestmark = pytest.mark.cluster


class Tender:
    """A `tender` subprocess whose stdout lines are read as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tray", *args], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        # stdout is read by this thread only; stderr once the process has exited.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output for {timeout:.0f}s; so far: {self.seen}") from None
        self.seen.append(line)
        return line

    def wait(self, timeout: float = 20) -> tuple[int, str, str]:
        """Exit code, all of stdout, stderr."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"tender did not exit within {timeout:.0f}s; stdout: {self.seen}") from None
        self._reader.join(5)  # stdout is at EOF: every line is in the queue
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        assert self.proc.stderr is not None
        return code, "\n".join(self.seen), self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> list[str]:
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    return cluster.wait_ready(namespace, "app=web")


def _base(cluster: Cluster, namespace: str) -> list[str]:
    return ["forward", "--kubeconfig", cluster.kubeconfig, "--context", cluster.context, "-n", namespace]


def test_cli_forward_json_then_sigint(cluster: Cluster, namespace: str, web: list[str]) -> None:
    t = Tender(*_base(cluster, namespace), "svc/web", "0:80", "-o", "json")
    try:
        deadline = time.monotonic() + 20
        active = None
        while active is None:
            assert time.monotonic() < deadline, f"no active status line; got {t.seen}"
            event = json.loads(t.next_line(timeout=20))
            if event["event"] == "status":
                assert event["status"] in ("starting", "active"), event
                if event["status"] == "active":
                    active = event
        assert active["target_kind"] == "Service" and active["target_name"] == "web"
        assert active["cluster_id"] == cluster.context and active["namespace"] == namespace
        assert active["container_port"] == 8080 and active["pod_name"] == web[0]
        port = active["local_port"]
        assert port > 0
        assert hostname(port) == web[0]
        t.proc.send_signal(signal.SIGINT)
        code, out, err = t.wait()
        assert code == 0, (out, err)
        assert "Traceback" not in err, err
        for line in out.splitlines():
            json.loads(line)  # every line of -o json is JSON
        # The port is released on exit.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        t.kill()


def test_cli_forward_port_in_use(cluster: Cluster, namespace: str, web: list[str]) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        t = Tender(*_base(cluster, namespace), "svc/web", f"{port}:80")
        try:
            code, out, err = t.wait()
        finally:
            t.kill()
    assert code == 1, (out, err)
    assert any(str(port) in line and "in use" in line for line in (out + "\n" + err).splitlines()), (out, err)
    assert "Traceback" not in err, err


def test_cli_forward_missing_service(cluster: Cluster, namespace: str) -> None:
    t = Tender(*_base(cluster, namespace), "svc/nope", "80")
    try:
        code, out, err = t.wait()
    finally:
        t.kill()
    assert code == 1, (out, err)
    lines = [l for l in (out + "\n" + err).splitlines() if "svc/nope" in l and "error" in l]
    assert lines, (out, err)
    assert "not found" in lines[0] and namespace in lines[0], lines
    assert "Traceback" not in err, err
