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
