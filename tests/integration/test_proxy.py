"""`tender proxy`: clients reach Services and pods by their cluster names, through SOCKS5 and HTTP.

On the real test cluster, in a namespace of the module's own: a Deployment of
three agnhost netexec replicas behind Service `web` (port 80 -> the named
targetPort `http`, 8080), a StatefulSet `db` of two behind the headless
Service `db` (5432), a Service `empty` whose selector matches nothing, a Service `closed` whose
targetPort nothing listens on, and ExternalName Services `alias` (to `web`'s cluster name) and
`outside` (to a host outside the cluster).
One `tender proxy` process serves the module, as a user would run it; the
clients are curl (`--socks5-hostname`, `-x`, `-p -x`), httpx and urllib with
`HTTP_PROXY`.  `GET /hostname` answers the pod's name.
"""

from __future__ import annotations

import collections
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import free_port, service_manifest
from tests.integration.kubeconfigs import user_with_rules

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
#: "At once": an error answer takes no longer than this (the cluster answers in milliseconds).
AT_ONCE = 5.0

STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: db
          image: registry.k8s.io/e2e-test-images/agnhost:2.53
          args: ["netexec", "--http-port=5432"]
          ports: [{name: pg, containerPort: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
"""


EXTERNAL_NAMES = """
apiVersion: v1
kind: Service
metadata: {{name: alias}}
spec: {{type: ExternalName, externalName: web.{ns}.svc.cluster.local}}
---
apiVersion: v1
kind: Service
metadata: {{name: outside}}
spec: {{type: ExternalName, externalName: www.example.com}}
"""


class Proxy:
    """A running `tender proxy` (a subprocess) and where it listens."""

    def __init__(self, cluster: Cluster, kubeconfig: str, context: str, listen: str = "127.0.0.1:0") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tray", "proxy", "--kubeconfig", kubeconfig, "--context", context,
             "--listen", listen],
            cwd=ROOT, env=cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline().strip()
        match = re.search(r" on (\S+:(\d+)) ", self.banner)
        assert match, f"no banner: {self.banner!r}; stderr: {self._stderr()}"
        self.listen, self.port = match.group(1), int(match.group(2))
        self.address = f"127.0.0.1:{self.port}"

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        assert self.proc.returncode == 0, err
        return err

    def curl(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["curl", "-sS", "-m", str(int(timeout)), *args], capture_output=True, text=True,
                              timeout=timeout + 5)

    def socks(self, url: str) -> subprocess.CompletedProcess[str]:
        return self.curl("--socks5-hostname", self.address, url)

    def http(self, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.curl("-x", f"http://{self.address}", *extra, url)


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> Iterator[str]:
    namespace = cluster.new_namespace("proxy")
    cluster.apply(deployment_manifest("web", replicas=3), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{port: 80, targetPort: http}]"), namespace)
    cluster.apply(STATEFULSET, namespace)
    cluster.apply(service_manifest("empty", {"app": "nothing"}, "[{port: 80, targetPort: 8080}]"), namespace)
    cluster.apply(service_manifest("closed", {"app": "web"}, "[{port: 80, targetPort: 9999}]"), namespace)
    cluster.apply(EXTERNAL_NAMES.format(ns=namespace), namespace)
    cluster.wait_ready(namespace, "app=web", 3)
    cluster.wait_ready(namespace, "app=db", 2)
    yield namespace
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.fixture(scope="module")
def proxy(cluster: Cluster, ns: str) -> Iterator[Proxy]:
    p = Proxy(cluster, cluster.kubeconfig, cluster.context)
    yield p
    p.stop()


def test_banner_says_how_to_use_it(proxy: Proxy, cluster: Cluster) -> None:
    assert proxy.banner == (f"SOCKS5 and HTTP proxy for context {cluster.context} on {proxy.address} "
                            f"(curl --socks5-hostname {proxy.address} http://SERVICE.NAMESPACE/)")


def test_socks5_reaches_services_pods_and_addresses_by_name(proxy: Proxy, cluster: Cluster, ns: str) -> None:
    web = set(cluster.ready_pods(ns, "app=web"))
    cluster_ip = cluster.get("svc", "web", ns)["spec"]["clusterIP"]
    for url in (f"http://web.{ns}/hostname", f"http://web.{ns}.svc.cluster.local/hostname",
                f"http://web.{ns}.svc/hostname", f"http://{cluster_ip}/hostname"):
        r = proxy.socks(url)
        assert r.returncode == 0 and r.stdout in web, (url, r.stdout, r.stderr)
    for pod in ("db-0", "db-1"):
        r = proxy.socks(f"http://{pod}.db.{ns}.svc.cluster.local:5432/hostname")
        assert (r.returncode, r.stdout) == (0, pod), r.stderr
    pod_ip = cluster.get("pod", "db-1", ns)["status"]["podIP"]
    r = proxy.socks(f"http://{pod_ip}:5432/hostname")
    assert (r.returncode, r.stdout) == (0, "db-1"), r.stderr


def test_http_proxy_absolute_uri_and_connect(proxy: Proxy, cluster: Cluster, ns: str) -> None:
    web = set(cluster.ready_pods(ns, "app=web"))
    for url in (f"http://web.{ns}/hostname", f"http://web.{ns}.svc.cluster.local/hostname"):
        r = proxy.http(url)  # HTTP_PROXY: the absolute URI
        assert r.returncode == 0 and r.stdout in web, (url, r.stdout, r.stderr)
        r = proxy.http(url, "-p")  # HTTPS_PROXY's way: CONNECT, then the bytes
        assert r.returncode == 0 and r.stdout in web, (url, r.stdout, r.stderr)
    r = proxy.http(f"http://db-1.db.{ns}.svc.cluster.local:5432/hostname")
    assert (r.returncode, r.stdout) == (0, "db-1"), r.stderr
    # A body goes through too (netexec's /echo?msg= echoes; POST /echo reads nothing, so use a query).
    r = proxy.http(f"http://web.{ns}/echo?msg=hello%20proxy")
    assert (r.returncode, r.stdout) == (0, "hello proxy"), r.stderr


def test_python_clients_with_the_environment(proxy: Proxy, cluster: Cluster, ns: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    web = set(cluster.ready_pods(ns, "app=web"))
    for var in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, f"http://{proxy.address}")
    for var in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with httpx.Client(trust_env=True, timeout=20) as client:  # keep-alive: the proxy says Connection: close
        answers = [client.get(f"http://web.{ns}.svc.cluster.local/hostname") for _ in range(4)]
    assert all(a.status_code == 200 and a.text in web for a in answers), [(a.status_code, a.text) for a in answers]
    # A fresh opener reads the environment now (urlopen's opener is built once per process, maybe before).
    with urllib.request.build_opener().open(f"http://db-0.db.{ns}:5432/hostname", timeout=20) as answer:
        assert answer.read() == b"db-0"
    # CONNECT by hand, as an HTTPS_PROXY client opens it.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s:
        s.sendall(f"CONNECT web.{ns}:80 HTTP/1.1\r\nHost: web.{ns}:80\r\n\r\n".encode())
        assert s.recv(39) == b"HTTP/1.1 200 Connection established\r\n\r\n"
        s.sendall(f"GET /hostname HTTP/1.1\r\nHost: web.{ns}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.split(b"\r\n\r\n", 1)[1].decode() in web


def test_round_robin_reaches_every_replica(proxy: Proxy, cluster: Cluster, ns: str) -> None:
    web = cluster.ready_pods(ns, "app=web")
    seen = collections.Counter()
    for _ in range(30):
        r = proxy.socks(f"http://web.{ns}/hostname")
        assert r.returncode == 0, r.stderr
        seen[r.stdout] += 1
    assert sorted(seen) == sorted(web)
    assert all(n == 10 for n in seen.values()), seen


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - start


def test_unknown_names_and_ports_are_host_unreachable_and_502(proxy: Proxy, ns: str) -> None:
    for url, reason in ((f"http://nope.{ns}/", f'no Service "nope" in namespace "{ns}"'),
                        (f"http://web.{ns}:81/", "svc/web has no port 81"),
                        (f"http://db-7.db.{ns}:5432/", 'no pod with hostname "db-7"'),
                        ("http://www.example.com.au/", "is not a cluster name")):
        r, took = _timed(proxy.socks, url)
        assert r.returncode == 97 and "(4)" in r.stderr, (url, r.stderr)  # SOCKS5 host unreachable
        assert took < AT_ONCE
        r, took = _timed(proxy.http, url, "-i")
        assert r.stdout.startswith("HTTP/1.1 502 Bad Gateway\n"), (url, r.stdout)
        body = r.stdout.split("\n\n", 1)[1]  # (text mode: CRLF read as LF)
        assert reason in body and body.count("\n") == 1, body
        assert took < AT_ONCE
        r = proxy.http(url, "-p")
        assert r.returncode == 56 and "502" in r.stderr, r.stderr


def test_no_ready_pod_is_connection_refused_and_503(proxy: Proxy, ns: str) -> None:
    r, took = _timed(proxy.socks, f"http://empty.{ns}/")
    assert r.returncode == 97 and "(5)" in r.stderr and took < AT_ONCE, r.stderr  # SOCKS5 connection refused
    r, took = _timed(proxy.http, f"http://empty.{ns}/", "-i")
    assert r.stdout.startswith("HTTP/1.1 503 Service Unavailable\n") and took < AT_ONCE, r.stdout
    assert r.stdout.endswith("no pods match svc/empty (namespace %s): no ready endpoint\n" % ns), r.stdout


def test_a_forbidden_namespace_is_not_allowed_and_403(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    rules = [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
             {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]}]
    kubeconfig = user_with_rules(cluster, ns, "proxy-user", rules, tmp_path / "limited.yaml")
    limited = Proxy(cluster, kubeconfig, "proxy-user")
    try:
        r = limited.socks(f"http://web.{ns}/hostname")  # its own namespace works
        assert r.returncode == 0 and r.stdout.startswith("web-"), r.stderr
        r, took = _timed(limited.socks, "http://web.demo/hostname")
        assert r.returncode == 97 and "(2)" in r.stderr and took < AT_ONCE, r.stderr  # SOCKS5 not allowed
        r, took = _timed(limited.http, "http://web.demo/hostname", "-i")
        assert r.stdout.startswith("HTTP/1.1 403 Forbidden\n") and took < AT_ONCE, r.stdout
        body = r.stdout.split("\n\n", 1)[1]  # (text mode: CRLF read as LF)
        assert body.startswith('forbidden: namespace "demo"') and body.count("\n") == 1, body
    finally:
        limited.stop()


def test_a_rollout_during_a_stream_of_requests_fails_none(proxy: Proxy, cluster: Cluster, ns: str) -> None:
    cluster.apply(deployment_manifest("roll", replicas=2), ns)
    cluster.apply(service_manifest("roll", {"app": "roll"}, "[{port: 80, targetPort: http}]"), ns)
    old = set(cluster.wait_ready(ns, "app=roll", 2))
    proxies = {"http://": f"http://{proxy.address}"}
    answers: list[str] = []
    failures: list[str] = []
    rolled = threading.Event()

    def rollout() -> None:
        cluster.kubectl("rollout", "restart", "deploy/roll", "-n", ns)
        cluster.kubectl("rollout", "status", "deploy/roll", "-n", ns, "--timeout=120s", timeout=130)
        rolled.set()

    with httpx.Client(proxy=proxies["http://"], timeout=20, trust_env=False) as client:
        thread = None
        while len(answers) + len(failures) < 200 or not rolled.is_set():
            if thread is None and len(answers) >= 20:
                thread = threading.Thread(target=rollout, daemon=True)
                thread.start()
            try:
                r = client.get(f"http://roll.{ns}/hostname")
                (answers if r.status_code == 200 else failures).append(f"{r.status_code} {r.text}")
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
            time.sleep(0.02)
            assert len(answers) + len(failures) < 5000, "the rollout never finished"
    new = set(cluster.ready_pods(ns, "app=roll"))
    assert not failures, failures[:5]
    seen = {a.split(" ", 1)[1] for a in answers}
    assert new.isdisjoint(old) and seen >= new and seen & old  # the stream ran across the rollout


def test_bad_listen_is_one_line_and_exit_2(cluster: Cluster) -> None:
    for listen in ("127.0.0.1", "nowhere:1080", "127.0.0.1:99999"):
        r = subprocess.run([sys.executable, "-m", "tray", "proxy", "--listen", listen], cwd=ROOT,
                           env=cluster.env(), capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert r.stderr.startswith("tender: error: --listen: bad listen address"), r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "tray", "proxy", "--listen", f"127.0.0.1:{port}",
                            "--context", cluster.context], cwd=ROOT, env=cluster.env(), capture_output=True,
                           text=True, timeout=60)
    assert r.returncode == 1 and r.stderr == f"tender: error: local port {port} is already in use on 127.0.0.1\n"
    r = subprocess.run([sys.executable, "-m", "tray", "proxy", "--context", "nope", "--listen",
                        f"127.0.0.1:{free_port()}"], cwd=ROOT, env=cluster.env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and 'context "nope" not found' in r.stderr, r.stderr
    assert os.path.exists(cluster.kubeconfig)


def test_the_engine_api_starts_stops_and_releases_everything(cluster: Cluster, ns: str) -> None:
    from tray.engine.manager import ForwardManager, ListEvent
    from tray.errors import UsageError

    m = ForwardManager(cluster.kubeconfig)
    events: list[object] = []
    m.subscribe(events.append)
    try:
        with pytest.raises(UsageError, match='context "nope" not found'):
            m.start_proxy("nope", "127.0.0.1:0")
        with pytest.raises(UsageError, match="bad listen address"):
            m.start_proxy(cluster.context, "127.0.0.1:x")
        info = m.start_proxy(cluster.context, "127.0.0.1:0")
        assert info.context == cluster.context and info.listen.startswith("127.0.0.1:") and info.connections == 0
        assert any(isinstance(e, ListEvent) for e in events)
        assert m.start_proxy(cluster.context, "127.0.0.1:0") == info  # the same one
        with pytest.raises(UsageError, match="already has a cluster proxy"):
            m.start_proxy(cluster.context, f"127.0.0.1:{free_port()}")
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            with pytest.raises(UsageError, match="in use"):
                m.start_proxy("tender-b", f"127.0.0.1:{busy.getsockname()[1]}")
        r = subprocess.run(["curl", "-sS", "-m", "20", "--socks5-hostname", info.listen, f"http://web.{ns}/hostname"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout.startswith("web-"), r.stderr
        # An open connection, then the proxy stops under it.
        held = socket.create_connection(("127.0.0.1", int(info.listen.rsplit(":", 1)[1])), timeout=20)
        held.sendall(f"CONNECT web.{ns}:80 HTTP/1.1\r\n\r\n".encode())
        assert held.recv(39).startswith(b"HTTP/1.1 200")
        now = m.proxies()
        assert len(now) == 1 and now[0].connections == 1 and now[0].connections_total == 2, now
        assert (cluster.context, ns, "services") in m.watch_keys()
        events.clear()
        m.stop_proxy(cluster.context)
        assert m.proxies() == [] and any(isinstance(e, ListEvent) for e in events)
        assert not [k for k in m.watch_keys() if k[0] == cluster.context]  # the caches are released
        held.settimeout(10)
        assert held.recv(100) == b""  # cut
        held.close()
        m.stop_proxy(cluster.context)  # none: nothing happens
    finally:
        m.shutdown()


def test_a_pod_that_refuses_the_port(proxy: Proxy, cluster: Cluster, ns: str) -> None:
    web = set(cluster.ready_pods(ns, "app=web"))
    reason = re.compile(r"^connection refused by pod (web-\S+) port 9999$")
    # SOCKS5 and CONNECT: the success comes at once, then the connection closes (as kubectl's forward does).
    r, took = _timed(proxy.socks, f"http://closed.{ns}/")
    assert r.returncode == 52 and took < AT_ONCE, (r.returncode, r.stderr)  # curl: empty reply from server
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as s:
        s.sendall(f"CONNECT closed.{ns}:80 HTTP/1.1\r\nHost: closed.{ns}:80\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data == b"HTTP/1.1 200 Connection established\r\n\r\n", data
    # The absolute URI: the pod erred before any answer, so the client gets 502 and the reason.
    r, took = _timed(proxy.http, f"http://closed.{ns}/", "-i")
    assert r.stdout.startswith("HTTP/1.1 502 Bad Gateway\n") and took < AT_ONCE, r.stdout
    match = reason.match(r.stdout.split("\n\n", 1)[1].rstrip("\n"))
    assert match and match.group(1) in web, r.stdout
    # A pod that answers is unchanged.
    r, took = _timed(proxy.socks, f"http://db-0.db.{ns}:5432/hostname")
    assert (r.returncode, r.stdout) == (0, "db-0") and took < AT_ONCE, r.stderr


def test_external_names_inside_are_followed_and_outside_refused(proxy: Proxy, cluster: Cluster, ns: str) -> None:
    web = set(cluster.ready_pods(ns, "app=web"))
    r = proxy.socks(f"http://alias.{ns}/hostname")
    assert r.returncode == 0 and r.stdout in web, r.stderr
    r = proxy.http(f"http://alias.{ns}/hostname")
    assert r.returncode == 0 and r.stdout in web, r.stderr
    r = proxy.socks(f"http://outside.{ns}/")
    assert r.returncode == 97 and "(4)" in r.stderr, r.stderr  # host unreachable
    r = proxy.http(f"http://outside.{ns}/", "-i")
    assert r.stdout.startswith("HTTP/1.1 502 Bad Gateway\n"), r.stdout
    assert r.stdout.endswith(f'Service "outside" in namespace "{ns}": ExternalName to www.example.com: outside the '
                             "cluster (not reachable through port-forward)\n"), r.stdout


def test_the_foreground_proxy_prints_failures_at_most_once_a_second(cluster: Cluster, ns: str) -> None:
    p = Proxy(cluster, cluster.kubeconfig, cluster.context)
    try:
        for _ in range(5):
            p.socks(f"http://nope.{ns}/")
        time.sleep(1.5)  # the held line's second passes
    finally:
        err = p.stop()
    lines = err.splitlines()
    line = f'tender: proxy: no Service "nope" in namespace "{ns}" (context {cluster.context})'
    assert lines[0] == line and lines[1:] in ([f"{line} (and 3 more)"], []), err
    assert len(lines) <= 2, err


def test_every_interface_warns_and_localhost_is_both_loopbacks(cluster: Cluster, ns: str) -> None:
    p = Proxy(cluster, cluster.kubeconfig, cluster.context, "0.0.0.0:0")
    try:
        assert p.banner.endswith(f"(curl --socks5-hostname 127.0.0.1:{p.port} http://SERVICE.NAMESPACE/)")
        r = p.socks(f"http://db-0.db.{ns}:5432/hostname")
        assert (r.returncode, r.stdout) == (0, "db-0"), r.stderr
    finally:
        err = p.stop()
    assert err == ("tender: warning: the proxy listens on every network interface (0.0.0.0): anyone who can reach "
                   "this machine can use it to reach the cluster with your credentials\n")
    port = free_port()
    p = Proxy(cluster, cluster.kubeconfig, cluster.context, f"localhost:{port}")
    try:
        assert p.listen == f"localhost:{port}"
        for where in ("127.0.0.1", "[::1]"):
            r = p.curl("--socks5-hostname", f"{where}:{port}", f"http://db-0.db.{ns}:5432/hostname")
            assert (r.returncode, r.stdout) == (0, "db-0"), (where, r.stderr)
    finally:
        assert p.stop() == ""


def test_first_bytes_that_are_no_proxy_request_are_answered_at_once(proxy: Proxy) -> None:
    for data, answer in ((b"\x04\x01\x00\x50\x00\x00\x00\x01\x00web\x00", b"\x00\x5b\x00\x00\x00\x00\x00\x00"),
                         (b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", b""),
                         (b"\x05\x00", b"\x05\xff"),
                         (b"hello\n", b"HTTP/1.1 400 Bad Request\r\n")):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=AT_ONCE) as s:
            start = time.monotonic()
            s.sendall(data)
            got = b""
            while chunk := s.recv(65536):
                got += chunk
            assert got.startswith(answer) and (answer or got == b""), (data, got)
            assert time.monotonic() - start < AT_ONCE
