"""Faults: after each one, the state shown is the truth.

Every forward ends ``active`` *and answering* (a real GET /hostname through
its local port), or in ``error`` with a reason (and its port closed); none
stays ``active`` while it does not answer.  A :class:`TruthMonitor` checks
that continuously, not only at the end: it makes a request through the
forward every half second and reads the status right after each one.

How stale may "active" be?  A failure is only known when something fails:
a new connection, the probe, the watch.  When the kubelet or the API server
refuses, that is at once; when the API server *hangs* (etcd down), the
stream's opening handshake times out after 15 s (``tray.engine.v4.open_stream``,
``open_timeout``), so for up to that long a forward may still say ``active``
while its new connections wait.  The monitor allows :data:`STALE_BOUND`
for that, and 3 s where the failure is a refusal.

Destructive faults (stopping components, revoking a token) hit cluster b,
and always restore it in a ``finally``.  Every test ends by stopping its
forwards and checking the engine is empty again: no watch, no task.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.clusterlib import ROOT, TESTCLUSTER, Cluster, deployment_manifest
from tests.integration.engine import (
    EventLog,
    collapse,
    hostname,
    pod_manifest,
    port_refuses,
    service_manifest,
    wait_for,
    wait_hostname,
    wait_status,
)
from tray.errors import UsageError
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster

#: Longest a forward may say "active" while its requests fail, when the API
#: server hangs rather than refuses (the 15 s stream-open timeout, + slack).
STALE_BOUND = 20.0
#: The same when the failure is a refusal (kubelet or pod gone): immediate.
REFUSED_BOUND = 3.0


# ------------------------------------------------------------------ helpers
@dataclass
class Sample:
    t0: float  # monotonic, when the request started
    t1: float  # when it ended
    ok: bool
    answer: str  # the pod's name, or the failure
    status: str  # the forward's status right after the request


class TruthMonitor:
    """A client requesting /hostname through a forward every ``interval`` s.

    ``status`` is read after each request, so a failed request followed by
    ``active`` means the forward claimed to work while it did not.
    """

    def __init__(self, port: Callable[[], int], status: Callable[[], str], *, interval: float = 0.5,
                 timeout: float = 4.0) -> None:
        self._port, self._status = port, status
        self.interval, self.timeout = interval, timeout
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="truth-monitor")

    def __enter__(self) -> "TruthMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                answer, ok = hostname(self._port(), timeout=self.timeout), True
            except (OSError, AssertionError, http.client.HTTPException) as exc:
                answer, ok = f"{type(exc).__name__}: {exc}", False
            t1 = time.monotonic()
            try:
                status = self._status()
            except Exception as exc:  # a removed session, say
                status = f"? {exc}"
            self.samples.append(Sample(t0, t1, ok, answer, status))
            self._stop.wait(max(0.0, self.interval - (t1 - t0)))

    def since(self, t: float) -> list[Sample]:
        return [s for s in self.samples if s.t0 >= t]

    def lies(self, bound: float) -> list[str]:
        """Stretches longer than ``bound`` s in which every request failed yet the status was active."""
        found, start = [], None
        for s in self.samples:
            if not s.ok and s.status == "active":
                start = s.t0 if start is None else start
                if s.t1 - start > bound:
                    found.append(f"active but failing for {s.t1 - start:.1f}s: {s.answer}")
                    start = None  # report each stretch once
            else:
                start = None
        return found

    def summary(self) -> str:
        """The samples, consecutive repeats collapsed: for failure messages and -s output."""
        out: list[str] = []
        last = None
        t_first = self.samples[0].t0 if self.samples else 0.0
        for s in self.samples:
            line = f"{'ok' if s.ok else 'FAIL'} {s.status}: {s.answer[:90]}"
            if line != last:
                out.append(f"{s.t0 - t_first:6.1f}s {line}")
            last = line
        return "\n".join(out)


def monitor(manager: ForwardManager, sid: str, **kw: float) -> TruthMonitor:
    return TruthMonitor(lambda: manager.get(sid).local_port, lambda: manager.get(sid).status, **kw)


def assert_truth_now(manager: ForwardManager, sid: str, bound: float = REFUSED_BOUND) -> str:
    """One check of the invariant: active → it answers (or stops saying active within
    ``bound``); error → a reason and a closed port.  Returns the status it settled on."""
    info = manager.get(sid)
    if info.status == "error":
        assert info.status_reason, "error without a reason"
        assert port_refuses(info.local_port), f"error, but :{info.local_port} still accepts connections"
        return "error"
    if info.status != "active":
        return info.status
    try:
        hostname(info.local_port, timeout=5)
        return "active"
    except (OSError, AssertionError, http.client.HTTPException) as exc:
        failed = f"{type(exc).__name__}: {exc}"
    deadline = time.monotonic() + bound
    while manager.get(sid).status == "active":
        assert time.monotonic() < deadline, f"still active {bound}s after a request failed ({failed})"
        time.sleep(0.05)
    return manager.get(sid).status


def settle(manager: ForwardManager, sid: str, timeout: float) -> str:
    """Wait until the forward is active and answering, or in error with a reason."""
    deadline = time.monotonic() + timeout
    while True:
        info = manager.get(sid)
        if info.status == "error":
            return assert_truth_now(manager, sid)
        if info.status == "active":
            try:
                # Answering, and by the pod it says it uses.
                if hostname(info.local_port, timeout=5) == manager.get(sid).pod_name:
                    return "active"
            except (OSError, AssertionError, http.client.HTTPException):
                pass
        assert time.monotonic() < deadline, \
            f"after {timeout:.0f}s neither answering nor in error: {info.status} ({info.status_reason!r})"
        time.sleep(0.2)


async def _engine_tasks() -> list[str]:
    me = asyncio.current_task()
    return sorted(t.get_name() + " " + repr(t.get_coro())[:80] for t in asyncio.all_tasks() if t is not me)


def assert_engine_empty(manager: ForwardManager, timeout: float = 15.0) -> None:
    """Stop every forward; then no watch and no task may remain on the engine loop."""
    for info in manager.list():
        manager.stop(info.id)
    wait_for(lambda: manager.watch_keys() == [], timeout, f"the watches to close: {manager.watch_keys()}")
    left: list[str] = []

    def no_tasks() -> bool:
        left[:] = manager.run(_engine_tasks())
        return not left

    try:
        wait_for(no_tasks, timeout, "the engine's tasks to end", interval=0.2)
    except AssertionError:
        raise AssertionError(f"tasks left on the engine loop: {left}") from None


def _kubectl_ok(c: Cluster, *args: str, context: str | None = None) -> subprocess.CompletedProcess[str] | None:
    """kubectl that may fail or hang (the control plane is coming back): None then."""
    try:
        out = c.kubectl(*args, check=False, timeout=10, context=context)
    except subprocess.TimeoutExpired:
        return None
    return out if out.returncode == 0 else None


def _readyz(c: Cluster, context: str | None = None) -> bool:
    return _kubectl_ok(c, "get", "--raw", "/readyz", context=context) is not None


def wait_cluster_healthy(c: Cluster, timeout: float = 90.0, context: str | None = None) -> None:
    wait_for(lambda: _readyz(c, context), timeout, f"{c.context}'s API server to be ready", interval=0.5)

    def nodes_ready() -> bool:
        out = _kubectl_ok(c, "get", "nodes", "-o", "json", context=context)
        if out is None:
            return False
        nodes = json.loads(out.stdout)["items"]
        return bool(nodes) and all(
            any(cond["type"] == "Ready" and cond["status"] == "True" for cond in n["status"].get("conditions", []))
            for n in nodes)

    wait_for(nodes_ready, timeout, f"{c.context}'s nodes to be Ready", interval=0.5)


@contextmanager
def component_down(c: Cluster, component: str) -> Iterator[None]:
    """Stop a component of cluster ``c``; it is started again however the block ends."""
    c.stop(component)
    try:
        yield
    finally:
        c.start(component)
        wait_cluster_healthy(c)


@pytest.fixture
def ns_b(two_clusters: tuple[Cluster, Cluster]) -> Iterator[str]:
    b = two_clusters[1]
    ns = b.new_namespace("fault")
    yield ns
    b.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _web(c: Cluster, ns: str, replicas: int = 1, **kw: object) -> list[str]:
    c.apply(deployment_manifest("web", replicas=replicas, **kw), ns)
    return c.wait_ready(ns, "app=web", replicas)


def _forward(manager: ForwardManager, c: Cluster, ns: str, kind: str = "Deployment", name: str = "web",
             context: str | None = None) -> tuple[str, int]:
    sid = manager.start(ForwardSpec(context or c.context, ns, Target(kind, name), 8080, local_port=0))
    info = wait_status(manager, sid, "active")
    assert hostname(info.local_port) == info.pod_name
    return sid, info.local_port


def _hold(manager: ForwardManager, sid: str, status: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = manager.get(sid)
        assert info.status == status, f"left {status} for {info.status} ({info.status_reason!r})"
        time.sleep(0.05)


# ------------------------------------------------------------------ control plane
def test_apiserver_stopped_then_started(two_clusters: tuple[Cluster, Cluster], ns_b: str, namespace: str,
                                        manager: ForwardManager, events: EventLog) -> None:
    """API server of cluster b stopped: its forwards (a Deployment and a bare Pod) go to error
    "cluster unreachable: …" and close their ports (the data plane runs through the API server,
    so nothing could answer); they stay there while it is down (a Retry then fails the same
    way).  Cluster a's forward is untouched throughout.  Once the API server is back, both come
    back to active on their own (they kept watching: forwards do not give up while their
    target may exist), answering on the same ports."""
    a, b = two_clusters
    _web(b, ns_b)
    b.apply(pod_manifest("solo"), ns_b)
    b.wait_ready(ns_b, "app=solo")
    _web(a, namespace)
    dep, dep_port = _forward(manager, b, ns_b)
    solo, solo_port = _forward(manager, b, ns_b, "Pod", "solo")
    other, other_port = _forward(manager, a, namespace)
    with monitor(manager, other) as watch_a, monitor(manager, dep) as watch_b:
        with component_down(b, "apiserver"):
            for sid in (dep, solo):
                info = wait_status(manager, sid, "error", timeout=20)
                assert info.status_reason.startswith("cluster unreachable"), info.status_reason
                assert info.recoverable, info
                assert_truth_now(manager, sid)
            _hold(manager, dep, "error", 2.0)
            manager.retry(dep)  # while still down: the same error, promptly
            info = wait_status(manager, dep, "error", timeout=25)
            assert info.status_reason.startswith("cluster unreachable"), info.status_reason
            assert_truth_now(manager, dep)
            assert hostname(other_port) == manager.get(other).pod_name
        for sid, port in ((dep, dep_port), (solo, solo_port)):
            info = wait_status(manager, sid, "active", timeout=30, allow_error=True)  # no Retry
            assert info.local_port == port, info
            assert settle(manager, sid, 10) == "active"
    assert watch_a.lies(REFUSED_BOUND) == [] and watch_b.lies(REFUSED_BOUND) == [], \
        watch_a.summary() + "\n---\n" + watch_b.summary()
    assert all(s.ok for s in watch_a.samples), watch_a.summary()
    # The outage may be seen first by the health check ("cluster not answering": reconnecting)
    # or by the watch ("cluster unreachable": error); once in error, no flapping.
    seen = events.statuses(dep)
    assert "reconnecting" not in seen[seen.index("error"):], seen
    assert events.statuses(other) == ["active"]
    assert_engine_empty(manager)


def test_kubelet_stopped_then_started(two_clusters: tuple[Cluster, Cluster], ns_b: str,
                                      manager: ForwardManager, events: EventLog) -> None:
    """The kubelet serves port-forward: with it stopped, new connections fail (the API server
    cannot dial it, and the tunnel it held ends under the first connection that tries it), and
    the forward must not stay active: the first failed request puts it in reconnecting (the
    backoff probes it).  The kubelet back within the backoff → active again, on the same pod
    (the kubelet adopts its pods), answering; never error."""
    b = two_clusters[1]
    pod = _web(b, ns_b)[0]
    sid, port = _forward(manager, b, ns_b)
    with monitor(manager, sid) as truth:
        with component_down(b, "kubelet"):
            t_down = time.monotonic()
            info = wait_for(lambda: manager.get(sid).status == "reconnecting" and manager.get(sid), 10,
                            "the forward to leave active after its requests fail")
            assert re.search(f"cannot reach pod {pod}|connection to pod {pod} lost", info.status_reason), \
                info.status_reason
            time.sleep(2)  # a few failing requests, a probe or two
            assert manager.get(sid).status == "reconnecting"
        info = wait_status(manager, sid, "active", timeout=30)
        assert info.pod_name == pod
        assert settle(manager, sid, 10) == "active"
        wait_hostname(port, pod, timeout=10)
    assert any(not s.ok for s in truth.since(t_down)), "no request failed while the kubelet was down?\n" + \
        truth.summary()
    assert truth.lies(REFUSED_BOUND) == [], truth.summary()
    assert collapse(events.statuses(sid)) == ["active", "reconnecting", "active"], events.statuses(sid)
    assert_engine_empty(manager)


def test_kubelet_down_longer_than_backoff_is_an_error(two_clusters: tuple[Cluster, Cluster], ns_b: str,
                                                      manager: ForwardManager, fast_backoff: None) -> None:
    """The kubelet stays down past the 5 attempts (delays shortened by fast_backoff): error,
    naming the pod it could not reach, port closed; after the kubelet is back, Retry → active."""
    b = two_clusters[1]
    pod = _web(b, ns_b)[0]
    sid, port = _forward(manager, b, ns_b)
    with monitor(manager, sid) as truth:
        with component_down(b, "kubelet"):
            info = wait_status(manager, sid, "error", timeout=30)
            assert "gave up after 5 attempts" in info.status_reason, info.status_reason
            assert f"cannot reach pod {pod}" in info.status_reason, info.status_reason
            assert_truth_now(manager, sid)
            _hold(manager, sid, "error", 1.0)
        manager.retry(sid)
        info = wait_status(manager, sid, "active", timeout=30)
        assert settle(manager, sid, 10) == "active"
        assert hostname(info.local_port) == pod
    assert truth.lies(REFUSED_BOUND) == [], truth.summary()
    assert_engine_empty(manager)


def test_etcd_stopped_then_started(two_clusters: tuple[Cluster, Cluster], ns_b: str,
                                   manager: ForwardManager, events: EventLog) -> None:
    """etcd stopped for ~20 s (short of the 40 s after which the node controller would mark the
    nodes, and so the pods, unready), under a forward in use.  The API server stays up but can
    read nothing, so opening a port-forward would hang; but the forward's tunnel to the pod is
    already open and a connection through it asks the API server for nothing: every request
    answers and the forward is, truthfully, active throughout.  The watch stays open (no
    events, no error).  etcd back: still active, answering."""
    b = two_clusters[1]
    pod = _web(b, ns_b)[0]
    sid, port = _forward(manager, b, ns_b)
    with monitor(manager, sid, timeout=4.0) as truth:
        with component_down(b, "etcd"):
            time.sleep(20)
        end = settle(manager, sid, 90)
        if end == "active":
            wait_hostname(port, pod, timeout=10)
    print(truth.summary())
    assert truth.lies(STALE_BOUND) == [], truth.summary()
    # The tunnel to the pod was open before etcd stopped, and a new connection
    # through it needs nothing from etcd: the forward answers throughout and
    # rightly never leaves active (kubectl's session behaves the same).
    assert all(s.ok for s in truth.samples), "a request failed with the tunnel open\n" + truth.summary()
    assert collapse(events.statuses(sid)) == ["active"], events.statuses(sid)
    assert end == "active"
    assert_engine_empty(manager)


# ------------------------------------------------------------------ pods and targets
def test_pod_force_deleted_deployment_moves(cluster: Cluster, namespace: str, manager: ForwardManager,
                                            events: EventLog) -> None:
    """kubectl delete pod --grace-period=0 --force: the pod stops at once; the Deployment's
    forward moves to the replacement and answers with its name; never error."""
    old = _web(cluster, namespace)[0]
    sid, port = _forward(manager, cluster, namespace)
    with monitor(manager, sid) as truth:
        cluster.kubectl("delete", "pod", old, "-n", namespace, "--grace-period=0", "--force")
        info = wait_for(lambda: (i := manager.get(sid)).status == "active" and i.pod_name != old and i, 30,
                        "the forward to move to the new pod")
        assert settle(manager, sid, 10) == "active"
        assert hostname(port) == info.pod_name
        assert info.pod_name in cluster.ready_pods(namespace, "app=web")
    assert truth.lies(REFUSED_BOUND) == [], truth.summary()
    assert "error" not in events.statuses(sid)
    assert_engine_empty(manager)


def test_drop_connections_under_load(cluster: Cluster, namespace: str, manager: ForwardManager,
                                     events: EventLog) -> None:
    """The drop-connections hook, three times, with open keep-alive connections and a client
    making new ones (so spare streams exist): the open ones die, the forward ends active on
    the same pod and answers; no error; never active while failing."""
    pod = _web(cluster, namespace)[0]
    sid, port = _forward(manager, cluster, namespace)
    with monitor(manager, sid, interval=0.1) as truth:
        for _ in range(3):
            socks = [_keepalive(port) for _ in range(3)]
            cluster.drop_connections(pod, namespace)
            for s in socks:
                s.settimeout(10)
                try:
                    assert s.recv(1) == b"", "an open connection survived the drop"
                except ConnectionResetError:
                    pass
                s.close()
            wait_status(manager, sid, "active", timeout=20)
            assert settle(manager, sid, 10) == "active"
            assert manager.get(sid).pod_name == pod
    assert truth.lies(REFUSED_BOUND) == [], truth.summary()
    assert "error" not in events.statuses(sid)
    assert_engine_empty(manager)


def test_drop_connections_ends_every_open_connection_at_once(cluster: Cluster, namespace: str,
                                                            manager: ForwardManager) -> None:
    """The drop-connections hook under six idle keep-alive connections and nothing else: each one
    ends (EOF or reset) within 2 s.  The kubelet reports the cut on some streams only; the API
    server keeps the WebSocket open until the client writes, so the others would wait for the
    tunnel's next keep-alive PING (5 s of silence, then up to 10 s for its answer): a browser's
    pooled connections hang.  Five rounds, since which streams hear of the cut varies."""
    pod = _web(cluster, namespace)[0]
    sid, port = _forward(manager, cluster, namespace)
    for round_ in range(5):
        socks = [_keepalive(port) for _ in range(6)]
        cluster.drop_connections(pod, namespace)
        t0 = time.monotonic()
        for i, s in enumerate(socks):
            s.settimeout(max(0.1, t0 + 8 - time.monotonic()))
            try:
                assert s.recv(1) == b"", "an open connection survived the drop"
            except ConnectionResetError:
                pass
            except TimeoutError:
                raise AssertionError(f"round {round_}: connection {i} still open 8 s after the drop") from None
            finally:
                s.close()
        took = time.monotonic() - t0
        # The annotation reaches the kubelet through its watch: allow for that.
        assert took < 2.0, f"round {round_}: the open connections took {took:.1f}s to end"
        wait_status(manager, sid, "active", timeout=20)
        assert settle(manager, sid, 10) == "active"
    assert_engine_empty(manager)


def _keepalive(port: int):
    import socket

    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, "closed before the response"
        data += chunk
    return s


def test_scaled_to_zero_gives_up_after_the_backoff(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                   events: EventLog) -> None:
    """Scaled to 0 and left there: reconnecting ("no ready pod"), the real backoff 1+2+4+8+16 s,
    then error after 5 attempts (~31 s), port closed, and it stays in error while no pod is
    ready (still watching the Deployment: `recoverable`)."""
    _web(cluster, namespace)
    sid, port = _forward(manager, cluster, namespace)
    with monitor(manager, sid) as truth:
        cluster.kubectl("scale", "deploy/web", "--replicas=0", "-n", namespace)
        wait_status(manager, sid, "reconnecting", timeout=10)
        t0 = time.monotonic()
        info = wait_status(manager, sid, "error", timeout=60)
        took = time.monotonic() - t0
        first_error = next(e.session for e in events.status_events(sid) if e.status == "error")
        assert first_error.attempts == 5, first_error
        assert info.recoverable, info
        assert "gave up after 5 attempts" in info.status_reason, info.status_reason
        assert 29.0 <= took <= 40.0, f"error after {took:.1f}s; the backoff is 1+2+4+8+16 = 31 s"
        assert_truth_now(manager, sid)
        _hold(manager, sid, "error", 2.0)
    assert truth.lies(REFUSED_BOUND) == [], truth.summary()
    assert collapse(events.statuses(sid)) == ["active", "reconnecting", "error"]
    assert_engine_empty(manager)


def test_scaled_to_zero_and_back_within_the_backoff(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                    events: EventLog) -> None:
    """Scaled to 0, and back to 1 about 5 s later: reconnecting, then active on the new pod
    (woken by the watch, not by the next backoff attempt), answering with its name."""
    old = _web(cluster, namespace)[0]
    sid, port = _forward(manager, cluster, namespace)
    with monitor(manager, sid) as truth:
        cluster.kubectl("scale", "deploy/web", "--replicas=0", "-n", namespace)
        wait_status(manager, sid, "reconnecting", timeout=10)
        time.sleep(5)
        assert manager.get(sid).status == "reconnecting"
        cluster.kubectl("scale", "deploy/web", "--replicas=1", "-n", namespace)
        new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 30,
                       "the new pod")[0]
        info = wait_status(manager, sid, "active", timeout=10)
        assert info.pod_name == new
        assert settle(manager, sid, 10) == "active"
        assert hostname(port) == new
    assert truth.lies(REFUSED_BOUND) == [], truth.summary()
    assert collapse(events.statuses(sid)) == ["active", "reconnecting", "active"]
    assert_engine_empty(manager)


def test_service_deleted_is_an_error(cluster: Cluster, namespace: str, manager: ForwardManager,
                                     events: EventLog) -> None:
    """The Service deleted while its pods live on: error "svc/web was deleted" (a forward to a
    Service does not silently keep using pods the Service no longer selects), port closed."""
    _web(cluster, namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Service", "web"), 80, local_port=0))
    wait_status(manager, sid, "active")
    cluster.kubectl("delete", "service", "web", "-n", namespace)
    info = wait_status(manager, sid, "error", timeout=15)
    assert "svc/web" in info.status_reason and "deleted" in info.status_reason, info.status_reason
    assert_truth_now(manager, sid)
    assert "reconnecting" not in events.statuses(sid)
    assert_engine_empty(manager)


def test_namespace_deleted_is_an_error(cluster: Cluster, manager: ForwardManager) -> None:
    """The namespace deleted under a Deployment, a Service and a bare Pod forward: each ends in
    error with a reason naming its target, port closed; no watch left once they are stopped."""
    ns = cluster.new_namespace("doomed")
    try:
        _web(cluster, ns)
        cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), ns)
        cluster.apply(pod_manifest("solo"), ns)
        cluster.wait_ready(ns, "app=solo")
        ids = {"deploy/web": _forward(manager, cluster, ns)[0],
               "svc/web": manager.start(ForwardSpec(cluster.context, ns, Target("Service", "web"), 80, local_port=0)),
               "pod/solo": _forward(manager, cluster, ns, "Pod", "solo")[0]}
        wait_status(manager, ids["svc/web"], "active")
        cluster.kubectl("delete", "namespace", ns, "--wait=false")
        for target, sid in ids.items():
            info = wait_status(manager, sid, "error", timeout=60)
            assert target.split("/")[1] in info.status_reason, (target, info.status_reason)
            assert_truth_now(manager, sid)
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    assert_engine_empty(manager)


# ------------------------------------------------------------------ kubeconfig and credentials
def _private_kubeconfig(c: Cluster, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    shutil.copy(c.kubeconfig, path)
    return path


def _edit_kubeconfig(path: Path, fn: Callable[[dict], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc))
    os.replace(tmp, path)  # as editors and kubectl config do: never half a file


def _set_token(path: Path, user: str, token: str) -> None:
    def edit(doc: dict) -> None:
        for u in doc["users"]:
            if u["name"] == user:
                u["user"]["token"] = token
    _edit_kubeconfig(path, edit)


def test_kubeconfig_context_removed(two_clusters: tuple[Cluster, Cluster], namespace: str, ns_b: str,
                                   tmp_path: Path) -> None:
    """Contexts removed from the kubeconfig while forwards run on them: tender-b, and
    tender-a, which is also the file's current-context (left dangling).

    Decision: running forwards keep going (they hold their loaded credentials; the user
    stops them), so both stay active and answering.  New starts on a removed context fail at
    once with a UsageError naming it (engine and CLI alike); a dangling current-context does
    not make the other contexts unusable (as with kubectl)."""
    a, b = two_clusters
    path = _private_kubeconfig(a, tmp_path)
    manager = ForwardManager(str(path))
    try:
        _web(a, namespace)
        _web(b, ns_b)
        fa, port_a = _forward(manager, a, namespace)
        fb, port_b = _forward(manager, b, ns_b)
        for removed in (b.context, a.context):
            _edit_kubeconfig(path, lambda doc: doc.__setitem__(
                "contexts", [c for c in doc["contexts"] if c["name"] != removed]))
            time.sleep(1)
            for sid, port in ((fa, port_a), (fb, port_b)):
                assert manager.get(sid).status == "active"
                assert hostname(port) == manager.get(sid).pod_name
            with pytest.raises(UsageError, match=f'context "{removed}" not found'):
                manager.start(ForwardSpec(removed, namespace, Target("Deployment", "web"), 8080, local_port=0))
            assert sorted(s.id for s in manager.list()) == sorted([fa, fb])
            cli = subprocess.run([sys.executable, "-m", "tray", "forward", "--kubeconfig", str(path), "--context",
                                  removed, "-n", namespace, "deploy/web", ":8080"],
                                 capture_output=True, text=True, timeout=30, cwd=ROOT)
            assert cli.returncode == 2 and f'context "{removed}" not found' in cli.stderr, cli
            assert len(cli.stderr.strip().splitlines()) == 1, cli.stderr
        # Another context of cluster a still works, current-context dangling or not.
        other = manager.start(ForwardSpec(f"{a.context}-cert", namespace, Target("Deployment", "web"), 8080, local_port=0))
        assert settle(manager, other, 15) == "active"
        assert_engine_empty(manager)
    finally:
        manager.shutdown()


def test_kubeconfig_credentials_changed(two_clusters: tuple[Cluster, Cluster], ns_b: str, tmp_path: Path) -> None:
    """The token of the forward's user edited in the kubeconfig, over and over.

    * The viewer's token (authenticated, may not create pods/portforward): the start is refused,
      naming the user and the permission (403).  The admin token put back and reloaded
      (``preflight``, as every ``tender forward``/``tender run`` does when it starts): Retry →
      active, answering (a refusal is not remembered past a credential change).
    * The file changed again without a reload: the forward keeps its loaded, still valid token
      and keeps answering — the truth.  (Credentials are reloaded on a 401, and by preflight.)
    * A token the server rejects, reloaded: the next connection fails and the forward goes to
      error naming 401 at once — no 31 s of reconnecting, no retry loop; a Retry fails the same
      way within seconds (not after the 20 s sync timeout, blaming the network).
    * The viewer's token reloaded: Retry is refused at start (403), never shown active.
    * The admin token reloaded: Retry → active, answering."""
    b = two_clusters[1]
    path = _private_kubeconfig(b, tmp_path)
    user = f"{b.context}-admin"
    manager = ForwardManager(str(path))
    events = EventLog()
    manager.subscribe(events)
    try:
        pod = _web(b, ns_b)[0]
        _set_token(path, user, b.state["viewer_token"])
        sid = manager.start(ForwardSpec(b.context, ns_b, Target("Deployment", "web"), 8080, local_port=0))
        _wait_forbidden(manager, sid)

        _set_token(path, user, b.admin_token)
        manager.preflight(b.context)
        manager.retry(sid)
        port = wait_status(manager, sid, "active", timeout=15).local_port
        assert settle(manager, sid, 10) == "active"

        _set_token(path, user, b.state["viewer_token"])
        time.sleep(1)
        assert hostname(port) == pod and manager.get(sid).status == "active"

        _set_token(path, user, "not-a-valid-token-0123456789")
        manager.preflight(b.context)
        mark = events.mark()
        _use_until_error(manager, sid, port)
        info = wait_status(manager, sid, "error", timeout=10)
        assert "401" in info.status_reason and "Unauthorized" in info.status_reason, info.status_reason
        assert_truth_now(manager, sid)
        assert [e.status for e in events.since(mark, sid)] == ["error"]
        t0 = time.monotonic()
        manager.retry(sid)
        info = wait_status(manager, sid, "error", timeout=15)
        assert time.monotonic() - t0 < 10, "a 401 at start must not wait for the 20 s sync timeout"
        assert "401" in info.status_reason, info.status_reason
        _hold(manager, sid, "error", 2.0)

        _set_token(path, user, b.state["viewer_token"])
        manager.preflight(b.context)
        mark = events.mark()
        manager.retry(sid)
        _wait_forbidden(manager, sid)
        assert "active" not in [e.status for e in events.since(mark, sid)]

        _set_token(path, user, b.admin_token)
        manager.preflight(b.context)
        manager.retry(sid)
        wait_status(manager, sid, "active", timeout=15)
        assert settle(manager, sid, 10) == "active"
        assert "reconnecting" not in events.statuses(sid)
        assert_engine_empty(manager)
    finally:
        manager.shutdown()


def test_retry_uses_the_kubeconfig_as_it_is_now(two_clusters: tuple[Cluster, Cluster], ns_b: str,
                                                 tmp_path: Path) -> None:
    """Refused (the viewer's token); the user breaks the kubeconfig while editing it and presses
    Retry: error naming the file, the forward not started; then fixes the token and presses
    Retry, with nothing else reloading the file: active and answering."""
    b = two_clusters[1]
    path = _private_kubeconfig(b, tmp_path)
    user = f"{b.context}-admin"
    manager = ForwardManager(str(path))
    try:
        pod = _web(b, ns_b)[0]
        _set_token(path, user, b.state["viewer_token"])
        sid = manager.start(ForwardSpec(b.context, ns_b, Target("Deployment", "web"), 8080, local_port=0))
        _wait_forbidden(manager, sid)

        good = path.read_text()
        path.write_text("apiVersion: v1\nkind: Config\ncontexts: [\n")  # broken YAML
        manager.retry(sid)
        wait_for(lambda: str(path) in manager.get(sid).status_reason, 15, "Retry to name the broken file")
        assert manager.get(sid).status == "error" and port_refuses(manager.get(sid).local_port or 1)

        path.write_text(good)
        _set_token(path, user, b.admin_token)
        manager.retry(sid)
        port = wait_status(manager, sid, "active", timeout=15).local_port
        assert hostname(port) == pod
    finally:
        manager.shutdown()


def _wait_forbidden(manager: ForwardManager, sid: str) -> None:
    info = wait_status(manager, sid, "error", timeout=15)
    assert '"viewer"' in info.status_reason and "pods/portforward" in info.status_reason, info.status_reason
    assert_truth_now(manager, sid)


def _use_until_error(manager: ForwardManager, sid: str, port: int) -> None:
    """Make requests until the forward fails.  Spare streams opened with the old credentials
    (up to 4) still work and are used first: that is the truth, not a lie."""
    for _ in range(12):
        if manager.get(sid).status == "error":
            return
        try:
            hostname(port)
        except (OSError, AssertionError, http.client.HTTPException):
            pass
        time.sleep(0.1)


def test_credentials_refused_while_reconnecting(two_clusters: tuple[Cluster, Cluster], ns_b: str,
                                                tmp_path: Path) -> None:
    """The kubelet down (the forward reconnecting, probing on its backoff) and meanwhile the
    kubeconfig's token replaced by one the server rejects, and reloaded: the next probe is
    refused with 401, and the forward goes to error naming it at once, instead of spending
    the rest of its 5 attempts and then blaming the pod."""
    b = two_clusters[1]
    path = _private_kubeconfig(b, tmp_path)
    manager = ForwardManager(str(path))
    try:
        _web(b, ns_b)
        sid, port = _forward(manager, b, ns_b)
        with component_down(b, "kubelet"):
            _use_until_reconnecting(manager, sid, port)
            _set_token(path, f"{b.context}-admin", "not-a-valid-token-0123456789")
            manager.preflight(b.context)
            info = wait_status(manager, sid, "error", timeout=20)  # the next probe: within 1+2+4 s
            assert "401" in info.status_reason and "gave up" not in info.status_reason, info.status_reason
            assert info.attempts < 5, info
            assert_truth_now(manager, sid)
            _hold(manager, sid, "error", 2.0)
        assert_engine_empty(manager)
    finally:
        manager.shutdown()


def _use_until_reconnecting(manager: ForwardManager, sid: str, port: int) -> None:
    for _ in range(20):
        if manager.get(sid).status == "reconnecting":
            return
        try:
            hostname(port, timeout=3)
        except (OSError, AssertionError, http.client.HTTPException):
            pass
        time.sleep(0.1)
    raise AssertionError(f"still {manager.get(sid).status} after 20 failed requests")


def _tokens_without(tokens: str, token: str) -> str:
    kept = [line for line in tokens.splitlines() if not line.startswith(token + ",")]
    assert len(kept) == len(tokens.splitlines()) - 1, "the admin token is not in tokens.csv"
    return "\n".join(kept) + "\n"


def _start_apiserver_without_admin_token(c: Cluster) -> None:
    """`testcluster start` waits for /readyz with the admin token, which is now refused: run it
    without waiting for it (it starts the API server, records its pid, then polls in vain) and
    check readiness with the cluster's client certificate instead."""
    proc = subprocess.Popen([str(TESTCLUSTER), "start", "--dir", str(c.dir), "--cluster", c.letter,
                             "--component", "apiserver"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _readyz(c, f"{c.context}-cert"), 60, "the API server to serve again", interval=0.5)
    finally:
        proc.kill()  # only the waiting `testcluster start`; the API server runs in its own session
        proc.wait(10)


def test_token_revoked(two_clusters: tuple[Cluster, Cluster], ns_b: str, manager: ForwardManager,
                       events: EventLog) -> None:
    """The admin token removed from cluster b's tokens.csv and its API server restarted (the
    only way to revoke a static token).  During the restart the forward is in error "cluster
    unreachable"; once the server is back, the token is refused: a Retry (and a new start)
    ends in error naming 401 Unauthorized within seconds, and stays there (no retry loop,
    attempts 0).  tokens.csv is restored and the API server restarted in a finally."""
    b = two_clusters[1]
    _web(b, ns_b)
    sid, port = _forward(manager, b, ns_b)
    tokens = b.dir / b.letter / "pki" / "tokens.csv"
    original = tokens.read_text()
    try:
        tokens.write_text(_tokens_without(original, b.admin_token))
        b.stop("apiserver")
        _start_apiserver_without_admin_token(b)
        info = wait_status(manager, sid, "error", timeout=30)
        assert_truth_now(manager, sid)
        if "401" not in info.status_reason:  # it saw the restart first: retry to meet the 401
            assert info.status_reason.startswith("cluster unreachable"), info.status_reason
            manager.retry(sid)
            t0 = time.monotonic()
            info = wait_status(manager, sid, "error", timeout=15)
            assert time.monotonic() - t0 < 10
        assert "401" in info.status_reason and "Unauthorized" in info.status_reason, info.status_reason
        assert info.attempts == 0
        assert_truth_now(manager, sid)
        _hold(manager, sid, "error", 3.0)
        fresh = manager.start(ForwardSpec(b.context, ns_b, Target("Deployment", "web"), 8080, local_port=0))
        info = wait_status(manager, fresh, "error", timeout=15)
        assert "401" in info.status_reason, info.status_reason
        assert "reconnecting" not in events.statuses(sid) + events.statuses(fresh)
    finally:
        tokens.write_text(original)
        b.stop("apiserver")
        b.start("apiserver")
        # The controller manager, scheduler and kubelet use the admin token too: after a
        # stretch of 401s their informers back off for tens of seconds (a new namespace then
        # gets no ServiceAccount for a while).  Restarted, they are at once as before.
        for component in ("controller-manager", "scheduler", "kubelet"):
            b.stop(component)
            b.start(component)
        wait_cluster_healthy(b)
    manager.retry(sid)
    wait_status(manager, sid, "active", timeout=30)
    assert settle(manager, sid, 10) == "active"
    assert_engine_empty(manager)


# ------------------------------------------------------------------ the process stopped (laptop sleep)
class CliForward:
    """``python -m tray forward … -o json`` as a subprocess, its events read as they come."""

    def __init__(self, c: Cluster, namespace: str, target: str, ports: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tray", "forward", "--kubeconfig", c.kubeconfig, "--context", c.context,
             "-n", namespace, *extra, target, ports, "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.events: list[dict] = []
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True)]
        for t in self._threads:
            t.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def last(self) -> dict:
        status = [e for e in self.events if e["event"] == "status"]
        return status[-1] if status else {"status": "none", "local_port": 0, "pod_name": ""}

    def status(self) -> str:
        return self.last()["status"]

    def wait(self, *statuses: str, timeout: float = 30) -> dict:
        wait_for(lambda: self.status() in statuses, timeout,
                 f"status {statuses}; events: {[e.get('status') for e in self.events]}; {''.join(self.stderr)[-2000:]}")
        return self.last()

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("tender did not exit within 20 s of SIGINT") from None
        return self.proc.returncode


def test_process_stopped_for_90s(cluster: Cluster, namespace: str) -> None:
    """`tender forward` stopped with SIGSTOP for 90 s (as a laptop sleeps) while its pod is
    deleted and replaced; within 5 s of SIGCONT the forward is active on the new pod and
    answers — never active while not answering — and it still exits cleanly on SIGINT."""
    old = _web(cluster, namespace)[0]
    cli = CliForward(cluster, namespace, "deploy/web", ":8080")
    try:
        info = cli.wait("active")
        port = info["local_port"]
        assert hostname(port) == old
        for _ in range(20):  # busy: spare streams are open when it stops
            hostname(port)
        os.kill(cli.proc.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        try:
            cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
            new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 30,
                           "the replacement pod")[0]
            time.sleep(max(0.0, 90 - (time.monotonic() - t_stop)))
        finally:
            os.kill(cli.proc.pid, signal.SIGCONT)
        t_cont = time.monotonic()
        truth = TruthMonitor(lambda: port, cli.status, interval=0.25)
        with truth:
            wait_hostname(port, new, timeout=5)
            wait_for(lambda: cli.status() == "active" and cli.last()["pod_name"] == new,
                     max(0.1, 5 - (time.monotonic() - t_cont)), f"the status to say active on {new}: {cli.last()}")
            settled = time.monotonic() - t_cont
            time.sleep(3)
        print(f"settled {settled:.1f}s after SIGCONT: {cli.last()['status']} on {cli.last()['pod_name']}")
        print(truth.summary())
        assert settled <= 5.0
        assert truth.lies(REFUSED_BOUND) == [], truth.summary()
        assert cli.status() == "active"
        assert all(s.ok for s in truth.since(t_cont + settled)), truth.summary()
    finally:
        rc = cli.stop()
    assert rc == 0, "".join(cli.stderr)[-2000:]
