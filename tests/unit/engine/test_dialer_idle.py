"""On-demand connection: a forward dials its pod at its first local connection, and a tunnel that
carries nothing for ``idle_close`` seconds goes (``TENDER_TUNNEL_IDLE``); the next connection dials again.

The tunnels here are real :class:`~tray.engine.tunnel.Tunnel` objects on the in-memory WebSocket of
test_tunnel.py (no kubelet behind it: nothing is forwarded); only ``Tunnel.open``'s dial is replaced,
by a recorder.  The real API server's side is tests/integration/test_on_demand.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tray.engine import dialer as dialer_mod
from tray.engine.dialer import IDLE_ENV, Dialer, PodDialers, idle_close_from_env
from tray.engine.tunnel import IDLE_CLOSE, Tunnel
from tests.unit.engine.test_dialer import FakeAPI
from tests.unit.engine.test_tunnel import FakeWebSocket


@pytest.mark.parametrize(("value", "expected"), [
    (None, IDLE_CLOSE), ("", IDLE_CLOSE), ("5", 5.0), (" 0.5 ", 0.5), ("0", IDLE_CLOSE), ("-3", IDLE_CLOSE),
    ("off", IDLE_CLOSE), ("inf", IDLE_CLOSE), ("nan", IDLE_CLOSE),
])
def test_idle_close_from_env(value: str | None, expected: float, monkeypatch: pytest.MonkeyPatch) -> None:
    # A tunnel that never closes is not something a typo may ask for: anything but a positive
    # number of seconds is the default.
    if value is None:
        monkeypatch.delenv(IDLE_ENV, raising=False)
    else:
        monkeypatch.setenv(IDLE_ENV, value)
    assert idle_close_from_env() == expected


class Dials:
    """``Tunnel.open`` replaced: each dial recorded (pod, idle_close) and answered by a real Tunnel."""

    def __init__(self) -> None:
        self.log: list[tuple[str, float | None]] = []
        self.sockets: list[FakeWebSocket] = []
        self.delay = 0.0

    async def open(self, api: object, namespace: str, pod: str, *, upgrade: bool = False,
                   idle_close: float | None = None) -> Tunnel:
        self.log.append((pod, idle_close))
        await asyncio.sleep(self.delay)
        ws = FakeWebSocket()
        self.sockets.append(ws)
        return Tunnel(ws, pod, idle_close=idle_close)  # type: ignore[arg-type]


@pytest.fixture
def dials(monkeypatch: pytest.MonkeyPatch) -> Dials:
    script = Dials()
    monkeypatch.setattr(dialer_mod, "Tunnel", script)
    return script


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """On a fresh loop; fails on anything the loop reports (a lost exception, a task never awaited)."""

    async def main() -> None:
        problems: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: problems.append(context))
        await asyncio.wait_for(scenario(), 5.0)
        await asyncio.sleep(0.01)  # the closes spawned in the background
        assert not problems, problems

    asyncio.run(main())


def test_nothing_is_dialled_until_the_first_connection(dials: Dials) -> None:
    async def scenario() -> None:
        d = Dialer(FakeAPI(), "ns", protocol="tunnel", idle_close=0.2)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        assert dials.log == [] and d.tunnels == 0 and d.idle, "a forward that was not used holds no tunnel"
        await d.connect("web", 8080)
        assert dials.log == [("web", 0.2)], "the first connection dials, with the dialer's idle time"
        assert d.tunnels == 1 and not d.idle
        d.close()

    run(scenario)


def test_connections_arriving_together_share_one_dial(dials: Dials) -> None:
    async def scenario() -> None:
        dials.delay = 0.05  # the dial takes a while: every connection arrives meanwhile
        d = Dialer(FakeAPI(), "ns", protocol="tunnel", idle_close=10)  # type: ignore[arg-type]
        links = await asyncio.gather(*(d.connect("web", 8080) for _ in range(20)))
        assert len(dials.log) == 1 and d.tunnels == 1
        assert len({link._tunnel for link in links}) == 1  # type: ignore[attr-defined]
        d.close()

    run(scenario)


def test_an_idle_tunnel_goes_and_the_next_connection_dials_again(dials: Dials) -> None:
    async def scenario() -> None:
        d = Dialer(FakeAPI(), "ns", protocol="tunnel", idle_close=0.15)  # type: ignore[arg-type]
        first = (await d.connect("web", 8080))._tunnel  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        assert d.tunnels == 1 and first.closed_reason is None, "not idle for long enough yet"
        await asyncio.sleep(0.2)
        assert first.closed_reason == "idle" and dials.sockets[0].closed, "the WebSocket closed"
        assert d.tunnels == 0 and d.idle
        second = (await d.connect("web", 8080))._tunnel  # type: ignore[attr-defined]
        assert second is not first and len(dials.log) == 2
        assert d.tunnels == 1
        d.close()

    run(scenario)


def test_the_environment_sets_the_idle_time(dials: Dials, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IDLE_ENV, "0.1")

    async def scenario() -> None:
        d = Dialer(FakeAPI(), "ns", protocol="tunnel")  # type: ignore[arg-type]
        tunnel = (await d.connect("web", 8080))._tunnel  # type: ignore[attr-defined]
        assert dials.log == [("web", 0.1)]
        await asyncio.sleep(0.25)
        assert tunnel.closed_reason == "idle" and d.tunnels == 0
        d.close()

    run(scenario)


def test_a_balanced_forward_dials_each_pod_on_demand_and_lets_each_go(dials: Dials) -> None:
    async def scenario() -> None:
        d = PodDialers(FakeAPI(), "ns", protocol="tunnel", idle_close=0.15)  # type: ignore[arg-type]
        assert d.tunnels == 0
        await d.connect("web-1", 8080)
        await asyncio.sleep(0.1)
        await d.connect("web-2", 8080)
        assert [pod for pod, _ in dials.log] == ["web-1", "web-2"] and d.tunnels == 2
        assert {idle for _, idle in dials.log} == {0.15}
        await asyncio.sleep(0.1)
        assert d.tunnels == 1, "web-1's tunnel went; web-2's has been idle for 0.1 s only"
        await asyncio.sleep(0.1)
        assert d.tunnels == 0
        d.close()

    run(scenario)
