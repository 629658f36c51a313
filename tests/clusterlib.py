"""Helpers for tests that run on the real local test cluster (tests/cluster/).

`Cluster` wraps one cluster of a `testcluster up` directory: kubectl with the
right kubeconfig and context, fault injection (stop/start a component), and
the test kubelet's hooks.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTCLUSTER = ROOT / "tests" / "cluster" / "testcluster"
MANIFESTS = ROOT / "tests" / "cluster" / "manifests"
KUBECTL = os.environ.get("KUBECTL", "kubectl")


def run(cmd: list[str], *, check: bool = True, timeout: float = 120, env: dict | None = None,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class Cluster:
    dir: Path
    letter: str

    @property
    def context(self) -> str:
        return f"tender-{self.letter}"

    @property
    def kubeconfig(self) -> str:
        return str(self.dir / "kubeconfig")

    @property
    def state(self) -> dict:
        return json.loads((self.dir / self.letter / "state.json").read_text())

    @property
    def admin_token(self) -> str:
        return self.state["admin_token"]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig)
        env.update(extra)
        return env

    def kubectl(self, *args: str, check: bool = True, context: str | None = None, timeout: float = 60,
                input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [KUBECTL, "--context", context or self.context, *args]
        return run(cmd, check=check, timeout=timeout, env=env or self.env(), input=input)

    def apply(self, manifest: str, namespace: str | None = None) -> None:
        args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
        self.kubectl(*args, input=manifest)

    def new_namespace(self, prefix: str = "t") -> str:
        ns = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", ns)
        # The ServiceAccount admission plugin refuses pods until the
        # namespace's default ServiceAccount exists.
        deadline = time.time() + 30
        while self.kubectl("get", "sa", "default", "-n", ns, check=False).returncode != 0:
            assert time.time() < deadline, "default ServiceAccount never appeared"
            time.sleep(0.1)
        return ns

    def get(self, kind: str, name: str, namespace: str) -> dict:
        return json.loads(self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)

    def pods(self, namespace: str, selector: str) -> list[dict]:
        out = self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
        return json.loads(out)["items"]

    def ready_pods(self, namespace: str, selector: str) -> list[str]:
        names = []
        for p in self.pods(namespace, selector):
            if p["metadata"].get("deletionTimestamp"):
                continue
            conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
            if conds.get("Ready") == "True":
                names.append(p["metadata"]["name"])
        return sorted(names)

    def wait_ready(self, namespace: str, selector: str, count: int = 1, timeout: float = 60) -> list[str]:
        deadline = time.time() + timeout
        while True:
            names = self.ready_pods(namespace, selector)
            if len(names) >= count:
                return names
            assert time.time() < deadline, f"only {names} ready for {selector} in {namespace}"
            time.sleep(0.2)

    def annotate(self, kind: str, name: str, namespace: str, key: str, value: str | None) -> None:
        spec = f"{key}-" if value is None else f"{key}={value}"
        self.kubectl("annotate", "--overwrite", kind, name, "-n", namespace, spec)

    def drop_connections(self, pod: str, namespace: str) -> None:
        self.annotate("pod", pod, namespace, "testcluster.tender.dev/drop-connections", uuid.uuid4().hex[:8])

    def stop(self, component: str) -> None:
        run([str(TESTCLUSTER), "stop", "--dir", str(self.dir), "--cluster", self.letter, "--component", component])

    def start(self, component: str) -> None:
        run([str(TESTCLUSTER), "start", "--dir", str(self.dir), "--cluster", self.letter, "--component", component])

    def direct_address(self, namespace: str, pod: str, port: int) -> tuple[str, int]:
        """The pod server's real loopback address (no API server in between)."""
        state = json.loads((self.dir / self.letter / "kubelet" / "pods" / f"{namespace}_{pod}.json").read_text())
        host, _, p = state["ports"][str(port)].rpartition(":")
        return host, int(p)

    def _pod_state(self, namespace: str, pod: str) -> dict:
        path = self.dir / self.letter / "kubelet" / "pods" / f"{namespace}_{pod}.json"
        return json.loads(path.read_text())

    def udp_address(self, namespace: str, pod: str, port: int) -> tuple[str, int]:
        """The real loopback address of the pod's UDP socket for container port PORT
        (netexec's UDP server, --udp-port, default 8081).  Port-forward carries TCP
        only, so this is the one way to reach it.  KeyError if nothing listens."""
        host, _, p = self._pod_state(namespace, pod)["udp_ports"][str(port)].rpartition(":")
        return host, int(p)

    def container_root(self, namespace: str, pod: str, container: str) -> Path:
        """The real directory standing for CONTAINER's "/" (a running container only):
        what netexec's /shell, exec probes and test-webserver see.  A test may put
        files there; a restart of the container starts from a fresh root."""
        return Path(self._pod_state(namespace, pod)["roots"][container])


def cluster_up(directory: Path, clusters: int) -> list[Cluster]:
    run([str(TESTCLUSTER), "up", "--dir", str(directory), "--clusters", str(clusters)], timeout=1800)
    return [Cluster(directory, chr(ord("a") + i)) for i in range(clusters)]


def cluster_up_with(directory: Path, clusters: int, *flags: str) -> list[Cluster]:
    """cluster_up with extra `testcluster up` flags, e.g.
    "--streaming-connection-idle-timeout=2s"."""
    run([str(TESTCLUSTER), "up", "--dir", str(directory), "--clusters", str(clusters), *flags], timeout=1800)
    return [Cluster(directory, chr(ord("a") + i)) for i in range(clusters)]


def cluster_down(directory: Path) -> None:
    run([str(TESTCLUSTER), "down", "--dir", str(directory)], check=False, timeout=120)


def deployment_manifest(name: str, *, replicas: int = 1, args: str = "netexec --http-port=8080",
                        port: int = 8080, port_name: str = "http", grace: int = 2, extra_pod_spec: str = "") -> str:
    arg_list = ", ".join(f'"{a}"' for a in args.split())
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: {grace}
      containers:
        - name: app
          image: registry.k8s.io/e2e-test-images/agnhost:2.53
          args: [{arg_list}]
          ports: [{{name: {port_name}, containerPort: {port}}}]
{extra_pod_spec}
"""


class PortForward:
    """A running `kubectl port-forward` to TARGET's REMOTE_PORT.

    kubectl picks a free local port itself (`:REMOTE_PORT`), so there is no
    race for it; `local_port` is read from its "Forwarding from" line.
    websockets=False sets KUBECTL_PORT_FORWARD_WEBSOCKETS=false (plain SPDY).
    Use as a context manager; kubectl is killed on exit.  Run with -v=6 so
    that the request line (GET = WebSocket, POST = SPDY) is in `stderr`.
    """

    def __init__(self, cluster: Cluster, target: str, remote_port: int, namespace: str, *,
                 websockets: bool = True, context: str | None = None) -> None:
        self.cluster = cluster
        env = cluster.env(KUBECTL_PORT_FORWARD_WEBSOCKETS="true" if websockets else "false")
        self.cmd = [KUBECTL, "--context", context or cluster.context, "-n", namespace, "-v=6",
                    "port-forward", "--address", "127.0.0.1", target, f":{remote_port}"]
        self.remote_port = remote_port
        self.local_port: int | None = None
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._env = env
        self.proc: subprocess.Popen[str] | None = None

    @property
    def stdout(self) -> str:
        return "".join(self._stdout)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def start(self, timeout: float = 20) -> "PortForward":
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=self._env, bufsize=1)
        pattern = re.compile(rf"Forwarding from 127\.0\.0\.1:(\d+) -> {self.remote_port}")
        found = threading.Event()

        def pump(stream, sink: list[str], watch: bool) -> None:
            for line in stream:
                sink.append(line)
                m = pattern.search(line) if watch else None
                if m and self.local_port is None:
                    self.local_port = int(m.group(1))
                    found.set()
            stream.close()

        self._threads = [threading.Thread(target=pump, args=(self.proc.stdout, self._stdout, True), daemon=True),
                         threading.Thread(target=pump, args=(self.proc.stderr, self._stderr, False), daemon=True)]
        for t in self._threads:
            t.start()
        deadline = time.time() + timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise AssertionError(f"{' '.join(self.cmd)} did not start forwarding (rc={self.proc.returncode}):\n"
                                     f"{self.stdout}\n{self.stderr}")
        return self

    def wait_exit(self, timeout: float) -> int | None:
        """kubectl's exit code, or None if it still runs after timeout."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self._threads:
            t.join(2)
        return rc

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for t in getattr(self, "_threads", []):
            t.join(2)

    def __enter__(self) -> "PortForward":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def get(self, path: str, timeout: float = 10) -> str:
        """HTTP GET through the forward; the body as text."""
        conn = http.client.HTTPConnection("127.0.0.1", self.local_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode()
            assert resp.status == 200, f"GET {path}: {resp.status} {body}"
            return body
        finally:
            conn.close()


def eventually(check, *, timeout: float = 30, interval: float = 0.2, what: str = "condition"):
    """Call check() until it returns a truthy value (returned) or timeout.

    An AssertionError raised by check counts as "not yet"; the last one is
    reported if time runs out.
    """
    deadline = time.time() + timeout
    last: Exception | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except AssertionError as e:
            last = e
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last}" if last else ""))
        time.sleep(interval)


BYTES_BLOCK = 64 << 10


def _bytes_table(seed: int) -> int:
    import hashlib

    table = b"".join(hashlib.sha256(f"tender-bytes:{seed}:{i}".encode()).digest()
                     for i in range(BYTES_BLOCK // 32))
    return int.from_bytes(table, "little")


def iter_expected_bytes(n: int, seed: int = 0):
    """The test cluster's `GET /bytes?n=N&seed=SEED` body, in blocks of up to 64 KiB.

    Block b is the seed's 64 KiB table XOR the 8-byte little-endian b repeated;
    the table is SHA-256("tender-bytes:SEED:i") for i = 0..2047 concatenated
    (tests/cluster/agnhost_programs.go, bytesBlock).  No block repeats, so lost,
    repeated or reordered data changes the checksum.
    """
    table = _bytes_table(seed)
    b = 0
    while n > 0:
        mask = int.from_bytes(b.to_bytes(8, "little") * (BYTES_BLOCK // 8), "little")
        block = (table ^ mask).to_bytes(BYTES_BLOCK, "little")
        yield block[:n] if n < BYTES_BLOCK else block
        n -= BYTES_BLOCK
        b += 1


def expected_bytes(n: int, seed: int = 0) -> bytes:
    """The whole `/bytes?n=N&seed=SEED` body (N bytes in memory)."""
    return b"".join(iter_expected_bytes(n, seed))


def expected_sha256(n: int, seed: int = 0) -> str:
    """Hex SHA-256 of the `/bytes?n=N&seed=SEED` body, computed block by block
    (constant memory; about 0.5 s per 256 MiB)."""
    import hashlib

    h = hashlib.sha256()
    for block in iter_expected_bytes(n, seed):
        h.update(block)
    return h.hexdigest()
