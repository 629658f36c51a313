"""PodDialers: a Dialer per pod for a Service forward that spreads its connections (plain data, no cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tray.engine import dialer as dialer_module
from tray.engine.dialer import PodDialers


class FakeDialer:
    """A stand-in for one pod's Dialer: records what it was asked; ``learns`` a protocol on its first connect."""

    made: list[FakeDialer] = []
    learns = ""

    def __init__(self, api: Any, namespace: str, *, protocol: str | None = None,
                 idle_close: float | None = None) -> None:
        self.protocol = protocol or "auto"
        self.calls: list[Any] = []
        self.alive = True
        FakeDialer.made.append(self)

    @property
    def idle(self) -> bool:
        return not self.alive

    async def connect(self, pod: str, port: int) -> str:
        self.calls.append(("connect", pod, port))
        if FakeDialer.learns:
            self.protocol = FakeDialer.learns
        return f"link to {pod}:{port}"

    async def check(self, pod: str, port: int) -> None:
        self.calls.append(("check", pod, port))

    def connection_failed(self, *, dropped: bool, pod: str = "") -> None:
        self.calls.append(("failed", dropped))

    def pod_changed(self) -> None:
        self.calls.append("retired")

    def close(self) -> None:
        self.calls.append("closed")


@pytest.fixture(autouse=True)
def fake_dialer(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDialer.made, FakeDialer.learns = [], ""
    monkeypatch.setattr(dialer_module, "Dialer", FakeDialer)


def test_each_pod_gets_its_own_dialer() -> None:
    async def test() -> None:
        d = PodDialers(None, "shop", protocol="auto")  # type: ignore[arg-type]
        assert await d.connect("web-a", 8080) == "link to web-a:8080"
        await d.connect("web-b", 9090)
        await d.connect("web-a", 8080)
        await d.check("web-b", 9090)
        a, b = FakeDialer.made
        assert a.calls == [("connect", "web-a", 8080), ("connect", "web-a", 8080)]
        assert b.calls == [("connect", "web-b", 9090), ("check", "web-b", 9090)]
        d.connection_failed(dropped=True, pod="web-b")  # only that pod's path
        assert ("failed", True) in b.calls and ("failed", True) not in a.calls
        assert sorted(d.pods) == ["web-a", "web-b"]
    asyncio.run(test())


def test_a_pod_that_leaves_or_is_made_again_retires_and_is_closed_with_the_rest() -> None:
    async def test() -> None:
        d = PodDialers(None, "shop", protocol="auto")  # type: ignore[arg-type]
        for pod in ("web-a", "web-b", "db-0"):
            await d.connect(pod, 1)
        a, b, db = FakeDialer.made
        d.retain({"web-a": "uid-a", "db-0": "uid-db"})
        assert b.calls[-1] == "retired" and d.pods == ["web-a", "db-0"]
        d.retain({"web-a": "uid-a", "db-0": "uid-db-2"})  # db-0 deleted and made again under its name
        assert db.calls[-1] == "retired" and d.pods == ["web-a"]
        await d.connect("db-0", 1)  # a fresh Dialer for the new db-0
        assert len(FakeDialer.made) == 4 and "retired" not in a.calls
        b.alive = False  # its last connection ended: forgotten at the next retain
        d.retain({"web-a": "uid-a", "db-0": "uid-db-2"})
        d.close()
        assert [x.calls[-1] for x in FakeDialer.made] == ["closed", "retired", "closed", "closed"]
        d.pod_changed()  # after close: nothing left to retire
        assert d.pods == []
    asyncio.run(test())


def test_the_path_one_pod_found_is_where_the_next_pods_start() -> None:
    async def test() -> None:
        d = PodDialers(None, "shop", protocol="auto")  # type: ignore[arg-type]
        FakeDialer.learns = "v4"  # the first pod's tunnel was refused, v4 worked
        await d.connect("web-a", 1)
        FakeDialer.learns = ""
        await d.connect("web-b", 1)
        assert [x.protocol for x in FakeDialer.made] == ["v4", "v4"] and d.protocol == "v4"
    asyncio.run(test())
