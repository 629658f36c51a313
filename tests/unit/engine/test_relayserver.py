"""The relay program as a relay pod runs it: ``python3 -c SOURCE`` (relay_source()), a real process on loopback.

The upstreams are servers of the test itself; the client speaks the wire
format (tray.wire.relay) over plain TCP, as Tender does over port-forward.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tray.domain.relaypod import relay_pod, relay_labels
from tray.engine.relay import relay_source
from tray.wire.relay import DatagramDecoder, encode_datagram, encode_request, parse_reply


@pytest.fixture
def relay() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, "-c", relay_source(), "--listen", "127.0.0.1:0", "--exit-idle", "2",
                             "--udp-idle", "1"], stderr=subprocess.STDOUT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": ""})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "tender relay listening on 127.0.0.1:" in line, line
    yield proc, int(line.rsplit(":", 1)[1])
    proc.kill()
    proc.wait()


def _ask(port: int, request: bytes) -> tuple[socket.socket, str | None]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request)
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return sock, parse_reply(line)


def test_the_program_is_what_the_pod_runs() -> None:
    pod = relay_pod(source=relay_source(), image="python:3.13-alpine", target="host/db:5432",
                    labels=relay_labels("alice", "laptop", "e1", "host/db"))
    container = pod["spec"]["containers"][0]
    assert container["command"][:3] == ["python3", "-c", relay_source()]
    assert "--listen" in container["command"] and "127.0.0.1:8400" in container["command"]
    compile(relay_source(), "relay", "exec")  # one program: no second __future__ import in the middle


def test_tcp_upstream_both_ways_with_half_close(relay: tuple[subprocess.Popen[str], int]) -> None:
    _, port = relay
    upstream = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = upstream.accept()
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        got.append(data)
        conn.sendall(data[::-1])
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    sock, error = _ask(port, encode_request("tcp", "127.0.0.1", upstream.getsockname()[1]))
    assert error is None
    payload = os.urandom(300_000)
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    back = b""
    while chunk := sock.recv(65536):
        back += chunk
    assert got == [payload] and back == payload[::-1]


def test_an_upstream_that_refuses_is_one_error_line(relay: tuple[subprocess.Popen[str], int]) -> None:
    _, port = relay
    free = socket.create_server(("127.0.0.1", 0))
    closed_port = free.getsockname()[1]
    free.close()
    sock, error = _ask(port, encode_request("tcp", "127.0.0.1", closed_port))
    assert error is not None and error.startswith(f"cannot connect to 127.0.0.1:{closed_port}:")
    assert "refused" in error.lower()
    assert sock.recv(10) == b""
    sock, error = _ask(port, encode_request("tcp", "no-such-host.invalid", 80))
    assert error is not None and "name not resolved" in error
    sock, error = _ask(port, b"GET / HTTP/1.1\r\n\r\n")
    assert error is not None and error.startswith("bad request")


def test_udp_datagrams_keep_their_boundaries(relay: tuple[subprocess.Popen[str], int]) -> None:
    _, port = relay
    echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    echo.bind(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            data, addr = echo.recvfrom(65535)
            echo.sendto(data, addr)

    threading.Thread(target=serve, daemon=True).start()
    sock, error = _ask(port, encode_request("udp", "127.0.0.1", echo.getsockname()[1]))
    assert error is None
    sent = [os.urandom(n) for n in (1, 100, 1400, 9000, 513)]  # empty datagrams: asyncio sends none
    sock.sendall(b"".join(encode_datagram(d) for d in sent))
    decoder, back = DatagramDecoder(), []
    while len(back) < len(sent):
        chunk = sock.recv(65536)
        assert chunk, "the relay closed the flow"
        back += decoder.feed(chunk)
    assert sorted(back) == sorted(sent)  # UDP may reorder; nothing lost on loopback, each byte-exact


def test_udp_flow_ends_after_its_idle_time(relay: tuple[subprocess.Popen[str], int]) -> None:
    _, port = relay
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sock, error = _ask(port, encode_request("udp", "127.0.0.1", sink.getsockname()[1]))
    assert error is None
    sock.settimeout(5)
    started = time.monotonic()
    assert sock.recv(10) == b""  # --udp-idle 1
    assert time.monotonic() - started < 4


def test_the_relay_exits_once_nobody_holds_it(relay: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = relay
    sock, error = _ask(port, encode_request("hold"))
    assert error is None
    time.sleep(3)  # --exit-idle 2: held, so it stays
    assert proc.poll() is None
    sock.close()  # Tender gone (its tunnel cut)
    assert proc.wait(timeout=6) == 0
    assert proc.stdout is not None and "no connection for 2 s: exiting" in proc.stdout.read()
