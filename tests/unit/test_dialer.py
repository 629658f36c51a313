"""Which port-forward path a forward takes, from the environment (the rest is integration)."""

from __future__ import annotations

import pytest

from tray.dialer import PROTOCOL_ENV, protocol_from_env


@pytest.mark.parametrize(("value", "expected"), [
    (None, "auto"), ("", "auto"), ("v4", "v4"), ("V4", "v4"), (" tunnel ", "tunnel"),
    ("auto", "auto"), ("spdy", "auto"), ("websocket", "auto"),
])
def test_protocol_from_env(value: str | None, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Anything unknown is the default (the tunnel, v4 when it is refused): a typo must not
    # silently pin a slower path.
    if value is None:
        monkeypatch.delenv(PROTOCOL_ENV, raising=False)
    else:
        monkeypatch.setenv(PROTOCOL_ENV, value)
    assert protocol_from_env() == expected
