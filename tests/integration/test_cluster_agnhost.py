"""The test cluster's agnhost stand-ins behave as agnhost does, seen from
outside (kubectl, port-forward, the pod's status): readiness probes run,
netexec's --delay-shutdown, /readyz, /shell, UDP server and /delay, the
seeded /bytes stream, test-webserver's files, pause --delay-shutdown, and
the kubelet's streamingConnectionIdleTimeout.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.clusterlib import (
    KUBECTL,
    Cluster,
    PortForward,
    cluster_down,
    cluster_up_with,
    eventually,
    expected_sha256,
)

pytestmark = pytest.mark.cluster

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


def pod(name: str, args: list[str], *, ports: str = "[{containerPort: 8080}]", grace: int = 30,
        extra: str = "") -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
    - name: app
      image: {AGNHOST}
      args: {json.dumps(args)}
      ports: {ports}
{extra}"""


def is_ready(cluster: Cluster, namespace: str, name: str) -> bool:
    conds = cluster.get("pod", name, namespace)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def running(cluster: Cluster, namespace: str, name: str) -> bool:
    return cluster.get("pod", name, namespace)["status"].get("phase") == "Running"


def shell(pf: PortForward, cmd: str) -> dict:
    return json.loads(pf.get("/shell?cmd=" + urllib.parse.quote(cmd)))


def request(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_exec_readiness_probe_follows_a_file_made_through_shell(cluster: Cluster, namespace: str) -> None:
    """An exec probe (`cat /tmp/ready`) runs in the container: the pod is Running but not
    Ready until netexec's /shell creates the file, and unready again once it is removed."""
    cluster.apply(pod("probed", ["netexec", "--http-port=8080"], extra="""      readinessProbe:
        exec: {command: [cat, /tmp/ready]}
        periodSeconds: 1
        failureThreshold: 1
"""), namespace)
    eventually(lambda: running(cluster, namespace, "probed"), timeout=30, what="the pod to run")
    with PortForward(cluster, "pod/probed", 8080, namespace) as pf:
        time.sleep(2)  # two probe periods: the probe has failed, the pod stays unready
        assert not is_ready(cluster, namespace, "probed")
        out = shell(pf, "touch /tmp/ready && ls /tmp")
        assert out == {"output": "ready\n"}, out
        eventually(lambda: is_ready(cluster, namespace, "probed"), timeout=10, what="Ready after touch")
        assert shell(pf, "rm /tmp/ready; cat /tmp/ready") == {
            "output": "cat: can't open '/tmp/ready': No such file or directory\n", "error": "exit status 1"}
        eventually(lambda: not is_ready(cluster, namespace, "probed"), timeout=10, what="unready after rm")


def test_http_readiness_probe_failing_keeps_the_pod_unready(cluster: Cluster, namespace: str) -> None:
    """An httpGet probe on a path that answers 503 never lets the pod become Ready; a tcpSocket
    probe on a port nothing listens on neither."""
    cluster.apply(pod("failing", ["netexec", "--http-port=8080"], extra="""      readinessProbe:
        httpGet: {path: "/echo?code=503", port: 8080}
        periodSeconds: 1
"""), namespace)
    cluster.apply(pod("refused", ["netexec", "--http-port=8080"], extra="""      readinessProbe:
        tcpSocket: {port: 9999}
        periodSeconds: 1
"""), namespace)
    for name in ("failing", "refused"):
        eventually(lambda: running(cluster, namespace, name), timeout=30, what=f"{name} to run")
    time.sleep(3)
    assert not is_ready(cluster, namespace, "failing")
    assert not is_ready(cluster, namespace, "refused")


def test_delay_shutdown_serves_unready_then_exits(cluster: Cluster, namespace: str) -> None:
    """netexec --delay-shutdown=3 on deletion: /readyz answers 503 "shutting down", the readiness
    probe takes the pod out of Ready, the open port-forward keeps serving, and the pod is gone
    after about 3 s although its grace period is 30 s."""
    cluster.apply(pod("draining", ["netexec", "--http-port=8080", "--delay-shutdown=3"], extra="""      readinessProbe:
        httpGet: {path: /readyz, port: 8080}
        periodSeconds: 1
        failureThreshold: 1
"""), namespace)
    cluster.wait_ready(namespace, "app=draining", timeout=30)
    with PortForward(cluster, "pod/draining", 8080, namespace) as pf:
        assert pf.get("/readyz") == "ok"
        deleted = time.time()
        cluster.kubectl("delete", "pod", "draining", "-n", namespace, "--wait=false")
        status, body = eventually(lambda: (s := request(pf.local_port, "/readyz"))[0] == 503 and s,
                                  timeout=5, what="/readyz to answer 503")
        assert body == b"shutting down"
        assert pf.get("/hostname") == "draining"
        eventually(lambda: not is_ready(cluster, namespace, "draining"), timeout=5, what="the pod to go unready")

        def gone() -> bool:
            return cluster.kubectl("get", "pod", "draining", "-n", namespace, check=False).returncode != 0

        eventually(gone, timeout=20, what="the pod to be removed")
        elapsed = time.time() - deleted
        assert 2.5 <= elapsed < 20, f"gone {elapsed:.1f}s after deletion"


def test_netexec_udp_server_echoes(cluster: Cluster, namespace: str) -> None:
    """netexec's UDP server on --udp-port (default 8081) answers hostname and echo; kubectl
    refuses to port-forward the UDP port, so tests reach it at cluster.udp_address."""
    cluster.apply(pod("udp", ["netexec", "--http-port=8080"],
                      ports="[{containerPort: 8080}, {name: udp, containerPort: 8081, protocol: UDP}]"), namespace)
    cluster.wait_ready(namespace, "app=udp", timeout=30)
    addr = cluster.udp_address(namespace, "udp", 8081)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        for msg, want in ((b"hostname", b"udp"), (b"echo Hello", b"hello")):
            s.sendto(msg, addr)
            assert s.recvfrom(2048)[0] == want
    logs = cluster.kubectl("logs", "udp", "-n", namespace).stdout
    assert "Started UDP server on port  8081" in logs and "Echoing hello to UDP client" in logs, logs
    refused = cluster.kubectl("port-forward", "pod/udp", ":8081", "-n", namespace, check=False, timeout=20)
    assert refused.returncode != 0 and "UDP protocol is not supported for 8081" in refused.stderr, refused.stderr


def test_bytes_through_port_forward_match_the_seeded_stream(cluster: Cluster, namespace: str) -> None:
    """GET /bytes?n=N&seed=S is a pseudo-random stream whose checksum clusterlib knows."""
    cluster.apply(pod("bulk", ["netexec", "--http-port=8080"]), namespace)
    cluster.wait_ready(namespace, "app=bulk", timeout=30)
    n = 5 * 1024 * 1024 + 17
    with PortForward(cluster, "pod/bulk", 8080, namespace) as pf:
        for seed in (0, 7):
            status, body = request(pf.local_port, f"/bytes?n={n}&seed={seed}", timeout=30)
            assert status == 200 and len(body) == n
            assert hashlib.sha256(body).hexdigest() == expected_sha256(n, seed)
        assert request(pf.local_port, "/bytes?n=3")[1] != b"xxx"


def test_delay_answers_late(cluster: Cluster, namespace: str) -> None:
    """/delay?ms=N answers after N ms."""
    cluster.apply(pod("slow", ["netexec", "--http-port=8080"]), namespace)
    cluster.wait_ready(namespace, "app=slow", timeout=30)
    with PortForward(cluster, "pod/slow", 8080, namespace) as pf:
        t0 = time.monotonic()
        assert pf.get("/delay?ms=1500") == "delayed 1500 ms"
        assert time.monotonic() - t0 >= 1.5


def test_test_webserver_serves_the_container_files(cluster: Cluster, namespace: str) -> None:
    """test-webserver serves the container's files: /etc/hostname as the kubelet writes it, and
    a file a test puts into the container's root."""
    cluster.apply(pod("files", ["test-webserver", "--port=8000"], ports="[{containerPort: 8000}]"), namespace)
    cluster.wait_ready(namespace, "app=files", timeout=30)
    root = cluster.container_root(namespace, "files", "app")
    (root / "data").mkdir()
    (root / "data" / "blob.bin").write_bytes(bytes(range(256)) * 1000)
    with PortForward(cluster, "pod/files", 8000, namespace) as pf:
        assert pf.get("/etc/hostname") == "files\n"
        status, body = request(pf.local_port, "/data/blob.bin")
        assert status == 200 and body == bytes(range(256)) * 1000
        assert request(pf.local_port, "/missing")[0] == 404


def test_pause_delay_shutdown_logs_and_exits_2(cluster: Cluster, namespace: str) -> None:
    """pause --delay-shutdown=2: "Paused"; on deletion it sleeps 2 s, logs
    "exiting 2" on the same line and exits 2; the pod goes well before its grace period."""
    cluster.apply(pod("paused", ["pause", "--delay-shutdown=2"], ports="[]"), namespace)
    cluster.wait_ready(namespace, "app=paused", timeout=30)
    follow = subprocess.Popen([KUBECTL, "--context", cluster.context, "-n", namespace, "logs", "-f", "paused"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env())
    try:
        eventually(lambda: "Paused" in cluster.kubectl("logs", "paused", "-n", namespace).stdout, timeout=10,
                   what="the Paused line")
        deleted = time.time()
        cluster.kubectl("delete", "pod", "paused", "-n", namespace, "--wait=false")
        out, _ = follow.communicate(timeout=20)
    finally:
        follow.kill()
    assert out == "Paused\nSleeping 2 seconds before exit ...exiting 2\n", out
    assert time.time() - deleted >= 2
    eventually(lambda: cluster.kubectl("get", "pod", "paused", "-n", namespace, check=False).returncode != 0,
               timeout=15, what="the pod to be removed")
    assert time.time() - deleted < 20


def test_streaming_connection_idle_timeout_closes_idle_port_forwards() -> None:
    """`testcluster up --streaming-connection-idle-timeout=2s`: a port-forward that carries
    requests stays up past 2 s; left idle, the kubelet closes it and kubectl ends."""
    directory = Path(tempfile.mkdtemp(prefix="tender-idle-"))
    try:
        (cluster,) = cluster_up_with(directory, 1, "--streaming-connection-idle-timeout=2s")
        namespace = cluster.new_namespace()
        cluster.apply(pod("idle", ["netexec", "--http-port=8080"]), namespace)
        cluster.wait_ready(namespace, "app=idle", timeout=30)
        with PortForward(cluster, "pod/idle", 8080, namespace, websockets=False) as pf:
            for _ in range(8):  # 4 s of traffic, a request every 0.5 s
                assert pf.get("/hostname") == "idle"
                time.sleep(0.5)
            assert pf.proc.poll() is None, "a busy port-forward was closed"
            rc = pf.wait_exit(15)
            assert rc is not None, "an idle port-forward outlived the 2 s idle timeout"
            assert "lost connection to pod" in pf.stderr or rc != 0, pf.stderr
    finally:
        cluster_down(directory)
