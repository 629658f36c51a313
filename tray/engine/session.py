"""One forward: its listener, its pod, and the reconnect logic.

This is the one place that decides which pod a forward uses and what
happens when that pod goes away.

* The pod is chosen by :mod:`tray.domain.selection` from a shared watch of the
  namespace's pods (:mod:`tray.kube.watches`), so a change is seen as it happens,
  not when a connection fails.
* When the current pod is deleted, starts terminating or turns unready, new
  connections go to another ready pod at once; open connections finish on
  the old one (which keeps serving through its grace period).  A rolling
  restart therefore fails no new connection.
* With no ready pod, the session is ``reconnecting`` and retries on the
  design's backoff (1, 2, 4, 8, 16 s; :mod:`tray.domain.backoff`), and at once when
  the watch shows a pod turning ready; after 5 failed attempts, ``error``.
* A forward in ``error`` whose target still exists stays *recoverable*: it
  keeps its watches, tries every 30 s, and is ``active`` again by itself
  (on the same local port) when a ready pod appears.
* The target itself gone, a finished Job → ``error`` for good; a bare Pod
  gone → ``error`` for good (a forward to a pod does not move to another pod).
* A stream dropped under an open connection (network drop) → ``reconnecting``
  while a probe stream checks the pod → ``active`` again.  A pod whose probe
  failed comes back only by a probe, never by a watch event.
* The API server not answering (:mod:`tray.kube.health` marks the caches stale) →
  ``reconnecting`` for every kind, bare Pods included; a dial told the pod
  in use is gone → the pods are listed again at once.
* 403 on ``pods/portforward`` → ``error`` with the server's message, no retry
  loop; API server unreachable → ``error`` ("cluster unreachable: …"),
  recoverable: back by itself when the server is.
* The port as typed does not exist on the target (unknown Service port or
  port name, UDP only) → ``error`` with ``usage_error``, never retried.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tray.domain import selection
from tray.domain.backoff import MAX_ATTEMPTS, Backoff
from tray.errors import (ClusterUnreachable, ForbiddenError, PortUsageError, TargetError, TenderError,
                         UsageError)
from tray.kube.kubeapi import NotFound, Unauthorized
from tray.engine.dialer import Dialer
from tray.domain.addresses import bind_addresses
from tray.domain.status import Status
from tray.domain.targets import KIND_PLURAL, Target

if TYPE_CHECKING:
    from tray.engine.manager import ClusterConn
    from tray.kube.watches import ResourceCache, WatchRegistry

log = logging.getLogger(__name__)

__all__ = ["Status", "SessionInfo", "Session", "ConnectionFailure"]

# How long the first LIST of a namespace may take before the start fails.
SYNC_TIMEOUT = 20.0


@dataclass(frozen=True)
class SessionInfo:
    """A snapshot of a session, as the menu, the CLI and events show it."""

    id: str
    cluster_id: str
    cluster_name: str
    namespace: str
    pod_name: str
    container_port: int
    local_port: int
    target_kind: str
    target_name: str
    status: str
    status_reason: str
    started_at: str
    address: str
    remote_port: str  # as requested: a number or a port name
    profile: str | None
    attempts: int
    connections: int
    #: In ``error``: True while the forward still watches its target and will
    #: return to ``active`` on its own when a ready pod appears.
    recoverable: bool = False
    #: In ``error``: True when the request cannot work as typed (unknown
    #: service port or port name, a UDP-only port): the CLI exits 2 for it.
    usage_error: bool = False
    #: While ``reconnecting`` (or a recoverable ``error``): ISO 8601 UTC time
    #: of the next attempt; "" otherwise.
    next_retry_at: str = ""
    #: Something the user should know that does not stop the forward, e.g. a
    #: port the pod's containers do not declare; "" when none.
    warning: str = ""

    @property
    def target(self) -> str:
        return str(Target(self.target_kind, self.target_name))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["session_id"] = d.pop("id")
        return d


@dataclass(frozen=True)
class ConnectionFailure:
    """One local connection that failed inside the pod (say, "connection refused").

    ``suppressed`` counts failures of the same forward not reported since the
    previous one: at most one is reported per :data:`CONNECTION_FAILURE_INTERVAL`.
    """

    pod_name: str
    port: int
    error: str
    suppressed: int


#: Seconds between two :class:`ConnectionFailure` reports of one forward.
CONNECTION_FAILURE_INTERVAL = 1.0


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _short_error(text: str) -> str:
    """The kubelet's error for one connection, short: its last clause
    ("connection refused", "connection reset by peer"), as kubectl's users read it."""
    text = text.strip().splitlines()[0] if text.strip() else "failed"
    tail = text.rsplit(": ", 1)[-1].strip()
    return tail or text


async def _start_server_or_close(*args: Any, **kwargs: Any) -> asyncio.base_events.Server:
    """asyncio.start_server, but a cancellation never leaves a listener behind.

    start_server binds and starts listening before its last await, so a forward
    stopped while starting could be cancelled right there and lose the Server:
    its port stayed bound, listening, for the life of the process (found by
    test_load's 500 start/stop: 8 stray listeners).  Shielded, the creation
    completes, and a cancelled caller closes what it made.
    """
    task = asyncio.ensure_future(asyncio.start_server(*args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        def close(t: asyncio.Future[asyncio.base_events.Server]) -> None:
            if not t.cancelled() and t.exception() is None:
                t.result().close()

        task.add_done_callback(close)
        raise


class Session:
    """A supervised forward.  All methods run on the engine's event loop."""

    def __init__(
        self,
        *,
        conn: ClusterConn,
        watches: WatchRegistry,
        namespace: str,
        target: Target,
        remote_port: int | str,
        local_port: int | None,
        address: str,
        profile: str | None,
        on_change: Callable[[Session, bool], None],
        on_connection_failure: Callable[[Session, ConnectionFailure], None] | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        self.conn = conn
        self.watches = watches
        self.namespace = namespace
        self.target = target
        self.remote_port = remote_port
        self.requested_local = local_port
        self.local_port = local_port or 0
        self.address = address
        self.profile = profile
        self._on_change = on_change
        self._on_connection_failure = on_connection_failure
        self.status = Status.STARTING
        self.reason = ""
        self.pod_name = ""
        self.container_port = remote_port if isinstance(remote_port, int) else 0
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.connections = 0
        # Never exhausted: the session itself says `error` after MAX_ATTEMPTS
        # and, while its target exists, goes on trying at the capped delay.
        self.backoff = Backoff(max_attempts=None)
        self.recoverable = False
        self.usage_error = False
        self.warning = ""
        self.next_retry_at: float | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._pods: ResourceCache | None = None
        self._owner: ResourceCache | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._probing = False
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._dialer = Dialer(conn.api, namespace)
        self._retry_task: asyncio.Task[None] | None = None
        self.pod_uid: str | None = None
        self._failure_reported_at = 0.0
        self._failures_suppressed = 0
        self._failure_flush: asyncio.TimerHandle | None = None
        self._last_failure: ConnectionFailure | None = None
        self._stale_seen = False  # the caches were stale at the last evaluation
        self._unreachable_uid: str | None = None  # the pod whose path failed the last probe
        self._cluster_wait = False  # reconnecting because of the cluster, not the pod

    # ----------------------------------------------------------- snapshot
    def info(self) -> SessionInfo:
        return SessionInfo(
            id=self.id, cluster_id=self.conn.id, cluster_name=self.conn.cluster_name,
            namespace=self.namespace, pod_name=self.pod_name, container_port=self.container_port,
            local_port=self.local_port, target_kind=self.target.kind, target_name=self.target.name,
            status=str(self.status), status_reason=self.reason, started_at=self.started_at,
            address=self.address, remote_port=str(self.remote_port), profile=self.profile,
            attempts=self.backoff.attempts, connections=self.connections,
            recoverable=self.status == Status.ERROR and self.recoverable,
            usage_error=self.status == Status.ERROR and self.usage_error,
            next_retry_at=_iso(self.next_retry_at) if self._retry_task is not None else "",
            warning=self.warning,
        )

    def _set(self, status: Status, reason: str = "", *, pod_changed: bool = False) -> None:
        if status == self.status and reason == self.reason and not pod_changed:
            return
        self.status, self.reason = status, reason
        self._on_change(self, pod_changed)

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"session {self.id}")

    async def stop(self, status: Status = Status.STOPPED, reason: str = "") -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        # The backoff loop is a task of its own, not a child of _run: without
        # this, stopping (or retrying) a reconnecting forward left it running,
        # to wake later on a torn-down session (found by test_faults: "Task
        # was destroyed but it is pending: Session._retry_loop").
        retry, self._retry_task = self._retry_task, None
        if retry is not None and retry is not asyncio.current_task():
            retry.cancel()
            await asyncio.wait([retry])  # gone when stop() returns; never raises
        await self._teardown()
        self.recoverable = self.usage_error = False
        self._set(status, reason)

    def _close_listeners(self, *, cut: bool = True) -> None:
        """Stop listening (the watches stay).

        ``cut``: also cut the open connections and drop every tunnel (the
        user stopped or retried the forward).  Otherwise (the forward failed)
        open connections finish on their tunnel, as kubectl's do: a pod that
        turned unready or is terminating may still be serving them.
        """
        if cut:
            self._dialer.close()
        else:
            self._dialer.pod_changed()  # retire: new connections, if any, start afresh
        for server in self._servers:
            server.close()
        self._servers = []
        current = asyncio.current_task()
        for t in list(self._conn_tasks) if cut else []:
            if t is not current:
                t.cancel()
        if self._failure_flush is not None:
            self._failure_flush.cancel()
            self._failure_flush = None

    async def _teardown(self, *, cut: bool = True) -> None:
        self._close_listeners(cut=cut)
        for cache in (self._pods, self._owner):
            if cache is not None:
                cache.unsubscribe(self._on_cache)
                if cache is self._owner or self.target.kind == "Pod":
                    cache.unwant(self.target.name)
                await self.watches.release(self.conn.id, cache)
        self._pods = self._owner = None

    async def _fail(self, reason: str, *, recoverable: bool = False, usage: bool = False) -> None:
        """Go to error.

        Not recoverable: stop listening and watching; only Retry starts over.
        Recoverable (the target exists, the pods may come back): stop
        listening but keep the watches and the capped retries, so the forward
        returns to ``active`` on its own (issue: forwards must not give up
        while their target exists).  Either way connections already open
        finish where they are (Stop, Remove and Retry cut them).
        """
        log.info("forward %s %s: error: %s", self.target, self.local_port, reason)
        self.recoverable, self.usage_error = recoverable, usage
        if recoverable:
            self._close_listeners(cut=False)
        else:
            self._cancel_retry()
            await self._teardown(cut=False)
        self._set(Status.ERROR, reason)
        self._wake.set()  # lets _supervise see the error and return

    def _can_recover(self) -> bool:
        """Whether an errored forward may come back by itself: its target
        (not a bare Pod) still exists in a healthy, synced cache."""
        if self._cluster_trouble():
            return True  # the API server's trouble, not the target's: it may be all there
        if not self.target.reconnects or self._owner is None or self._pods is None:
            return False
        if self._cache_error() is not None or not self._owner.synced.is_set():
            return False
        owner = self._owner_object()
        return owner is not None and not (self.target.kind == "Job" and selection.is_finished_job(owner))

    def _final_reason(self) -> str:
        """Why an errored forward can no longer come back by itself."""
        owner = self._owner_object()
        if self._owner is not None and self._owner.synced.is_set() and owner is None:
            return f"{self.target} was deleted"
        if owner is not None and self.target.kind == "Job" and selection.is_finished_job(owner):
            return f"{self.target} has finished; {self.reason}"
        return self.reason

    def _caches(self) -> list[ResourceCache]:
        return [c for c in (self._owner, self._pods) if c is not None]

    def _stale_reason(self) -> str:
        """Why the watched objects may be out of date ("" when they are not)."""
        return next((c.stale_reason for c in self._caches() if c.stale), "")

    def _cluster_trouble(self) -> bool:
        """The API server is not answering, or cannot be reached."""
        return bool(self._stale_reason()) or isinstance(self._cache_error(), ClusterUnreachable)

    async def _run(self) -> None:
        try:
            try:
                await self._run_inner()
            except ClusterUnreachable as exc:
                if self._pods is None:
                    raise
                # The design's "cluster disconnected" at start (or on Retry):
                # error, and back by itself once the API server answers.
                await self._fail(str(exc), recoverable=True)
                await self._supervise()
        except asyncio.CancelledError:
            raise
        except PortUsageError as exc:
            await self._fail(str(exc), usage=True)
        except TenderError as exc:
            await self._fail(str(exc))
        except Exception as exc:  # a bug must still show up as a reason
            log.exception("forward %s failed", self.target)
            await self._fail(f"internal error: {type(exc).__name__}: {exc}")

    async def _run_inner(self) -> None:
        self.backoff.reset()
        self.warning = ""
        self._set(Status.STARTING, "")
        await self.conn.ensure_auth()
        if not await self.conn.may_forward(self.namespace):
            raise ForbiddenError(await self._forbidden_reason(ForbiddenError("access review denied")))
        if self.requested_local == 0 and self.local_port:
            # Retry of an "any free port" forward: keep the port it had, which
            # the user's clients (and the menu) already know; another free
            # port only if that one has been taken meanwhile.
            try:
                await self._listen(self.local_port)
            except UsageError:
                await self._listen(0)
        elif isinstance(self.requested_local, int):
            await self._listen(self.requested_local)  # a taken port fails before any API call
        prefix, plural = KIND_PLURAL["Pod"]
        self._pods = self.watches.acquire(self.conn.id, self.conn.api, prefix, self.namespace, plural)
        self._pods.subscribe(self._on_cache)
        if self.target.kind == "Pod":
            self._pods.want(self.target.name)  # a GET of it serves where LIST is forbidden
        else:
            prefix, plural = KIND_PLURAL[self.target.kind]
            self._owner = self.watches.acquire(self.conn.id, self.conn.api, prefix, self.namespace, plural)
            self._owner.subscribe(self._on_cache)
            self._owner.want(self.target.name)
            await self._owner.wait_synced(SYNC_TIMEOUT)
        await self._pods.wait_synced(SYNC_TIMEOUT)
        self._check_ports()  # the port as typed must exist: a usage error, never retried
        try:
            pod, port = self._resolve()  # the first resolution fails fast: pod not ready → error
        except TargetError as exc:
            if not self._can_recover():
                raise
            # The target exists: error now (the design's "pod not ready"),
            # and active on its own once a pod is ready.
            await self._fail(str(exc), recoverable=True)
            await self._supervise()
            return
        if not self._servers:
            await self._listen(self._local_for(pod))
        self.pod_name, self.container_port = pod["metadata"]["name"], port
        self.pod_uid = pod["metadata"].get("uid")
        self._note_port(pod, port)
        self._set(Status.ACTIVE, self._degraded(), pod_changed=True)
        await self._supervise()

    def _degraded(self) -> str:
        """Why the forward's watches poll instead of watching ("" when they watch)."""
        return "; ".join(c.degraded for c in self._caches() if c.degraded)

    def _local_for(self, pod: dict[str, Any]) -> int:
        if self.requested_local is not None:
            return self.requested_local
        # Same as the remote port at the target's level (kubectl's rule).
        owner = self._owner_object()
        if self.target.kind == "Service" and owner is not None:
            return selection.service_port_number(owner, self.remote_port)
        return selection.container_port_for_pod(pod, self.remote_port)

    async def _listen(self, port: int) -> None:
        servers = []
        try:
            for i, host in enumerate(bind_addresses(self.address)):
                try:
                    server = await _start_server_or_close(
                        self._accept, host, port, reuse_address=True, backlog=512
                    )
                except asyncio.CancelledError:
                    for s in servers:
                        s.close()
                    raise
                except OSError as exc:
                    if i > 0 and host == "::1" and exc.errno in (99, 97):  # no IPv6 here
                        continue
                    raise
                servers.append(server)
                port = port or server.sockets[0].getsockname()[1]
        except OSError as exc:
            for s in servers:
                s.close()
            if exc.errno == 98:
                raise UsageError(f"local port {port} is already in use on {self.address}") from None
            raise UsageError(f"cannot listen on {self.address}:{port}: {exc.strerror}") from None
        self._servers = servers
        self.local_port = port

    # ----------------------------------------------------------- resolution
    def _owner_object(self) -> dict[str, Any] | None:
        if self._owner is None:
            return None
        return self._owner.objects.get(self.target.name)

    def _check_ports(self) -> None:
        """The requested port must exist on the target as typed (kubectl fails
        the same way, before forwarding): an unknown Service port, an unknown
        port name or a UDP-only port raise :class:`PortUsageError`.

        For workloads the pod template says it; for a bare Pod, the pod.
        """
        owner = self._owner_object()
        try:
            if self.target.kind == "Service" and owner is not None:
                selection.find_service_port(owner, self.remote_port)
            elif self.target.kind == "Pod":
                pod = self._pods.objects.get(self.target.name) if self._pods is not None else None
                if pod is not None:
                    selection.container_port_for_pod(pod, self.remote_port)
            elif owner is not None:
                template = {"metadata": {"name": f"{self.target}"},
                            "spec": (owner.get("spec", {}).get("template") or {}).get("spec") or {}}
                if template["spec"].get("containers"):
                    selection.container_port_for_pod(template, self.remote_port)
        except TargetError as exc:
            raise PortUsageError(str(exc).replace(f"pod/{self.target}", str(self.target))) from None

    def _candidate_pods(self) -> list[dict[str, Any]]:
        assert self._pods is not None
        if self.target.kind == "Pod":
            pod = self._pods.objects.get(self.target.name)
            return [pod] if pod else []
        owner = self._owner_object()
        if owner is None:
            raise TargetError(f"{self.target} not found in namespace {self.namespace}")
        if self._pods.list_forbidden is not None:
            # Only named pods could be fetched: a selector needs a LIST
            # (kubectl's port-forward to a workload or Service needs it too).
            raise self._pods.list_forbidden
        if self.target.kind == "Service":
            sel = selection.selector_from_service(owner)
        else:
            sel = selection.selector_from_workload(owner)
        return [p for p in self._pods.objects.values()
                if selection.matches(sel, p.get("metadata", {}).get("labels"))]

    def _serving(self, pods: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """The pods that serve the requested port, and why the others do not.

        A Service's port is served by the endpoints whose pods resolve its
        targetPort (a named targetPort may exist on only some of the
        Service's pods: the EndpointSlice controller's rule, podutil.FindPort);
        other targets' pods all serve it.
        """
        owner = self._owner_object()
        if self.target.kind != "Service" or owner is None:
            return pods, []
        serving, why = [], []
        for pod in pods:
            try:
                selection.container_port_for_service(owner, pod, self.remote_port)
            except TargetError as exc:
                why.append(str(exc))
            else:
                serving.append(pod)
        return serving, why

    def _container_port(self, pod: dict[str, Any]) -> int:
        owner = self._owner_object()
        if self.target.kind == "Service" and owner is not None:
            return selection.container_port_for_service(owner, pod, self.remote_port)
        return selection.container_port_for_pod(pod, self.remote_port)

    def _resolve(self) -> tuple[dict[str, Any], int]:
        """The pod and container port to use now; TargetError explains why not."""
        stale = self._stale_reason()
        if stale:
            raise TargetError(stale)  # what the caches say may be gone already
        pods = self._candidate_pods()
        if self.target.kind == "Pod" and not pods:
            raise TargetError(f"pod {self.target.name} not found in namespace {self.namespace}")
        serving, why = self._serving(pods)
        if pods and not serving:
            raise TargetError(f"no pod of {self.target} serves port {self.remote_port}: {why[0]}")
        pod = selection.choose_pod(serving)
        if pod is None:
            raise TargetError(selection.why_no_pod(serving, str(self.target)))
        return pod, self._container_port(pod)

    def _note_port(self, pod: dict[str, Any], port: int) -> None:
        """Warn when the pod's containers do not declare the port (kubectl
        forwards anyway; the connections are then likely refused)."""
        declared = [(n, name, proto) for n, name, proto in selection.declared_ports(pod)]
        if any(n == port for n, _, _ in declared):
            self.warning = ""
            return
        listing = ", ".join(f"{name + ' ' if name else ''}{n}/{proto}" for n, name, proto in declared)
        self.warning = (f"pod {pod['metadata']['name']} declares no port {port}"
                        f" (declares: {listing or 'none'})")

    # ----------------------------------------------------------- supervision
    def _on_cache(self, cache: ResourceCache) -> None:
        self._wake.set()

    def _supervised(self) -> bool:
        return self.status in (Status.ACTIVE, Status.RECONNECTING) or (
            self.status == Status.ERROR and self.recoverable)

    async def _supervise(self) -> None:
        while self._supervised():
            await self._wake.wait()
            self._wake.clear()
            await self._evaluate()

    def _cache_error(self) -> TenderError | None:
        for cache in (self._owner, self._pods):
            if cache is not None and cache.error is not None:
                return cache.error
        return None

    async def _evaluate(self) -> None:
        """React to a change in the watched objects (runs after every event)."""
        if not self._supervised():
            return
        err = self._cache_error()
        if err is not None:
            if isinstance(err, ClusterUnreachable):
                # The design's "cluster disconnected": error, but the watch goes
                # on and the forward comes back when the API server does.
                if not (self.status == Status.ERROR and self.reason == str(err)):
                    self._cancel_retry()
                    await self._fail(str(err), recoverable=True)
            else:
                await self._fail(str(err))
            return
        stale = self._stale_reason()
        if stale:
            # The API server is not answering (or the pod in use was not
            # found and the pods are being listed again): no connection can be
            # trusted to work, so the status must not say active.
            self._stale_seen = True
            if self.status == Status.ACTIVE:
                self._enter_reconnecting(stale, cluster=True)
            elif self.status == Status.RECONNECTING and self.reason != stale:
                self._set(Status.RECONNECTING, stale)
            return
        if self._stale_seen:
            # Back from not answering: the tunnel and spares may be half-open.
            self._stale_seen = False
            self._dialer.pod_changed()
        assert self._pods is not None
        if self.target.kind == "Pod":
            pod = self._pods.objects.get(self.target.name)
            if pod is None or pod["metadata"].get("uid") != self.pod_uid:
                await self._fail(f"pod {self.target.name} was deleted")
            elif selection.is_pod_terminating(pod):
                await self._fail(f"pod {self.target.name} is terminating")
            elif pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                await self._fail(f"pod {self.target.name} has stopped ({pod['status']['phase']})")
            elif self.status == Status.ERROR or (self.status == Status.RECONNECTING and self._cluster_wait):
                await self._switch_pod()  # the cluster is back and so is the pod
            return
        if self._owner_object() is None and self._owner is not None and self._owner.synced.is_set():
            await self._fail(f"{self.target} was deleted")
            return
        current = self._pods.objects.get(self.pod_name)
        if (current is not None and self.status == Status.ACTIVE and selection.is_pod_usable(current)
                and current["metadata"].get("uid") == self.pod_uid):
            degraded = self._degraded()
            if degraded and not self.reason:
                self._set(Status.ACTIVE, degraded)  # said once: the watch turned out forbidden
            return
        await self._switch_pod()

    async def _switch_pod(self, *, probed: bool = False) -> None:
        """Move new connections to another ready pod, or go reconnecting.

        A pod whose path just failed a probe (``_unreachable_uid``) still
        looks ready in the API; only a probe (``probed``) brings it back, so a
        watch event about anything else cannot make the forward claim it.
        """
        try:
            pod, port = self._resolve()
        except TargetError as exc:
            if self.status == Status.ERROR:
                if self.reason.endswith(str(exc)):
                    return
                self._set(Status.ERROR, self._gave_up_reason(str(exc)))
            else:
                self._enter_reconnecting(str(exc))
            return
        if not probed and self._unreachable_uid and pod["metadata"].get("uid") == self._unreachable_uid:
            return  # the retry loop's probe decides about this pod
        self._unreachable_uid = None
        was = self.status
        if was == Status.ERROR and not self._servers:
            try:
                # The port its clients know (or, never bound yet, kubectl's rule).
                await self._listen(self.local_port or self._local_for(pod))
            except UsageError as exc:
                await self._fail(f"cannot recover: {exc}")
                return
        name = pod["metadata"]["name"]
        changed = name != self.pod_name or pod["metadata"].get("uid") != self.pod_uid
        self.pod_name, self.container_port = name, port
        self.pod_uid = pod["metadata"].get("uid")
        self.backoff.reset()
        self._cancel_retry()
        self.recoverable = False
        self._cluster_wait = False
        if changed:
            self._dialer.pod_changed()  # spares and the tunnel lead to the old pod
            self._note_port(pod, port)
        if was == Status.ERROR:
            reason = f"recovered: pod {name} is ready"
        elif was == Status.RECONNECTING:
            reason = f"reconnected to pod {name}"
        else:
            reason = self._degraded()
        if changed:
            log.info("forward %s now uses pod %s", self.target, name)
        self._set(Status.ACTIVE, reason, pod_changed=changed)

    def _cancel_retry(self) -> None:
        if self._retry_task is not None and self._retry_task is not asyncio.current_task():
            self._retry_task.cancel()
        self._retry_task = None
        self.next_retry_at = None

    def _enter_reconnecting(self, why: str, *, cluster: bool = False) -> None:
        """Go ``reconnecting`` and start the backoff.  A bare Pod does not
        move to another pod, so it only waits here for the cluster (``cluster``)."""
        if not (self.target.reconnects or cluster):
            return
        self._cluster_wait = cluster
        self._set(Status.RECONNECTING, why)
        if self._retry_task is None:
            self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    def _gave_up_reason(self, why: str) -> str:
        return f"gave up after {MAX_ATTEMPTS} attempts: {why}"

    async def _retry_loop(self) -> None:
        """The design's backoff: 1, 2, 4, 8, 16 s, then every 30 s.

        After :data:`~tray.domain.backoff.MAX_ATTEMPTS` failed attempts the forward
        is ``error``.  While its target exists it stays watched and keeps
        trying at the capped delay (and at once when the watch shows a ready
        pod); a bare Pod, or a target that is gone, stays ``error``.
        """
        while True:
            if self.backoff.attempts >= MAX_ATTEMPTS and self.status != Status.ERROR:
                why = self._gave_up_reason(self.reason)
                if not self._can_recover():
                    self._retry_task = None
                    await self._fail(why)
                    return
                await self._fail(why, recoverable=True)
            delay = self.backoff.next_delay()
            assert delay is not None  # never exhausted
            self.next_retry_at = time.time() + delay
            self._on_change(self, False)  # attempt count and next retry changed
            await asyncio.sleep(delay)
            self.next_retry_at = None
            try:
                pod, port = self._resolve()
            except TargetError as exc:
                if self.status == Status.ERROR:
                    if not self._can_recover():
                        self._retry_task = None
                        await self._fail(self._final_reason())
                        return
                    self._set(Status.ERROR, self._gave_up_reason(str(exc)))
                else:
                    self._set(Status.RECONNECTING, str(exc))
                continue
            problem = await self._probe(pod["metadata"]["name"], port)
            if self.status == Status.ERROR and not self.recoverable:
                return  # the probe was refused (401/403): _probe failed the forward
            if problem:
                self._unreachable_uid = pod["metadata"].get("uid")
                if self.status == Status.ERROR:
                    self._set(Status.ERROR, self._gave_up_reason(problem))
                else:
                    self._set(Status.RECONNECTING, problem)
            else:
                self._retry_task = None
                self.pod_name = ""  # force the switch below to report the pod
                await self._switch_pod(probed=True)
                return

    async def _probe(self, pod: str, port: int) -> str:
        """Prove the path to the pod (a fresh tunnel, or a v4 stream); '' if it works, else why not."""
        try:
            await self._dialer.check(pod, port)
        except (ForbiddenError, Unauthorized) as exc:
            # Refused credentials are not a reason to keep retrying (the
            # design's "no retry loop" for a 403; a 401 is the same).
            reason = (await self._forbidden_reason(exc) if isinstance(exc, ForbiddenError)
                      else self._unauthorized_reason(exc))
            await self._fail(reason)
            return reason
        except TenderError as exc:
            log.info("probe of %s/%s failed: %s", pod, port, exc)
            return f"cannot reach pod {pod}: {exc}"
        return ""

    def _on_drop(self, why: str) -> None:
        """A stream died or could not open: check the path again."""
        if self.status != Status.ACTIVE or self._probing:
            return
        self._probing = True
        self._set(Status.RECONNECTING, f"{why}; reconnecting")

        async def check() -> None:
            try:
                # Let the watch report a deleted pod first, if that is what happened.
                await asyncio.sleep(0.2)
                if self.status != Status.RECONNECTING:
                    return
                problem = await self._probe(self.pod_name, self.container_port)
                if self.status == Status.ERROR:
                    return  # refused (401/403): _probe failed the forward
                if not problem:
                    self._unreachable_uid = None
                    self._set(Status.ACTIVE, f"reconnected to pod {self.pod_name}")
                elif self.target.reconnects:
                    self._unreachable_uid = self.pod_uid
                    self._retry_task = self._retry_task or asyncio.get_running_loop().create_task(
                        self._retry_loop())
                else:
                    await self._fail(f"pod {self.pod_name} is not reachable")
            finally:
                self._probing = False

        task = asyncio.get_running_loop().create_task(check())
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)

    def _report_failure(self, failure: ConnectionFailure) -> None:
        """Hand a failed connection to the shells, at most one a second.

        The first failure after a quiet second is reported at once; later ones
        are counted and reported together one interval after the previous
        report, so a client retrying in a tight loop cannot flood a terminal.
        """
        if self._on_connection_failure is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._last_failure = failure
        if now - self._failure_reported_at >= CONNECTION_FAILURE_INTERVAL and self._failure_flush is None:
            self._failure_reported_at = now
            self._on_connection_failure(self, failure)
            return
        self._failures_suppressed += 1
        if self._failure_flush is None:
            delay = max(0.0, self._failure_reported_at + CONNECTION_FAILURE_INTERVAL - now)
            self._failure_flush = loop.call_later(delay, self._flush_failures)

    def _flush_failures(self) -> None:
        self._failure_flush = None
        last, count = self._last_failure, self._failures_suppressed
        self._failures_suppressed = 0
        if last is None or count == 0 or self._on_connection_failure is None:
            return
        self._failure_reported_at = asyncio.get_running_loop().time()
        # The newest failure, with how many others since the last report.
        self._on_connection_failure(self, ConnectionFailure(last.pod_name, last.port, last.error, count - 1))

    async def _forbidden_reason(self, exc: ForbiddenError) -> str:
        """A 403 the user can act on: who, which verb, on what, where.

        For WebSocket port-forwards the API server's own message stops at
        'pods "x" is forbidden: ' (its second check, for the create verb,
        gives no reason), so Tender asks who it is and says the rest.
        """
        try:
            user = await self.conn.api.whoami()
        except TenderError:
            user = ""
        who = f'User "{user}"' if user else "These credentials"
        return (f'forbidden: {who} cannot create pods/portforward in namespace "{self.namespace}" '
                f"(context {self.conn.id}; the API server said: {str(exc).strip()})")

    def _unauthorized_reason(self, exc: Unauthorized) -> str:
        return f"{exc} (context {self.conn.id}); fix the kubeconfig's credentials, then Retry"

    # ----------------------------------------------------------- data plane
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pod, port = self.pod_name, self.container_port
        self.connections += 1
        try:
            if self.status not in (Status.ACTIVE, Status.RECONNECTING) or not pod:
                writer.close()
                return
            try:
                link = await self._dialer.connect(pod, port)
            except ForbiddenError as exc:
                writer.close()
                await self._fail(await self._forbidden_reason(exc))
                return
            except Unauthorized as exc:
                # Rejected even after reloading the kubeconfig (the dialer
                # does that once): an error now, not 31 s of reconnecting.
                writer.close()
                await self._fail(self._unauthorized_reason(exc))
                return
            except NotFound as exc:
                # The pod in use is gone although the watch has not said so
                # (its connection may be dead): list the pods again now, and
                # say reconnecting until that answer is in.
                log.info("connection to %s failed: %s", pod, exc)
                writer.close()
                if self._pods is not None and self.pod_name == pod:
                    self._pods.resync(f"pod {pod} not found; listing pods again")
                self._wake.set()
                return
            except TenderError as exc:
                # The kubelet or the API server failed us: the forward is not
                # answering, so it must not keep saying "active" -- unless the
                # forward has moved to another pod meanwhile (a dial to the old
                # one that ends late says nothing about the new one).
                log.info("connection to %s failed: %s", pod, exc)
                writer.close()
                if pod == self.pod_name:
                    self._on_drop(f"cannot reach pod {pod}: {exc}")
                return
            result = await link.pump(reader, writer)
            if result.error:
                log.info("forward %s: %s", self.target, result.error.strip())
                self._report_failure(ConnectionFailure(pod, port, _short_error(result.error), 0))
            if result.error or result.dropped:
                # The path to the pod failed under this connection (a drop, or
                # the kubelet's side of it cut): what shares that path may be
                # dead without knowing it yet, so the next connection must not
                # reuse it.  (test_network_drop_recovers: a GET right after a
                # drop got a cut spare stream, ~1 in 100.)
                self._dialer.connection_failed(dropped=result.dropped)
            if result.dropped and pod == self.pod_name:
                self._on_drop(f"connection to pod {pod} lost")
        except asyncio.CancelledError:
            # _teardown cancels open connections when the forward stops or
            # fails.  This task is the connection's own top level, so the
            # cancellation ends here: re-raised, asyncio's stream server
            # (3.11) logs every one as "Exception in callback ... CancelledError".
            writer.close()
        finally:
            self.connections -= 1
            self._conn_tasks.discard(task)
