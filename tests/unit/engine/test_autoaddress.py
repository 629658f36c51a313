"""``address: auto`` at start: resolved to the forward's own 127.A.B.C; macOS's missing alias is one line."""

from __future__ import annotations

import pytest

from tray.domain.addresses import auto_address
from tray.engine import autoaddress
from tray.engine.autoaddress import macos_alias_message, resolve_address
from tray.errors import UsageError


def test_auto_becomes_the_targets_own_address() -> None:
    assert resolve_address("auto", "tender-a", "demo", "web") == auto_address("tender-a", "demo", "web")
    assert resolve_address("auto", "tender-a", "demo", "web") != resolve_address("auto", "tender-a", "demo", "db")
    for plain in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        assert resolve_address(plain, "tender-a", "demo", "web") == plain


def test_the_macos_message_names_the_alias_command() -> None:
    line = macos_alias_message("127.12.34.56")
    assert "\n" not in line
    assert line.endswith("sudo ifconfig lo0 alias 127.12.34.56 up")
    assert "127.12.34.56 is not configured" in line


def test_macos_without_the_alias_refuses_with_that_line(monkeypatch: pytest.MonkeyPatch) -> None:
    address = auto_address("tender-a", "demo", "web")
    monkeypatch.setattr(autoaddress, "loopback_configured", lambda a: False)
    with pytest.raises(UsageError) as info:
        resolve_address("auto", "tender-a", "demo", "web", platform="darwin")
    assert info.value.field == "address"
    assert f"sudo ifconfig lo0 alias {address} up" in str(info.value)
    # Linux routes all of 127/8 to lo: never asked.
    assert resolve_address("auto", "tender-a", "demo", "web", platform="linux") == address
    monkeypatch.setattr(autoaddress, "loopback_configured", lambda a: True)
    assert resolve_address("auto", "tender-a", "demo", "web", platform="darwin") == address


def test_linux_binds_any_loopback_address_without_configuration() -> None:
    assert autoaddress.loopback_configured(auto_address("tender-a", "demo", "web"))
    assert not autoaddress.loopback_configured("192.0.2.1")  # TEST-NET-1: no machine's own
