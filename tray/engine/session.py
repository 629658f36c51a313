"""One forward: its listener, its pod, and the reconnect rules.

:class:`Session` is the façade the manager uses: the local listener and its
connections (the data plane), the status and its snapshot
(:class:`SessionInfo`), start, stop and failure.  Which pod the forward uses
is decided by its :class:`~tray.engine.podtracker.PodTracker`; what happens
when that pod goes away, by its :class:`~tray.engine.reconnect.Reconnector`
(the one place of the rules below).  Both take their I/O by injection --
the dialer (:class:`~tray.engine.reconnect.PodDialer`) and the caches
(:class:`~tray.engine.podtracker.CacheSource`) -- so the rules run in unit
tests on plain data (tests/unit/engine/test_session_reconnect.py).

The rules:

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

Spreading (``balance``, :mod:`tray.domain.balance`): a Service forward sends
each new connection to the next ready endpoint (``round-robin``, the
default) or to the client address's pod (``sticky``), each pod through its
own tunnel (:class:`~tray.engine.dialer.PodDialers`), the container port
translated per pod.  A dial to an endpoint that fails before the connection
sent anything is tried on the next endpoint, and that endpoint is left out
of the rotation for :data:`AVOID_FOR`.  ``pin`` (and every Pod or workload
target) is kubectl's one pod, as above.
"""

from __future__ import annotations

import asyncio
import re
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tray.domain import selection
from tray.domain.addresses import bind_addresses
from tray.domain.balance import PIN, ROUND_ROBIN, effective_balance
from tray.domain.backoff import Backoff
from tray.domain.status import Status
from tray.domain.targets import Target
from tray.engine.dialer import Dialer, PodDialers
from tray.engine.forwardlog import ERROR, INFO, WARNING, ForwardLog, LogLine
from tray.engine.podtracker import SYNC_TIMEOUT, CacheSource, PodTracker
from tray.engine import relay as relays
from tray.domain import relaypod
from tray.engine.reconnect import PodDialer, Reconnector
from tray.engine.v4 import Traffic
from tray.errors import (ClusterUnreachable, ForbiddenError, NotFound, PortUsageError, TargetError, TenderError,
                         Unauthorized, UsageError)

if TYPE_CHECKING:
    from tray.kube.conn import ClusterConn

log = logging.getLogger(__name__)

__all__ = ["Status", "SessionInfo", "Session", "ConnectionFailure", "PodDialer", "CacheSource", "SYNC_TIMEOUT",
           "LogLine"]


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
    #: Local connections open now (being dialled or carried).
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
    #: Local connections accepted since the forward started (Retry, reconnects
    #: and pod switches do not reset it).
    connections_total: int = 0
    #: Bytes received from the pod (what local clients downloaded), counted as they pass.
    bytes_in: int = 0
    #: Bytes sent to the pod (what local clients uploaded), counted as they pass.
    bytes_out: int = 0
    #: Why the last failed local connection failed ("connection refused",
    #: "no ready pod", ...): inside the pod, or it could not be forwarded; "" when none.
    last_connection_error: str = ""
    #: ISO 8601 UTC time of :attr:`last_connection_error` (milliseconds); "" when none.
    last_connection_error_at: str = ""
    #: How new connections spread: "round-robin", "pin" or "sticky" (:mod:`tray.domain.balance`).
    balance: str = "pin"
    #: The pods new connections go to now: the ready endpoints in rotation
    #: order (round-robin, sticky), or the one pod in use (pin); () when none.
    pods: tuple[str, ...] = ()
    #: The namespace group (``ForwardManager.start_group``) that keeps this forward, by id; None when none.
    group: str | None = None
    #: ``TCP`` or ``UDP``.
    protocol: str = "TCP"
    #: A relay forward (UDP, ``host/``, ``ip/``, a Service without pods): the relay pod
    #: (also :attr:`pod_name`) and where it connects (``"db.internal:5432"``,
    #: ``"the endpoints of service legacy"``); "" for an ordinary forward.
    relay_pod: str = ""
    relay_upstream: str = ""
    #: The image a relay forward's pod runs as asked for ("" for the default, and for ordinary forwards).
    relay_image: str = ""

    @property
    def target(self) -> str:
        """The target as kubectl writes it (``deploy/web``)."""
        return str(Target(self.target_kind, self.target_name))

    def to_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data (the CLI's ``--json``); ``id`` is named ``session_id``."""
        # Fields by hand, not asdict (its deep copy was most of the first list event's cost
        # with 200 forwards): every field is a scalar but pods, a tuple of str.
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["session_id"] = d.pop("id")
        d["pods"] = list(self.pods)
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

#: Seconds an endpoint whose dial failed stays out of a balanced forward's rotation.
AVOID_FOR = 5.0
#: Client addresses a ``sticky`` forward remembers the pod of (the oldest is forgotten first).
STICKY_CLIENTS = 1024


def _iso(ts: float | None, timespec: str = "seconds") -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec=timespec)


def _first_line(exc: BaseException) -> str:
    """An exception's text, its first line only."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
    """A supervised forward: the façade the manager uses.  All methods run on the engine's event loop.

    ``conn``: the forward's cluster; ``watches``: where its caches come from
    (the manager's :class:`~tray.kube.watches.WatchRegistry`, or a test's
    :class:`~tray.engine.podtracker.CacheSource`); ``namespace``, ``target``;
    ``remote_port``: a number or a port name, as typed; ``local_port``: the
    port to listen on (0: any free port; None: kubectl's rule, the remote
    port); ``address``: ``localhost`` or an IP address to bind;
    ``profile``: the profile's name, or None.  ``on_change(session,
    pod_changed)`` is called after every status (or attempt) change, and
    ``on_connection_failure(session, failure)`` for a connection that failed
    inside the pod, at most once per :data:`CONNECTION_FAILURE_INTERVAL`.  ``dialer``: how the
    forward reaches its pods (default: a :class:`~tray.engine.dialer.Dialer`
    on ``conn.api``, a :class:`~tray.engine.dialer.PodDialers` for a balanced
    forward; a test passes a fake :class:`~tray.engine.reconnect.PodDialer`).
    ``balance``: how connections spread (:mod:`tray.domain.balance`; "auto":
    round-robin for a Service, pin otherwise); a mode the target cannot use
    raises :class:`~tray.errors.UsageError` (``field="balance"``).

    Which pod it uses is :attr:`tracker`'s (:mod:`tray.engine.podtracker`);
    what happens when that pod goes away is :attr:`reconnector`'s
    (:mod:`tray.engine.reconnect`).  The session itself owns the listener,
    the connections, the status and its lifecycle, and what it has done:
    the counters (:attr:`connections`, :attr:`connections_total`,
    :attr:`traffic`, the last failed connection) and its recent lines
    (:attr:`log`, a :class:`~tray.engine.forwardlog.ForwardLog`).
    """

    def __init__(
        self,
        *,
        conn: ClusterConn,
        watches: CacheSource,
        namespace: str,
        target: Target,
        remote_port: int | str,
        local_port: int | None,
        address: str,
        profile: str | None,
        on_change: Callable[[Session, bool], None],
        on_connection_failure: Callable[[Session, ConnectionFailure], None] | None = None,
        dialer: PodDialer | None = None,
        balance: str = "auto",
        protocol: str = "TCP",
        relay_image: str | None = None,
    ) -> None:
        #: How new connections spread over the pods: round-robin, pin or sticky.
        self.balance = effective_balance(target.kind, balance)
        #: ``TCP`` or ``UDP`` (UDP goes through a relay pod).
        self.protocol = protocol
        #: The image a relay pod runs (None: :data:`tray.domain.relaypod.DEFAULT_IMAGE`).
        self.relay_image = relay_image
        #: The relay pod in use (:mod:`tray.engine.relay`), for forwards port-forward cannot carry.
        self.relay: relays.Relay | None = None
        self._relay_local = 0  # kubectl's local port for a relay forward: the remote port's number
        self._relay_renewals = 0  # relays renewed since the forward was last active
        self._relay_timer: asyncio.TimerHandle | None = None
        self._relay_ending = False  # _relay_lost is running
        if relaypod.needs_relay(target, protocol):
            balance = "pin"  # one relay pod; the relay spreads (EndpointSlices) or the target's rules pick
            self.balance = PIN
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
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        #: Local connections open now; accepted since the forward was made.
        self.connections = 0
        self.connections_total = 0
        #: Bytes each way, counted by the copy loops of both paths.
        self.traffic = Traffic()
        #: Why the last local connection failed ("" when none yet), and when (epoch seconds).
        self.last_connection_error = ""
        self.last_connection_error_at: float | None = None
        #: The forward's recent lines (status changes, pods, attempts, failed connections).
        self.log = ForwardLog()
        self._logged_status: tuple[Status, str] | None = None
        self._logged_pod = ""
        self._dial_failure_logged_at = 0.0
        self._dial_failures_unlogged = 0
        self.recoverable = False
        self.usage_error = False
        self.warning = ""
        self._servers: list[asyncio.base_events.Server] = []
        self._task: asyncio.Task[None] | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        if dialer is None:
            dialer = Dialer(conn.api, namespace) if self.balance == PIN else PodDialers(conn.api, namespace)
        self._dialer: PodDialer = dialer
        self._turn = 0  # round-robin: connections handed out so far
        self._avoid: dict[str, float] = {}  # pod name -> monotonic time it may take connections again
        self._sticky: dict[str, str] = {}  # client address -> its pod (sticky)
        self._failure_reported_at = 0.0
        self._failures_suppressed = 0
        self._failure_flush: asyncio.TimerHandle | None = None
        self._last_failure: ConnectionFailure | None = None
        #: Which pod the forward uses (its caches and kubectl's selection).
        self.tracker = PodTracker(conn=conn, caches=watches, namespace=namespace, target=target,
                                  remote_port=remote_port, on_change=self._on_cache, protocol=protocol)
        self._target_tracker = self.tracker  # the target's own (the tracker follows the relay pod instead)
        #: What the forward does when that pod goes away.
        self.reconnector = Reconnector(self, self.tracker, self._dialer)

    # ----------------------------------------------------------- the pod in use
    @property
    def pod_name(self) -> str:
        """The pod new connections go to ("" before the first)."""
        return self.tracker.pod_name

    @property
    def container_port(self) -> int:
        """The pod's port they go to (0 until a port name is resolved)."""
        return self.tracker.container_port

    @property
    def pod_uid(self) -> str | None:
        """The uid of :attr:`pod_name` (a pod deleted and made again under its name is another pod)."""
        return self.tracker.pod_uid

    @property
    def backoff(self) -> Backoff:
        """The reconnector's :class:`~tray.domain.backoff.Backoff` (its ``attempts``)."""
        return self.reconnector.backoff

    @property
    def next_retry_at(self) -> float | None:
        """Epoch seconds of the next attempt while the retry loop waits; None otherwise."""
        return self.reconnector.next_retry_at

    # ----------------------------------------------------------- snapshot
    def info(self) -> SessionInfo:
        """The session as the shells show it (a frozen snapshot); returns at once."""
        return SessionInfo(
            id=self.id, cluster_id=self.conn.id, cluster_name=self.conn.cluster_name,
            namespace=self.namespace, pod_name=self.pod_name, container_port=self.container_port,
            local_port=self.local_port, target_kind=self.target.kind, target_name=self.target.name,
            status=str(self.status), status_reason=self.reason, started_at=self.started_at,
            address=self.address, remote_port=str(self.remote_port), profile=self.profile,
            attempts=self.backoff.attempts, connections=self.connections,
            recoverable=self.status == Status.ERROR and self.recoverable,
            usage_error=self.status == Status.ERROR and self.usage_error,
            next_retry_at=_iso(self.next_retry_at) if self.reconnector.retrying else "",
            warning=self.warning, connections_total=self.connections_total,
            bytes_in=self.traffic.bytes_in, bytes_out=self.traffic.bytes_out,
            last_connection_error=self.last_connection_error,
            last_connection_error_at=_iso(self.last_connection_error_at, "milliseconds"),
            balance=self.balance, pods=self._pods_in_use(), protocol=self.protocol,
            relay_pod=self.relay.pod_name if self.relay else "",
            relay_upstream=str(self.relay.upstream) if self.relay else "",
            relay_image=self.relay_image or "",
        )

    def _pods_in_use(self) -> tuple[str, ...]:
        if self.status not in (Status.ACTIVE, Status.RECONNECTING):
            return ()
        if self.balance != PIN and self.tracker.rotation:
            return self.tracker.rotation
        return (self.pod_name,) if self.pod_name else ()

    def set_status(self, status: Status, reason: str = "", *, pod_changed: bool = False) -> None:
        """Say ``status`` with ``reason``; ``on_change`` is called when either (or the pod) changed."""
        if status == self.status and reason == self.reason and not pod_changed:
            return
        self.status, self.reason = status, reason
        if pod_changed:
            self._log_pod()
        self._log_status()
        self._on_change(self, pod_changed)

    def changed(self) -> None:
        """Tell ``on_change`` something besides the status changed (the attempt count, the next retry)."""
        self._on_change(self, False)

    def log_line(self, level: str, message: str) -> None:
        """Add a line to the forward's :attr:`log` (``level``: "info", "warning" or "error"); returns at once."""
        self.log.add(level, message)

    def _log_status(self) -> None:
        """A line for the status and its reason, unless the last one said the same."""
        now = (self.status, self.reason)
        if now == self._logged_status:
            return
        self._logged_status = now
        level = ERROR if self.status == Status.ERROR else WARNING if self.status == Status.RECONNECTING else INFO
        self.log.add(level, f"{self.status}: {self.reason}" if self.reason else str(self.status))

    def _log_pod(self) -> None:
        """A line for the pod new connections go to, when it is another one."""
        pod = self.pod_name
        if not pod or pod == self._logged_pod:
            return
        was, self._logged_pod = self._logged_pod, pod
        self.log.add(INFO, f"switched to pod {pod} (was {was})" if was else f"using pod {pod}")

    def track(self, task: asyncio.Task[None]) -> None:
        """Count ``task`` with the forward's connections: a stop (or Retry) cancels it."""
        self._conn_tasks.add(task)
        task.add_done_callback(self._conn_tasks.discard)

    def _on_cache(self) -> None:
        if self.relay is not None and (self._relay_timer is not None or self._relay_ending):
            return  # the relay is being renewed: nothing to evaluate until then
        if self.relay is not None and self._relay_timer is None:
            why = self._relay_gone()
            if why:  # one path renews it (_relay_lost), not the reconnector's "pod was deleted" too
                self._relay_ending = True
                asyncio.get_running_loop().create_task(self._relay_lost(why), name=f"relay lost {self.id}")
                return
        self.reconnector.wake()

    def _relay_gone(self) -> str:
        """Why the relay pod in use can serve no more ("" while it can): deleted, terminating or ended."""
        if self.relay is None or self.tracker.pods is None or not self.tracker.pods.synced.is_set() or \
                self.tracker.target.name != self.relay.pod_name:
            return ""
        pod = self.tracker.bare_pod()
        if pod is None:
            # A shared watch may not have seen a pod just created: gone only once it was there.
            return f"relay pod {self.relay.pod_name} was deleted" if self.relay.seen else ""
        self.relay.seen = True
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            return f"relay pod {self.relay.pod_name} is being deleted"
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return f"relay pod {self.relay.pod_name} ended ({status.get('reason') or status['phase']})"
        return ""

    async def _relay_pod_cached(self, timeout: float = 10.0) -> None:
        """Await the pods' cache seeing the relay pod ready (the API said it runs; a watch may lag).

        Returns after at most ``timeout`` seconds either way: what the cache
        says then is what the first resolution goes by.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.tracker.bare_pod()
            if pod is not None and selection.is_pod_ready(pod):
                return
            await asyncio.sleep(0.05)

    async def _relay_lost(self, why: str) -> None:
        """The relay pod went away under a running forward: end this run and renew the relay."""
        try:
            self.set_status(Status.RECONNECTING, why)  # at once: nothing answers until the new relay does
            await self.reconnector.stop()
            task, self._task = self._task, None
            if task is not None and task is not asyncio.current_task() and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
            await self.reconnector.stop()
            self._close_listeners(cut=False)
            await self.tracker.close()
            await self._drop_relay()
            self.log_line("warning", why)
            self._renew_relay(why)
        finally:
            self._relay_ending = False

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the forward in the background (needs a running loop); its status tells how it goes."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"session {self.id}")
        self._log_status()  # "starting" (a Retry has said it already)

    async def stop(self, status: Status = Status.STOPPED, reason: str = "") -> None:
        """Stop listening, cut the open connections, release the watches, then say ``status``.

        Returns once the forward's tasks are gone (a loop turn or two, and
        the caches' release); never raises.
        """
        task, self._task = self._task, None
        if self._relay_timer is not None:
            self._relay_timer.cancel()
            self._relay_timer = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self.reconnector.stop()  # gone when stop() returns
        await self._teardown()
        self.recoverable = self.usage_error = False
        self.set_status(status, reason)

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
        await self.tracker.close()
        await self._drop_relay()

    async def _drop_relay(self) -> None:
        """Delete the relay pod (and release the target's tracker a UDP relay kept)."""
        relay, self.relay = self.relay, None
        if relay is not None:
            if self._target_tracker is not self.tracker:
                await self._target_tracker.close()
            await relay.delete()

    async def fail(self, reason: str, *, recoverable: bool = False, usage: bool = False) -> None:
        """Go to error, saying ``reason``.

        Not recoverable: stop listening and watching; only Retry starts over.
        Recoverable (the target exists, the pods may come back): stop
        listening but keep the watches and the capped retries, so the forward
        returns to ``active`` on its own (issue: forwards must not give up
        while their target exists).  Either way connections already open
        finish where they are (Stop, Remove and Retry cut them).  ``usage``:
        the request cannot work as typed (:attr:`SessionInfo.usage_error`).
        Returns once the watches are released.
        """
        log.info("forward %s %s: error: %s", self.target, self.local_port, reason)
        self._close_listeners(cut=False)
        if not recoverable:
            self.reconnector.cancel_retry()
        # Flag, status and reason change together, before any await: a snapshot
        # taken while the watches are released must not pair the new flag with
        # the old reason.
        self.recoverable, self.usage_error = recoverable, usage
        self.set_status(Status.ERROR, reason)
        if not recoverable:
            await self.tracker.close()
            had_relay = self.relay is not None
            await self._drop_relay()
            if had_relay and not usage and not self._relay_ending:
                self._renew_relay(reason)
        self.reconnector.wake()  # lets supervise() see the error and return

    async def _run(self) -> None:
        try:
            try:
                await self._run_inner()
            except ClusterUnreachable as exc:
                if self.tracker.pods is None:
                    raise
                # The design's "cluster disconnected" at start (or on Retry):
                # error, and back by itself once the API server answers.
                await self.fail(str(exc), recoverable=True)
                await self.reconnector.supervise()
        except asyncio.CancelledError:
            raise
        except PortUsageError as exc:
            await self.fail(str(exc), usage=True)
        except TenderError as exc:
            await self.fail(str(exc))
        except Exception as exc:  # a bug must still show up as a reason
            log.exception("forward %s failed", self.target)
            await self.fail(f"internal error: {type(exc).__name__}: {exc}")

    async def _run_inner(self) -> None:
        if self.tracker is not self._target_tracker:  # Retry of a relay forward: start from its target again
            await self.tracker.close()
            self.tracker = self._target_tracker
            self.reconnector = Reconnector(self, self.tracker, self._dialer)
        self.reconnector.reset()
        self.warning = ""
        self.set_status(Status.STARTING, "")
        await self.conn.ensure_auth()
        if not await self.conn.may_forward(self.namespace):
            raise ForbiddenError(await self.forbidden_reason(ForbiddenError("access review denied")))
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
        if self.target.relayed:
            if not isinstance(self.remote_port, int):
                raise PortUsageError(f"{self.target} needs a port number, not a port name ({self.remote_port})")
            await self._start_relay(relays.FixedUpstream(self.target.name, self.remote_port), self.remote_port)
        elif self.protocol == "UDP":
            await self.tracker.open(SYNC_TIMEOUT)
            await self._relay_service_or_pods(udp=True)
        await self.tracker.open(SYNC_TIMEOUT)
        if self.relay is None and self.target.kind == "Service":
            owner = self.tracker.owner_object()
            if owner is not None and relaypod.service_needs_relay(owner):  # ExternalName, no selector
                await self._relay_service_or_pods(udp=False)
                await self.tracker.open(SYNC_TIMEOUT)
        if self.relay is not None:
            await self._relay_pod_cached()
        self.tracker.check_ports()  # the port as typed must exist: a usage error, never retried
        try:
            pod, port = self.tracker.resolve()  # the first resolution fails fast: pod not ready → error
        except TargetError as exc:
            if not self.tracker.can_recover():
                raise
            # The target exists: error now (the design's "pod not ready"),
            # and active on its own once a pod is ready.
            await self.fail(str(exc), recoverable=True)
            await self.reconnector.supervise()
            return
        if not self._servers:
            await self._listen(self._local_for(pod))
        self.tracker.use(pod, port)
        if self.balance != PIN:
            self.reconnector.retain()  # the rotation, for the first snapshot
        self.warning = self.tracker.port_warning(pod, port) if self.relay is None else ""
        if self.relay is not None:
            self.relay.hold(self._hold_link)
            await self.relay.wait_listening()
            self._relay_renewals = 0
        self.set_status(Status.ACTIVE, self.tracker.degraded(), pod_changed=True)
        await self.reconnector.supervise()

    # ----------------------------------------------------------- listener
    @property
    def listening(self) -> bool:
        """The local port is bound and accepting."""
        return bool(self._servers)

    async def listen_again(self, pod: dict[str, Any]) -> None:
        """Listen again after a recoverable error: on the port the clients know (or, never
        bound yet, kubectl's rule for ``pod``).  Raises :class:`~tray.errors.UsageError` if it is taken."""
        await self._listen(self.local_port or self._local_for(pod))

    def _local_for(self, pod: dict[str, Any]) -> int:
        if self.requested_local is not None:
            return self.requested_local
        if self.relay is not None:
            return self._relay_local
        return self.tracker.default_local_port(pod)  # kubectl's rule

    async def _listen(self, port: int) -> None:
        servers: list[Any] = []
        try:
            for i, host in enumerate(bind_addresses(self.address)):
                try:
                    if self.protocol == "UDP":
                        server = await relays.listen_udp(self._udp_listener(), host, port)
                    else:
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

    # ----------------------------------------------------------- failures
    def _connection_failed(self, error: str, *, failure: ConnectionFailure | None = None) -> None:
        """A local connection failed with ``error`` (short: "connection refused").

        Sets the last connection error; ``failure`` (it failed inside the pod)
        goes to the shells and the log at most once a second
        (:meth:`_report_failure`); any other (it could not be forwarded) goes
        to the log alone, also at most once a second.
        """
        self.last_connection_error = error
        self.last_connection_error_at = time.time()
        if failure is not None:
            self._report_failure(failure)
            return
        now = time.monotonic()
        if now - self._dial_failure_logged_at < CONNECTION_FAILURE_INTERVAL:
            self._dial_failures_unlogged += 1
            return
        more = self._dial_failures_unlogged
        self._dial_failure_logged_at, self._dial_failures_unlogged = now, 0
        self.log.add(WARNING, f"connection not forwarded: {error}" + (f" (and {more} more)" if more else ""))

    def _tell_failure(self, failure: ConnectionFailure) -> None:
        """One reported failure: a log line, and ``on_connection_failure``."""
        more = f" (and {failure.suppressed} more)" if failure.suppressed else ""
        self.log.add(WARNING, f"connection to pod {failure.pod_name} port {failure.port} failed: {failure.error}{more}")
        if self._on_connection_failure is not None:
            self._on_connection_failure(self, failure)

    def _report_failure(self, failure: ConnectionFailure) -> None:
        """Hand a connection that failed inside the pod to the shells and the log, at most one a second.

        The first failure after a quiet second is reported at once; later ones
        are counted and reported together one interval after the previous
        report, so a client retrying in a tight loop cannot flood a terminal.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._last_failure = failure
        if now - self._failure_reported_at >= CONNECTION_FAILURE_INTERVAL and self._failure_flush is None:
            self._failure_reported_at = now
            self._tell_failure(failure)
            return
        self._failures_suppressed += 1
        if self._failure_flush is None:
            delay = max(0.0, self._failure_reported_at + CONNECTION_FAILURE_INTERVAL - now)
            self._failure_flush = loop.call_later(delay, self._flush_failures)

    def _flush_failures(self) -> None:
        self._failure_flush = None
        last, count = self._last_failure, self._failures_suppressed
        self._failures_suppressed = 0
        if last is None or count == 0:
            return
        self._failure_reported_at = asyncio.get_running_loop().time()
        # The newest failure, with how many others since the last report.
        self._tell_failure(ConnectionFailure(last.pod_name, last.port, last.error, count - 1))

    async def forbidden_reason(self, exc: ForbiddenError) -> str:
        """A 403 the user can act on: who, which verb, on what, where.

        For WebSocket port-forwards the API server's own message stops at
        'pods "x" is forbidden: ' (its second check, for the create verb,
        gives no reason), so Tender asks who it is and says the rest (one
        request to the API server; its errors leave the user unnamed).
        """
        try:
            user = await self.conn.api.whoami()
        except TenderError:
            user = ""
        who = f'User "{user}"' if user else "These credentials"
        # The verb the server refused, when it says (a GET path refused for lack of `get`);
        # else `create`, what every port-forward path needs.
        said = re.search(r'cannot (\w+) resource "pods/portforward"', str(exc))
        verb = said.group(1) if said else "create"
        return (f'forbidden: {who} cannot {verb} pods/portforward in namespace "{self.namespace}" '
                f"(context {self.conn.id}; the API server said: {str(exc).strip()})")

    def unauthorized_reason(self, exc: Unauthorized) -> str:
        """A 401 as the user reads it: the context, and what to do."""
        return f"{exc} (context {self.conn.id}); fix the kubeconfig's credentials, then Retry"

    # ----------------------------------------------------------- data plane
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = _peer_host(writer)
        if self.relay is None:
            await self._serve(reader, writer, client)
            return
        # A relay forward: the client talks to the relay shim, which talks to
        # the relay over an ordinary port-forward connection (the socketpair).
        ours, theirs = socket.socketpair()
        relay_r, relay_w = await asyncio.open_connection(sock=ours)
        link_r, link_w = await asyncio.open_connection(sock=theirs)
        shim = asyncio.ensure_future(self.relay.tcp_shim(reader, writer, relay_r, relay_w))
        try:
            await self._serve(link_r, link_w, client)
            error = await shim
        finally:
            shim.cancel()
        if error and not error.startswith("relay: the relay closed"):
            self._relay_failed(error)

    def _renew_relay(self, reason: str) -> None:
        """The relay pod of a running relay forward ended (deleted, its deadline): a new relay after a pause.

        As Retry would, from the target: 1, 2, 4, ... 30 s between tries,
        back to 1 s once the forward is active again.  Says ``reconnecting``
        meanwhile.  Returns at once.
        """
        if self._relay_timer is not None:
            return  # already on its way
        self._relay_renewals += 1
        delay = min(30.0, 2.0 ** (min(self._relay_renewals, 6) - 1))

        def rerun() -> None:
            self._relay_timer = None
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._run(), name=f"session {self.id}")

        self.set_status(Status.RECONNECTING, f"{reason}; a new relay pod in {delay:g} s")
        self._relay_timer = asyncio.get_running_loop().call_later(delay, rerun)

    def _relay_failed(self, error: str) -> None:
        """A relayed connection or UDP flow the relay could not connect upstream (its reason)."""
        log.info("forward %s: %s", self.target, error)
        port = self.remote_port if isinstance(self.remote_port, int) else self.container_port  # not the relay's 8400
        self._connection_failed(error, failure=ConnectionFailure(self.pod_name, port, error, 0))

    def _udp_listener(self) -> relays.UdpListener:
        return relays.UdpListener(lambda: self.relay.upstream if self.relay else None,
                                  lambda client, r, w: self._serve(r, w, client), self._relay_failed)

    async def _relay_service_or_pods(self, *, udp: bool) -> None:
        """The target's tracker is open: start a relay to a Service without pods, or (UDP) to the target's pods."""
        owner = self.tracker.owner_object() if self.target.kind != "Pod" else self.tracker.bare_pod()
        why = relaypod.service_needs_relay(owner) if owner is not None and self.target.kind == "Service" else ""
        if owner is None and self.target.kind != "Pod":
            raise TargetError(f"{self.target} not found in namespace {self.namespace}")
        if why:
            spec = owner.get("spec") or {}  # type: ignore[union-attr]
            ports = spec.get("ports") or []
            found = next((p for p in ports if p.get("port") == self.remote_port
                          or (p.get("name") and p.get("name") == self.remote_port)), None)
            if found is None and not isinstance(self.remote_port, int):
                raise PortUsageError(f"service {self.target.name} has no port named {self.remote_port}")
            number = int(found["port"]) if found else int(self.remote_port)
            target_port = (found or {}).get("targetPort", number)
            upstream_port = target_port if isinstance(target_port, int) else number
            if why == "ExternalName":
                upstream: relays.Upstream = relays.FixedUpstream(str(spec.get("externalName", "")), number)
            else:
                upstream = relays.EndpointSliceUpstream(self.conn, self.namespace, self.target.name,
                                                        str((found or {}).get("name") or ""), upstream_port)
            await self.tracker.close()
            await self._start_relay(upstream, number)
            return
        self.tracker.check_ports()
        pod, port = self.tracker.resolve()  # a ready pod now, or the usual "no ready pod" error
        local = self.tracker.default_local_port(pod)
        # The target's tracker stays open: it chooses the pod of each new flow.
        await self._start_relay(relays.PodUpstream(self._target_tracker.resolve), local, keep_target=True)

    async def _start_relay(self, upstream: relays.Upstream, local_default: int, *, keep_target: bool = False) -> None:
        """Create the relay pod for ``upstream`` and make the tracker follow it (opened by the caller)."""
        where = f"ip/[{self.target.name}]" if self.target.kind == "IP" and ":" in self.target.name else str(self.target)
        text = f"{where}:{self.remote_port}{'/udp' if self.protocol == 'UDP' else ''}"
        relay = relays.Relay(self.conn, self.namespace, image=self.relay_image or relaypod.DEFAULT_IMAGE,
                             target=text, upstream=upstream, protocol=self.protocol)
        self.set_status(Status.STARTING, "creating relay pod")
        await relay.create(lambda message: self.set_status(Status.STARTING, message))
        self.relay = relay
        self._relay_local = local_default
        self.balance = PIN
        self.tracker = PodTracker(conn=self.conn, caches=self.watches, namespace=self.namespace,
                                  target=Target("Pod", relay.pod_name), remote_port=relaypod.RELAY_PORT,
                                  on_change=self._on_cache)
        self.reconnector = Reconnector(self, self.tracker, self._dialer)
        if not keep_target:
            await self._target_tracker.close()

    async def _hold_link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The relay's ``hold`` connection: a port-forward connection to the relay pod that reports nothing."""
        try:
            link = await self._dialer.connect(self.pod_name, relaypod.RELAY_PORT)
        except TenderError:
            writer.close()
            return
        await link.pump(reader, writer, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str) -> None:
        """Carry one connection (``reader``/``writer``) to the pod new connections go to, until it ends.

        ``client``: the local client's address ("" unknown).  Counts it,
        records its failures; never raises (a cancellation ends it quietly).
        """
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        pod, port = self._choose(client)
        self.connections += 1
        self.connections_total += 1
        try:
            if self.status not in (Status.ACTIVE, Status.RECONNECTING) or not pod:
                writer.close()
                self._connection_failed(self.reason or ("no ready pod" if not pod else f"the forward is {self.status}"))
                return
            where = [pod, port]
            try:
                try:
                    link = await self._connect(where, client)
                finally:
                    pod, port = where  # the pod dialled last
            except ForbiddenError as exc:
                writer.close()
                self._connection_failed(_first_line(exc))
                await self.fail(await self.forbidden_reason(exc))
                return
            except Unauthorized as exc:
                # Rejected even after reloading the kubeconfig (the dialer
                # does that once): an error now, not 31 s of reconnecting.
                writer.close()
                self._connection_failed(_first_line(exc))
                await self.fail(self.unauthorized_reason(exc))
                return
            except NotFound as exc:
                # The pod in use is gone although the watch has not said so
                # (its connection may be dead): list the pods again now, and
                # say reconnecting until that answer is in.  When the watch
                # has said so (scaled to 0: no pod to move to, each connection
                # dials the last one), a LIST would learn nothing and would
                # mark the namespace's shared pod cache stale for every forward.
                log.info("connection to %s failed: %s", pod, exc)
                writer.close()
                self._connection_failed(_first_line(exc))
                cache = self.tracker.pods
                if self.pod_name == pod and (cache is None or pod in cache.objects):
                    self.tracker.resync_pods(f"pod {pod} not found; listing pods again")
                self.reconnector.wake()
                return
            except TenderError as exc:
                # The kubelet or the API server failed us: the forward is not
                # answering, so it must not keep saying "active" -- unless the
                # forward has moved to another pod meanwhile (a dial to the old
                # one that ends late says nothing about the new one).
                log.info("connection to %s failed: %s", pod, exc)
                writer.close()
                self._connection_failed(f"cannot reach pod {pod}: {_first_line(exc)}")
                if pod == self.pod_name:
                    self.reconnector.on_drop(f"cannot reach pod {pod}: {exc}")
                return
            result = await link.pump(reader, writer, self.traffic)
            if result.error:
                log.info("forward %s: %s", self.target, result.error.strip())
                error = _short_error(result.error)
                self._connection_failed(error, failure=ConnectionFailure(pod, port, error, 0))
            elif result.dropped:
                self._connection_failed(f"connection to pod {pod} lost")
            if result.error or result.dropped:
                # The path to the pod failed under this connection (a drop, or
                # the kubelet's side of it cut): what shares that path may be
                # dead without knowing it yet, so the next connection must not
                # reuse it.  (test_network_drop_recovers: a GET right after a
                # drop got a cut spare stream, ~1 in 100.)
                self._dialer.connection_failed(dropped=result.dropped, pod=pod)
            if result.dropped and pod == self.pod_name:
                self.reconnector.on_drop(f"connection to pod {pod} lost")
        except asyncio.CancelledError:
            # _teardown cancels open connections when the forward stops or
            # fails.  This task is the connection's own top level, so the
            # cancellation ends here: re-raised, asyncio's stream server
            # (3.11) logs every one as "Exception in callback ... CancelledError".
            writer.close()
        finally:
            self.connections -= 1
            self._conn_tasks.discard(task)

    # ----------------------------------------------------------- spreading
    def _choose(self, client: str, exclude: frozenset[str] = frozenset()) -> tuple[str, int]:
        """The pod and container port for a new connection from ``client`` (an IP address).

        ``pin``: the pod in use.  Otherwise a ready endpoint of the rotation
        (:meth:`~tray.engine.podtracker.PodTracker.endpoints`) by the mode's
        rule, leaving out ``exclude`` and the pods whose dial failed lately;
        the pod in use when none is left.  ("", 0) when the pod in use is
        excluded too.  Returns at once.
        """
        if self.balance == PIN or not self.pod_name:
            return self.pod_name, self.container_port
        now = time.monotonic()
        if self._avoid:
            self._avoid = {name: until for name, until in self._avoid.items() if until > now}
        endpoints = self.tracker.endpoints()
        ports = {p["metadata"]["name"]: port for p, port in endpoints}
        pods = [p for p, _ in endpoints if p["metadata"]["name"] not in exclude and p["metadata"]["name"] not in self._avoid]
        if not pods:
            if self.pod_name in exclude:
                return "", 0
            return self.pod_name, self.container_port
        if self.balance == ROUND_ROBIN:
            chosen = selection.round_robin_pod(pods, self._turn)
            self._turn += 1
        else:
            mine = self._sticky.get(client)
            chosen = next((p for p in pods if p["metadata"]["name"] == mine), None)
            if chosen is None:
                chosen = selection.sticky_pod(pods, client)
                self._sticky.pop(client, None)
                if len(self._sticky) >= STICKY_CLIENTS:
                    self._sticky.pop(next(iter(self._sticky)))
        assert chosen is not None
        name = chosen["metadata"]["name"]
        if self.balance != ROUND_ROBIN:
            self._sticky[client] = name
        return name, ports[name]

    async def _connect(self, where: list[Any], client: str) -> Any:
        """Dial ``where`` ([pod, port]) for one new connection; a balanced forward tries the next
        endpoints when the dial fails (nothing was sent yet), ``where`` then naming the pod dialled last.

        Returns the :class:`~tray.engine.dialer.Link`; raises what the last
        dial raised.  A 401 or 403 is raised at once (no other pod would do
        better).  Awaits the dials (see :class:`~tray.engine.dialer.Dialer`).
        """
        tried: set[str] = set()
        while True:
            pod, port = where
            try:
                return await self._dialer.connect(pod, port)
            except (ForbiddenError, Unauthorized):
                raise
            except TenderError as exc:
                if self.balance == PIN or self.status not in (Status.ACTIVE, Status.RECONNECTING):
                    raise
                tried.add(pod)
                self._avoid[pod] = time.monotonic() + AVOID_FOR
                if len(tried) >= 3:
                    raise
                nxt, nport = self._choose(client, frozenset(tried))
                if not nxt or nxt in tried:
                    raise
                log.info("forward %s: connection to %s failed (%s); trying %s", self.target, pod,
                         _first_line(exc), nxt)
                where[:] = [nxt, nport]


def _peer_host(writer: asyncio.StreamWriter) -> str:
    """The local client's IP address ("" when unknown)."""
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else ""
