"""SOCKS5 (RFC 1928) as a proxy server reads and answers it, sans-I/O.

Only what ``tender proxy`` serves: no authentication (method 0x00) and the
CONNECT command, to a domain name (so the proxy resolves it: ``curl
--socks5-hostname``, browsers with remote DNS), an IPv4 or an IPv6 address.

The exchange, all integers big-endian:

* greeting, client to proxy: ``VER=5, NMETHODS, METHODS[NMETHODS]``;
  the proxy answers ``VER=5, METHOD`` -- 0x00 "no authentication" when the
  client offers it, else 0xFF "no acceptable methods" (and closes);
* request: ``VER=5, CMD, RSV=0, ATYP, DST.ADDR, DST.PORT(2)``, with ATYP 1
  (4 bytes of IPv4), 3 (one length byte, then that many bytes of a name) or
  4 (16 bytes of IPv6); CMD 1 CONNECT, 2 BIND, 3 UDP ASSOCIATE;
* reply: ``VER=5, REP, RSV=0, ATYP, BND.ADDR, BND.PORT``; REP 0 is success,
  the other codes are the :data:`REP_*` constants.  After a success the
  connection carries the tunnelled bytes; after an error the proxy closes it.

The parsers are incremental and never read past what they need, so a
server can read exactly that many bytes and leave whatever the client sent
next (its first tunnelled bytes) unread: given the bytes so far they return
the parsed message, or the total number of bytes they need before they can
say more.  They raise :class:`Socks5Error` (carrying the reply code to
send) for bytes that break the format.  No I/O, standard library only.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from tray.errors import ProtocolError

__all__ = [
    "VERSION",
    "METHOD_NO_AUTH",
    "METHOD_NONE_ACCEPTABLE",
    "CMD_CONNECT",
    "CMD_BIND",
    "CMD_UDP_ASSOCIATE",
    "ATYP_IPV4",
    "ATYP_DOMAIN",
    "ATYP_IPV6",
    "REP_SUCCEEDED",
    "REP_GENERAL_FAILURE",
    "REP_NOT_ALLOWED",
    "REP_NETWORK_UNREACHABLE",
    "REP_HOST_UNREACHABLE",
    "REP_CONNECTION_REFUSED",
    "REP_TTL_EXPIRED",
    "REP_COMMAND_NOT_SUPPORTED",
    "REP_ADDRESS_TYPE_NOT_SUPPORTED",
    "Socks5Error",
    "Greeting",
    "Request",
    "parse_greeting",
    "parse_request",
    "encode_method",
    "encode_reply",
    "SOCKS4_VERSION",
    "SOCKS4_REJECTED",
    "encode_socks4_reject",
]

VERSION = 5
METHOD_NO_AUTH = 0x00
METHOD_NONE_ACCEPTABLE = 0xFF
CMD_CONNECT, CMD_BIND, CMD_UDP_ASSOCIATE = 1, 2, 3
ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6 = 1, 3, 4

REP_SUCCEEDED = 0x00
REP_GENERAL_FAILURE = 0x01
REP_NOT_ALLOWED = 0x02  # "connection not allowed by ruleset"
REP_NETWORK_UNREACHABLE = 0x03
REP_HOST_UNREACHABLE = 0x04
REP_CONNECTION_REFUSED = 0x05
REP_TTL_EXPIRED = 0x06
REP_COMMAND_NOT_SUPPORTED = 0x07
REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08

#: The first byte of a SOCKS4 or SOCKS4a request (not served: it is answered :func:`encode_socks4_reject`).
SOCKS4_VERSION = 4
#: SOCKS4's "request rejected or failed" reply code.
SOCKS4_REJECTED = 0x5B


class Socks5Error(ProtocolError):
    """The client's bytes break RFC 1928.  ``reply``: the REP code to answer
    with before closing (None: not even a reply makes sense, e.g. a wrong
    version byte, so just close)."""

    def __init__(self, message: str, reply: int | None = REP_GENERAL_FAILURE) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass(frozen=True)
class Greeting:
    """The client's offered authentication methods (bytes 0..255), in its order."""

    methods: tuple[int, ...]

    @property
    def no_auth_offered(self) -> bool:
        """Whether the client may proceed without authentication (method 0x00)."""
        return METHOD_NO_AUTH in self.methods


@dataclass(frozen=True)
class Request:
    """A request: ``command`` (CMD_*), ``atyp`` (ATYP_*), ``host`` and ``port`` (0..65535).

    ``host`` is the name as sent (ATYP 3, decoded as ASCII; see
    :func:`parse_request`) or the address in its usual text form
    (``10.0.0.1``, ``fd00::1``).
    """

    command: int
    atyp: int
    host: str
    port: int


def parse_greeting(data: bytes) -> Greeting | int:
    """The greeting at the start of ``data``, or the total byte count needed first.

    Returns an ``int`` (> ``len(data)``) while incomplete.  The greeting is
    exactly ``2 + NMETHODS`` bytes; bytes after it are not looked at.  A
    greeting with no method (NMETHODS 0) parses, with ``methods`` empty: the
    server answers it ``05 FF`` like any greeting without method 0x00.
    Raises :class:`Socks5Error` (reply None) when the version is not 5.
    """
    if len(data) < 1:
        return 2
    if data[0] != VERSION:
        raise Socks5Error(f"not SOCKS5 (version byte {data[0]})", reply=None)
    if len(data) < 2:
        return 2
    n = data[1]
    if len(data) < 2 + n:
        return 2 + n
    return Greeting(tuple(data[2:2 + n]))


def parse_request(data: bytes) -> Request | int:
    """The request at the start of ``data``, or the total byte count needed first.

    Returns an ``int`` (> ``len(data)``) while incomplete; never looks past
    the request.  A name (ATYP 3) must be 1..255 printable ASCII bytes
    (what a host name can be; IDNs arrive as ``xn--`` labels).  Raises
    :class:`Socks5Error`: version not 5 (reply None), an unknown address
    type (reply :data:`REP_ADDRESS_TYPE_NOT_SUPPORTED`), an empty or
    non-ASCII name (reply :data:`REP_GENERAL_FAILURE`).  The command is not
    checked here: a BIND or UDP ASSOCIATE request parses, and the server
    answers it :data:`REP_COMMAND_NOT_SUPPORTED`.
    """
    if len(data) < 1:
        return 4
    if data[0] != VERSION:
        raise Socks5Error(f"not a SOCKS5 request (version byte {data[0]})", reply=None)
    if len(data) < 4:
        return 5
    command, atyp = data[1], data[3]
    if atyp == ATYP_IPV4:
        end = 4 + 4
    elif atyp == ATYP_IPV6:
        end = 4 + 16
    elif atyp == ATYP_DOMAIN:
        if len(data) < 5:
            return 5
        length = data[4]
        if length == 0:
            raise Socks5Error("SOCKS5 request with an empty host name")
        end = 5 + length
    else:
        raise Socks5Error(f"SOCKS5 address type {atyp} is not supported", reply=REP_ADDRESS_TYPE_NOT_SUPPORTED)
    if len(data) < end + 2:
        return end + 2
    (port,) = struct.unpack_from("!H", data, end)
    if atyp == ATYP_IPV4:
        host = str(ipaddress.IPv4Address(data[4:8]))
    elif atyp == ATYP_IPV6:
        host = str(ipaddress.IPv6Address(data[4:20]))
    else:
        raw = data[5:end]
        if any(b < 0x21 or b > 0x7E for b in raw):
            raise Socks5Error("SOCKS5 host name is not printable ASCII")
        host = raw.decode("ascii")
    return Request(command, atyp, host, port)


def encode_method(method: int) -> bytes:
    """The answer to a greeting: ``05 METHOD`` (0x00 no authentication, 0xFF none acceptable)."""
    return bytes((VERSION, method))


def encode_reply(reply: int, host: str = "0.0.0.0", port: int = 0) -> bytes:
    """A reply with code ``reply`` (REP_*) and the bound address ``host``:``port``.

    ``host`` an IPv4 or IPv6 address (text); the default 0.0.0.0:0 is what a
    proxy says when the bound address means nothing to the client (errors,
    and here successes too: the pod is reached through the API server).
    Raises ValueError for a ``host`` that is not an IP address.
    """
    addr = ipaddress.ip_address(host)
    atyp = ATYP_IPV4 if addr.version == 4 else ATYP_IPV6
    return bytes((VERSION, reply, 0, atyp)) + addr.packed + struct.pack("!H", port)


def encode_socks4_reject() -> bytes:
    """SOCKS4's answer "request rejected or failed": ``00 5B``, then a port and an address of zeros (8 bytes).

    What a SOCKS5-only server sends a SOCKS4/4a client (first byte 4), so that
    it fails at once with "rejected" instead of waiting for a reply.
    """
    return bytes((0, SOCKS4_REJECTED, 0, 0, 0, 0, 0, 0))
