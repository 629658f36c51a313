"""Namespace groups on a running engine (issue 14): ``/v1/groups``, ``tender forward --all-services``
joining the engine (Ctrl-C stops the group, ``--detach`` leaves it, ``tender stop`` stops it), and a
namespace profile stopped before it has members.

Three pods run agnhost netexec on distinct ports, one Service each; every member must answer with
its pod's name on its Service's own 127.A.B.C and port, and stopping the group must close them all.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clusterlib import Cluster
from tests.integration.engine import pod_manifest, port_refuses, wait_for
from tests.integration.test_all_services import answers, service
from tests.integration.test_cli_engine import User
from tray.domain.addresses import auto_address

pytestmark = pytest.mark.cluster

SERVICES = 3  # q1..q3: netexec on 9201..9203, Services on 7201..7203


@pytest.fixture(scope="module")
def group_ns(cluster: Cluster) -> Iterator[str]:
    ns = cluster.new_namespace("grp")
    for i in range(1, SERVICES + 1):
        cluster.apply(pod_manifest(f"q{i}", args=f"netexec --http-port={9200 + i}", port=9200 + i,
                                   labels={"app": f"p{i}"}), ns)
    for i in range(1, SERVICES + 1):
        text = service(f"q{i}", i, 7200 + i, {"tier": "web"})
        cluster.apply(text.replace(f"targetPort: {9000 + i}", f"targetPort: {9200 + i}"), ns)
    for i in range(1, SERVICES + 1):
        cluster.wait_ready(ns, f"app=p{i}", 1)
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture
def engine(cluster: Cluster, tmp_path: Path) -> Iterator[User]:
    with User(cluster, tmp_path) as u:
        u.start()
        yield u


def all_answer(ctx: str, ns: str) -> None:
    for i in range(1, SERVICES + 1):
        answers(auto_address(ctx, ns, f"q{i}"), 7200 + i, f"q{i}")


def all_refuse(ctx: str, ns: str) -> None:
    for i in range(1, SERVICES + 1):
        assert port_refuses(7200 + i, auto_address(ctx, ns, f"q{i}"))


def groups(engine: User) -> list[dict[str, Any]]:
    answer = engine.api("GET", "/v1/groups")
    assert answer.status_code == 200, answer.text
    return answer.json()["groups"]


def test_the_api_starts_lists_and_stops_a_group(cluster: Cluster, group_ns: str, engine: User) -> None:
    ctx, ns = cluster.context, group_ns
    answer = engine.api("POST", "/v1/groups", {"context": ctx, "namespace": ns, "selector": "tier=web"})
    assert answer.status_code == 201, answer.text
    group = answer.json()
    gid = group["id"]
    assert (group["context"], group["namespace"], group["selector"], group["balance"], group["profile"]) == (
        ctx, ns, "tier=web", "auto", None)
    all_answer(ctx, ns)
    group = engine.api("GET", f"/v1/groups/{gid}").json()
    assert (group["status"], group["reason"], len(group["members"])) == ("active", "", SERVICES)
    forwards = engine.api("GET", "/v1/forwards").json()["forwards"]
    assert sorted((f["target"], f["address"], f["local_port"], f["group"]) for f in forwards) == [
        (f"svc/q{i}", auto_address(ctx, ns, f"q{i}"), 7200 + i, gid) for i in range(1, SERVICES + 1)]
    assert sorted(group["members"]) == sorted(f["session_id"] for f in forwards)
    assert groups(engine) == [group]

    # The event stream says which groups run, after its first list.
    with engine.client(timeout=httpx.Timeout(10, read=10)) as c, c.stream("GET", "/v1/events") as stream:
        lines = stream.iter_lines()
        first, second = json.loads(next(lines)), json.loads(next(lines))
    assert first["event"] == "list" and len(first["forwards"]) == SERVICES
    assert second["event"] == "groups" and [g["id"] for g in second["groups"]] == [gid]

    stopped = engine.api("DELETE", f"/v1/groups/{gid}")
    assert stopped.status_code == 200, stopped.text
    assert stopped.json() == {"stopped": [gid], "members": group["members"]}
    assert engine.api("GET", "/v1/forwards").json()["forwards"] == [] and groups(engine) == []
    all_refuse(ctx, ns)
    for method in ("GET", "DELETE"):
        gone = engine.api(method, f"/v1/groups/{gid}")
        assert (gone.status_code, gone.json()) == (404, {"error": f"no group with id {gid}", "field": "id"})


@pytest.mark.parametrize("body, field, words", [
    ({"namespace": "x", "selector": "tier in (web"}, "selector", "selector: unbalanced parentheses"),
    ({"context": "nope", "namespace": "x"}, "context", 'context "nope" not found'),
    ({"selector": "tier=web"}, "namespace", "namespace is required"),
    ({"namespace": "x", "balance": "random"}, "balance", "unknown balance"),
])
def test_the_api_names_a_bad_field(engine: User, body: dict[str, Any], field: str, words: str) -> None:
    answer = engine.api("POST", "/v1/groups", body)
    assert answer.status_code == 400 and answer.json()["field"] == field, answer.text
    assert words in answer.json()["error"]
    assert groups(engine) == []


def test_a_namespace_profile_stops_before_it_has_members(cluster: Cluster, namespace: str, engine: User) -> None:
    # An empty namespace: the group follows it, with no member forward to stop by id.
    engine.profiles.write_text(f"version: 1\nprofiles:\n  - name: empty\n    context: {cluster.context}\n"
                               f"    target: namespace/{namespace}\n")
    started = engine.api("POST", "/v1/profiles/start", {"names": ["empty"]})
    assert started.status_code == 200 and started.json() == {"started": [], "failed": []}, started.text
    [group] = wait_for(lambda: [g for g in groups(engine) if g["status"] == "active"] or None, 20,
                       "the profile's group to list the namespace")
    assert (group["profile"], group["members"], group["reason"]) == ("empty", [], "no Services to forward")
    stopped = engine.api("POST", "/v1/profiles/stop", {"names": ["empty"]})
    assert stopped.status_code == 200 and stopped.json() == {"stopped": [group["id"]]}, stopped.text
    assert groups(engine) == []


def test_all_services_joins_the_engine_until_ctrl_c(cluster: Cluster, group_ns: str, engine: User) -> None:
    ctx, ns = cluster.context, group_ns
    t = engine.popen("forward", "--all-services", "--context", ctx, "-n", ns, "-l", "tier=web")
    try:
        seen = set()
        while len(seen) < SERVICES:
            m = t.line_matching(rf"^{ctx}: Forwarding from (127\.[\d.]+):(\d+) -> (\d+) \(svc/(q\d) in {ns}, ", 40)
            seen.add(m.group(4))
            i = int(m.group(4)[1:])
            assert (m.group(1), int(m.group(2)), int(m.group(3))) == (auto_address(ctx, ns, f"q{i}"), 7200 + i,
                                                                      9200 + i)
        all_answer(ctx, ns)
        [group] = groups(engine)  # in the engine, not in this process
        ls = engine.ls()
        assert sorted(f["target"] for f in ls) == [f"svc/q{i}" for i in range(1, SERVICES + 1)]
        assert {f["group"] for f in ls} == {group["id"]}
        t.proc.send_signal(signal.SIGINT)
        code, _, err = t.wait()
        assert (code, err) == (0, ""), err
        assert engine.ls() == [] and groups(engine) == []
        all_refuse(ctx, ns)
    finally:
        t.kill()

    # Killed, it leaves nothing in the engine either (the engine stops what its stream owned).
    t = engine.popen("forward", "--all-services", "--context", ctx, "-n", ns)
    try:
        t.line_matching(r"Forwarding from 127\.", 40)
        t.proc.kill()
        t.proc.wait(10)
        wait_for(lambda: groups(engine) == [] and engine.ls() == [], 10, "the engine to stop the killed client's group")
    finally:
        t.kill()


def test_all_services_detach_then_tender_stop(cluster: Cluster, group_ns: str, engine: User) -> None:
    ctx, ns = cluster.context, group_ns
    out = engine.ok("forward", "--all-services", "--context", ctx, "-n", ns, "--detach")
    m = re.search(r"^Running in the engine \(see 'tender ls'\); stop with: tender stop ([0-9a-f]{8})$", out, re.M)
    assert m, out
    for i in range(1, SERVICES + 1):
        assert f"Forwarding from {auto_address(ctx, ns, f'q{i}')}:{7200 + i} -> {9200 + i} (svc/q{i} in {ns}" in out
    [group] = groups(engine)
    assert group["id"].startswith(m.group(1)) and len(group["members"]) == SERVICES
    all_answer(ctx, ns)
    stopped = engine.ok("stop", m.group(1))
    assert stopped == f"group {m.group(1)} (every Service of {ctx}/{ns}, {SERVICES} forwards) stopped\n"
    assert engine.ls() == [] and groups(engine) == []
    all_refuse(ctx, ns)

    # By its namespace's name too.
    engine.ok("forward", "--all-services", "--context", ctx, "-n", ns, "--detach")
    assert len(groups(engine)) == 1
    assert engine.ok("stop", ns).endswith(f"(every Service of {ctx}/{ns}, {SERVICES} forwards) stopped\n")
    assert engine.ls() == [] and groups(engine) == []

    # And with --all, which would otherwise leave the group to start new Services' forwards.
    engine.ok("forward", "--all-services", "--context", ctx, "-n", ns, "--detach")
    engine.ok("stop", "--all")
    assert engine.ls() == [] and groups(engine) == []
