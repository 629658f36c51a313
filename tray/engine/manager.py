"""The forward manager: the engine's one public entry point.

``ForwardManager`` is thread-safe.  It runs the engine on its own asyncio
loop in a background thread, so neither the tray's UI thread nor the CLI's
main thread ever makes a Kubernetes call.  Its API is the design's::

    start(spec) -> id
    stop(id); stop_cluster(cluster_id); list(); get(id); logs(id); retry(id); remove(id)

Subscribers receive :class:`StatusEvent` on every status change of a
session, and :class:`ListEvent` (the full list) on start, stop, remove and
reconnect.  They are called on the engine thread and must return quickly
(the tray hands them to its own thread; see ``tray.ui``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tray.errors import TenderError, UsageError
from tray.kube.conn import ClusterConn
from tray.kube.kubeconfig import ClusterInfo, kubeconfig_paths, list_clusters
from tray.engine.autoaddress import listeners_clash, resolve_address
from tray.engine.session import ConnectionFailure, LogLine, Session, SessionInfo, Status
from tray.engine.group import GroupInfo, NamespaceGroup
from tray.domain.spec import ForwardSpec
from tray.kube.watches import WatchRegistry

log = logging.getLogger(__name__)

__all__ = ["ForwardManager", "StatusEvent", "ListEvent", "ConnectionEvent", "ClusterConn"]


@dataclass(frozen=True)
class StatusEvent:
    """A forward's status changed (or its pod, local port or reason did).

    ``status`` is one of :class:`tray.domain.status.Status`'s values;
    ``local_port`` the bound port (0 before it is bound); ``pod_name`` the pod
    in use ("" when none); ``error`` the reason while ``error`` or
    ``reconnecting``, "" otherwise; ``session`` the full snapshot.
    """

    session_id: str
    status: str
    local_port: int
    pod_name: str
    error: str
    session: SessionInfo


@dataclass(frozen=True)
class ListEvent:
    """The forwards now known, in start order (sent on start, stop, remove and a change of pod;
    during a burst of them, at most one per :data:`LIST_EVERY` seconds, the last one after it)."""

    sessions: list[SessionInfo]


@dataclass(frozen=True)
class ConnectionEvent:
    """A local connection failed inside the pod (kubectl prints these as
    "an error occurred forwarding ..."): at most one per second per forward,
    ``suppressed`` counting the others since the previous event."""

    session_id: str
    pod_name: str
    port: int
    error: str  # short, e.g. "connection refused"
    suppressed: int
    session: SessionInfo


Event = StatusEvent | ListEvent | ConnectionEvent
Subscriber = Callable[[Event], None]

#: Seconds between two list events while forwards start, stop or change pods in a burst
#: (:meth:`ForwardManager._list_changed`).
LIST_EVERY = 0.1


def _files_stamp(paths: str) -> tuple[tuple[str, int, int], ...]:
    stamp = []
    for p in paths.split(os.pathsep):
        try:
            st = os.stat(os.path.expanduser(p))
            stamp.append((p, st.st_mtime_ns, st.st_size))
        except OSError:
            stamp.append((p, -1, -1))
    return tuple(stamp)


class ForwardManager:
    """The engine: every forward of one kubeconfig, run on a background asyncio thread.

    Thread-safe: call it from any thread but its own (a subscriber, which
    runs on the engine thread, may call :meth:`stop`, :meth:`retry` and
    :meth:`remove`: they are then scheduled, not awaited).  Methods that
    wait for the engine do so for at most 30 s and then raise
    ``TimeoutError``; none waits on the cluster except where it says so.
    Call :meth:`shutdown` once at the end.
    """

    def __init__(self, kubeconfig: str | None = None) -> None:
        """``kubeconfig``: a path list (``os.pathsep``-separated), else ``$KUBECONFIG`` or ``~/.kube/config``.

        Reads no file yet; starts the engine thread (``tender-engine``, a
        daemon) and returns at once.
        """
        self.kubeconfig = kubeconfig_paths(kubeconfig)
        self._lock = threading.RLock()
        self._sessions: dict[str, Session] = {}
        self._order: list[str] = []
        self._clusters: dict[str, ClusterConn] = {}
        self._subscribers: list[Subscriber] = []
        self._proxies: dict[str, Any] = {}  # context -> tray.engine.proxy.ClusterProxy (start_proxy)
        # Namespace groups (start_group) by id, and each member forward's group.
        self._groups: dict[str, NamespaceGroup] = {}
        self._group_of: dict[str, NamespaceGroup] = {}
        self._clusters_cache: tuple[tuple[tuple[str, int, int], ...], list[ClusterInfo]] | None = None
        self._list_at = -1e9  # loop time of the last list event
        self._list_timer: asyncio.TimerHandle | None = None  # the next one, due at the end of a burst
        self._loop = asyncio.new_event_loop()
        self._watches = WatchRegistry()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tender-engine", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ plumbing
    def _call(self, coro: Any, timeout: float | None = 30.0) -> Any:
        if threading.current_thread() is self._thread:
            # Called from a subscriber: schedule, never block the loop on itself.
            self._loop.create_task(coro)
            return None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def subscribe(self, fn: Subscriber) -> None:
        """Call ``fn(event)`` for every later :data:`Event`, on the engine thread (it must return quickly).

        An exception ``fn`` raises is logged and dropped.  Never blocks beyond the manager's lock.
        """
        with self._lock:
            self._subscribers.append(fn)

    def unsubscribe(self, fn: Subscriber) -> None:
        """Stop calling ``fn`` (no error if it was not subscribed); an event being delivered may still reach it."""
        with self._lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

    def _emit(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:
                log.exception("event subscriber failed")

    def _info(self, session: Session) -> SessionInfo:
        group = self._group_of.get(session.id)
        return session.info() if group is None else group.annotate(session.info())

    def _on_session_change(self, session: Session, pod_changed: bool) -> None:
        info = self._info(session)
        self._emit(StatusEvent(session.id, info.status, info.local_port, info.pod_name, info.status_reason
                               if info.status in (Status.ERROR, Status.RECONNECTING) else "", info))
        if pod_changed:
            self._list_changed()

    def _list_changed(self) -> None:
        """The list changed (a start, a stop, a pod): a :class:`ListEvent` now, or, within
        :data:`LIST_EVERY` of the previous one, a single one at the end of that interval for
        every change meanwhile.

        A list event holds every forward's snapshot: one per change made starting a
        thousand profiles O(n²) (23 s to start them, 1.8 GB held by the events).  A
        lone change is still told at once.  Runs on the loop; never blocks.
        """
        if self._list_timer is not None:
            return  # one is due: it shows this change too
        wait = self._list_at + LIST_EVERY - self._loop.time()
        if wait <= 0:
            self._emit_list()
        else:
            self._list_timer = self._loop.call_later(wait, self._emit_list)

    def _emit_list(self) -> None:
        if self._list_timer is not None:
            self._list_timer.cancel()
            self._list_timer = None
        self._list_at = self._loop.time()
        self._emit(ListEvent(self.list()))

    def _on_connection_failure(self, session: Session, failure: ConnectionFailure) -> None:
        self._emit(ConnectionEvent(session.id, failure.pod_name, failure.port, failure.error,
                                   failure.suppressed, self._info(session)))

    # ------------------------------------------------------------ clusters
    def clusters(self) -> list[ClusterInfo]:
        """The kubeconfig's contexts, re-read whenever one of its files changed.

        Parsing a kubeconfig costs milliseconds; starting 200 profiles asks
        200 times, so the answer is kept until a file's size or mtime moves.
        Blocks the caller for the read (milliseconds; up to
        ``tray.kube.kubeconfig.REREAD_FOR`` seconds for a file caught
        mid-rewrite).  Raises :class:`UsageError` for a broken kubeconfig.
        """
        stamp = _files_stamp(self.kubeconfig)
        with self._lock:
            if self._clusters_cache is not None and self._clusters_cache[0] == stamp:
                return list(self._clusters_cache[1])
        infos = list_clusters(self.kubeconfig)
        with self._lock:
            self._clusters_cache = (stamp, infos)
        return list(infos)

    def _cluster(self, cluster_id: str) -> ClusterConn:
        # The kubeconfig is read again on every call, even for a context
        # already in use: a context removed from the file while forwards run
        # on it must fail new starts with a clear error (the running forwards
        # keep their loaded credentials and go on).  Before, the cached
        # connection let starts succeed on a context the file no longer had.
        infos = {c.id: c for c in self.clusters()}
        with self._lock:
            conn = self._clusters.get(cluster_id)
        if conn is not None and cluster_id in infos:
            return conn
        if cluster_id not in infos:
            known = ", ".join(sorted(infos)) or "none"
            raise UsageError(f'context "{cluster_id}" not found in the kubeconfig (contexts: {known})',
                             source=self.kubeconfig, field="context")
        with self._lock:
            return self._clusters.setdefault(cluster_id, ClusterConn(infos[cluster_id], self.kubeconfig))

    def preflight(self, cluster_id: str) -> None:
        """Load a context's credentials now, in the calling thread.

        The CLI calls it before starting, so kubeconfig trouble (a broken exec
        plugin, an unreadable certificate) is a one-line usage error.  Never
        call it from a UI thread: an exec plugin may take its time (it blocks
        for as long as the plugin runs).  Raises :class:`UsageError` for an
        unknown context or a kubeconfig whose credentials cannot be loaded.
        """
        conn = self._cluster(cluster_id)
        conn.auth.refresh(full=True)
        conn.mark_loaded()

    def api_for(self, cluster_id: str) -> ClusterConn:
        """The cluster connection (the tray's browser lists resources through it).

        Use its ``api`` on the engine loop (:meth:`run`).  Reads the
        kubeconfig (see :meth:`clusters`); raises :class:`UsageError` for a
        context it does not have.
        """
        return self._cluster(cluster_id)

    def run(self, coro: Any, timeout: float | None = 30.0) -> Any:
        """Run a coroutine on the engine loop and wait for it (not from the loop).

        Returns what it returns and raises what it raises; blocks for at
        most ``timeout`` seconds (None: no limit), then raises
        ``TimeoutError`` (the coroutine goes on).
        """
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ------------------------------------------------------------ the API
    def start(self, spec: ForwardSpec) -> str:
        """Start the forward ``spec`` describes; returns its session id at once (does not block on the cluster).

        Raises :class:`UsageError` (with ``field``) for a port out of range, a
        local port another forward of this engine holds, or an unknown
        context.  ``address`` ``auto`` listens on the forward's own
        ``127.A.B.C`` (:func:`tray.engine.autoaddress.resolve_address`; on
        macOS an address without its ``lo0`` alias is a :class:`UsageError`).
        Everything later (no such target, no ready pod, a refused
        port-forward) shows as the session's status, never as an exception.
        Blocks only for the engine's lock (microseconds).
        """
        cluster, namespace, target = spec.cluster, spec.namespace, spec.target
        container_port, local_port, address, profile = spec.remote_port, spec.local_port, spec.address, spec.profile
        if local_port is not None and not (0 <= local_port <= 65535):
            raise UsageError(f"local port {local_port} is out of range 1-65535 (0: any free port)",
                             field="local_port")
        if isinstance(container_port, int) and not (1 <= container_port <= 65535):
            raise UsageError(f"remote port {container_port} is out of range 1-65535", field="container_port")
        conn = self._cluster(cluster)
        ns = namespace or conn.default_namespace
        address = resolve_address(address, cluster, ns, target.name)  # address: auto -> its own 127.A.B.C
        with self._lock:
            if local_port:
                for other in self._sessions.values():
                    if other.local_port == local_port and other.status != Status.STOPPED and (
                        listeners_clash(other.address, address)
                    ) and other.protocol == spec.protocol:
                        raise UsageError(
                            f"local port {local_port} is already used by the forward to "
                            f"{other.target} ({other.conn.id}/{other.namespace})", field="local_port")
            session = Session(
                conn=conn, watches=self._watches, namespace=ns, target=target,
                remote_port=container_port, local_port=local_port, address=address,
                profile=profile, on_change=self._on_session_change,
                on_connection_failure=self._on_connection_failure, balance=spec.balance,
                protocol=spec.protocol, relay_image=spec.relay_image,
            )
            self._sessions[session.id] = session
            self._order.append(session.id)
        # Scheduled, not awaited: the loop runs calls in order, so a stop or retry of this id
        # made later still finds it started; waiting for each start's turn of the loop cost
        # a thread hand-off per forward (about 1 s of 1,000 profiles' start).
        self._loop.call_soon_threadsafe(self._start, session)
        return session.id

    def _start(self, session: Session) -> None:
        session.start()
        self._list_changed()

    def get(self, session_id: str) -> SessionInfo:
        """A snapshot of one forward; raises :class:`UsageError` for an unknown id.  Never blocks on the engine."""
        return self._info(self._session(session_id))

    def _session(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise UsageError(f"no forward with id {session_id}")
        return session

    def logs(self, session_id: str) -> list[LogLine]:
        """A forward's recent log lines, oldest first (at most
        :data:`~tray.engine.forwardlog.LOG_LINES`): status changes with their
        reasons, pods chosen, reconnect attempts, failed connections, stop.

        Raises :class:`UsageError` for an unknown id.  Never blocks on the engine (a copy under a short lock).
        """
        return self._session(session_id).log.lines()

    def list(self) -> list[SessionInfo]:
        """Snapshots of every forward, in start order (stopped ones are gone).  Never blocks on the engine."""
        with self._lock:
            return [self._info(self._sessions[i]) for i in self._order if i in self._sessions]

    def stop(self, session_id: str) -> None:
        """Stop a forward and drop it from the list.

        Its listener closes and its open connections are cut.  Waits for
        that (milliseconds; ``TimeoutError`` after 30 s); from a subscriber
        it is scheduled instead.  Raises :class:`UsageError` for an unknown id.
        A group's id (:meth:`start_group`) stops the group and all its members,
        and so does a member of a profile's group (a profile stops as a whole).
        """
        with self._lock:
            group = self._groups.get(session_id)
            member_of = self._group_of.get(session_id)
            if group is None and member_of is not None and member_of.spec.profile is not None:
                group = member_of
        if group is not None:
            self._call(self._stop_group(group))
            return
        session = self._session(session_id)
        self._call(self._stop(session))

    async def _stop(self, session: Session) -> None:
        await session.stop()
        with self._lock:
            self._group_of.pop(session.id, None)
            self._sessions.pop(session.id, None)
            if session.id in self._order:
                self._order.remove(session.id)
        self._list_changed()

    def stop_cluster(self, cluster_id: str) -> list[str]:
        """Stop every forward of one context (``cluster_id``: the context name); returns their ids.

        Waits as :meth:`stop` does, once per forward; an unknown context stops nothing.
        """
        with self._lock:
            ids = [g.id for g in self._groups.values() if g.conn.id == cluster_id]
            ids += [s.id for s in self._sessions.values() if s.conn.id == cluster_id and s.id not in self._group_of]
        for i in ids:
            self.stop(i)
        return ids

    def retry(self, session_id: str) -> None:
        """Start a forward in ``error`` again, with the credentials the kubeconfig names now.

        Does nothing for a forward in any other status.  Waits for its
        credentials to reload (an exec plugin may run; ``TimeoutError`` after
        30 s, the retry goes on); from a subscriber it is scheduled instead.
        What follows shows as the forward's status.  Raises
        :class:`UsageError` for an unknown id.
        """
        session = self._session(session_id)
        if session.status not in (Status.ERROR,):
            return
        self._call(self._retry(session))

    async def _retry(self, session: Session) -> None:
        await session.stop(Status.STARTING)
        # The user may have fixed the kubeconfig (a new token, `aws sso
        # login`, RBAC granted to another user): Retry uses what it says now,
        # as a new kubectl would.  An exec plugin may be slow: off the loop.
        try:
            await asyncio.to_thread(session.conn.auth.refresh, full=True)
        except TenderError as exc:
            await session.stop(Status.ERROR, str(exc))
            return
        session.start()

    def remove(self, session_id: str) -> None:
        """Drop an errored (or stopped) forward from the list; waits and raises as :meth:`stop` does."""
        session = self._session(session_id)
        self._call(self._stop(session))

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop every forward and the engine thread; a second call does nothing.

        Blocks for at most about twice ``timeout`` seconds (closing the API
        clients, then joining the thread), and never raises: what is still
        open then is left to the process's exit.
        """
        if self._loop.is_closed():
            return  # shut down already
        for context in list(self._proxies):
            try:
                self.stop_proxy(context)
            except Exception:
                pass
        with self._lock:
            ids = list(self._groups) + list(self._order)  # groups first: they would start members again
        for i in ids:
            try:
                self.stop(i)
            except UsageError:
                pass

        async def close_all() -> None:
            if self._list_timer is not None:
                self._emit_list()  # the last list, as it is after the stops
            for conn in list(self._clusters.values()):
                await conn.api.aclose()
            # Stopped sessions close their spare streams in the background;
            # let those closes finish rather than stop the loop under them
            # ("Task was destroyed but it is pending", sockets left to the GC).
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=3)
            # The threads that loaded credentials (asyncio.to_thread).
            await asyncio.get_running_loop().shutdown_default_executor()

        try:
            self.run(close_all(), timeout)
        except Exception:
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            # Its epoll fd and wake-up socket pair; before, they (and the
            # executor's threads) stayed until the GC found the loop (found by
            # test_load: a process that made managers kept their fds).
            self._loop.close()

    def watch_keys(self) -> list[tuple[str, str, str]]:
        """The shared watches now open, as (context, namespace, resource) keys (for tests and the benchmark).

        Blocks until the engine loop answers (microseconds; ``TimeoutError`` after 30 s).
        """
        return self.run(self._watch_keys())

    async def _watch_keys(self) -> list[tuple[str, str, str]]:
        return self._watches.active()

    # ------------------------------------------------------------ namespace groups
    def start_group(self, spec: Any) -> str:
        """Forward every Service of a namespace and follow them (:mod:`tray.engine.group`); returns the group's id.

        ``spec``: a :class:`tray.domain.servicegroup.NamespaceSpec`.  Each
        Service port becomes a member forward (in :meth:`list`, with
        ``group`` set to the returned id) on the Service's own
        ``127.A.B.C`` and its real port; members of deleted Services stop,
        new ones start.  :meth:`stop` of the id stops them all.  Raises
        :class:`UsageError` for an unknown context or a selector that cannot
        be read.  Returns at once (does not wait for the cluster).
        """
        from tray.domain.servicegroup import parse_label_selector

        selector = parse_label_selector(spec.selector)
        conn = self._cluster(spec.cluster)
        group = NamespaceGroup(manager=self, conn=conn, watches=self._watches, spec=spec,
                               namespace=spec.namespace or conn.default_namespace, selector=selector)
        with self._lock:
            self._groups[group.id] = group
        self._call(group.start())
        return group.id

    def groups(self) -> list[GroupInfo]:
        """Snapshots of the running namespace groups, in start order.  Never blocks on the engine."""
        with self._lock:
            return [g.info() for g in self._groups.values()]

    def group(self, group_id: str) -> GroupInfo:
        """A snapshot of one group; raises :class:`UsageError` for an unknown id.  Never blocks on the engine."""
        with self._lock:
            group = self._groups.get(group_id)
        if group is None:
            raise UsageError(f"no group with id {group_id}")
        return group.info()

    def _start_member(self, spec: ForwardSpec, group: NamespaceGroup) -> str:
        session_id = self.start(spec)  # on the engine thread: its start is scheduled, after this returns
        with self._lock:
            self._group_of[session_id] = group
        return session_id

    async def _stop_member(self, session_id: str) -> None:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is not None:
            await self._stop(session)

    async def _stop_group(self, group: NamespaceGroup) -> None:
        await group.stop()
        with self._lock:
            self._groups.pop(group.id, None)
        self._emit(ListEvent(self.list()))

    # ------------------------------------------------------------ cluster proxies (issue 14)
    def start_proxy(self, context: str, listen: str = "127.0.0.1:1080") -> Any:
        """Start ``context``'s SOCKS5 + HTTP cluster proxy on ``listen``; returns its :class:`~tray.engine.proxy.ProxyInfo`.

        ``listen``: ``"HOST:PORT"`` (``"[::1]:1080"``; port 0: any free
        one, shown in the returned ``listen``).  One proxy per context.
        Raises :class:`UsageError` for a bad listen address, one that cannot
        be bound (in use), an unknown context, credentials that cannot be
        loaded, or a context that already has a proxy elsewhere (the same
        address: its info is returned).  Blocks for the kubeconfig read and
        the start (an exec plugin may run; ``TimeoutError`` after 30 s).
        Emits a :class:`ListEvent`.
        """
        from tray.engine.proxy import ClusterProxy, format_listen, parse_listen

        host, port = parse_listen(listen)
        conn = self._cluster(context)
        with self._lock:
            running = self._proxies.get(context)
        if running is not None:
            if running.listen == format_listen(host, port) or (port == 0 and running.host == host):
                return running.info()
            raise UsageError(f"context {context} already has a cluster proxy, on {running.listen}", field="context")
        proxy = ClusterProxy(conn, self._watches, host, port, on_change=lambda: None)
        self.run(proxy.start())
        with self._lock:
            other = self._proxies.setdefault(context, proxy)
        if other is not proxy:  # started meanwhile by another caller
            self.run(proxy.stop())
            raise UsageError(f"context {context} already has a cluster proxy, on {other.listen}", field="context")
        self._emit(ListEvent(self.list()))
        return proxy.info()

    def stop_proxy(self, context: str) -> None:
        """Stop ``context``'s proxy: its listener closes, its connections are cut, its watches are released.

        Nothing happens when the context has none.  Waits for it
        (milliseconds; ``TimeoutError`` after 30 s); from a subscriber it is
        scheduled instead.  Emits a :class:`ListEvent`.
        """
        with self._lock:
            proxy = self._proxies.pop(context, None)
        if proxy is not None:
            self._call(self._stop_proxy(proxy))

    async def _stop_proxy(self, proxy: Any) -> None:
        await proxy.stop()
        self._emit(ListEvent(self.list()))

    def proxies(self) -> list[Any]:
        """The running proxies' :class:`~tray.engine.proxy.ProxyInfo`, by context.  Never blocks on the engine."""
        with self._lock:
            return [self._proxies[c].info() for c in sorted(self._proxies)]
