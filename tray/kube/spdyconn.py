"""SPDY/3.1 port-forward straight over an HTTP/1.1 upgrade: Tender's first path, kubectl's other.

kubectl (client-go's ``FallbackDialer``, ``tools/portforward``) first asks
for a WebSocket (``GET .../pods/NAME/portforward``), and when that upgrade
fails it falls back to the legacy SPDY dialer (``SpdyRoundTripper`` in
k8s.io/streaming's ``httpstream/spdy``)::

    POST /api/v1/namespaces/NS/pods/NAME/portforward HTTP/1.1
    Connection: Upgrade
    Upgrade: SPDY/3.1
    X-Stream-Protocol-Version: portforward.k8s.io

answered ``101 Switching Protocols`` with the same three headers, after
which SPDY/3.1 frames run directly on the TLS stream, with no WebSocket
framing.  The fallback matters for RBAC: the API server authorizes a
WebSocket upgrade (a GET) as ``get pods/portforward`` and the POST as
``create``, so a Role that grants only ``create`` (enough for kubectl) refuses
the WebSocket with 403 and accepts this.

This module dials that connection and gives it the interface the SPDY
session logic (:class:`tray.engine.tunnel.Tunnel`) expects of its WebSocket
(:class:`tray.engine.tunnel.TunnelSocket`), so every tunnel rule (PING liveness,
replay, stall containment, back-pressure by pausing reading) applies as is:

* :class:`Handshake` is the HTTP/1.1 exchange, sans-I/O, on the ``h11``
  library (already installed with httpx): the upgrade request, and the
  CONNECT to an HTTP proxy.  A refusal's body (a Kubernetes Status) becomes
  the project's precise error through :func:`tray.kube.kubeapi.error_for`
  (403 → ``ForbiddenError`` naming the verb, 404 → ``NotFound``, …).
* :class:`SpdySocket` is an asyncio protocol on the TLS transport.  After the
  upgrade every read goes as it arrives, without a copy, to the sink the
  tunnel gave :meth:`SpdySocket.divert`; :meth:`SpdySocket.send` writes one
  buffer and waits only while the transport's write buffer is above its high
  mark; the tunnel pauses reading on :attr:`SpdySocket.transport` itself.
* :func:`connect` dials with the REST client's credentials and TLS settings
  (:meth:`ClusterAuth.snapshot`: headers and SSLContext; ``tls-server-name``
  for SNI and verification), through ``proxy-url`` or the environment's
  proxy as the WebSocket dial does.  Only ``http://`` and ``https://``
  proxies are supported here (CONNECT, with basic credentials from the URL);
  a ``socks5://`` proxy is refused with one line saying so.  A 401 reloads
  the kubeconfig once, as everywhere else.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

import h11

from tray.errors import ClusterUnreachable, TenderError, UpgradeFailed
from tray.kube.kubeapi import KubeAPI, error_for, unreachable
from tray.kube.websocket import system_proxy

log = logging.getLogger(__name__)

__all__ = ["Handshake", "SpdySocket", "UpgradeFailed", "connect", "upgrade_request", "connect_request",
           "check_upgrade", "UPGRADE", "STREAM_PROTOCOL", "OPEN_TIMEOUT"]

#: The ``Upgrade`` token (client-go ``HeaderSpdy31``).
UPGRADE = "SPDY/3.1"
#: The ``X-Stream-Protocol-Version`` asked for and required in the answer
#: (client-go ``PortForwardProtocolV1Name``).
STREAM_PROTOCOL = "portforward.k8s.io"
#: Seconds for the whole dial: TCP, proxy CONNECT, TLS and the upgrade (as the WebSocket's ``open_timeout``).
OPEN_TIMEOUT = 15.0
#: Seconds a closing connection may take to flush and end before it is cut.
CLOSE_TIMEOUT = 2.0
#: Bytes of a refusal's body kept for the error message.
MAX_ERROR_BODY = 64 * 1024
#: The transport's write buffer marks (bytes): :meth:`SpdySocket.send` waits above the high one
#: until it drains below the low one (the WebSocket path's ``write_limit``).
WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024
#: Bytes queued by :meth:`SpdySocket.send` in one loop iteration past which they are written at once.
WRITE_GATHER = 256 * 1024
USER_AGENT = "tender/0.1"


class Handshake:
    """One HTTP/1.1 request whose answer should switch protocols (101, or 2xx to a CONNECT); sans-I/O.

    ``request`` holds the bytes to send.  :meth:`feed` takes the server's
    bytes as they come; once it returns True the answer is complete:
    ``status`` and ``headers`` (names lower-case, values as sent), ``body``
    (a refusal's, at most :data:`MAX_ERROR_BODY` bytes) and, when the
    protocol switched, ``trailing``: bytes after the answer's head, already
    the new protocol's.  Parsing is ``h11``'s (status line, header syntax,
    Content-Length or chunked bodies, a body ended by the close); a broken
    answer raises :class:`UpgradeFailed`.  Informational answers other than
    101 (``100 Continue``) are skipped, as Go's HTTP client does.
    """

    def __init__(self, method: str, target: str, headers: list[tuple[str, str]]) -> None:
        """``target``: the request target (a path and query, or ``host:port`` for CONNECT).

        Raises :class:`UpgradeFailed` if a header cannot be sent (a value with a line break).
        """
        self._h11 = h11.Connection(h11.CLIENT)
        try:
            self.request = (self._h11.send(h11.Request(method=method, target=target, headers=headers))
                            + (self._h11.send(h11.EndOfMessage()) or b""))
        except h11.LocalProtocolError:
            # Not the library's text: it would quote the offending value (a token, say).
            names = ", ".join(name for name, _ in headers)
            raise UpgradeFailed(f"cannot send the {method} request: a header value is not valid HTTP "
                                f"(one of {names})") from None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.trailing = b""
        self.switched = False
        self.done = False

    def feed(self, data: bytes) -> bool:
        """The server's next bytes (``b""``: it closed); True once the answer is complete.

        Raises :class:`UpgradeFailed` for an answer that breaks HTTP/1.1, or
        a connection closed before the answer was complete.
        """
        if self.done:
            return True
        try:
            self._h11.receive_data(data)
            while not self.done:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    if data == b"":
                        raise UpgradeFailed("the server closed the connection before its answer was complete")
                    return False
                if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                    continue  # 100 Continue and the like: the answer follows
                if isinstance(event, (h11.InformationalResponse, h11.Response)):
                    self.status = event.status_code
                    for name, value in event.headers:
                        key = name.decode("latin-1")
                        text = value.decode("latin-1")
                        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text
                    if self._h11.their_state is h11.SWITCHED_PROTOCOL:
                        self._switch()
                elif isinstance(event, h11.Data):
                    room = MAX_ERROR_BODY - len(self.body)
                    self.body += bytes(event.data[:room])
                    if len(self.body) >= MAX_ERROR_BODY:
                        self.done = True  # enough for a message; the rest is not read
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    self.done = True
                elif event is h11.PAUSED:
                    self._switch()
        except h11.RemoteProtocolError as exc:
            if data == b"":
                raise UpgradeFailed("the server closed the connection before its answer was complete") from None
            raise UpgradeFailed(f"the server's answer is not valid HTTP/1.1: {exc}") from None
        return True

    def _switch(self) -> None:
        self.switched = True
        self.done = True
        self.trailing = self._h11.trailing_data[0]


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def upgrade_request(server: str, namespace: str, pod: str, headers: dict[str, str]) -> Handshake:
    """The SPDY port-forward upgrade for ``pod``, as client-go's SpdyRoundTripper sends it.

    ``server``: the cluster's URL (``https://host:port[/prefix]``);
    ``headers``: the credentials' headers (``Authorization``), added as they are.
    """
    url = urlsplit(server)
    path = f"{url.path.rstrip('/')}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"
    return Handshake("POST", path, [
        ("Host", url.netloc.rpartition("@")[2]),
        ("User-Agent", USER_AGENT),
        ("Content-Length", "0"),
        ("Connection", "Upgrade"),
        ("Upgrade", UPGRADE),
        ("X-Stream-Protocol-Version", STREAM_PROTOCOL),
        *headers.items(),
    ])


def connect_request(target: str, proxy_url: str) -> Handshake:
    """``CONNECT target`` (``host:port``) to the proxy ``proxy_url``, with its user and password if it names them."""
    url = urlsplit(proxy_url)
    headers = [("Host", target), ("User-Agent", USER_AGENT)]
    if url.username is not None:
        pair = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
        headers.append(("Proxy-Authorization", "Basic " + base64.b64encode(pair).decode()))
    return Handshake("CONNECT", target, headers)


def check_upgrade(answer: Handshake) -> None:
    """Raise unless ``answer`` switched to SPDY/3.1 with the port-forward protocol.

    A refusal raises what :func:`tray.kube.kubeapi.error_for` makes of its status
    and body (403 → ``ForbiddenError`` with the API server's message, naming
    the verb).  A 101 must say ``Connection: Upgrade`` and ``Upgrade:
    SPDY/3.1`` (client-go ``SpdyRoundTripper.NewConnection``) and
    ``X-Stream-Protocol-Version: portforward.k8s.io`` (client-go
    ``PortForwarder.ForwardPorts``); otherwise :class:`UpgradeFailed`.
    """
    if answer.status != 101:
        raise error_for(answer.status, answer.body)
    connection = answer.headers.get("connection", "").lower()
    upgrade = answer.headers.get("upgrade", "").lower()
    if "upgrade" not in connection or UPGRADE.lower() not in upgrade:
        raise UpgradeFailed(f"unable to upgrade connection: the server switched to "
                            f"{answer.headers.get('upgrade') or 'nothing'!r}, not {UPGRADE}")
    chosen = answer.headers.get("x-stream-protocol-version", "")
    if chosen != STREAM_PROTOCOL:
        raise UpgradeFailed(f"unable to negotiate protocol: client supports {STREAM_PROTOCOL!r}, "
                            f"server returned {chosen!r}")


class SpdySocket(asyncio.Protocol):
    """A TLS (or TCP) stream after an HTTP/1.1 upgrade, as a :class:`tray.engine.tunnel.TunnelSocket`.

    Runs on the engine's loop.  Before :meth:`divert`, bytes after the
    upgrade's answer are kept and then handed over first, in order.  The
    end: the server closing (EOF, or a TLS close_notify) gives
    :attr:`close_code` 1000, a lost connection 1006 (the WebSocket codes the
    tunnel reads) with :attr:`close_detail` saying why.
    """

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.close_detail: str | None = None
        self._close_code: int | None = None
        self._closed: asyncio.Future[None] = loop.create_future()
        self._sink: Callable[[bytes | memoryview], None] | None = None
        self._early = b""  # after the answer, before divert (or not yet handed over)
        self._early_scheduled = False
        self._handshake: Handshake | None = None
        self._answered: asyncio.Future[Handshake] | None = None
        self._writing_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._out: list[bytes] = []  # sent in this loop iteration, written together (_flush)
        self._out_size = 0

    # ------------------------------------------------------------ TunnelSocket
    @property
    def close_code(self) -> int | None:
        """None while open; 1000 when it ended cleanly, 1006 when it was lost."""
        return self._close_code

    def divert(self, sink: Callable[[bytes | memoryview], None] | None) -> None:
        """Every byte read from now on goes to ``sink`` as it arrives (one call per read).

        Bytes that arrived before are handed over in a loop callback, before
        any later read.  ``None`` lets go of the sink (and of anything kept).
        """
        self._sink = sink
        if sink is None:
            self._early = b""
        elif self._early:
            self._schedule_early()

    async def send(self, message: bytes) -> None:
        """Queue ``message`` for writing; then wait while the write buffer is above :data:`WRITE_HIGH`.

        Messages sent in one loop iteration are written together, in order,
        at its end (or at once past :data:`WRITE_GATHER` bytes): one TLS
        record and one ``send()`` for many connections' frames, where each
        frame alone cost both (a third of Tender's CPU with 64 clients
        opening connections: py-spy, bench concurrency).  The order on the
        wire is the order of the calls, so the tunnel's frame counting holds.
        Raises ``ConnectionResetError`` once the connection is closed or closing.
        """
        transport = self.transport
        if self._close_code is not None or transport is None or transport.is_closing():
            raise ConnectionResetError("the port-forward connection is closed")
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(message)
        self._out_size += len(message)
        if self._out_size >= WRITE_GATHER:
            self._flush()
        if self._writing_paused:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drained)

    def _flush(self) -> None:
        """Write what :meth:`send` queued, as one buffer (nothing if the connection is closing)."""
        if not self._out:
            return
        out, self._out, self._out_size = self._out, [], 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))

    async def close(self) -> None:
        """Close (flushing what is buffered); cut after :data:`CLOSE_TIMEOUT` s.  Blocks until it ended."""
        transport = self.transport
        if transport is not None and not self._closed.done():
            self._flush()
            transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), CLOSE_TIMEOUT)
            except TimeoutError:
                transport.abort()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Block until the connection has ended, for whatever reason."""
        await asyncio.shield(self._closed)

    # ------------------------------------------------------------ the handshakes
    async def exchange(self, handshake: Handshake) -> Handshake:
        """Send ``handshake``'s request; block until its answer is complete (no time limit: the caller's).

        Raises :class:`UpgradeFailed` for a broken answer, ``ConnectionResetError``
        if the connection ends first.
        """
        assert self.transport is not None and self._handshake is None
        loop = asyncio.get_running_loop()
        self._handshake, self._answered = handshake, loop.create_future()
        try:
            self.transport.write(handshake.request)
            if self._closed.done():
                raise ConnectionResetError(self.close_detail or "the connection closed")
            return await self._answered
        finally:
            self._handshake = self._answered = None

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)

    def data_received(self, data: bytes) -> None:
        if self._handshake is not None:
            self._answer(data)
        elif self._sink is not None and not self._early:
            self._sink(data)
        else:
            self._early += data
            if self._sink is not None:
                self._schedule_early()

    def eof_received(self) -> bool | None:
        if self._handshake is not None:
            self._answer(b"")
        return None  # close the transport: the server has ended the session

    def connection_lost(self, exc: Exception | None) -> None:
        self._out, self._out_size = [], 0
        if exc is None:
            self._close_code = 1000
        else:
            self._close_code = 1006
            # Only the text: the exception's traceback would hold the transport and us.
            self.close_detail = f"connection lost: {' '.join(str(exc).split()) or type(exc).__name__}"
        if self._answered is not None and not self._answered.done():
            self._answered.set_exception(ConnectionResetError(
                self.close_detail or "the server closed the connection before it answered"))
        for waiter in (self._drained, self._closed):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # ------------------------------------------------------------ internals
    def _answer(self, data: bytes) -> None:
        handshake, answered = self._handshake, self._answered
        assert handshake is not None and answered is not None
        if answered.done():
            return
        try:
            complete = handshake.feed(data)
        except UpgradeFailed as exc:
            answered.set_exception(exc)
            return
        if complete:
            self._handshake = None
            if handshake.switched:
                self._early += handshake.trailing
            answered.set_result(handshake)

    def _schedule_early(self) -> None:
        if not self._early_scheduled:
            self._early_scheduled = True
            asyncio.get_running_loop().call_soon(self._hand_early)

    def _hand_early(self) -> None:
        self._early_scheduled = False
        data, self._early = self._early, b""
        if data and self._sink is not None:
            self._sink(data)


def _redacted(proxy: str) -> str:
    url = urlsplit(proxy)
    host = url.hostname or ""
    return f"{url.scheme}://{_host_port(host, url.port) if url.port else host}"


async def _dial(api: KubeAPI) -> tuple[SpdySocket, dict[str, str]]:
    """A connection to the API server (through its proxy, if any), TLS done; and the headers to send."""
    auth = api.auth
    headers, ctx = auth.snapshot()
    url = urlsplit(auth.server)
    secure = url.scheme == "https"
    host = url.hostname or ""
    port = url.port or (443 if secure else 80)
    tls: ssl.SSLContext | None = None
    if secure:
        tls = ctx if isinstance(ctx, ssl.SSLContext) else ssl.create_default_context()
    server_hostname = (auth.tls_server_name or host) if secure else None
    proxy = auth.proxy or system_proxy(auth.server)
    loop = asyncio.get_running_loop()
    sock = SpdySocket()
    if proxy is None:
        await loop.create_connection(lambda: sock, host, port, ssl=tls, server_hostname=server_hostname)
        return sock, headers
    purl = urlsplit(proxy)
    if purl.scheme not in ("http", "https"):
        raise TenderError(f"proxy-url {_redacted(proxy)}: a {purl.scheme or 'schemeless'} proxy is not supported "
                          f"for SPDY port-forwards (only http:// and https:// proxies)")
    proxy_tls = ssl.create_default_context() if purl.scheme == "https" else None
    raw, _ = await loop.create_connection(lambda: sock, purl.hostname, purl.port or (443 if proxy_tls else 80),
                                          ssl=proxy_tls)
    try:
        target = _host_port(host, port)
        answer = await sock.exchange(connect_request(target, proxy))
        if not answer.switched:
            message = f"proxy {_redacted(proxy)} refused CONNECT to {target}: HTTP {answer.status}"
            if answer.status in (502, 503, 504):
                raise ClusterUnreachable(f"cluster unreachable: {message}")
            raise TenderError(f"port-forward handshake failed: {message}")
        sock.divert(None)  # nothing may follow a proxy's answer before our TLS hello
        if tls is not None:
            inner = await loop.start_tls(raw, sock, tls, server_hostname=server_hostname)
            assert inner is not None
            sock.connection_made(inner)
    except BaseException:
        raw.abort()
        raise
    return sock, headers


async def connect(api: KubeAPI, namespace: str, pod: str) -> SpdySocket:
    """Open ``pod``'s SPDY port-forward connection (upgraded, ready for a :class:`tray.engine.tunnel.Tunnel`).

    Blocks for the dial and the upgrade, at most :data:`OPEN_TIMEOUT` seconds
    (twice when a 401 reloads the kubeconfig, which runs off the loop).
    Raises ``ClusterUnreachable`` (no connection in time, or none at all),
    ``Unauthorized`` (401 after the reload), ``ForbiddenError`` (403, the API
    server's message naming the verb), ``NotFound`` (404: the pod is gone),
    ``ApiError`` (other statuses), :class:`UpgradeFailed` (an answer that
    breaks HTTP/1.1 or switches to something else, or no answer to the
    upgrade in time on a connection that was made) or ``TenderError`` (an
    unsupported or refusing proxy).
    """
    for attempt in (1, 2):
        sock: SpdySocket | None = None
        dialled = False
        try:
            async with asyncio.timeout(OPEN_TIMEOUT):
                sock, headers = await _dial(api)
                dialled = True
                answer = await sock.exchange(upgrade_request(api.auth.server, namespace, pod, headers))
            if answer.status == 401 and attempt == 1:
                await sock.close()
                await api.reauthenticate()
                continue
            check_upgrade(answer)
            return sock
        except TimeoutError:
            _abort(sock)
            if dialled:
                # The API server (or a proxy before it) took the connection and the request
                # but never answered the upgrade: a path matter, not an unreachable cluster
                # (a proxy that passes WebSockets but swallows SPDY); the dialer falls back.
                raise UpgradeFailed(f"no answer to the SPDY port-forward upgrade within {OPEN_TIMEOUT:.0f} s") from None
            raise ClusterUnreachable(f"cluster unreachable: no answer within {OPEN_TIMEOUT:.0f} s") from None
        except (OSError, ssl.SSLError) as exc:
            _abort(sock)
            raise unreachable(exc) from None
        except BaseException:
            _abort(sock)
            raise
    raise AssertionError("unreachable")


def _abort(sock: SpdySocket | None) -> None:
    if sock is not None and sock.transport is not None:
        sock.transport.abort()
