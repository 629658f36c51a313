"""Namespace groups in the control API (tray/api/groups.py): the ``POST /v1/groups`` body check and the
group object.  The routes on a real engine: tests/integration/test_groups_api.py."""

from __future__ import annotations

from typing import Any

import pytest

from tray.api.groups import GROUP_FIELDS, group_dict, parse_group_request
from tray.api.schema import ApiError
from tray.engine.group import GroupInfo


def test_a_full_body_is_read() -> None:
    assert parse_group_request({"context": "prod", "namespace": "shop", "selector": "tier in (web,api)",
                                "balance": "pin"}) == ("prod", "shop", "tier in (web,api)", "pin")


def test_only_the_namespace_is_needed() -> None:
    assert parse_group_request({"namespace": "shop"}) == (None, "shop", "", "auto")


@pytest.mark.parametrize("body, field, words", [
    ({}, "namespace", "namespace is required"),
    ({"namespace": "Shop"}, "namespace", "not a namespace name"),
    ({"namespace": 3}, "namespace", "must be a string"),
    ({"namespace": "shop", "selector": "app in (a"}, "selector", "unbalanced parentheses"),
    ({"namespace": "shop", "selector": "a=b=c"}, "selector", "selector:"),
    ({"namespace": "shop", "balance": "random"}, "balance", "unknown balance 'random'"),
    ({"namespace": "shop", "target": "svc/x"}, "target", "unknown field 'target'"),
    ({"namespace": "shop", "context": ["a"]}, "context", "must be a string"),
])
def test_a_bad_field_is_named(body: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_group_request(body)
    assert err.value.status == 400
    assert err.value.field == field
    assert words in err.value.message


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(ApiError, match="JSON object"):
        parse_group_request(["shop"])


def test_the_group_object() -> None:
    info = GroupInfo("g1", "prod", "shop", "app=web", None, "active", "", ("f1", "f2"),
                     ("svc/dns: skipped (UDP)",), "sticky")
    d = group_dict(info)
    assert tuple(d) == GROUP_FIELDS
    assert d == {"id": "g1", "context": "prod", "namespace": "shop", "selector": "app=web", "balance": "sticky",
                 "profile": None, "status": "active", "reason": "", "members": ["f1", "f2"],
                 "skipped": ["svc/dns: skipped (UDP)"]}
