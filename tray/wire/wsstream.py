"""A WebSocket's binary messages as one byte stream, sans-I/O.

The SPDY tunnel (:mod:`tray.engine.tunnel`) does not care where the API server's
WebSocket messages begin and end: SPDY frames run across them.  Going
through a WebSocket library's message API cost Tender most of its download
speed, because the API server sends one message per TLS record it reads from
the kubelet (16 KiB): per message a frame object, a queue, a future and a
coroutine switch.  :class:`FrameSplitter` instead cuts the incoming bytes
into

* the payload of binary frames (and their continuations), handed on as
  views of the input, to be fed straight to the SPDY parser; and
* the raw bytes of every other frame (ping, pong, close, text, anything
  odd), handed back whole, so the WebSocket library keeps doing the
  protocol's housekeeping: answering pings, the closing handshake, failing
  the connection on a protocol error.

Server frames are unmasked (RFC 6455 §5.1) and, with no extension
negotiated, have no RSV bits: a frame breaking either rule is handed to the
library whole, which fails the connection as it should.
"""

from __future__ import annotations

import struct

__all__ = ["FrameSplitter", "Piece"]

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2

#: (is_payload, bytes): binary payload for the stream, or a whole other frame.
Piece = tuple[bool, "bytes | memoryview"]

_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


class FrameSplitter:
    def __init__(self) -> None:
        self._head = b""  # an incomplete frame header carried over
        self._payload_left = 0  # binary payload bytes still to come in the current frame
        self._raw: bytearray | None = None  # a non-binary frame being collected whole
        self._raw_left = 0
        self._in_text = False  # continuation frames belong to a text message

    def feed(self, data: bytes) -> list[Piece]:
        out: list[Piece] = []
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            if self._payload_left:
                take = min(self._payload_left, end - pos)
                out.append((True, data if take == end else view[pos:pos + take]))
                self._payload_left -= take
                pos += take
                continue
            if self._raw is not None:
                take = min(self._raw_left, end - pos)
                self._raw += view[pos:pos + take]
                self._raw_left -= take
                pos += take
                if not self._raw_left:
                    out.append((False, bytes(self._raw)))
                    self._raw = None
                continue
            if self._head:
                # Complete a header split by a read boundary (it is short).
                need = max(2, _header_length(self._head)) - len(self._head)
                head = self._head + bytes(view[pos:pos + need])
                used = len(head) - len(self._head)
                pos += used
                if len(head) < _header_length(head):
                    self._head = head  # still short (a 1-byte start, or the input ran out)
                    continue
                self._head = b""
                self._start(head, 0, out)
                continue
            size = _header_length(view[pos:pos + 2]) if end - pos >= 2 else 2
            if end - pos < size:
                self._head = bytes(view[pos:end])
                break
            self._start(data, pos, out)
            pos += size
        return out

    def _start(self, buf: bytes, pos: int, out: list[Piece]) -> None:
        """A frame header at ``buf[pos:]`` (complete): decide where its payload goes."""
        b0, b1 = buf[pos], buf[pos + 1]
        opcode, masked, length = b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        size = 2
        if length == 126:
            length, size = _U16.unpack_from(buf, pos + 2)[0], 4
        elif length == 127:
            length, size = _U64.unpack_from(buf, pos + 2)[0], 10
        if masked:
            size += 4
        binary = (opcode == OP_BINARY or (opcode == OP_CONTINUATION and not self._in_text))
        if binary and not masked and not b0 & 0x70:
            self._payload_left = length
            return
        if opcode == OP_TEXT:
            self._in_text = not b0 & 0x80
        elif opcode == OP_CONTINUATION and self._in_text and b0 & 0x80:
            self._in_text = False
        self._raw = bytearray(buf[pos:pos + size])
        self._raw_left = length
        if not length:
            out.append((False, bytes(self._raw)))
            self._raw = None


def _header_length(start: bytes | memoryview) -> int:
    """The full header size implied by a header's first two bytes (2 if fewer are known)."""
    if len(start) < 2:
        return 2
    b1 = start[1]
    length = b1 & 0x7F
    size = 2 + (2 if length == 126 else 8 if length == 127 else 0)
    return size + (4 if b1 & 0x80 else 0)
