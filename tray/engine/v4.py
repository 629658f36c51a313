"""The v4 link: one local TCP connection ⇄ one ``v4.channel.k8s.io`` WebSocket.

When a forward uses v4 (the API server has no SPDY tunnel, or
``TENDER_PORT_FORWARD=v4``; see :mod:`tray.engine.dialer`), every accepted
connection gets its own stream to the chosen pod through the API server.
This module is the thin asyncio layer on top of the sans-I/O
:mod:`tray.wire.framing`; the WebSocket upgrade itself is
:mod:`tray.kube.websocket`'s, spare streams are :mod:`tray.engine.pool`'s.
:class:`StreamResult`, :data:`READ_SIZE` and :data:`LINGER_IDLE` are shared
with the SPDY tunnel (:mod:`tray.engine.tunnel`), which ends its
connections the same way.

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
import logging
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tray.kube.kubeapi import KubeAPI
from tray.kube.websocket import close_ws, connect_websocket, forget_traceback, portforward_url
from tray.wire.framing import SUBPROTOCOL, Data, ErrorText, PortForwardChannel, ProtocolError, encode_data

log = logging.getLogger(__name__)

__all__ = ["StreamResult", "Traffic", "open_stream", "pump", "LINGER_IDLE", "READ_SIZE"]

#: How much to read from the local socket at once.  Large reads mean fewer,
#: larger WebSocket frames: the per-frame cost dominates bulk transfers.
READ_SIZE = 256 * 1024
#: After the local client's EOF, how long a silent pod may keep the stream (seconds).
LINGER_IDLE = 5.0


@dataclass
class StreamResult:
    """How one forwarded connection ended (both paths: v4 and the SPDY tunnel).

    ``bytes_up``/``bytes_down``: bytes from the local client to the pod and
    back; ``error``: the kubelet's text ("" if none); ``dropped``: the path
    died under the open connection.
    """

    bytes_up: int = 0
    bytes_down: int = 0
    error: str = ""  # text from the error channel (e.g. connection refused in the pod)
    dropped: bool = False  # the stream died under an open connection (network drop)
    #: SPDY tunnel only: the tunnel ended before the kubelet saw this
    #: connection, which may start again on a fresh one, sending these bytes
    #: first (and then FIN if ``replay_eof``).  The local socket is left open.
    replay: bytes | None = None
    replay_eof: bool = False


class Traffic:
    """A forward's byte counters, shared by all its connections (both paths: v4 and the SPDY tunnel).

    ``bytes_in``: bytes received from the pod (what local clients
    downloaded); ``bytes_out``: bytes sent to the pod (what they uploaded).
    The copy loops add to them as data passes, one integer addition per
    socket read, on the engine's loop; any thread may read them.
    """

    __slots__ = ("bytes_in", "bytes_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0


async def open_stream(api: KubeAPI, namespace: str, pod: str, port: int) -> ClientConnection:
    """Open a v4 port-forward WebSocket to ``pod``'s container ``port`` in ``namespace``.

    Returns the open connection, for :func:`pump`.  Awaits the dial and the
    upgrade (at most 15 s, twice if a 401 reloads the kubeconfig).  Raises
    what :func:`tray.kube.websocket.connect_websocket` raises:
    :class:`~tray.errors.ForbiddenError` (403),
    :class:`~tray.errors.NotFound` (404), :class:`~tray.errors.Unauthorized`,
    :class:`~tray.errors.ClusterUnreachable`, another
    :class:`~tray.errors.TenderError`.
    """
    return await connect_websocket(api, portforward_url(api.auth.server, namespace, pod, port), SUBPROTOCOL)


async def pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws: ClientConnection, port: int,
    traffic: Traffic | None = None,
) -> StreamResult:
    """Relay bytes between the local connection and ``ws`` (open to container ``port``) until both sides are done.

    ``traffic``: the forward's counters, added to as bytes pass (None: not counted).

    Awaits the whole connection: until the pod's side closes, the stream
    drops, the local client resets, or the pod stays silent
    :data:`LINGER_IDLE` seconds after the client's EOF.  Then closes
    ``writer`` and ``ws``.  Returns how it ended; never raises for I/O
    errors (a broken channel protocol is ``error``, "protocol error: ...").
    """
    result = StreamResult()
    counters = traffic if traffic is not None else Traffic()
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
                counters.bytes_out += len(data)
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
                        counters.bytes_in += len(event.payload)
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
