"""A cluster on plain data for :class:`tray.engine.session.Session`'s unit tests.

* :class:`FakeCache` / :class:`FakeCaches`: the watched objects of one
  namespace, dicts shaped like the API's (``pod()``, ``deployment()``,
  ``service()``, ``job()`` make them).  A test changes them and the session
  hears it as from a watch: :meth:`FakeCache.put`, :meth:`FakeCache.delete`,
  :meth:`FakeCache.go_stale` (the API server not answering),
  :meth:`FakeCache.fail` (a cache error such as unreachable).
* :class:`FakeDialer`: the path to the pods.  Each accepted local connection
  gets a :class:`FakeLink` that answers ``<pod>:<what it read>`` and closes;
  a test makes a pod unreachable (:attr:`FakeDialer.unreachable`), has the
  next dials or probes raise (:attr:`FakeDialer.connect_error`,
  :attr:`FakeDialer.check_error`), the next connection drop
  (:attr:`FakeDialer.drop_next`) or the tunnel in use die without knowing it
  (:attr:`FakeDialer.half_open`: cut before any answer until it is retired).
* :class:`Forward`: a started session on these fakes, listening on
  127.0.0.1, with helpers that wait (in milliseconds) for what a user sees.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tray.domain.status import Status
from tray.domain.targets import Target
from tray.engine.session import Session, SessionInfo
from tray.errors import TenderError

NS = "shop"
LONG_AGO = "2026-01-01T00:00:00Z"


# ---------------------------------------------------------------- objects
def pod(name: str, *, labels: dict[str, str] | None = None, ready: bool = True, phase: str = "Running",
        ports: tuple[tuple[int, str], ...] = ((8080, "http"),), uid: str | None = None,
        ready_since: str = LONG_AGO, terminating: bool = False) -> dict[str, Any]:
    """A pod as the API returns it: Running and Ready by default, declaring 8080 "http"."""
    meta: dict[str, Any] = {"name": name, "namespace": NS, "uid": uid or f"uid-{name}",
                            "labels": dict(labels if labels is not None else {"app": "web"}),
                            "creationTimestamp": LONG_AGO}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "app", "ports": [{"containerPort": n, "name": pname, "protocol": "TCP"}
                                      for n, pname in ports]}]},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_since}]},
    }


def deployment(name: str = "web", *, labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = labels or {"app": "web"}
    return {"metadata": {"name": name, "namespace": NS, "uid": f"uid-deploy-{name}"},
            "spec": {"selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)},
                                  "spec": {"containers": [{"name": "app", "ports": [
                                      {"containerPort": 8080, "name": "http", "protocol": "TCP"}]}]}}}}


def service(name: str = "web", *, port: int = 80, target_port: int | str = "http") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "uid": f"uid-svc-{name}"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "web", "port": port, "targetPort": target_port, "protocol": "TCP"}]}}


def job(name: str = "batch", *, finished: bool = False) -> dict[str, Any]:
    obj = deployment(name)
    obj["status"] = {"conditions": [{"type": "Complete", "status": "True"}] if finished else []}
    return obj


# ---------------------------------------------------------------- caches
class FakeCache:
    """One resource's objects in the namespace, shaped like :class:`tray.kube.watches.ResourceCache`."""

    def __init__(self, plural: str) -> None:
        self.plural = plural
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.synced.set()
        self.error: TenderError | None = None
        self.stale = False
        self.stale_reason = ""
        self.degraded = ""
        self.list_forbidden: Any = None
        self.wanted: dict[str, int] = {}
        self.resyncs: list[str] = []
        self._listeners: list[Callable[[Any], None]] = []

    # what the session calls
    def subscribe(self, fn: Callable[[Any], None]) -> None:
        self._listeners.append(fn)

    def unsubscribe(self, fn: Callable[[Any], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def want(self, name: str) -> None:
        self.wanted[name] = self.wanted.get(name, 0) + 1

    def unwant(self, name: str) -> None:
        self.wanted[name] -= 1

    def resync(self, reason: str = "", *, mark_stale: bool = True) -> None:
        self.resyncs.append(reason)
        if mark_stale:
            self.go_stale(reason or f"listing {self.plural} again")

    async def wait_synced(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error

    # what a test calls: each is a watch event
    @property
    def subscribers(self) -> int:
        return len(self._listeners)

    def notify(self) -> None:
        for fn in list(self._listeners):
            fn(self)

    def put(self, obj: dict[str, Any]) -> None:
        self.objects[obj["metadata"]["name"]] = obj
        self.notify()

    def delete(self, name: str) -> None:
        del self.objects[name]
        self.notify()

    def go_stale(self, reason: str) -> None:
        self.stale, self.stale_reason = True, reason
        self.notify()

    def fresh(self) -> None:
        self.stale, self.stale_reason = False, ""
        self.notify()

    def fail(self, error: TenderError | None) -> None:
        self.error = error
        self.notify()


class FakeCaches:
    """Where the session acquires its caches (a :class:`tray.kube.watches.WatchRegistry` stand-in)."""

    def __init__(self) -> None:
        self.by_plural: dict[str, FakeCache] = {}
        self.refs: dict[str, int] = {}

    def __getitem__(self, plural: str) -> FakeCache:
        if plural not in self.by_plural:
            self.by_plural[plural] = FakeCache(plural)
        return self.by_plural[plural]

    def acquire(self, cluster: str, api: Any, prefix: str, namespace: str, plural: str) -> FakeCache:
        assert namespace == NS
        self.refs[plural] = self.refs.get(plural, 0) + 1
        return self[plural]

    async def release(self, cluster: str, cache: FakeCache) -> None:
        self.refs[cache.plural] -= 1

    def held(self) -> int:
        return sum(self.refs.values())


# ---------------------------------------------------------------- the path to the pods
@dataclass
class Result:
    """What :meth:`FakeLink.pump` returns, shaped like :class:`tray.engine.v4.StreamResult`."""

    error: str = ""
    dropped: bool = False


class FakeLink:
    """One connection's path: answers ``<pod>:<what it read>`` (counted in the forward's traffic);
    ``silent``: cut before answering; ``error``: fails with the kubelet's ``error`` text."""

    def __init__(self, pod: str, drop: bool, *, silent: bool = False, error: str = "") -> None:
        self.pod, self.drop, self.silent, self.error = pod, drop, silent, error

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, traffic: Any = None) -> Result:
        data = await reader.read(100)
        if self.silent:  # a dead tunnel: the client gets nothing, the connection is cut
            writer.close()
            return Result(dropped=True)
        if self.error:  # the kubelet's error, e.g. nothing listens on the port in the pod
            writer.close()
            return Result(error=self.error)
        answer = f"{self.pod}:".encode() + data
        if traffic is not None:
            traffic.bytes_out += len(data)
            traffic.bytes_in += len(answer)
        writer.write(answer)
        await writer.drain()
        writer.close()
        return Result(dropped=self.drop)


@dataclass
class FakeDialer:
    """The session's :class:`tray.engine.reconnect.PodDialer`, scripted by the test."""

    #: Pods whose path fails (dials and probes raise "dial tcp: i/o timeout").
    unreachable: set[str] = field(default_factory=set)
    #: Raised by every dial / probe while set.
    connect_error: TenderError | None = None
    check_error: TenderError | None = None
    #: The next connection drops under its link (a network drop).
    drop_next: bool = False
    #: The tunnel in use is dead without knowing it (half-open: an outage, or its pod was
    #: replaced): every connection over it is cut before any answer, until the tunnel is
    #: retired (:meth:`pod_changed`, :meth:`close`, or a dropped connection's
    #: :meth:`connection_failed`); the next connection then opens a fresh one.
    half_open: bool = False
    #: The kubelet's text for every connection while set (the pod refuses them).
    refused: str = ""
    dials: list[tuple[str, int]] = field(default_factory=list)
    checks: list[tuple[str, int]] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)
    pod_changes: int = 0
    closes: int = 0
    #: What each :meth:`retain` kept (a balanced forward: names to uids).
    retained: list[dict[str, Any]] = field(default_factory=list)

    async def connect(self, pod: str, port: int) -> FakeLink:
        self.dials.append((pod, port))
        if self.connect_error is not None:
            raise self.connect_error
        if pod in self.unreachable:
            raise TenderError("dial tcp: i/o timeout")
        if self.half_open:
            return FakeLink(pod, True, silent=True)
        drop, self.drop_next = self.drop_next, False
        return FakeLink(pod, drop, error=self.refused)

    async def check(self, pod: str, port: int) -> None:
        self.checks.append((pod, port))
        if self.check_error is not None:
            raise self.check_error
        if pod in self.unreachable:
            raise TenderError("dial tcp: i/o timeout")

    def connection_failed(self, *, dropped: bool, pod: str = "") -> None:
        self.failed.append(dropped)
        if dropped:
            self.half_open = False  # the real dialer retires the tunnel on a drop

    def retain(self, pods: Any) -> None:
        self.retained.append(dict(pods))

    def pod_changed(self) -> None:
        self.pod_changes += 1
        self.half_open = False

    def close(self) -> None:
        self.closes += 1
        self.half_open = False


# ---------------------------------------------------------------- the cluster
class FakeAPI:
    def __init__(self) -> None:
        self.user = "alice"

    async def whoami(self) -> str:
        return self.user


class FakeConn:
    """A :class:`~tray.kube.conn.ClusterConn` stand-in: named, authenticated, allowed to forward."""

    def __init__(self) -> None:
        self.id = "kind-test"
        self.cluster_name = "kind-test"
        self.api = FakeAPI()
        self.allowed = True

    async def ensure_auth(self) -> None:
        return None

    async def may_forward(self, namespace: str) -> bool:
        return self.allowed


# ---------------------------------------------------------------- a forward on them
class Forward:
    """A :class:`Session` on the fakes; ``changes`` counts its ``on_change`` calls."""

    def __init__(self, target: Target, remote_port: int | str = 8080, *, caches: FakeCaches | None = None,
                 dialer: FakeDialer | None = None, conn: FakeConn | None = None, balance: str = "auto") -> None:
        self.caches = caches or FakeCaches()
        self.dialer = dialer or FakeDialer()
        self.conn = conn or FakeConn()
        self.changes = 0
        self.session = Session(conn=self.conn, watches=self.caches, namespace=NS, target=target,  # type: ignore[arg-type]
                               remote_port=remote_port, local_port=0, address="127.0.0.1", profile=None,
                               on_change=self._changed, dialer=self.dialer, balance=balance)

    def _changed(self, session: Session, pod_changed: bool) -> None:
        self.changes += 1

    @property
    def pods(self) -> FakeCache:
        return self.caches["pods"]

    @property
    def info(self) -> SessionInfo:
        return self.session.info()

    async def until(self, check: Callable[[SessionInfo], bool], what: str, timeout: float = 2.0) -> SessionInfo:
        """Wait (polling each millisecond) until ``check(info)``; fail the test after ``timeout`` s."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not check(info := self.session.info()):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not {what} after {timeout} s: {info.status}: {info.status_reason!r}")
            await asyncio.sleep(0.001)
        return info

    async def status(self, status: Status, timeout: float = 2.0) -> SessionInfo:
        return await self.until(lambda i: i.status == status, str(status), timeout)

    async def stays(self, status: Status, seconds: float = 0.1) -> SessionInfo:
        """The status is ``status`` throughout ``seconds``."""
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            info = self.session.info()
            assert info.status == status, f"{info.status}: {info.status_reason!r}"
            await asyncio.sleep(0.001)
        return self.session.info()

    async def request(self, port: int | None = None) -> str:
        """One connection to the local port: the answer ("<pod>:hello"), "" when it is closed
        without one (the dial failed), or "refused" when nothing listens."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port or self.session.local_port)
        except ConnectionRefusedError:
            return "refused"
        try:
            writer.write(b"hello")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(100), 2)
        except ConnectionResetError:
            answer = b""
        writer.close()
        return answer.decode()

    async def stop(self) -> None:
        await self.session.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    """Run one async test on a fresh loop."""
    asyncio.run(asyncio.wait_for(test(), 10))  # type: ignore[arg-type]
