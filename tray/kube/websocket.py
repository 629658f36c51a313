"""The WebSocket upgrade of a pod's ``portforward`` URL, with one context's credentials.

Both WebSocket port-forward paths start here: ``v4.channel.k8s.io`` (one
WebSocket per connection, :mod:`tray.engine.v4`) and the SPDY tunnel (one
per pod, :mod:`tray.engine.tunnel`).  This module knows the API server and
the ``websockets`` library; it knows nothing of forwards or of what the
connection then carries.

* :func:`connect_websocket` upgrades with the cluster's headers and TLS
  context, through the kubeconfig's ``proxy-url`` or the environment's
  proxy, and turns refusals into the errors of :mod:`tray.errors`.
* The connection class it returns offers its subprotocol verbatim (the
  tunnel's contains "/", which websockets refuses to offer) and can divert
  binary payload, as it arrives, to a sink (:mod:`tray.wire.wsstream`).
* :func:`close_ws` and :func:`forget_traceback` end a connection without
  leaving a socket or a reference cycle behind.

The connection class overrides ``ClientConnection.data_received``, an
internal of websockets: pyproject.toml pins the major version it was tested
with.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.proxy import get_proxy
from websockets.uri import parse_uri

from tray.errors import TenderError
from tray.kube.kubeapi import KubeAPI, error_for, unreachable
from tray.wire.wsstream import FrameSplitter

log = logging.getLogger(__name__)

__all__ = ["connect_websocket", "portforward_url", "system_proxy", "close_ws", "forget_traceback",
           "PING_INTERVAL"]

#: WebSocket pings keep idle forwards alive through proxies and NATs and
#: detect a dead API server connection (seconds; also the pong timeout).
PING_INTERVAL = 30.0


@functools.lru_cache(maxsize=64)
def system_proxy(server: str) -> str | None:
    """The proxy the environment names for this server, looked up once.

    ``server`` is the API server's URL (``https://host:port``).  Returns the
    proxy URL ``$https_proxy``/``$no_proxy`` (and the like) name for it, or
    ``None``.  Never raises, never blocks beyond reading the environment.
    websockets would scan the environment on every connect (~2 % of the CPU
    per connection); the proxy settings do not change while Tender runs.
    """
    return get_proxy(parse_uri(portforward_url(server, "x", "x", 1)))


def portforward_url(server: str, namespace: str, pod: str, port: int | None) -> str:
    """The pod's portforward URL as a WebSocket URL (``wss://``, or ``ws://`` for an ``http://`` server).

    v4 names its one port in the query; the SPDY tunnel names ports per
    stream, so it passes ``None``.  Pure; never raises.
    """
    base = server.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    url = f"{base}/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}/portforward"
    return url if port is None else f"{url}?ports={port}"


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

    ``url`` is a ``wss://`` URL (:func:`portforward_url`).  Returns the open
    connection (with ``divert``, see the class above); the caller checks
    which subprotocol the server chose (``None`` if it chose none).  Awaits
    the TCP/TLS connect and the upgrade: at most 15 s each try.  A 401
    reloads the kubeconfig once (rotated tokens, exec plugins; a worker
    thread) and tries again.  Raises :class:`~tray.errors.ForbiddenError`
    (403), :class:`~tray.errors.NotFound` (404),
    :class:`~tray.errors.Unauthorized` (401 again), another
    :class:`~tray.errors.ApiError` for other statuses,
    :class:`~tray.errors.ClusterUnreachable` (or
    :class:`~tray.errors.TLSVerificationError`) when the server cannot be
    reached, and :class:`~tray.errors.TenderError` for a broken handshake.
    ``ping=False`` leaves liveness to the caller (the SPDY tunnel pings end
    to end, and a WebSocket ping could not be answered while it holds
    reading back for a slow client); otherwise the library pings every
    :data:`PING_INTERVAL` seconds.
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
                proxy=api.auth.proxy or system_proxy(api.auth.server),
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


async def close_ws(ws: ClientConnection) -> None:
    """Close a WebSocket (the closing handshake, up to its close_timeout: 2 s).

    A connection already closed is no error.  Cancelled meanwhile (a forward stopped
    under a closing connection), the library leaves its TCP transport open
    for good: it waits for the server to close first and is not told to stop
    waiting.  Then the transport is aborted here, and the cancellation goes
    on, so no socket outlives the connection (found by test_load's 500
    start/stop: one TLS socket left after the engine's shutdown).
    """
    try:
        await ws.close()
    except asyncio.CancelledError:
        ws.transport.abort()
        raise


def forget_traceback(ws: ClientConnection) -> None:
    """Break the reference cycle a finished stream leaves behind; never blocks or raises.

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
