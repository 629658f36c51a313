"""Pod selectors of ReplicaSets, ReplicationControllers and Jobs (kubectl's SelectorsForObject)."""

from __future__ import annotations

from typing import Any

import pytest

from tray.errors import TargetError
from tray.domain.selection import choose_pod, label_selector_string, matches, selector_from_workload


def workload(kind: str | None, selector: Any, name: str = "web") -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name}, "spec": {"selector": selector}}
    if kind is not None:
        obj["kind"] = kind
    return obj


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }


@pytest.mark.parametrize("kind", ["ReplicationController", None])
def test_replication_controller_label_map(kind: str | None) -> None:
    # An RC's spec.selector is a plain map, read as labels.SelectorFromSet;
    # a list item (no kind) is recognised by its shape.
    sel = selector_from_workload(workload(kind, {"app": "web", "tier": "front"}))
    assert sel == {"matchLabels": {"app": "web", "tier": "front"}, "matchExpressions": []}
    assert label_selector_string(sel) == "app=web,tier=front"
    assert matches(sel, {"app": "web", "tier": "front", "x": "y"})
    assert not matches(sel, {"app": "web"})


def test_replication_controller_label_named_like_a_selector_key() -> None:
    # "matchLabels" is a valid label key; with a string value it is a label.
    sel = selector_from_workload(workload(None, {"matchLabels": "x"}))
    assert sel["matchLabels"] == {"matchLabels": "x"}


@pytest.mark.parametrize("kind", ["ReplicaSet", "Job", None])
def test_replica_set_and_job_label_selector(kind: str | None) -> None:
    raw = {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"},
           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}
    sel = selector_from_workload(workload(kind, raw))
    assert sel == {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"},
                   "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}


@pytest.mark.parametrize("kind, shown", [("ReplicationController", "rc/web"), ("Job", "job/web"),
                                         ("ReplicaSet", "rs/web")])
@pytest.mark.parametrize("selector", [None, {}])
def test_empty_selector_is_refused_naming_the_object(kind: str, shown: str, selector: Any) -> None:
    with pytest.raises(TargetError, match=f"^{shown} has no pod selector"):
        selector_from_workload(workload(kind, selector))


def test_replication_controller_bad_values() -> None:
    with pytest.raises(TargetError, match="rc/web.*matchLabels must map strings to strings"):
        selector_from_workload(workload("ReplicationController", {"app": 1}))


def test_chooses_among_the_rc_pods_only() -> None:
    sel = selector_from_workload(workload("ReplicationController", {"app": "web"}))
    pods = [pod("other-1", {"app": "other"}), pod("web-1", {"app": "web"})]
    chosen = choose_pod([p for p in pods if matches(sel, p["metadata"]["labels"])])
    assert chosen is not None and chosen["metadata"]["name"] == "web-1"
