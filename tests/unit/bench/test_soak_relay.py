"""The soak's API-server relay (bench/soak_relay.py): bytes pass, a freeze keeps flows open and silent, new
flows pass during it, and the client closing a frozen flow is recorded."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from bench.soak_relay import FreezableRelay


@pytest.fixture
def echo_server():
    srv = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            conns.append(c)

            def echo(c: socket.socket = c) -> None:
                while True:
                    try:
                        data = c.recv(65536)
                    except OSError:
                        return
                    if not data:
                        c.close()
                        return
                    c.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()
    for c in conns:
        c.close()


def _wait(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_frozen_flow_carries_nothing_and_stays_open_until_the_client_closes_it(echo_server: int) -> None:
    relay = FreezableRelay(("127.0.0.1", echo_server))
    try:
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        c.sendall(b"hello")
        assert c.recv(100) == b"hello"
        frozen = relay.freeze()
        assert len(frozen) == 1
        c.sendall(b"lost")
        c.settimeout(0.5)
        with pytest.raises(socket.timeout):  # no answer, and no end of stream either
            c.recv(100)
        _wait(lambda: frozen[0].dropped_bytes == 4)
        # A new flow passes during the freeze.
        d = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        d.sendall(b"new")
        assert d.recv(100) == b"new"
        c.close()  # the client gives up on the frozen flow
        _wait(lambda: frozen[0].closed_at is not None)
        assert frozen[0].closed_by == "tender"
        assert relay.thaw(frozen) == 0
        d.close()
    finally:
        relay.stop()


def test_thawing_closes_the_frozen_flows_still_open(echo_server: int) -> None:
    relay = FreezableRelay(("127.0.0.1", echo_server))
    try:
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        c.sendall(b"x")
        assert c.recv(10) == b"x"
        frozen = relay.freeze()
        assert relay.thaw(frozen) == 1
        assert frozen[0].closed_by == "relay"
        c.settimeout(5)
        assert c.recv(10) == b""  # the client now sees the flow end
    finally:
        relay.stop()
