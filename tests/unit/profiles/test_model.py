"""Tests for tray.profiles.model: the format's facts agree with config/profiles.schema.json.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from tray import profiles as profiles_mod
from tray.errors import UsageError
from tray.profiles import (
    NAME_PATTERN,
    NAMESPACE_PATTERN,
    PROFILE_KEYS,
    REQUIRED_PROFILE_KEYS,
    TOP_LEVEL_KEYS,
    parse_profiles,
)
from tray.profiles.model import REQUIRED_TOP_LEVEL_KEYS

from tests.unit.profiles.helpers import EXAMPLE, SCHEMA


# --------------------------------------------------------------------------
# The JSON Schema must say what the loader does
# --------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def _profile_schema() -> dict[str, Any]:
    return _schema()["$defs"]["profile"]


def _ecma_search(pattern: str, text: str) -> bool:
    # JSON Schema patterns are ECMA-262: "$" matches only at the very end
    # (Python's also matches before a final newline).
    return re.search(pattern.replace("$", r"\Z"), text) is not None


def test_schema_keys_match_the_loader() -> None:
    schema = _schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(TOP_LEVEL_KEYS)
    assert set(schema["required"]) == set(REQUIRED_TOP_LEVEL_KEYS)
    assert schema["properties"]["version"] == {**schema["properties"]["version"], "const": profiles_mod.VERSION}
    assert schema["properties"]["profiles"]["items"] == {"$ref": "#/$defs/profile"}
    profile = _profile_schema()
    assert profile["additionalProperties"] is False
    assert list(profile["properties"]) == list(PROFILE_KEYS)
    assert set(profile["required"]) == set(REQUIRED_PROFILE_KEYS)
    assert profile["properties"]["name"]["pattern"] == NAME_PATTERN
    assert profile["properties"]["namespace"]["pattern"] == NAMESPACE_PATTERN
    assert profile["properties"]["autostart"] == {**profile["properties"]["autostart"], "type": "boolean"}
    assert profile["properties"]["address"]["default"] == profiles_mod.DEFAULT_ADDRESS
    assert profile["properties"]["ports"]["minItems"] == 1


_TARGET_SAMPLES = [
    "web", "db-0", "a.b.c", "svc/web", "SVC/web", "service/web", "services/web", "po/x", "pod/x", "pods/x",
    "Pod/x", "deploy/web", "deployment/web", "Deployments/web", "deployment.apps/web", "deployments.v1.apps/web",
    "sts/db", "statefulset.apps/db", "ds/agent", "DaemonSets.V1.Apps/agent", "svc.apps/web", "pod.v1/x",
    "job/x", "rs/web", "rc/web", "jobs.batch/x", "job.apps/x", "rc.v1/x", "cronjob/x", "/web", "svc/", "", "svc/web/x", "svc/Web", "svc/-web", "svc/web-", "svc/we b", "svc/web\n",
    "svc/a..b", "deploy.extensions/web", "cronjob/x", "svc//web",
]

_PORT_SAMPLES = [
    "80", "8080", "65535", "65536", "0", "00080", "8080:80", "8080:http", ":80", ":http", "0:80", "http",
    "0:0", "1:0", "70000", "8080:70000", "99999:80", ":", "", "a:80", "-1", "+80", "8080:Http", "8080:web_ui",
    "8080:-web", "8080:web-", "8080:a--b", "8080:123", "8080:abcdefghijklmnop", "8080:abcdefghijklmno",
    "1:2:3", " 80", "80\n", "８０", "http2", "2http", "0000000000080",
]

_NAME_SAMPLES = ["web", "Shop.Web_1", "a", "a" * 63, "a" * 64, "-a", "_a", ".a", "a b", "", "ü", "a\n", "9"]
_NAMESPACE_SAMPLES = ["demo", "a", "a" * 63, "a" * 64, "Demo", "-a", "a-", "a.b", "a_b", "", "1", "a\n"]
_ADDRESS_SAMPLES = [
    "127.0.0.1", "0.0.0.0", "255.255.255.255", "256.0.0.1", "01.2.3.4", "1.2.3", "::1", "::", "fe80::1%eth0",
    "::ffff:1.2.3.4", "localhost", "LOCALHOST", "example.com", "127.0.0.1 ", "",
]


def _loader_accepts(field: str, value: str) -> bool:
    base = {"name": "p", "target": "svc/web", "ports": ["8080:80"]}
    if field == "ports":
        base["ports"] = [value]
    else:
        base[field] = value
    try:
        parse_profiles(yaml.safe_dump({"version": 1, "profiles": [base]}))
    except UsageError:
        return False
    return True


@pytest.mark.parametrize(
    ("field", "samples"),
    [
        ("target", _TARGET_SAMPLES),
        ("name", _NAME_SAMPLES),
        ("namespace", _NAMESPACE_SAMPLES),
        ("address", _ADDRESS_SAMPLES),
        ("context", ["tender-a", "any thing ✓", "", "a\tb", "a\u0085b"]),
        ("group", ["shop", "Shop & Co", "", "a\nb", "\x7f"]),
    ],
)
def test_schema_string_patterns_agree_with_the_loader(field: str, samples: list[str]) -> None:
    prop = _profile_schema()["properties"][field]
    for sample in samples:
        if field == "address":
            schema_ok = any(
                ("const" in alt and alt["const"] == sample)
                or ("pattern" in alt and _ecma_search(alt["pattern"], sample))
                for alt in prop["anyOf"]
            )
        else:
            schema_ok = _ecma_search(prop["pattern"], sample)
        assert schema_ok == _loader_accepts(field, sample), (field, sample)


def test_schema_port_pattern_agrees_with_the_loader() -> None:
    alternatives = _profile_schema()["properties"]["ports"]["items"]["anyOf"]
    (pattern,) = [alt["pattern"] for alt in alternatives if alt.get("type") == "string"]
    (integer,) = [alt for alt in alternatives if alt.get("type") == "integer"]
    assert (integer["minimum"], integer["maximum"]) == (1, 65535)
    for sample in _PORT_SAMPLES:
        assert _ecma_search(pattern, sample) == _loader_accepts("ports", sample), sample


# A tiny validator for the subset of JSON Schema the schema file uses, so the
# example can be checked against it without the jsonschema package.
_SUPPORTED = {
    "$schema", "title", "description", "$comment", "default", "format", "$defs", "$ref", "type", "properties",
    "required", "additionalProperties", "items", "minItems", "anyOf", "const", "pattern", "minimum", "maximum",
}


def _keywords(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key in ("properties", "$defs"):
                for sub in value.values():
                    found |= _keywords(sub)
            elif key in ("items",):
                found |= _keywords(value)
            elif key == "anyOf":
                for sub in value:
                    found |= _keywords(sub)
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _valid(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> bool:
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/")
        return _valid(value, root["$defs"][ref[len("#/$defs/"):]], root)
    if "type" in schema and _json_type(value) != schema["type"]:
        return False
    if "const" in schema and not (_json_type(value) == _json_type(schema["const"]) and value == schema["const"]):
        return False
    if "pattern" in schema and isinstance(value, str) and not _ecma_search(schema["pattern"], value):
        return False
    if "minimum" in schema and isinstance(value, int) and value < schema["minimum"]:
        return False
    if "maximum" in schema and isinstance(value, int) and value > schema["maximum"]:
        return False
    if "anyOf" in schema and not any(_valid(value, alt, root) for alt in schema["anyOf"]):
        return False
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return False
        if "items" in schema and not all(_valid(v, schema["items"], root) for v in value):
            return False
    if isinstance(value, dict):
        props = schema.get("properties", {})
        if any(key not in value for key in schema.get("required", ())):
            return False
        if schema.get("additionalProperties") is False and any(key not in props for key in value):
            return False
        if not all(_valid(v, props[k], root) for k, v in value.items() if k in props):
            return False
    return True


def test_schema_uses_only_keywords_the_test_validator_knows() -> None:
    assert _keywords(_schema()) - set(PROFILE_KEYS) - set(TOP_LEVEL_KEYS) - {"profile"} <= _SUPPORTED


def test_example_validates_against_the_schema() -> None:
    schema = _schema()
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert _valid(data, schema, schema)
    try:
        import jsonschema  # type: ignore[import-not-found]
    except ImportError:
        return
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(data)


_POOLS: dict[str, list[Any]] = {
    "name": ["web", "Web.2", "", "a b", True, 5, None],
    "context": ["tender-a", "", "a\nb", 5, None, False],
    "namespace": ["demo", "Demo", "a" * 64, 1, None],
    "target": ["svc/web", "web", "job/x", "", 8080, None],
    "ports": [
        ["8080:80"],
        ["9090", ":80", "http"],
        [443, "0444:http"],
        [],
        ["70000"],
        ["0:0"],
        [True],
        [80.5],
        [None],
        "8080:80",
        None,
    ],
    "address": ["127.0.0.1", "localhost", "auto", "::1", "example.com", "LOCALHOST", "AUTO", 127, None],
    "autostart": [True, False, "true", 1, None],
    "group": ["shop", "", "x\ty", 3, None],
    "protocol": ["TCP", "udp", "sctp", "", 5, None],
    "relay": [{"image": "python:3.13-alpine"}, {"image": "a b"}, {"image": ""}, {}, {"img": "x"}, "x", None],
}


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={key: st.sampled_from(pool) for key, pool in _POOLS.items()} | {"extra": st.just(1)},
    )
)
def test_schema_and_loader_agree_on_single_profiles(profile: dict[str, Any]) -> None:
    schema = _schema()
    doc = {"version": 1, "profiles": [profile]}
    try:
        parse_profiles(yaml.safe_dump(doc))
        loader_ok = True
    except UsageError:
        loader_ok = False
    assert _valid(doc, schema, schema) == loader_ok, profile
