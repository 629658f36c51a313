"""tray.domain.annotations: the forwards k9s and kftray annotations suggest, read from API dicts."""

from __future__ import annotations

import pytest

from tray.domain.annotations import (K9S_AUTO_PORT_FORWARDS, K9S_PORT_FORWARDS, KFTRAY_CONFIGS, KFTRAY_ENABLED,
                                     needs_endpoints, parse_k9s, parse_kftray, resolved_ports, suggestions,
                                     suggestions_of)
from tray.errors import UsageError


def obj(name: str = "web", annotations: dict | None = None, **rest) -> dict:
    return {"metadata": {"name": name, "annotations": annotations or {}}, **rest}


def shown(found) -> list[tuple[str, list[str], str | None, str]]:
    return [(str(s.target), [str(p) for p in s.ports], s.alias, s.annotation) for s in found.suggestions]


# ------------------------------------------------------------------ k9s
@pytest.mark.parametrize("value, expected", [
    # k9s README "FastForwards": container-name::[local-port:]container-port, port by number or name
    ("zorg::5556", [("zorg", "5556")]),
    ("bozo::9090:p1", [("bozo", "9090:p1")]),
    ("c1::p1", [("c1", "p1")]),           # no local port: the container port's number
    ("c1:::p1", [("c1", "p1")]),
    ("8080", [(None, "8080")]),           # the plain form
    ("9090:http", [(None, "9090:http")]),
    ("c1::4321:1234, c1::5432:2345", [("c1", "4321:1234"), ("c1", "5432:2345")]),
    ("", []),
])
def test_parse_k9s(value: str, expected: list):
    assert [(c, str(p)) for c, p in parse_k9s(value)] == expected


@pytest.mark.parametrize("value, fragment", [
    ("zorg::", "empty port spec"),
    ("c 1::80", "is not a container name"),
    ("c1::99999", "out of range"),
    ("c1::80,c1::Bad_Name", '"c1::Bad_Name"'),
    (",".join(["80"] * 65), "more than 64 items"),
])
def test_parse_k9s_refuses(value: str, fragment: str):
    with pytest.raises(UsageError, match=None) as info:
        parse_k9s(value)
    assert fragment in str(info.value)


def test_k9s_on_a_workload_template_and_itself():
    deploy = obj("web", {K9S_PORT_FORWARDS: "web::18080:http"},
                 spec={"template": {"metadata": {"annotations": {K9S_AUTO_PORT_FORWARDS: "web::8080,side::9090"}}}})
    assert shown(suggestions("Deployment", deploy)) == [
        ("deploy/web", ["8080", "9090"], "web,side", K9S_AUTO_PORT_FORWARDS),
        ("deploy/web", ["18080:http"], "web", K9S_PORT_FORWARDS),
    ]
    same = obj("db", {K9S_PORT_FORWARDS: "5432"}, spec={"template": {"metadata": {"annotations": {
        K9S_PORT_FORWARDS: "5432"}}}})
    assert shown(suggestions("StatefulSet", same)) == [("sts/db", ["5432"], None, K9S_PORT_FORWARDS)]


def test_k9s_on_pods_only_those_no_controller_owns():
    bare = obj("debug", {K9S_PORT_FORWARDS: "2345"})
    owned = obj("web-1", {K9S_PORT_FORWARDS: "2345"},
                )
    owned["metadata"]["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web-1", "controller": True}]
    assert shown(suggestions_of("Pod", [bare, owned])) == [("pod/debug", ["2345"], None, K9S_PORT_FORWARDS)]


def test_k9s_on_a_service_is_not_read():
    assert shown(suggestions("Service", obj("web", {K9S_PORT_FORWARDS: "80"}))) == []


# ------------------------------------------------------------------ kftray
def service(annotations: dict, *ports: dict, name: str = "web") -> dict:
    return obj(name, annotations, spec={"ports": list(ports)})


def test_parse_kftray():
    # kftray docs/kftui/USAGE.md "Service Auto-Discovery": alias-localport-port, comma-separated
    assert parse_kftray("grafana-3000-3000, api-3001-http") == [("grafana", 3000, 3000), ("api", 3001, "http")]


@pytest.mark.parametrize("value, fragment", [
    ("my-web-3000-80", "three parts"),
    ("web-3000", "three parts"),
    ("-3000-80", "three parts"),
    ("web-x-80", "local port"),
    ("web--80", "local port"),
    ("web-3000-70000", "out of range"),
])
def test_parse_kftray_refuses(value: str, fragment: str):
    with pytest.raises(UsageError) as info:
        parse_kftray(value)
    assert fragment in str(info.value)


def test_kftray_numbers_become_the_service_port_that_sends_to_them():
    svc = service({KFTRAY_CONFIGS: "web-18080-8080,metrics-19090-9090,admin-18443-https,plain-15000-5000"},
                  {"name": "http", "port": 80, "targetPort": 8080},
                  {"name": "metrics", "port": 9090},
                  {"name": "plain", "port": 5000, "targetPort": "named"})
    assert shown(suggestions("Service", svc)) == [
        ("svc/web", ["18080:80"], "web", KFTRAY_CONFIGS),
        ("svc/web", ["19090:9090"], "metrics", KFTRAY_CONFIGS),
        ("svc/web", ["18443:https"], "admin", KFTRAY_CONFIGS),
        ("svc/web", ["15000:5000"], "plain", KFTRAY_CONFIGS),
    ]


def test_kftray_a_number_no_port_sends_to_is_a_problem():
    found = suggestions("Service", service({KFTRAY_CONFIGS: "web-18080-8080,ok-18081-80"},
                                           {"port": 80, "targetPort": 8081}))
    assert shown(found) == [("svc/web", ["18081:80"], "ok", KFTRAY_CONFIGS)]
    assert found.problems == ['svc/web: kftray.app/configs: "web-18080-8080": no port of the Service sends to port 8080']


def test_kftray_enabled_suggests_every_tcp_port():
    svc = service({KFTRAY_ENABLED: "true"}, {"port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP"},
                  {"port": 9090, "targetPort": "metrics"})
    assert shown(suggestions("Service", svc)) == [("svc/web", ["8080:80"], "web", KFTRAY_ENABLED),
                                                  ("svc/web", ["9090"], "web", KFTRAY_ENABLED)]
    assert shown(suggestions("Service", service({KFTRAY_ENABLED: "false"}, {"port": 80}))) == []


def test_a_bad_item_is_a_problem_and_the_others_are_suggested():
    found = suggestions("Deployment", obj("a", {K9S_PORT_FORWARDS: "app::8080,app::Bad_Name,9090"}))
    assert shown(found) == [("deploy/a", ["8080", "9090"], "app", K9S_PORT_FORWARDS)]
    assert found.problems == ['deploy/a: k9scli.io/port-forwards: "app::Bad_Name": invalid port spec "Bad_Name": '
                              'port "Bad_Name" is neither a number 1-65535 nor a valid port name (port names are '
                              "1-15 lowercase letters, digits and '-', contain a letter, and do not start or end "
                              "with '-' or contain '--')"]


def test_a_bad_value_is_a_problem_not_an_exception():
    found = suggestions_of("Deployment", [
        obj("a", {K9S_PORT_FORWARDS: "c::x::y"}), obj("b", {K9S_PORT_FORWARDS: "80"}), {"metadata": None},
        obj("Bad_Name", {K9S_PORT_FORWARDS: "80"}), "not an object"])
    assert shown(found) == [("deploy/b", ["80"], None, K9S_PORT_FORWARDS)]
    assert len(found.problems) == 1 and found.problems[0].startswith("deploy/a: k9scli.io/port-forwards: ")
    assert suggestions("ConfigMap", obj("x", {K9S_PORT_FORWARDS: "80"})).suggestions == []


def test_to_dict():
    (one,) = suggestions("Service", service({KFTRAY_CONFIGS: "web-18080-80"}, {"port": 80})).suggestions
    assert one.to_dict() == {"target": "svc/web", "ports": ["18080:80"], "alias": "web",
                             "annotation": KFTRAY_CONFIGS}


def test_a_named_target_port_is_matched_through_the_endpoint_slices():
    svc = service({KFTRAY_CONFIGS: "web-18080-8080"}, {"name": "http", "port": 80, "targetPort": "http"})
    assert needs_endpoints(svc) and not needs_endpoints(service({}, {"port": 80, "targetPort": "http"}))
    assert not needs_endpoints(service({KFTRAY_CONFIGS: "web-1-80"}, {"port": 80, "targetPort": 8080}))
    slices = {"items": [
        {"metadata": {"labels": {"kubernetes.io/service-name": "web"}},
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]},
        {"metadata": {"labels": {"kubernetes.io/service-name": "other"}}, "ports": [{"port": 9000}]},
        {"metadata": {}, "ports": [{"name": "x", "port": 1}]},
    ]}
    assert resolved_ports(slices) == {"web": {"http": 8080}, "other": {"": 9000}}
    assert shown(suggestions("Service", svc)) == []  # without the slices, 8080 matches no port
    found = suggestions("Service", svc, resolved_ports(slices)["web"])
    assert shown(found) == [("svc/web", ["18080:80"], "web", KFTRAY_CONFIGS)] and not found.problems
