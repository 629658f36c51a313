"""Tests for tray.engine.tunnel's bulk flow control on a tunnel that has carried many connections.

Against tests/unit/engine/test_tunnel.py's model of moby/spdystream (its
five frame workers, 50-frame queues, a pod that reads or does not), with
real local sockets.  The bug they pin down: after ~52 short connections
(no PING acknowledged their frames), an upload through a new connection on
the same tunnel waited for an acknowledgement it was refused to ask for, and
stayed open, silent, for good; a client that gave up was never noticed.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.unit.engine.test_tunnel import (
    TIMEOUT,
    Harness,
    SpdystreamKubelet,
    eventually,
    post_forever,
    run_spdystream,
    timed_get,
)
from tray.engine import tunnel as tunnel_mod

SHORT_CONNECTIONS = 60


async def upload(h: Harness, body: bytes, deadline: float) -> None:
    """A PUT of ``body`` on a new connection, whole within ``deadline`` seconds; fails otherwise."""
    assert h.server is not None
    reader, writer = await asyncio.open_connection(*h.server.sockets[0].getsockname())
    try:
        writer.write(b"PUT / HTTP/1.1\r\n\r\n" + body)  # "web" in the model: the pod reads everything
        await asyncio.wait_for(writer.drain(), deadline)
    except TimeoutError:
        raise AssertionError(f"the upload did not get through within {deadline} s") from None
    finally:
        writer.close()


def received(model: SpdystreamKubelet) -> int:
    return max((len(s.received) for s in model.streams.values()), default=0)


def test_an_upload_after_many_short_connections_gets_through():
    async def scenario(h: Harness, model: SpdystreamKubelet) -> None:
        for _ in range(SHORT_CONNECTIONS):
            await timed_get(h, 1.0)
        body = bytes(range(256)) * (20 << 20 >> 8)
        await upload(h, body, 10.0)
        await eventually(lambda: received(model) >= len(body), "the pod to read the whole upload", timeout=10)
        assert max(model.max_queued) < SpdystreamKubelet.QUEUE and not model.reader_blocked
        assert h.tunnel.closed_reason is None and not h.tunnel.wedged
        await eventually(lambda: h.tunnel.connections == 0, "the connection to end")

    run_spdystream(scenario, timeout=30)


def test_a_client_that_gives_up_mid_upload_is_let_go():
    # After the churn, a client sends part of a large body and closes: the
    # tunnel reads on, sees the EOF, and the connection ends (the pod closes
    # after its request; here it is cut LINGER_IDLE after our FIN at the latest).
    async def scenario(h: Harness, model: SpdystreamKubelet) -> None:
        for _ in range(SHORT_CONNECTIONS):
            await timed_get(h, 1.0)
        assert h.server is not None
        _, writer = await asyncio.open_connection(*h.server.sockets[0].getsockname())
        writer.write(b"PUT / HTTP/1.1\r\n\r\n" + b"z" * (4 << 20))
        await eventually(lambda: received(model) > 1 << 20, "part of the upload to reach the pod")
        writer.close()
        await eventually(lambda: h.tunnel.connections == 0, "the connection to end", timeout=8)

    run_spdystream(scenario, timeout=30)


def test_an_upload_that_cannot_be_acknowledged_fails_loudly(monkeypatch, caplog):
    # Should the kubelet never be asked for an acknowledgement (here: no
    # PING allowed behind any bulk data), the upload fails after the reply
    # timeout, with a warning, and its local socket is closed: never open
    # and silent for good.  The tunnel takes no new connections after that.
    monkeypatch.setattr(tunnel_mod, "PING_LIMIT", 1)
    monkeypatch.setattr(tunnel_mod, "WINDOW_FRAMES", 2)
    caplog.set_level(logging.INFO, logger="tray.engine.tunnel")

    async def scenario(h: Harness, model: SpdystreamKubelet) -> None:
        assert h.server is not None
        reader, writer = await asyncio.open_connection(*h.server.sockets[0].getsockname())
        writer.write(b"PUT / HTTP/1.1\r\n\r\n" + b"z" * (8 << 20))
        try:  # closed, with our unread bytes: reset
            assert await asyncio.wait_for(reader.read(), 1.0 + 2 * tunnel_mod.STALL_AFTER + TIMEOUT) == b""
        except ConnectionResetError:
            pass
        writer.close()
        await eventually(lambda: h.tunnel.connections == 0, "the connection to end")
        result = await h.result()
        assert "no progress" in (result.error or "")
        assert not h.tunnel.usable  # the next connection gets a fresh tunnel
        assert any(r.levelno == logging.WARNING and "could not be acknowledged" in r.getMessage()
                   for r in caplog.records)

    run_spdystream(scenario, timeout=10, reply_timeout=1.0)


@pytest.mark.parametrize("size", [1 << 20, 16 << 20])
def test_uploads_keep_the_kubelets_queues_short_after_churn(size):
    # Several uploads in turn after the churn, each whole; no queue fills.
    async def scenario(h: Harness, model: SpdystreamKubelet) -> None:
        for _ in range(SHORT_CONNECTIONS):
            await timed_get(h, 1.0)
        for n in range(3):
            await upload(h, bytes([n]) * size, 10.0)
            await timed_get(h, 1.0)
        assert max(model.max_queued) <= tunnel_mod.WINDOW_FRAMES + 2 and not model.reader_blocked

    run_spdystream(scenario, timeout=40)


def test_an_upload_to_a_pod_that_does_not_read_waits_logged_not_failed(monkeypatch, caplog):
    # The pod reads none of a POST: its worker is stuck on it and its PING
    # unanswered.  The upload waits (as it would on the pod's own socket),
    # past the reply timeout, and says so in the log; it is not failed,
    # and the tunnel is not aborted.
    monkeypatch.setattr(tunnel_mod, "STALL_AFTER", 0.2)
    caplog.set_level(logging.INFO, logger="tray.engine.tunnel")

    async def scenario(h: Harness, model: SpdystreamKubelet) -> None:
        for _ in range(SHORT_CONNECTIONS):
            await timed_get(h, 1.0)
        post = asyncio.ensure_future(post_forever(h, 24 << 20))
        try:
            await eventually(lambda: any("waited" in r.getMessage() for r in caplog.records),
                             "the wait to be logged", timeout=4)
            assert not post.done() and h.tunnel.connections == 1 and h.tunnel.closed_reason is None
            assert not any(r.levelno >= logging.WARNING for r in caplog.records)
            assert not model.reader_blocked and max(model.max_queued) < SpdystreamKubelet.QUEUE
        finally:
            post.cancel()

    run_spdystream(scenario, timeout=15, reply_timeout=0.5)
