"""Which Services and ports of a namespace make member forwards, and what a change starts and stops."""

from __future__ import annotations

import pytest

from tray.domain.addresses import auto_address
from tray.domain.selection import matches
from tray.domain.servicegroup import Member, diff, parse_label_selector, plan, privileged_hint
from tray.errors import UsageError

EVERYTHING = parse_label_selector("")


def svc(name, ports=(("http", 80, "TCP"),), *, labels=None, type_="ClusterIP", selector=None, cluster_ip="10.0.0.1"):
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"type": type_, "clusterIP": cluster_ip, "selector": {"app": name} if selector is None else selector,
                     "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]}}


def test_every_tcp_port_of_every_service_is_a_member_on_the_services_own_address():
    members, skipped = plan([svc("web", [("http", 80, "TCP"), ("metrics", 9090, "TCP")]),
                             svc("db", [("pg", 5432, "TCP")])],
                            context="c", namespace="shop", selector=EVERYTHING)
    assert [(m.service, m.port, m.port_name) for m in members] == [
        ("db", 5432, "pg"), ("web", 80, "http"), ("web", 9090, "metrics")]
    assert {m.address for m in members if m.service == "web"} == {auto_address("c", "shop", "web")}
    assert members[0].address == auto_address("c", "shop", "db") != members[1].address
    assert skipped == []


def test_what_cannot_be_forwarded_is_skipped_with_a_reason():
    members, skipped = plan([
        svc("alias", [], type_="ExternalName"),
        svc("dns-only", [], cluster_ip="None"),
        svc("manual", selector={}),
        svc("dns", [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("x", 8125, "UDP")]),
        svc("headless-db", [("pg", 5432, None)], cluster_ip="None"),
    ], context="c", namespace="n", selector=EVERYTHING)
    assert [(m.service, m.port) for m in members] == [("dns", 53), ("headless-db", 5432)]
    text = [str(s) for s in skipped]
    assert text == [
        "svc/alias: skipped (an ExternalName Service has no pods)",
        "svc/dns port 53: skipped (UDP: port-forward carries TCP only)",
        "svc/dns port 8125: skipped (UDP: port-forward carries TCP only)",
        "svc/dns-only: skipped (a headless Service without ports)",
        "svc/manual: skipped (no pod selector: its endpoints are managed by hand)",
    ]


def test_the_selector_picks_services_by_their_labels():
    sel = parse_label_selector("tier in (front, back),team!=ops")
    members, _ = plan([svc("a", labels={"tier": "front"}), svc("b", labels={"tier": "back", "team": "ops"}),
                       svc("c", labels={"tier": "db"}), svc("d")],
                      context="c", namespace="n", selector=sel)
    assert [m.service for m in members] == ["a"]


@pytest.mark.parametrize("text, labels, expected", [
    ("app=web", {"app": "web"}, True),
    ("app==web", {"app": "api"}, False),
    ("app!=web", {}, True),
    ("app", {"app": ""}, True),
    ("!app", {"app": "x"}, False),
    ("app in (a,b), tier notin (db)", {"app": "b", "tier": "front"}, True),
    ("app in (a,b),tier notin (db)", {"app": "b", "tier": "db"}, False),
    ("example.com/part-of=shop", {"example.com/part-of": "shop"}, True),
    ("", {"anything": "x"}, True),
])
def test_kubectl_selector_syntax(text, labels, expected):
    assert matches(parse_label_selector(text), labels) is expected


@pytest.mark.parametrize("text", ["app=", "=web", "app in ()", "app in (a", "a b", "app=we b", "!app in (a)",
                                  "app=-x", "app=web,,"])
def test_a_selector_that_cannot_be_read_is_a_usage_error(text):
    if text == "app=":  # an empty value is valid (the label exists and is empty)
        assert matches(parse_label_selector(text), {"app": ""})
        return
    with pytest.raises(UsageError):
        parse_label_selector(text)


def test_diff_starts_new_ports_and_stops_gone_ones():
    running = {("web", 80), ("old", 5432), ("api", 8080)}
    wanted = [Member("web", 80, "http", "127.1.1.1"), Member("api", 8081, "", "127.1.1.2"),
              Member("new", 6379, "redis", "127.1.1.3")]
    start, stop = diff(running, wanted)
    assert [m.key for m in start] == [("api", 8081), ("new", 6379)]
    assert stop == [("api", 8080), ("old", 5432)]
    assert diff({m.key for m in wanted}, wanted) == ([], [])


def test_privileged_ports_get_a_hint_only_below_the_limit():
    assert privileged_hint(8080, 1024) == ""
    assert privileged_hint(80, 0) == ""
    hint = privileged_hint(80, 1024)
    assert "ip_unprivileged_port_start=80" in hint and "(1024)" in hint
