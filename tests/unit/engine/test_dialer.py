"""Which port-forward path a forward takes: from the environment, and after which refusal.

The dials themselves are faked here (``Tunnel.open`` and the v4 stream's
``open_stream`` replaced by recorders that answer from a script); what runs
is the dialer's choice.  The paths on the real API server are the
integration tests' (test_engine_tunnel.py, test_engine_spdy_upgrade.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from tray.engine import dialer as dialer_mod
from tray.engine.dialer import PROTOCOL_ENV, Dialer, protocol_from_env
from tray.errors import ClusterUnreachable, ForbiddenError, TenderError
from tray.kube.kubeapi import ApiError, NotFound
from tray.kube.spdyconn import UpgradeFailed
from tray.engine.tunnel import TunnelUnsupported


@pytest.mark.parametrize(("value", "expected"), [
    (None, "auto"), ("", "auto"), ("v4", "v4"), ("V4", "v4"), (" tunnel ", "tunnel"),
    ("auto", "auto"), ("spdy", "spdy"), (" SPDY ", "spdy"), ("websocket", "auto"), ("spdy3", "auto"),
])
def test_protocol_from_env(value: str | None, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Anything unknown is the default (the POST upgrade, the WebSocket tunnel or v4 when it is refused):
    # a typo must not silently pin a slower path.
    if value is None:
        monkeypatch.delenv(PROTOCOL_ENV, raising=False)
    else:
        monkeypatch.setenv(PROTOCOL_ENV, value)
    assert protocol_from_env() == expected


# ---------------------------------------------------------------- the fallback, with scripted dials
WS_403 = ForbiddenError('pods "web" is forbidden: ')
POST_403 = ForbiddenError('pods "web" is forbidden: User "u" cannot create resource "pods/portforward"')


@dataclass(eq=False)  # hashable by identity, as a Tunnel
class FakeTunnel:
    pod: str
    upgrade: bool
    auth_generation: int = 0
    closed_reason: str | None = None
    usable: bool = True

    def retire(self) -> None:
        self.usable = False

    def abort(self, reason: str) -> None:
        self.closed_reason = reason

    async def answers(self) -> bool:
        return True


@dataclass
class Dials:
    """Scripted answers: ``websocket``/``upgrade``/``v4``: an exception to raise, or None to succeed."""

    websocket: Exception | None = None
    upgrade: Exception | None = None
    v4: Exception | None = None
    log: list[str] = field(default_factory=list)


@dataclass
class FakeAuth:
    generation: int = 0


@dataclass
class FakeAPI:
    auth: FakeAuth = field(default_factory=FakeAuth)


class FakeWS:
    async def close(self) -> None:
        pass


@pytest.fixture
def dials(monkeypatch: pytest.MonkeyPatch) -> Dials:
    script = Dials()

    class Tunnels:
        @staticmethod
        async def open(api: object, namespace: str, pod: str, *, upgrade: bool = False,
                       idle_close: float | None = None) -> FakeTunnel:
            kind = "upgrade" if upgrade else "websocket"
            script.log.append(kind)
            failure = getattr(script, kind)
            if failure is not None:
                raise failure
            return FakeTunnel(pod, upgrade)

    async def open_stream(api: object, namespace: str, pod: str, port: int) -> FakeWS:
        script.log.append("v4")
        if script.v4 is not None:
            raise script.v4
        return FakeWS()

    monkeypatch.setattr(dialer_mod, "Tunnel", Tunnels)
    monkeypatch.setattr(dialer_mod, "open_stream", open_stream)
    return script


def _connect(protocol: str | None = None, times: int = 1) -> tuple[Dialer, list[object]]:
    async def run() -> tuple[Dialer, list[object]]:
        d = Dialer(FakeAPI(), "ns", protocol=protocol)  # type: ignore[arg-type]
        links = []
        for _ in range(times):
            links.append(await d.connect("web", 8080))
            d.pod_changed()  # the next connect opens a new tunnel: which path does it take?
        return d, links

    return asyncio.run(run())


def _tunnel_of(link: object) -> FakeTunnel:
    return link._tunnel  # type: ignore[attr-defined]


def test_the_upgrade_comes_first_and_stays_first(dials: Dials) -> None:
    # The POST upgrade is the cheaper path (the API server only copies bytes): tried first,
    # and again for the forward's next tunnels, with nothing pinned.
    d, links = _connect(times=2)
    assert dials.log == ["upgrade", "upgrade"]
    assert all(_tunnel_of(link).upgrade for link in links)
    assert d.protocol == "auto" and d.uses_tunnel


def test_a_refused_upgrade_falls_back_to_the_websocket_and_keeps_it(dials: Dials) -> None:
    # A proxy in front of the API server that passes WebSockets but not SPDY.
    dials.upgrade = UpgradeFailed("unable to upgrade connection: the server switched to 'h2c'")
    d, links = _connect(times=2)
    assert dials.log == ["upgrade", "websocket", "websocket"]  # remembered for the forward's next tunnels
    assert not any(_tunnel_of(link).upgrade for link in links)
    assert d.protocol == "tunnel" and d.uses_tunnel


def test_get_only_credentials_fall_back_to_the_websocket(dials: Dials) -> None:
    # An API server before 1.30 authorizes the WebSocket (a GET) as `get`; the POST needs `create`.
    dials.upgrade = POST_403
    d, _ = _connect()
    assert dials.log == ["upgrade", "websocket"]
    assert d.protocol == "tunnel"


def test_the_upgrades_refusal_is_the_one_shown(dials: Dials) -> None:
    # Refused everywhere: the 403 naming `create` (what kubectl needs), not v4's naming `get`.
    dials.websocket, dials.upgrade = WS_403, POST_403
    dials.v4 = ForbiddenError('pods "web" is forbidden: User "u" cannot get resource "pods/portforward"')
    with pytest.raises(ForbiddenError, match='cannot create resource "pods/portforward"'):
        _connect()
    assert dials.log == ["upgrade", "websocket", "v4"]


def test_an_upgrade_refused_by_rbac_still_finds_v4(dials: Dials) -> None:
    dials.websocket, dials.upgrade = WS_403, POST_403
    d, _ = _connect()
    assert dials.log == ["upgrade", "websocket", "v4", "v4"]
    assert d.protocol == "v4"


@pytest.mark.parametrize("failure", [NotFound(404, 'pods "web" not found'), ClusterUnreachable("cluster unreachable"),
                                     ApiError(502, "error dialing backend")])
def test_the_upgrade_failing_for_a_precise_reason_raises_it(dials: Dials, failure: Exception) -> None:
    dials.upgrade = failure
    with pytest.raises(type(failure)):
        _connect()
    assert dials.log == ["upgrade"]


@pytest.mark.parametrize("failure", [NotFound(404, 'pods "web" not found'), ApiError(502, "error dialing backend")])
def test_the_websocket_failing_for_a_precise_reason_raises_it(dials: Dials, failure: Exception) -> None:
    dials.upgrade, dials.websocket = UpgradeFailed("unable to negotiate protocol"), failure
    with pytest.raises(type(failure)):
        _connect()
    assert dials.log == ["upgrade", "websocket"]


@pytest.mark.parametrize("failure", [TunnelUnsupported("the API server chose subprotocol none"),
                                     ApiError(400, "bad request"), WS_403])
def test_without_any_spdy_session_v4_is_used(dials: Dials, failure: Exception) -> None:
    dials.upgrade, dials.websocket = UpgradeFailed("unable to negotiate protocol"), failure
    d, _ = _connect()
    assert dials.log == ["upgrade", "websocket", "v4", "v4"]  # proved by one stream, then used
    assert d.protocol == "v4"


def test_v4s_error_is_shown_when_every_path_fails(dials: Dials) -> None:
    dials.upgrade = UpgradeFailed("unable to negotiate protocol")
    dials.websocket = TunnelUnsupported("the API server chose subprotocol none")
    dials.v4 = ForbiddenError('pods "web" is forbidden: User "u" cannot get resource "pods/portforward"')
    with pytest.raises(ForbiddenError, match="cannot get"):
        _connect()
    assert dials.log == ["upgrade", "websocket", "v4"]


def test_forced_tunnel_does_not_fall_back(dials: Dials) -> None:
    dials.websocket = WS_403
    with pytest.raises(ForbiddenError):
        _connect("tunnel")
    assert dials.log == ["websocket"]


def test_forced_spdy_uses_only_the_upgrade(dials: Dials) -> None:
    d, links = _connect("spdy", times=2)
    assert dials.log == ["upgrade", "upgrade"]
    assert d.protocol == "spdy"
    dials.log.clear()
    dials.upgrade = UpgradeFailed("unable to negotiate protocol")
    with pytest.raises(TenderError, match="unable to negotiate protocol"):
        _connect("spdy")
    assert dials.log == ["upgrade"]
