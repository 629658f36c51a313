"""A Service forward spreads its connections as a Service would (issue 14 part 3: ``balance``).

A 3-replica Deployment of agnhost netexec behind svc/web (port 80 → the named
port ``http``), in the test's own namespace; every request is a NEW
connection (GET /hostname answers the pod's name).  ``round-robin`` (the
default for a Service) reaches each pod in turn, ``pin`` one pod (kubectl's),
``sticky`` one pod per client address; a rollout and a scale-down under a
stream of round-robin requests fail none.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import (READINESS_PROBE, hostname, service_manifest, wait_for,
                                      wait_status)
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target
from tray.engine.manager import ForwardManager

pytestmark = pytest.mark.cluster

SVC = Target("Service", "web")
ROOT = Path(__file__).resolve().parents[2]


def _web(cluster: Cluster, namespace: str, replicas: int = 3, probe: bool = True) -> list[str]:
    """deploy/web (``replicas`` pods, a readiness probe unless not ``probe``) and svc/web 80 → http;
    the ready pods' names."""
    cluster.apply(deployment_manifest("web", replicas=replicas, extra_pod_spec=READINESS_PROBE if probe else ""),
                  namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: web, port: 80, targetPort: http}]"), namespace)
    return cluster.wait_ready(namespace, "app=web", replicas, timeout=90)


def _forward(manager: ForwardManager, cluster: Cluster, namespace: str, balance: str = "auto",
             pods: int = 3) -> tuple[str, int]:
    """svc/web 80 on any free port, active with ``pods`` pods in its rotation; (session id, local port)."""
    sid = manager.start(ForwardSpec(cluster.context, namespace, SVC, 80, local_port=0, balance=balance))
    info = wait_status(manager, sid, "active")
    if balance != "pin":
        wait_for(lambda: len(manager.get(sid).pods) == pods, 20, f"{pods} pods in the rotation")
    return sid, info.local_port


def _hostname_from(source: str, port: int) -> str:
    """GET /hostname on a new connection from the local address ``source`` (127.0.0.2, ...)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/hostname", headers={"Connection": "close"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        return resp.read().decode()
    finally:
        conn.close()


def test_round_robin_reaches_each_pod_a_third_of_the_time(
        cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    pods = _web(cluster, namespace)
    sid, port = _forward(manager, cluster, namespace)
    info = manager.get(sid)
    assert info.balance == "round-robin" and sorted(info.pods) == sorted(pods), info
    counts = Counter(hostname(port) for _ in range(300))
    assert set(counts) == set(pods), counts
    assert all(85 <= n <= 115 for n in counts.values()), counts
    assert manager.get(sid).connections_total == 300


def test_pin_reaches_one_pod(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    _web(cluster, namespace)
    sid, port = _forward(manager, cluster, namespace, "pin")
    info = manager.get(sid)
    assert info.balance == "pin" and info.pods == (info.pod_name,)
    assert Counter(hostname(port) for _ in range(30)) == {info.pod_name: 30}


def test_sticky_reaches_one_pod_per_client_address(
        cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    pods = _web(cluster, namespace)
    sid, port = _forward(manager, cluster, namespace, "sticky")
    assert manager.get(sid).balance == "sticky"
    assert len(Counter(hostname(port) for _ in range(15))) == 1  # every client of 127.0.0.1 is one client
    per_client = {f"127.0.0.{i}": Counter(_hostname_from(f"127.0.0.{i}", port) for _ in range(5))
                  for i in range(2, 22)}
    assert all(len(c) == 1 for c in per_client.values()), per_client
    used = {next(iter(c)) for c in per_client.values()}
    assert len(used) >= 2 and used <= set(pods), used  # 20 clients spread over the pods


def _stream(port: int, seen: list[str], failures: list[str], stop: threading.Event) -> threading.Thread:
    """A client opening a new connection every 20 ms until ``stop``: answers in ``seen``, errors in ``failures``."""
    def client() -> None:
        while not stop.is_set():
            try:
                seen.append(hostname(port, timeout=10))
            except (OSError, AssertionError, http.client.HTTPException) as exc:  # every failure counts
                failures.append(f"{time.strftime('%X')} {type(exc).__name__}: {exc}")
            stop.wait(0.02)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("probe", [True, False], ids=["readiness-probe", "no-probe"])
def test_a_rollout_during_a_stream_of_round_robin_requests_fails_none(
        cluster: Cluster, namespace: str, manager: ForwardManager, probe: bool) -> None:
    old = set(_web(cluster, namespace, probe=probe))
    sid, port = _forward(manager, cluster, namespace)
    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    t = _stream(port, seen, failures, stop)
    try:
        wait_for(lambda: set(seen) == old, 10, "the client to reach every pod")
        cluster.kubectl("rollout", "restart", "deploy/web", "-n", namespace)
        cluster.kubectl("rollout", "status", "deploy/web", "-n", namespace, "--timeout=120s", timeout=130)
        wait_for(lambda: not {p["metadata"]["name"] for p in cluster.pods(namespace, "app=web")} & old, 60,
                 "the old pods to disappear")
        new = set(cluster.ready_pods(namespace, "app=web"))
        n = len(seen)
        wait_for(lambda: len(seen) >= n + 15, 20, "15 more requests")
    finally:
        stop.set()
        t.join(15)
    assert failures == [], f"{len(failures)} of {len(seen) + len(failures)} requests failed: {failures[:5]}"
    assert set(seen[-15:]) == new, (Counter(seen[-15:]), new)  # all three new pods, in turn
    assert len(new) == 3 and new.isdisjoint(old)
    assert manager.get(sid).status == "active"


@pytest.mark.parametrize("probe", [True, False], ids=["readiness-probe", "no-probe"])
def test_scale_down_during_a_stream_fails_none(cluster: Cluster, namespace: str, manager: ForwardManager,
                                               probe: bool) -> None:
    pods = set(_web(cluster, namespace, probe=probe))
    sid, port = _forward(manager, cluster, namespace)
    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    t = _stream(port, seen, failures, stop)
    try:
        wait_for(lambda: set(seen) == pods, 10, "the client to reach every pod")
        cluster.kubectl("scale", "deploy/web", "--replicas=1", "-n", namespace)
        left = wait_for(lambda: (lambda p: p if len(p) == 1 else None)(
            {p["metadata"]["name"] for p in cluster.pods(namespace, "app=web")}), 60, "one pod left")
        n = len(seen)
        wait_for(lambda: len(seen) >= n + 10, 20, "10 more requests")
    finally:
        stop.set()
        t.join(15)
    assert failures == [], f"{len(failures)} of {len(seen) + len(failures)} requests failed: {failures[:5]}"
    assert set(seen[-10:]) == left
    info = manager.get(sid)
    assert info.status == "active" and info.pods == tuple(left)


def test_balance_on_a_workload_is_refused(cluster: Cluster, namespace: str, manager: ForwardManager) -> None:
    from tray.errors import UsageError

    with pytest.raises(UsageError) as err:
        manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0,
                                  balance="round-robin"))
    assert err.value.field == "balance" and "needs a Service" in str(err.value)


def _tender_forward(cluster: Cluster, namespace: str, *args: str) -> subprocess.Popen[str]:
    """``tender forward --no-engine`` in its own process, on the test kubeconfig."""
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.Popen([sys.executable, "-m", "tray", "forward", "--no-engine", "--context", cluster.context,
                             "-n", namespace, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    try:
        return proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(10)


def test_tender_forward_says_how_it_spreads(cluster: Cluster, namespace: str) -> None:
    """The default line names the mode and the pods' count; --balance pin names the one pod, as kubectl's
    users know it; a spreading mode on a Deployment is one line and exit 2."""
    pods = _web(cluster, namespace)
    line = _first_line(_tender_forward(cluster, namespace, "svc/web", ":80"))
    assert re.fullmatch(rf"{re.escape(cluster.context)}: Forwarding from 127\.0\.0\.1:\d+ -> 8080 "
                        rf"\(svc/web in {namespace}, round-robin over 3 pods\)", line), line
    line = _first_line(_tender_forward(cluster, namespace, "--balance", "pin", "svc/web", ":80"))
    m = re.fullmatch(rf".*: Forwarding from 127\.0\.0\.1:\d+ -> 8080 \(svc/web in {namespace}, pod (\S+)\)", line)
    assert m and m.group(1) in pods, line
    proc = _tender_forward(cluster, namespace, "--balance", "round-robin", "deploy/web", ":8080")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and err.strip() == (
        "tender: error: --balance: balance 'round-robin' needs a Service target (svc/NAME); "
        "a Deployment is forwarded to one pod"), err
