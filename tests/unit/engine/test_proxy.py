"""tray.engine.proxy on plain data: listen addresses, and what a name routes to (no cluster, no dialing)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tray.engine.proxy import ClusterProxy, ProxyRefusal, format_listen, parse_listen
from tray.errors import ForbiddenError, UsageError


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:1080", ("127.0.0.1", 1080)),
    ("localhost:1081", ("localhost", 1081)),  # both loopbacks: bind_hosts
    ("1080", ("127.0.0.1", 1080)),
    ("[::1]:1080", ("::1", 1080)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
])
def test_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "::1:1080", "example.com:1080",
                                  "[::1]1080", "127.0.0.1:-1"])
def test_bad_listen(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_listen(text)
    assert err.value.field == "--listen"


def test_format_listen() -> None:
    assert format_listen("::1", 1080) == "[::1]:1080"
    assert format_listen("127.0.0.1", 1) == "127.0.0.1:1"


class _Cache:
    def __init__(self, objects: dict[str, Any], error: Exception | None = None) -> None:
        self.objects = objects
        self.error = error

    async def wait_synced(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error


class _Caches:
    def __init__(self, namespaces: dict[str, tuple[list[dict], list[dict]]], forbidden: set[str]) -> None:
        self.namespaces, self.forbidden = namespaces, forbidden
        self.held: list[tuple[str, str]] = []

    def acquire(self, cluster: str, api: Any, prefix: str, namespace: str, plural: str) -> _Cache:
        self.held.append((namespace, plural))
        if namespace in self.forbidden:
            return _Cache({}, ForbiddenError(f'services is forbidden: cannot list in "{namespace}"'))
        services, pods = self.namespaces.get(namespace, ([], []))
        items = services if plural == "services" else pods
        return _Cache({o["metadata"]["name"]: o for o in items})

    async def release(self, cluster: str, cache: Any) -> None:
        self.held.pop()


class _Conn:
    id = "ctx"
    default_namespace = "demo"
    api = None


def _pod(name: str, app: str, *, ready: bool = True, port_name: str = "http", port: int = 8080) -> dict:
    return {"metadata": {"name": name, "namespace": "demo", "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "ports": [{"name": port_name, "containerPort": port}]}],
                     "hostname": name if app == "db" else "", "subdomain": "db" if app == "db" else ""},
            "status": {"phase": "Running", "podIP": "10.10.0." + name[-1],
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _svc(name: str, app: str, ports: list[dict], cluster_ip: str) -> dict:
    return {"metadata": {"name": name, "namespace": "demo"},
            "spec": {"selector": {"app": app}, "ports": ports, "clusterIP": cluster_ip, "clusterIPs": [cluster_ip]}}


SERVICES = [
    _svc("web", "web", [{"port": 80, "targetPort": "http"}], "10.0.0.80"),
    _svc("db", "db", [{"port": 5432}], "None"),
    _svc("down", "down", [{"port": 80}], "10.0.0.81"),
]
PODS = [_pod("web-1", "web"), _pod("web-2", "web"), _pod("web-3", "web", port=9090),
        _pod("db-0", "db"), _pod("db-1", "db"), _pod("down-1", "down", ready=False)]


def _route(proxy: ClusterProxy, host: str, port: int) -> Any:
    return asyncio.run(proxy._route(host, port))


@pytest.fixture
def proxy() -> ClusterProxy:
    caches = _Caches({"demo": (SERVICES, PODS)}, {"secret"})
    return ClusterProxy(_Conn(), caches, "127.0.0.1", 0)  # type: ignore[arg-type]


def test_service_round_robin_with_named_target_ports(proxy: ClusterProxy) -> None:
    async def firsts() -> list[tuple[str, int]]:
        return [(await proxy._route("web.demo.svc.cluster.local", 80))[1][0] for _ in range(6)]

    assert asyncio.run(firsts()) == [("web-1", 8080), ("web-2", 8080), ("web-3", 9090)] * 2


def test_a_failed_dial_falls_to_the_next_pod(proxy: ClusterProxy) -> None:
    ns, candidates = _route(proxy, "web", 80)
    assert ns == "demo" and [c[0] for c in candidates] == ["web-1", "web-2", "web-3"]


def test_headless_and_pod_names_keep_the_port(proxy: ClusterProxy) -> None:
    assert _route(proxy, "db-1.db.demo.svc.cluster.local", 5432) == ("demo", [("db-1", 5432)])
    assert _route(proxy, "db.demo", 7777)[1][0] == ("db-0", 7777)


def test_a_cluster_ip_is_its_service(proxy: ClusterProxy) -> None:
    _route(proxy, "web.demo", 80)  # opens the namespace's caches
    assert _route(proxy, "10.0.0.80", 80)[1][0][0].startswith("web-")
    assert _route(proxy, "10.10.0.0", 5432) == ("demo", [("db-0", 5432)])


@pytest.mark.parametrize("host,port,kind,text", [
    ("nope.demo", 80, "unknown", 'no Service "nope" in namespace "demo"'),
    ("web.demo", 81, "unknown", "svc/web has no port 81"),
    ("db-7.db.demo", 5432, "unknown", 'no pod with hostname "db-7"'),
    ("www.example.com.au", 443, "unknown", "not a cluster name"),
    ("down.demo", 80, "no_endpoint", "no ready endpoint"),
    ("web.secret", 80, "forbidden", "forbidden"),
])
def test_refusals(proxy: ClusterProxy, host: str, port: int, kind: str, text: str) -> None:
    with pytest.raises(ProxyRefusal) as err:
        _route(proxy, host, port)
    assert err.value.kind == kind and text in str(err.value)
    assert "\n" not in str(err.value)


def test_a_forbidden_namespace_is_released(proxy: ClusterProxy) -> None:
    with pytest.raises(ProxyRefusal):
        _route(proxy, "web.secret", 80)
    assert proxy._caches.held == []  # type: ignore[attr-defined]


def test_refusals_speak_each_protocol() -> None:
    assert [(ProxyRefusal(k, "x").socks_reply, ProxyRefusal(k, "x").http_status)
            for k in ("unknown", "no_endpoint", "forbidden", "unreachable")] == [(4, 502), (5, 503), (2, 403), (4, 502)]


def test_a_namespace_without_services_keeps_no_watch(proxy: ClusterProxy) -> None:
    with pytest.raises(ProxyRefusal, match='no Service "google" in namespace "com"'):
        _route(proxy, "google.com", 443)
    assert proxy._caches.held == []  # type: ignore[attr-defined]
    _route(proxy, "web.demo", 80)
    with pytest.raises(ProxyRefusal):
        _route(proxy, "nope.demo", 80)
    assert sorted(proxy._caches.held) == [("demo", "pods"), ("demo", "services")]  # type: ignore[attr-defined]


def test_refused_by_the_pod_is_socks_refused_and_502() -> None:
    assert (ProxyRefusal("refused", "x").socks_reply, ProxyRefusal("refused", "x").http_status) == (5, 502)


EXTERNAL = [
    {"metadata": {"name": "alias", "namespace": "demo"},
     "spec": {"type": "ExternalName", "externalName": "web.demo.svc.cluster.local"}},
    {"metadata": {"name": "alias2", "namespace": "demo"},
     "spec": {"type": "ExternalName", "externalName": "alias.demo.svc.cluster.local."}},
    {"metadata": {"name": "loop", "namespace": "demo"},
     "spec": {"type": "ExternalName", "externalName": "loop.demo.svc.cluster.local"}},
    {"metadata": {"name": "outside", "namespace": "demo"},
     "spec": {"type": "ExternalName", "externalName": "api.example.com"}},
]


@pytest.fixture
def external() -> ClusterProxy:
    caches = _Caches({"demo": (SERVICES + EXTERNAL, PODS)}, set())
    return ClusterProxy(_Conn(), caches, "127.0.0.1", 0)  # type: ignore[arg-type]


def test_an_external_name_inside_the_cluster_is_followed(external: ClusterProxy) -> None:
    assert _route(external, "alias.demo", 80)[1][0] == ("web-1", 8080)
    assert _route(external, "alias2", 80)[1][0] == ("web-2", 8080)  # two hops, round robin goes on


@pytest.mark.parametrize("host,text", [
    ("outside.demo", 'Service "outside" in namespace "demo": ExternalName to api.example.com: outside the cluster '
                     "(not reachable through port-forward)"),
    ("loop.demo", "more than 5 ExternalName Services in a row"),
])
def test_an_external_name_outside_or_looping_is_host_unreachable(external: ClusterProxy, host: str,
                                                                  text: str) -> None:
    with pytest.raises(ProxyRefusal) as err:
        _route(external, host, 443)
    assert err.value.kind == "unknown" and err.value.socks_reply == 4 and err.value.http_status == 502
    assert text in str(err.value), str(err.value)


def test_any_address_listeners_warn_and_localhost_binds_both_loopbacks() -> None:
    from tray.engine.proxy import bind_hosts, exposure_warning

    assert "anyone who can reach this machine can use it" in exposure_warning("0.0.0.0")
    assert "with your credentials" in exposure_warning("::")
    assert exposure_warning("127.0.0.1") == exposure_warning("localhost") == exposure_warning("::1") == ""
    assert bind_hosts("localhost") == ["127.0.0.1", "::1"] and bind_hosts("0.0.0.0") == ["0.0.0.0"]


# ---------------------------------------------------------------- the server, byte for byte (a fake pod side)
class _PodLink:
    """A pod side: ``refuse`` (the kubelet's error, the stream ends) or an echo of what arrives."""

    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, traffic: Any = None) -> Any:
        from tray.engine.v4 import StreamResult

        if self.refuse:
            await asyncio.sleep(0.02)
            writer.close()
            return StreamResult(error="error forwarding port 8080 to pod 0123, uid : failed to execute portforward "
                                      "in network namespace: dial tcp4 127.0.0.1:8080: connect: connection refused")
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()
        return StreamResult()


def _exchange(data: bytes, *, refuse: bool = False, read_for: float = 2.0) -> tuple[bytes, float]:
    """Send ``data`` to a proxy whose pod side is a :class:`_PodLink`; what comes back until close, and when."""
    from tray.engine import proxy as proxy_module

    async def main() -> tuple[bytes, float]:
        class Conn(_Conn):
            async def ensure_auth(self) -> None:
                pass

        proxy = ClusterProxy(Conn(), _Caches({}, set()), "127.0.0.1", 0)  # type: ignore[arg-type]
        failures: list[Any] = []

        async def open_(host: str, port: int) -> Any:
            return _PodLink(refuse), proxy_module._Finisher(failures.append, "web-1", 8080)

        proxy._open = open_  # type: ignore[method-assign]
        await proxy.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            loop = asyncio.get_running_loop()
            start = loop.time()
            writer.write(data)
            got = b""
            try:
                async with asyncio.timeout(read_for):
                    while chunk := await reader.read(65536):
                        got += chunk
            except TimeoutError:
                got += b"<open>"
            writer.close()
            return got, loop.time() - start
        finally:
            await proxy.stop()

    return asyncio.run(main())


SOCKS_CONNECT = b"\x05\x01\x00" + b"\x05\x01\x00\x03\x08web.demo\x00\x50"


def test_a_pod_that_refuses_is_a_success_that_closes_for_socks_and_connect() -> None:
    # The success is sent at once (no positive word comes from the kubelet: a wait would cost every
    # connection); the refusal then closes the connection, as kubectl port-forward's does.
    got, took = _exchange(SOCKS_CONNECT, refuse=True)
    assert got == b"\x05\x00" + b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00" and took < 1.0, got
    got, took = _exchange(b"CONNECT web.demo:80 HTTP/1.1\r\nHost: web.demo:80\r\n\r\n", refuse=True)
    assert got == b"HTTP/1.1 200 Connection established\r\n\r\n" and took < 1.0, got


def test_a_pod_that_refuses_is_502_for_absolute_uris() -> None:
    reason = b"connection refused by pod web-1 port 8080\n"
    got, _ = _exchange(b"GET http://web.demo/ HTTP/1.1\r\nHost: web.demo\r\n\r\n", refuse=True)
    assert got.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and got.endswith(b"\r\n\r\n" + reason), got


def test_a_pod_that_accepts_gets_the_success_and_the_bytes() -> None:
    got, _ = _exchange(SOCKS_CONNECT + b"ping", read_for=1.0)
    assert got == b"\x05\x00" + b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"ping<open>"
    got, _ = _exchange(b"CONNECT web.demo:80 HTTP/1.1\r\n\r\nping", read_for=1.0)
    assert got == b"HTTP/1.1 200 Connection established\r\n\r\nping<open>"
    got, _ = _exchange(b"GET http://web.demo/x HTTP/1.1\nHost: web.demo\n\n", read_for=1.0)  # bare LF
    assert got == b"GET /x HTTP/1.1\r\nHost: web.demo\r\nConnection: close\r\n\r\n<open>"


@pytest.mark.parametrize("data,answer", [
    (b"\x04\x01\x00\x50\x0a\x00\x00\x01\x00", b"\x00\x5b\x00\x00\x00\x00\x00\x00"),  # SOCKS4: rejected
    (b"\x04\x01\x00\x50\x00\x00\x00\x01\x00web.demo\x00", b"\x00\x5b\x00\x00\x00\x00\x00\x00"),  # SOCKS4a
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b""),  # a TLS ClientHello: closed
    (b"\x05\x00", b"\x05\xff"),  # SOCKS5 without methods: none acceptable
])
def test_unrecognised_first_bytes_are_answered_at_once(data: bytes, answer: bytes) -> None:
    got, took = _exchange(data)
    assert got == answer and took < 1.0, (got, took)


@pytest.mark.parametrize("data,status", [
    (b"{\"jsonrpc\": \"2.0\"}\n", b"400"),
    (b"hello\n", b"400"),
    (b"SSH-2.0-OpenSSH_9.2p1\r\n", b"400"),
    (b"GET http://web.demo/ HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", b"431"),
    (b"GET http://web.demo/ HTTP/1.1\r\n" + b"X-Big: aaaaaaaa\r\n" * 3000 + b"\r\n", b"431"),
])
def test_text_that_is_no_proxy_request_is_answered_and_closed(data: bytes, status: bytes) -> None:
    got, took = _exchange(data)
    assert got.startswith(b"HTTP/1.1 " + status + b" ") and took < 1.0, (got[:200], took)


def test_listen_errors_read_like_tender_forwards(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from tray.engine import proxy as proxy_module

    in_use = proxy_module._listen_error(OSError(errno.EADDRINUSE, "Address already in use"), "127.0.0.1", 1080)
    assert in_use.message == "local port 1080 is already in use on 127.0.0.1" and in_use.errno == errno.EADDRINUSE
    monkeypatch.setattr(proxy_module, "_unprivileged_start", lambda: 1024)
    denied = proxy_module._listen_error(OSError(errno.EACCES, "Permission denied"), "127.0.0.1", 80)
    assert denied.message.startswith("cannot listen on 127.0.0.1:80: port 80 is below "
                                     "net.ipv4.ip_unprivileged_port_start (1024), so only root may listen on it; "
                                     "allow it once with 'sudo sysctl -w net.ipv4.ip_unprivileged_port_start=80'")
    assert "\n" not in denied.message and denied.field == "--listen"


def test_a_431_reaches_a_client_still_sending_its_huge_head() -> None:
    got, took = _exchange(b"GET http://web.demo/ HTTP/1.1\r\nX: " + b"a" * 200000 + b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n") and took < 1.5, (got[:100], took)
