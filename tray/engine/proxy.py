"""The cluster proxy: SOCKS5 and HTTP proxying to Services and pods by their cluster names.

:class:`ClusterProxy` listens on one address (loopback unless asked) for one
kubeconfig context and serves two protocols on the same port, told apart by
the first byte a client sends: 0x05 starts SOCKS5 (:mod:`tray.wire.socks5`:
``curl --socks5-hostname``, browsers, JDBC's ``socksProxyHost``); anything
else is read as an HTTP proxy request (:mod:`tray.wire.httpproxy`: CONNECT
for ``HTTPS_PROXY``, absolute-URI requests for ``HTTP_PROXY``).

Each connection, on the engine's loop:

1. the handshake (at most :data:`HANDSHAKE_TIMEOUT` s) gives a host and port;
2. :func:`tray.domain.clusterdns.parse_host` says what the host names: a
   Service, a pod behind a headless Service, or an IP address;
3. the names are looked up in the shared watch caches of that namespace's
   Services and pods (:class:`tray.kube.watches.WatchRegistry`: one LIST,
   then a WATCH, shared with every forward; the proxy holds them until it
   stops or the namespace is unused for :data:`NAMESPACE_IDLE` s);
4. a Service's ready pods (Running, Ready, not terminating:
   :func:`tray.domain.selection.is_pod_usable`) are taken round robin per
   (Service, port), and the Service port is translated to the pod's
   ``targetPort`` (named ports per pod) as kube-proxy does; a headless
   Service, a pod name and a pod IP keep the port as asked (cluster DNS
   gives the pods' own addresses);
5. the pod is dialled through a :class:`tray.engine.dialer.Dialer` of its
   own (the port-forward tunnel, one per pod, closed when idle for
   :data:`DIALER_IDLE` s); a failed dial tries the next ready pod (up to
   :data:`DIAL_ATTEMPTS` pods), so a pod that vanished under a rollout
   costs a retry, not the connection;
6. for SOCKS5 and CONNECT the success is sent at once, before the pod's
   side is known: the kubelet dials the pod's port when the stream opens
   and says nothing when that works, so only a wait could tell, and every
   connection of a client that speaks first (HTTP, TLS) would pay it (a
   150 ms wait put the median SOCKS5 request at 180 ms in ``make bench``).
   A pod that refuses the port is then a connection that closes at once,
   as with ``kubectl port-forward``, and its reason is recorded
   (:attr:`ClusterProxy.last_error`, the failures log);
7. the bytes flow (:meth:`~tray.engine.dialer.Link.pump`).  A request in the
   absolute form (``HTTP_PROXY``) goes to the pod at once; when the pod
   errors before any byte of an answer reached the client, the client gets
   502 with the reason.

The first byte decides the protocol: 0x05 SOCKS5; 0x04 (SOCKS4/4a, not
served) is answered SOCKS4's "rejected" (0x5B) and closed; a byte that
cannot start an HTTP request (a TLS ClientHello's 0x16, other binary) closes
at once, printable text that cannot is answered 400; a request line that is
not HTTP/1.x is answered 400 as soon as it ends, and a head over
:data:`~tray.wire.httpproxy.MAX_HEAD` bytes 431.  Lines may end in a bare LF.

A Service of type ExternalName is followed when ``spec.externalName`` is a
cluster name (``svc.ns.svc.cluster.local``: looked up again, at most
:data:`EXTERNAL_NAME_DEPTH` times); any other host is outside the cluster
and refused (SOCKS5 0x04, HTTP 502).

Failures answer at once, in the client's protocol, with one line:

=========================================  ============  ====
what                                       SOCKS5 REP    HTTP
=========================================  ============  ====
unknown name, namespace or port            0x04 host     502
                                           unreachable
no ready pod behind the Service            0x05 refused  503
the pod refused the port                   0x05 refused  502
the API server refused (RBAC 403)          0x02 not      403
                                           allowed
cluster unreachable, credentials rejected  0x04          502
=========================================  ============  ====

An IP address is looked up in the caches already open; when none has it,
Services and pods are listed cluster-wide once (two LISTs: cost grows with
the cluster's size, a few MB for thousands of pods) and the answer kept for
:data:`ADDRESS_LIST_TTL` s; credentials that may not list cluster-wide get
a 403 for addresses outside the namespaces already open.

Every refusal and failure is logged (INFO) on the logger
``tray.engine.proxy.failures``, one line each, for a shell to show
(``tender proxy`` prints them, at most one a second).  A proxy listening on
an any-address (0.0.0.0, ::) logs a WARNING when it starts: anyone who can
reach this machine can use it, with the kubeconfig's credentials
(:func:`exposure_warning`; the record has ``exposure`` set, so a shell that
says it its own way can filter it out).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tray.domain import clusterdns, selection
from tray.domain.targets import KIND_PLURAL
from tray.engine.dialer import Dialer, Link
from tray.errors import ClusterUnreachable, ForbiddenError, TargetError, TenderError, UsageError
from tray.kube.kubeapi import Unauthorized
from tray.wire import httpproxy, socks5

if TYPE_CHECKING:
    from tray.engine.podtracker import CacheSource, PodCache
    from tray.kube.conn import ClusterConn

log = logging.getLogger(__name__)

__all__ = ["ClusterProxy", "ListenError", "ProxyInfo", "ProxyRefusal", "parse_listen", "format_listen",
           "HANDSHAKE_TIMEOUT", "SYNC_TIMEOUT", "DIALER_IDLE", "NAMESPACE_IDLE", "ADDRESS_LIST_TTL",
           "DIAL_ATTEMPTS", "EXTERNAL_NAME_DEPTH", "exposure_warning", "bind_hosts", "failures_log"]

#: Seconds a client has to finish its SOCKS5 or HTTP handshake.
HANDSHAKE_TIMEOUT = 30.0
#: Seconds the first LIST of a namespace's Services and pods may take.
SYNC_TIMEOUT = 10.0
#: A pod's dialer (and its tunnel) with no connection is closed after this many seconds.
DIALER_IDLE = 60.0
#: A namespace's caches nobody used for this many seconds are released.
NAMESPACE_IDLE = 600.0
#: Seconds a cluster-wide listing of Services and pods (for IP lookups) is reused.
ADDRESS_LIST_TTL = 10.0
#: Ready pods tried, one after another, before a connection is refused.
DIAL_ATTEMPTS = 3
#: ExternalName Services followed, one after another, before a name is refused.
EXTERNAL_NAME_DEPTH = 5
_JANITOR_INTERVAL = 10.0

#: Where each refusal and failure is logged (INFO), one line each (see the module docstring).
failures_log = logging.getLogger(__name__ + ".failures")

#: Refusal kind -> (SOCKS5 reply, HTTP status).
_ANSWERS = {
    "unknown": (socks5.REP_HOST_UNREACHABLE, 502),
    "no_endpoint": (socks5.REP_CONNECTION_REFUSED, 503),
    "forbidden": (socks5.REP_NOT_ALLOWED, 403),
    "unreachable": (socks5.REP_HOST_UNREACHABLE, 502),
    "refused": (socks5.REP_CONNECTION_REFUSED, 502),
}


@dataclass(frozen=True)
class ProxyInfo:
    """A running proxy: its ``context``, where it listens (``listen``: ``"127.0.0.1:1080"``,
    ``"[::1]:1080"``), the connections open now and since it started, and
    the last refusal or failure (one line, ``""`` when none), and ``warning``: one line when it
    listens where other machines can use it (:func:`exposure_warning`), else ``""``."""

    context: str
    listen: str
    connections: int
    connections_total: int
    last_error: str
    warning: str = ""


class ListenError(UsageError):
    """The proxy cannot listen where asked: in use (``errno`` EADDRINUSE), a port below
    ``net.ipv4.ip_unprivileged_port_start`` (EACCES), not this machine's address.  One line; field ``--listen``."""

    def __init__(self, message: str, errno: int | None) -> None:
        super().__init__(message, field="--listen")
        self.errno = errno


def _unprivileged_start() -> int:
    """Linux's ``net.ipv4.ip_unprivileged_port_start`` (1024 where it cannot be read)."""
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


def _listen_error(exc: OSError, host: str, port: int) -> ListenError:
    """The one line for a bind of ``host``:``port`` that failed with ``exc``."""
    import errno

    from tray.domain.servicegroup import privileged_hint

    if exc.errno == errno.EADDRINUSE:
        return ListenError(f"local port {port} is already in use on {host}", exc.errno)
    if exc.errno == errno.EACCES and (hint := privileged_hint(port, _unprivileged_start())):
        return ListenError(f"cannot listen on {format_listen(host, port)}: {hint}", exc.errno)
    return ListenError(f"cannot listen on {format_listen(host, port)}: {exc.strerror or exc}", exc.errno)


class ProxyRefusal(TenderError):
    """Why a connection cannot be served: ``kind`` (unknown, no_endpoint, forbidden, unreachable, refused)
    and one line."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def socks_reply(self) -> int:
        """The SOCKS5 REP code to answer with."""
        return _ANSWERS[self.kind][0]

    @property
    def http_status(self) -> int:
        """The HTTP status to answer with."""
        return _ANSWERS[self.kind][1]


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:1080"``, ``"[::1]:1080"``, ``"0.0.0.0:1080"``, ``"localhost:1080"``, ``"1080"`` -> (host, port).

    The host must be an IP address or ``localhost`` (kept: the proxy then
    listens on both loopbacks, 127.0.0.1 and ::1, see :func:`bind_hosts`),
    and a bare port means 127.0.0.1;
    the port 0..65535 (0: any free port).  Raises
    :class:`~tray.errors.UsageError` (field ``--listen``) otherwise.
    """
    bad = UsageError(f"bad listen address {text!r} (expected HOST:PORT, e.g. 127.0.0.1:1080 or [::1]:1080)",
                     field="--listen")
    text = text.strip()
    if text.isdigit():
        text = f"127.0.0.1:{text}"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise bad
    if host == "localhost":
        return host, int(port)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise bad from None
    if addr.version == 6 and not text.startswith("["):
        raise bad
    return str(addr), int(port)


def bind_hosts(host: str) -> list[str]:
    """The addresses to bind for ``host``: ``localhost`` is both loopbacks (``["127.0.0.1", "::1"]``,
    as ``tender forward --address localhost``), any other host itself."""
    return ["127.0.0.1", "::1"] if host == "localhost" else [host]


def exposure_warning(host: str) -> str:
    """The warning for a proxy listening on ``host``: one line for an any-address (0.0.0.0, ::), else ``""``."""
    try:
        anywhere = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        anywhere = False
    if not anywhere:
        return ""
    return (f"the proxy listens on every network interface ({host}): anyone who can reach this machine can use "
            "it to reach the cluster with your credentials")


def format_listen(host: str, port: int) -> str:
    """(host, port) -> ``"127.0.0.1:1080"`` or ``"[::1]:1080"``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class _Namespace:
    services: PodCache
    pods: PodCache
    used: float = field(default_factory=time.monotonic)


@dataclass
class _PodDialer:
    dialer: Dialer
    active: int = 0
    used: float = field(default_factory=time.monotonic)


class ClusterProxy:
    """One context's SOCKS5 + HTTP proxy (see the module docstring).  Runs on the engine's loop.

    ``conn``: the context's connection; ``caches``: the engine's
    :class:`~tray.kube.watches.WatchRegistry` (or a test's fake);
    ``host``/``port``: where to listen (port 0: any free one);
    ``on_change()``: called on the loop when :meth:`info` changes in a way
    worth showing (started, stopped, a new last error); must return quickly.
    """

    def __init__(self, conn: ClusterConn, caches: CacheSource, host: str, port: int, *,
                 on_change: Callable[[], None] | None = None) -> None:
        self.conn = conn
        self._caches = caches
        self.host, self.port = host, port
        self._on_change = on_change or (lambda: None)
        self.connections = 0
        self.connections_total = 0
        self.last_error = ""
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._namespaces: dict[str, _Namespace] = {}
        self._dialers: dict[tuple[str, str], _PodDialer] = {}
        self._rr: dict[tuple[str, str, int], int] = {}
        self._cluster_list: tuple[float, list[dict[str, Any]], list[dict[str, Any]]] | None = None
        self._janitor: asyncio.Task[None] | None = None
        self._more_servers: list[asyncio.base_events.Server] = []

    # ----------------------------------------------------------- life
    @property
    def listen(self) -> str:
        """Where it listens, ``"127.0.0.1:1080"`` (the bound port once started)."""
        return format_listen(self.host, self.port)

    def info(self) -> ProxyInfo:
        """A snapshot; never blocks (any thread may call it)."""
        return ProxyInfo(self.conn.id, self.listen, self.connections, self.connections_total, self.last_error,
                         exposure_warning(self.host))

    async def start(self) -> None:
        """Load the context's credentials (an exec plugin may run: seconds) and listen.

        Raises :class:`ListenError` (a :class:`~tray.errors.UsageError`) for
        an address that cannot be bound (in use: "local port N is already in
        use on HOST"; a privileged port: the sysctl that allows it; not this
        machine's), :class:`~tray.errors.UsageError` for a kubeconfig whose
        credentials cannot be loaded.
        """
        await self.conn.ensure_auth()
        hosts = bind_hosts(self.host)
        try:
            self._server = await asyncio.start_server(self._accept, hosts[0], self.port, reuse_address=True)
        except OSError as exc:
            raise _listen_error(exc, self.host, self.port) from None
        self.port = self._server.sockets[0].getsockname()[1]
        self._more_servers = []
        for host in hosts[1:]:
            try:
                self._more_servers.append(await asyncio.start_server(self._accept, host, self.port,
                                                                     reuse_address=True))
            except OSError as exc:
                if host == "::1" and exc.errno in (97, 99):  # no IPv6 here: 127.0.0.1 alone
                    continue
                self._server.close()
                for server in self._more_servers:
                    server.close()
                self._server = None
                raise _listen_error(exc, host, self.port) from None
        self._janitor = asyncio.get_running_loop().create_task(self._sweep(), name=f"proxy {self.listen} janitor")
        log.info("proxy for context %s listening on %s", self.conn.id, self.listen)
        if warning := exposure_warning(self.host):
            log.warning("proxy for context %s: %s", self.conn.id, warning, extra={"exposure": True})

    async def stop(self) -> None:
        """Stop listening, cut open connections, close the tunnels and release the caches.

        Returns when done (milliseconds); never raises.  A second call does nothing.
        """
        server, self._server = self._server, None
        more, self._more_servers = self._more_servers, []
        for extra in more:
            extra.close()
        if server is not None:
            server.close()
        if self._janitor is not None:
            self._janitor.cancel()
            self._janitor = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for entry in self._dialers.values():
            entry.dialer.close()
        self._dialers.clear()
        for ns in list(self._namespaces):
            await self._release(self._namespaces.pop(ns))
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), 5)
            except (TimeoutError, Exception):
                pass
            log.info("proxy for context %s on %s stopped", self.conn.id, self.listen)

    async def _release(self, entry: _Namespace) -> None:
        for cache in (entry.services, entry.pods):
            try:
                await self._caches.release(self.conn.id, cache)
            except Exception:  # a cache's stop failing must not keep the others
                log.exception("releasing a proxy cache failed")

    async def _sweep(self) -> None:
        """Close idle dialers (and those of pods gone) and release namespaces unused for long."""
        while True:
            await asyncio.sleep(_JANITOR_INTERVAL)
            now = time.monotonic()
            for key, entry in list(self._dialers.items()):
                ns_entry = self._namespaces.get(key[0])
                gone = ns_entry is None or key[1] not in ns_entry.pods.objects
                if entry.active == 0 and (gone or now - entry.used > DIALER_IDLE):
                    entry.dialer.close()
                    del self._dialers[key]
            busy = {ns for (ns, _), e in self._dialers.items() if e.active}
            for ns, entry in list(self._namespaces.items()):
                if ns not in busy and now - entry.used > NAMESPACE_IDLE:
                    del self._namespaces[ns]
                    await self._release(entry)

    def _fail(self, message: str) -> None:
        failures_log.info("%s", message)
        if message != self.last_error:
            self.last_error = message
            self._on_change()

    # ----------------------------------------------------------- connections
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.connections_total += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                first = await reader.readexactly(1)
            if first[0] == socks5.VERSION:
                await self._serve_socks(first, reader, writer)
            elif first[0] == socks5.SOCKS4_VERSION:
                writer.write(socks5.encode_socks4_reject())  # SOCKS4/4a: not served, said at once
            elif httpproxy.may_start_request(first[0]):
                await self._serve_http(first, reader, writer)
            elif 0x20 <= first[0] < 0x7F:  # text, but no request starts so
                writer.write(httpproxy.error_response(400, "not an HTTP request (nor SOCKS5)"))
            # else: binary that is neither (a TLS ClientHello, 0x16): close at once
        except asyncio.CancelledError:
            pass  # the proxy stopped; the connection ends here (see Session._accept)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, asyncio.LimitOverrunError):
            pass  # the client went away or stalled in its handshake
        except Exception:
            log.exception("proxy connection failed")
        finally:
            writer.close()
            self.connections -= 1
            self._tasks.discard(task)

    async def _serve_socks(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT):
            try:
                greeting = await _read_message(socks5.parse_greeting, first, reader)
                if not greeting.no_auth_offered:
                    writer.write(socks5.encode_method(socks5.METHOD_NONE_ACCEPTABLE))
                    return
                writer.write(socks5.encode_method(socks5.METHOD_NO_AUTH))
                request = await _read_message(socks5.parse_request, b"", reader)
            except socks5.Socks5Error as exc:
                if exc.reply is not None:
                    writer.write(socks5.encode_reply(exc.reply))
                return
            if request.command != socks5.CMD_CONNECT:
                writer.write(socks5.encode_reply(socks5.REP_COMMAND_NOT_SUPPORTED))
                return
        try:
            link, done = await self._open(request.host, request.port)
        except ProxyRefusal as exc:
            writer.write(socks5.encode_reply(exc.socks_reply))
            return
        writer.write(socks5.encode_reply(socks5.REP_SUCCEEDED))
        done(await link.pump(reader, writer))

    async def _serve_http(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                head = await _read_head(first, reader)
            request = httpproxy.parse_request_head(head)
        except httpproxy.HttpProxyError as exc:
            writer.write(httpproxy.error_response(exc.status, str(exc)))
            await _linger(reader, writer)
            return
        try:
            link, done = await self._open(request.host, request.port)
        except ProxyRefusal as exc:
            writer.write(httpproxy.error_response(exc.http_status, str(exc)))
            return
        if request.tunnel:
            writer.write(httpproxy.CONNECT_ESTABLISHED)
            done(await link.pump(reader, writer))
            return
        # A request in the absolute form: the pod gets it in the origin form.
        # The link pumps one end of a socket pair; this side writes the new
        # head and then copies the client's bytes (its body) and the answer.
        held = await _Held.open(link, done)
        held.my_writer.write(request.forward_head)
        result, answered = await held.carry(reader, writer)
        if not answered and (reason := _pod_failure(result, held.pod, held.port)):
            try:
                writer.write(httpproxy.error_response(502, reason))
            except (ConnectionError, RuntimeError):
                pass

    # ----------------------------------------------------------- resolution
    async def _open(self, host: str, port: int) -> tuple[Link, _Finisher]:
        """A link to what ``host``:``port`` names, and the callback to give its pump's result.

        Raises :class:`ProxyRefusal` (recorded as :attr:`last_error`).
        """
        try:
            namespace, candidates = await self._route(host, port)
            return await self._dial(namespace, candidates, host, port)
        except ProxyRefusal as exc:
            self._fail(str(exc))
            raise

    async def _route(self, host: str, port: int, depth: int = 0) -> tuple[str, list[tuple[str, int]]]:
        """The namespace and the (pod, container port) pairs to try, best first.

        ``depth``: ExternalName Services followed so far (at most :data:`EXTERNAL_NAME_DEPTH`).
        """
        if not 1 <= port <= 65535:
            raise ProxyRefusal("unknown", f"port {port} is out of range 1-65535")
        try:
            name = clusterdns.parse_host(host, self.conn.default_namespace or "default")
        except clusterdns.UnknownName as exc:
            raise ProxyRefusal("unknown", f"{exc} (context {self.conn.id})") from None
        if isinstance(name, clusterdns.AddressName):
            found = await self._find_address(name.ip)
            if found is None:
                raise ProxyRefusal("unknown", f"no Service or pod has address {name.ip} (context {self.conn.id})")
            kind, obj = found
            meta = obj.get("metadata") or {}
            if kind == "service":
                name = clusterdns.ServiceName(meta.get("namespace", ""), meta.get("name", ""))
            else:
                entry = await self._namespace(meta.get("namespace", ""))
                pod = entry.pods.objects.get(meta.get("name", ""), obj)
                return meta.get("namespace", ""), self._pod_candidates(pod, port, f"pod {meta.get('name')}")
        entry = await self._namespace(name.namespace)
        svc = entry.services.objects.get(name.service)
        where = f'namespace "{name.namespace}" (context {self.conn.id})'
        if svc is None:
            if not entry.services.objects and self._namespaces.get(name.namespace) is entry:
                # No Services at all (or no such namespace: its LIST is empty too): keep no
                # watches for it, so names from outside the cluster (www.example.com) cost none.
                del self._namespaces[name.namespace]
                await self._release(entry)
            raise ProxyRefusal("unknown", f'no Service "{name.service}" in {where}')
        if (svc.get("spec") or {}).get("type") == "ExternalName":
            return await self._external_name(svc, name, port, depth)
        pods = list(entry.pods.objects.values())
        if isinstance(name, clusterdns.PodName):
            try:
                pod = clusterdns.pod_for_hostname(svc, pods, name.hostname)
            except TargetError as exc:
                raise ProxyRefusal("unknown", _first_line(exc)) from None
            if pod is None:
                raise ProxyRefusal("unknown", f'no pod with hostname "{name.hostname}" behind Service '
                                              f'"{name.service}" in {where}')
            return name.namespace, self._pod_candidates(pod, port, f"svc/{name.service}")
        return name.namespace, self._service_candidates(svc, pods, port, name)

    async def _external_name(self, svc: dict[str, Any], name: clusterdns.ClusterName, port: int,
                             depth: int) -> tuple[str, list[tuple[str, int]]]:
        """Follow an ExternalName Service to the cluster name it stands for; refuse any other host."""
        target = str((svc.get("spec") or {}).get("externalName") or "").strip()
        desc = f'Service "{getattr(name, "service", "")}" in namespace "{getattr(name, "namespace", "")}"'
        if not target:
            raise ProxyRefusal("unknown", f"{desc} is an ExternalName without a name")
        inside = f".svc.{clusterdns.CLUSTER_DOMAIN}"
        if not target.lower().rstrip(".").endswith(inside):
            raise ProxyRefusal("unknown", f"{desc}: ExternalName to {target}: outside the cluster "
                                          "(not reachable through port-forward)")
        if depth >= EXTERNAL_NAME_DEPTH:
            raise ProxyRefusal("unknown", f"{desc}: more than {EXTERNAL_NAME_DEPTH} ExternalName Services "
                                          f"in a row (last: {target})")
        return await self._route(target, port, depth + 1)

    def _pod_candidates(self, pod: dict[str, Any], port: int, desc: str) -> list[tuple[str, int]]:
        if not selection.is_pod_usable(pod):
            raise ProxyRefusal("no_endpoint", selection.why_no_pod([pod], desc))
        return [(pod["metadata"]["name"], port)]

    def _service_candidates(self, svc: dict[str, Any], pods: list[dict[str, Any]], port: int,
                            name: clusterdns.ServiceName) -> list[tuple[str, int]]:
        desc = f"svc/{name.service}"
        try:
            selected = clusterdns.service_pods(svc, pods)
            if not clusterdns.is_headless(svc):
                selection.find_service_port(svc, port)  # a port the Service does not have: unknown
        except TargetError as exc:
            raise ProxyRefusal("unknown", f"{_first_line(exc)} (namespace {name.namespace}, "
                                          f"context {self.conn.id})") from None
        ready = [p for p in selected if selection.is_pod_usable(p)]
        if not ready:
            raise ProxyRefusal("no_endpoint", f"{selection.why_no_pod(selected, desc)} "
                                              f"(namespace {name.namespace}): no ready endpoint")
        key = (name.namespace, name.service, port)
        start = self._rr.get(key, 0) % len(ready)
        self._rr[key] = start + 1
        candidates = []
        for pod in ready[start:] + ready[:start]:
            if clusterdns.is_headless(svc):
                candidates.append((pod["metadata"]["name"], port))  # cluster DNS gives the pods' own addresses
                continue
            try:
                candidates.append((pod["metadata"]["name"], selection.container_port_for_service(svc, pod, port)))
            except TargetError:
                continue  # a named targetPort this pod does not declare (kube-proxy skips it too)
        if not candidates:
            raise ProxyRefusal("no_endpoint", f"no ready pod of {desc} (namespace {name.namespace}) "
                                              f"declares the target port of port {port}")
        return candidates

    async def _namespace(self, namespace: str) -> _Namespace:
        """The namespace's Services and pods caches, acquired once and synced; raises ProxyRefusal."""
        entry = self._namespaces.get(namespace)
        if entry is None:
            prefix, _ = KIND_PLURAL["Pod"]
            entry = _Namespace(
                services=self._caches.acquire(self.conn.id, self.conn.api, prefix, namespace, "services"),
                pods=self._caches.acquire(self.conn.id, self.conn.api, prefix, namespace, "pods"))
            self._namespaces[namespace] = entry
        entry.used = time.monotonic()
        try:
            await entry.services.wait_synced(SYNC_TIMEOUT)
            await entry.pods.wait_synced(SYNC_TIMEOUT)
            for cache in (entry.services, entry.pods):
                if isinstance(cache.error, (ForbiddenError, Unauthorized)):
                    raise cache.error  # refused since it synced (RBAC revoked): what it holds is not ours
        except TenderError as exc:
            if self._namespaces.get(namespace) is entry:
                del self._namespaces[namespace]
                await self._release(entry)
            raise _refusal(exc, f'namespace "{namespace}"', self.conn.id) from None
        return entry

    async def _find_address(self, ip: str) -> tuple[str, dict[str, Any]] | None:
        """What has address ``ip``: the open caches first, then a cluster-wide listing (kept briefly)."""
        services = [s for e in self._namespaces.values() for s in e.services.objects.values()]
        pods = [p for e in self._namespaces.values() for p in e.pods.objects.values()]
        found = clusterdns.find_by_ip(ip, services, pods)
        if found is not None:
            return found
        now = time.monotonic()
        if self._cluster_list is None or now - self._cluster_list[0] > ADDRESS_LIST_TTL:
            try:
                svc_list = await self.conn.api.get("/api/v1/services")
                pod_list = await self.conn.api.get("/api/v1/pods")
            except TenderError as exc:
                raise _refusal(exc, "all namespaces (to look up an address)", self.conn.id) from None
            self._cluster_list = (now, _items(svc_list), _items(pod_list))
        return clusterdns.find_by_ip(ip, self._cluster_list[1], self._cluster_list[2])

    async def _dial(self, namespace: str, candidates: list[tuple[str, int]], host: str,
                    port: int) -> tuple[Link, _Finisher]:
        last: TenderError | None = None
        for pod, container_port in candidates[:DIAL_ATTEMPTS]:
            key = (namespace, pod)
            entry = self._dialers.get(key)
            if entry is None:
                entry = self._dialers[key] = _PodDialer(Dialer(self.conn.api, namespace))
            entry.used = time.monotonic()
            try:
                link = await entry.dialer.connect(pod, container_port)
            except (ForbiddenError, Unauthorized, ClusterUnreachable) as exc:
                raise _refusal(exc, f'pod "{pod}" in namespace "{namespace}"', self.conn.id) from None
            except TenderError as exc:  # the pod went away (NotFound), the kubelet failed: the next one
                log.info("proxy %s: dial to pod %s failed: %s", self.listen, pod, exc)
                entry.dialer.connection_failed(dropped=True)
                last = exc
                continue
            entry.active += 1
            return link, self._finisher(entry, pod, container_port, host, port)
        raise ProxyRefusal("unreachable", f"cannot reach {host}:{port} (pod {candidates[0][0]}): "
                                          f"{_first_line(last) if last else 'no pod'}")

    def _finisher(self, entry: _PodDialer, pod: str, container_port: int, host: str,
                  port: int) -> _Finisher:
        def done(result: Any) -> None:
            entry.active -= 1
            entry.used = time.monotonic()
            if result.error or result.dropped:
                entry.dialer.connection_failed(dropped=result.dropped)
                self._fail(f"{host}:{port}: {_pod_failure(result, pod, container_port)}")
        return _Finisher(done, pod, container_port)


def _pod_failure(result: Any, pod: str, port: int) -> str:
    """Why the pod's side of a connection failed (one line), or ``""`` when it did not.

    ``result``: the pump's :class:`~tray.engine.v4.StreamResult`.  A refused
    dial (the kubelet's "connection refused") reads "connection refused by
    pod P port N".
    """
    error = (getattr(result, "error", "") or "").strip()
    if error:
        if "connection refused" in error.lower():
            return f"connection refused by pod {pod} port {port}"
        return f"pod {pod} port {port}: {error.splitlines()[0]}"
    if getattr(result, "dropped", False):
        return f"the connection to pod {pod} port {port} was lost"
    return ""


@dataclass(frozen=True)
class _Finisher:
    """What to call with a link's pump result (``done``), and the pod and container port it reaches."""

    done: Callable[[Any], None]
    pod: str
    port: int

    def __call__(self, result: Any) -> None:
        self.done(result)


class _Held:
    """A link pumped into one end of a socket pair; the proxy holds the other (``my_reader``/``my_writer``).

    So the proxy sees the pod's side (its first bytes, its end) before the
    client does.
    """

    def __init__(self, pumping: asyncio.Future[Any], done: _Finisher,
                 my_reader: asyncio.StreamReader, my_writer: asyncio.StreamWriter) -> None:
        self.pumping, self._done = pumping, done
        self.my_reader, self.my_writer = my_reader, my_writer
        self.pod, self.port = done.pod, done.port
        self._finished = False

    @classmethod
    async def open(cls, link: Link, done: _Finisher) -> _Held:
        mine, theirs = socket.socketpair()
        pod_reader, pod_writer = await asyncio.open_connection(sock=theirs)
        my_reader, my_writer = await asyncio.open_connection(sock=mine)
        return cls(asyncio.ensure_future(link.pump(pod_reader, pod_writer)), done, my_reader, my_writer)

    async def finish(self) -> Any:
        """Close this side, wait for the pump's result, hand it to ``done`` (once); the result."""
        self.my_writer.close()
        result = await self.pumping
        if not self._finished:
            self._finished = True
            self._done(result)
        return result

    async def carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[Any, bool]:
        """Copy the client's bytes to the pod and the pod's back, until the pod's side ends.

        Returns (the pump's result, whether any byte reached the client).
        Leaves ``writer`` open (the caller may still answer on it, then
        closes it); cancelled (the proxy stops), the pod's side goes too.
        """
        up = asyncio.ensure_future(_copy(reader, self.my_writer, half_close=True))
        sent = 0
        try:
            while data := await self.my_reader.read(65536):
                writer.write(data)
                sent += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            up.cancel()
            self.pumping.cancel()
            raise
        finally:
            up.cancel()
        return await self.finish(), sent > 0



#: After an error answer to a request the client may still be sending: how long and how much of it to read and drop.
_LINGER = (1.0, 1 << 20)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close after an error answer and drop what the client still sends (at most 1 s, 1 MiB).

    Closing with unread bytes makes the kernel reset the connection, and the
    client may then lose the answer (a 431 for a 200 KB head); this is HTTP
    servers' "lingering close".  Never raises for I/O errors.
    """
    seconds, most = _LINGER
    try:
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(seconds):
            dropped = 0
            while dropped < most and (data := await reader.read(65536)):
                dropped += len(data)
    except (ConnectionError, OSError, TimeoutError):
        pass


async def _read_head(first: bytes, reader: asyncio.StreamReader) -> bytes:
    """The request head that starts with ``first``, read line by line (never past the empty line).

    Raises :class:`~tray.wire.httpproxy.HttpProxyError`: 400 as soon as the
    first line cannot be a request line, 431 past :data:`~tray.wire.httpproxy.MAX_HEAD`
    bytes; what the reader raises when the client goes away.
    """
    head = first
    first_line = True
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise httpproxy.HttpProxyError(f"request head over {httpproxy.MAX_HEAD} bytes", status=431) from None
        if first_line:
            line, first_line = head + line, False
            head = b""
            httpproxy.check_request_line(line)
        head += line
        if len(head) > httpproxy.MAX_HEAD:
            raise httpproxy.HttpProxyError(f"request head over {httpproxy.MAX_HEAD} bytes", status=431)
        if len(head) > len(line) and httpproxy.is_head_end(line):
            return head


def _items(listing: dict[str, Any]) -> list[dict[str, Any]]:
    """A LIST's items, each given the namespace it is in (cluster-wide items carry it already)."""
    return [i for i in listing.get("items") or [] if isinstance(i, dict)]


def _refusal(exc: TenderError, what: str, context: str) -> ProxyRefusal:
    """An API error met while looking at ``what``, as the protocol's answer."""
    if isinstance(exc, ForbiddenError):
        return ProxyRefusal("forbidden", f"forbidden: {what} (context {context}): {_first_line(exc)}")
    if isinstance(exc, Unauthorized):
        return ProxyRefusal("unreachable", f"credentials rejected (context {context}): {_first_line(exc)}")
    if isinstance(exc, ClusterUnreachable):
        return ProxyRefusal("unreachable", f"cluster unreachable (context {context}): {_first_line(exc)}")
    return ProxyRefusal("unreachable", f"{what} (context {context}): {_first_line(exc)}")


async def _read_message(parse: Callable[[bytes], Any], data: bytes, reader: asyncio.StreamReader) -> Any:
    """Read exactly as many bytes as ``parse`` asks for (never past its message); its result."""
    while True:
        got = parse(data)
        if not isinstance(got, int):
            return got
        data += await reader.readexactly(got - len(data))


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, half_close: bool) -> None:
    """Copy until ``src`` ends; then half-close ``dst`` (``half_close``) or close it."""
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if half_close and dst.can_write_eof() and not dst.is_closing():
                dst.write_eof()
            else:
                dst.close()
        except (ConnectionError, OSError, RuntimeError):
            pass
