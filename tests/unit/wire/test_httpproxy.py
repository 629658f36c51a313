"""tray.wire.httpproxy: proxy request heads in, what goes upstream and error responses out, byte for byte."""

from __future__ import annotations

import pytest

from tray.wire.httpproxy import (
    CONNECT_ESTABLISHED,
    HttpProxyError,
    ProxyRequest,
    error_response,
    parse_request_head,
    split_authority,
)


def test_connect_as_curl_sends_it() -> None:
    head = (b"CONNECT web.demo:443 HTTP/1.1\r\nHost: web.demo:443\r\nUser-Agent: curl/7.88.1\r\n"
            b"Proxy-Connection: Keep-Alive\r\n\r\n")
    assert parse_request_head(head) == ProxyRequest("CONNECT", "web.demo", 443, tunnel=True)


def test_connect_ipv6() -> None:
    req = parse_request_head(b"CONNECT [fd00::1]:5432 HTTP/1.1\r\n\r\n")
    assert (req.host, req.port, req.tunnel) == ("fd00::1", 5432, True)


def test_connect_needs_a_port() -> None:
    with pytest.raises(HttpProxyError) as err:
        parse_request_head(b"CONNECT web.demo HTTP/1.1\r\n\r\n")
    assert err.value.status == 400 and "port" in str(err.value)


def test_absolute_uri_goes_upstream_in_origin_form() -> None:
    head = (b"GET http://web.demo/hostname?x=1 HTTP/1.1\r\n"
            b"Host: web.demo\r\n"
            b"User-Agent: python-httpx/0.28.1\r\n"
            b"Accept: */*\r\n"
            b"Proxy-Connection: keep-alive\r\n"
            b"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
            b"Connection: keep-alive, X-Hop\r\n"
            b"Keep-Alive: timeout=5\r\n"
            b"X-Hop: 1\r\n"
            b"Content-Length: 0\r\n\r\n")
    req = parse_request_head(head)
    assert (req.method, req.host, req.port, req.tunnel) == ("GET", "web.demo", 80, False)
    assert req.forward_head == (b"GET /hostname?x=1 HTTP/1.1\r\n"
                                b"Host: web.demo\r\n"
                                b"User-Agent: python-httpx/0.28.1\r\n"
                                b"Accept: */*\r\n"
                                b"Content-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")


def test_host_comes_from_the_uri_not_the_header() -> None:
    req = parse_request_head(b"POST http://db-1.db.ns:5432 HTTP/1.0\nHost: elsewhere\n\n")
    assert (req.host, req.port) == ("db-1.db.ns", 5432)
    assert req.forward_head == b"POST / HTTP/1.0\r\nHost: db-1.db.ns:5432\r\nConnection: close\r\n\r\n"


def test_ipv6_uri_and_fragment() -> None:
    req = parse_request_head(b"GET http://[fd00::2]:8080/a#frag HTTP/1.1\r\n\r\n")
    assert (req.host, req.port) == ("fd00::2", 8080)
    assert req.forward_head.startswith(b"GET /a HTTP/1.1\r\nHost: [fd00::2]:8080\r\n")


@pytest.mark.parametrize("head,status", [
    (b"GET /hostname HTTP/1.1\r\nHost: web.demo\r\n\r\n", 400),  # origin form: not a proxy request
    (b"GET https://web.demo/ HTTP/1.1\r\n\r\n", 405),
    (b"GET ftp://web.demo/ HTTP/1.1\r\n\r\n", 400),
    (b"GET http://user@web.demo/ HTTP/1.1\r\n\r\n", 400),
    (b"GET http://web.demo:99999/ HTTP/1.1\r\n\r\n", 400),
    (b"GET http:///x HTTP/1.1\r\n\r\n", 400),
    (b"GET http://web.demo/ HTTP/2\r\n\r\n", 400),
    (b"GET http://web.demo/\r\n\r\n", 400),
    (b"GET http://web.demo/ HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400),
    (b"GET http://web.demo/ HTTP/1.1\r\nno colon\r\n\r\n", 400),
    (b"GET http://w\xc3\xa9b/ HTTP/1.1\r\n\r\n", 400),
    (b"\r\n\r\n", 400),
])
def test_bad_requests(head: bytes, status: int) -> None:
    with pytest.raises(HttpProxyError) as err:
        parse_request_head(head)
    assert err.value.status == status


def test_split_authority() -> None:
    assert split_authority("web.demo:8080") == ("web.demo", 8080)
    assert split_authority("web.demo", 80) == ("web.demo", 80)
    assert split_authority("[::1]", 80) == ("::1", 80)
    with pytest.raises(HttpProxyError):
        split_authority("[::1:80")
    with pytest.raises(HttpProxyError):
        split_authority("[nothex]:80")


def test_connect_established() -> None:
    assert CONNECT_ESTABLISHED == b"HTTP/1.1 200 Connection established\r\n\r\n"


def test_error_response_is_one_line_of_text() -> None:
    assert error_response(503, "svc/web has no ready pod\nsecond line") == (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 25\r\n"
        b"Connection: close\r\n\r\n"
        b"svc/web has no ready pod\n")
    assert error_response(502, "").endswith(b"Content-Length: 1\r\nConnection: close\r\n\r\n\n")
    assert error_response(403, "forbidden: \x1b[31mx").endswith(b"\r\n\r\nforbidden: [31mx\n")
    assert error_response(418, "x").startswith(b"HTTP/1.1 418 Error\r\n")


def test_first_bytes_that_can_start_a_request() -> None:
    from tray.wire.httpproxy import may_start_request

    assert may_start_request(ord("G")) and may_start_request(ord("C")) and may_start_request(ord("m"))
    assert not may_start_request(0x16)  # TLS ClientHello
    assert not may_start_request(0x04)  # SOCKS4
    assert not may_start_request(ord("{")) and not may_start_request(ord(" "))


def test_request_lines_checked_as_soon_as_complete() -> None:
    from tray.wire.httpproxy import check_request_line

    check_request_line(b"GET http://web.demo/ HTTP/1.1\r\n")
    check_request_line(b"CONNECT web.demo:443 HTTP/1.0\n")
    for line in (b"hello\n", b"GET /\r\n", b"GET http://x/ SPDY/3\r\n", b"G(T http://x/ HTTP/1.1\n",
                 b"SSH-2.0-OpenSSH_9.2p1\r\n"):
        with pytest.raises(HttpProxyError) as err:
            check_request_line(line)
        assert err.value.status == 400 and "not an HTTP/1.x request line" in str(err.value)


def test_bare_lf_heads_are_read_like_crlf() -> None:
    from tray.wire.httpproxy import is_head_end

    assert is_head_end(b"\n") and is_head_end(b"\r\n") and not is_head_end(b"Host: x\n")
    req = parse_request_head(b"GET http://web.demo/x HTTP/1.1\nHost: web.demo\nAccept: */*\n\n")
    assert req.forward_head == b"GET /x HTTP/1.1\r\nHost: web.demo\r\nAccept: */*\r\nConnection: close\r\n\r\n"


def test_431_has_its_reason_phrase() -> None:
    assert error_response(431, "request head over 32768 bytes").startswith(
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
