"""The test cluster runs python containers as real processes on an emulated pod
network (tests/cluster/kubelet_process.go, kubelet_podnet.go): pods reach each
other by pod IP over TCP and UDP, kubectl port-forward reaches a bind on
127.0.0.1, logs and exit codes are the program's, and activeDeadlineSeconds
ends a pod Failed/DeadlineExceeded.  These are the bytes Tender's relay pods
(issue 15) run.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.clusterlib import Cluster, PortForward, eventually

pytestmark = pytest.mark.cluster

IMAGE = "python:3.13-alpine"

ECHO_SERVER = """
import asyncio
async def main():
    loop = asyncio.get_running_loop()
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t): self.t = t
        def datagram_received(self, d, a): self.t.sendto(d, a)
    await loop.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 5353))
    async def echo(r, w):
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()
    await asyncio.start_server(echo, "0.0.0.0", 9000)
    print("echo ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""

ECHO_CLIENT = """
import asyncio, sys
ip, svc, host_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
async def main():
    r, w = await asyncio.open_connection(ip, 9000)
    w.write(b"over tcp")
    await w.drain()
    print("tcp:", (await r.readexactly(8)).decode(), flush=True)
    w.close()
    loop = asyncio.get_running_loop()
    answers = asyncio.Queue()
    class C(asyncio.DatagramProtocol):
        def datagram_received(self, d, a): answers.put_nowait(d)
    t, _ = await loop.create_datagram_endpoint(C, remote_addr=(ip, 5353))
    for i in range(100):
        t.sendto(b"datagram %d" % i)
        assert await asyncio.wait_for(answers.get(), 5) == b"datagram %d" % i
    print("udp: 100 answered", flush=True)
    t, _ = await loop.create_datagram_endpoint(C, remote_addr=(svc, 53))
    t.sendto(b"via the service")
    print("service udp:", (await asyncio.wait_for(answers.get(), 5)).decode(), flush=True)
    r, w = await asyncio.open_connection("localhost", host_port)
    print("node-only server:", (await r.read(100)).decode(), flush=True)
    w.close()
    sys.exit(7)
asyncio.run(main())
"""

RELAY_LIKE = """
import asyncio, os
async def hello(r, w):
    w.write(("hello from " + os.environ["HOSTNAME"] + "\\n").encode())
    await w.drain()
    w.close()
async def main():
    await asyncio.start_server(hello, "127.0.0.1", 8400)
    print("listening on 8400", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def python_pod(name: str, program: str, *args: str, restart: str = "Never", extra: str = "",
               labels: dict[str, str] | None = None) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "py", "image": IMAGE, "command": ["python3", "-c", program, *args]}],
            **json.loads(extra or "{}"),
        },
    })


def phase(cluster: Cluster, ns: str, name: str) -> dict:
    return cluster.get("pod", name, ns)["status"]


def logs(cluster: Cluster, ns: str, name: str) -> str:
    return cluster.kubectl("logs", "-n", ns, name).stdout


def node_only_server() -> tuple[socket.socket, int]:
    """A TCP listener on the host's loopback that greets each connection."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                c.sendall(b"hello from the node")

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_pods_reach_each_other_by_pod_ip_over_tcp_and_udp(cluster: Cluster, namespace: str) -> None:
    cluster.apply(python_pod("echo", ECHO_SERVER, restart="Always", labels={"app": "echo"}), namespace)
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"},
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]},
    }), namespace)
    eventually(lambda: "echo ready" in logs(cluster, namespace, "echo"), timeout=20, what="the echo server")
    ip = phase(cluster, namespace, "echo")["podIP"]
    svc = cluster.get("service", "echo", namespace)["spec"]["clusterIP"]
    eventually(lambda: cluster.kubectl("get", "endpointslices", "-n", namespace, "-l",
                                       "kubernetes.io/service-name=echo", "-o", "jsonpath={..addresses}").stdout,
               timeout=20, what="the service's endpoints")
    srv, host_port = node_only_server()
    with srv:
        cluster.apply(python_pod("client", ECHO_CLIENT, ip, svc, str(host_port)), namespace)
        st = eventually(lambda: (s := phase(cluster, namespace, "client"))["phase"] in ("Failed", "Succeeded") and s,
                        timeout=20, what="the client to end")
    assert logs(cluster, namespace, "client") == (
        "tcp: over tcp\nudp: 100 answered\nservice udp: via the service\nnode-only server: hello from the node\n")
    assert st["phase"] == "Failed"

    assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 7

    # kubectl port-forward to the python server's TCP port.
    with PortForward(cluster, "pod/echo", 9000, namespace) as fwd:
        with socket.create_connection(("127.0.0.1", fwd.local_port), timeout=5) as s:
            s.sendall(b"through port-forward")
            got = b""
            while len(got) < 20:
                chunk = s.recv(100)
                assert chunk, got
                got += chunk
            assert got == b"through port-forward"


def test_a_bind_on_loopback_is_reached_by_port_forward(cluster: Cluster, namespace: str) -> None:
    cluster.apply(python_pod("relay", RELAY_LIKE, restart="Always"), namespace)
    eventually(lambda: "listening on 8400" in logs(cluster, namespace, "relay"), timeout=20, what="the relay")
    with PortForward(cluster, "pod/relay", 8400, namespace) as fwd:
        with socket.create_connection(("127.0.0.1", fwd.local_port), timeout=5) as s:
            assert s.makefile().readline() == "hello from relay\n"
    cluster.kubectl("delete", "pod", "relay", "-n", namespace, "--wait=false")
    eventually(lambda: cluster.kubectl("get", "pod", "relay", "-n", namespace, check=False).returncode != 0,
               timeout=10, what="the pod to go after SIGTERM")


def test_active_deadline_seconds_fails_the_pod(cluster: Cluster, namespace: str) -> None:
    started = time.time()
    cluster.apply(python_pod("slow", "import time; print('sleeping', flush=True); time.sleep(60)",
                             restart="Always", extra='{"activeDeadlineSeconds": 3}'), namespace)
    st = eventually(lambda: (s := phase(cluster, namespace, "slow"))["phase"] == "Failed" and s,
                    timeout=15, what="the pod to fail")
    assert time.time() - started >= 3
    assert st["reason"] == "DeadlineExceeded"
    assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert logs(cluster, namespace, "slow") == "sleeping\n"
