"""One SPDY session per pod, tunnelled over one WebSocket: kubectl's path.

The WebSocket ``GET .../pods/NAME/portforward`` with subprotocol
``SPDY/3.1+portforward.k8s.io`` makes the API server open a SPDY session to
the kubelet and copy bytes between the two.  A :class:`Tunnel` owns one such
WebSocket; every local TCP connection it carries is a pair of SPDY streams
(error + data, see :mod:`tray.spdy`), opened in one message without waiting
for the kubelet's reply.  Compared with ``v4.channel.k8s.io`` (one WebSocket
per connection, :mod:`tray.stream`), a new connection costs no TLS handshake,
no HTTP upgrade and no apiserver→kubelet dial: kubectl's latency, and the
kubelet decodes SPDY instead of masked WebSocket frames on uploads.

The rules, and why:

* Half-close is real here: the local client's EOF becomes FIN on the data
  stream, and the pod's reply keeps flowing.  The kubelet ends the data
  stream (FIN) once the pod's side has closed; that ends the connection.
  A pod that never closes after our FIN is cut after ``LINGER_IDLE``
  (:data:`tray.stream.LINGER_IDLE`) of silence, as on the v4 path.
* The kubelet writes why a connection failed on the error stream (e.g.
  "connection refused" inside the pod) and then resets the streams; that
  fails the one connection, not the tunnel.
* The tunnel ending under open connections (the API server or kubelet
  going away, drop-connections, a network cut) marks them ``dropped``; the
  session then checks the path and moves on.
* A tunnel can be dead without knowing it: the API server keeps the client's
  WebSocket open after its kubelet connection closed (drop-connections, a
  kubelet restart) until the client next sends something, and a slept
  laptop or a cut network says nothing at all.  So a tunnel silent for
  :data:`CHECK_AFTER` seconds is checked with a SPDY PING (answered by the
  kubelet itself, so it proves the whole path) before a new connection uses
  it, and every :data:`CHECK_AFTER` seconds while it carries connections.
  No answer within :data:`REPLY_TIMEOUT` (or a new stream not acknowledged
  within it) aborts the tunnel; a new connection then gets a fresh one
  before it has sent anything, so nothing is ever sent twice.
* The WebSocket's binary payload is not read message by message: it is
  diverted, as it arrives, straight into the SPDY parser
  (:mod:`tray.wsstream`), and pod bytes reach the local client in one write
  per socket read.  (The API server sends one message per 16 KiB TLS
  record; handling them one by one cost a quarter of download speed.)
* A connection whose tunnel ends before the kubelet acknowledged its
  streams starts again on a fresh tunnel, once, with the bytes it had sent
  (kept until the acknowledgement, up to :data:`REPLAY_LIMIT`).  That is
  the common way to meet a dead tunnel: the API server noticed, and closes
  our WebSocket, only when the new connection's SYN_STREAM reaches it.  The
  kubelet acknowledges a stream before it dials the pod, so such a
  connection never reached the pod.  Not after our own timeout, though: a
  frozen kubelet may still act on what it has queued.
* No SPDY flow control exists on the kubelet's side, so back-pressure is the
  transport's: when one local client stops reading and its buffer passes
  :data:`HIGH_WATER`, the tunnel pauses reading the WebSocket until it
  drains, holding up the tunnel's other connections as kubectl does.
  Memory stays bounded.
* A tunnel with no connections closes after :data:`IDLE_CLOSE` seconds, so
  an unused forward holds nothing open on the API server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from collections.abc import Callable
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed

from tray.errors import TenderError
from tray.kubeapi import KubeAPI
from tray.spdy import (
    MAX_STREAM_ID,
    RST_CANCEL,
    RST_REFUSED_STREAM,
    SUBPROTOCOL,
    GoAway,
    Ping,
    SpdyEncoder,
    SpdyError,
    SpdyParser,
    StreamData,
    StreamPushed,
    StreamReply,
    StreamReset,
)
from tray import stream
from tray.stream import READ_SIZE, StreamResult, connect_websocket, forget_traceback, portforward_url

log = logging.getLogger(__name__)

__all__ = ["Tunnel", "TunnelUnsupported", "REPLY_TIMEOUT", "CHECK_AFTER", "IDLE_CLOSE", "HIGH_WATER"]

#: Seconds the kubelet may take to acknowledge a new stream (it does so
#: before dialling the pod, normally within milliseconds).
REPLY_TIMEOUT = 10.0
#: Seconds of silence after which a tunnel is PINGed before it is trusted.
CHECK_AFTER = 5.0
#: Seconds a tunnel without connections stays open for the next one.
IDLE_CLOSE = 60.0
#: Bytes queued for one local client above which the tunnel stops reading.
HIGH_WATER = 1 << 20
#: Bytes of a connection kept until the kubelet acknowledges it, for a replay.
REPLAY_LIMIT = 64 * 1024
#: Cap on the error text kept per connection.
MAX_ERROR_CHARS = 64 * 1024


class TunnelSocket(Protocol):
    """What the tunnel needs of its WebSocket (``tray.stream``'s client connection)."""

    transport: Any  # pause_reading / resume_reading / is_closing

    @property
    def close_code(self) -> int | None: ...

    def divert(self, sink: Callable[[bytes | memoryview], None] | None) -> None: ...

    async def send(self, message: bytes) -> None: ...

    async def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class TunnelUnsupported(TenderError):
    """The API server did not negotiate the SPDY tunnel subprotocol."""


class _Connection:
    """The tunnel's side of one forwarded TCP connection (two SPDY streams)."""

    def __init__(self, writer: asyncio.StreamWriter, error_id: int, data_id: int) -> None:
        loop = asyncio.get_running_loop()
        self.writer = writer
        self.error_id, self.data_id = error_id, data_id
        self.result = StreamResult()
        self.replied = False  # the kubelet's SYN_REPLY for the data stream
        self.finished = loop.create_future()
        self.last_rx = loop.time()
        self._error = b""
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self.unacked: list[bytes] | None = []  # sent before the kubelet's reply; None: too much
        self._unacked_size = 0
        self.local_eof = False

    def deliver(self, payload: bytes | memoryview) -> bool:
        """Pass pod bytes to the local client; False if it is gone.

        The API server forwards the kubelet's bytes in pieces of one TLS
        record (16 KiB), one WebSocket message each: writing each to the
        socket made one send() per 16 KiB, a fifth of Tender's CPU in a
        download.  Pieces are gathered instead and written once the whole
        socket read they came in has been handled (``call_soon``), in one
        send().  They are views of that read's bytes, which nothing mutates.
        """
        loop = asyncio.get_running_loop()
        self.last_rx = loop.time()
        if self.writer.transport.is_closing():
            return False
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(payload)
        self._pending_size += len(payload)
        self.result.bytes_down += len(payload)
        return True

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending, self._pending_size = self._pending, [], 0
        if not self.writer.transport.is_closing():
            self.writer.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def buffered(self) -> int:
        """Bytes on their way to the local client, ours and the transport's."""
        return self._pending_size + self.writer.transport.get_write_buffer_size()

    def error_text(self, payload: bytes | memoryview) -> None:
        self.last_rx = asyncio.get_running_loop().time()
        if len(self._error) < MAX_ERROR_CHARS:
            self._error += payload[: MAX_ERROR_CHARS - len(self._error)]
            self.result.error = self._error.decode("utf-8", "replace")

    def sent(self, data: bytes) -> None:
        """Keep what goes out before the kubelet's reply, for a replay."""
        if self.unacked is not None and not self.replied:
            self._unacked_size += len(data)
            if self._unacked_size <= REPLAY_LIMIT:
                self.unacked.append(data)
            else:
                self.unacked = None

    def end(self, *, reset: StreamReset | None = None, dropped: bool = False, unseen: bool = False) -> None:
        """``unseen``: the tunnel ended and the kubelet cannot have seen this connection."""
        if self.finished.done():
            return
        if reset is not None and not self.result.error:
            self.result.error = f"the kubelet reset the connection ({reset.reason})"
        if dropped and not self.result.error:
            if unseen and not self.replied and self.unacked is not None:
                self.result.replay = b"".join(self.unacked)
                self.result.replay_eof = self.local_eof
            else:
                self.result.dropped = True
        self.finished.set_result(None)


class Tunnel:
    """One port-forward SPDY session to one pod.  Runs on the engine's loop."""

    @classmethod
    async def open(cls, api: KubeAPI, namespace: str, pod: str) -> Tunnel:
        """Open a tunnel; raises the project's precise errors, or TunnelUnsupported."""
        ws = await connect_websocket(api, portforward_url(api.auth.server, namespace, pod, None), SUBPROTOCOL,
                                     ping=False)  # the tunnel's own SPDY PINGs prove the whole path
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close()
            forget_traceback(ws)
            raise TunnelUnsupported(f"the API server chose subprotocol {ws.subprotocol or 'none'}, not {SUBPROTOCOL}")
        tunnel = cls(ws, pod)  # type: ignore[arg-type]  # tray.stream's connection class diverts
        # After any reload a 401 caused inside connect_websocket: the
        # credentials the tunnel was finally opened with.
        tunnel.auth_generation = api.auth.generation
        return tunnel

    def __init__(self, ws: TunnelSocket, pod: str, *, idle_close: float | None = None,
                 reply_timeout: float | None = None) -> None:
        self.pod = pod
        self.auth_generation = 0  # which credentials opened it (ClusterAuth.generation)
        self._ws = ws
        self._encoder = SpdyEncoder()
        self._parser = SpdyParser()
        self._next_id = 1  # client streams are odd and increasing
        self._requests = itertools.count()
        self._routes: dict[int, _Connection] = {}  # both stream ids of each open connection
        self._active = 0
        self._retired = False
        self._going_away = False
        self.closed_reason: str | None = None
        self._idle_close = IDLE_CLOSE if idle_close is None else idle_close
        self._reply_timeout = REPLY_TIMEOUT if reply_timeout is None else reply_timeout
        self._idle_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Future[object]] = set()
        self._last_rx = asyncio.get_running_loop().time()
        self._pings: dict[int, asyncio.Future[bool]] = {}  # True: answered, False: tunnel ended
        self._next_ping = 1  # ours are odd, the server's even
        self._checking: asyncio.Future[bool] | None = None
        self._stalled = False  # reading paused for a slow local client (back-pressure)
        self._broken = False  # the kubelet broke the framing: ignore the rest
        ws.divert(self._on_bytes)  # binary payload straight to the SPDY parser
        self._watcher = asyncio.ensure_future(self._watch())
        self._keepalive: asyncio.Task[None] | None = asyncio.ensure_future(self._keep_alive())
        self._arm_idle()

    # ------------------------------------------------------------ state
    @property
    def usable(self) -> bool:
        """Whether a new connection may use this tunnel."""
        return (self.closed_reason is None and not self._retired and not self._going_away
                and self._next_id + 4 <= MAX_STREAM_ID)

    @property
    def connections(self) -> int:
        return self._active

    async def answers(self) -> bool:
        """False if the tunnel is dead: silent for CHECK_AFTER and no answer to a PING now.

        Concurrent callers share one PING.  A tunnel that spoke recently is
        trusted without one (the latency of busy forwards is untouched).
        """
        if self.closed_reason is not None:
            return False
        if self._stalled or asyncio.get_running_loop().time() - self._last_rx < CHECK_AFTER:
            return True  # spoke recently, or has data waiting that we hold back ourselves
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(self._ping())
        return await asyncio.shield(self._checking)

    async def _ping(self) -> bool:
        ping_id, self._next_ping = self._next_ping, self._next_ping + 2
        answer = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = answer
        try:
            if not await self._send(SpdyEncoder.ping(ping_id)):
                return False
            return await asyncio.wait_for(answer, self._reply_timeout)
        except TimeoutError:
            if self.closed_reason is None:
                self.abort(f"no answer to a ping within {self._reply_timeout:.0f} s")
            return False
        finally:
            self._pings.pop(ping_id, None)

    async def _keep_alive(self) -> None:
        """PING a silent tunnel that carries connections, so a dead one ends them."""
        while self.closed_reason is None:
            await asyncio.sleep(CHECK_AFTER)
            if self._active:
                await self.answers()

    def suspect(self) -> None:
        """Check with a PING before the next connection (one just failed on it)."""
        self._last_rx = -CHECK_AFTER

    def retire(self) -> None:
        """Take no new connections; close once the open ones are done."""
        self._retired = True
        self._arm_idle()

    def abort(self, reason: str) -> None:
        """End the tunnel now; its open connections count as dropped."""
        if self.closed_reason is None:
            self.closed_reason = reason
            log.info("port-forward tunnel to %s: %s", self.pod, reason)
        self._end_connections()  # now, not after the closing handshake
        self._spawn(self._ws.close())

    async def close(self) -> None:
        if self.closed_reason is None:
            self.closed_reason = "closed"
        self._end_connections()
        await self._ws.close()
        await asyncio.wait([self._watcher])

    def _end_connections(self, *, unseen: bool = False) -> None:
        for conn in list(self._routes.values()):
            conn.end(dropped=True, unseen=unseen)
        for answer in self._pings.values():
            if not answer.done():
                answer.set_result(False)

    def _arm_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if self._active == 0 and self.closed_reason is None:
            delay = 0.0 if self._retired else self._idle_close
            self._idle_timer = asyncio.get_running_loop().call_later(delay, self._idle_expired)

    def _idle_expired(self) -> None:
        self._idle_timer = None
        if self._active == 0 and self.closed_reason is None:
            self.closed_reason = "idle"
            self._spawn(self._ws.close())

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send(self, frame: bytes) -> bool:
        try:
            await self._ws.send(frame)
            return True
        except ConnectionClosed:
            return False

    # ------------------------------------------------------------ reading
    def _on_bytes(self, chunk: bytes | memoryview) -> None:
        """Binary payload from the WebSocket, as it arrives (called from its data_received)."""
        self._last_rx = asyncio.get_running_loop().time()
        if self._broken:
            return
        try:
            for event in self._parser.feed(chunk):
                self._dispatch(event)
        except SpdyError as exc:
            self._broken = True
            self.abort(f"protocol error from the kubelet: {exc}")

    async def _watch(self) -> None:
        """Wait for the WebSocket to end; then so do the tunnel's connections."""
        try:
            await self._ws.wait_closed()
        finally:
            far_side = self.closed_reason is None  # not our abort (a timeout: the kubelet may yet act)
            if far_side:
                code = self._ws.close_code
                self.closed_reason = ("the API server ended the port-forward session" if code == 1000
                                      else f"port-forward session lost (WebSocket close code {code})")
                log.info("port-forward tunnel to %s: %s", self.pod, self.closed_reason)
            self._end_connections(unseen=far_side)
            # Let go of everything that refers back to the tunnel (the socket's
            # sink; the cancelled keepalive task, whose CancelledError holds
            # its frame): a dead tunnel (a zlib stream and TLS buffers,
            # ~0.4 MB) is then freed at once, not at the next full collection
            # (the hour-long soak grew 25 MB in 12 minutes without this).
            keepalive, self._keepalive = self._keepalive, None
            if keepalive is not None:
                keepalive.cancel()
            self._ws.divert(None)
            forget_traceback(self._ws)

    def _dispatch(self, event: object) -> None:
        if isinstance(event, StreamData):
            conn = self._routes.get(event.stream_id)
            if conn is None:
                return  # the tail of a connection that already ended
            if event.stream_id == conn.error_id:
                if event.payload:
                    conn.error_text(event.payload)
                return
            if event.payload:
                if not conn.deliver(event.payload):
                    self._cancel(conn)
                    return
                if conn.buffered() > HIGH_WATER and not self._stalled:
                    self._stall(conn)
            if event.fin:
                conn.end()
        elif isinstance(event, StreamReply):
            conn = self._routes.get(event.stream_id)
            if conn is not None and event.stream_id == conn.data_id:
                conn.replied = True
                conn.unacked = None
                if event.fin:
                    conn.end()
        elif isinstance(event, StreamReset):
            conn = self._routes.get(event.stream_id)
            if conn is not None:
                # The error stream's reset follows the error text; the data
                # stream's ends the connection either way.
                conn.end(reset=event)
        elif isinstance(event, Ping):
            if event.ping_id % 2 == 0:  # the server's: echo it
                self._spawn(self._send(SpdyEncoder.ping(event.ping_id)))
            else:  # the answer to ours
                answer = self._pings.get(event.ping_id)
                if answer is not None and not answer.done():
                    answer.set_result(True)
        elif isinstance(event, GoAway):
            # No new streams; those after last_good were never seen by the kubelet.
            self._going_away = True
            for conn in list(self._routes.values()):
                if conn.data_id > event.last_good:
                    conn.end(dropped=True, unseen=True)
        elif isinstance(event, StreamPushed):
            self._spawn(self._send(SpdyEncoder.rst_stream(event.stream_id, RST_REFUSED_STREAM)))

    def _stall(self, conn: _Connection) -> None:
        """Stop reading the WebSocket until a slow local client has caught up."""
        conn.flush()
        self._stalled = True
        self._ws.transport.pause_reading()

        async def catch_up() -> None:
            try:
                await conn.writer.drain()
            except (ConnectionError, OSError):
                self._cancel(conn)
            finally:
                self._stalled = False
                # Silence while we held back is ours, not the kubelet's.
                self._last_rx = asyncio.get_running_loop().time()
                if not self._ws.transport.is_closing():
                    self._ws.transport.resume_reading()

        self._spawn(catch_up())

    def _cancel(self, conn: _Connection) -> None:
        """The local client went away: tell the kubelet to stop sending."""
        if not conn.finished.done():
            self._spawn(self._send(SpdyEncoder.rst_stream(conn.data_id, RST_CANCEL)))
            conn.end()

    # ------------------------------------------------------------ forwarding
    async def forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, *,
                      replay: bytes = b"", replay_eof: bool = False) -> StreamResult:
        """Carry one local connection to ``port`` in the pod; never raises for I/O errors.

        ``replay``/``replay_eof``: what an earlier attempt had sent (see
        :attr:`StreamResult.replay`), sent first.  When the result has
        ``replay`` set, the local socket is left open for the caller.
        """
        error_id, data_id = self._next_id, self._next_id + 2
        self._next_id += 4
        conn = _Connection(writer, error_id, data_id)
        conn.local_eof = replay_eof
        if replay:
            conn.sent(replay)
        if self.closed_reason is not None:
            conn.end(dropped=True, unseen=True)
            if conn.result.replay is None:
                _close_writer(writer)
            return conn.result
        self._routes[error_id] = self._routes[data_id] = conn
        self._active += 1
        self._arm_idle()
        loop = asyncio.get_running_loop()
        headers = {"streamtype": "error", "port": str(port), "requestid": str(next(self._requests))}
        # kubectl's order: the error stream (closed at once on our side: we
        # never write to it), then the data stream; one message, no wait.
        opening = (self._encoder.syn_stream(error_id, headers) + SpdyEncoder.data(error_id, b"", fin=True)
                   + self._encoder.syn_stream(data_id, {**headers, "streamtype": "data"}))
        if replay:
            opening += SpdyEncoder.data(data_id, replay)
        if replay_eof:
            opening += SpdyEncoder.data(data_id, b"", fin=True)

        async def upstream() -> None:
            try:
                while not conn.local_eof:
                    data = await reader.read(READ_SIZE)
                    if not data:
                        conn.local_eof = True
                        await self._send(SpdyEncoder.data(data_id, b"", fin=True))
                        break
                    conn.result.bytes_up += len(data)
                    conn.sent(data)  # before the send: a cancelled send is still replayed
                    if not await self._send(SpdyEncoder.data(data_id, data)):
                        return  # the tunnel ended; the watcher ends the connection
            except (ConnectionError, OSError):
                self._cancel(conn)  # the client reset: no FIN, abort the stream
                return
            # After our FIN the pod may still be answering; once it has been
            # silent for LINGER_IDLE, end the stream (one setting for both paths).
            conn.last_rx = loop.time()
            while not conn.finished.done():
                idle = loop.time() - conn.last_rx
                if idle >= stream.LINGER_IDLE:
                    self._cancel(conn)
                    return
                await asyncio.sleep(stream.LINGER_IDLE - idle)

        pumping: asyncio.Future[None] | None = None
        reply_timer = loop.call_later(self._reply_timeout, self._unacknowledged, conn)
        try:
            if await self._send(opening):
                pumping = asyncio.ensure_future(upstream())
            else:
                conn.end(dropped=True, unseen=True)
            await conn.finished
        finally:
            reply_timer.cancel()
            if pumping is not None:
                pumping.cancel()
                await asyncio.wait([pumping])
            del self._routes[error_id], self._routes[data_id]
            self._active -= 1
            self._arm_idle()
            conn.flush()
            if conn.result.replay is None:
                _close_writer(writer)
        return conn.result

    def _unacknowledged(self, conn: _Connection) -> None:
        if conn.replied or conn.finished.done():
            return
        if self._stalled:  # the reply may be waiting behind data we hold back
            loop = asyncio.get_running_loop()
            loop.call_later(self._reply_timeout, self._unacknowledged, conn)
            return
        self.abort(f"the kubelet did not answer within {self._reply_timeout:.0f} s")


def _close_writer(writer: asyncio.StreamWriter) -> None:
    # close() flushes what is buffered in the background; awaiting drain()
    # here would hang on a client that stopped reading.
    writer.close()
