"""What happens to a forward when its pod goes away, restarts, drops or resets."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import threading
import time

import pytest

from tests.clusterlib import KUBECTL, Cluster, deployment_manifest
from tests.integration.engine import (
    READINESS_PROBE,
    EventLog,
    assert_stays,
    collapse,
    hostname,
    pod_manifest,
    port_refuses,
    wait_for,
    wait_hostname,
    wait_status,
)
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster


def test_deployment_pod_deleted_moves_to_new_pod(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                 events: EventLog) -> None:
    """1-replica Deployment: its pod deleted → reconnecting (no ready pod for a while) → active on
    the replacement; the same local port answers with the new pod's name.  A connection that was
    open on the old pod keeps working through its grace period, then ends with that pod, without
    disturbing the session."""
    # A 4 s grace period: long enough for the checks on the old connection below.
    cluster.apply(deployment_manifest("web", replicas=1, grace=4), namespace)
    old = cluster.wait_ready(namespace, "app=web")[0]
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    info = wait_status(manager, sid, "active")
    port = info.local_port
    assert hostname(port) == old
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        assert _raw_http(sock, "/hostname") == old.encode()
        mark = events.mark()
        cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
        new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 30,
                       "a replacement pod")[0]
        wait_for(lambda: manager.get(sid).status == "active" and manager.get(sid).pod_name == new, 20,
                 f"the session to use {new}")
        assert wait_hostname(port, new, timeout=5) == new
        # The open connection still talks to the old pod (in its grace period)...
        assert old in cluster.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout
        assert _raw_http(sock, "/hostname") == old.encode()
        # ...and ends when the old pod goes away.
        wait_for(lambda: not [p for p in cluster.pods(namespace, "app=web") if p["metadata"]["name"] == old], 20,
                 "the old pod to disappear")
        sock.settimeout(10)
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass
    assert hostname(port) == new
    info = manager.get(sid)
    assert (info.local_port, info.status, info.pod_name, info.attempts) == (port, "active", new, 0)
    seen = collapse(e.status for e in events.since(mark, sid))
    # Either a reconnecting phase (the usual case with one replica) or a direct
    # switch; never an error, and it ends active on the new pod.  The old
    # connection's end is not a reason to reconnect.
    assert seen in (["reconnecting", "active"], ["active"]), seen
    assert events.since(mark, sid)[-1].pod_name == new


def test_bare_pod_deleted_is_an_error(cluster: Cluster, namespace: str, manager: ForwardManager,
                                      events: EventLog) -> None:
    """pod/NAME deleted → error naming the pod; no reconnect to anything else."""
    cluster.apply(pod_manifest("lonely"), namespace)
    # A look-alike pod that a label-based forward could wrongly pick.
    cluster.apply(pod_manifest("twin", labels={"app": "lonely"}), namespace)
    cluster.wait_ready(namespace, "app=lonely", 2)
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "lonely"), 8080, local_port=0))
    info = wait_status(manager, sid, "active")
    assert hostname(info.local_port) == "lonely"
    cluster.kubectl("delete", "pod", "lonely", "-n", namespace, "--wait=false")
    info = wait_status(manager, sid, "error", timeout=15)
    assert "lonely" in info.status_reason
    assert info.attempts == 0
    assert port_refuses(info.local_port)
    assert_stays(manager, sid, "error", 1.5)
    assert "reconnecting" not in events.statuses(sid)
    assert manager.get(sid).pod_name == "lonely"


@pytest.mark.parametrize("probe", [True, False], ids=["readiness-probe", "no-probe"])
def test_rolling_restart_fails_no_connection(cluster: Cluster, namespace: str, manager: ForwardManager,
                                             probe: bool) -> None:
    """kubectl rollout restart of a 2-replica Deployment under a client opening a new connection
    every 20 ms: zero failed requests, and the answering pods change to the new ones."""
    cluster.apply(deployment_manifest("web", replicas=2, extra_pod_spec=READINESS_PROBE if probe else ""),
                  namespace)
    old = set(cluster.wait_ready(namespace, "app=web", 2))
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port

    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                seen.append(hostname(port, timeout=10))
            except Exception as exc:  # every failure counts
                failures.append(f"{time.strftime('%X')} {type(exc).__name__}: {exc}")
            stop.wait(0.02)

    t = threading.Thread(target=client, daemon=True)
    t.start()
    try:
        wait_for(lambda: len(seen) >= 5, 10, "the client to get going")
        cluster.kubectl("rollout", "restart", "deploy/web", "-n", namespace)
        subprocess.run([KUBECTL, "--context", cluster.context, "rollout", "status", "deploy/web", "-n", namespace,
                        "--timeout=90s"], env=cluster.env(), check=True, capture_output=True, timeout=100)
        new = set(cluster.wait_ready(namespace, "app=web", 2)) - old
        # Keep going through the old pods' grace period until they are gone
        # from the API (the part of a rollout where forwards used to break),
        # then a little more.
        wait_for(lambda: not {p["metadata"]["name"] for p in cluster.pods(namespace, "app=web")} & old, 30,
                 "the old pods to disappear")
        n = len(seen)
        wait_for(lambda: len(seen) >= n + 10, 10, "10 more requests")
    finally:
        stop.set()
        t.join(15)
    assert failures == [], f"{len(failures)} of {len(seen) + len(failures)} requests failed: {failures[:5]}"
    assert set(seen) & old and set(seen) & new, (sorted(set(seen)), sorted(old), sorted(new))
    assert set(seen) <= old | new
    assert set(seen[-10:]) <= new
    assert manager.get(sid).status == "active"


def _raw_http(sock: socket.socket, path: str) -> bytes:
    """One keep-alive GET on an open socket; the body."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before the response"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "connection closed in the body"
        body += chunk
    return body


def test_network_drop_recovers(cluster: Cluster, namespace: str, manager: ForwardManager,
                               events: EventLog) -> None:
    """drop-connections on the current pod while a connection is open: that connection dies; the
    session ends active on the same pod, never in error, and new connections through the same
    local port work.

    Asserted about the statuses after the drop: exactly ``reconnecting → active`` or nothing at
    all.  Which one depends on a race in the test kubelet's hook, which cuts both sides of the
    stream at once: when the API server side goes first, the WebSocket dies without a close frame
    (1006) and the engine reconnects (probe, then active); when the pod side goes first, the
    kubelet reports it as an error of the pod's connection ("use of closed network connection")
    and closes the stream normally (1000), exactly as for a pod resetting a connection
    (kubernetes#111825, see test_tcp_reset_keeps_forward), so the session rightly stays active.
    The test drops at least 5 times, and until it has seen the reconnecting path at least once."""
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    pod = cluster.wait_ready(namespace, "app=web")[0]
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    paths = []
    for _ in range(10):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            assert _raw_http(sock, "/hostname") == pod.encode()
            wait_for(lambda: manager.get(sid).connections == 1, 5, "the open connection to be counted")
            mark = events.mark()
            cluster.drop_connections(pod, namespace)
            try:
                dead = sock.recv(1) == b""
            except ConnectionResetError:
                dead = True
            except TimeoutError:
                dead = False
            assert dead, "the open connection survived the network drop"
        # The engine is done with the dead connection (and has reacted to it).
        wait_for(lambda: manager.get(sid).connections == 0, 10, "the connection to be closed")
        info = wait_status(manager, sid, "active", timeout=15)
        seen = collapse(e.status for e in events.since(mark, sid))
        assert seen in ([], ["reconnecting", "active"]), seen
        assert (info.status, info.pod_name, info.local_port) == ("active", pod, port)
        # New connections work at once (none may get a stream the drop cut).
        for _ in range(3):
            assert hostname(port) == pod
        paths.append(tuple(seen))
        if len(paths) >= 5 and ("reconnecting", "active") in paths:
            break
    assert ("reconnecting", "active") in paths, paths


def test_target_deleted_is_an_error(cluster: Cluster, namespace: str, manager: ForwardManager,
                                    events: EventLog) -> None:
    """The Deployment (and with it its pods) deleted → error, no retry loop."""
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    cluster.wait_ready(namespace, "app=web")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    info = wait_status(manager, sid, "active")
    cluster.kubectl("delete", "deploy", "web", "-n", namespace, "--wait=false")
    cluster.kubectl("delete", "pods", "-l", "app=web", "-n", namespace, "--wait=false")
    info = wait_status(manager, sid, "error", timeout=15)
    assert "deploy/web" in info.status_reason and "deleted" in info.status_reason, info.status_reason
    assert info.attempts == 0
    assert port_refuses(info.local_port)
    assert_stays(manager, sid, "error", 1.0)


def test_tcp_reset_keeps_forward(cluster: Cluster, namespace: str, manager: ForwardManager,
                                 events: EventLog, caplog: pytest.LogCaptureFixture) -> None:
    """kubernetes#111825: the pod resets the first connection; the forward stays active and a
    second (and third) connection still reaches the pod, which resets it too (that is the
    program).  "Reaches the pod" is what `tender -v` shows: the pod's reset, reported by the
    kubelet for that connection."""
    caplog.set_level(logging.INFO, logger="tray.engine.session")
    cluster.apply(pod_manifest("reset", args="tcp-reset", port=8080), namespace)
    cluster.wait_ready(namespace, "app=reset")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "reset"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port

    def resets() -> int:
        return sum("connection reset by peer" in r.getMessage() for r in caplog.records
                   if r.name == "tray.engine.session")

    for n in (1, 2, 3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = sock.recv(1024)
            except ConnectionResetError:
                answer = b""
            assert answer == b"", answer  # the reset ends the connection without data
        wait_for(lambda: resets() >= n, 10, f"the pod's reset of connection {n}")
        assert resets() == n
        info = manager.get(sid)
        assert info.status == "active", (info.status, info.status_reason)
    assert set(events.statuses(sid)) <= {"starting", "active"}, events.statuses(sid)


def test_no_ready_pod_gives_up_after_5_attempts(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                events: EventLog, fast_backoff: None) -> None:
    """The Deployment's only pod turns unready: reconnecting (with the reason), 5 retries on the
    backoff schedule (shortened here), then error; the local port is released.  The Deployment
    still exists, so when the pod is ready again the forward is back on its own."""
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    pod = cluster.wait_ready(namespace, "app=web")[0]
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    cluster.annotate("pod", pod, namespace, "testcluster.tender.dev/ready", "false")
    info = wait_status(manager, sid, "reconnecting", timeout=15)
    assert f"pod {pod} is not ready" in info.status_reason, info.status_reason
    info = wait_status(manager, sid, "error", timeout=15)
    assert "after 5 attempts" in info.status_reason, info.status_reason
    assert f"pod {pod} is not ready" in info.status_reason, info.status_reason
    assert info.recoverable  # the Deployment exists: it goes on trying, every 30 s
    assert port_refuses(port)
    first_error = next(e.session for e in events.status_events(sid) if e.status == "error")
    assert first_error.attempts == 5, first_error
    attempts = [e.session.attempts for e in events.status_events(sid) if e.status == "reconnecting"]
    assert max(attempts) == 5 and attempts == sorted(attempts), attempts
    # The pod turns ready again: active by itself (no Retry), and the backoff starts over.
    cluster.annotate("pod", pod, namespace, "testcluster.tender.dev/ready", None)
    cluster.wait_ready(namespace, "app=web")
    info = wait_status(manager, sid, "active", timeout=15, allow_error=True)
    assert info.status_reason.startswith("recovered"), info.status_reason
    assert (info.attempts, info.pod_name, info.local_port) == (0, pod, port)
    assert hostname(port) == pod


def test_reconnecting_recovers_when_pod_turns_ready(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                    events: EventLog) -> None:
    """The only pod turns unready, then ready again: reconnecting, then active at once (the
    watch sees it; no waiting for the next backoff step)."""
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    pod = cluster.wait_ready(namespace, "app=web")[0]
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    mark = events.mark()
    cluster.annotate("pod", pod, namespace, "testcluster.tender.dev/ready", "false")
    wait_status(manager, sid, "reconnecting", timeout=15)
    # Let the retries reach the 4 s step (1 + 2 s), so a recovery that waited
    # for the schedule would take seconds.
    wait_for(lambda: manager.get(sid).attempts >= 3, 10, "3 attempts")
    cluster.annotate("pod", pod, namespace, "testcluster.tender.dev/ready", None)
    t0 = time.monotonic()
    info = wait_status(manager, sid, "active", timeout=15)
    assert time.monotonic() - t0 < 3.0
    assert (info.pod_name, info.local_port, info.attempts) == (pod, port, 0)
    assert hostname(port) == pod
    assert collapse(e.status for e in events.since(mark, sid)) == ["reconnecting", "active"]
