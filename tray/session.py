"""One forward: its listener, its pod, and the reconnect logic.

This is the one place that decides which pod a forward uses and what
happens when that pod goes away.

* The pod is chosen by :mod:`tray.selection` from a shared watch of the
  namespace's pods (:mod:`tray.watches`), so a change is seen as it happens,
  not when a connection fails.
* When the current pod is deleted, starts terminating or turns unready, new
  connections go to another ready pod at once; open connections finish on
  the old one (which keeps serving through its grace period).  A rolling
  restart therefore fails no new connection.
* With no ready pod, the session is ``reconnecting`` and retries on the
  design's backoff (1, 2, 4, 8, 16 s; :mod:`tray.backoff`), and at once when
  the watch shows a pod turning ready; after 5 failed attempts, ``error``.
* The target itself gone → ``error`` without retries; a bare Pod gone →
  ``error`` (a forward to a pod does not move to another pod).
* A stream dropped under an open connection (network drop) → ``reconnecting``
  while a probe stream checks the pod → ``active`` again.
* 403 on ``pods/portforward`` → ``error`` with the server's message, no retry
  loop; API server unreachable → ``error`` ("cluster unreachable: …").
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tray import selection
from tray.backoff import Backoff
from tray.errors import ClusterUnreachable, ForbiddenError, TargetError, TenderError, UsageError
from tray.kubeapi import NotFound, Unauthorized
from tray.dialer import Dialer
from tray.profiles import LOCALHOST_ADDRESSES
from tray.targets import KIND_PLURAL, Target

if TYPE_CHECKING:
    from tray.manager import ClusterConn
    from tray.watches import ResourceCache, WatchRegistry

log = logging.getLogger(__name__)

__all__ = ["Status", "SessionInfo", "Session"]

# How long the first LIST of a namespace may take before the start fails.
SYNC_TIMEOUT = 20.0


class Status(StrEnum):
    STARTING = "starting"
    ACTIVE = "active"
    RECONNECTING = "reconnecting"
    ERROR = "error"
    STOPPED = "stopped"


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

    @property
    def target(self) -> str:
        return str(Target(self.target_kind, self.target_name))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["session_id"] = d.pop("id")
        return d


def _addresses(address: str) -> list[str]:
    # kubectl's rule: "localhost" listens on both loopback addresses (the same
    # rule the profiles loader uses to find clashing local ports).
    return list(LOCALHOST_ADDRESSES) if address == "localhost" else [address]


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
        self.status = Status.STARTING
        self.reason = ""
        self.pod_name = ""
        self.container_port = remote_port if isinstance(remote_port, int) else 0
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.connections = 0
        self.backoff = Backoff()
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

    # ----------------------------------------------------------- snapshot
    def info(self) -> SessionInfo:
        return SessionInfo(
            id=self.id, cluster_id=self.conn.id, cluster_name=self.conn.cluster_name,
            namespace=self.namespace, pod_name=self.pod_name, container_port=self.container_port,
            local_port=self.local_port, target_kind=self.target.kind, target_name=self.target.name,
            status=str(self.status), status_reason=self.reason, started_at=self.started_at,
            address=self.address, remote_port=str(self.remote_port), profile=self.profile,
            attempts=self.backoff.attempts, connections=self.connections,
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
        self._set(status, reason)

    async def _teardown(self) -> None:
        self._dialer.close()
        for server in self._servers:
            server.close()
        self._servers = []
        current = asyncio.current_task()
        for t in list(self._conn_tasks):
            if t is not current:
                t.cancel()
        for cache in (self._pods, self._owner):
            if cache is not None:
                cache.unsubscribe(self._on_cache)
                await self.watches.release(self.conn.id, cache)
        self._pods = self._owner = None

    async def _fail(self, reason: str) -> None:
        """Go to error: stop listening and watching; Retry starts over."""
        log.info("forward %s %s: error: %s", self.target, self.local_port, reason)
        self._cancel_retry()
        await self._teardown()
        self._set(Status.ERROR, reason)
        self._wake.set()  # lets _supervise see the error and return

    async def _run(self) -> None:
        try:
            await self._run_inner()
        except asyncio.CancelledError:
            raise
        except TenderError as exc:
            await self._fail(str(exc))
        except Exception as exc:  # a bug must still show up as a reason
            log.exception("forward %s failed", self.target)
            await self._fail(f"internal error: {type(exc).__name__}: {exc}")

    async def _run_inner(self) -> None:
        self.backoff.reset()
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
        if self.target.kind != "Pod":
            prefix, plural = KIND_PLURAL[self.target.kind]
            self._owner = self.watches.acquire(self.conn.id, self.conn.api, prefix, self.namespace, plural)
            self._owner.subscribe(self._on_cache)
            await self._owner.wait_synced(SYNC_TIMEOUT)
        await self._pods.wait_synced(SYNC_TIMEOUT)
        pod, port = self._resolve()  # the first resolution fails fast: pod not ready → error
        if not self._servers:
            await self._listen(self._local_for(pod))
        self.pod_name, self.container_port = pod["metadata"]["name"], port
        self.pod_uid = pod["metadata"].get("uid")
        self._set(Status.ACTIVE, "", pod_changed=True)
        await self._supervise()

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
            for i, host in enumerate(_addresses(self.address)):
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

    def _candidate_pods(self) -> list[dict[str, Any]]:
        assert self._pods is not None
        if self.target.kind == "Pod":
            pod = self._pods.objects.get(self.target.name)
            return [pod] if pod else []
        owner = self._owner_object()
        if owner is None:
            raise TargetError(f"{self.target} not found in namespace {self.namespace}")
        if self.target.kind == "Service":
            sel = selection.selector_from_service(owner)
        else:
            sel = selection.selector_from_workload(owner)
        return [p for p in self._pods.objects.values()
                if selection.matches(sel, p.get("metadata", {}).get("labels"))]

    def _container_port(self, pod: dict[str, Any]) -> int:
        owner = self._owner_object()
        if self.target.kind == "Service" and owner is not None:
            return selection.container_port_for_service(owner, pod, self.remote_port)
        return selection.container_port_for_pod(pod, self.remote_port)

    def _resolve(self) -> tuple[dict[str, Any], int]:
        """The pod and container port to use now; TargetError explains why not."""
        pods = self._candidate_pods()
        if self.target.kind == "Pod" and not pods:
            raise TargetError(f"pod {self.target.name} not found in namespace {self.namespace}")
        pod = selection.choose_pod(pods)
        if pod is None:
            raise TargetError(selection.why_no_pod(pods, str(self.target)))
        return pod, self._container_port(pod)

    # ----------------------------------------------------------- supervision
    def _on_cache(self, cache: ResourceCache) -> None:
        self._wake.set()

    async def _supervise(self) -> None:
        while self.status in (Status.ACTIVE, Status.RECONNECTING):
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
        if self.status not in (Status.ACTIVE, Status.RECONNECTING):
            return
        err = self._cache_error()
        if err is not None:
            await self._fail(str(err))
            return
        assert self._pods is not None
        if self.target.kind == "Pod":
            pod = self._pods.objects.get(self.target.name)
            if pod is None or pod["metadata"].get("uid") != self.pod_uid:
                await self._fail(f"pod {self.target.name} was deleted")
            elif selection.is_pod_terminating(pod):
                await self._fail(f"pod {self.target.name} is terminating")
            elif pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                await self._fail(f"pod {self.target.name} has stopped ({pod['status']['phase']})")
            return
        if self._owner_object() is None and self._owner is not None and self._owner.synced.is_set():
            await self._fail(f"{self.target} was deleted")
            return
        current = self._pods.objects.get(self.pod_name)
        if current is not None and selection.is_pod_usable(current) and self.status == Status.ACTIVE:
            return
        await self._switch_pod()

    async def _switch_pod(self) -> None:
        """Move new connections to another ready pod, or go reconnecting."""
        try:
            pod, port = self._resolve()
        except TargetError as exc:
            self._enter_reconnecting(str(exc))
            return
        name = pod["metadata"]["name"]
        changed = name != self.pod_name
        was = self.status
        self.pod_name, self.container_port = name, port
        self.pod_uid = pod["metadata"].get("uid")
        self.backoff.reset()
        self._cancel_retry()
        if changed:
            self._dialer.pod_changed()  # spares and the tunnel lead to the old pod
        reason = f"reconnected to pod {name}" if was == Status.RECONNECTING else ""
        if changed:
            log.info("forward %s now uses pod %s", self.target, name)
        self._set(Status.ACTIVE, reason, pod_changed=changed)

    def _cancel_retry(self) -> None:
        if self._retry_task is not None and self._retry_task is not asyncio.current_task():
            self._retry_task.cancel()
        self._retry_task = None

    def _enter_reconnecting(self, why: str) -> None:
        if not self.target.reconnects:
            return
        self._set(Status.RECONNECTING, why)
        if self._retry_task is None:
            self._retry_task = asyncio.get_running_loop().create_task(self._retry_loop())

    async def _retry_loop(self) -> None:
        """The design's backoff: 1, 2, 4, 8, 16 s; error after 5 failed attempts."""
        while True:
            delay = self.backoff.next_delay()
            if delay is None:
                self._retry_task = None
                await self._fail(f"gave up after {self.backoff.attempts} attempts: {self.reason}")
                return
            await asyncio.sleep(delay)
            self._on_change(self, False)  # attempt count changed
            try:
                pod, port = self._resolve()
            except TargetError as exc:
                self._set(Status.RECONNECTING, str(exc))
                continue
            problem = await self._probe(pod["metadata"]["name"], port)
            if self.status == Status.ERROR:
                return  # the probe was refused (401/403): _probe failed the forward
            if problem:
                self._set(Status.RECONNECTING, problem)
            else:
                self._retry_task = None
                self.pod_name = ""  # force the switch below to report the pod
                await self._switch_pod()
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
                    self._set(Status.ACTIVE, f"reconnected to pod {self.pod_name}")
                elif self.target.reconnects:
                    self._retry_task = self._retry_task or asyncio.get_running_loop().create_task(
                        self._retry_loop())
                else:
                    await self._fail(f"pod {self.pod_name} is not reachable")
            finally:
                self._probing = False

        task = asyncio.get_running_loop().create_task(check())
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)

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
                log.info("connection to %s failed: %s", pod, exc)
                writer.close()
                self._wake.set()  # the watch tells where to go next
                return
            except TenderError as exc:
                # The kubelet or the API server failed us: the forward is not
                # answering, so it must not keep saying "active".
                log.info("connection to %s failed: %s", pod, exc)
                writer.close()
                self._on_drop(f"cannot reach pod {pod}: {exc}")
                return
            result = await link.pump(reader, writer)
            if result.error:
                log.info("forward %s: %s", self.target, result.error.strip())
            if result.error or result.dropped:
                # The path to the pod failed under this connection (a drop, or
                # the kubelet's side of it cut): what shares that path may be
                # dead without knowing it yet, so the next connection must not
                # reuse it.  (test_network_drop_recovers: a GET right after a
                # drop got a cut spare stream, ~1 in 100.)
                self._dialer.connection_failed(dropped=result.dropped)
            if result.dropped:
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
