"""The Kubernetes WebSocket port-forward channel protocol, sans-I/O.

``POST/GET .../pods/NAME/portforward?ports=N`` upgraded to a WebSocket with
subprotocol :data:`SUBPROTOCOL` (``v4.channel.k8s.io``) multiplexes byte
streams over binary WebSocket messages.  Every message starts with one
*channel byte*; for the i-th requested port, channel ``2i`` carries data and
``2i+1`` carries error text.  Tender opens one WebSocket per accepted TCP
connection and requests exactly one port, so only channels 0 and 1 exist.

Server -> client (what :class:`PortForwardChannel` parses):

* The first message on each of the two channels begins with the forwarded
  port as 2 bytes little-endian.  The kubelet writes it as its own message,
  but nothing forbids payload following it in the same message, so that is
  handled.
* After the prefix, data-channel messages are raw TCP payload from the pod,
  and error-channel messages are UTF-8 text (e.g. ``error forwarding port
  8080 to pod web-1, uid ...: ... connection refused``), possibly split over
  several messages.  The error is complete when the WebSocket closes.

Client -> server (:func:`encode_data`): channel byte 0 followed by payload.
The client never sends a port prefix and never writes the error channel.

This module does no I/O: the engine feeds it the messages its WebSocket
library delivers and acts on the returned events.  That keeps the protocol
rules -- which are easy to get subtly wrong -- testable byte by byte.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import TypeAlias

from tray.errors import ProtocolError

__all__ = [
    "DATA_CHANNEL",
    "ERROR_CHANNEL",
    "SUBPROTOCOL",
    "MAX_ERROR_CHARS",
    "ProtocolError",
    "Data",
    "PortAck",
    "ErrorText",
    "Event",
    "encode_data",
    "PortForwardChannel",
]

#: Channel byte of the data stream of our (single) port.
DATA_CHANNEL = 0
#: Channel byte of the error stream of our (single) port.
ERROR_CHANNEL = 1
#: WebSocket subprotocol to request (binary channel framing, version 4).
SUBPROTOCOL = "v4.channel.k8s.io"
#: Cap on the text kept by :attr:`PortForwardChannel.error`.  Kubelet error
#: messages are a few hundred bytes; the cap only stops a misbehaving server
#: from growing our memory without bound.  Chunks are still surfaced in full.
MAX_ERROR_CHARS = 64 * 1024

_CHANNEL_NAMES = {DATA_CHANNEL: "data", ERROR_CHANNEL: "error"}
_PREFIX_LEN = 2
_DATA_PREFIX = bytes((DATA_CHANNEL,))


@dataclass(frozen=True, slots=True)
class Data:
    """Payload bytes from the pod, to be written to the local TCP client."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class PortAck:
    """The server confirmed ``port`` on ``channel`` (the 2-byte prefix)."""

    channel: int
    port: int


@dataclass(frozen=True, slots=True)
class ErrorText:
    """A chunk of error text; concatenate chunks (see ``PortForwardChannel.error``)."""

    text: str


Event: TypeAlias = Data | PortAck | ErrorText


def encode_data(payload: bytes | bytearray | memoryview) -> bytes:
    """Frame ``payload`` for the data channel: channel byte 0 + payload.

    Cost: exactly one copy of the payload (``bytes.join`` sizes the result
    once and copies each buffer into it; a memoryview is read in place, not
    first turned into bytes).  A WebSocket message must be one contiguous
    buffer, so that copy is unavoidable without a vectored-send API.
    """
    return b"".join((_DATA_PREFIX, payload))


def _as_byte_view(message: object) -> memoryview:
    if isinstance(message, str):
        raise ProtocolError(
            "received a text WebSocket message; the v4.channel.k8s.io port-forward "
            "protocol only uses binary messages"
        )
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"received a {type(message).__name__} WebSocket message; expected bytes")
    view = memoryview(message)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


class PortForwardChannel:
    """Parser state for the server side of one single-port forward WebSocket.

    Feed each received message to :meth:`receive`; it returns the events in
    order.  The object remembers whether each channel's port prefix has been
    seen, so the first bytes are checked and everything after is payload.

    Data is sliced through a memoryview and converted to ``bytes`` exactly
    once per message, so megabyte-sized messages are not copied repeatedly.
    """

    __slots__ = ("_acked", "_decoder", "_error_cache", "_error_len", "_error_parts", "_finished", "_port")

    def __init__(self, port: int) -> None:
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"port must be an int, not {type(port).__name__}")
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is out of range 1-65535")
        self._port = port
        self._acked = [False, False]
        # Incremental so a multi-byte character split across two messages
        # decodes correctly; "replace" because a garbled error message is
        # still worth showing and must not crash the forward.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._error_parts: list[str] = []
        self._error_len = 0
        self._error_cache: str | None = ""
        self._finished = False

    @property
    def port(self) -> int:
        """The remote port this channel expects the server to confirm."""
        return self._port

    @property
    def ready(self) -> bool:
        """True once both the data and the error port prefixes were received."""
        return self._acked[DATA_CHANNEL] and self._acked[ERROR_CHANNEL]

    @property
    def data_acked(self) -> bool:
        """True once the data channel's port prefix was received."""
        return self._acked[DATA_CHANNEL]

    @property
    def error(self) -> str:
        """All error text received so far (capped at :data:`MAX_ERROR_CHARS`)."""
        if self._error_cache is None:
            self._error_cache = "".join(self._error_parts)
            self._error_parts = [self._error_cache]
        return self._error_cache

    def receive(self, message: bytes | bytearray | memoryview) -> list[Event]:
        """Parse one WebSocket message from the server into events.

        Raises :class:`ProtocolError` for an empty message, a text message, an
        unknown channel, a port prefix that is truncated or names another
        port (which is also how data arriving before the prefix shows up:
        its first two bytes are read as a port).  After an error the object
        should be discarded along with the connection.
        """
        view = _as_byte_view(message)
        if len(view) == 0:
            raise ProtocolError("received an empty message (no channel byte)")
        channel = view[0]
        if channel not in _CHANNEL_NAMES:
            raise ProtocolError(
                f"received a message on unknown channel {channel}; a single-port "
                f"forward only uses channels {DATA_CHANNEL} (data) and {ERROR_CHANNEL} (error)"
            )
        body = view[1:]
        events: list[Event] = []
        if not self._acked[channel]:
            name = _CHANNEL_NAMES[channel]
            if len(body) < _PREFIX_LEN:
                raise ProtocolError(
                    f"truncated port prefix on the {name} channel: got {len(body)} of {_PREFIX_LEN} bytes"
                )
            got = int.from_bytes(body[:_PREFIX_LEN], "little")
            if got != self._port:
                raise ProtocolError(
                    f"the {name} channel must start with port {self._port} (2 bytes "
                    f"little-endian) but started with {bytes(body[:_PREFIX_LEN]).hex(' ')} "
                    f"(port {got}): wrong port, or data before the port prefix"
                )
            self._acked[channel] = True
            events.append(PortAck(channel, got))
            body = body[_PREFIX_LEN:]
        if len(body) == 0:
            # A bare prefix, or a channel byte with nothing after it: no payload.
            return events
        if channel == DATA_CHANNEL:
            events.append(Data(bytes(body)))  # the one copy
        else:
            text = self._decoder.decode(body)
            if text:
                self._add_error(text)
                events.append(ErrorText(text))
        return events

    def finish(self) -> list[Event]:
        """Call when the WebSocket closed: flush a dangling partial character.

        If the last error message ended in the middle of a UTF-8 sequence,
        the incremental decoder is holding those bytes back; this turns them
        into U+FFFD so the error text is complete.  Idempotent.
        """
        if self._finished:
            return []
        self._finished = True
        text = self._decoder.decode(b"", final=True)
        if not text:
            return []
        self._add_error(text)
        return [ErrorText(text)]

    def _add_error(self, text: str) -> None:
        room = MAX_ERROR_CHARS - self._error_len
        if room <= 0:
            return
        kept = text[:room]
        self._error_parts.append(kept)
        self._error_len += len(kept)
        self._error_cache = None

    def __repr__(self) -> str:
        return (
            f"PortForwardChannel(port={self._port}, data_acked={self._acked[DATA_CHANNEL]}, "
            f"error_acked={self._acked[ERROR_CHANNEL]}, error_chars={self._error_len})"
        )
