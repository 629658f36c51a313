"""Relay forwards from a profiles file on the real test cluster (issue 15): ``tender run --profiles FILE``.

One file holds a ``host/localhost:PORT`` profile (a listener this test binds
on 127.0.0.1: only the node, and so the relay pod's process, reaches it;
the profile listens on 127.0.0.2:PORT, the target's port) and
a UDP profile (``protocol: UDP``) to a UDP echo pod; the first relay runs
the file's ``relay: {image}``, the second its profile's own.  Both answer; on SIGINT ``tender run`` deletes both
relay pods within 5 s.  The cluster's kubelet must run relay pods (the
python image's command as a process): TENDER_TEST_CLUSTER_DIR=/tmp/tc-R.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import time

import pytest

from tests.clusterlib import Cluster, eventually
from tests.integration.relays import RELAYS, node_only_server
from tests.integration.test_engine_cli import Tender

pytestmark = pytest.mark.cluster

IMAGE = "python:3.13-alpine"
#: The relay images the profiles name (the test kubelet runs any image's python3 command as a process).
FILE_IMAGE = "mirror.example/python:3.13-alpine"
PROFILE_IMAGE = "other.example/python:3"

UDP_ECHO = r"""
import asyncio
class Echo(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(b"echo:" + d, a)
async def main():
    await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 5353))
    print("echo ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _udp_echo(cluster: Cluster, namespace: str) -> None:
    """Pod ``udp-echo`` (declaring 5353/UDP) answering each datagram with ``echo:`` and the datagram."""
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "udp-echo", "labels": {"app": "udp-echo"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "py", "image": IMAGE, "command": ["python3", "-c", UDP_ECHO],
            "ports": [{"name": "echo", "containerPort": 5353, "protocol": "UDP"}]}]},
    }), namespace)
    cluster.wait_ready(namespace, "app=udp-echo")
    eventually(lambda: "echo ready" in cluster.kubectl("logs", "-n", namespace, "udp-echo").stdout,
               timeout=20, what="the UDP echo")


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _relay_pods(cluster: Cluster, namespace: str) -> list[str]:
    return [p["metadata"]["name"] for p in cluster.pods(namespace, RELAYS)]


def test_host_and_udp_profiles_answer_and_stop_removes_their_relays(cluster: Cluster, namespace: str,
                                                                    tmp_path) -> None:
    _udp_echo(cluster, namespace)
    srv, port = node_only_server(b"node-only: ")
    udp_local = _free_port(socket.SOCK_DGRAM)
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(
        "version: 1\n"
        f"relay: {{image: '{FILE_IMAGE}'}}   # the file's relay image\n"
        "profiles:\n"
        "  - name: node-db\n"
        f"    context: {cluster.context}\n"
        f"    namespace: {namespace}\n"
        f"    target: host/localhost:{port}   # no ports: the target's, locally too\n"
        "    address: 127.0.0.2               # (127.0.0.1:PORT is the listener itself)\n"
        "  - name: echo\n"
        f"    context: {cluster.context}\n"
        f"    namespace: {namespace}\n"
        "    target: pod/udp-echo\n"
        f"    ports: ['{udp_local}:5353']\n"
        "    protocol: UDP\n"
        f"    relay: {{image: '{PROFILE_IMAGE}'}}   # this profile's own\n")
    t = Tender("run", "--kubeconfig", cluster.kubeconfig, "--profiles", str(profiles), "--all")
    try:
        relays: dict[str, str] = {}
        deadline = time.monotonic() + 90
        while len(relays) < 2:
            if time.monotonic() > deadline or t.proc.poll() is not None:
                t.kill()
                raise AssertionError(f"not both relay forwards active; stdout {t.seen}; stderr {t.wait()[2]}")
            try:
                line = t.next_line(timeout=1)
            except AssertionError:
                continue
            m = re.match(r"^(node-db|echo) \(.*\): Forwarding from .* through relay pod (tender-relay-\S+?)\)?$",
                         line)
            if m:
                relays[m.group(1)] = m.group(2)
        assert sorted(_relay_pods(cluster, namespace)) == sorted(relays.values())
        images = {name: cluster.get("pod", pod, namespace)["spec"]["containers"][0]["image"]
                  for name, pod in relays.items()}
        assert images == {"node-db": FILE_IMAGE, "echo": PROFILE_IMAGE}

        with socket.create_connection(("127.0.0.2", port), timeout=5) as s:  # the profile's local address:port
            s.sendall(b"hello from a profile")
            s.shutdown(socket.SHUT_WR)
            assert s.recv(100) == b"node-only: hello from a profile"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(3)
            u.connect(("127.0.0.1", udp_local))
            for attempt in range(3):  # UDP: a datagram may be lost
                u.send(b"ping")
                try:
                    assert u.recv(100) == b"echo:ping"
                    break
                except socket.timeout:
                    assert attempt < 2, "no UDP answer"

        t.proc.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        eventually(lambda: not _relay_pods(cluster, namespace), timeout=5, what="both relay pods to be deleted")
        assert time.monotonic() - stopped < 5
        code, _, err = t.wait()
        assert code == 0, err
    finally:
        t.kill()
        srv.close()
