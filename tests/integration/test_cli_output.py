"""What `tender forward` / `tender run` print, and how they exit, on the real cluster."""

from __future__ import annotations

import json
import re
import signal
import socket
import time

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import hostname, service_manifest, wait_for, wait_hostname
from tests.integration.test_engine_cli import Tender

pytestmark = pytest.mark.cluster

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> list[str]:
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    return cluster.wait_ready(namespace, "app=web")


def _forward(cluster: Cluster, namespace: str, *args: str) -> Tender:
    return Tender("forward", "--kubeconfig", cluster.kubeconfig, "--context", cluster.context, "-n", namespace,
                  *args)


def _line_until(t: Tender, pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no line matching {pattern!r}; got {t.seen}"
        m = re.search(pattern, t.next_line(timeout=left))
        if m:
            return m


def _scale(cluster: Cluster, namespace: str, replicas: int) -> None:
    cluster.kubectl("scale", "deployment/web", "-n", namespace, f"--replicas={replicas}")


def test_run_names_profile_and_context_shows_attempts_and_timestamps(cluster: Cluster, namespace: str,
                                                                     web: list[str], tmp_path) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(f"version: 1\nprofiles:\n  - name: shop-web\n    context: {cluster.context}\n"
                        f"    namespace: {namespace}\n    target: deploy/web\n    ports: [':8080']\n")
    t = Tender("run", "--kubeconfig", cluster.kubeconfig, "--profiles", str(profiles), "shop-web", "--timestamps")
    try:
        prefix = rf"^{STAMP} shop-web \({re.escape(cluster.context)}\): "
        m = _line_until(t, prefix + rf"Forwarding from 127\.0\.0\.1:(\d+) -> 8080 \(deploy/web in {namespace}, "
                           rf"pod (\S+)\)$", 30)
        port, pod = int(m.group(1)), m.group(2)
        assert pod == web[0] and hostname(port) == pod

        _scale(cluster, namespace, 0)
        attempts: list[int] = []
        while not attempts or attempts[-1] < 3:
            m = _line_until(t, prefix + r"deploy/web \d+ -> 8080: reconnecting(?: \(attempt (\d+), next at "
                                        r"(\d\d:\d\d:\d\d)\))?: (.+)$", 40)
            if m.group(1):
                attempts.append(int(m.group(1)))
        # One line per attempt (a second one only when the reason changed meanwhile).
        assert sorted(set(attempts)) == [1, 2, 3] and attempts == sorted(attempts), t.seen
        bodies = [re.sub(rf"^{STAMP} ", "", line) for line in t.seen]
        assert all(a != b for a, b in zip(bodies, bodies[1:])), t.seen  # no line repeated

        _scale(cluster, namespace, 1)
        m = _line_until(t, prefix + rf"Forwarding from 127\.0\.0\.1:{port} -> 8080 \(deploy/web in {namespace}, "
                                    r"pod (\S+)\)$", 60)
        assert hostname(port) == m.group(1)
        t.proc.send_signal(signal.SIGINT)
        code, out, err = t.wait()
        assert code == 0, (out, err)
        for line in out.splitlines():
            assert re.match(prefix, line), line  # every line: time, profile, context
    finally:
        t.kill()


def test_undeclared_port_warns_and_each_refused_connection_is_printed(cluster: Cluster, namespace: str,
                                                                      web: list[str]) -> None:
    t = _forward(cluster, namespace, "deploy/web", ":9080")
    try:
        ctx = re.escape(cluster.context)
        m = _line_until(t, rf"^{ctx}: Forwarding from 127\.0\.0\.1:(\d+) -> 9080 \(deploy/web in {namespace}, "
                           r"pod (\S+)\)$", 30)
        port, pod = int(m.group(1)), m.group(2)
        warning = t.next_line(timeout=5)
        assert warning == (f"{cluster.context}: warning: pod {pod} declares no port 9080 (declares: http 8080/TCP); "
                           "connections to it will likely be refused"), warning
        tries = 12
        for _ in range(tries):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert s.recv(100) == b""  # closed: the pod refused it
        counted = 0
        lines = []
        while counted < tries:
            m = _line_until(t, rf"^{ctx}: error forwarding 127\.0\.0\.1:{port} -> pod {pod} port 9080: "
                               r"connection refused(?: \(and (\d+) more\))?$", 10)
            lines.append(m.group(0))
            counted += 1 + int(m.group(1) or 0)
        assert counted == tries
        assert len(lines) <= 4, lines  # rate-limited: one line a second at most
    finally:
        t.kill()


def test_connection_errors_are_json_events(cluster: Cluster, namespace: str, web: list[str]) -> None:
    t = _forward(cluster, namespace, "deploy/web", ":9080", "-o", "json", "--timestamps")
    try:
        active = None
        while active is None:
            event = json.loads(t.next_line(timeout=30))
            if event["event"] == "status" and event["status"] == "active":
                active = event
        assert active["warning"].startswith(f"pod {active['pod_name']} declares no port 9080")
        with socket.create_connection(("127.0.0.1", active["local_port"]), timeout=5) as s:
            assert s.recv(100) == b""
        while True:
            event = json.loads(t.next_line(timeout=10))
            if event["event"] == "connection-error":
                break
        assert event["pod_name"] == active["pod_name"] and event["port"] == 9080
        assert event["error"] == "connection refused" and event["suppressed"] == 0
        assert event["session_id"] == active["session_id"] and "status" not in event
        assert re.fullmatch(STAMP, event["time"])
    finally:
        t.kill()


UDP_SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: dns}
spec:
  selector: {app: web}
  ports: [{name: dns, port: 53, targetPort: 8080, protocol: UDP}]
"""


@pytest.mark.parametrize("target,spec,fragment", [
    ("svc/web", "9090", "svc/web has no port 9090; its ports are 80/TCP (http)"),
    ("svc/web", "8080:nope", 'svc/web has no port "nope"'),
    ("deploy/web", ":nope", '"nope"'),
    ("svc/dns", "5353:53", "UDP"),
])
def test_port_the_target_does_not_have_is_a_usage_error(cluster: Cluster, namespace: str, web: list[str],
                                                        target: str, spec: str, fragment: str) -> None:
    cluster.apply(UDP_SERVICE, namespace)
    t = _forward(cluster, namespace, target, spec)
    try:
        code, out, err = t.wait(30)
    finally:
        t.kill()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tender: error: port {spec!r}: "), err
    assert fragment in lines[0], lines
    assert "Traceback" not in err


def test_run_usage_error_names_the_profile(cluster: Cluster, namespace: str, web: list[str], tmp_path) -> None:
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(f"version: 1\nprofiles:\n  - name: typo\n    context: {cluster.context}\n"
                        f"    namespace: {namespace}\n    target: svc/web\n    ports: ['18080:8080']\n")
    t = Tender("run", "--kubeconfig", cluster.kubeconfig, "--profiles", str(profiles), "--all")
    try:
        code, out, err = t.wait(30)
    finally:
        t.kill()
    assert code == 2, (out, err)
    assert err.strip() == (f"tender: error: {profiles}:3: typo.ports[0]: svc/web has no port 8080; "
                           "its ports are 80/TCP (http)"), err


def test_keeps_running_while_the_forward_can_recover(cluster: Cluster, namespace: str, web: list[str]) -> None:
    """Every pod gone for longer than the 5 attempts: `error`, but the Deployment is there, so
    `tender forward` waits and forwards again when a pod is back; --exit-on-error exits 1."""
    keep = _forward(cluster, namespace, "deploy/web", ":8080")
    leave = _forward(cluster, namespace, "deploy/web", ":8080", "--exit-on-error")
    try:
        ctx = re.escape(cluster.context)
        port = int(_line_until(keep, rf"^{ctx}: Forwarding from 127\.0\.0\.1:(\d+) -> 8080", 30).group(1))
        _line_until(leave, rf"^{ctx}: Forwarding from", 30)
        _scale(cluster, namespace, 0)
        code, out, err = leave.wait(90)
        assert code == 1, (out, err)
        assert re.search(r": error: gave up after 5 attempts: .*; still watching deploy/web", out), out
        _line_until(keep, rf"^{ctx}: deploy/web {port} -> 8080: error: gave up after 5 attempts: .*"
                          r"; still watching deploy/web, forwards again when a pod is ready$", 30)
        assert keep.proc.poll() is None, "tender forward exited while its Deployment still exists"
        _scale(cluster, namespace, 1)
        pod = _line_until(keep, rf"^{ctx}: Forwarding from 127\.0\.0\.1:{port} -> 8080 .*pod (\S+)\)$", 60).group(1)
        assert wait_hostname(port, pod) == pod
        keep.proc.send_signal(signal.SIGTERM)
        code, out, err = keep.wait()
        assert code == 0, (out, err)
    finally:
        keep.kill()
        leave.kill()


def test_a_profile_for_another_kubeconfig_does_not_stop_the_others(cluster: Cluster, namespace: str,
                                                                    web: list[str], tmp_path) -> None:
    """A profiles file shared across machines names a context this kubeconfig lacks: `run --all`
    says so in one line (file, line, profile) and runs the other profiles."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(f"version: 1\nprofiles:\n  - name: shop-web\n    context: {cluster.context}\n"
                        f"    namespace: {namespace}\n    target: deploy/web\n    ports: [':8080']\n"
                        f"  - name: prod-web\n    context: prod\n    namespace: shop\n"
                        f"    target: deploy/web\n    ports: [':8080']\n")
    t = Tender("run", "--kubeconfig", cluster.kubeconfig, "--profiles", str(profiles), "--all")
    try:
        m = _line_until(t, rf"^shop-web \({re.escape(cluster.context)}\): Forwarding from 127\.0\.0\.1:(\d+) ", 30)
        assert hostname(int(m.group(1))) == web[0]
        t.proc.send_signal(signal.SIGINT)
        code, out, err = t.wait()
        assert code == 0, (out, err)
        assert f'{profiles}:8: prod-web.context: unknown context "prod"' in err, err
        assert "Traceback" not in err
    finally:
        t.kill()
