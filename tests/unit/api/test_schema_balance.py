"""POST /v1/forwards's ``balance`` field (issue 14 part 3)."""

from __future__ import annotations

import pytest

from tray.api import schema
from tray.api.schema import ApiError


def test_balance_is_auto_unless_asked() -> None:
    target, *_ = schema.parse_forward_request({"target": "svc/web", "ports": ["80"]})
    assert schema.parse_balance({"target": "svc/web", "ports": ["80"]}, target) == "auto"
    assert schema.parse_balance({"balance": "sticky"}, target) == "sticky"


@pytest.mark.parametrize("target_text, balance, words", [
    ("deploy/web", "round-robin", "balance: balance 'round-robin' needs a Service target"),
    ("svc/web", "spread", "balance: unknown balance 'spread'"),
    ("svc/web", 3, "balance must be a non-empty string"),
])
def test_a_bad_balance_is_a_400_naming_the_field(target_text: str, balance: object, words: str) -> None:
    body = {"target": target_text, "ports": ["80"], "balance": balance}
    target, *_ = schema.parse_forward_request(body)
    with pytest.raises(ApiError) as err:
        schema.parse_balance(body, target)
    assert (err.value.status, err.value.field) == (400, "balance") and words in str(err.value), str(err.value)
