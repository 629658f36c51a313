"""Relay forwards on the real test cluster (issue 15): UDP, host/ and ip/ targets, Services without pods.

The kubelet runs the relay pod's program for real (the python image's
command as a process on the cluster's emulated pod network,
tests/cluster/kubelet_process.go), so these tests carry the same bytes a
real cluster would.  Every test checks that no relay pod outlives its
forwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusterlib import Cluster, eventually
from tests.integration.engine import wait_status
from tests.integration.kubeconfigs import user_with_rules
from tests.integration.relays import node_only_server, relay_pods
from tray.domain.spec import ForwardSpec, parse_target_and_ports
from tray.engine.manager import ForwardManager

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "python:3.13-alpine"

# A UDP echo on 5353, a TCP echo on 9000 and a DNS server on 53 (every A
# question answered 10.9.8.7), in one python pod.
SERVERS = r"""
import asyncio, struct
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(d, a)
class Dns(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, q, a):
        ident, flags, qd = struct.unpack(">HHH", q[:6])
        end = 12
        while q[end]:
            end += q[end] + 1
        question = q[12:end + 5]
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 9, 8, 7])
        self.t.sendto(struct.pack(">HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + answer, a)
async def echo(r, w):
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 5353))
    await loop.create_datagram_endpoint(Dns, local_addr=("0.0.0.0", 53))
    await asyncio.start_server(echo, "0.0.0.0", 9000)
    print("servers ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _servers(cluster: Cluster, namespace: str) -> str:
    """The servers' pod (declaring 5353/UDP, 53/UDP, 9000/TCP) behind Service ``echo``; its pod IP."""
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "servers", "labels": {"app": "echo"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "py", "image": IMAGE, "command": ["python3", "-c", SERVERS],
            "ports": [{"name": "echo", "containerPort": 5353, "protocol": "UDP"},
                      {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                      {"name": "tcp-echo", "containerPort": 9000, "protocol": "TCP"}]}]},
    }), namespace)
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"}, "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "tcp-echo", "port": 9000, "protocol": "TCP", "targetPort": 9000}]},
    }), namespace)
    cluster.wait_ready(namespace, "app=echo")
    eventually(lambda: "servers ready" in cluster.kubectl("logs", "-n", namespace, "servers").stdout,
               timeout=20, what="the servers")
    return cluster.get("pod", "servers", namespace)["status"]["podIP"]


@pytest.fixture
def relays_gone(cluster: Cluster, namespace: str, manager: ForwardManager) -> Iterator[None]:
    """After the test: the engine shut down, no relay pod is left in the namespace (within 5 s)."""
    yield
    manager.shutdown()
    eventually(lambda: not relay_pods(cluster, namespace), timeout=5, what="every relay pod to be deleted")


def _start(manager: ForwardManager, cluster: Cluster, namespace: str, target: str, port: str) -> str:
    t, specs = parse_target_and_ports(target, [port])
    spec = specs[0]
    local = spec.local if spec.local is not None else (None if spec.local_same_as_remote else 0)
    return manager.start(ForwardSpec(cluster.context, namespace, t, spec.remote, local_port=local,
                                     protocol=spec.protocol))


def _udp_ask(sock: socket.socket, payload: bytes, key: int = 0) -> bytes:
    """Send ``payload``, return the answer whose first ``key`` bytes are the payload's (0: the next answer).

    UDP may lose a datagram: sent again up to twice.  A late answer to an
    earlier datagram (its own key) is skipped, never taken for this one's.
    """
    for _ in range(3):
        sock.send(payload)
        try:
            while True:
                got = sock.recv(65535)
                if got[:key] == payload[:key]:
                    return got
        except socket.timeout:
            continue
    raise AssertionError(f"no answer to a datagram of {len(payload)} bytes")


def test_udp_echo_from_two_clients_byte_exact(cluster: Cluster, namespace: str, manager: ForwardManager,
                                              relays_gone: None) -> None:
    _servers(cluster, namespace)
    sid = _start(manager, cluster, namespace, "pod/servers", "0:5353/udp")
    info = wait_status(manager, sid, "active", timeout=60)
    assert info.protocol == "UDP" and info.relay_pod.startswith("tender-relay-")
    assert info.pod_name == info.relay_pod and info.relay_upstream == "its pods"
    relay = relay_pods(cluster, namespace)
    assert [p["metadata"]["name"] for p in relay] == [info.relay_pod]
    labels = relay[0]["metadata"]["labels"]
    assert labels["kube-tender/forward"] == "pod.servers-5353.udp" and labels["kube-tender/user"]
    assert relay[0]["spec"]["activeDeadlineSeconds"] == 86400

    errors: list[str] = []

    def client(tag: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(3)
        sock.connect(("127.0.0.1", info.local_port))
        rng = __import__("random").Random(tag)
        try:
            for i in range(500):
                payload = bytes([tag]) + struct.pack(">H", i) + rng.randbytes(rng.randint(0, 1397))
                got = _udp_ask(sock, payload, key=3)
                if got != payload:
                    errors.append(f"client {tag} datagram {i}: {len(got)} bytes back, not its own {len(payload)}")
                    return
        except AssertionError as exc:
            errors.append(f"client {tag}: {exc}")
        finally:
            sock.close()

    threads = [threading.Thread(target=client, args=(tag,)) for tag in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    info = manager.get(sid)
    assert info.connections_total == 2  # a flow per local client address
    assert info.bytes_out > 500_000 and info.bytes_in > 500_000  # 1,000 datagrams of 1-1,400 bytes, framed
    manager.stop(sid)
    stopped = time.monotonic()
    eventually(lambda: not relay_pods(cluster, namespace), timeout=5, what="the relay pod to go on stop")
    assert time.monotonic() - stopped < 5


def test_dns_through_a_service_udp_port(cluster: Cluster, namespace: str, manager: ForwardManager,
                                        relays_gone: None) -> None:
    _servers(cluster, namespace)
    sid = _start(manager, cluster, namespace, "svc/echo", "0:53/udp")
    info = wait_status(manager, sid, "active", timeout=60)
    query = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0) + b"\x02db\x04demo\x03svc\x00" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.connect(("127.0.0.1", info.local_port))
        answer = _udp_ask(sock, query)
    ident, flags, qd, an = struct.unpack(">HHHH", answer[:8])
    assert (ident, flags & 0x8000, qd, an) == (0x4242, 0x8000, 1, 1)
    assert answer[-4:] == bytes([10, 9, 8, 7])


def _ask_tcp(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_host_and_ip_targets_reach_what_only_the_node_reaches(cluster: Cluster, namespace: str,
                                                             manager: ForwardManager, relays_gone: None) -> None:
    srv, port = node_only_server()
    with srv:
        host = _start(manager, cluster, namespace, f"host/localhost:{port}", f"0:{port}")
        ip = _start(manager, cluster, namespace, f"ip/127.0.0.1:{port}", f"0:{port}")
        for sid, upstream in ((host, f"localhost:{port}"), (ip, f"127.0.0.1:{port}")):
            info = wait_status(manager, sid, "active", timeout=60)
            assert info.relay_upstream == upstream and info.target.startswith(("host/", "ip/"))
            assert _ask_tcp(info.local_port, b"hello") == b"node-only server got: hello"
        assert len(relay_pods(cluster, namespace)) == 2  # one relay per forward
    # A host nobody listens on: the connection closes, the forward says why and stays active.
    free = socket.create_server(("127.0.0.1", 0))
    dead = free.getsockname()[1]
    free.close()
    sid = _start(manager, cluster, namespace, f"host/localhost:{dead}", f"0:{dead}")
    info = wait_status(manager, sid, "active", timeout=60)
    assert _ask_tcp(info.local_port, b"anyone?") == b""
    info = eventually(lambda: (i := manager.get(sid)).last_connection_error and i, timeout=5,
                      what="the failure to show")
    assert f"cannot connect to localhost:{dead}" in info.last_connection_error
    assert info.status == "active"


def test_services_without_pods(cluster: Cluster, namespace: str, manager: ForwardManager,
                               relays_gone: None) -> None:
    pod_ip = _servers(cluster, namespace)
    srv, port = node_only_server()
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "external"},
        "spec": {"type": "ExternalName", "externalName": "localhost"},  # no ports: the one typed is used
    }), namespace)
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "legacy"},
        "spec": {"ports": [{"name": "app", "port": 7000, "targetPort": 9000}]},
    }), namespace)
    cluster.apply(json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "legacy-1", "labels": {"kubernetes.io/service-name": "legacy"}},
        "addressType": "IPv4", "ports": [{"name": "app", "port": 9000, "protocol": "TCP"}],
        "endpoints": [{"addresses": [pod_ip], "conditions": {"ready": True}}],
    }), namespace)
    with srv:
        ext = _start(manager, cluster, namespace, "svc/external", f"0:{port}")
        legacy = _start(manager, cluster, namespace, "svc/legacy", "0:app")
        info = wait_status(manager, ext, "active", timeout=60)
        assert info.relay_upstream == f"localhost:{port}"
        assert _ask_tcp(info.local_port, b"via ExternalName") == b"node-only server got: via ExternalName"
        info = wait_status(manager, legacy, "active", timeout=60)
        assert info.relay_upstream == "the endpoints of service legacy"
        assert _ask_tcp(info.local_port, b"via a hand-written EndpointSlice") == b"via a hand-written EndpointSlice"


def _tender(cluster: Cluster, *args: str, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PYTHONDONTWRITEBYTECODE": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "tray", "forward", "--no-engine", "--context", cluster.context,
                             *args], cwd=ROOT, env=full, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_relay_whose_tender_died_goes_and_the_next_start_deletes_orphans(cluster: Cluster,
                                                                          namespace: str) -> None:
    srv, port = node_only_server()
    with srv:
        first = _tender(cluster, "-n", namespace, f"host/localhost:{port}", f"0:{port}", TENDER_RELAY_EXIT_IDLE="3")
        assert first.stdout is not None
        line = first.stdout.readline()
        assert "through relay pod tender-relay-" in line, (line, first.stderr.read() if first.poll() else "")
        orphan = line.rsplit(" ", 1)[1].rstrip(")\n")
        first.send_signal(signal.SIGKILL)  # no cleanup at all
        first.wait(10)
        # The tunnel is cut, so the relay's connections end; after its 3 s alone it exits.
        ended = eventually(lambda: (p := cluster.get("pod", orphan, namespace))["status"]["phase"]
                           in ("Succeeded", "Failed") and p, timeout=20, what="the orphaned relay to end")
        assert ended["status"]["phase"] == "Succeeded"
        assert "no connection for 3 s: exiting" in cluster.kubectl("logs", "-n", namespace, orphan).stdout
        # A second one that is still running when Tender is killed...
        second = _tender(cluster, "-n", namespace, f"host/localhost:{port}", f"0:{port}")
        assert second.stdout is not None
        running = second.stdout.readline().rsplit(" ", 1)[1].rstrip(")\n")
        second.send_signal(signal.SIGKILL)
        second.wait(10)
        # A Tender that is alive (say `tender forward --no-engine` beside the tray) keeps its relay...
        live = _tender(cluster, "-n", namespace, f"host/localhost:{port}", f"0:{port}")
        assert live.stdout is not None
        theirs = live.stdout.readline().rsplit(" ", 1)[1].rstrip(")\n")
        # ...and the next start deletes both orphans at once, before making its own.
        third = _tender(cluster, "-n", namespace, f"host/localhost:{port}", f"0:{port}")
        assert third.stdout is not None
        mine = third.stdout.readline().rsplit(" ", 1)[1].rstrip(")\n")
        names = {p["metadata"]["name"] for p in relay_pods(cluster, namespace)
                 if not p["metadata"].get("deletionTimestamp")}
        assert names == {mine, theirs} and orphan not in names and running not in names
        for proc in (third, live):
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
    eventually(lambda: not relay_pods(cluster, namespace), timeout=5, what="the last relay to be deleted")


def test_without_create_pods_one_clear_error_and_no_pod(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    kubeconfig = user_with_rules(cluster, namespace, "forwarder", [
        {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create", "get"]},
    ], tmp_path / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": kubeconfig, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "tray", "forward", "--no-engine", "--exit-on-error", "-n", namespace,
                           "host/db.internal:5432"], cwd=ROOT, env=env, text=True, capture_output=True, timeout=60)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, lines
    assert f"a relay forward needs to create, delete pods in namespace {namespace}" in lines[0]
    assert "nothing was created" in lines[0]
    assert not relay_pods(cluster, namespace)


@pytest.mark.parametrize("args, message", [
    (["host/db_internal:5432"], 'invalid host name "db_internal"'),
    (["host/db.internal:70000"], 'invalid port "70000"'),
    (["ip/10.0.0.300:53"], 'invalid IP address "10.0.0.300"'),
    (["host/db.internal", "5432:http"], "has no named ports"),
    (["svc/echo", "8053:53/sctp"], 'unknown protocol "sctp"'),
    (["host/db.internal:5432", "6432:5433"], "names remote port 5433, but the target"),
    (["host/db.internal"], "no port to forward"),
    (["ip/10.0.0.1"], "no port to forward"),
])
def test_bad_input_is_one_line_and_exit_2(cluster: Cluster, namespace: str, args: list[str], message: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "tray", "forward", "--no-engine", "-n", namespace, *args], cwd=ROOT,
                          env={**os.environ, "KUBECONFIG": cluster.kubeconfig}, text=True, capture_output=True,
                          timeout=30)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
    assert not relay_pods(cluster, namespace)


def test_a_udp_port_on_a_target_that_declares_it_for_tcp_only(cluster: Cluster, namespace: str) -> None:
    _servers(cluster, namespace)
    proc = subprocess.run([sys.executable, "-m", "tray", "forward", "--no-engine", "-n", namespace, "pod/servers",
                           "0:9000/udp"], cwd=ROOT, env={**os.environ, "KUBECONFIG": cluster.kubeconfig}, text=True,
                          capture_output=True, timeout=60)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "port 9000 of pod/servers is declared as TCP only; not UDP" in lines[0]
    assert not relay_pods(cluster, namespace)



def test_a_relay_pod_that_ends_is_replaced(cluster: Cluster, namespace: str, manager: ForwardManager,
                                           relays_gone: None) -> None:
    """Someone deletes the relay pod (or its deadline ends it): the forward says so, makes a new relay and
    answers again on the same local port."""
    srv, port = node_only_server()
    with srv:
        sid = _start(manager, cluster, namespace, f"host/localhost:{port}", f"0:{port}")
        first = wait_status(manager, sid, "active", timeout=60)
        cluster.kubectl("delete", "pod", first.relay_pod, "-n", namespace, "--wait=false")
        again = eventually(lambda: (i := manager.get(sid)).status == "active" and i.relay_pod
                           and i.relay_pod != first.relay_pod and i, timeout=30, what="a new relay pod")
        assert again.local_port == first.local_port
        assert _ask_tcp(again.local_port, b"again") == b"node-only server got: again"
        lines = [line.message for line in manager.logs(sid)]
        assert any("a new relay pod in" in m for m in lines), lines


def test_a_udp_client_that_keeps_its_socket_follows_a_replaced_pod(cluster: Cluster, namespace: str,
                                                                   manager: ForwardManager, relays_gone: None) -> None:
    """statsd, syslog, a resolver: one client address sending on and on.  When the pod behind the forward is
    replaced, its flow ends and the next datagram goes to the new pod, from the same client socket."""
    cluster.apply(json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echod"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "echod"}}, "template": {
            "metadata": {"labels": {"app": "echod"}},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "py", "image": IMAGE, "command": ["python3", "-c", SERVERS],
                "ports": [{"name": "echo", "containerPort": 5353, "protocol": "UDP"}]}]}}},
    }), namespace)
    (first_pod,) = cluster.wait_ready(namespace, "app=echod")
    sid = _start(manager, cluster, namespace, "deploy/echod", "0:5353/udp")
    info = wait_status(manager, sid, "active", timeout=60)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect(("127.0.0.1", info.local_port))
        assert _udp_ask(sock, b"\x00\x00\x01before", key=3) == b"\x00\x00\x01before"
        assert manager.get(sid).relay_upstream == f"pod/{first_pod}:5353"
        cluster.kubectl("delete", "pod", first_pod, "-n", namespace, "--wait=false")
        eventually(lambda: [p for p in cluster.ready_pods(namespace, "app=echod") if p != first_pod], timeout=30,
                   what="the new pod")

        def answered() -> bool:
            try:
                return _udp_ask(sock, b"\x00\x00\x02after", key=3) == b"\x00\x00\x02after"
            except AssertionError:
                return False

        eventually(answered, timeout=20, interval=0.5, what="an answer from the new pod on the same client socket")
    assert manager.get(sid).relay_upstream != f"pod/{first_pod}:5353"
