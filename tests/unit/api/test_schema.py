"""tray.api.schema: the API's JSON objects and the checks of its request bodies (plain data)."""

from __future__ import annotations

import json
import pytest

from tray.api import schema
from tray.api.schema import ApiError, parse_forward_request, parse_selector
from tray.domain.portspec import parse_port_spec
from tray.domain.targets import parse_target
from tray.engine.manager import ConnectionEvent, ListEvent, StatusEvent
from tray.engine.session import SessionInfo
from tray.profiles.model import Profile

# The forward object's fields, in docs/api.md's order ("The forward object").
DOC_FIELDS = ["session_id", "name", "profile", "cluster_id", "cluster_name", "namespace", "target", "target_kind",
              "target_name", "remote_port", "container_port", "local_port", "address", "status", "status_reason",
              "pod_name", "started_at", "attempts", "next_retry_at", "recoverable", "usage_error", "warning", "group",
              "balance", "pods", "protocol", "relay_pod", "relay_upstream", "connections", "connections_total", "bytes_in", "bytes_out", "last_connection_error",
              "last_connection_error_at"]


def info(**over: object) -> SessionInfo:
    base = dict(id="0f9c2d4e-1111-4222-8333-444455556666", cluster_id="tender-a", cluster_name="cluster-a",
                namespace="shop", pod_name="web-1", container_port=8080, local_port=18080, target_kind="Service",
                target_name="web", status="active", status_reason="", started_at="2026-11-30T14:03:54.123+00:00",
                address="127.0.0.1", remote_port="80", profile=None, attempts=0, connections=2,
                connections_total=7, bytes_in=1234, bytes_out=56)
    base.update(over)
    return SessionInfo(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- objects
def test_forward_dict_has_the_documented_fields_in_order() -> None:
    d = schema.forward_dict(info())
    assert list(d) == DOC_FIELDS
    assert d["session_id"] == "0f9c2d4e-1111-4222-8333-444455556666"
    assert d["target"] == "svc/web" and d["name"] == "svc/web" and d["profile"] is None
    assert (d["bytes_in"], d["bytes_out"], d["connections"], d["connections_total"]) == (1234, 56, 2, 7)
    assert json.loads(json.dumps(d)) == d  # plain JSON


def test_forward_dict_of_a_profile_is_named_after_it() -> None:
    d = schema.forward_dict(info(profile="shop-web", target_kind="Deployment", target_name="api"))
    assert d["name"] == "shop-web" and d["profile"] == "shop-web" and d["target"] == "deploy/api"


def test_stats_dict_carries_the_counters_only() -> None:
    s = schema.stats_dict(info(last_connection_error="connection refused",
                               last_connection_error_at="2026-11-30T14:05:00.000+00:00"))
    assert s == {"session_id": "0f9c2d4e-1111-4222-8333-444455556666", "connections": 2, "connections_total": 7,
                 "bytes_in": 1234, "bytes_out": 56, "last_connection_error": "connection refused",
                 "last_connection_error_at": "2026-11-30T14:05:00.000+00:00"}
    assert tuple(s)[1:] == schema.STATS_FIELDS


def test_event_dicts() -> None:
    a, b = info(), info(id="other", status="reconnecting", status_reason="pod web-1 was deleted")
    listed = schema.event_dict(ListEvent([a, b]))
    assert listed["event"] == "list" and [f["session_id"] for f in listed["forwards"]] == [a.id, "other"]
    status = schema.event_dict(StatusEvent(b.id, b.status, b.local_port, b.pod_name, b.status_reason, b))
    assert status == {"event": "status", **schema.forward_dict(b)}
    failed = schema.event_dict(ConnectionEvent(a.id, "web-1", 8080, "connection refused", 3, a))
    assert failed == {"event": "connection-error", "session_id": a.id, "pod_name": "web-1", "port": 8080,
                      "error": "connection refused", "suppressed": 3, "cluster_id": "tender-a", "namespace": "shop",
                      "target_kind": "Service", "target_name": "web", "local_port": 18080, "address": "127.0.0.1",
                      "profile": None}


def test_profile_dict() -> None:
    p = Profile(name="web", context="tender-a", namespace="shop", target=parse_target("svc/web"),
                ports=(parse_port_spec("8080:80"), parse_port_spec(":http")), group="shop", autostart=True, line=4)
    assert schema.profile_dict(p, 2) == {"name": "web", "group": "shop", "context": "tender-a", "namespace": "shop",
                                         "target": "svc/web", "ports": ["8080:80", ":http"], "address": "127.0.0.1",
                                         "autostart": True, "line": 4, "running": 2}


def test_api_error_body() -> None:
    e = ApiError(400, "ports[1]: bad", "ports[1]")
    assert (e.status, str(e), e.to_dict()) == (400, "ports[1]: bad", {"error": "ports[1]: bad", "field": "ports[1]"})
    assert ApiError(404, "no such path").to_dict() == {"error": "no such path", "field": None}


# ---------------------------------------------------------------- POST /v1/forwards
def test_forward_request_minimal_and_full() -> None:
    target, specs, context, namespace, address = parse_forward_request({"target": "svc/web", "ports": ["8080:80"]})
    assert str(target) == "svc/web" and [t for t, _ in specs] == ["8080:80"]
    assert specs[0][1] == parse_port_spec("8080:80")
    assert (context, namespace, address) == (None, None, "127.0.0.1")
    target, specs, context, namespace, address = parse_forward_request(
        {"target": "web", "ports": [80, ":8080", "9000:http"], "context": "tender-b", "namespace": "shop",
         "address": "::1"})
    assert str(target) == "pod/web"
    assert [t for t, _ in specs] == ["80", ":8080", "9000:http"]  # a number is the same spec as its text
    assert (context, namespace, address) == ("tender-b", "shop", "::1")
    assert parse_forward_request({"target": "x", "ports": ["1"], "address": "localhost"})[4] == "localhost"
    assert parse_forward_request({"target": "x", "ports": ["1"], "address": "0.0.0.0"})[4] == "0.0.0.0"


def refused(body: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_forward_request(body)
    assert caught.value.status == 400
    assert "\n" not in caught.value.message
    return caught.value


@pytest.mark.parametrize(("body", "field", "words"), [
    ([], None, "JSON object"),
    ("svc/web", None, "JSON object"),
    (None, None, "JSON object"),
    ({"target": "svc/web", "ports": ["80"], "port": 1}, "port", "unknown field 'port'"),
    ({"ports": ["80"]}, "target", "target is required"),
    ({"target": None, "ports": ["80"]}, "target", "target is required"),
    ({"target": "", "ports": ["80"]}, "target", "non-empty string"),
    ({"target": 5, "ports": ["80"]}, "target", "non-empty string"),
    ({"target": "foo/bar", "ports": ["80"]}, "target", 'unknown resource kind "foo"'),
    ({"target": "pod/A", "ports": ["80"]}, "target", "invalid resource name"),
    ({"target": "svc/web"}, "ports", "ports is required"),
    ({"target": "svc/web", "ports": []}, "ports", "non-empty list"),
    ({"target": "svc/web", "ports": "80"}, "ports", "non-empty list"),
    ({"target": "svc/web", "ports": {"80": 80}}, "ports", "non-empty list"),
    ({"target": "svc/web", "ports": ["80"] * 101}, "ports", "more than 100"),
    ({"target": "svc/web", "ports": ["80", True]}, "ports[1]", "ports[1] must be a string"),
    ({"target": "svc/web", "ports": [None]}, "ports[0]", "ports[0] must be a string"),
    ({"target": "svc/web", "ports": [80.0]}, "ports[0]", "ports[0] must be a string"),
    ({"target": "svc/web", "ports": [["80"]]}, "ports[0]", "ports[0] must be a string"),
    ({"target": "svc/web", "ports": ["80", "a:b:c"]}, "ports[1]", "too many ':'"),
    ({"target": "svc/web", "ports": ["70000"]}, "ports[0]", "out of range"),
    ({"target": "svc/web", "ports": [0]}, "ports[0]", "out of range"),
    ({"target": "svc/web", "ports": [-1]}, "ports[0]", "out of range"),
    ({"target": "svc/web", "ports": [""]}, "ports[0]", "empty port spec"),
    ({"target": "svc/web", "ports": ["80 "]}, "ports[0]", "whitespace"),
    ({"target": "svc/web", "ports": ["80"], "context": ""}, "context", "context must be a non-empty string"),
    ({"target": "svc/web", "ports": ["80"], "context": ["a"]}, "context", "context must be a non-empty string"),
    ({"target": "svc/web", "ports": ["80"], "namespace": 3}, "namespace", "namespace must be a non-empty string"),
    ({"target": "svc/web", "ports": ["80"], "namespace": "a/b"}, "namespace", "not a namespace name"),
    ({"target": "svc/web", "ports": ["80"], "namespace": "Shop"}, "namespace", "not a namespace name"),
    ({"target": "svc/web", "ports": ["80"], "namespace": "x" * 64}, "namespace", "not a namespace name"),
    ({"target": "svc/web", "ports": ["80"], "address": "example.com"}, "address", "not an IP address"),
    ({"target": "svc/web", "ports": ["80"], "address": "127.0.0.256"}, "address", "not an IP address"),
    ({"target": "svc/web", "ports": ["80"], "address": 127}, "address", "address must be a non-empty string"),
])
def test_forward_request_refused(body: object, field: str | None, words: str) -> None:
    err = refused(body)
    assert err.field == field, err.message
    assert words in err.message
    if field is not None:
        assert field in err.message  # the sentence names the field


def test_forward_request_names_the_first_bad_port() -> None:
    err = refused({"target": "svc/web", "ports": ["80", "8080:http", "x:y:z", "0"]})
    assert err.field == "ports[2]" and err.message.startswith("ports[2]: ")


# ---------------------------------------------------------------- selectors
KEYS = ("ids", "all", "context", "profile")


def test_selector_defaults() -> None:
    assert parse_selector({"all": True}, KEYS) == {"ids": [], "all": True, "context": None, "profile": None}
    assert parse_selector({"ids": ["a", "b"]}, KEYS)["ids"] == ["a", "b"]
    assert parse_selector({"context": "tender-a"}, KEYS)["context"] == "tender-a"
    assert parse_selector({"names": ["web"], "groups": ["g"]}, ("names", "groups", "all")) == {
        "names": ["web"], "groups": ["g"], "all": False}


@pytest.mark.parametrize(("body", "field", "words"), [
    ([], None, "JSON object"),
    ({}, None, "select something"),
    ({"all": False}, None, "select something"),
    ({"ids": []}, None, "select something"),
    ({"all": "yes"}, "all", "all must be true or false"),
    ({"all": 1}, "all", "all must be true or false"),
    ({"ids": "abc"}, "ids", "ids must be a list of non-empty strings"),
    ({"ids": [""]}, "ids", "ids must be a list of non-empty strings"),
    ({"ids": [1]}, "ids", "ids must be a list of non-empty strings"),
    ({"context": ""}, "context", "context must be a non-empty string"),
    ({"profile": 3}, "profile", "profile must be a non-empty string"),
    ({"names": ["web"]}, "names", "unknown field 'names'"),
])
def test_selector_refused(body: object, field: str | None, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_selector(body, KEYS)
    assert caught.value.status == 400 and caught.value.field == field
    assert words in caught.value.message


def test_check_address() -> None:
    assert schema.check_address("127.0.0.1") is False
    assert schema.check_address("::1") is False
    assert schema.check_address("localhost") is False
    assert schema.check_address("0.0.0.0") is True
    assert schema.check_address("192.168.1.4") is True
    from tray.errors import UsageError

    with pytest.raises(UsageError) as caught:
        schema.check_address("my-laptop", field="profiles[0].address")
    assert caught.value.field == "profiles[0].address"

