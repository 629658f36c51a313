"""Upstream kubectl port-forward e2e scenarios (kubernetes test/e2e/kubectl/
portforward.go), ported to pytest against the test cluster.

Each scenario runs agnhost's port-forward-tester in a pod (restartPolicy
Never, container "portforwardtester", port 80): it accepts ONE connection,
optionally checks EXPECTED_CLIENT_DATA, sends CHUNKS chunks of CHUNK_SIZE
'x' bytes CHUNK_INTERVAL ms apart, closes and exits, logging each step.
The client goes through `kubectl port-forward` (WebSocket, kubectl's
default) and the outcome is read the way a user would: the bytes received,
`kubectl logs`, and the pod's final phase.

The last scenario uses agnhost's tcp-reset and documents kubectl's own
behaviour after a reset (kubernetes#111825), which Tender exists to fix.
"""

from __future__ import annotations

import socket

import pytest

from tests.clusterlib import Cluster, PortForward, eventually

pytestmark = pytest.mark.cluster

CONTAINER = "portforwardtester"


def pf_tester_manifest(name: str, expected: str, chunks: int, chunk_size: int, interval_ms: int) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
    - name: {CONTAINER}
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: ["port-forward-tester"]
      ports: [{{containerPort: 80}}]
      env:
        - {{name: BIND_PORT, value: "80"}}
        - {{name: EXPECTED_CLIENT_DATA, value: "{expected}"}}
        - {{name: CHUNKS, value: "{chunks}"}}
        - {{name: CHUNK_SIZE, value: "{chunk_size}"}}
        - {{name: CHUNK_INTERVAL, value: "{interval_ms}"}}
"""


def start_tester(cluster: Cluster, namespace: str, name: str, expected: str, chunks: int = 10,
                 chunk_size: int = 10, interval_ms: int = 100) -> None:
    cluster.apply(pf_tester_manifest(name, expected, chunks, chunk_size, interval_ms), namespace)
    cluster.wait_ready(namespace, f"app={name}")


def logs_contain(cluster: Cluster, namespace: str, pod: str, *needles: str, timeout: float = 15) -> str:
    """`kubectl logs` of the tester, retried until every needle shows up."""
    def check() -> str:
        out = cluster.kubectl("logs", pod, "-c", CONTAINER, "-n", namespace, check=False).stdout
        missing = [n for n in needles if n not in out]
        assert not missing, f"{missing} not in logs:\n{out}"
        return out or " "

    return eventually(check, timeout=timeout, interval=0.3, what=f"{pod}'s logs")


def wait_terminated(cluster: Cluster, namespace: str, pod: str, timeout: float = 20) -> tuple[str, dict]:
    """(pod phase, the container's terminated state) once the container ended."""
    def check():
        p = cluster.get("pod", pod, namespace)
        for cs in p.get("status", {}).get("containerStatuses", []):
            if cs["name"] == CONTAINER and cs["state"].get("terminated"):
                if p["status"]["phase"] in ("Succeeded", "Failed"):
                    return p["status"]["phase"], cs["state"]["terminated"]
        return None

    return eventually(check, timeout=timeout, what=f"{pod}'s container to terminate")


def status_column(cluster: Cluster, namespace: str, pod: str) -> str:
    """The STATUS column of `kubectl get pod`, as a user reads it."""
    out = cluster.kubectl("get", "pod", pod, "-n", namespace, "--no-headers").stdout.split()
    return out[2]


def read_to_eof(sock: socket.socket, limit: float = 15) -> bytes:
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_client_connects_and_closes_without_data(cluster: Cluster, namespace: str) -> None:
    """Upstream "that expects NO client request: should support a client that
    connects, sends DATA, and disconnects" (doTestConnectSendDisconnect):
    EXPECTED_CLIENT_DATA is empty; the client connects and closes at once.
    The tester still sends its chunks into the closed connection and exits 0.
    """
    start_tester(cluster, namespace, "pf-nodata", expected="")
    with PortForward(cluster, "pod/pf-nodata", 80, namespace) as pf:
        with socket.create_connection(("127.0.0.1", pf.local_port), timeout=10):
            pass
        phase, term = wait_terminated(cluster, namespace, "pf-nodata")
        assert (phase, term["exitCode"], term["reason"]) == ("Succeeded", 0, "Completed")
        logs = logs_contain(cluster, namespace, "pf-nodata", "Accepted client connection", "Done")
        assert "Received expected client data" not in logs
        assert pf.proc.poll() is None, f"kubectl port-forward died:\n{pf.stderr}"
    assert status_column(cluster, namespace, "pf-nodata") == "Completed"


def test_client_that_must_send_sends_nothing(cluster: Cluster, namespace: str) -> None:
    """Upstream "that expects a client request: should support a client that
    connects, sends NO DATA, and disconnects" (doTestMustConnectSendNothing):
    EXPECTED_CLIENT_DATA=abc but the client closes without sending; the
    tester reports the short read and exits 2, so the pod ends Failed.
    """
    start_tester(cluster, namespace, "pf-nothing", expected="abc", chunks=1, chunk_size=1, interval_ms=1)
    with PortForward(cluster, "pod/pf-nothing", 80, namespace) as pf:
        with socket.create_connection(("127.0.0.1", pf.local_port), timeout=10):
            pass
        phase, term = wait_terminated(cluster, namespace, "pf-nothing")
        assert (phase, term["exitCode"], term["reason"]) == ("Failed", 2, "Error")
        logs_contain(cluster, namespace, "pf-nothing", "Accepted client connection",
                     "Expected to read 3 bytes from client, but got 0 instead")
    assert status_column(cluster, namespace, "pf-nothing") == "Error"


def test_client_sends_data_and_reads_to_eof(cluster: Cluster, namespace: str) -> None:
    """Upstream "that expects a client request: should support a client that
    connects, sends DATA, and disconnects" (doTestMustConnectSendDisconnect):
    the client sends "abc", half-closes, and reads CHUNKS*CHUNK_SIZE 'x'
    bytes until EOF; the tester logs the data as received and exits 0.
    """
    start_tester(cluster, namespace, "pf-data", expected="abc", chunks=10, chunk_size=10, interval_ms=100)
    with PortForward(cluster, "pod/pf-data", 80, namespace) as pf:
        with socket.create_connection(("127.0.0.1", pf.local_port), timeout=10) as sock:
            sock.sendall(b"abc")
            sock.shutdown(socket.SHUT_WR)
            data = read_to_eof(sock)
        assert data == b"x" * 100
        phase, term = wait_terminated(cluster, namespace, "pf-data")
        assert (phase, term["exitCode"]) == ("Succeeded", 0)
        logs_contain(cluster, namespace, "pf-data", "Accepted client connection",
                     "Received expected client data", "Done")
        assert pf.proc.poll() is None, f"kubectl port-forward died:\n{pf.stderr}"
    assert status_column(cluster, namespace, "pf-data") == "Completed"


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
def test_client_sends_nothing_and_reads_all_chunks(cluster: Cluster, namespace: str, websockets: bool) -> None:
    """A client that sends NO data and reads: with EXPECTED_CLIENT_DATA empty
    the tester streams its chunks right away; the client gets every byte,
    in order, then EOF (the half-close reaches it through both protocols).
    """
    name = "pf-read-ws" if websockets else "pf-read-spdy"
    chunks, size = 5, 64 * 1024  # bigger than one frame: exercises flow through the tunnel
    start_tester(cluster, namespace, name, expected="", chunks=chunks, chunk_size=size, interval_ms=50)
    with PortForward(cluster, f"pod/{name}", 80, namespace, websockets=websockets) as pf:
        with socket.create_connection(("127.0.0.1", pf.local_port), timeout=10) as sock:
            data = read_to_eof(sock)
        assert len(data) == chunks * size and data == b"x" * (chunks * size)
        phase, term = wait_terminated(cluster, namespace, name)
        assert (phase, term["exitCode"]) == ("Succeeded", 0)
        logs = logs_contain(cluster, namespace, name, "Accepted client connection", "Done")
        assert "Received expected client data" not in logs


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
def test_kubectl_port_forward_dies_after_tcp_reset(cluster: Cluster, namespace: str, websockets: bool) -> None:
    """kubernetes#111825, reproduced: one reset kills kubectl port-forward.

    The pod runs agnhost tcp-reset (reads, then closes with RST).  What this
    kubectl (v1.32) does, over WebSocket and over SPDY alike:
      * the first connection gets no data: kubectl closes it (the client
        sees EOF or a reset) and logs the pod side's "connection reset by
        peer" as "an error occurred forwarding ... -> 8080";
      * kubectl then ends the whole session: "error: lost connection to
        pod" and exit code 1, although the pod is still Running and Ready;
      * so a second connection to the same local port is refused: nothing
        listens there any more.
    A user's forward is gone after one bad connection; Tender keeps the
    listener and redials instead.  This test proves the cluster reproduces
    the bug (the kubelet reports the pod-side error on the stream's error
    channel, as containerd does).
    """
    cluster.apply("""
apiVersion: v1
kind: Pod
metadata: {name: resetter, labels: {app: resetter}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: registry.k8s.io/e2e-test-images/agnhost:2.53
      args: ["tcp-reset"]
      ports: [{containerPort: 8080}]
""", namespace)
    cluster.wait_ready(namespace, "app=resetter")

    with PortForward(cluster, "pod/resetter", 8080, namespace, websockets=websockets) as pf:
        port = pf.local_port
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"hello\n")
            try:
                first = read_to_eof(sock, limit=10)
            except ConnectionResetError:
                first = b""
        assert first == b""

        rc = pf.wait_exit(15)
        assert rc is not None, f"kubectl port-forward survived the reset:\n{pf.stderr}"
        assert rc == 1
        assert "connection reset by peer" in pf.stderr
        assert "an error occurred forwarding" in pf.stderr
        assert "error: lost connection to pod" in pf.stderr

        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()

    # The pod itself is fine: only kubectl's session died.
    assert cluster.ready_pods(namespace, "app=resetter") == ["resetter"]
