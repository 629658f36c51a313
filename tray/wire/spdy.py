"""SPDY/3.1 framing for kubectl's port-forward protocol, sans-I/O.

Why Tender speaks SPDY at all: ``v4.channel.k8s.io`` (:mod:`tray.wire.framing`)
carries one TCP connection per WebSocket, so every connection pays a TLS
handshake, an HTTP upgrade and a kubelet dial before its first byte.  kubectl
instead opens *one* WebSocket per pod with subprotocol :data:`SUBPROTOCOL`;
the API server copies its bytes to and from a SPDY/3.1 session with the
kubelet, and each forwarded connection is just two new SPDY streams inside
it (milliseconds, no handshake).  :mod:`tray.engine.tunnel` drives that session;
this module is only the frame format, byte for byte, and does no I/O.

The subset of SPDY/3.1 a port-forward client needs:

* Every frame starts with 8 bytes.  A *control* frame: 1 bit set, 15-bit
  version (3), 16-bit type, 8-bit flags, 24-bit length.  A *data* frame: 1
  bit clear, 31-bit stream id, 8-bit flags, 24-bit length.  Integers are
  big-endian.  Flag 0x01 is FIN: the sender will send nothing more on that
  stream (a half-close).
* The client opens streams with SYN_STREAM (odd ids, increasing).  Each
  forwarded connection is a pair sharing a ``requestid`` header: an
  ``error`` stream, on which the kubelet writes why forwarding failed, and a
  ``data`` stream carrying the TCP payload both ways.  Both name the
  ``port``.  The kubelet answers each with SYN_REPLY, ends them with FIN, or
  aborts them with RST_STREAM.
* Header blocks are zlib-compressed as one continuous stream per direction,
  each block ending with a sync flush.  The spec's compression dictionary is
  optional for a sender (a zlib stream says whether it uses one), so Tender
  compresses without it.  Tender never needs the *kubelet's* headers (a
  SYN_REPLY's block is empty in practice), so it does not decompress them.
* The kubelet implements no SPDY flow control (WINDOW_UPDATE and SETTINGS
  are ignored by both sides); back-pressure is the transport's.  PING
  frames with even ids come from the server and must be echoed.

Frames do not line up with the WebSocket messages that carry them: the API
server forwards the kubelet's bytes in whatever pieces it reads.  The parser
therefore takes a byte stream, and hands out a data frame's payload as it
arrives instead of waiting for the whole frame (up to 16 MiB).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

from tray.errors import SpdyError

__all__ = [
    "SUBPROTOCOL",
    "VERSION",
    "FLAG_FIN",
    "MAX_DATA_LENGTH",
    "MAX_STREAM_ID",
    "RST_PROTOCOL_ERROR",
    "RST_REFUSED_STREAM",
    "RST_CANCEL",
    "SpdyError",
    "StreamReply",
    "StreamData",
    "StreamReset",
    "StreamPushed",
    "Ping",
    "GoAway",
    "Event",
    "encode_header_block",
    "SpdyEncoder",
    "SpdyParser",
]

#: WebSocket subprotocol of the SPDY tunnel (the API server's translation).
SUBPROTOCOL = "SPDY/3.1+portforward.k8s.io"
VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
MAX_DATA_LENGTH = 0xFFFFFF
MAX_STREAM_ID = 0x7FFFFFFF

#: RST_STREAM status codes Tender sends or explains.
RST_PROTOCOL_ERROR = 1
RST_REFUSED_STREAM = 3
RST_CANCEL = 5
RST_NAMES = {
    1: "protocol error", 2: "invalid stream", 3: "refused", 4: "unsupported version",
    5: "cancelled", 6: "internal error", 7: "flow control error", 8: "stream in use",
    9: "stream already closed", 11: "frame too large",
}

#: A control frame larger than this is refused (ours are a few dozen bytes;
#: the cap only bounds what a broken peer can make us buffer).
MAX_CONTROL_LENGTH = 1 << 20

_HEADER = struct.Struct(">II")  # two 32-bit words: (bit + id or version/type), (flags + length)
_U32 = struct.Struct(">I")
_U32x2 = struct.Struct(">II")


@dataclass(frozen=True, slots=True)
class StreamReply:
    """SYN_REPLY (or HEADERS): the stream exists on the kubelet's side."""

    stream_id: int
    fin: bool


@dataclass(frozen=True, slots=True)
class StreamData:
    """Payload on a stream, possibly a piece of a larger frame.

    ``fin`` is set on the last piece of a frame that carried FIN (the sender
    finished); a FIN with no payload comes as ``payload == b""``.
    """

    stream_id: int
    payload: bytes | memoryview  # a view of the chunk fed, valid as long as it is kept
    fin: bool


@dataclass(frozen=True, slots=True)
class StreamReset:
    """RST_STREAM: the stream is aborted, both directions."""

    stream_id: int
    status: int

    @property
    def reason(self) -> str:
        return RST_NAMES.get(self.status, f"status {self.status}")


@dataclass(frozen=True, slots=True)
class StreamPushed:
    """The server opened a stream (port-forward never does; refuse it)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    """The peer takes no new streams; streams up to ``last_good`` carry on."""

    last_good: int
    status: int


Event: TypeAlias = StreamReply | StreamData | StreamReset | StreamPushed | Ping | GoAway


def _control(frame_type: int, flags: int, body: bytes) -> bytes:
    if len(body) > MAX_DATA_LENGTH:
        raise ValueError("control frame too large")
    return _HEADER.pack(0x80000000 | VERSION << 16 | frame_type, flags << 24 | len(body)) + body


def encode_header_block(headers: Mapping[str, str]) -> bytes:
    """The uncompressed name/value block: counts and lengths as 32-bit ints.

    Names are lower-case on the wire (SPDY/3 requires it; the kubelet reads
    them case-insensitively).
    """
    parts = [_U32.pack(len(headers))]
    for name, value in headers.items():
        raw_name, raw_value = name.lower().encode("ascii"), value.encode("utf-8")
        if not raw_name:
            raise ValueError("empty header name")
        parts += [_U32.pack(len(raw_name)), raw_name, _U32.pack(len(raw_value)), raw_value]
    return b"".join(parts)


class SpdyEncoder:
    """Frames Tender sends.  One per session: header compression is stateful."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj()

    def _compress(self, block: bytes) -> bytes:
        return self._zlib.compress(block) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def syn_stream(self, stream_id: int, headers: Mapping[str, str], *, fin: bool = False) -> bytes:
        _check_stream_id(stream_id)
        body = _U32x2.pack(stream_id, 0) + b"\x00\x00" + self._compress(encode_header_block(headers))
        return _control(SYN_STREAM, FLAG_FIN if fin else 0, body)

    @staticmethod
    def data(stream_id: int, payload: bytes | bytearray | memoryview, *, fin: bool = False) -> bytes:
        """One or more data frames for ``payload`` (FIN on the last)."""
        _check_stream_id(stream_id)
        if isinstance(payload, memoryview):
            payload = payload.cast("B") if payload.c_contiguous else bytes(payload)  # lengths in bytes
        size = len(payload)
        if size <= MAX_DATA_LENGTH:
            return _HEADER.pack(stream_id, (FLAG_FIN if fin else 0) << 24 | size) + payload
        frames = []
        for start in range(0, size, MAX_DATA_LENGTH):
            piece = payload[start:start + MAX_DATA_LENGTH]
            last = start + MAX_DATA_LENGTH >= size
            frames.append(_HEADER.pack(stream_id, (FLAG_FIN if fin and last else 0) << 24 | len(piece)))
            frames.append(bytes(piece))
        return b"".join(frames)

    @staticmethod
    def rst_stream(stream_id: int, status: int) -> bytes:
        _check_stream_id(stream_id)
        _check_u32(status, "status")
        return _control(RST_STREAM, 0, _U32x2.pack(stream_id, status))

    @staticmethod
    def ping(ping_id: int) -> bytes:
        _check_u32(ping_id, "ping id")
        return _control(PING, 0, _U32.pack(ping_id))

    @staticmethod
    def goaway(last_good: int, status: int = 0) -> bytes:
        if not 0 <= last_good <= MAX_STREAM_ID:
            raise ValueError(f"stream id out of range: {last_good}")
        _check_u32(status, "status")
        return _control(GOAWAY, 0, _U32x2.pack(last_good, status))


def _check_stream_id(stream_id: int) -> None:
    if not 0 < stream_id <= MAX_STREAM_ID:
        raise ValueError(f"stream id out of range: {stream_id}")


def _check_u32(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{what} out of range: {value}")


class SpdyParser:
    """Turns the bytes the kubelet sends into :data:`Event` s.

    Raises :class:`SpdyError` for framing the session cannot survive (a wrong
    version, a malformed or oversized control frame); after that the parser
    must not be used again.
    """

    def __init__(self) -> None:
        self._buf = b""  # the start of a frame split by a message boundary (a header, a control frame)
        self._data_left = 0  # payload bytes of the current data frame not yet seen
        self._data_stream = 0
        self._data_fin = False

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Event]:
        """The events in ``chunk`` (continuing whatever the last chunk left open).

        Payload is handed on without copying: the chunk itself when it is all
        payload, else a read-only memoryview of it (a mutable chunk is copied
        once first, so later changes by the caller cannot reach the views).
        Only a frame header or control frame split between chunks is copied.
        """
        events: list[Event] = []
        data = chunk if type(chunk) is bytes else bytes(chunk)
        pos, end = 0, len(data)
        if self._buf:
            pos = self._complete_split_frame(data, events)
            if self._buf:
                return events
        view: memoryview | None = None
        while pos < end:
            if self._data_left:
                take = min(self._data_left, end - pos)
                if pos == 0 and take == end:
                    payload: bytes | memoryview = data
                else:
                    view = view or memoryview(data)
                    payload = view[pos:pos + take]
                pos += take
                self._data_left -= take
                events.append(StreamData(self._data_stream, payload, self._data_fin and not self._data_left))
                continue
            used = self._frame(data, pos, end, events)
            if not used:
                self._buf = data[pos:]
                break
            pos += used
        return events

    def _complete_split_frame(self, data: bytes, events: list[Event]) -> int:
        """Finish the frame start kept from the last chunk; returns the bytes of ``data`` used."""
        buf, taken = self._buf, 0
        if len(buf) < 8:
            taken = min(8 - len(buf), len(data))
            buf += data[:taken]
            if len(buf) < 8:
                self._buf = buf
                return taken
        first, second = _HEADER.unpack_from(buf)
        if first & 0x80000000:  # a control frame: its whole body is needed
            length = second & 0xFFFFFF
            _check_control_header(first, length)
            more = min(8 + length - len(buf), len(data) - taken)
            buf += data[taken:taken + more]
            taken += more
        if not self._frame(buf, 0, len(buf), events):
            self._buf = buf
            return taken
        self._buf = b""
        return taken

    def _frame(self, buf: bytes, pos: int, end: int, events: list[Event]) -> int:
        """Parse the frame at ``pos``: bytes used (a data frame's header, a whole control frame), 0 if incomplete."""
        if end - pos < 8:
            return 0
        first, second = _HEADER.unpack_from(buf, pos)
        flags, length = second >> 24, second & 0xFFFFFF
        if not first & 0x80000000:  # data frame
            if first == 0:
                raise SpdyError("data frame on stream 0")
            self._data_stream, self._data_fin = first, bool(flags & FLAG_FIN)
            if length:
                self._data_left = length
            elif self._data_fin:
                events.append(StreamData(first, b"", True))
            return 8
        _check_control_header(first, length)
        if end - pos < 8 + length:
            return 0
        event = _control_event(first & 0xFFFF, flags, buf[pos + 8:pos + 8 + length])
        if event is not None:
            events.append(event)
        return 8 + length


def _check_control_header(first: int, length: int) -> None:
    # Both refusals come as soon as the header is in: nothing is buffered for them.
    if length > MAX_CONTROL_LENGTH:
        raise SpdyError(f"control frame of {length} bytes")
    version = (first >> 16) & 0x7FFF
    if version != VERSION:
        raise SpdyError(f"SPDY version {version}, expected {VERSION}")


def _control_event(frame_type: int, flags: int, body: bytes) -> Event | None:
    fin = bool(flags & FLAG_FIN)
    if frame_type in (SYN_REPLY, HEADERS):
        _need(body, 4, frame_type)
        return StreamReply(_U32.unpack_from(body)[0] & MAX_STREAM_ID, fin)
    if frame_type == RST_STREAM:
        _need(body, 8, frame_type, exact=True)
        stream_id, status = _U32x2.unpack(body)
        return StreamReset(stream_id & MAX_STREAM_ID, status)
    if frame_type == SYN_STREAM:
        _need(body, 10, frame_type)
        return StreamPushed(_U32.unpack_from(body)[0] & MAX_STREAM_ID)
    if frame_type == PING:
        _need(body, 4, frame_type, exact=True)
        return Ping(_U32.unpack(body)[0])
    if frame_type == GOAWAY:
        # SPDY/3 added the status word; SPDY/2-style 4-byte bodies still parse.
        _need(body, 4, frame_type)
        last_good = _U32.unpack_from(body)[0] & MAX_STREAM_ID
        status = _U32.unpack_from(body, 4)[0] if len(body) >= 8 else 0
        return GoAway(last_good, status)
    # SETTINGS, WINDOW_UPDATE (no flow control on either side), and frame
    # types from later drafts: the spec says to ignore what we do not know.
    return None


def _need(body: bytes, size: int, frame_type: int, *, exact: bool = False) -> None:
    if len(body) < size or (exact and len(body) != size):
        raise SpdyError(f"control frame type {frame_type} with a {len(body)}-byte body")
