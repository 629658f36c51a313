"""The relay: the program a relay pod runs, and the bytes Tender and it exchange.

Port-forward reaches a TCP port of a pod, and nothing else.  To reach a UDP
port, a host only the cluster can reach (``host/db.internal``), or a Service
without pods (ExternalName, or endpoints written by hand), Tender creates a
short-lived pod that runs a program (``python3 -c SOURCE ...``, any stock
Python image >= 3.8, standard library only) and port-forwards to it.  This
module is the wire format, sans I/O; the program is this module's text
followed by :mod:`tray.engine.relayserver`'s (see
:func:`tray.engine.relay.relay_source`), so both sides use the same
functions and cannot drift.

Wire format, per port-forward connection to the relay's port:

1. Tender sends one request line (ASCII, at most :data:`MAX_LINE` bytes,
   ending ``\\n``): ``tender-relay/1 tcp HOST PORT``, ``tender-relay/1 udp
   HOST PORT`` or ``tender-relay/1 hold``.
2. The relay answers one line: ``ok`` when the upstream is connected (TCP)
   or its socket is ready (UDP), else ``error TEXT`` and it closes.  Tender
   may send data right behind its request; the relay reads it after ``ok``.
3. ``tcp``: raw bytes both ways, half-close passed on.  ``udp``: each
   datagram is a 2-byte big-endian length and its payload, both ways; one
   connection is one upstream socket (Tender opens one per local client
   address), closed after ``--udp-idle`` seconds without a datagram.
   ``hold``: nothing more; Tender keeps it open while the forward runs.

The relay exits 0 once no connection has been open for ``--exit-idle``
seconds: Tender holds a ``hold`` connection for the forward's life, so a
relay whose Tender died (its tunnel cut) ends on its own; the pod's
``activeDeadlineSeconds`` is the backstop.  The relay listens on
127.0.0.1 only: the kubelet's port-forward dials the pod's loopback, and
nothing else in the cluster can use the relay.
"""

from __future__ import annotations

import struct

__all__ = [
    "MAGIC", "MAX_LINE", "MAX_DATAGRAM", "RelayProtocolError", "encode_request", "parse_request",
    "encode_reply", "parse_reply", "encode_datagram", "DatagramDecoder",
]

MAGIC = "tender-relay/1"
#: The longest request or reply line, ``\n`` included.
MAX_LINE = 1024
#: The largest datagram a frame carries (the 2-byte length's limit).
MAX_DATAGRAM = 65535
_LENGTH = struct.Struct(">H")


class RelayProtocolError(ValueError):
    """A request or reply line that is not this protocol (the message says why)."""


def _check_host(host: str) -> str:
    if not host or len(host) > 253 or any(c.isspace() or ord(c) < 33 or ord(c) > 126 for c in host):
        raise RelayProtocolError(f"bad host {host!r}")
    return host


def encode_request(kind: str, host: str = "", port: int = 0) -> bytes:
    """The request line for ``kind`` ``"tcp"``/``"udp"`` (with ``host``, ``port`` 1-65535) or ``"hold"``.

    Raises :class:`RelayProtocolError` for another kind, a bad host or port.
    """
    if kind == "hold":
        return f"{MAGIC} hold\n".encode("ascii")
    if kind not in ("tcp", "udp"):
        raise RelayProtocolError(f"unknown request kind {kind!r}")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise RelayProtocolError(f"bad port {port!r}")
    return f"{MAGIC} {kind} {_check_host(host)} {port}\n".encode("ascii")


def parse_request(line: bytes) -> tuple[str, str, int]:
    """``b"tender-relay/1 udp 10.1.0.5 53\\n"`` -> ``("udp", "10.1.0.5", 53)``; hold -> ``("hold", "", 0)``.

    Raises :class:`RelayProtocolError` naming what is wrong.
    """
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise RelayProtocolError("request line too long or unterminated")
    try:
        words = line.decode("ascii").split()
    except UnicodeDecodeError:
        raise RelayProtocolError("request line is not ASCII") from None
    if not words or words[0] != MAGIC:
        raise RelayProtocolError(f"not a {MAGIC} request")
    if words[1:] == ["hold"]:
        return "hold", "", 0
    if len(words) != 4 or words[1] not in ("tcp", "udp"):
        raise RelayProtocolError("expected 'tcp HOST PORT', 'udp HOST PORT' or 'hold'")
    if not words[3].isdigit() or not 1 <= int(words[3]) <= 65535:
        raise RelayProtocolError(f"bad port {words[3]!r}")
    return words[1], _check_host(words[2]), int(words[3])


def encode_reply(error: str | None = None) -> bytes:
    """``b"ok\\n"`` for None, else ``b"error TEXT\\n"`` (one line, cut to fit :data:`MAX_LINE`)."""
    if error is None:
        return b"ok\n"
    text = " ".join(error.split()) or "failed"
    return ("error " + text).encode("utf-8", "replace")[: MAX_LINE - 1] + b"\n"


def parse_reply(line: bytes) -> str | None:
    """None for ``ok``; the relay's error text for ``error TEXT``.

    Raises :class:`RelayProtocolError` for anything else (an empty line: the
    relay closed without answering).
    """
    if line == b"ok\n":
        return None
    if line.startswith(b"error ") and line.endswith(b"\n"):
        return line[6:-1].decode("utf-8", "replace")
    if not line:
        raise RelayProtocolError("the relay closed the connection without answering")
    raise RelayProtocolError(f"unexpected reply from the relay: {line[:80]!r}")


def encode_datagram(payload: bytes) -> bytes:
    """One UDP datagram as a frame: 2-byte big-endian length + payload.

    Raises :class:`RelayProtocolError` for a payload over :data:`MAX_DATAGRAM` bytes.
    """
    if len(payload) > MAX_DATAGRAM:
        raise RelayProtocolError(f"datagram of {len(payload)} bytes is over {MAX_DATAGRAM}")
    return _LENGTH.pack(len(payload)) + payload


class DatagramDecoder:
    """Frames in, datagrams out: feed bytes as they arrive, get whole datagrams back (sans I/O)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the datagrams now complete, in order (possibly none)."""
        self._buffer += data
        out = []
        while len(self._buffer) >= 2:
            (size,) = _LENGTH.unpack_from(self._buffer)
            if len(self._buffer) < 2 + size:
                break
            out.append(bytes(self._buffer[2:2 + size]))
            del self._buffer[:2 + size]
        return out

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a whole frame."""
        return len(self._buffer)
