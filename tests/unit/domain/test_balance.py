"""The balance modes and the rotation choice (tray.domain.balance, tray.domain.selection), on plain data."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tray.domain import selection
from tray.domain.balance import balance_problem, effective_balance
from tray.errors import UsageError


def pod(name: str, *, ready: bool = True, terminating: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if terminating:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "n"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}}


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


@pytest.mark.parametrize("kind, given, used", [
    ("Service", "auto", "round-robin"), ("Service", "pin", "pin"), ("Service", "sticky", "sticky"),
    ("Service", "round-robin", "round-robin"), ("Deployment", "auto", "pin"), ("Pod", "auto", "pin"),
    ("StatefulSet", "pin", "pin"),
])
def test_the_mode_a_forward_uses(kind: str, given: str, used: str) -> None:
    assert effective_balance(kind, given) == used


@pytest.mark.parametrize("kind, given, words", [
    ("Deployment", "round-robin", "needs a Service target"),
    ("Pod", "sticky", "needs a Service target"),
    ("Service", "random", "unknown balance 'random': expected round-robin, pin, sticky"),
])
def test_a_mode_the_target_cannot_use_is_a_usage_error(kind: str, given: str, words: str) -> None:
    assert words in balance_problem(kind, given)
    with pytest.raises(UsageError) as err:
        effective_balance(kind, given)
    assert err.value.field == "balance" and words in str(err.value)


def test_the_rotation_is_the_usable_pods_by_name() -> None:
    pods = [pod("web-c"), pod("web-a"), pod("web-d", ready=False), pod("web-e", terminating=True), pod("web-b")]
    assert names(selection.rotation(pods)) == ["web-a", "web-b", "web-c"]
    assert names(selection.rotation(pods, exclude={"web-b"})) == ["web-a", "web-c"]
    assert selection.rotation([pod("x", ready=False)]) == []


def test_round_robin_reaches_each_pod_in_turn() -> None:
    pods = selection.rotation([pod("web-a"), pod("web-b"), pod("web-c")])
    counts = Counter(selection.round_robin_pod(pods, turn)["metadata"]["name"] for turn in range(300))  # type: ignore[index]
    assert counts == {"web-a": 100, "web-b": 100, "web-c": 100}
    assert names([selection.round_robin_pod(pods, t) for t in range(4)]) == ["web-a", "web-b", "web-c", "web-a"]  # type: ignore[misc]
    assert selection.round_robin_pod([], 7) is None


def test_sticky_keeps_a_client_on_its_pod_while_the_pod_stays() -> None:
    three = selection.rotation([pod("web-a"), pod("web-b"), pod("web-c")])
    clients = [f"10.0.0.{i}" for i in range(60)]
    first = {c: selection.sticky_pod(three, c)["metadata"]["name"] for c in clients}  # type: ignore[index]
    assert first == {c: selection.sticky_pod(three, c)["metadata"]["name"] for c in clients}  # type: ignore[index]
    assert len(set(first.values())) == 3  # clients spread over the pods
    # web-b leaves: only its clients move; the others stay where they were.
    two = [p for p in three if p["metadata"]["name"] != "web-b"]
    for c in clients:
        now = selection.sticky_pod(two, c)["metadata"]["name"]  # type: ignore[index]
        assert now == first[c] or first[c] == "web-b"
    assert selection.sticky_pod([], "127.0.0.1") is None
