"""An HTTP proxy's side of HTTP/1.1 (RFC 9110, 9112), sans-I/O: request heads in, bytes out.

``tender proxy`` serves two kinds of proxy request (what ``HTTPS_PROXY`` and
``HTTP_PROXY`` make clients send):

* ``CONNECT host:port HTTP/1.1`` (RFC 9110 9.3.6, the authority form): the
  proxy answers ``200`` and from then on carries bytes both ways (TLS, or
  anything else);
* a request in the absolute form, ``GET http://web.demo/x?y HTTP/1.1`` (RFC
  9112 3.2.2): the proxy sends it on in the origin form (``GET /x?y``) with
  ``Host`` set from the URI, as RFC 9112 7.2 says a proxy must.  The
  proxy's own headers (``Proxy-Connection``, ``Proxy-Authorization``) and
  the hop-by-hop ones (``Connection``, ``Keep-Alive`` and the headers
  ``Connection`` names, RFC 9110 7.6.1) are dropped, and ``Connection:
  close`` added: each client connection carries one request to one new
  upstream connection, the simplest correct way to serve keep-alive clients
  (they open another connection for the next request).

Errors are a complete response with a one-line ``text/plain`` reason
(:func:`error_response`).  No I/O, standard library only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tray.errors import ProtocolError

__all__ = [
    "CONNECT_ESTABLISHED",
    "HttpProxyError",
    "ProxyRequest",
    "parse_request_head",
    "split_authority",
    "error_response",
    "REASONS",
    "MAX_HEAD",
    "TOKEN_BYTES",
    "may_start_request",
    "check_request_line",
    "is_head_end",
]

#: The answer to a CONNECT that reached its target; tunnelled bytes follow.
CONNECT_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"

#: Reason phrases of the statuses the proxy sends.
REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

#: The longest request head (request line and headers, bytes) the proxy reads; a longer one is answered 431.
MAX_HEAD = 32 * 1024

#: The bytes a method (an RFC 9110 5.6.2 token) is made of: an HTTP request starts with one of them.
TOKEN_BYTES = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

_DROP = {"proxy-connection", "proxy-authorization", "connection", "keep-alive", "host",
         "te", "trailer", "upgrade"}


class HttpProxyError(ProtocolError):
    """A request the proxy cannot serve as sent: answer ``status`` (400, 405) with the message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ProxyRequest:
    """What a client asked the proxy for.

    ``method``: as sent (``CONNECT``, ``GET``, ...); ``host``: the target's
    name or address (IPv6 without brackets); ``port``: 1..65535 (80 when an
    ``http://`` URI has none); ``tunnel``: a CONNECT; ``forward_head``: for
    any other method, the head to send upstream (origin form, ending in an
    empty line), ``b""`` for CONNECT.
    """

    method: str
    host: str
    port: int
    tunnel: bool
    forward_head: bytes = b""


def split_authority(authority: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) -> (host, port).

    ``default_port`` is used when there is no port (None: a port is
    required, as for CONNECT).  Raises :class:`HttpProxyError` (400) for an
    empty host, userinfo (``user@host``), a missing or out-of-range port,
    or an unterminated ``[``.
    """
    if "@" in authority:
        raise HttpProxyError("a proxy request target may not carry user information")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise HttpProxyError(f"bad address {authority!r}: no closing ']'")
        host, rest = authority[1:end], authority[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise HttpProxyError(f"bad IPv6 address {host!r}") from None
        if rest and not rest.startswith(":"):
            raise HttpProxyError(f"bad authority {authority!r}")
        port_text = rest[1:] if rest else ""
    else:
        host, sep, port_text = authority.rpartition(":")
        if not sep:
            host, port_text = authority, ""
    if not host:
        raise HttpProxyError(f"no host in {authority!r}")
    if not port_text:
        if default_port is None:
            raise HttpProxyError(f"no port in {authority!r} (CONNECT needs host:port)")
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise HttpProxyError(f"bad port {port_text!r} in {authority!r}")
    return host, int(port_text)


def may_start_request(first: int) -> bool:
    """Whether a connection's first byte (0..255) can start an HTTP request: a method's first character.

    A TLS ClientHello (0x16), a SOCKS4 request (0x04) or other binary cannot.
    """
    return first in TOKEN_BYTES


def check_request_line(line: bytes) -> None:
    """Check a request line as soon as it is complete (``line``: ending in LF, CRLF or neither).

    Raises :class:`HttpProxyError` (400) when it cannot be an HTTP/1.x
    request line (``METHOD SP TARGET SP HTTP/1.x``), so that a client that
    spoke something else is answered at once instead of when its head (that
    never comes) would end.  Passing lines are parsed again, fully, by
    :func:`parse_request_head`.
    """
    text = line.rstrip(b"\r\n")
    parts = text.split(b" ")
    if (len(parts) != 3 or not all(parts) or not all(b in TOKEN_BYTES for b in parts[0])
            or not parts[2].startswith(b"HTTP/1.")):
        shown = text[:80].decode("ascii", "replace")
        raise HttpProxyError(f"not an HTTP/1.x request line: {shown!r}")


def is_head_end(line: bytes) -> bool:
    """Whether ``line`` (one line as read, with its ending) is the empty line ending a head (CRLF or bare LF)."""
    return line in (b"\r\n", b"\n")


def parse_request_head(head: bytes) -> ProxyRequest:
    """Parse a request head (request line and header lines, ending with the empty line).

    Lines may end in CRLF or a bare LF (RFC 9112 2.2).  Returns a
    :class:`ProxyRequest`; raises :class:`HttpProxyError` with status 400
    for a malformed head, a request in the origin form (``GET /``: not a
    proxy request), an ``https://`` or other non-``http`` URI outside
    CONNECT (405 for ``https``: a client must use CONNECT), header line
    folding, or a non-ASCII head.
    """
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise HttpProxyError("request head is not ASCII") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HttpProxyError("empty request")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not all(parts):
        raise HttpProxyError(f"bad request line {lines[0][:80]!r}")
    method, target, version = parts
    if not version.startswith("HTTP/1."):
        raise HttpProxyError(f"unsupported protocol {version[:20]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise HttpProxyError("obsolete header line folding")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpProxyError(f"bad header line {line[:80]!r}")
        headers.append((name, value.strip()))
    if method == "CONNECT":
        host, port = split_authority(target)
        return ProxyRequest(method, host, port, tunnel=True)
    scheme, sep, rest = target.partition("://")
    if not sep:
        raise HttpProxyError(f"{target[:80]!r} is not a proxy request (send an absolute http:// URI, or CONNECT)")
    scheme = scheme.lower()
    if scheme == "https":
        raise HttpProxyError("https:// URIs go through CONNECT", status=405)
    if scheme != "http":
        raise HttpProxyError(f"unsupported scheme {scheme!r}")
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    path = path.split("#", 1)[0]
    if not path.startswith("/"):
        path = "/" + path
    host, port = split_authority(authority, 80)
    named = {v.strip().lower() for n, v in headers if n.lower() == "connection" for v in v.split(",")}
    kept = [(n, v) for n, v in headers if n.lower() not in _DROP and n.lower() not in named]
    out = [f"{method} {path} {version}", f"Host: {authority}"]
    out += [f"{n}: {v}" for n, v in kept]
    out += ["Connection: close", "", ""]
    return ProxyRequest(method, host, port, tunnel=False, forward_head="\r\n".join(out).encode("ascii"))


def error_response(status: int, reason: str) -> bytes:
    """A complete ``status`` response whose body is ``reason`` as one line of text/plain.

    ``reason``: the first line is kept (control characters dropped), then a
    newline; the response says ``Connection: close``.  ``status``: any of
    :data:`REASONS` (another gets the phrase "Error").
    """
    line = "".join(c for c in (reason.splitlines() or [""])[0] if c.isprintable())
    body = (line + "\n").encode("utf-8")
    head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body
