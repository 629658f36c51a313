"""One SPDY session per pod, over the POST upgrade or tunnelled in one WebSocket: kubectl's two paths.

The WebSocket ``GET .../pods/NAME/portforward`` with subprotocol
``SPDY/3.1+portforward.k8s.io`` makes the API server open a SPDY session to
the kubelet and copy bytes between the two.  A :class:`Tunnel` owns one such
WebSocket; every local TCP connection it carries is a pair of SPDY streams
(error + data, see :mod:`tray.wire.spdy`), opened in one message without waiting
for the kubelet's reply.  Compared with ``v4.channel.k8s.io`` (one WebSocket
per connection, :mod:`tray.engine.v4`), a new connection costs no TLS handshake,
no HTTP upgrade and no apiserver→kubelet dial: kubectl's latency, and the
kubelet decodes SPDY instead of masked WebSocket frames on uploads.

The same session also runs without the WebSocket, straight on the TLS stream
of an HTTP/1.1 upgrade (``POST``, :mod:`tray.kube.spdyconn`): kubectl's path
before 1.31 and Tender's first choice (:mod:`tray.engine.dialer` says why and
when the WebSocket is used instead).  Every rule below holds for both; only
``Tunnel.open`` knows which one it dialled.

The rules, and why:

* Half-close is real here: the local client's EOF becomes FIN on the data
  stream, and the pod's reply keeps flowing.  The kubelet ends the data
  stream (FIN) once the pod's side has closed; that ends the connection.
  A pod that never closes after our FIN is cut after ``LINGER_IDLE``
  (:data:`tray.engine.v4.LINGER_IDLE`) of silence, as on the v4 path.
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
  it, after every :data:`KEEPALIVE_AFTER` seconds of silence while it
  carries connections, and at once when the kubelet fails a connection.
  No answer within :data:`REPLY_TIMEOUT` (or a new stream not acknowledged
  within it) aborts the tunnel; a new connection then gets a fresh one
  before it has sent anything, so nothing is ever sent twice.
* The WebSocket's binary payload is not read message by message: it is
  diverted, as it arrives, straight into the SPDY parser
  (:mod:`tray.wire.wsstream`), and pod bytes reach the local client in one write
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
  Memory stays bounded.  Once that has lasted :data:`HELD_UP_AFTER`, new
  connections go to a fresh tunnel rather than wait behind it; one placed
  before that whose reply is still held back after the reply timeout fails
  (kubectl's would wait as long as the client does not read).
* The other way round, a pod that does not read what a connection sends
  would stall every connection of the tunnel, for good: the kubelet's SPDY
  library hands each stream's data to the copy to the pod from one of five
  frame workers, and waits there; behind the waiting worker its other
  frames wait, and once its queue is full (50 frames) the session's reader
  stops (:class:`KubeletQueues` has the rules).  kubectl freezes so.  Tender
  contains it: a connection sends its first :data:`FREE_BYTES` freely (any
  pod's socket takes that much); beyond them it is *bulk*, and it may have
  at most :data:`WINDOW` bytes and :data:`WINDOW_FRAMES` frames on their way
  that the kubelet is not known to have taken, known from PINGs aimed at its
  worker (an answered PING proves the worker handled what was queued before
  it).  New connections take stream ids whose workers hold no such bulk
  data, so they never queue behind it; liveness PINGs count only when aimed
  at such a clear worker.  What may wait at a worker is counted from its
  first bulk frame not known taken: frames of short connections, which no
  PING acknowledges, never count (they did once, and after ~52 of them the
  PING an upload waited for was refused, for good).  An upload whose worker
  could not be asked for an acknowledgement for :data:`REPLY_TIMEOUT` fails,
  with a warning, rather than wait in silence.  A worker whose PING stays unanswered while later
  ones come back is stuck: the tunnel then takes no new connections (the
  next one opens a fresh tunnel) and carries its open ones to their end.  A
  stuck connection neither delays nor drops the others.
* A tunnel with no connections closes after :data:`IDLE_CLOSE` seconds, so
  an unused forward holds nothing open on the API server.

Why one module of ~1000 lines: every rule above acts on the same state (the
open connections by stream id and by kubelet worker, the PINGs in flight,
the read pause), and they interlock (a PING is liveness check, keep-alive
and bulk acknowledgement at once; a connection's replay depends on the
tunnel's end).  Split apart, each piece would need the whole of that state.
What stands alone has left: the kubelet's queues (:mod:`tray.engine.kubeletqueues`),
the framing (:mod:`tray.wire.spdy`), the dial (:mod:`tray.kube.websocket`,
:mod:`tray.kube.spdyconn`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging

from collections.abc import Callable
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed

from tray.errors import TunnelUnsupported
from tray.kube.kubeapi import KubeAPI
from tray.wire.spdy import (
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
from tray.kube import spdyconn
from tray.kube.websocket import connect_websocket, forget_traceback, portforward_url
from tray.engine import v4
from tray.engine.kubeletqueues import WORKERS, KubeletQueues
from tray.engine.v4 import READ_SIZE, StreamResult, Traffic

log = logging.getLogger(__name__)

__all__ = ["Tunnel", "TunnelUnsupported", "KubeletQueues", "REPLY_TIMEOUT", "CHECK_AFTER", "KEEPALIVE_AFTER",
           "SUSPECT_AFTER", "IDLE_CLOSE",
           "HIGH_WATER", "FREE_BYTES", "WINDOW", "WINDOW_FRAMES", "STALL_AFTER"]

#: Seconds the kubelet may take to acknowledge a new stream (it does so
#: before dialling the pod, normally within milliseconds).
REPLY_TIMEOUT = 10.0
#: Seconds of silence after which a tunnel is PINGed before a new connection trusts it.
CHECK_AFTER = 5.0
#: Seconds of silence after which a tunnel carrying connections is PINGed.
KEEPALIVE_AFTER = 1.0
#: Seconds a liveness PING may go unanswered before new connections stop
#: using the tunnel (they go to a fresh one, whose dial is a new TCP flow);
#: the tunnel keeps its open connections until REPLY_TIMEOUT decides.
SUSPECT_AFTER = 2.0
#: Seconds a tunnel without connections stays open for the next one.
IDLE_CLOSE = 60.0
#: Bytes queued for one local client above which the tunnel stops reading.
HIGH_WATER = 1 << 20
#: Bytes of a connection kept until the kubelet acknowledges it, for a replay.
REPLAY_LIMIT = 64 * 1024
#: Cap on the error text kept per connection.
MAX_ERROR_CHARS = 64 * 1024

#: Bytes a connection sends before it counts as bulk: any pod's socket takes
#: this much unread (a loopback or veth socket's first window is 64 KiB), so
#: the kubelet never waits on them; HTTP requests without a large body fit.
FREE_BYTES = 32 * 1024
#: A bulk connection's bytes on their way that the kubelet is not known to
#: have taken (acknowledged by PINGs aimed at its worker).
WINDOW = 16 << 20
#: Frames one worker's queue may hold that are not known handled, before a
#: bulk connection waits: under QUEUE_FRAMES, with room for PINGs and a few
#: connections' last frames (FIN, RST_STREAM).
WINDOW_FRAMES = 38
#: No PING goes to a worker holding bulk data once this many frames may be queued there.
PING_LIMIT = 45
#: A bulk connection asks for an acknowledgement every ACK_EVERY bytes or
#: ACK_EVERY_FRAMES frames, or once it has paused for ACK_DELAY seconds.
ACK_EVERY = WINDOW // 2
ACK_EVERY_FRAMES = WINDOW_FRAMES // 2
ACK_DELAY = 0.005
#: Seconds a PING may stay unanswered after a later one to another worker
#: came back before its worker counts as stuck.
STALL_AFTER = 1.0
#: Seconds reading may be paused for a slow local client before new
#: connections go to a fresh tunnel (a connection placed before that waits
#: for the client, at most REPLY_TIMEOUT for the kubelet's reply).
HELD_UP_AFTER = 0.25


class TunnelSocket(Protocol):
    """What the tunnel needs of its byte stream to the kubelet.

    Either :mod:`tray.kube.websocket`'s WebSocket client connection, or the TLS stream
    of an HTTP/1.1 upgrade (:class:`tray.kube.spdyconn.SpdySocket`).  ``send``
    writes one buffer before its first wait and raises websockets'
    ``ConnectionClosed`` or a ``ConnectionError`` once the stream has ended;
    ``close_code`` is a WebSocket close code (1000: ended cleanly).  A socket
    may also have ``close_detail``, a text saying why it was lost.
    """

    transport: Any  # pause_reading / resume_reading / is_closing

    @property
    def close_code(self) -> int | None:
        """The WebSocket close code once ended (1000: cleanly), None while open."""
        ...

    def divert(self, sink: Callable[[bytes | memoryview], None] | None) -> None:
        """Hand every received payload byte to ``sink`` as it arrives (None: let go of it)."""
        ...

    async def send(self, message: bytes) -> None:
        """Write ``message`` (whole, before the first wait), then wait while the write buffer is above its high mark."""
        ...

    async def close(self) -> None:
        """End the stream and wait until it ended (the closing handshake; seconds at most)."""
        ...

    async def wait_closed(self) -> None:
        """Wait until the stream has ended, for whatever reason (no limit)."""
        ...


class _Connection:
    """The tunnel's side of one forwarded TCP connection (two SPDY streams)."""

    def __init__(self, writer: asyncio.StreamWriter, error_id: int, data_id: int, traffic: Traffic) -> None:
        loop = asyncio.get_running_loop()
        self.writer = writer
        self.error_id, self.data_id = error_id, data_id
        self.result = StreamResult()
        self.traffic = traffic  # the forward's counters
        self.replied = False  # the kubelet's SYN_REPLY for the data stream
        self.finished = loop.create_future()
        self.last_rx = loop.time()
        self._error = b""
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self.unacked: list[bytes] | None = []  # sent before the kubelet's reply; None: too much
        self._unacked_size = 0
        self.local_eof = False
        # Bulk flow control (see KubeletQueues): bytes sent, bytes the kubelet
        # is known to have taken, and the frames in between (index in the data
        # stream's worker queue, bytes sent up to and including it).
        self.bulk = False
        self.up_sent = self.up_acked = 0
        self.in_flight: collections.deque[tuple[int, int]] = collections.deque()
        self.credit = asyncio.Event()

    def taken_through(self, handled: int) -> None:
        """The data stream's worker has handled its first ``handled`` frames."""
        acked = self.up_acked
        while self.in_flight and self.in_flight[0][0] <= handled:
            acked = self.in_flight.popleft()[1]
        if acked != self.up_acked:
            self.up_acked = acked
            self.credit.set()

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
        self.traffic.bytes_in += len(payload)
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
    """One port-forward SPDY session to one pod.  Runs on the engine's loop.

    Made by :meth:`open`; carries connections (:meth:`forward`) until it
    ends: idle for :data:`IDLE_CLOSE`, retired and empty, aborted, or lost.
    ``pod`` is the pod's name; ``closed_reason`` None while it lives, else
    why it ended (a short phrase, e.g. "idle", "port-forward session lost
    (...)"); ``auth_generation`` the credentials it was opened with.
    """

    @classmethod
    async def open(cls, api: KubeAPI, namespace: str, pod: str, *, upgrade: bool = False,
                   idle_close: float | None = None) -> Tunnel:
        """Open a tunnel; raises the project's precise errors, or TunnelUnsupported.

        ``upgrade``: SPDY straight over an HTTP/1.1 upgrade (``POST``,
        kubectl's fallback when the WebSocket is refused; :mod:`tray.kube.spdyconn`)
        instead of tunnelled in a WebSocket.  ``idle_close``: seconds without
        connections before it closes (None: :data:`IDLE_CLOSE`).  Blocks for the dial (at most
        15 s, twice if a 401 reloads the kubeconfig).  Raises
        :class:`~tray.errors.TunnelUnsupported` when the API server chose
        another WebSocket subprotocol (or none), and otherwise what
        :func:`tray.kube.websocket.connect_websocket` or
        :func:`tray.kube.spdyconn.connect` raise (403, 404, 401, unreachable,
        a broken upgrade).
        """
        sock: TunnelSocket
        if upgrade:
            sock = await spdyconn.connect(api, namespace, pod)
        else:
            ws = await connect_websocket(api, portforward_url(api.auth.server, namespace, pod, None), SUBPROTOCOL,
                                         ping=False)  # the tunnel's own SPDY PINGs prove the whole path
            if ws.subprotocol != SUBPROTOCOL:
                await ws.close()
                forget_traceback(ws)
                raise TunnelUnsupported(
                    f"the API server chose subprotocol {ws.subprotocol or 'none'}, not {SUBPROTOCOL}")
            sock = ws  # type: ignore[assignment]  # tray.kube.websocket's connection class diverts
        tunnel = cls(sock, pod, idle_close=idle_close)
        # After any reload a 401 caused while connecting: the credentials the
        # tunnel was finally opened with.
        tunnel.auth_generation = api.auth.generation
        return tunnel

    def __init__(self, ws: TunnelSocket, pod: str, *, idle_close: float | None = None,
                 reply_timeout: float | None = None) -> None:
        """A tunnel on an open, upgraded ``ws`` to ``pod``; call on the loop (tests build one on a fake socket).

        ``idle_close`` and ``reply_timeout`` (seconds) replace
        :data:`IDLE_CLOSE` and :data:`REPLY_TIMEOUT`.  Starts reading and the
        keep-alive at once; never blocks; never raises.
        """
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
        self._check_sent_at: float | None = None  # when the check in flight wrote its decisive PING
        self._stalled = False  # reading paused for a slow local client (back-pressure)
        self._stalled_at = 0.0  # since when
        self._broken = False  # the kubelet broke the framing: ignore the rest
        # Where our frames wait in the kubelet (see KubeletQueues), the open
        # connections by their data stream's worker, and PINGs for bulk data.
        self._queues = KubeletQueues(STALL_AFTER)
        self._by_worker: list[set[_Connection]] = [set() for _ in range(WORKERS)]
        self._unpinged = [0] * WORKERS  # bulk bytes written to each worker since its last PING
        self._unpinged_frames = [0] * WORKERS  # and bulk frames
        self._bulk_written = [0.0] * WORKERS  # when bulk data was last written to each worker
        self._ack_timers: dict[int, asyncio.TimerHandle] = {}
        self._ack_queued: set[int] = set()  # workers whose PING is spawned, not yet written
        self._probing = False
        self._stall_timer: asyncio.TimerHandle | None = None
        self._wedged = False  # a worker is stuck: no new connections here
        ws.divert(self._on_bytes)  # binary payload straight to the SPDY parser
        self._watcher = asyncio.ensure_future(self._watch())
        self._carrying = asyncio.Event()  # set while connections are open: wakes the keep-alive
        self._keepalive: asyncio.Task[None] | None = asyncio.ensure_future(self._keep_alive())
        self._arm_idle()

    # ------------------------------------------------------------ state
    @property
    def usable(self) -> bool:
        """Whether a new connection may use this tunnel.

        Not once a kubelet frame worker is stuck on a connection the pod does
        not read (:class:`KubeletQueues`), nor while every worker holds bulk
        data, nor while a local client that does not read holds up reading
        (:data:`HIGH_WATER`) for :data:`STALL_AFTER` or more: the next
        connection then opens a fresh tunnel.  Nor once ended, retired, told
        to go away, or near the last stream id.  Never blocks.
        """
        return (self.closed_reason is None and not self._retired and not self._going_away
                and self._next_id + 8 * WORKERS <= MAX_STREAM_ID and not self._check_wedged()
                and len(self._avoid()) < WORKERS and not self._held_up() and not self._suspect())

    def _suspect(self) -> bool:
        """A liveness PING has gone unanswered for SUSPECT_AFTER or more.

        A healthy kubelet answers in milliseconds; a flow that stopped
        carrying bytes (a slept laptop, a NAT that forgot it, a dead VPN)
        answers never, and the reply timeout (10 s) is long to make new
        connections wait on it.  They go to a fresh tunnel instead; if this
        one was only slow, it carries its open connections to their end.
        """
        sent = self._check_sent_at
        return sent is not None and asyncio.get_running_loop().time() - sent >= SUSPECT_AFTER

    def _held_up(self) -> bool:
        """Reading has been paused for a slow local client for HELD_UP_AFTER or more.

        Everything the kubelet sends waits meanwhile (one TCP stream), so a
        new connection here would too: it goes to a fresh tunnel instead.
        Shorter pauses come and go in every fast download (a client a
        HIGH_WATER behind) and move nothing.
        """
        return self._stalled and asyncio.get_running_loop().time() - self._stalled_at >= HELD_UP_AFTER

    @property
    def wedged(self) -> bool:
        """A kubelet frame worker of this tunnel is stuck (a pod does not read a connection); never blocks.

        Once True it stays True: the tunnel takes no new connections.
        """
        return self._check_wedged()

    @property
    def connections(self) -> int:
        """How many local connections the tunnel carries now."""
        return self._active

    async def answers(self) -> bool:
        """False if the tunnel is dead, or suspect: silent for CHECK_AFTER and no answer to a PING now.

        Concurrent callers share one PING.  A tunnel that spoke recently is
        trusted without one (the latency of busy forwards is untouched).
        Otherwise awaits the PING's answer, at most :data:`SUSPECT_AFTER`
        (2 s) from its writing: still unanswered then, this returns False
        (the caller takes a fresh tunnel) while the check goes on, up to the
        reply timeout (:data:`REPLY_TIMEOUT`, 10 s), after which the tunnel
        is aborted.  Never raises.
        """
        if self.closed_reason is not None:
            return False
        loop = asyncio.get_running_loop()
        if self._checking is None or self._checking.done():
            if self._stalled or loop.time() - self._last_rx < CHECK_AFTER:
                return True  # spoke recently, or has data waiting that we hold back ourselves
        check = self._check()  # a check in flight (suspect(), keep-alive) decides
        while not check.done():
            if self._suspect():
                return False
            sent = self._check_sent_at
            wait = SUSPECT_AFTER if sent is None else sent + SUSPECT_AFTER - loop.time()
            try:
                return await asyncio.wait_for(asyncio.shield(check), max(wait, 0.01))
            except TimeoutError:
                pass
        return check.result()

    def _check(self) -> asyncio.Future[bool]:
        """The PING check in flight, or a new one (:meth:`_ping`); concurrent askers share it."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.ensure_future(self._ping())
            self._checking.add_done_callback(_consume)
        return self._checking

    async def _ping(self) -> bool:
        """PINGs up to a clear worker (:meth:`_liveness_pings`); any answer proves the path.

        While no answer has come, the PINGs are written again every
        :data:`KEEPALIVE_AFTER` seconds: the API server notices that its side
        to the kubelet is gone only when we write, and a PING written just
        before the kubelet's side closed is lost without a word.  No answer
        within the reply timeout aborts the tunnel, unless no PING could be
        aimed at a clear worker (each holds another connection's unread
        data): then silence proves nothing, and the tunnel is trusted.
        """
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        sent: list[int] = []
        decisive = False

        def pings() -> bytes:
            nonlocal decisive
            frames, reached = self._liveness_pings(sent)
            if reached and not decisive:
                self._check_sent_at = loop.time()
            decisive = decisive or reached
            for ping_id in sent:
                self._pings[ping_id] = answer
            return frames

        deadline = loop.time() + self._reply_timeout
        try:
            if not await self._send(pings):
                return False
            if not sent:
                return True  # nothing could be sent without filling a stuck worker's queue
            while True:
                wait = min(KEEPALIVE_AFTER, deadline - loop.time())
                if wait <= 0:
                    raise TimeoutError
                try:
                    return await asyncio.wait_for(asyncio.shield(answer), wait)
                except TimeoutError:
                    if loop.time() >= deadline:
                        raise
                if not await self._send(pings):  # once more: a write the API server must act on
                    return False
        except TimeoutError:
            if not decisive:
                return True
            if self.closed_reason is None:
                self.abort(f"no answer to a ping within {self._reply_timeout:.0f} s")
            return False
        finally:
            self._check_sent_at = None
            for ping_id in sent:
                self._pings.pop(ping_id, None)

    def _new_ping_id(self) -> int:
        ping_id, self._next_ping = self._next_ping, self._next_ping + 2
        if self._next_ping > 0x7FFFFFFF:
            self._next_ping = 1
        return ping_id

    def _clear(self, worker: int, stalled: set[int]) -> bool:
        """No bulk data waits at this worker: a PING there is answered at once."""
        return not self._queues.reserved(worker) and worker not in stalled

    def _may_ping(self, worker: int) -> bool:
        # A worker holding bulk data may be stuck for good: every frame queued
        # there stays, and a full queue would stop the whole session.  What
        # may be queued there is what came after its first bulk frame not
        # known taken (behind_bulk), not every frame never acknowledged
        # (outstanding): short connections' frames get no PING, and counting
        # them refused the very PING a new bulk connection waited for, for good.
        return self._queues.behind_bulk(worker) < PING_LIMIT

    def _liveness_pings(self, ids: list[int]) -> tuple[bytes, bool]:
        """PINGs round-robin until one reaches a clear worker; (frames, whether one did).

        Called as they are written.  PINGs go to the kubelet's workers in
        turn, so reaching a clear one may take a PING to each busy one before it.
        """
        stalled = self._queues.stalled(asyncio.get_running_loop().time())
        return self._pings_until(lambda worker: self._clear(worker, stalled), ids)

    def _pings_until(self, reached: Callable[[int], bool], ids: list[int] | None = None) -> tuple[bytes, bool]:
        """PINGs round-robin, one per worker in the kubelet's order, until one goes to a worker ``reached`` accepts.

        Returns (the frames, whether one reached such a worker); stops early,
        unreached, before a worker that may not take another PING
        (:meth:`_may_ping`), and after one PING to each worker.  Each PING is
        recorded as written, so call it as the frames are written; their ids
        are appended to ``ids`` if given.
        """
        frames = []
        for _ in range(WORKERS):
            worker = self._queues.next_ping_worker()
            if not self._may_ping(worker):
                break
            ping_id = self._new_ping_id()
            self._record_ping(ping_id)
            if ids is not None:
                ids.append(ping_id)
            frames.append(SpdyEncoder.ping(ping_id))
            if reached(worker):
                return b"".join(frames), True
        return b"".join(frames), False

    def _record_ping(self, ping_id: int | None) -> None:
        worker = self._queues.ping(ping_id)
        self._unpinged[worker] = self._unpinged_frames[worker] = 0

    def _ack_pings(self, target: int) -> bytes:
        """PINGs round-robin up to and including ``target``'s worker (written now)."""
        self._ack_queued.discard(target)
        return self._pings_until(lambda worker: worker == target)[0]

    def _want_ack(self, worker: int, *, urgent: bool = False) -> None:
        """Make sure a PING follows the bulk data written to ``worker`` (now, or shortly)."""
        queues = self._queues
        # Urgent: a bulk connection waits, perhaps for frames of others queued there.
        needed = queues.reserved(worker) or (urgent and queues.outstanding(worker) > 0)
        if (self.closed_reason is not None or not needed or queues.covered(worker)
                or worker in self._ack_queued or queues.pings_waiting(worker) >= 2):
            return  # nothing to acknowledge, or answers on their way will call again
        if urgent or self._unpinged[worker] >= ACK_EVERY or self._unpinged_frames[worker] >= ACK_EVERY_FRAMES:
            timer = self._ack_timers.pop(worker, None)
            if timer is not None:
                timer.cancel()
            self._ack_queued.add(worker)
            self._spawn(self._send(lambda: self._ack_pings(worker)))
        elif worker not in self._ack_timers:
            self._ack_timers[worker] = asyncio.get_running_loop().call_later(ACK_DELAY, self._ack_due, worker)

    def _ack_due(self, worker: int) -> None:
        """ACK_DELAY after bulk data: PING once the worker's bulk data has paused that long."""
        self._ack_timers.pop(worker, None)
        quiet = asyncio.get_running_loop().time() - self._bulk_written[worker]
        if quiet < ACK_DELAY:  # still flowing: ACK_EVERY asks in time
            self._ack_timers[worker] = asyncio.get_running_loop().call_later(ACK_DELAY - quiet, self._ack_due, worker)
            return
        self._want_ack(worker, urgent=True)

    def _answered(self, ping_id: int) -> None:
        """One of our PINGs came back: credit the connections of its worker."""
        now = asyncio.get_running_loop().time()
        worker = self._queues.answered(ping_id, now)
        if worker is None:
            return
        handled = self._queues.handled[worker]
        for conn in self._by_worker[worker]:
            conn.taken_through(handled)
            conn.credit.set()  # the worker's queue is known shorter: a waiting connection looks again
        self._want_ack(worker)
        if self._stall_timer is None and not self._wedged and self._queues.overtaken_since() is not None:
            self._stall_timer = asyncio.get_running_loop().call_later(self._queues.stall_after, self._stall_due)

    def _stall_due(self) -> None:
        self._stall_timer = None
        if self.closed_reason is None and not self._check_wedged() and self._queues.overtaken_since() is not None:
            self._stall_timer = asyncio.get_running_loop().call_later(0.1, self._stall_due)

    def _check_wedged(self) -> bool:
        if not self._wedged and self.closed_reason is None:
            stuck = self._queues.stalled(asyncio.get_running_loop().time())
            if stuck:
                self._wedged = True
                log.info("port-forward tunnel to %s: the kubelet is stuck on a connection the pod does not read "
                         "(its frame worker %s); new connections use a fresh tunnel", self.pod,
                         ", ".join(map(str, sorted(stuck))))
        return self._wedged

    def _probe(self) -> None:
        """A PING to a clear worker, unawaited: its answer shows up a stuck one (rate-limited)."""
        if self._probing or self._wedged or self.closed_reason is not None:
            return
        self._probing = True
        sent: list[int] = []

        def pings() -> bytes:
            self._probing = False
            return self._liveness_pings(sent)[0]

        self._spawn(self._send(pings))

    async def _keep_alive(self) -> None:
        """PING a tunnel that carries connections after KEEPALIVE_AFTER of silence, so a dead one ends them.

        The API server notices that its side of the session is gone (the
        kubelet restarted, drop-connections, a cut between them) only when it
        next writes there, that is when we next write; until then our
        WebSocket stays open and every connection on it waits.  A PING is
        that write, 12 bytes a second, and only while connections are open.
        """
        loop = asyncio.get_running_loop()
        while self.closed_reason is None:
            if not self._active:  # sleep without waking until a connection opens (200 idle forwards)
                self._carrying.clear()
                await self._carrying.wait()
            await asyncio.sleep(KEEPALIVE_AFTER)
            if self._active and not self._stalled and loop.time() - self._last_rx >= KEEPALIVE_AFTER:
                await asyncio.shield(self._check())

    def suspect(self) -> None:
        """A connection just failed on this tunnel: PING it now; does not block.

        The kubelet's error may come from a path that is going away
        (drop-connections, a kubelet restart cut its side of the session),
        and the API server keeps our WebSocket open until we next write: the
        connections still open on the tunnel would wait for an answer that
        never comes, and nothing of ours might write for seconds.  The PING
        is that write: the API server then closes the WebSocket (its
        connections that the kubelet never acknowledged start again on a
        fresh tunnel), or the kubelet answers and all is well.  Until the
        check is decided, :meth:`answers` waits for it, whatever arrives
        meanwhile (the failing path's last frames say nothing about it).
        """
        if self.closed_reason is None:
            self._check()

    def retire(self) -> None:
        """Take no new connections; close once the open ones are done (at once if none).  Never blocks."""
        self._retired = True
        self._arm_idle()

    def abort(self, reason: str) -> None:
        """End the tunnel now; its open connections count as dropped.

        ``reason`` becomes :attr:`closed_reason` (if it had none) and is
        logged.  Never blocks: the socket closes in the background.
        """
        if self.closed_reason is None:
            self.closed_reason = reason
            log.info("port-forward tunnel to %s: %s", self.pod, reason)
        self._end_connections()  # now, not after the closing handshake
        self._spawn(self._ws.close())

    async def close(self) -> None:
        """End the tunnel and wait until it has (the socket's close, seconds at most); open connections are dropped."""
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

    async def _send(self, message: bytes | Callable[[], bytes]) -> bool:
        """Write one WebSocket message; False if the tunnel has ended.

        ``message`` may be a function making it: it is called just before the
        write, so frames are counted (:class:`KubeletQueues`) in the order
        the kubelet reads them.  (websockets writes a message to the
        transport before its first wait; only the drain after it waits.)
        """
        if callable(message):
            if self.closed_reason is not None:
                return False
            message = message()
            if not message:
                return True
        try:
            await self._ws.send(message)
            return True
        except (ConnectionClosed, ConnectionError):
            return False

    def _frames(self, stream_id: int, frame: bytes) -> Callable[[], bytes]:
        """A control frame or FIN of one stream, counted as it is written."""
        def make() -> bytes:
            self._queues.stream_frame(stream_id)
            return frame
        return make

    def _data_frame(self, conn: _Connection, data: bytes) -> bytes:
        """``data`` on the connection's data stream, counted as it is written."""
        conn.bulk = conn.bulk or conn.up_sent + len(data) > FREE_BYTES
        index = self._queues.stream_frame(conn.data_id, bulk=conn.bulk)
        conn.up_sent += len(data)
        if conn.bulk:
            worker = conn.data_id % WORKERS
            conn.in_flight.append((index, conn.up_sent))
            self._unpinged[worker] += len(data)
            self._unpinged_frames[worker] += 1
            self._bulk_written[worker] = asyncio.get_running_loop().time()
            self._want_ack(worker)
        else:
            conn.up_acked = conn.up_sent  # the pod's socket takes it (FREE_BYTES)
            worker = conn.data_id % WORKERS
            if self._queues.reserved(worker):  # it queues behind another's bulk data: keep that bounded too
                self._unpinged_frames[worker] += 1
                self._want_ack(worker)
        return SpdyEncoder.data(conn.data_id, data)

    async def _window(self, conn: _Connection) -> None:
        """Wait until a bulk connection may send more (see :class:`KubeletQueues`).

        Returns at once if it may; otherwise once PINGs aimed at its worker
        were answered, the connection or the tunnel ended.  While the pod
        does not read, that is for as long as the pod does not (its worker
        then counts as stuck: logged, and the tunnel takes no new
        connections); the wait is logged once it has lasted the reply
        timeout.  Should no PING of ours be on its way to the worker for the
        reply timeout, nothing could ever end the wait: the connection fails
        then (RST to the pod, the local socket closed), with a warning, and
        the tunnel is retired (:meth:`retire`).
        """
        worker = conn.data_id % WORKERS
        loop = asyncio.get_running_loop()
        since = progress = loop.time()
        logged = False
        while (self.closed_reason is None and not conn.finished.done()
               and (conn.up_sent - conn.up_acked >= WINDOW
                    or self._queues.behind_bulk(worker) >= WINDOW_FRAMES)):
            conn.credit.clear()
            self._want_ack(worker, urgent=True)
            if self._queues.pings_waiting(worker) or worker in self._ack_queued:
                progress = loop.time()  # an answer, or a stuck worker, will tell
            try:
                await asyncio.wait_for(conn.credit.wait(), STALL_AFTER)
                since = progress = loop.time()
                continue
            except TimeoutError:
                self._probe()  # is the kubelet slow for everyone, or stuck on this pod?
            now = loop.time()
            if now - progress >= self._reply_timeout:
                log.warning("port-forward tunnel to %s: a connection's upload could not be acknowledged "
                            "(%d frames may wait at the kubelet's frame worker %d); it is ended, and new "
                            "connections use a fresh tunnel", self.pod, self._queues.behind_bulk(worker), worker)
                self.retire()  # what the worker holds can no longer be known
                conn.result.error = ("the upload made no progress "
                                     "(the kubelet could not be asked for an acknowledgement)")
                self._cancel(conn)
            elif not logged and now - since >= self._reply_timeout:
                logged = True
                log.info("port-forward tunnel to %s: a connection's upload has waited %.0f s for the pod to read it",
                         self.pod, now - since)

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
                detail = getattr(self._ws, "close_detail", None) or f"WebSocket close code {code}"
                self.closed_reason = ("the API server ended the port-forward session" if code == 1000
                                      else f"port-forward session lost ({detail})")
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
            for timer in [*self._ack_timers.values(), self._stall_timer]:
                if timer is not None:
                    timer.cancel()
            self._ack_timers.clear()
            self._stall_timer = None
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
                def echo(frame: bytes = SpdyEncoder.ping(event.ping_id)) -> bytes:
                    self._record_ping(None)  # a PING to the kubelet too: it takes a worker's turn
                    return frame
                self._spawn(self._send(echo))
            else:  # the answer to ours
                answer = self._pings.get(event.ping_id)
                if answer is not None and not answer.done():
                    answer.set_result(True)
                self._answered(event.ping_id)
        elif isinstance(event, GoAway):
            # No new streams; those after last_good were never seen by the kubelet.
            self._going_away = True
            for conn in list(self._routes.values()):
                if conn.data_id > event.last_good:
                    conn.end(dropped=True, unseen=True)
        elif isinstance(event, StreamPushed):
            self._spawn(self._send(self._frames(event.stream_id,
                                                SpdyEncoder.rst_stream(event.stream_id, RST_REFUSED_STREAM))))

    def _stall(self, conn: _Connection) -> None:
        """Stop reading the WebSocket until a slow local client has caught up."""
        conn.flush()
        self._stalled = True
        self._stalled_at = asyncio.get_running_loop().time()
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
            self._spawn(self._send(self._frames(conn.data_id, SpdyEncoder.rst_stream(conn.data_id, RST_CANCEL))))
            conn.end()

    # ------------------------------------------------------------ forwarding
    async def forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, *,
                      replay: bytes = b"", replay_eof: bool = False, traffic: Traffic | None = None) -> StreamResult:
        """Carry one local connection to ``port`` in the pod; never raises for I/O errors.

        ``traffic``: the forward's counters, added to as bytes pass (None:
        not counted); ``replay`` bytes are not counted again.

        ``replay``/``replay_eof``: what an earlier attempt had sent (see
        :attr:`StreamResult.replay`), sent first.  When the result has
        ``replay`` set, the local socket is left open for the caller;
        otherwise ``writer`` is closed.  Awaits the whole connection: until
        the pod's side ends it, the client resets, the pod stays silent
        :data:`~tray.engine.v4.LINGER_IDLE` after the client's EOF, the
        kubelet fails to acknowledge it within :data:`REPLY_TIMEOUT`, or the
        tunnel ends.  A tunnel that cannot take it (ended, every worker busy)
        returns at once with ``dropped`` or ``replay`` set.
        """
        ids = self._place() if self.closed_reason is None else None
        error_id, data_id = ids or (0, 0)
        conn = _Connection(writer, error_id, data_id, traffic if traffic is not None else Traffic())
        conn.local_eof = replay_eof
        if replay:
            conn.sent(replay)
        if ids is None:  # ended, or every worker holds another connection's unread data
            conn.end(dropped=True, unseen=True)
            if conn.result.replay is None:
                _close_writer(writer)
            return conn.result
        worker = data_id % WORKERS
        self._routes[error_id] = self._routes[data_id] = conn
        self._by_worker[worker].add(conn)
        self._active += 1
        self._carrying.set()
        self._arm_idle()
        loop = asyncio.get_running_loop()
        headers = {"streamtype": "error", "port": str(port), "requestid": str(next(self._requests))}

        def opening() -> bytes:
            # kubectl's order: the error stream (closed at once on our side: we
            # never write to it), then the data stream; one message, no wait.
            # Made as it is written: the header compression and the kubelet's
            # queues both count in wire order.
            for stream_id in (error_id, error_id, data_id):
                self._queues.stream_frame(stream_id)
            frames = (self._encoder.syn_stream(error_id, headers) + SpdyEncoder.data(error_id, b"", fin=True)
                      + self._encoder.syn_stream(data_id, {**headers, "streamtype": "data"}))
            if replay:
                frames += self._data_frame(conn, replay)
            if replay_eof:
                frames += self._frames(data_id, SpdyEncoder.data(data_id, b"", fin=True))()
            return frames

        async def upstream() -> None:
            try:
                while not conn.local_eof:
                    if conn.bulk:
                        await self._window(conn)
                    data = await reader.read(READ_SIZE)
                    if not data:
                        conn.local_eof = True
                        await self._send(self._frames(data_id, SpdyEncoder.data(data_id, b"", fin=True)))
                        break
                    conn.result.bytes_up += len(data)
                    conn.traffic.bytes_out += len(data)
                    conn.sent(data)  # before the send: a cancelled send is still replayed
                    if not await self._send(lambda: self._data_frame(conn, data)):
                        return  # the tunnel ended; the watcher ends the connection
            except (ConnectionError, OSError):
                self._cancel(conn)  # the client reset: no FIN, abort the stream
                return
            # After our FIN the pod may still be answering; once it has been
            # silent for LINGER_IDLE, end the stream (one setting for both paths).
            conn.last_rx = loop.time()
            while not conn.finished.done():
                idle = loop.time() - conn.last_rx
                if idle >= v4.LINGER_IDLE:
                    self._cancel(conn)
                    return
                await asyncio.sleep(v4.LINGER_IDLE - idle)

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
            self._by_worker[worker].discard(conn)
            self._active -= 1
            self._arm_idle()
            self._want_ack(worker)  # bulk data it left unacknowledged keeps the worker reserved until then
            conn.flush()
            if conn.result.replay is None:
                _close_writer(writer)
        return conn.result

    def _place(self) -> tuple[int, int] | None:
        """Stream ids for a new connection: (error, data), or None if no worker is clear.

        Both streams go to kubelet workers holding no bulk data and not
        stuck, so the connection never queues behind another's unread bytes;
        the data stream to the one carrying the fewest open connections
        (should one of them turn bulk later, it shares its worker with as
        few as can be).  Ids only have to increase: the kubelet takes any
        odd id above the last (spdystream ``validateStreamId``), and pairs
        the two by their ``requestid`` header.
        """
        avoid = self._avoid()
        if len(avoid) >= WORKERS:
            return None
        first = self._next_id
        best: tuple[int, int, int] | None = None
        for data_id in range(first + 2, first + 4 * WORKERS + 1, 2):
            worker = data_id % WORKERS
            if worker in avoid:
                continue
            error_id = next((e for e in range(first, data_id, 2) if e % WORKERS not in avoid), None)
            if error_id is None:
                continue
            load = len(self._by_worker[worker])
            if best is None or load < best[0]:
                best = (load, error_id, data_id)
        if best is None:
            return None
        self._next_id = best[2] + 2
        return best[1], best[2]

    def _avoid(self) -> set[int]:
        """Workers a new stream must not use: holding bulk data, or stuck."""
        queues = self._queues
        return ({w for w in range(WORKERS) if queues.reserved(w)}
                | queues.stalled(asyncio.get_running_loop().time()))

    def _unacknowledged(self, conn: _Connection) -> None:
        if conn.replied or conn.finished.done():
            return
        if self._stalled:
            # The reply may be waiting behind data we hold back for a local client that does not
            # read, for as long as it does not: this connection fails rather than wait for it
            # (new ones already go to a fresh tunnel); the tunnel is fine.
            conn.result.error = ("the kubelet's reply is held up behind another local client of this "
                                 "forward that does not read")
            conn.end()
            return
        stuck = self._queues.stalled(asyncio.get_running_loop().time())
        if {conn.error_id % WORKERS, conn.data_id % WORKERS} & stuck:
            # Queued behind a pod that does not read (it shared a worker with
            # a connection that turned bulk after it opened): this one fails,
            # the tunnel is fine.
            conn.result.error = "the kubelet is stuck on another connection to the pod (the pod does not read it)"
            conn.end()
            return
        self.abort(f"the kubelet did not answer within {self._reply_timeout:.0f} s")


def _consume(task: asyncio.Future[bool]) -> None:
    """Retrieve a finished check's outcome, so an unawaited one logs nothing."""
    if not task.cancelled():
        task.exception()


def _close_writer(writer: asyncio.StreamWriter) -> None:
    # close() flushes what is buffered in the background; awaiting drain()
    # here would hang on a client that stopped reading.
    writer.close()
