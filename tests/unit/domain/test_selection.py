"""Tests for tray.domain.selection, on plain API-shaped dict fixtures."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray.errors import TargetError
from tray.domain.selection import (
    choose_pod,
    container_port_for_pod,
    container_port_for_service,
    declared_ports,
    find_service_port,
    is_pod_ready,
    is_pod_terminating,
    is_pod_usable,
    label_selector_string,
    matches,
    rank_pods,
    selector_from_service,
    selector_from_workload,
    service_port_number,
    why_no_pod,
)

# -- fixture builders ---------------------------------------------------------


def pod(
    name: str,
    *,
    phase: str | None = "Running",
    ready: bool | None = True,
    ready_since: str | None = "2024-01-01T00:00:00Z",
    restarts: int | list[int] = 0,
    created: str | None = "2023-12-31T00:00:00Z",
    node: str | None = "node-1",
    deleting: bool = False,
    labels: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    container_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    status_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod dict shaped like the API's (empty fields omitted)."""
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if labels is not None:
        meta["labels"] = labels
    if created is not None:
        meta["creationTimestamp"] = created
    if deleting:
        meta["deletionTimestamp"] = "2024-01-02T00:00:00Z"
    spec: dict[str, Any] = {"containers": containers or [{"name": "app", "image": "x"}]}
    if init_containers is not None:
        spec["initContainers"] = init_containers
    if node:
        spec["nodeName"] = node
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    conds = list(conditions or [])
    if ready is not None:
        cond: dict[str, Any] = {"type": "Ready", "status": "True" if ready else "False"}
        if ready and ready_since is not None:
            cond["lastTransitionTime"] = ready_since
        conds.append(cond)
    if conds:
        status["conditions"] = conds
    if container_statuses is not None:
        status["containerStatuses"] = container_statuses
    else:
        counts = restarts if isinstance(restarts, list) else [restarts]
        status["containerStatuses"] = [
            {"name": f"c{i}", "ready": bool(ready), "restartCount": n} for i, n in enumerate(counts)
        ]
    status.update(status_extra or {})
    return {"metadata": meta, "spec": spec, "status": status}


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def service(
    name: str = "web",
    ports: list[dict[str, Any]] | None = None,
    *,
    selector: dict[str, str] | None = None,
    cluster_ip: str = "10.0.0.1",
    kind: bool = True,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"clusterIP": cluster_ip, "type": "ClusterIP"}
    if ports is not None:
        spec["ports"] = ports
    if selector is not None:
        spec["selector"] = selector
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": "default"}, "spec": spec}
    if kind:
        obj = {"kind": "Service", "apiVersion": "v1", **obj}
    return obj


def deployment(selector: Any, name: str = "web") -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": selector,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
                        },
                    ]
                },
            },
        },
    }


# -- selectors ----------------------------------------------------------------


def test_selector_from_workload_match_labels() -> None:
    sel = selector_from_workload(deployment({"matchLabels": {"app": "web"}}))
    assert sel == {"matchLabels": {"app": "web"}, "matchExpressions": []}


def test_selector_from_workload_is_a_copy() -> None:
    dep = deployment({"matchLabels": {"app": "web"}})
    sel = selector_from_workload(dep)
    sel["matchLabels"]["app"] = "other"
    assert dep["spec"]["selector"]["matchLabels"] == {"app": "web"}


def test_selector_from_workload_expressions() -> None:
    raw = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "y", "operator": "Exists"},
            {"key": "x", "operator": "DoesNotExist", "values": []},
        ],
    }
    sel = selector_from_workload(deployment(raw))
    assert sel["matchExpressions"][0] == {"key": "tier", "operator": "In", "values": ["b", "a"]}
    assert sel["matchExpressions"][3] == {"key": "x", "operator": "DoesNotExist", "values": []}
    assert label_selector_string(sel) == "app=web,env notin (dev),tier in (a,b),!x,y"


@pytest.mark.parametrize(
    "selector", [None, {}, {"matchLabels": {}}, {"matchLabels": {}, "matchExpressions": []}]
)
def test_selector_from_workload_missing_or_empty(selector: Any) -> None:
    with pytest.raises(TargetError, match="deploy/web has no pod selector"):
        selector_from_workload(deployment(selector))


@pytest.mark.parametrize(
    "expr,message",
    [
        ({"key": "a", "operator": "Equals", "values": ["x"]}, "unknown operator 'Equals'"),
        ({"key": "a", "operator": "In", "values": []}, "'a' In has no values"),
        ({"key": "a", "operator": "NotIn"}, "'a' NotIn has no values"),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, "must not have values"),
        ({"operator": "Exists"}, "no key"),
        ({"key": "a", "operator": "In", "values": [1]}, "must be strings"),
    ],
)
def test_selector_from_workload_malformed(expr: dict[str, Any], message: str) -> None:
    with pytest.raises(TargetError, match=message):
        selector_from_workload(deployment({"matchExpressions": [expr]}))


def test_selector_from_workload_bad_match_labels() -> None:
    with pytest.raises(TargetError, match="matchLabels"):
        selector_from_workload(deployment({"matchLabels": {"a": 1}}))


def test_selector_from_workload_without_kind_uses_name() -> None:
    dep = deployment({"matchLabels": {}})
    del dep["kind"]
    with pytest.raises(TargetError, match=r"^web has no pod selector"):
        selector_from_workload(dep)


def test_selector_from_service() -> None:
    sel = selector_from_service(service(selector={"app": "web", "tier": "fe"}))
    assert sel == {"matchLabels": {"app": "web", "tier": "fe"}, "matchExpressions": []}
    assert label_selector_string(sel) == "app=web,tier=fe"


@pytest.mark.parametrize("selector", [None, {}])
def test_selector_from_service_missing(selector: Any) -> None:
    with pytest.raises(TargetError, match=r"service web has no selector.*kubectl cannot forward it either"):
        selector_from_service(service(selector=selector))


def test_label_selector_string_sorted_and_deterministic() -> None:
    a = {
        "matchLabels": {"z": "1", "a": "2"},
        "matchExpressions": [{"key": "m", "operator": "In", "values": ["y", "x", "x"]}],
    }
    assert label_selector_string(a) == "a=2,m in (x,y),z=1"
    b = {
        "matchExpressions": [{"key": "m", "operator": "In", "values": ["x", "y"]}],
        "matchLabels": {"a": "2", "z": "1"},
    }
    assert label_selector_string(b) == label_selector_string(a)


def test_label_selector_string_empty() -> None:
    assert label_selector_string({}) == ""


def test_label_selector_string_same_key_twice() -> None:
    sel = {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "app", "operator": "Exists"}]}
    assert label_selector_string(sel) == "app=web,app"


SEL = {
    "matchLabels": {"app": "web"},
    "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]},
        {"key": "env", "operator": "NotIn", "values": ["dev"]},
        {"key": "y", "operator": "Exists"},
        {"key": "x", "operator": "DoesNotExist"},
    ],
}


@pytest.mark.parametrize(
    "labels,ok",
    [
        ({"app": "web", "tier": "a", "y": ""}, True),
        ({"app": "web", "tier": "b", "y": "1", "env": "prod"}, True),
        ({"app": "web", "tier": "c", "y": "1"}, False),  # In
        ({"app": "web", "y": "1"}, False),  # In needs the key
        ({"app": "web", "tier": "a", "y": "1", "env": "dev"}, False),  # NotIn
        ({"app": "web", "tier": "a"}, False),  # Exists
        ({"app": "web", "tier": "a", "y": "1", "x": ""}, False),  # DoesNotExist
        ({"app": "api", "tier": "a", "y": "1"}, False),  # matchLabels
        ({"tier": "a", "y": "1"}, False),
        ({}, False),
    ],
)
def test_matches(labels: dict[str, str], ok: bool) -> None:
    assert matches(SEL, labels) is ok


def test_matches_none_labels_and_empty_selector() -> None:
    assert matches({}, None)
    assert matches({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, None)
    assert matches({"matchExpressions": [{"key": "x", "operator": "NotIn", "values": ["a"]}]}, {})
    assert not matches({"matchLabels": {"a": "b"}}, None)


label_values = st.sampled_from(["a", "b", "c"])
label_maps = st.dictionaries(st.sampled_from(["k1", "k2", "k3"]), label_values, max_size=3)
expressions = st.lists(
    st.one_of(
        st.builds(
            lambda k, op, vs: {"key": k, "operator": op, "values": vs},
            st.sampled_from(["k1", "k2", "k3"]),
            st.sampled_from(["In", "NotIn"]),
            st.lists(label_values, min_size=1, max_size=3),
        ),
        st.builds(
            lambda k, op: {"key": k, "operator": op},
            st.sampled_from(["k1", "k2", "k3"]),
            st.sampled_from(["Exists", "DoesNotExist"]),
        ),
    ),
    max_size=3,
)


def _parse_selector_string(text: str) -> list[tuple[str, str, set[str]]]:
    """A tiny reader of our own output, to check it says what the dict says."""
    out: list[tuple[str, str, set[str]]] = []
    if not text:
        return out
    # split on commas outside parentheses
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    parts.append(cur)
    for p in parts:
        if " notin (" in p:
            k, v = p.split(" notin (")
            out.append((k, "NotIn", set(v[:-1].split(","))))
        elif " in (" in p:
            k, v = p.split(" in (")
            out.append((k, "In", set(v[:-1].split(","))))
        elif "=" in p:
            k, v = p.split("=")
            out.append((k, "In", {v}))
        elif p.startswith("!"):
            out.append((p[1:], "DoesNotExist", set()))
        else:
            out.append((p, "Exists", set()))
    return out


@given(match_labels=label_maps, exprs=expressions, labels=label_maps)
def test_selector_string_agrees_with_matches(
    match_labels: dict[str, str], exprs: list[dict[str, Any]], labels: dict[str, str]
) -> None:
    sel = {"matchLabels": match_labels, "matchExpressions": exprs}
    reqs = _parse_selector_string(label_selector_string(sel))
    via_string = matches(
        {
            "matchExpressions": [
                {"key": k, "operator": op, **({"values": sorted(v)} if v else {})} for k, op, v in reqs
            ]
        },
        labels,
    )
    assert via_string == matches(sel, labels)


# -- pod state ------------------------------------------------------------------


def test_is_pod_ready() -> None:
    assert is_pod_ready(pod("a"))
    assert not is_pod_ready(pod("a", ready=False))
    assert not is_pod_ready(pod("a", ready=None))
    assert not is_pod_ready({})
    assert not is_pod_ready({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})
    assert not is_pod_ready({"status": {"conditions": [{"type": "ContainersReady", "status": "True"}]}})


def test_is_pod_usable() -> None:
    assert is_pod_usable(pod("a"))
    assert not is_pod_usable(pod("a", ready=False))
    assert not is_pod_usable(pod("a", phase="Pending", ready=False))
    assert not is_pod_usable(pod("a", phase="Succeeded"))  # even if Ready says True
    assert not is_pod_usable(pod("a", deleting=True))
    assert is_pod_terminating(pod("a", deleting=True))
    assert not is_pod_terminating(pod("a"))
    assert not is_pod_usable({})


# -- ranking ----------------------------------------------------------------------


def test_rank_ready_for_longer_first() -> None:
    pods = [
        pod("recent", ready_since="2024-01-03T00:00:00Z"),
        pod("oldest", ready_since="2024-01-01T00:00:00Z"),
        pod("middle", ready_since="2024-01-02T00:00:00Z"),
    ]
    assert names(rank_pods(pods)) == ["oldest", "middle", "recent"]


def test_rank_ready_time_beats_restarts_and_age() -> None:
    pods = [
        pod("fresh-ready", ready_since="2024-01-05T00:00:00Z", restarts=0, created="2020-01-01T00:00:00Z"),
        pod("long-ready", ready_since="2024-01-01T00:00:00Z", restarts=9, created="2024-01-01T00:00:00Z"),
    ]
    assert names(rank_pods(pods)) == ["long-ready", "fresh-ready"]


def test_rank_ready_without_time_is_last_among_ready() -> None:
    pods = [pod("no-time", ready_since=None), pod("timed", ready_since="2024-01-09T00:00:00Z")]
    assert names(rank_pods(pods)) == ["timed", "no-time"]


def test_rank_fewer_restarts_first() -> None:
    pods = [pod("many", restarts=[0, 7]), pod("none", restarts=[0, 0]), pod("few", restarts=[2, 1])]
    assert names(rank_pods(pods)) == ["none", "few", "many"]


def test_rank_older_first_then_missing_creation() -> None:
    pods = [
        pod("new", created="2024-02-01T00:00:00Z"),
        pod("unknown", created=None),
        pod("old", created="2023-01-01T00:00:00Z"),
    ]
    assert names(rank_pods(pods)) == ["old", "new", "unknown"]


def test_rank_timestamps_compared_as_times_not_strings() -> None:
    pods = [
        pod("later", created="2024-01-01T01:00:00Z"),
        pod("earlier", created="2024-01-01T01:30:00+02:00"),  # 23:30 UTC the day before
        pod("fraction", created="2024-01-01T00:59:59.5Z"),
    ]
    assert names(rank_pods(pods)) == ["earlier", "fraction", "later"]


def test_rank_unparsable_timestamp_counts_as_missing() -> None:
    pods = [pod("garbage", created="yesterday"), pod("ok", created="2024-01-01T00:00:00Z")]
    assert names(rank_pods(pods)) == ["ok", "garbage"]


def test_rank_ready_before_not_ready() -> None:
    pods = [pod("not-ready", ready=False, created="2000-01-01T00:00:00Z"), pod("ready")]
    assert names(rank_pods(pods)) == ["ready", "not-ready"]


def test_rank_phase_order() -> None:
    pods = [
        pod("pending", phase="Pending", ready=False),
        pod("failed", phase="Failed", ready=False),
        pod("unknown", phase="Unknown", ready=False),
        pod("running", phase="Running", ready=False),
        pod("nophase", phase=None, ready=False),
    ]
    ranked = names(rank_pods(pods))
    assert ranked[:2] == ["running", "unknown"]
    assert set(ranked[2:]) == {"pending", "failed", "nophase"}
    # ties broken by name
    assert ranked[2:] == sorted(ranked[2:])


def test_rank_assigned_before_unassigned() -> None:
    pods = [pod("unassigned", node=None), pod("assigned", node="n1", ready=False, phase="Pending")]
    assert names(rank_pods(pods)) == ["assigned", "unassigned"]


def test_rank_terminating_last() -> None:
    pods = [
        pod("deleting", deleting=True, ready_since="2020-01-01T00:00:00Z"),
        pod("pending", phase="Pending", ready=False, node=None),
    ]
    assert names(rank_pods(pods)) == ["pending", "deleting"]


def test_rank_name_tiebreak_and_stable_under_shuffle() -> None:
    pods = [pod(n) for n in ["c", "a", "b", "e", "d"]]
    expected = ["a", "b", "c", "d", "e"]
    rng = random.Random(42)
    for _ in range(20):
        rng.shuffle(pods)
        assert names(rank_pods(pods)) == expected


def test_rank_does_not_mutate_input() -> None:
    pods = [pod("b"), pod("a")]
    ranked = rank_pods(pods)
    assert names(pods) == ["b", "a"]
    assert ranked is not pods


def test_rank_tolerates_sparse_pods() -> None:
    pods: list[dict[str, Any]] = [{}, {"metadata": {"name": "x"}}, {"status": None, "spec": []}, pod("good")]
    assert names(rank_pods(pods)[:1]) == ["good"]
    assert choose_pod(pods)["metadata"]["name"] == "good"  # type: ignore[index]


# -- choose_pod ---------------------------------------------------------------------


def test_choose_pod_best_usable() -> None:
    pods = [
        pod("restarted", restarts=3),
        pod("steady", restarts=0),
        pod("not-ready", ready=False),
    ]
    assert choose_pod(pods)["metadata"]["name"] == "steady"  # type: ignore[index]


def test_choose_pod_excludes_deleting_even_if_best_ranked_by_kubectl() -> None:
    pods = [
        pod("deleting", deleting=True, ready_since="2020-01-01T00:00:00Z"),
        pod("fresh", ready_since="2024-06-01T00:00:00Z"),
    ]
    assert choose_pod(pods)["metadata"]["name"] == "fresh"  # type: ignore[index]


def test_choose_pod_excludes_not_running() -> None:
    # Ready=True but phase Succeeded: not usable.
    pods = [pod("done", phase="Succeeded"), pod("pending", phase="Pending", ready=False)]
    assert choose_pod(pods) is None


def test_choose_pod_exclude_names() -> None:
    pods = [pod("a", ready_since="2024-01-01T00:00:00Z"), pod("b", ready_since="2024-01-02T00:00:00Z")]
    assert choose_pod(pods)["metadata"]["name"] == "a"  # type: ignore[index]
    assert choose_pod(pods, exclude={"a"})["metadata"]["name"] == "b"  # type: ignore[index]
    assert choose_pod(pods, exclude={"a", "b"}) is None


def test_choose_pod_empty() -> None:
    assert choose_pod([]) is None


# -- why_no_pod ---------------------------------------------------------------------


def test_why_no_pods() -> None:
    assert why_no_pod([], "deploy/web") == "no pods match deploy/web"


def test_why_not_ready_lists_containers() -> None:
    p = pod(
        "web-1",
        ready=False,
        container_statuses=[
            {"name": "app", "ready": False, "restartCount": 0, "state": {"running": {}}},
            {"name": "proxy", "ready": True, "restartCount": 0},
        ],
    )
    assert why_no_pod([p], "deploy/web") == "pod web-1 is not ready (containers not ready: app)"


def test_why_not_ready_with_waiting_reason() -> None:
    p = pod(
        "web-1",
        ready=False,
        container_statuses=[
            {
                "name": "app",
                "ready": False,
                "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            }
        ],
    )
    assert (
        why_no_pod([p], "svc/web") == "pod web-1 is not ready (containers not ready: app (CrashLoopBackOff))"
    )


def test_why_not_ready_readiness_gate() -> None:
    p = pod(
        "web-1",
        ready=None,
        container_statuses=[{"name": "app", "ready": True, "restartCount": 0}],
        conditions=[
            {"type": "Ready", "status": "False", "reason": "ReadinessGatesNotReady", "message": "gate x"}
        ],
    )
    assert why_no_pod([p], "svc/web") == "pod web-1 is not ready (ReadinessGatesNotReady: gate x)"


def test_why_not_ready_no_detail() -> None:
    p = pod("web-1", ready=None, container_statuses=[])
    assert why_no_pod([p], "svc/web") == "pod web-1 is not ready"


def test_why_all_terminating() -> None:
    pods = [pod("a", deleting=True), pod("b", deleting=True)]
    assert why_no_pod(pods, "svc/web") == "all 2 pods of svc/web are terminating"
    assert why_no_pod(pods[:1], "svc/web") == "pod a of svc/web is terminating"


def test_why_pending() -> None:
    assert (
        why_no_pod([pod("x", phase="Pending", ready=False, container_statuses=[])], "pod/x")
        == "pod x is Pending"
    )


def test_why_pending_image_pull() -> None:
    p = pod(
        "x",
        phase="Pending",
        ready=False,
        container_statuses=[
            {"name": "app", "ready": False, "state": {"waiting": {"reason": "ImagePullBackOff"}}}
        ],
    )
    assert why_no_pod([p], "pod/x") == "pod x is Pending (app: ImagePullBackOff)"


def test_why_pending_unschedulable() -> None:
    p = pod(
        "x",
        phase="Pending",
        ready=False,
        node=None,
        container_statuses=[],
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu.",
            }
        ],
    )
    assert (
        why_no_pod([p], "pod/x")
        == "pod x is Pending (Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.)"
    )


def test_why_no_phase_is_pending() -> None:
    assert (
        why_no_pod([pod("x", phase=None, ready=None, container_statuses=[])], "pod/x") == "pod x is Pending"
    )


def test_why_failed_with_reason() -> None:
    p = pod("x", phase="Failed", ready=False, status_extra={"reason": "Evicted", "message": "low on memory"})
    assert why_no_pod([p], "pod/x") == "pod x is Failed (Evicted: low on memory)"


def test_why_long_message_truncated() -> None:
    p = pod("x", phase="Failed", ready=False, status_extra={"message": "m" * 1000})
    msg = why_no_pod([p], "pod/x")
    assert len(msg) < 260 and msg.endswith("...)")


def test_why_several_pods_explains_best() -> None:
    pods = [
        pod("a", phase="Pending", ready=False, container_statuses=[]),
        pod("b", ready=False, container_statuses=[{"name": "app", "ready": False}]),
        pod("c", deleting=True),
    ]
    assert (
        why_no_pod(pods, "deploy/web")
        == "pod b is not ready (containers not ready: app); none of the 3 pods of deploy/web is ready"
    )


def test_why_excluded() -> None:
    pods = [pod("a"), pod("b")]
    assert (
        why_no_pod(pods, "svc/web", exclude={"a", "b"})
        == "all 2 ready pods of svc/web were excluded after failures"
    )
    assert why_no_pod(pods[:1], "svc/web", exclude={"a"}) == (
        "the only ready pod of svc/web, a, was excluded after a failure"
    )


def test_why_when_a_pod_is_usable() -> None:
    assert why_no_pod([pod("a")], "svc/web") == "pod a of svc/web is ready"


# -- port translation: services --------------------------------------------------------------

WEB_POD = pod(
    "web-1",
    containers=[
        {
            "name": "app",
            "ports": [
                {"containerPort": 8080, "name": "http", "protocol": "TCP"},
                {"containerPort": 9090, "name": "metrics"},
                {"containerPort": 5353, "name": "dns-udp", "protocol": "UDP"},
            ],
        },
        {"name": "proxy", "ports": [{"containerPort": 15001, "name": "envoy"}]},
    ],
    init_containers=[
        {"name": "setup", "ports": [{"containerPort": 7000, "name": "setup"}]},
        {"name": "sidecar", "restartPolicy": "Always", "ports": [{"containerPort": 4317, "name": "otlp"}]},
    ],
)

WEB_SVC = service(
    "web",
    [
        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "named", "port": 81, "targetPort": "http"},
        {"name": "same", "port": 8443},
        {"name": "zero", "port": 8444, "targetPort": 0},
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
        {"name": "otel", "port": 4317, "targetPort": "otlp"},
        {"name": "missing", "port": 82, "targetPort": "nope"},
        {"name": "strnum", "port": 83, "targetPort": "8081"},
        {"name": "syslog", "port": 514, "protocol": "UDP"},
        {"name": "sctp", "port": 3868, "protocol": "SCTP"},
        {"name": "udpname", "port": 85, "targetPort": "dns-udp"},
    ],
    selector={"app": "web"},
)


@pytest.mark.parametrize(
    "port,expected",
    [
        (80, 8080),  # numeric targetPort
        ("http", 8080),  # by service port name
        (81, 8080),  # named targetPort resolved in the pod
        ("named", 8080),
        (8443, 8443),  # targetPort omitted: same as port
        (8444, 8444),  # targetPort 0 is "omitted" too
        (9090, 9090),
        (4317, 4317),  # named port of a sidecar init container
        (83, 8081),  # numeric string targetPort tolerated
        ("80", 8080),  # digit string is a number
    ],
)
def test_container_port_for_service(port: int | str, expected: int) -> None:
    assert container_port_for_service(WEB_SVC, WEB_POD, port) == expected


def test_container_port_for_service_headless_uses_target_port() -> None:
    headless = {**WEB_SVC, "spec": {**WEB_SVC["spec"], "clusterIP": "None"}}
    assert container_port_for_service(headless, WEB_POD, 80) == 8080
    assert container_port_for_service(headless, WEB_POD, "named") == 8080
    with pytest.raises(TargetError, match="has no port 1234"):
        container_port_for_service(headless, WEB_POD, 1234)


def test_container_port_for_service_unknown_port_lists_ports() -> None:
    svc = service("web", [{"name": "http", "port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP"}])
    with pytest.raises(TargetError) as info:
        container_port_for_service(svc, WEB_POD, 8080)
    assert str(info.value) == "svc/web has no port 8080; its ports are 80/TCP (http), 53/UDP"
    with pytest.raises(TargetError, match='svc/web has no port "grpc"; its ports are 80/TCP'):
        container_port_for_service(svc, WEB_POD, "grpc")


def test_container_port_for_service_no_ports() -> None:
    with pytest.raises(TargetError, match="svc/empty declares no ports"):
        container_port_for_service(service("empty", None), WEB_POD, 80)


def test_container_port_for_service_udp() -> None:
    dns = service("dns", [{"name": "dns", "port": 53, "protocol": "UDP"}])
    with pytest.raises(TargetError) as info:
        container_port_for_service(dns, WEB_POD, 53)
    assert str(info.value) == "port 53 of svc/dns is UDP; only TCP can be port-forwarded (add /udp to forward it through a relay pod)"
    with pytest.raises(TargetError, match=r'port "dns" \(53\) of svc/dns is UDP'):
        container_port_for_service(dns, WEB_POD, "dns")


def test_container_port_for_service_sctp() -> None:
    with pytest.raises(TargetError, match="port 3868 of svc/web is SCTP; only TCP"):
        container_port_for_service(WEB_SVC, WEB_POD, 3868)


def test_container_port_for_service_same_number_tcp_and_udp() -> None:
    dns = service(
        "dns",
        [
            {"name": "dns-udp", "port": 53, "protocol": "UDP", "targetPort": 5353},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5354},
        ],
    )
    assert container_port_for_service(dns, WEB_POD, 53) == 5354
    with pytest.raises(TargetError, match="UDP"):
        container_port_for_service(dns, WEB_POD, "dns-udp")
    assert container_port_for_service(dns, WEB_POD, "dns-tcp") == 5354


def test_container_port_for_service_named_target_missing_in_pod() -> None:
    with pytest.raises(TargetError) as info:
        container_port_for_service(WEB_SVC, WEB_POD, 82)
    msg = str(info.value)
    assert msg.startswith(
        'svc/web port 82 targets the named port "nope", but pod web-1 has no port named "nope"'
    )
    assert "8080/TCP (http)" in msg


def test_container_port_for_service_named_target_is_udp_in_pod() -> None:
    with pytest.raises(TargetError, match=r'port "dns-udp" \(5353\) of pod/web-1 is UDP'):
        container_port_for_service(WEB_SVC, WEB_POD, 85)


def test_container_port_for_service_named_target_pod_without_ports() -> None:
    bare = pod("bare")
    with pytest.raises(TargetError, match="it declares no named ports"):
        container_port_for_service(WEB_SVC, bare, 81)


def test_container_port_for_service_without_kind_field() -> None:
    svc = service("web", [{"port": 80, "targetPort": 8080}], kind=False)
    assert container_port_for_service(svc, WEB_POD, 80) == 8080


def test_service_port_number_and_find() -> None:
    assert service_port_number(WEB_SVC, "http") == 80
    assert service_port_number(WEB_SVC, "named") == 81
    assert service_port_number(WEB_SVC, 8443) == 8443
    assert find_service_port(WEB_SVC, "same")["port"] == 8443
    with pytest.raises(TargetError):
        service_port_number(WEB_SVC, "nope")


# -- port translation: pods --------------------------------------------------------------


@pytest.mark.parametrize(
    "port,expected",
    [
        (8080, 8080),
        (1234, 1234),  # undeclared numbers pass through
        ("http", 8080),
        ("metrics", 9090),  # protocol omitted = TCP
        ("envoy", 15001),  # second container
        ("otlp", 4317),  # sidecar init container
        ("setup", 7000),  # any init container, after containers
        ("8080", 8080),
    ],
)
def test_container_port_for_pod(port: int | str, expected: int) -> None:
    assert container_port_for_pod(WEB_POD, port) == expected


def test_container_port_for_pod_prefers_containers_over_init() -> None:
    p = pod(
        "p",
        containers=[{"name": "app", "ports": [{"containerPort": 1, "name": "x"}]}],
        init_containers=[{"name": "i", "ports": [{"containerPort": 2, "name": "x"}]}],
    )
    assert container_port_for_pod(p, "x") == 1


def test_container_port_for_pod_missing_name() -> None:
    with pytest.raises(TargetError) as info:
        container_port_for_pod(WEB_POD, "grpc")
    msg = str(info.value)
    assert msg.startswith('pod web-1 has no port named "grpc"; its named ports are 8080/TCP (http)')


def test_container_port_for_pod_udp_only() -> None:
    with pytest.raises(TargetError, match=r'port "dns-udp" \(5353\) of pod/web-1 is UDP; only TCP'):
        container_port_for_pod(WEB_POD, "dns-udp")
    with pytest.raises(TargetError, match="port 5353 of pod/web-1 is declared as UDP only"):
        container_port_for_pod(WEB_POD, 5353)


def test_container_port_for_pod_tcp_and_udp_same_number() -> None:
    p = pod(
        "dns",
        containers=[
            {
                "name": "dns",
                "ports": [
                    {"containerPort": 53, "name": "dns", "protocol": "UDP"},
                    {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                ],
            }
        ],
    )
    assert container_port_for_pod(p, 53) == 53
    assert container_port_for_pod(p, "dns-tcp") == 53


@pytest.mark.parametrize("port", [0, 70000, -5])
def test_container_port_for_pod_out_of_range(port: int) -> None:
    with pytest.raises(TargetError, match="out of range"):
        container_port_for_pod(WEB_POD, port)


def test_container_port_for_pod_empty_name() -> None:
    with pytest.raises(TargetError):
        container_port_for_pod(WEB_POD, "")


# -- declared_ports --------------------------------------------------------------------


def test_declared_ports_pod() -> None:
    assert declared_ports(WEB_POD) == [
        (8080, "http", "TCP"),
        (9090, "metrics", "TCP"),
        (5353, "dns-udp", "UDP"),
        (15001, "envoy", "TCP"),
        (7000, "setup", "TCP"),
        (4317, "otlp", "TCP"),
    ]


def test_declared_ports_workload() -> None:
    assert declared_ports(deployment({"matchLabels": {"app": "web"}})) == [(8080, "http", "TCP")]


def test_declared_ports_workload_without_kind() -> None:
    dep = deployment({"matchLabels": {"app": "web"}})
    del dep["kind"]
    assert declared_ports(dep) == [(8080, "http", "TCP")]


def test_declared_ports_service() -> None:
    svc = service("dns", [{"name": "dns", "port": 53, "protocol": "UDP"}, {"port": 53, "targetPort": 5353}])
    assert declared_ports(svc) == [(53, "dns", "UDP"), (53, None, "TCP")]
    svc_no_kind = service("dns", [{"port": 80}], kind=False)
    assert declared_ports(svc_no_kind) == [(80, None, "TCP")]


def test_declared_ports_dedupes_and_skips_junk() -> None:
    p = pod(
        "p",
        containers=[
            {"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 80}, {"containerPort": "x"}]},
            {"name": "b", "ports": [{"name": "noport"}, {"containerPort": 0}]},
        ],
    )
    assert declared_ports(p) == [(80, None, "TCP")]


def test_declared_ports_nothing() -> None:
    assert declared_ports({}) == []
    assert declared_ports(pod("p")) == []
    assert declared_ports(service("s", None)) == []


def test_a_job_is_finished_by_its_terminal_conditions() -> None:
    from tray.domain.selection import is_finished_job

    def job(*conditions: tuple[str, str]) -> dict:
        return {"spec": {"template": {}}, "status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}

    assert not is_finished_job(job())
    assert not is_finished_job(job(("Complete", "False"), ("Suspended", "True")))
    assert is_finished_job(job(("Complete", "True")))
    assert is_finished_job(job(("Failed", "True")))
    assert not is_finished_job({"status": {"conditions": "garbage"}})
