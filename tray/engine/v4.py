"""The data plane: one local TCP connection ⇄ one port-forward WebSocket.

Every accepted connection gets its own ``v4.channel.k8s.io`` stream to the
chosen pod through the API server.  This module is the thin asyncio layer on
top of the sans-I/O :mod:`tray.wire.framing`; it owns the sockets and nothing
else.

Why it looks the way it does:

* No thread per byte pump: two coroutines per connection, one per direction.
* Backpressure both ways: ``writer.drain()`` stops us reading the WebSocket
  when the local client is slow, and the WebSocket's write buffer limit stops
  us reading the local socket when the API server is slow.  Memory per
  connection is bounded by those buffers, whatever the transfer size.
* Close semantics: v4 has no half-close, so after the local client's EOF we
  keep delivering the pod's reply until the pod side closes (or stays silent
  for :data:`LINGER_IDLE` seconds: a client that closed fully looks the same
  as one that only shut down writing, and a keep-alive server never closes).
* One connection failing (refused in the pod, a reset) fails only that
  connection; the caller (the session) decides what it means for the forward.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from tray.errors import TenderError
from tray.wire.framing import SUBPROTOCOL, Data, ErrorText, PortForwardChannel, ProtocolError, encode_data
from tray.kube.kubeapi import KubeAPI, error_for, unreachable
from tray.wire.wsstream import FrameSplitter

log = logging.getLogger(__name__)

__all__ = ["StreamResult", "open_stream", "connect_websocket", "portforward_url", "pump", "LINGER_IDLE", "READ_SIZE"]

#: How much to read from the local socket at once.  Large reads mean fewer,
#: larger WebSocket frames: the per-frame cost dominates bulk transfers.
READ_SIZE = 256 * 1024
#: After the local client's EOF, how long a silent pod may keep the stream.
LINGER_IDLE = 5.0
#: WebSocket pings keep idle forwards alive through proxies and NATs and
#: detect a dead API server connection.
PING_INTERVAL = 30.0


@dataclass
class StreamResult:
    """How one forwarded connection ended."""

    bytes_up: int = 0
    bytes_down: int = 0
    error: str = ""  # text from the error channel (e.g. connection refused in the pod)
    dropped: bool = False  # the stream died under an open connection (network drop)
    #: SPDY tunnel only: the tunnel ended before the kubelet saw this
    #: connection, which may start again on a fresh one, sending these bytes
    #: first (and then FIN if ``replay_eof``).  The local socket is left open.
    replay: bytes | None = None
    replay_eof: bool = False


@functools.lru_cache(maxsize=64)
def _system_proxy(server: str) -> str | None:
    """The proxy the environment names for this server, looked up once.

    websockets would scan the environment on every connect (~2 % of the CPU
    per connection); the proxy settings do not change while Tender runs.
    """
    return get_proxy(parse_uri(portforward_url(server, "x", "x", 1)))


def portforward_url(server: str, namespace: str, pod: str, port: int | None) -> str:
    """The pod's portforward URL as a WebSocket URL.

    v4 names its one port in the query; the SPDY tunnel names ports per
    stream, so it passes ``None``.
    """
    base = server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    url = f"{base}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"
    return url if port is None else f"{url}?ports={port}"


async def open_stream(api: KubeAPI, namespace: str, pod: str, port: int) -> ClientConnection:
    """Open a v4 port-forward WebSocket; raises precise errors (403, 404, unreachable)."""
    return await connect_websocket(api, portforward_url(api.auth.server, namespace, pod, port), SUBPROTOCOL)


class _RawSubprotocolConnection(ClientConnection):
    """A client connection that offers one subprotocol verbatim.

    The tunnel's subprotocol ``SPDY/3.1+portforward.k8s.io`` contains "/",
    which is not an RFC 7230 token, so websockets refuses it when offered
    and cannot parse it when the server answers.  kubectl (gorilla) sends it
    as is; so does this: the name goes on the sans-I/O protocol object after
    connect()'s validation, and the answer is compared as a plain string.
    """

    offer = ""

    def __init__(self, protocol: Any, **kwargs: Any) -> None:
        protocol.available_subprotocols = [self.offer]
        protocol.process_subprotocol = functools.partial(_exact_subprotocol, self.offer)
        super().__init__(protocol, **kwargs)
        self._sink: Callable[[bytes | memoryview], None] | None = None
        self._splitter: FrameSplitter | None = None

    def divert(self, sink: Callable[[bytes | memoryview], None] | None) -> None:
        """From now on, binary payload goes to ``sink`` as it arrives (see :mod:`tray.wire.wsstream`).

        ``recv()`` then only ever sees what the library handles itself (pings,
        close); the caller learns of the end from ``wait_closed()``.  ``None``
        lets go of the sink once the connection is over, which breaks the
        reference cycle between it and its owner.
        """
        self._splitter = FrameSplitter() if sink is not None else None
        self._sink = sink

    def data_received(self, data: bytes) -> None:
        if self._splitter is None or self._sink is None:
            super().data_received(data)
            return
        for is_payload, piece in self._splitter.feed(data):
            if is_payload:
                self._sink(piece)
            else:
                super().data_received(bytes(piece))


def _exact_subprotocol(offer: str, headers: Any) -> str | None:
    answers = [value.strip() for value in headers.get_all("Sec-WebSocket-Protocol")]
    if not answers:
        return None
    if answers != [offer]:
        raise InvalidHandshake(f"the server chose subprotocol {', '.join(answers)!r}, not {offer!r}")
    return offer


@functools.lru_cache(maxsize=8)
def _offering(subprotocol: str) -> type[ClientConnection]:
    return type("RawSubprotocolConnection", (_RawSubprotocolConnection,), {"offer": subprotocol})


async def connect_websocket(api: KubeAPI, url: str, subprotocol: str, *, ping: bool = True) -> ClientConnection:
    """Upgrade ``url`` to a WebSocket offering ``subprotocol``, with the cluster's credentials.

    A 401 reloads the kubeconfig once (rotated tokens, exec plugins); other
    refusals become the project's precise errors.  The caller checks which
    subprotocol the server chose.  ``ping=False`` leaves liveness to the
    caller (the SPDY tunnel pings end to end, and a WebSocket ping could not
    be answered while it holds reading back for a slow client).
    """
    for attempt in (1, 2):
        headers, ctx = api.auth.snapshot()
        kwargs: dict[str, Any] = {}
        if isinstance(ctx, ssl.SSLContext):
            kwargs["ssl"] = ctx
            if api.auth.tls_server_name:
                kwargs["server_hostname"] = api.auth.tls_server_name
        try:
            return await connect(
                url,
                subprotocols=None,  # offered by the connection class (see above)
                create_connection=_offering(subprotocol),
                additional_headers=headers,
                compression=None,  # the API server does not negotiate it anyway
                max_size=None,  # frames are bounded by the kubelet's buffers
                ping_interval=PING_INTERVAL if ping else None,
                ping_timeout=PING_INTERVAL if ping else None,
                open_timeout=15,
                close_timeout=2,
                write_limit=(256 * 1024, 64 * 1024),
                max_queue=16,
                proxy=api.auth.proxy or _system_proxy(api.auth.server),
                user_agent_header="tender/0.1",
                **kwargs,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401 and attempt == 1:
                await api.reauthenticate()
                continue
            raise error_for(status, exc.response.body or b"") from None
        except InvalidHandshake as exc:
            raise TenderError(f"port-forward handshake failed: {exc}") from None
        except (OSError, TimeoutError) as exc:
            raise unreachable(exc) from None
    raise AssertionError("unreachable")


async def pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws: ClientConnection, port: int
) -> StreamResult:
    """Relay bytes until both sides are done; never raises for I/O errors."""
    result = StreamResult()
    channel = PortForwardChannel(port)
    local_eof = asyncio.Event()
    loop = asyncio.get_running_loop()
    last_rx = [loop.time()]

    async def upstream() -> None:
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                result.bytes_up += len(data)
                await ws.send(encode_data(data))
        except (ConnectionError, ConnectionClosed, OSError):
            pass
        finally:
            last_rx[0] = loop.time()
            local_eof.set()

    async def linger() -> None:
        # After the local EOF the pod may still be answering; once it has been
        # silent for LINGER_IDLE, end the stream (a keep-alive server never
        # closes on its own, and the client may have closed completely).
        await local_eof.wait()
        while True:
            idle = loop.time() - last_rx[0]
            if idle >= LINGER_IDLE:
                await close_ws(ws)
                return
            await asyncio.sleep(LINGER_IDLE - idle)

    async def downstream() -> None:
        try:
            while True:
                message = await ws.recv()
                last_rx[0] = loop.time()
                for event in channel.receive(message):
                    if isinstance(event, Data):
                        writer.write(event.payload)
                        result.bytes_down += len(event.payload)
                        if writer.transport.get_write_buffer_size() > 256 * 1024:
                            await writer.drain()
                    elif isinstance(event, ErrorText):
                        result.error += event.text
                if writer.transport.is_closing():
                    return
        except ConnectionClosed as exc:
            # 1000 is the pod side closing normally.  Anything else (no close
            # frame, 1006) while the local client still talks is a drop.
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            if code != 1000 and not local_eof.is_set() and not result.error:
                result.dropped = True
        except ProtocolError as exc:
            result.error = result.error or f"protocol error: {exc}"
        except (ConnectionError, OSError):
            pass

    up = asyncio.ensure_future(upstream())
    watchdog = asyncio.ensure_future(linger())
    try:
        await downstream()
    finally:
        for task in (up, watchdog):
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, ConnectionClosed):
                pass
        try:
            if not writer.transport.is_closing():
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()
        await close_ws(ws)
        forget_traceback(ws)
        channel.finish()
    return result


async def close_ws(ws: ClientConnection) -> None:
    """Close a WebSocket (the closing handshake, up to its close_timeout).

    Cancelled meanwhile (a forward stopped under a closing connection), the
    library leaves its TCP transport open for good: it waits for the server
    to close first and is not told to stop waiting.  Then the transport is
    aborted here, so no socket outlives the connection (found by test_load's
    500 start/stop: one TLS socket left after the engine's shutdown).
    """
    try:
        await ws.close()
    except asyncio.CancelledError:
        ws.transport.abort()
        raise


def forget_traceback(ws: ClientConnection) -> None:
    """Break the reference cycle a finished stream leaves behind.

    When the API server closes the TLS connection first (the usual end of a
    port-forward stream), the TLS shutdown's write fails with EPIPE and the
    WebSocket library keeps that error as ``connection_exc``; its traceback's
    frames hold the transport, which holds the connection: a cycle that only
    the cyclic GC frees, late (the objects are old by then).  Each carries a
    256 KiB TLS read buffer, so under load hundreds piled up: 64 clients in
    parallel took Tender from ~80 MB to ~250 MB RSS (found by test_load).
    """
    exc = getattr(ws, "connection_exc", None)
    for _ in range(8):  # its chain of causes, which is short (and must not loop)
        if exc is None:
            break
        exc.__traceback__ = None
        exc = exc.__context__ or exc.__cause__

