"""ClusterConn.may_forward: one SelfSubjectAccessReview per namespace, shared by forwards starting together.

200 profiles starting at once used to send 200 reviews (one per forward)
before any answer came back; the API server answered each, and the first
forward waited behind them all.  No cluster: the API is a stand-in that
counts the reviews it is asked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tray.errors import ClusterUnreachable
from tray.kube.conn import ClusterConn
from tray.kube.kubeconfig import ClusterInfo


class _Api:
    def __init__(self, allowed: bool = True, fail: bool = False) -> None:
        self.allowed, self.fail, self.asked = allowed, fail, []

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(body["spec"]["resourceAttributes"]["namespace"])
        await asyncio.sleep(0.05)
        if self.fail:
            raise ClusterUnreachable("cluster unreachable: connection refused")
        return {"status": {"allowed": self.allowed}}


def _conn(api: _Api) -> ClusterConn:
    conn = ClusterConn(ClusterInfo(id="c", cluster_name="k", user="u", namespace="default"), "/nonexistent")
    conn.api = api  # type: ignore[assignment]
    return conn


def test_forwards_starting_together_share_one_review_per_namespace() -> None:
    async def main() -> None:
        api = _Api()
        conn = _conn(api)
        answers = await asyncio.gather(*(conn.may_forward(ns) for ns in ["a", "b"] * 100))
        assert answers == [True] * 200
        assert sorted(api.asked) == ["a", "b"]
        assert await conn.may_forward("a") is True and sorted(api.asked) == ["a", "b"]  # kept
    asyncio.run(main())


def test_a_denial_reaches_every_waiter_and_is_asked_again_later() -> None:
    async def main() -> None:
        api = _Api(allowed=False)
        conn = _conn(api)
        assert await asyncio.gather(*(conn.may_forward("a") for _ in range(20))) == [False] * 20
        assert api.asked == ["a"]
        api.allowed = True  # RBAC granted: the next start asks again
        assert await conn.may_forward("a") is True
        assert api.asked == ["a", "a"]
    asyncio.run(main())


def test_a_question_that_cannot_be_asked_lets_every_waiter_go_on_and_is_not_kept() -> None:
    async def main() -> None:
        api = _Api(fail=True)
        conn = _conn(api)
        assert await asyncio.gather(*(conn.may_forward("a") for _ in range(20))) == [True] * 20
        assert api.asked == ["a"]
        await conn.may_forward("a")
        assert api.asked == ["a", "a"]
    asyncio.run(main())


def test_one_waiter_cancelled_does_not_cancel_the_others() -> None:
    async def main() -> None:
        api = _Api()
        conn = _conn(api)
        first = asyncio.ensure_future(conn.may_forward("a"))
        second = asyncio.ensure_future(conn.may_forward("a"))
        await asyncio.sleep(0.01)
        first.cancel()
        assert await second is True
        assert api.asked == ["a"]
    asyncio.run(main())
