"""A Service forward spreads its connections (``balance``), on plain data, in milliseconds.

A real :class:`~tray.engine.session.Session` on the fakes of
:mod:`tests.unit.engine.session_fakes`; each local connection is answered
``<pod>:hello`` by the pod it reached.  The same on a real cluster is
tests/integration/test_balance.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from tray.domain.status import Status
from tray.domain.targets import Target
from tray.engine import session as session_module
from tray.errors import UsageError

from .session_fakes import FakeDialer, Forward, pod, run, service

SVC = Target("Service", "web")


async def svc_forward(*pods: dict[str, Any], balance: str = "auto", dialer: FakeDialer | None = None,
                      target_port: int | str = "http") -> Forward:
    """svc/web port 80 with these pods, started and active."""
    fwd = Forward(SVC, 80, dialer=dialer, balance=balance)
    fwd.caches["services"].objects["web"] = service(target_port=target_port)
    for p in pods:
        fwd.pods.objects[p["metadata"]["name"]] = p
    fwd.session.start()
    await fwd.status(Status.ACTIVE)
    return fwd


async def answers(fwd: Forward, n: int) -> Counter[str]:
    """The pods that answered ``n`` new connections, counted ("" for a connection that got no answer)."""
    return Counter([(await fwd.request()).split(":")[0] for _ in range(n)])


THREE = (pod("web-a"), pod("web-b"), pod("web-c"))


def test_round_robin_is_the_default_for_a_service_and_reaches_each_pod_in_turn() -> None:
    async def test() -> None:
        fwd = await svc_forward(*THREE)
        info = fwd.info
        assert info.balance == "round-robin" and info.pods == ("web-a", "web-b", "web-c")
        assert list(info.to_dict()["pods"]) == ["web-a", "web-b", "web-c"]
        assert await answers(fwd, 30) == {"web-a": 10, "web-b": 10, "web-c": 10}
        await fwd.stop()
    run(test)


@pytest.mark.parametrize("balance", ["pin", "sticky"])
def test_pin_and_sticky_from_one_client_reach_one_pod(balance: str) -> None:
    async def test() -> None:
        fwd = await svc_forward(*THREE, balance=balance)
        counts = await answers(fwd, 12)
        assert len(counts) == 1 and sum(counts.values()) == 12, counts
        assert fwd.info.balance == balance
        if balance == "pin":
            assert counts == {fwd.info.pod_name: 12} and fwd.info.pods == (fwd.info.pod_name,)
        await fwd.stop()
    run(test)


def test_a_workload_target_cannot_spread() -> None:
    with pytest.raises(UsageError) as err:
        Forward(Target("Deployment", "web"), 8080, balance="round-robin")
    assert err.value.field == "balance"
    assert Forward(Target("Deployment", "web"), 8080).session.balance == "pin"


def test_the_container_port_is_translated_per_pod() -> None:
    """A named targetPort: each pod's own number."""
    async def test() -> None:
        fwd = await svc_forward(pod("web-a", ports=((8080, "http"),)), pod("web-b", ports=((9090, "http"),)))
        await answers(fwd, 4)
        assert sorted(set(fwd.dialer.dials)) == [("web-a", 8080), ("web-b", 9090)]
        await fwd.stop()
    run(test)


def test_a_pod_that_goes_away_leaves_the_rotation_and_the_forward_stays_active() -> None:
    async def test() -> None:
        fwd = await svc_forward(*THREE)
        statuses: list[str] = []
        fwd.session._on_change = lambda s, changed: statuses.append(s.status)  # type: ignore[method-assign]
        fwd.pods.put(pod("web-b", terminating=True))
        info = await fwd.until(lambda i: i.pods == ("web-a", "web-c"), "web-b out of the rotation")
        assert info.status == Status.ACTIVE
        assert "web-b" not in fwd.dialer.retained[-1]  # its path takes no new connection
        assert [line.message for line in fwd.session.log.lines() if "rotation" in line.message] == [
            "pods in rotation: web-a, web-b, web-c", "pods in rotation: web-a, web-c"]
        assert await answers(fwd, 10) == {"web-a": 5, "web-c": 5}
        fwd.pods.delete("web-a")  # the pod in use too: another one takes its place
        info = await fwd.until(lambda i: i.pods == ("web-c",) and i.pod_name == "web-c", "only web-c")
        assert await answers(fwd, 3) == {"web-c": 3}
        assert set(statuses) == {Status.ACTIVE}
        fwd.pods.delete("web-c")  # none left: reconnecting, as a pinned forward
        await fwd.status(Status.RECONNECTING)
        fwd.pods.put(pod("web-d"))
        info = await fwd.status(Status.ACTIVE)
        assert info.pods == ("web-d",) and await answers(fwd, 2) == {"web-d": 2}
        await fwd.stop()
    run(test)


def test_a_pod_that_cannot_be_dialled_is_skipped_without_failing_a_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def test() -> None:
        fwd = await svc_forward(*THREE, dialer=FakeDialer(unreachable={"web-b"}))
        counts = await answers(fwd, 12)
        assert "" not in counts and "web-b" not in counts and sum(counts.values()) == 12, counts
        assert fwd.info.status == Status.ACTIVE and fwd.info.last_connection_error == ""
        assert fwd.dialer.dials.count(("web-b", 8080)) == 1  # then left out for a while
        await fwd.stop()
    run(test)


def test_a_skipped_pod_comes_back_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session_module, "AVOID_FOR", 0.05)

    async def test() -> None:
        fwd = await svc_forward(*THREE, dialer=FakeDialer(unreachable={"web-b"}))
        await answers(fwd, 3)
        fwd.dialer.unreachable.clear()
        await asyncio.sleep(0.06)
        assert "web-b" in await answers(fwd, 6)
        await fwd.stop()
    run(test)
