"""A forward's counters and its log, on plain data.

The ring (:class:`tray.engine.forwardlog.ForwardLog`), the v4 copy loop's
byte counts (:func:`tray.engine.v4.pump` on a fake WebSocket), and a real
:class:`~tray.engine.session.Session` on the fakes of
:mod:`tests.unit.engine.session_fakes`: what ``SessionInfo`` and
``logs`` say after connections that work, fail, and a pod switch.  (The
SPDY tunnel's counts are in test_tunnel.py; the real thing in
tests/integration/test_engine_counters.py.)
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from tray.domain import backoff
from tray.domain.status import Status
from tray.engine import reconnect, session as session_mod
from tray.engine.forwardlog import LOG_LINES, ForwardLog, LogLine
from tray.engine.v4 import Traffic, pump
from tray.wire.framing import encode_data

from tray.domain.targets import Target

from .session_fakes import Forward, deployment, pod, run

WEB = Target("Deployment", "web")


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The design's delays a thousand times faster (the rules are test_session_reconnect's)."""
    monkeypatch.setattr(backoff, "DELAYS", tuple(d / 1000 for d in backoff.DELAYS))
    monkeypatch.setattr(backoff, "MAX_DELAY", backoff.MAX_DELAY / 1000)
    monkeypatch.setattr(reconnect, "DROP_GRACE", 0.005)


# ---------------------------------------------------------------- the ring
def test_the_log_keeps_the_last_lines_oldest_first() -> None:
    log = ForwardLog()
    for i in range(LOG_LINES + 50):
        log.add("info", f"line {i}")
    lines = log.lines()
    assert len(lines) == LOG_LINES == 200
    assert [line.message for line in lines[:2]] == ["line 50", "line 51"]
    assert lines[-1].message == f"line {LOG_LINES + 49}"


def test_a_log_line_is_one_line_with_its_utc_time_and_level() -> None:
    line = ForwardLog().add("warning", "connection refused\n  by the pod ")
    assert line.message == "connection refused by the pod"
    when = datetime.fromisoformat(line.time)
    assert when.utcoffset() == timezone.utc.utcoffset(None)
    assert abs((datetime.now(timezone.utc) - when).total_seconds()) < 5
    assert line.to_dict() == {"time": line.time, "level": "warning", "message": "connection refused by the pod"}
    assert LogLine("t", "info", "m").to_dict() == {"time": "t", "level": "info", "message": "m"}


def test_the_log_reads_from_another_thread_while_lines_are_added() -> None:
    log = ForwardLog(size=50)
    stop = threading.Event()
    problems: list[BaseException] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            log.add("info", str(i))
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(2000):
            try:
                lines = log.lines()
            except RuntimeError as exc:  # "deque mutated during iteration"
                problems.append(exc)
                break
            numbers = [int(line.message) for line in lines]
            assert numbers == sorted(numbers) and len(numbers) <= 50
    finally:
        stop.set()
        t.join()
    assert not problems


# ---------------------------------------------------------------- v4's copy loop
class FakeWS:
    """A v4 WebSocket: hands out ``incoming`` then ends (close code 1000); records what is sent."""

    def __init__(self, incoming: list[bytes]) -> None:
        self.incoming = list(incoming)
        self.sent: list[bytes] = []
        self.more = asyncio.Event()
        self.transport = None

    async def recv(self) -> bytes:
        while not self.incoming:
            await self.more.wait()
            self.more.clear()
        message = self.incoming.pop(0)
        if message == b"END":
            raise ConnectionClosed(Close(1000, ""), None)
        return message

    def push(self, *messages: bytes) -> None:
        self.incoming.extend(messages)
        self.more.set()

    async def send(self, message: bytes) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        return None


def test_v4_counts_bytes_each_way_as_they_pass() -> None:
    port_prefix = (8080).to_bytes(2, "little")

    async def test() -> None:
        traffic = Traffic()
        ws = FakeWS([b"\x00" + port_prefix, b"\x01" + port_prefix])
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await pump(reader, writer, ws, 8080, traffic)  # type: ignore[arg-type]
            done.set()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(b"x" * 1000)
        await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while traffic.bytes_out < 1000:  # counted while the connection is open, not at its end
            assert loop.time() < deadline, traffic.bytes_out
            await asyncio.sleep(0.001)
        assert all(m[:1] == encode_data(b"")[:1] for m in ws.sent)  # the data channel
        assert b"".join(m[1:] for m in ws.sent) == b"x" * 1000
        ws.push(b"\x00" + b"y" * 300)
        assert await reader.readexactly(300) == b"y" * 300
        assert (traffic.bytes_in, traffic.bytes_out) == (300, 1000)  # the port prefixes are not payload
        ws.push(b"END")
        await asyncio.wait_for(done.wait(), 2)
        writer.close()
        server.close()
        assert (traffic.bytes_in, traffic.bytes_out) == (300, 1000)

    run(test)


# ---------------------------------------------------------------- a session's counters and log
async def web_forward(*pods: dict[str, Any]) -> Forward:
    fwd = Forward(WEB)
    fwd.caches["deployments"].objects["web"] = deployment()
    for p in pods:
        fwd.pods.objects[p["metadata"]["name"]] = p
    fwd.session.start()
    await fwd.status(Status.ACTIVE)
    return fwd


def messages(fwd: Forward) -> list[str]:
    return [line.message for line in fwd.session.log.lines()]


def test_counters_count_connections_and_bytes() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        info = fwd.info
        assert (info.connections, info.connections_total, info.bytes_in, info.bytes_out) == (0, 0, 0, 0)
        assert (info.last_connection_error, info.last_connection_error_at) == ("", "")
        for _ in range(3):
            assert await fwd.request() == "web-a:hello"
        info = await fwd.until(lambda i: i.connections == 0, "every connection closed")
        assert info.connections_total == 3
        assert info.bytes_out == 3 * len("hello")
        assert info.bytes_in == 3 * len("web-a:hello")
        d = info.to_dict()
        assert (d["connections_total"], d["bytes_in"], d["bytes_out"]) == (3, 33, 15)
        assert d["last_connection_error"] == "" and d["last_connection_error_at"] == ""
        await fwd.stop()
    run(test)


def test_counters_survive_a_pod_switch() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a", ready_since="2026-01-01T00:00:00Z"),
                                pod("web-b", ready_since="2026-01-01T00:05:00Z"))
        assert await fwd.request() == "web-a:hello"
        fwd.pods.delete("web-a")
        await fwd.until(lambda i: i.pod_name == "web-b", "moved to web-b")
        assert await fwd.request() == "web-b:hello"
        info = await fwd.until(lambda i: i.connections == 0, "every connection closed")
        assert (info.connections_total, info.bytes_out, info.bytes_in) == (2, 10, 22)
        await fwd.stop()
    run(test)


def test_a_refused_connection_is_the_last_connection_error() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        assert await fwd.request() == "web-a:hello"
        fwd.dialer.refused = ("error forwarding port 8080 to pod web-a, uid : "
                              "failed to connect to localhost:8080 inside namespace: connection refused")
        assert await fwd.request() == ""
        info = await fwd.until(lambda i: i.last_connection_error != "", "the error recorded")
        assert info.last_connection_error == "connection refused"
        at = datetime.fromisoformat(info.last_connection_error_at)
        assert abs((datetime.now(timezone.utc) - at).total_seconds()) < 5
        assert info.status == Status.ACTIVE and info.connections_total == 2
        # The next connection that works does not erase it: it is the *last* error.
        fwd.dialer.refused = ""
        assert await fwd.request() == "web-a:hello"
        assert fwd.info.last_connection_error == "connection refused"
        await fwd.stop()
    run(test)


def test_a_connection_with_no_pod_to_go_to_is_an_error_too() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.session.set_status(Status.STARTING)  # as between a Retry and the first resolution
        fwd.session.tracker.pod_name = ""
        assert await fwd.request() == ""
        info = await fwd.until(lambda i: i.last_connection_error != "", "the error recorded")
        assert info.last_connection_error == "no ready pod"
        assert messages(fwd)[-1] == "connection not forwarded: no ready pod"
        await fwd.stop()
    run(test)


def test_the_log_says_start_pod_switch_attempts_and_stop_in_order() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        assert messages(fwd) == ["starting", "using pod web-a", "active"]
        fwd.pods.put(pod("web-a", ready=False))
        await fwd.status(Status.RECONNECTING)
        await fwd.until(lambda i: "reconnect attempt 2" in messages(fwd), "two attempts")
        fwd.pods.put(pod("web-b"))
        await fwd.until(lambda i: i.pod_name == "web-b" and i.status == Status.ACTIVE, "active on web-b")
        await fwd.stop()
        lines = fwd.session.log.lines()
        said = [line.message for line in lines]
        reconnecting = next(i for i, m in enumerate(said) if m.startswith("reconnecting: "))
        assert "web-a" in said[reconnecting] and "not ready" in said[reconnecting], said
        assert lines[reconnecting].level == "warning"
        assert said[reconnecting + 1:reconnecting + 3] == ["reconnect attempt 1", "reconnect attempt 2"]
        switched = said.index("switched to pod web-b (was web-a)")
        assert switched > reconnecting
        assert said[switched + 1] == "active: reconnected to pod web-b", said
        assert said[-1] == "stopped"
        assert {line.level for line in lines} <= {"info", "warning", "error"}
        times = [line.time for line in lines]
        assert times == sorted(times)
    run(test)


def test_the_log_says_why_a_forward_failed() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.caches["deployments"].delete("web")
        await fwd.status(Status.ERROR)
        last = fwd.session.log.lines()[-1]
        assert (last.level, last.message) == ("error", "error: deploy/web was deleted")
        await fwd.stop()
    run(test)


def test_failed_connections_are_logged_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log follows the shells' suppression: the first failure at once, the rest in one line later."""
    monkeypatch.setattr(session_mod, "CONNECTION_FAILURE_INTERVAL", 0.2)

    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.dialer.refused = "error forwarding port 8080: connection refused"
        for _ in range(5):
            assert await fwd.request() == ""
        failures = lambda: [m for m in messages(fwd) if m.startswith("connection to pod")]  # noqa: E731
        await fwd.until(lambda i: len(failures()) == 2, "the suppressed failures reported", timeout=2)
        assert failures() == ["connection to pod web-a port 8080 failed: connection refused",
                              "connection to pod web-a port 8080 failed: connection refused (and 3 more)"]
        assert fwd.info.connections_total == 5
        await fwd.stop()
    run(test)
