"""Tests for tray.engine.tunnel: the SPDY session protocol, against an in-memory kubelet.

The end-to-end path (a real API server and kubelet) is covered by
tests/integration/test_engine_tunnel.py.  These tests drive what a healthy
kubelet never does on cue: resets, GOAWAY, pushed streams, PINGs, silence,
a WebSocket that dies, a local client that stops reading or resets.

Only the WebSocket transport is faked (:class:`FakeWebSocket`: what the
tunnel sends is recorded; what the "kubelet" sends is handed to the sink the
tunnel gave ``divert``, one loop callback per read, through a fake transport
whose ``pause_reading`` holds it back, as :mod:`tray.kube.websocket`'s connection does).
The local side is real: a listener on 127.0.0.1 whose connections go
through ``Tunnel.forward``, and clients made with ``asyncio.open_connection``.
The kubelet's frames are built by hand or with ``SpdyEncoder``; the tunnel's
frames are split by hand, SYN_STREAM decoded by hand (headers through one
zlib stream, as a kubelet reads them) and the rest parsed with ``SpdyParser``.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from tray.engine import tunnel as tunnel_mod
from tray.wire.spdy import (
    FLAG_FIN,
    RST_CANCEL,
    RST_REFUSED_STREAM,
    SUBPROTOCOL,
    Ping,
    SpdyEncoder,
    SpdyParser,
    StreamData,
    StreamReset,
    encode_header_block,
)
from tray.engine.v4 import StreamResult, Traffic
from tray.engine.tunnel import Tunnel

PORT = 8080  # the pod port every test forwards to
TIMEOUT = 2.0  # how long any expected thing may take (they take milliseconds)


# ---------------------------------------------------------------- the transport double
class FakeTransport:
    """The WebSocket's TCP transport, as far as the tunnel uses it (back-pressure).

    Each ``feed`` is one socket read: while reading is on, every read is
    handed to the sink in its own loop callback, in order, as asyncio calls
    ``data_received``; after ``pause_reading()`` reads wait in ``queued``
    (as bytes would wait in the kernel) until ``resume_reading()``.  Once the
    connection is closed nothing more is delivered.
    """

    def __init__(self) -> None:
        self.queued: collections.deque[bytes] = collections.deque()
        self.paused = False
        self.closing = False
        self.sink: Callable[[bytes | memoryview], None] | None = None
        self._scheduled = False
        self._reads = 0

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        if not self.closing:  # as asyncio's: a no-op once closing
            self.paused = True

    def resume_reading(self) -> None:
        if not self.closing:
            self.paused = False
            self._schedule()

    def feed(self, data: bytes) -> None:
        self.queued.append(data)
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and not self.paused and self.queued:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._read)

    def _read(self) -> None:
        self._scheduled = False
        if self.paused or self.closing or not self.queued or self.sink is None:
            return
        data = self.queued.popleft()
        self._reads += 1
        # tray.wire.wsstream hands payload on as the input chunk itself or as a
        # memoryview of it: alternate.
        self.sink(data if self._reads % 2 else memoryview(data))
        self._schedule()


class FakeWebSocket:
    """The WebSocket to the API server, in memory (see ``tray.engine.tunnel.TunnelSocket``).

    ``sent`` holds every message the tunnel sent, in order.  The kubelet's
    bytes (via the API server) go through ``transport`` to the sink the
    tunnel gave ``divert``, as binary payload does in :mod:`tray.kube.websocket`.
    After ``close()`` (ours) or ``drop()`` / ``peer_close()`` (theirs),
    ``wait_closed`` returns, ``close_code`` says how it ended and ``send``
    raises ``ConnectionClosed`` as websockets does.
    """

    subprotocol = SUBPROTOCOL

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.sent: list[bytes] = []
        self.close_calls = 0
        self._closed = asyncio.Event()
        self._closed_exc: ConnectionClosed | None = None
        self._close_code: int | None = None

    @property
    def closed(self) -> bool:
        return self._closed_exc is not None

    @property
    def close_code(self) -> int | None:
        return self._close_code

    def divert(self, sink: Callable[[bytes | memoryview], None]) -> None:
        assert self.transport.sink is None, "divert is called once"
        self.transport.sink = sink
        self.transport._schedule()

    def receive(self, data: bytes) -> None:
        """Bytes from the kubelet arrive (one socket read's worth)."""
        self.transport.feed(data)

    def _end(self, code: int, exc: ConnectionClosed) -> None:
        if self._closed_exc is None:
            self._closed_exc = exc
            self._close_code = code
            self.transport.closing = True
            self._closed.set()

    async def send(self, message: bytes) -> None:
        if self._closed_exc is not None:
            raise self._closed_exc
        assert isinstance(message, (bytes, bytearray)), "the tunnel sends binary messages only"
        self.sent.append(bytes(message))

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self) -> None:
        """Our side closes: a clean close handshake."""
        self.close_calls += 1
        self._end(1000, ConnectionClosed(Close(1000, ""), Close(1000, ""), False))

    def drop(self) -> None:
        """The connection dies without a close frame (network cut, 1006)."""
        self._end(1006, ConnectionClosed(None, None))

    def peer_close(self, code: int = 1000) -> None:
        """The API server closes the WebSocket with a close frame."""
        self._end(code, ConnectionClosed(Close(code, ""), Close(code, ""), True))


# ---------------------------------------------------------------- the kubelet's end
def control(frame_type: int, body: bytes, flags: int = 0) -> bytes:
    """A SPDY/3 control frame, header packed by hand."""
    return struct.pack(">HHI", 0x8000 | 3, frame_type, flags << 24 | len(body)) + body


def syn_reply(stream_id: int, *, fin: bool = False) -> bytes:
    # An empty header block: the tunnel does not read reply headers.
    return control(2, struct.pack(">I", stream_id), FLAG_FIN if fin else 0)


def rst_stream(stream_id: int, status: int) -> bytes:
    return control(3, struct.pack(">II", stream_id, status))


def ping(ping_id: int) -> bytes:
    return control(6, struct.pack(">I", ping_id))


def goaway(last_good: int, status: int = 0) -> bytes:
    return control(7, struct.pack(">II", last_good, status))


def pushed_stream(stream_id: int) -> bytes:
    """A SYN_STREAM from the server (port-forward never opens streams that way)."""
    deflate = zlib.compressobj()
    block = deflate.compress(encode_header_block({"streamtype": "data"})) + deflate.flush(zlib.Z_SYNC_FLUSH)
    return control(1, struct.pack(">IIH", stream_id, 0, 0) + block)


@dataclass
class SynStream:
    """A SYN_STREAM the tunnel sent, decoded by hand."""

    stream_id: int
    headers: dict[str, str]
    fin: bool = False
    associated: int = 0


class Kubelet:
    """The far end of the SPDY session: decodes what the tunnel sends, queues frames for it."""

    def __init__(self, ws: FakeWebSocket) -> None:
        self.ws = ws
        self._decoded = 0  # messages of ws.sent decoded so far
        self._buf = b""
        self._inflate = zlib.decompressobj()  # one zlib stream for all header blocks
        self._parser = SpdyParser()
        self._messages: list[list[object]] = []

    # --- what the tunnel sent
    @property
    def messages(self) -> list[list[object]]:
        """The frames of each WebSocket message the tunnel sent (SynStream or spdy events)."""
        while self._decoded < len(self.ws.sent):
            self._buf += self.ws.sent[self._decoded]
            self._decoded += 1
            frames: list[object] = []
            while len(self._buf) >= 8:
                first, second = struct.unpack_from(">II", self._buf)
                end = 8 + (second & 0xFFFFFF)
                if len(self._buf) < end:
                    break
                frame, self._buf = self._buf[:end], self._buf[end:]
                if first == 0x80030001:  # control, version 3, type 1: SYN_STREAM
                    frames.append(self._syn_stream(frame))
                else:
                    frames.extend(self._parser.feed(frame))
            self._messages.append(frames)
        return self._messages

    def _syn_stream(self, frame: bytes) -> SynStream:
        flags, body = frame[4], frame[8:]
        stream_id, associated, _priority = struct.unpack_from(">IIH", body)
        block = self._inflate.decompress(body[10:])
        assert not self._inflate.unconsumed_tail, "a header block must end with a sync flush"
        (count,), pos, headers = struct.unpack_from(">I", block), 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4:pos + 4 + size].decode()
            pos += 4 + size
            (size,) = struct.unpack_from(">I", block, pos)
            headers[name] = block[pos + 4:pos + 4 + size].decode()
            pos += 4 + size
        assert pos == len(block), "trailing bytes after the header block"
        return SynStream(stream_id, headers, bool(flags & FLAG_FIN), associated)

    @property
    def events(self) -> list[object]:
        return [frame for message in self.messages for frame in message]

    def syn_streams(self) -> list[SynStream]:
        return [e for e in self.events if isinstance(e, SynStream)]

    def data(self, stream_id: int) -> bytes:
        return b"".join(e.payload for e in self.events if isinstance(e, StreamData) and e.stream_id == stream_id)

    def fin(self, stream_id: int) -> bool:
        return any(isinstance(e, StreamData) and e.stream_id == stream_id and e.fin for e in self.events)

    def resets(self) -> list[StreamReset]:
        return [e for e in self.events if isinstance(e, StreamReset)]

    def pings(self) -> list[int]:
        return [e.ping_id for e in self.events if isinstance(e, Ping)]

    # --- what the kubelet sends
    def send(self, *frames: bytes) -> None:
        self.ws.receive(b"".join(frames))

    def reply(self, *stream_ids: int) -> None:
        self.send(*(syn_reply(i) for i in stream_ids))

    def send_data(self, stream_id: int, payload: bytes, *, fin: bool = False) -> None:
        self.send(SpdyEncoder.data(stream_id, payload, fin=fin))


# ---------------------------------------------------------------- the harness
async def eventually(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Poll until ``condition()`` holds; fail naming ``what`` if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.005)


async def read_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything the client still gets before EOF (fails if EOF never comes)."""
    return await asyncio.wait_for(reader.read(), TIMEOUT)


@dataclass
class Client:
    """One local TCP connection through the tunnel."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server_writer: asyncio.StreamWriter  # the tunnel's end of the local socket
    error_id: int = 0
    data_id: int = 0


def small_buffers(sock: socket.socket | object, option: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, option, 16 * 1024)  # type: ignore[attr-defined]


class Harness:
    """A Tunnel over a FakeWebSocket, a local listener it forwards, and the kubelet."""

    def __init__(self, **tunnel_options: float) -> None:
        self.ws = FakeWebSocket()
        self.kubelet = Kubelet(self.ws)
        self.tunnel = Tunnel(self.ws, "web-0", **tunnel_options)  # type: ignore[arg-type]
        self.results: asyncio.Queue[StreamResult | BaseException] = asyncio.Queue()
        self.traffic = Traffic()  # the forward's counters, shared by every connection
        self._accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()
        self._handled = self._finished = 0
        self._small_buffers = False
        self.server: asyncio.base_events.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._handled += 1
        if self._small_buffers:
            small_buffers(writer.get_extra_info("socket"), socket.SO_SNDBUF)
        self._accepted.put_nowait(writer)
        try:
            self.results.put_nowait(await self.tunnel.forward(reader, writer, PORT, traffic=self.traffic))
        except BaseException as exc:  # forward must not raise: make the test see it
            self.results.put_nowait(exc)
            raise
        finally:
            self._finished += 1

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def connect(self, *, small: bool = False) -> Client:
        """A local connection, its SYN_STREAMs not yet answered."""
        assert self.server is not None
        address = self.server.sockets[0].getsockname()
        self._small_buffers = small
        if small:  # the kernel then holds little, so the tunnel's own buffer shows
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            small_buffers(sock, socket.SO_RCVBUF)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, address)
            reader, writer = await asyncio.open_connection(sock=sock)
        else:
            reader, writer = await asyncio.open_connection(*address)
        server_writer = await asyncio.wait_for(self._accepted.get(), TIMEOUT)
        return Client(reader, writer, server_writer)

    async def open(self, *, small: bool = False) -> Client:
        """A local connection whose two streams the kubelet has acknowledged."""
        before = len(self.kubelet.syn_streams())
        client = await self.connect(small=small)
        await eventually(lambda: len(self.kubelet.syn_streams()) >= before + 2, "the SYN_STREAM pair")
        error, data = self.kubelet.syn_streams()[before:before + 2]
        client.error_id, client.data_id = error.stream_id, data.stream_id
        self.kubelet.reply(client.error_id, client.data_id)
        return client

    async def result(self) -> StreamResult:
        """How the next local connection ended."""
        result = await asyncio.wait_for(self.results.get(), TIMEOUT)
        if isinstance(result, BaseException):
            raise AssertionError(f"Tunnel.forward raised {result!r}") from result
        return result

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.tunnel.close()
        await eventually(lambda: self._finished == self._handled, "every forward() to return")
        await self.server.wait_closed()


def run(scenario: Callable[[Harness], Awaitable[None]], **tunnel_options: float) -> None:
    """Run one scenario on a fresh loop; fail on anything the loop reports (lost exceptions)."""

    async def main() -> None:
        problems: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: problems.append(context))
        harness = Harness(**tunnel_options)
        await harness.start()
        try:
            await asyncio.wait_for(scenario(harness), 5.0)
        finally:
            await harness.stop()
        assert not problems, problems

    asyncio.run(main())


# ---------------------------------------------------------------- 1. opening streams
def test_a_connection_opens_error_and_data_streams_in_one_message():
    # kubectl's order, without waiting for replies: SYN_STREAM for the error
    # stream, our FIN on it (we never write there), SYN_STREAM for the data
    # stream; both name the port and share a requestid.  Client stream ids
    # are odd and increasing; the next connection takes the next pair.
    async def scenario(h: Harness) -> None:
        first_client = await h.connect()  # kept: a collected client would close (and send FIN)
        await eventually(lambda: h.ws.sent, "the opening message")
        assert len(h.ws.sent) == 1, "the pair must be opened in a single WebSocket message"
        first = {"port": str(PORT), "requestid": h.kubelet.syn_streams()[0].headers["requestid"]}
        assert h.kubelet.messages == [[
            SynStream(1, {"streamtype": "error", **first}),
            StreamData(1, b"", True),
            SynStream(3, {"streamtype": "data", **first}),
        ]]

        second_client = await h.connect()
        await eventually(lambda: len(h.ws.sent) == 2, "the second opening message")
        second = {"port": str(PORT), "requestid": str(int(first["requestid"]) + 1)}
        assert h.kubelet.messages[1] == [
            SynStream(5, {"streamtype": "error", **second}),
            StreamData(5, b"", True),
            SynStream(7, {"streamtype": "data", **second}),
        ]
        assert h.tunnel.connections == 2
        assert not first_client.reader.at_eof() and not second_client.reader.at_eof()

    run(scenario)


# ---------------------------------------------------------------- 2. data both ways, half-close
def test_data_flows_both_ways_with_half_close():
    # The client's bytes become DATA on the data stream; its half-close
    # (shutdown SHUT_WR) becomes an empty DATA with FIN, and the pod's reply
    # still reaches it; the kubelet's FIN on the data stream ends the
    # connection.  The kubelet closing the error stream (FIN, no text, as
    # it does when all went well) does not end anything.
    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.kubelet.send_data(c.error_id, b"", fin=True)

        c.writer.write(b"GET / HTTP/1.0\r\n\r\n")
        await c.writer.drain()
        await eventually(lambda: h.kubelet.data(c.data_id) == b"GET / HTTP/1.0\r\n\r\n", "the request upstream")
        assert not h.kubelet.fin(c.data_id)

        c.writer.write_eof()  # shutdown(SHUT_WR)
        await eventually(lambda: h.kubelet.fin(c.data_id), "FIN on the data stream")
        last = [e for e in h.kubelet.events if isinstance(e, StreamData) and e.stream_id == c.data_id][-1]
        assert last == StreamData(c.data_id, b"", True), "the half-close is an empty DATA frame with FIN"

        h.kubelet.send_data(c.data_id, b"HTTP/1.0 200 OK\r\n\r\n")
        h.kubelet.send_data(c.data_id, b"hello")
        assert await asyncio.wait_for(c.reader.readexactly(24), TIMEOUT) == b"HTTP/1.0 200 OK\r\n\r\nhello"
        h.kubelet.send_data(c.data_id, b"", fin=True)
        assert await read_eof(c.reader) == b""

        assert await h.result() == StreamResult(bytes_up=18, bytes_down=24, error="", dropped=False)
        assert h.tunnel.connections == 0 and h.tunnel.usable
        assert not h.kubelet.resets(), "a clean end resets nothing"

    run(scenario)


def test_the_forwards_traffic_counts_bytes_each_way_as_they_pass():
    # The counters move while connections are open (not when they end), and
    # every connection of the forward adds to the same ones.
    async def scenario(h: Harness) -> None:
        a, b = await h.open(), await h.open()
        a.writer.write(b"x" * 100)
        b.writer.write(b"y" * 50)
        await eventually(lambda: h.traffic.bytes_out == 150, "150 bytes counted out")
        h.kubelet.send_data(a.data_id, b"z" * 1000)
        assert await asyncio.wait_for(a.reader.readexactly(1000), TIMEOUT) == b"z" * 1000
        assert (h.traffic.bytes_in, h.traffic.bytes_out) == (1000, 150)
        h.kubelet.send_data(b.error_id, b"connection refused")  # error text is not traffic
        for c in (a, b):
            h.kubelet.send_data(c.data_id, b"", fin=True)
        results = [await h.result(), await h.result()]
        assert sorted(r.bytes_down for r in results) == [0, 1000]
        assert (h.traffic.bytes_in, h.traffic.bytes_out) == (1000, 150)

    run(scenario)


def test_frames_split_across_messages_at_any_byte():
    # The API server forwards the kubelet's bytes in whatever pieces it
    # reads: replies and data cut one byte per message must still work.
    async def scenario(h: Harness) -> None:
        c = await h.connect()
        await eventually(lambda: len(h.kubelet.syn_streams()) == 2, "the SYN_STREAM pair")
        stream = syn_reply(1) + syn_reply(3) + SpdyEncoder.data(3, b"piecemeal", fin=True)
        for i in range(len(stream)):
            h.kubelet.send(stream[i:i + 1])
        assert await read_eof(c.reader) == b"piecemeal"
        assert await h.result() == StreamResult(bytes_down=9)

    run(scenario)


# ---------------------------------------------------------------- 3. errors and resets
def test_error_text_then_reset_fails_the_connection_not_the_tunnel():
    # How the kubelet reports "connection refused" inside the pod: text on
    # the error stream, then RST_STREAM.  The client's connection closes and
    # the text is the result's error; the tunnel stays usable, and late
    # frames for the ended streams are ignored.
    text = b"error forwarding port 8080 to pod web-0: dial tcp4 127.0.0.1:8080: connect: connection refused"

    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.kubelet.send_data(c.error_id, text[:30])
        h.kubelet.send_data(c.error_id, text[30:], fin=True)
        h.kubelet.send(rst_stream(c.error_id, 5), rst_stream(c.data_id, 5))
        assert await read_eof(c.reader) == b""
        result = await h.result()
        assert result.error == text.decode() and not result.dropped

        h.kubelet.send_data(c.data_id, b"late", fin=True)
        h.kubelet.send(rst_stream(c.data_id, 5))
        nxt = await h.open()
        h.kubelet.send_data(nxt.data_id, b"ok", fin=True)
        assert await read_eof(nxt.reader) == b"ok"
        assert (await h.result()).bytes_down == 2
        assert h.tunnel.usable

    run(scenario)


def test_reset_without_text_names_the_reason():
    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.kubelet.send(rst_stream(c.data_id, 6))  # INTERNAL_ERROR
        assert await read_eof(c.reader) == b""
        result = await h.result()
        assert "reset" in result.error and "internal error" in result.error
        assert not result.dropped and h.tunnel.usable

    run(scenario)


# ---------------------------------------------------------------- 4. PING
def test_server_pings_are_echoed_and_odd_ones_are_not():
    # Even ids are the server's and must be echoed with the same id; an odd
    # id is an answer to one of ours, so an unsolicited one is not echoed.
    async def scenario(h: Harness) -> None:
        h.kubelet.send(ping(7))
        h.kubelet.send(ping(2))
        await eventually(lambda: h.kubelet.pings(), "the echo")
        assert h.kubelet.pings() == [2]
        assert h.tunnel.usable

    run(scenario)


def test_answers_trusts_a_tunnel_that_spoke_recently():
    # Just opened (or just heard from): no PING, no wait.
    async def scenario(h: Harness) -> None:
        assert await h.tunnel.answers() is True
        assert h.kubelet.pings() == []

    run(scenario)


def test_answers_pings_a_silent_tunnel(monkeypatch):
    # Silent for CHECK_AFTER: answers() sends one PING with an odd id (the
    # client's), shared by concurrent callers, and is True once answered.
    monkeypatch.setattr(tunnel_mod, "CHECK_AFTER", 0.05)

    async def scenario(h: Harness) -> None:
        await asyncio.sleep(0.08)
        checks = asyncio.gather(h.tunnel.answers(), h.tunnel.answers())
        await eventually(lambda: h.kubelet.pings(), "our PING")
        (ping_id,) = h.kubelet.pings()
        assert ping_id % 2 == 1
        h.kubelet.send(ping(ping_id))
        assert await asyncio.wait_for(checks, TIMEOUT) == [True, True]
        assert await h.tunnel.answers() is True
        assert len(h.kubelet.pings()) == 1, "the answer counts as hearing from the tunnel"

    run(scenario, reply_timeout=0.2)


def test_suspect_forces_a_ping_and_no_answer_aborts():
    # After suspect() the next check PINGs at once; no answer within the
    # reply timeout means the tunnel is dead: aborted, not usable, and
    # answers() says False (then and afterwards, without another PING).
    async def scenario(h: Harness) -> None:
        h.tunnel.suspect()
        assert await h.tunnel.answers() is False
        assert h.kubelet.pings() == [1]
        assert not h.tunnel.usable
        assert "no answer to a ping" in h.tunnel.closed_reason
        await eventually(lambda: h.ws.closed, "the WebSocket closed")
        assert await h.tunnel.answers() is False
        assert h.kubelet.pings() == [1]

    run(scenario, reply_timeout=0.2)


def test_suspect_pings_at_once_and_later_frames_do_not_call_it_off():
    # A connection failed (the kubelet's error on it): the tunnel PINGs now,
    # though the kubelet spoke a moment ago, so that the API server, which
    # keeps a WebSocket whose kubelet side is gone open until we write,
    # closes it and the other open connections end instead of waiting.
    # Frames arriving meanwhile (the failing path's last words) do not make
    # answers() trust the tunnel: it waits for the PING's answer.
    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.kubelet.send_data(c.data_id, b"hello")
        assert await asyncio.wait_for(c.reader.readexactly(5), TIMEOUT) == b"hello"
        h.tunnel.suspect()
        await eventually(lambda: h.kubelet.pings(), "a PING at once")
        h.kubelet.send_data(c.data_id, b" more")
        check = asyncio.ensure_future(h.tunnel.answers())
        await asyncio.sleep(0.05)
        assert not check.done(), "answers() trusted the tunnel before the PING came back"
        h.ws.peer_close()  # the API server, on our write
        assert await asyncio.wait_for(check, TIMEOUT) is False
        assert await read_eof(c.reader) == b" more"
        assert (await h.result()).dropped

    run(scenario)


def test_an_unanswered_check_writes_its_ping_again(monkeypatch):
    # A PING written just before the kubelet's side of the session closed is
    # lost, and the API server closes our WebSocket only when we next write:
    # the check writes its PING again every KEEPALIVE_AFTER until an answer
    # (or the reply timeout); the API server closing on such a write ends it.
    monkeypatch.setattr(tunnel_mod, "KEEPALIVE_AFTER", 0.05)

    async def scenario(h: Harness) -> None:
        h.tunnel.suspect()
        check = asyncio.ensure_future(h.tunnel.answers())
        await eventually(lambda: len(h.kubelet.pings()) >= 3, "the PING written again, twice")
        assert not check.done(), "the check ended without an answer or a close"
        h.ws.peer_close()  # the API server, on one of those writes
        assert await asyncio.wait_for(check, TIMEOUT) is False

    run(scenario, reply_timeout=3.0)


def test_a_check_answered_late_keeps_the_tunnel(monkeypatch):
    monkeypatch.setattr(tunnel_mod, "KEEPALIVE_AFTER", 0.05)

    async def scenario(h: Harness) -> None:
        h.tunnel.suspect()
        check = asyncio.ensure_future(h.tunnel.answers())
        await eventually(lambda: len(h.kubelet.pings()) >= 2, "the PING written again")
        h.kubelet.send(ping(h.kubelet.pings()[-1]))
        assert await asyncio.wait_for(check, TIMEOUT) is True
        count = len(h.kubelet.pings())
        await asyncio.sleep(0.2)
        assert len(h.kubelet.pings()) == count, "PINGs went on after the answer"
        assert h.tunnel.closed_reason is None and h.tunnel.usable

    run(scenario, reply_timeout=3.0)


def test_a_ping_unanswered_for_suspect_after_sends_new_connections_elsewhere(monkeypatch):
    # A flow that stopped carrying bytes (a slept laptop, a NAT that forgot it) answers never:
    # after SUSPECT_AFTER without an answer, answers() is False and the tunnel takes no new
    # connections (the dialer opens a fresh one), while the check goes on to the reply timeout
    # and the open connection keeps its tunnel.  A late answer makes the tunnel usable again.
    monkeypatch.setattr(tunnel_mod, "SUSPECT_AFTER", 0.1)
    monkeypatch.setattr(tunnel_mod, "KEEPALIVE_AFTER", 0.05)

    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.tunnel.suspect()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await h.tunnel.answers() is False
        assert 0.09 <= loop.time() - started < 1.0
        assert not h.tunnel.usable
        assert h.tunnel.closed_reason is None, "aborted before the reply timeout"
        h.kubelet.send_data(c.data_id, b"still here")
        assert await asyncio.wait_for(c.reader.readexactly(10), TIMEOUT) == b"still here"
        h.kubelet.send(ping(h.kubelet.pings()[-1]))
        await eventually(lambda: h.tunnel.usable, "the tunnel usable again after the answer")
        assert await h.tunnel.answers() is True

    run(scenario, reply_timeout=3.0)


def test_keep_alive_pings_only_while_carrying_connections(monkeypatch):
    # Every KEEPALIVE_AFTER of silence a tunnel with connections is PINGed;
    # an answer keeps it, no answer ends it and its connections count as
    # dropped.  A tunnel without connections is not PINGed (idle_close
    # handles it).
    monkeypatch.setattr(tunnel_mod, "KEEPALIVE_AFTER", 0.05)

    async def scenario(h: Harness) -> None:
        await asyncio.sleep(0.15)
        assert h.kubelet.pings() == [], "no keep-alive PING without connections"

        c = await h.open()
        await eventually(lambda: h.kubelet.pings(), "a keep-alive PING")
        h.kubelet.send(ping(h.kubelet.pings()[0]))
        await eventually(lambda: len(h.kubelet.pings()) >= 2, "the next keep-alive PING")
        assert h.tunnel.closed_reason is None
        # This one goes unanswered.
        assert await read_eof(c.reader) == b""
        result = await h.result()
        assert result.dropped
        assert "no answer to a ping" in h.tunnel.closed_reason

    run(scenario, reply_timeout=0.2, idle_close=10)


# ---------------------------------------------------------------- 5. GOAWAY, pushed streams
def test_goaway_stops_new_connections_but_open_ones_carry_on():
    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.kubelet.send(goaway(c.data_id))
        await eventually(lambda: not h.tunnel.usable, "usable to turn False")
        assert h.tunnel.closed_reason is None

        c.writer.write(b"still here")
        await eventually(lambda: h.kubelet.data(c.data_id) == b"still here", "data after GOAWAY")
        h.kubelet.send_data(c.data_id, b"me too", fin=True)
        assert await read_eof(c.reader) == b"me too"
        assert await h.result() == StreamResult(bytes_up=10, bytes_down=6)

    run(scenario)


def test_goaway_hands_back_the_streams_after_last_good():
    # GOAWAY names the last stream the kubelet saw: a connection opened after
    # it was never seen, so forward() returns it for a replay elsewhere (with
    # what it had sent, the local socket left open), while the one before
    # it carries on.
    async def scenario(h: Harness) -> None:
        first = await h.open()
        second_client = await h.connect()
        second_client.writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await eventually(lambda: len(h.kubelet.syn_streams()) >= 4, "the second SYN_STREAM pair")
        second_data = h.kubelet.syn_streams()[3].stream_id
        await eventually(lambda: h.kubelet.data(second_data), "the second connection's request")
        h.kubelet.send(goaway(first.data_id))
        result = await h.result()
        assert result.replay == b"GET / HTTP/1.1\r\n\r\n" and not result.replay_eof and not result.dropped
        h.kubelet.send_data(first.data_id, b"fine", fin=True)
        assert await read_eof(first.reader) == b"fine"
        assert await h.result() == StreamResult(bytes_down=4)
        assert not second_client.reader.at_eof()  # still the caller's to replay or close

    run(scenario)


def test_a_stream_pushed_by_the_server_is_refused():
    async def scenario(h: Harness) -> None:
        h.kubelet.send(pushed_stream(2))
        await eventually(lambda: h.kubelet.resets(), "RST_STREAM")
        assert h.kubelet.resets() == [StreamReset(2, RST_REFUSED_STREAM)]
        assert h.tunnel.usable

    run(scenario)


# ---------------------------------------------------------------- 6. the tunnel going away
@pytest.mark.parametrize("how, reason", [
    ("drop", "port-forward session lost"),
    ("close 1011", "port-forward session lost"),
    ("close 1000", "the API server ended the port-forward session"),
])
def test_websocket_ending_drops_open_connections(how, reason):
    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.kubelet.send_data(c.data_id, b"partial")
        assert await asyncio.wait_for(c.reader.readexactly(7), TIMEOUT) == b"partial"
        if how == "drop":
            h.ws.drop()
        else:
            h.ws.peer_close(int(how.split()[1]))
        assert await read_eof(c.reader) == b""
        assert await h.result() == StreamResult(bytes_down=7, dropped=True)
        assert h.tunnel.closed_reason.startswith(reason)
        assert not h.tunnel.usable and await h.tunnel.answers() is False

    run(scenario)


def test_forward_on_an_ended_tunnel_is_handed_back_at_once():
    # Nothing was sent: the connection can start again elsewhere, untouched.
    async def scenario(h: Harness) -> None:
        h.ws.drop()
        await eventually(lambda: h.tunnel.closed_reason, "the tunnel to end")
        await h.connect()
        assert await h.result() == StreamResult(replay=b"")
        assert h.ws.sent == []

    run(scenario)


def test_unacknowledged_connection_is_handed_back_when_the_far_side_ends():
    # The API server closes the WebSocket before the kubelet answered (it
    # noticed its kubelet connection was gone when our SYN_STREAM came):
    # forward() returns what was sent, and the client's half-close, for a
    # replay on a fresh tunnel.
    async def scenario(h: Harness) -> None:
        c = await h.connect()
        c.writer.write(b"request")
        c.writer.write_eof()
        await eventually(lambda: len(h.kubelet.syn_streams()) >= 2, "the SYN_STREAM pair")
        data_id = h.kubelet.syn_streams()[1].stream_id
        await eventually(lambda: h.kubelet.data(data_id) == b"request", "the request")
        h.ws.peer_close(1000)
        result = await h.result()
        assert (result.replay, result.replay_eof, result.dropped) == (b"request", True, False)

    run(scenario)


def test_acknowledged_connection_is_dropped_not_handed_back():
    # Once the kubelet has answered it may have reached the pod: a drop.
    async def scenario(h: Harness) -> None:
        c = await h.open()
        c.writer.write(b"request")
        await eventually(lambda: h.kubelet.data(c.data_id) == b"request", "the request")
        h.ws.peer_close(1000)
        result = await h.result()
        assert result.dropped and result.replay is None
        assert await read_eof(c.reader) == b""

    run(scenario)


def test_unacknowledged_stream_aborts_the_tunnel():
    # A new stream the kubelet does not SYN_REPLY within the reply timeout
    # means the path is dead: the tunnel is aborted and the connection
    # counts as dropped (so the session checks the path).
    async def scenario(h: Harness) -> None:
        c = await h.connect()
        assert await read_eof(c.reader) == b""
        assert await h.result() == StreamResult(dropped=True)
        assert "did not answer" in h.tunnel.closed_reason
        assert h.ws.closed and not h.tunnel.usable

    run(scenario, reply_timeout=0.2)


def test_acknowledged_stream_outlives_the_reply_timeout():
    async def scenario(h: Harness) -> None:
        c = await h.open()
        await asyncio.sleep(0.3)
        assert h.tunnel.closed_reason is None
        h.kubelet.send_data(c.data_id, b"late but fine", fin=True)
        assert await read_eof(c.reader) == b"late but fine"

    run(scenario, reply_timeout=0.1)


# A text message used to be a case here too; it no longer reaches the tunnel
# at all (tray.wire.wsstream hands it to websockets, which fails the connection:
# tests/unit/wire/test_wsstream.py checks it is returned raw), so it is not one.
@pytest.mark.parametrize("garbage", [
    struct.pack(">HHI", 0x8000 | 2, 2, 4) + b"\0\0\0\1",  # SPDY/2 SYN_REPLY
])
def test_protocol_error_aborts_the_tunnel(garbage):
    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.ws.receive(garbage)
        assert await read_eof(c.reader) == b""
        assert (await h.result()).dropped
        assert h.tunnel.closed_reason.startswith("protocol error from the kubelet")
        assert h.ws.closed

    run(scenario)


# ---------------------------------------------------------------- 7. idle and retire
def test_idle_tunnel_closes_itself():
    async def scenario(h: Harness) -> None:
        await eventually(lambda: h.tunnel.closed_reason == "idle", "the idle close", timeout=1.0)
        await eventually(lambda: h.ws.closed, "the WebSocket closed")
        assert not h.tunnel.usable

    run(scenario, idle_close=0.1)


def test_idle_timer_waits_for_connections_to_end():
    async def scenario(h: Harness) -> None:
        c = await h.open()
        await asyncio.sleep(0.25)
        assert h.tunnel.closed_reason is None, "a tunnel carrying a connection is not idle"
        h.kubelet.send_data(c.data_id, b"", fin=True)
        await h.result()
        loop = asyncio.get_running_loop()
        ended = loop.time()
        await eventually(lambda: h.tunnel.closed_reason == "idle", "the idle close", timeout=1.0)
        assert loop.time() - ended >= 0.09, "closes idle_close after the last connection"

    run(scenario, idle_close=0.1)


def test_retire_without_connections_closes_at_once():
    async def scenario(h: Harness) -> None:
        h.tunnel.retire()
        assert not h.tunnel.usable
        await eventually(lambda: h.ws.closed, "the WebSocket closed", timeout=0.1)
        assert h.tunnel.closed_reason == "idle"

    run(scenario, idle_close=60)


def test_retire_with_a_connection_closes_when_it_ends():
    async def scenario(h: Harness) -> None:
        c = await h.open()
        h.tunnel.retire()
        assert not h.tunnel.usable
        await asyncio.sleep(0.05)
        assert h.tunnel.closed_reason is None and not h.ws.closed

        c.writer.write(b"ping")
        await eventually(lambda: h.kubelet.data(c.data_id) == b"ping", "data on a retired tunnel")
        h.kubelet.send_data(c.data_id, b"pong", fin=True)
        assert await read_eof(c.reader) == b"pong"
        assert not (await h.result()).dropped
        await eventually(lambda: h.ws.closed, "the WebSocket closed", timeout=0.1)
        assert h.tunnel.closed_reason == "idle"

    run(scenario, idle_close=60)


# ---------------------------------------------------------------- 8. back-pressure
CHUNK = 64 * 1024
CHUNKS = 32  # 2 MiB from the kubelet, far more than the local socket holds


def chunk(i: int) -> bytes:
    return bytes([i % 251]) * CHUNK


async def open_flooded(h: Harness) -> Client:
    """A local connection (small receive buffer, not reading) the kubelet has sent CHUNKS chunks to."""
    c = await h.open(small=True)
    for i in range(CHUNKS):
        h.kubelet.send_data(c.data_id, chunk(i))
    return c


def test_slow_client_stops_the_tunnel_reading(monkeypatch):
    # No SPDY flow control: when a local client stops reading and its buffer
    # passes HIGH_WATER, the tunnel must stop reading the WebSocket (pause
    # the transport: the rest stays in the fake transport's queue), so its memory
    # stays bounded; once the client reads, everything arrives in order.
    monkeypatch.setattr(tunnel_mod, "HIGH_WATER", CHUNK)

    async def scenario(h: Harness) -> None:
        c = await open_flooded(h)
        h.kubelet.send_data(c.data_id, b"", fin=True)

        buffered = c.server_writer.transport.get_write_buffer_size
        await eventually(lambda: buffered() > CHUNK, "the local buffer to pass HIGH_WATER")
        assert h.ws.transport.paused, "the tunnel did not pause reading"
        left = len(h.ws.transport.queued)
        await asyncio.sleep(0.1)  # time to read on, were the tunnel going to
        assert len(h.ws.transport.queued) == left > CHUNKS // 2, "the tunnel kept reading"
        assert buffered() <= CHUNK + CHUNK, "more than HIGH_WATER plus one frame buffered"

        received = await asyncio.wait_for(c.reader.readexactly(CHUNK * CHUNKS), TIMEOUT)
        assert received == b"".join(chunk(i) for i in range(CHUNKS))
        assert await read_eof(c.reader) == b""
        assert await h.result() == StreamResult(bytes_down=CHUNK * CHUNKS)
        assert not h.ws.transport.queued and not h.ws.transport.paused

    run(scenario)


def test_slow_client_does_not_get_a_healthy_tunnel_aborted(monkeypatch):
    # While the tunnel waits for a slow client it reads nothing, so the
    # kubelet's answer to a keep-alive PING sits unread behind the data.
    # A client pausing for KEEPALIVE_AFTER + REPLY_TIMEOUT (11 s by default)
    # must not make the tunnel look dead: the kubelet answered at once.
    monkeypatch.setattr(tunnel_mod, "HIGH_WATER", CHUNK)
    monkeypatch.setattr(tunnel_mod, "CHECK_AFTER", 0.05)
    monkeypatch.setattr(tunnel_mod, "KEEPALIVE_AFTER", 0.05)

    async def scenario(h: Harness) -> None:
        c = await open_flooded(h)

        answered: set[int] = set()

        async def answer_pings() -> None:  # a live kubelet answers at once
            while True:
                for ping_id in set(h.kubelet.pings()) - answered:
                    answered.add(ping_id)
                    h.kubelet.send(ping(ping_id))
                await asyncio.sleep(0.005)

        answering = asyncio.ensure_future(answer_pings())
        try:
            await asyncio.sleep(0.6)  # the client pauses
            received = await asyncio.wait_for(c.reader.read(CHUNK * CHUNKS + 1), TIMEOUT)
            while len(received) < CHUNK * CHUNKS:
                more = await asyncio.wait_for(c.reader.read(CHUNK * CHUNKS), TIMEOUT)
                if not more:
                    break
                received += more
            assert h.tunnel.closed_reason is None
            assert len(received) == CHUNK * CHUNKS
        finally:
            answering.cancel()

    run(scenario, reply_timeout=0.2, idle_close=10)


def test_abort_while_a_slow_client_holds_the_tunnel_ends_it_at_once(monkeypatch):
    # The reader waits for the slow client; an abort (the forward stopped,
    # the session declared dead) must not wait for that client to read.
    monkeypatch.setattr(tunnel_mod, "HIGH_WATER", CHUNK)

    async def scenario(h: Harness) -> None:
        c = await open_flooded(h)
        buffered = c.server_writer.transport.get_write_buffer_size
        await eventually(lambda: buffered() > CHUNK, "the local buffer to pass HIGH_WATER")
        h.tunnel.abort("forward stopped")
        result = await h.result()  # without the client reading a byte
        assert result.dropped and h.tunnel.closed_reason == "forward stopped"

    run(scenario)


# ---------------------------------------------------------------- 9. local reset
def test_local_client_reset_cancels_the_data_stream():
    # A client that resets (close with SO_LINGER 0) sends no FIN: the
    # kubelet is told to stop with RST_STREAM CANCEL on the data stream.
    async def scenario(h: Harness) -> None:
        c = await h.open()
        c.writer.write(b"half a request")
        await eventually(lambda: h.kubelet.data(c.data_id) == b"half a request", "the data upstream")
        c.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.writer.transport.abort()
        await eventually(lambda: h.kubelet.resets(), "RST_STREAM")
        assert h.kubelet.resets() == [StreamReset(c.data_id, RST_CANCEL)]
        assert not h.kubelet.fin(c.data_id), "a reset is not a half-close"
        result = await h.result()
        assert result.bytes_up == 14 and not result.dropped and not result.error
        assert h.tunnel.usable

    run(scenario)


# ---------------------------------------------------------------- 10. a pod that does not read
# The kubelet's SPDY library (moby/spdystream, Connection.Serve) as it runs
# inside the kubelet: one reader queues each frame for one of 5 frame
# workers (a stream's by id % 5, PINGs round-robin), 50 frames a queue, and
# stops reading while the queue it needs is full; a worker handling a DATA
# frame waits until the stream's copy to the pod takes it.  The pods behind
# it: "web" reads everything and answers a GET; a connection whose first
# bytes are a POST goes to a pod that reads nothing (its socket takes SOCKET_BYTES).
SOCKET_BYTES = 128 * 1024


@dataclass
class PodStream:
    headers: dict[str, str]
    app: str = ""  # "web" or "sink", chosen by the first bytes
    holding: int = 0  # bytes the copy to the pod holds (it waits to write them)
    in_socket: int = 0  # bytes in the pod's socket, unread
    received: bytes = b""  # what the web pod read
    reset: bool = False
    answered: bool = False


class SpdystreamKubelet:
    """The far end as moby/spdystream runs it (see above); frames are handled as they are sent."""

    WORKERS, QUEUE = 5, 50

    def __init__(self, ws: FakeWebSocket) -> None:
        self.ws = ws
        self._buf = b""
        self._inflate = zlib.decompressobj()
        self._unread: collections.deque[tuple[int, object]] = collections.deque()  # (partition, frame)
        self.queues: list[collections.deque[object]] = [collections.deque() for _ in range(self.WORKERS)]
        self._rr = 0
        self.streams: dict[int, PodStream] = {}
        self.reader_blocked = False
        self.max_queued = [0] * self.WORKERS
        self.pings_answered = 0
        ws.on_send = self.feed

    # --- reading the session
    def feed(self, message: bytes) -> None:
        self._buf += message
        while len(self._buf) >= 8:
            first, second = struct.unpack_from(">II", self._buf)
            end = 8 + (second & 0xFFFFFF)
            if len(self._buf) < end:
                break
            frame, self._buf = self._buf[:end], self._buf[end:]
            if first & 0x80000000:
                kind = first & 0xFFFF
                body = frame[8:]
                if kind == 1:  # SYN_STREAM
                    stream_id = struct.unpack_from(">I", body)[0]
                    block = self._inflate.decompress(body[10:])
                    (count,), pos, headers = struct.unpack_from(">I", block), 4, {}
                    for _ in range(count):
                        (size,) = struct.unpack_from(">I", block, pos)
                        name = block[pos + 4:pos + 4 + size].decode()
                        pos += 4 + size
                        (size,) = struct.unpack_from(">I", block, pos)
                        headers[name] = block[pos + 4:pos + 4 + size].decode()
                        pos += 4 + size
                    self._unread.append((stream_id % 5, ("syn", stream_id, headers)))
                elif kind == 3:  # RST_STREAM
                    stream_id = struct.unpack_from(">I", body)[0]
                    self._unread.append((stream_id % 5, ("rst", stream_id)))
                elif kind == 6:  # PING: round-robin
                    self._unread.append((self._rr, ("ping", struct.unpack_from(">I", body)[0])))
                    self._rr = (self._rr + 1) % self.WORKERS
            else:
                self._unread.append((first % 5, ("data", first, frame[8:], bool(frame[4] & FLAG_FIN))))
        self.run()

    def run(self) -> None:
        progress = True
        while progress:
            progress = False
            while self._unread:  # the reader
                partition, frame = self._unread[0]
                if len(self.queues[partition]) >= self.QUEUE:
                    self.reader_blocked = True
                    break
                self._unread.popleft()
                self.queues[partition].append(frame)
                self.max_queued[partition] = max(self.max_queued[partition], len(self.queues[partition]))
                progress = True
            for queue in self.queues:  # the workers
                while queue and self._handle(queue[0]):
                    queue.popleft()
                    progress = True

    def _handle(self, frame: tuple) -> bool:
        kind = frame[0]
        if kind == "syn":
            _, stream_id, headers = frame
            self.streams[stream_id] = PodStream(headers)
            self.ws.receive(syn_reply(stream_id))
        elif kind == "ping":
            self.pings_answered += 1
            self.ws.receive(ping(frame[1]))
        elif kind == "rst":
            stream = self.streams.get(frame[1])
            if stream is not None:
                stream.reset = True
        else:
            _, stream_id, payload, fin = frame
            stream = self.streams.get(stream_id)
            if stream is None or stream.reset or stream.headers.get("streamtype") != "data":
                return True
            if payload:
                if stream.holding:
                    return False  # the worker waits for the copy to the pod
                stream.app = stream.app or ("sink" if payload.startswith(b"POST") else "web")
                stream.holding = len(payload)
                self._pod(stream_id, stream, payload)
            if fin and stream.app == "web" and not stream.answered:
                self._answer(stream_id, stream)
        return True

    def _pod(self, stream_id: int, stream: PodStream, payload: bytes) -> None:
        if stream.app == "web":
            stream.received += payload
            stream.holding = 0
            if stream.received.startswith(b"GET") and b"\r\n\r\n" in stream.received and not stream.answered:
                self._answer(stream_id, stream)
        else:  # the copy writes what the socket takes; the pod reads none of it
            taken = min(stream.holding, SOCKET_BYTES - stream.in_socket)
            stream.in_socket += taken
            stream.holding -= taken

    def _answer(self, stream_id: int, stream: PodStream) -> None:
        stream.answered = True
        self.ws.receive(SpdyEncoder.data(stream_id, b"HTTP/1.1 200 OK\r\n\r\nok", fin=True))

    def sink_reads(self) -> None:
        """Every sink pod reads what waits in its socket (and goes on not reading)."""
        for stream in self.streams.values():
            if stream.app == "sink":
                stream.in_socket = 0
                taken = min(stream.holding, SOCKET_BYTES)
                stream.in_socket, stream.holding = taken, stream.holding - taken
        self.run()

    def sink_bytes(self) -> int:
        return sum(s.in_socket + s.holding for s in self.streams.values() if s.app == "sink")


class HookedWebSocket(FakeWebSocket):
    on_send: Callable[[bytes], None] | None = None

    async def send(self, message: bytes) -> None:
        await super().send(message)
        if self.on_send is not None:
            self.on_send(bytes(message))


def run_spdystream(scenario: Callable[[Harness, SpdystreamKubelet], Awaitable[None]], *,
                   timeout: float = 20.0, **tunnel_options: float) -> None:
    """A scenario against the spdystream model (see above), on a fresh loop."""

    async def main() -> None:
        problems: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: problems.append(context))
        harness = Harness(**tunnel_options)
        harness.ws = HookedWebSocket()
        harness.kubelet = Kubelet(harness.ws)
        harness.tunnel = Tunnel(harness.ws, "web-0", **tunnel_options)  # type: ignore[arg-type]
        model = SpdystreamKubelet(harness.ws)
        await harness.start()
        try:
            await asyncio.wait_for(scenario(harness, model), timeout)
        finally:
            await harness.stop()
        assert not problems, problems

    asyncio.run(main())


async def timed_get(h: Harness, deadline: float) -> float:
    """One GET on a new connection; its time in seconds (fails past ``deadline``)."""
    assert h.server is not None
    loop = asyncio.get_running_loop()
    start = loop.time()
    reader, writer = await asyncio.open_connection(*h.server.sockets[0].getsockname())
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = await asyncio.wait_for(reader.read(), deadline)
    except TimeoutError:
        raise AssertionError(f"a GET got no answer within {deadline} s") from None
    finally:
        writer.close()
    assert reply.endswith(b"ok"), reply
    return loop.time() - start


async def post_forever(h: Harness, size: int) -> None:
    """A POST of ``size`` bytes to the pod that reads nothing; never answered."""
    assert h.server is not None
    reader, writer = await asyncio.open_connection(*h.server.sockets[0].getsockname())
    try:
        writer.write(b"POST /delay HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"y" * size)
        await writer.drain()
        await reader.read()
    finally:
        writer.close()


def test_a_pod_that_does_not_read_delays_no_other_connection():
    # Three clients POST 12 MiB each to a pod that reads none of it, while
    # another makes GETs one after another, each on a new connection.  Every
    # GET answers at once; nothing reconnects; the kubelet's reader never
    # stops and no queue fills; what the kubelet holds of the POSTs is
    # bounded by the window.  (Before: the POSTs' frames filled a worker's
    # queue, the reader stopped, and every GET and PING waited for good.)
    async def scenario(h: Harness, model: SpdystreamKubelet) -> None:
        posts = [asyncio.ensure_future(post_forever(h, 12 << 20)) for _ in range(3)]
        try:
            await eventually(lambda: model.sink_bytes() > 0, "the POSTs to reach the pod")
            for _ in range(40):
                await timed_get(h, 1.0)
            assert h.tunnel.closed_reason is None and not h.ws.closed
            assert not model.reader_blocked, "the kubelet's reader stopped"
            assert max(model.max_queued) < SpdystreamKubelet.QUEUE
            held = model.sink_bytes() + sum(len(f[2]) for q in model.queues for f in q if f[0] == "data")
            assert held <= 3 * (tunnel_mod.WINDOW + SOCKET_BYTES)
        finally:
            for post in posts:
                post.cancel()

    run_spdystream(scenario)


def test_a_stuck_worker_moves_new_connections_and_keeps_the_old_ones(monkeypatch):
    # The POST's worker never answers its PING while PINGs to other workers
    # come back: after STALL_AFTER the tunnel takes no new connections (the
    # next one gets a fresh tunnel), but it is not aborted: its keep-alive
    # PINGs go to clear workers, a GET opened before still completes, and
    # once the pod reads again the POST carries on.
    monkeypatch.setattr(tunnel_mod, "CHECK_AFTER", 0.1)
    monkeypatch.setattr(tunnel_mod, "KEEPALIVE_AFTER", 0.1)
    monkeypatch.setattr(tunnel_mod, "STALL_AFTER", 0.2)

    async def scenario(h: Harness, model: SpdystreamKubelet) -> None:
        assert h.server is not None
        reader, writer = await asyncio.open_connection(*h.server.sockets[0].getsockname())  # opened first
        await eventually(lambda: h.tunnel.connections == 1, "the first connection")
        post = asyncio.ensure_future(post_forever(h, 6 << 20))
        try:
            await eventually(lambda: not h.tunnel.usable, "the tunnel to take no new connections", timeout=5)
            assert h.tunnel.wedged and h.tunnel.closed_reason is None
            answered = model.pings_answered
            await eventually(lambda: model.pings_answered > answered, "a keep-alive PING answered")
            await asyncio.sleep(0.5)  # keep-alive checks come and go
            assert h.tunnel.closed_reason is None and h.tunnel.connections == 2
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection opened before carries on
            assert (await asyncio.wait_for(reader.read(), TIMEOUT)).endswith(b"ok")
            writer.close()
            before = model.sink_bytes()
            model.sink_reads()
            await eventually(lambda: model.sink_bytes() > before or model.sink_bytes() > SOCKET_BYTES,
                             "the POST to carry on")
        finally:
            post.cancel()

    run_spdystream(scenario, reply_timeout=0.3, idle_close=10)


def test_bulk_upload_to_a_reading_pod_is_whole_and_windowed(monkeypatch):
    # A pod that reads: 20 MiB arrives whole, in order; the kubelet never
    # queued more than WINDOW_FRAMES of it at one worker.
    monkeypatch.setattr(tunnel_mod, "WINDOW", 1 << 20)

    async def scenario(h: Harness, model: SpdystreamKubelet) -> None:
        size = 20 << 20
        c = await h.connect()
        body = bytes(range(256)) * (size // 256)
        c.writer.write(b"PUT / HTTP/1.1\r\n\r\n" + body)  # "web": reads everything
        await eventually(lambda: sum(len(s.received) for s in model.streams.values()) >= size, "the upload",
                         timeout=15)
        (stream,) = [s for s in model.streams.values() if s.received]
        assert stream.received == b"PUT / HTTP/1.1\r\n\r\n" + body
        assert max(model.max_queued) <= tunnel_mod.WINDOW_FRAMES + 2
        c.writer.close()

    run_spdystream(scenario)


# ---------------------------------------------------------------- 11. the kubelet's queues, as data
def test_kubelet_queues_follow_spdystream():
    # Streams go to worker id % 5, PINGs round-robin from worker 0; an answer
    # proves its worker handled everything queued before it, and bulk data
    # reserves its worker until then.
    from tray.engine.tunnel import KubeletQueues

    q = KubeletQueues(stall_after=1.0)
    assert [q.stream_frame(i) for i in (1, 3, 7)] == [1, 1, 1]  # workers 1, 3, 2
    assert q.stream_frame(11, bulk=True) == 2  # worker 1, its second frame
    assert q.reserved(1) and not q.reserved(3)
    assert [q.ping(pid) for pid in (1, 3)] == [0, 1]
    assert q.covered(1) and q.outstanding(1) == 3
    assert q.answered(3, now=10.0) == 1
    assert not q.reserved(1) and q.outstanding(1) == 0
    # The PING to worker 0 was overtaken: stuck after stall_after.
    assert q.stalled(10.5) == set() and q.stalled(11.0) == {0}
    assert q.answered(1, now=12.0) == 0 and q.stalled(20.0) == set()
    assert q.answered(99, now=12.0) is None


def test_new_connections_keep_away_from_bulk_workers():
    # While a connection's bulk data waits unacknowledged at its worker, new
    # connections take stream ids whose workers (error and data) are clear.
    async def scenario(h: Harness) -> None:
        c = await h.open()  # streams 1 and 3
        c.writer.write(b"x" * (tunnel_mod.FREE_BYTES + 1))
        await eventually(lambda: len(h.kubelet.data(c.data_id)) > tunnel_mod.FREE_BYTES, "the bulk data")
        assert h.tunnel._queues.reserved(c.data_id % 5)
        for _ in range(6):
            other = await h.connect()
            await eventually(lambda: len(h.kubelet.syn_streams()) % 2 == 0 and h.kubelet.syn_streams()[-1].stream_id
                             > c.data_id, "the next pair")
            error, data = h.kubelet.syn_streams()[-2:]
            assert error.stream_id % 5 != c.data_id % 5 and data.stream_id % 5 != c.data_id % 5
            assert error.headers["requestid"] == data.headers["requestid"] and error.stream_id < data.stream_id
            other.writer.close()

    run(scenario)


def test_a_connection_held_up_behind_a_client_that_does_not_read_fails_after_the_reply_timeout(monkeypatch):
    # Placed on the tunnel just as another local client stopped reading: its reply waits behind
    # the data held back for that client.  After the reply timeout it fails (its local socket
    # closes) instead of waiting as long as the other client does not read; the tunnel lives.
    monkeypatch.setattr(tunnel_mod, "HIGH_WATER", CHUNK)

    async def scenario(h: Harness) -> None:
        slow = await open_flooded(h)
        await eventually(lambda: h.ws.transport.paused, "reading to pause")
        before = len(h.kubelet.syn_streams())
        late = await h.connect()
        await eventually(lambda: len(h.kubelet.syn_streams()) >= before + 2, "the late connection's streams")
        error, data = h.kubelet.syn_streams()[before:before + 2]
        h.kubelet.reply(error.stream_id, data.stream_id)  # behind the held-back data
        assert await read_eof(late.reader) == b""
        result = await h.result()
        assert "held up behind another local client" in result.error
        assert h.tunnel.closed_reason is None
        received = await asyncio.wait_for(slow.reader.readexactly(CHUNK * CHUNKS), TIMEOUT)
        assert len(received) == CHUNK * CHUNKS

    run(scenario, reply_timeout=0.3)


def test_a_client_that_does_not_read_sends_new_connections_elsewhere(monkeypatch):
    # A local client that stops reading holds up the tunnel's reading (no
    # flow control on the kubelet's side): past HELD_UP_AFTER the tunnel takes
    # no new connections, which would wait behind it, and is not aborted.
    monkeypatch.setattr(tunnel_mod, "HIGH_WATER", CHUNK)
    monkeypatch.setattr(tunnel_mod, "HELD_UP_AFTER", 0.2)

    async def scenario(h: Harness) -> None:
        c = await open_flooded(h)
        await eventually(lambda: h.ws.transport.paused, "reading to pause")
        assert h.tunnel.usable, "a short pause is no reason to move"
        await eventually(lambda: not h.tunnel.usable, "the tunnel to take no new connections", timeout=2)
        assert h.tunnel.closed_reason is None
        received = await asyncio.wait_for(c.reader.readexactly(CHUNK * CHUNKS), TIMEOUT)
        assert len(received) == CHUNK * CHUNKS
        await eventually(lambda: h.tunnel.usable, "the tunnel to be usable again")

    run(scenario)
