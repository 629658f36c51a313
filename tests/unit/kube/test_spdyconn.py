"""Tests for tray.kube.spdyconn: the upgrade's HTTP/1.1 exchange and the upgraded stream as a TunnelSocket.

The exchange (:class:`Handshake`, :func:`check_upgrade`) is fed plain bytes:
what the API server answers, whole or in pieces.  :class:`SpdySocket` runs on
a real socket pair without TLS: the test holds the other end and plays the
API server (and, after the upgrade, the kubelet), so reading, writing,
back-pressure and the ways a connection ends are the kernel's own.  The dial
itself (TLS, credentials, proxies) meets the real API server in
tests/integration/test_engine_spdy_upgrade.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest

from tray.errors import ClusterUnreachable, ForbiddenError
from tray.kube import spdyconn
from tray.kube.kubeapi import ApiError, NotFound, Unauthorized
from tray.wire.spdy import SpdyEncoder
from tray.kube.spdyconn import (
    MAX_ERROR_BODY,
    WRITE_HIGH,
    Handshake,
    SpdySocket,
    UpgradeFailed,
    check_upgrade,
    connect_request,
    upgrade_request,
)
from tray.engine.tunnel import Tunnel

TIMEOUT = 5.0

SWITCHED = (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
            b"X-Stream-Protocol-Version: portforward.k8s.io\r\nDate: Mon, 30 Nov 2026 05:26:07 GMT\r\n\r\n")
FORBIDDEN_MESSAGE = ('pods "web" is forbidden: User "system:serviceaccount:demo:viewer" cannot create resource '
                     '"pods/portforward" in API group "" in the namespace "demo"')


def status_answer(code: int, reason: str, message: str, *, chunked: bool = False, close_delimited: bool = False) -> bytes:
    body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                       "code": code}).encode()
    head = f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
    if chunked:
        half = len(body) // 2
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    if close_delimited:
        return (head + "Connection: close\r\n\r\n").encode() + body
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def upgrade() -> Handshake:
    return upgrade_request("https://127.0.0.1:6443", "demo", "web", {"Authorization": "Bearer t0ken"})


# ---------------------------------------------------------------- the request
def test_the_upgrade_request_is_client_gos() -> None:
    request = upgrade().request
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/v1/namespaces/demo/pods/web/portforward HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers == {"Host": "127.0.0.1:6443", "User-Agent": "tender/0.1", "Content-Length": "0",
                       "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                       "X-Stream-Protocol-Version": "portforward.k8s.io", "Authorization": "Bearer t0ken"}
    assert body == b""


def test_the_servers_path_prefix_and_odd_names_are_kept() -> None:
    # Rancher-style servers live under a path; an IPv6 host keeps its brackets in Host.
    h = upgrade_request("https://[::1]:8443/k8s/clusters/c-1/", "my ns", "web", {})
    first = h.request.split(b"\r\n")[0].decode()
    assert first == "POST /k8s/clusters/c-1/api/v1/namespaces/my%20ns/pods/web/portforward HTTP/1.1"
    assert b"\r\nHost: [::1]:8443\r\n" in h.request


def test_connect_request_carries_the_proxys_credentials() -> None:
    h = connect_request("10.0.0.1:6443", "http://al%40ice:s%3Acret@proxy:3128")
    lines = h.request.decode().split("\r\n")
    assert lines[0] == "CONNECT 10.0.0.1:6443 HTTP/1.1"
    # base64 of "al@ice:s:cret"
    assert "Proxy-Authorization: Basic YWxAaWNlOnM6Y3JldA==" in lines
    assert not any("Authorization: Bearer" in line for line in lines)  # the cluster's token is not the proxy's
    assert "Proxy-Authorization" not in connect_request("10.0.0.1:6443", "http://proxy:3128").request.decode()


def test_a_header_that_cannot_be_sent_is_refused_without_quoting_it() -> None:
    with pytest.raises(UpgradeFailed) as err:
        upgrade_request("https://127.0.0.1:6443", "demo", "web", {"Authorization": "Bearer se\r\ncret"})
    assert "cret" not in str(err.value) and "Authorization" in str(err.value)


# ---------------------------------------------------------------- the answer
def test_a_switch_keeps_the_bytes_after_it() -> None:
    h = upgrade()
    ping = SpdyEncoder.ping(2)
    assert h.feed(SWITCHED + ping)
    check_upgrade(h)
    assert h.status == 101 and h.switched and h.trailing == ping
    assert h.headers["x-stream-protocol-version"] == "portforward.k8s.io"


def test_an_answer_in_single_bytes() -> None:
    h = upgrade()
    data = SWITCHED + b"spdy"
    ends = [h.feed(data[i:i + 1]) for i in range(len(SWITCHED))]
    assert ends == [False] * (len(SWITCHED) - 1) + [True]
    assert h.trailing == b""  # the rest was not fed yet: it goes straight to the stream
    check_upgrade(h)


def test_100_continue_is_skipped() -> None:
    h = upgrade()
    assert h.feed(b"HTTP/1.1 100 Continue\r\n\r\n" + SWITCHED)
    assert h.status == 101
    check_upgrade(h)


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_403_is_a_forbidden_error_with_the_servers_message(framing: str) -> None:
    h = upgrade()
    answer = status_answer(403, "Forbidden", FORBIDDEN_MESSAGE, chunked=framing == "chunked",
                           close_delimited=framing == "close")
    done = h.feed(answer)
    if framing == "close":
        assert not done  # the body ends when the server closes
        assert h.feed(b"")
    assert done or framing == "close"
    assert not h.switched
    with pytest.raises(ForbiddenError) as err:
        check_upgrade(h)
    assert str(err.value) == FORBIDDEN_MESSAGE


@pytest.mark.parametrize(("code", "reason", "error"), [
    (404, "Not Found", NotFound), (401, "Unauthorized", Unauthorized), (500, "Internal Server Error", ApiError),
    (400, "Bad Request", ApiError),
])
def test_other_refusals_are_the_projects_errors(code: int, reason: str, error: type[Exception]) -> None:
    h = upgrade()
    assert h.feed(status_answer(code, reason, f"something {code}"))
    with pytest.raises(error) as err:
        check_upgrade(h)
    assert getattr(err.value, "status", code) == code


def test_a_refusal_without_a_status_body_says_the_http_status() -> None:
    h = upgrade()
    assert h.feed(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nupstream 42")
    with pytest.raises(ApiError, match="^HTTP 502: upstream 42$"):
        check_upgrade(h)


def test_a_huge_refusal_body_is_cut() -> None:
    h = upgrade()
    size = MAX_ERROR_BODY * 4
    assert h.feed(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
    assert len(h.body) == MAX_ERROR_BODY


@pytest.mark.parametrize(("answer", "message"), [
    (SWITCHED.replace(b"Upgrade: SPDY/3.1", b"Upgrade: websocket"), "switched to 'websocket', not SPDY/3.1"),
    (SWITCHED.replace(b"Connection: Upgrade", b"Connection: keep-alive"), "unable to upgrade connection"),
    (SWITCHED.replace(b"X-Stream-Protocol-Version: portforward.k8s.io\r\n", b""),
     "server returned ''"),
    (SWITCHED.replace(b"portforward.k8s.io", b"v4.channel.k8s.io"), "server returned 'v4.channel.k8s.io'"),
])
def test_a_switch_to_something_else_is_refused(answer: bytes, message: str) -> None:
    h = upgrade()
    assert h.feed(answer)
    with pytest.raises(UpgradeFailed, match=message.replace("(", r"\(")):
        check_upgrade(h)


@pytest.mark.parametrize("answer", [
    b"SPDY/3.1 101 nope\r\n\r\n",
    b"HTTP/1.1 ten Switching\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade SPDY/3.1\r\n\r\n",
])
def test_a_broken_answer_raises(answer: bytes) -> None:
    with pytest.raises(UpgradeFailed, match="not valid HTTP/1.1"):
        upgrade().feed(answer)


def test_a_close_in_the_middle_of_the_answer_raises() -> None:
    h = upgrade()
    assert not h.feed(SWITCHED[:40])
    with pytest.raises(UpgradeFailed, match="closed the connection before its answer was complete"):
        h.feed(b"")


def test_a_proxys_answer_to_connect() -> None:
    ok = connect_request("10.0.0.1:6443", "http://proxy:3128")
    assert ok.feed(b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert ok.switched and ok.status == 200 and ok.trailing == b""
    refused = connect_request("10.0.0.1:6443", "http://proxy:3128")
    assert refused.feed(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    assert not refused.switched and refused.status == 407


# ---------------------------------------------------------------- the stream (a socket pair)
class Server:
    """The far end of a SpdySocket: a plain socket the test reads and writes (non-blocking, on the loop)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.received = b""

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def read_until(self, predicate: Callable[[bytes], bool]) -> bytes:
        loop = asyncio.get_running_loop()
        while not predicate(self.received):
            chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 1 << 16), TIMEOUT)
            assert chunk, "the client closed the connection"
            self.received += chunk
        return self.received

    def reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected TCP sockets on 127.0.0.1 (a reset needs TCP: a Unix socket pair has none)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        ours = socket.create_connection(listener.getsockname())
        theirs, _ = listener.accept()
    return ours, theirs


def run(scenario: Callable[[SpdySocket, Server], Awaitable[None]], *, upgraded: bool = True,
        after_switch: bytes = b"") -> None:
    async def main() -> None:
        ours, theirs = tcp_pair()
        server = Server(theirs)
        sock = SpdySocket()
        await asyncio.get_running_loop().create_connection(lambda: sock, sock=ours)
        try:
            if upgraded:
                answered = asyncio.ensure_future(sock.exchange(upgrade()))
                await server.read_until(lambda got: got.endswith(b"\r\n\r\n"))
                server.received = b""
                await server.send(SWITCHED + after_switch)
                answer = await asyncio.wait_for(answered, TIMEOUT)
                check_upgrade(answer)
            await asyncio.wait_for(scenario(sock, server), 4 * TIMEOUT)
        finally:
            if sock.transport is not None:
                sock.transport.abort()
            server.sock.close()

    asyncio.run(main())


class Sink:
    def __init__(self) -> None:
        self.data = b""
        self.calls = 0
        self.grew = asyncio.Event()

    def __call__(self, chunk: bytes | memoryview) -> None:
        self.data += bytes(chunk)
        self.calls += 1
        self.grew.set()

    async def wait_for(self, size: int) -> bytes:
        while len(self.data) < size:
            self.grew.clear()
            await asyncio.wait_for(self.grew.wait(), TIMEOUT)
        return self.data


def test_bytes_that_came_with_the_answer_go_first_and_in_order() -> None:
    async def scenario(sock: SpdySocket, server: Server) -> None:
        await server.send(b"-second")
        await asyncio.sleep(0.05)  # both arrived before the tunnel diverted
        sink = Sink()
        sock.divert(sink)
        await server.send(b"-third")
        assert await sink.wait_for(len(b"first-second-third")) == b"first-second-third"

    run(scenario, after_switch=b"first")


def test_send_writes_and_a_refusal_from_exchange() -> None:
    async def scenario(sock: SpdySocket, server: Server) -> None:
        await sock.send(b"frame-1")
        await sock.send(b"frame-2")
        assert await server.read_until(lambda got: len(got) >= 14) == b"frame-1frame-2"

    run(scenario)

    async def refused(sock: SpdySocket, server: Server) -> None:
        answered = asyncio.ensure_future(sock.exchange(upgrade()))
        await server.read_until(lambda got: got.endswith(b"\r\n\r\n"))
        await server.send(status_answer(403, "Forbidden", FORBIDDEN_MESSAGE))
        with pytest.raises(ForbiddenError, match="cannot create resource"):
            check_upgrade(await answered)

    run(refused, upgraded=False)


def test_sends_in_one_loop_iteration_are_one_write_in_order() -> None:
    # Many connections' frames in one iteration: one transport write (one TLS record, one
    # send()), in the order of the calls; past WRITE_GATHER they go at once; close() flushes.
    async def scenario(sock: SpdySocket, server: Server) -> None:
        writes: list[bytes] = []
        real_write = sock.transport.write
        sock.transport.write = lambda data: (writes.append(bytes(data)), real_write(data))[1]  # type: ignore[method-assign]
        sends = [sock.send(f"frame-{i};".encode()) for i in range(5)]
        for send in sends:  # each runs to its first wait without yielding: one iteration
            await send
        assert writes == []  # not yet: at the end of the iteration
        await asyncio.sleep(0)
        assert writes == [b"frame-0;frame-1;frame-2;frame-3;frame-4;"]
        big = b"x" * spdyconn.WRITE_GATHER
        await sock.send(big)
        assert writes[1:] == [big], "a send past WRITE_GATHER is written at once"
        await sock.send(b"last")
        await sock.close()
        assert writes[2:] == [b"last"]
        assert (await server.read_until(lambda got: got.endswith(b"last"))).endswith(b"last")

    run(scenario)


def test_no_answer_to_the_upgrade_is_a_failed_upgrade_not_an_unreachable_cluster(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy that passes the API but swallows the SPDY upgrade: the connection was made, the
    # request sent, no answer.  UpgradeFailed lets the dialer fall back to the WebSocket; a
    # dial that does not complete stays ClusterUnreachable.
    monkeypatch.setattr(spdyconn, "OPEN_TIMEOUT", 0.3)

    class Auth:
        server = "https://127.0.0.1:6443"

    class Api:
        auth = Auth()

    async def main() -> None:
        ours, theirs = tcp_pair()

        async def answered_dial(api: object) -> tuple[SpdySocket, dict[str, str]]:
            sock = SpdySocket()
            await asyncio.get_running_loop().create_connection(lambda: sock, sock=ours)
            return sock, {}

        async def hanging_dial(api: object) -> tuple[SpdySocket, dict[str, str]]:
            await asyncio.sleep(10)
            raise AssertionError("not reached")

        try:
            monkeypatch.setattr(spdyconn, "_dial", answered_dial)
            with pytest.raises(UpgradeFailed, match="no answer to the SPDY port-forward upgrade"):
                await spdyconn.connect(Api(), "ns", "web")  # type: ignore[arg-type]
            monkeypatch.setattr(spdyconn, "_dial", hanging_dial)
            with pytest.raises(ClusterUnreachable):
                await spdyconn.connect(Api(), "ns", "web")  # type: ignore[arg-type]
        finally:
            theirs.close()

    asyncio.run(main())


def test_the_server_closing_before_it_answers() -> None:
    async def scenario(sock: SpdySocket, server: Server) -> None:
        answered = asyncio.ensure_future(sock.exchange(upgrade()))
        await server.read_until(lambda got: got.endswith(b"\r\n\r\n"))
        server.sock.close()
        with pytest.raises((ConnectionResetError, UpgradeFailed)):
            await answered

    run(scenario, upgraded=False)


def test_pause_reading_holds_bytes_back_until_resumed() -> None:
    # The tunnel's back-pressure: it pauses the transport while a local client is slow.
    async def scenario(sock: SpdySocket, server: Server) -> None:
        sink = Sink()
        sock.divert(sink)
        await server.send(b"a")
        await sink.wait_for(1)
        sock.transport.pause_reading()
        await server.send(b"b")
        await asyncio.sleep(0.1)
        assert sink.data == b"a"
        sock.transport.resume_reading()
        assert await sink.wait_for(2) == b"ab"

    run(scenario)


def test_send_waits_while_the_server_does_not_read() -> None:
    async def scenario(sock: SpdySocket, server: Server) -> None:
        block = b"x" * (1 << 20)
        sent = 0

        async def writer() -> None:
            nonlocal sent
            while True:
                await sock.send(block)
                sent += len(block)

        task = asyncio.ensure_future(writer())
        await asyncio.sleep(0.2)
        held = sent
        assert sock.transport.get_write_buffer_size() >= WRITE_HIGH  # it waits above the mark, not below
        await asyncio.sleep(0.2)
        assert sent == held  # blocked: memory bounded by the kernel's buffers and our mark
        await server.read_until(lambda got: len(got) >= held + 4 * len(block))  # the server reads: it moves on
        assert sent > held
        task.cancel()

    run(scenario)


def test_the_server_ending_cleanly() -> None:
    async def scenario(sock: SpdySocket, server: Server) -> None:
        sock.divert(Sink())
        server.sock.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(sock.wait_closed(), TIMEOUT)
        assert sock.close_code == 1000 and sock.close_detail is None
        with pytest.raises(ConnectionResetError):
            await sock.send(b"late")

    run(scenario)


def test_a_reset_is_a_lost_connection() -> None:
    async def scenario(sock: SpdySocket, server: Server) -> None:
        sock.divert(Sink())
        server.reset()
        await asyncio.wait_for(sock.wait_closed(), TIMEOUT)
        assert sock.close_code == 1006
        assert sock.close_detail.startswith("connection lost: ")

    run(scenario)


def test_close_ends_it_even_if_the_server_does_not() -> None:
    async def scenario(sock: SpdySocket, server: Server) -> None:
        sock.divert(Sink())
        await asyncio.wait_for(sock.close(), TIMEOUT)
        assert sock.close_code is not None
        with pytest.raises(ConnectionResetError):
            await sock.send(b"late")

    run(scenario)


# ---------------------------------------------------------------- a Tunnel on it
def frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """(control type or -1 for data, stream id or ping id, whole frame) of complete SPDY frames."""
    out, pos = [], 0
    while pos + 8 <= len(data):
        first, second = struct.unpack_from(">II", data, pos)
        end = pos + 8 + (second & 0xFFFFFF)
        if end > len(data):
            break
        frame = data[pos:end]
        if first & 0x80000000:
            kind = first & 0xFFFF
            ident = struct.unpack_from(">I", frame, 8)[0] & 0x7FFFFFFF if len(frame) >= 12 else 0
        else:
            kind, ident = -1, first
        out.append((kind, ident, frame))
        pos = end
    return out


def test_a_tunnel_forwards_over_it_and_ends_with_it() -> None:
    """The SPDY session over the upgraded stream: a connection, the kubelet's PING, the server's close."""
    async def scenario(sock: SpdySocket, server: Server) -> None:
        tunnel = Tunnel(sock, "web")  # type: ignore[arg-type]
        listener = await asyncio.start_server(lambda r, w: tunnel.forward(r, w, 8080), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*listener.sockets[0].getsockname()[:2])
        writer.write(b"GET /")
        # Two SYN_STREAMs (error, data) and the request bytes on the data stream.
        got = await server.read_until(lambda d: any(k == -1 and len(f) > 8 for k, _, f in frames(d)))
        syns = [ident for kind, ident, _ in frames(got) if kind == 1]
        assert len(syns) == 2
        data_id = syns[1]
        assert [f[8:] for k, i, f in frames(got) if k == -1 and i == data_id] == [b"GET /"]
        # The kubelet: SYN_REPLY, the pod's answer with FIN, and a PING of its own.
        reply = struct.pack(">HHI", 0x8003, 2, 4) + struct.pack(">I", data_id)
        await server.send(reply + SpdyEncoder.data(data_id, b"hello", fin=True) + SpdyEncoder.ping(2))
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"hello"
        echoed = await server.read_until(lambda d: any(k == 6 and i == 2 for k, i, _ in frames(d)))
        assert echoed
        assert tunnel.usable and await tunnel.answers()
        # The API server ends the session: the tunnel says so, and takes no more connections.
        server.sock.shutdown(socket.SHUT_WR)
        await asyncio.wait_for(sock.wait_closed(), TIMEOUT)
        for _ in range(100):
            if tunnel.closed_reason:
                break
            await asyncio.sleep(0.01)
        assert tunnel.closed_reason == "the API server ended the port-forward session"
        assert not tunnel.usable
        writer.close()
        listener.close()

    run(scenario)


def test_a_tunnel_on_a_lost_stream_says_why() -> None:
    async def scenario(sock: SpdySocket, server: Server) -> None:
        tunnel = Tunnel(sock, "web")  # type: ignore[arg-type]
        server.reset()
        await asyncio.wait_for(sock.wait_closed(), TIMEOUT)
        for _ in range(100):
            if tunnel.closed_reason:
                break
            await asyncio.sleep(0.01)
        assert tunnel.closed_reason.startswith("port-forward session lost (connection lost: ")
        assert await tunnel.answers() is False

    run(scenario)
