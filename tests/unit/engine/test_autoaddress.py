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


def test_localhost_and_an_auto_address_share_a_port_in_one_engine() -> None:
    from tray.engine.autoaddress import listeners_clash

    auto = auto_address("tender-a", "demo", "pg")
    assert not listeners_clash("localhost", auto) and not listeners_clash(auto, "localhost")
    assert not listeners_clash(auto, auto_address("tender-a", "demo", "other"))
    assert listeners_clash(auto, auto)
    # As before: localhost holds 127.0.0.1 and ::1, and clashes with every address but another loopback one.
    for other in ("localhost", "127.0.0.1", "::1", "0.0.0.0", "192.168.1.10"):
        assert listeners_clash("localhost", other) and listeners_clash(other, "localhost")
    assert not listeners_clash("127.0.0.1", "::1")


KUBECONFIG = """apiVersion: v1
kind: Config
current-context: a
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: a, context: {cluster: c, user: u, namespace: shop}}]
"""


def test_the_engine_lists_the_concrete_address_and_refuses_the_same_target_twice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket

    from tray.domain.spec import ForwardSpec
    from tray.domain.targets import Target
    from tray.engine.manager import ForwardManager

    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    with socket.socket() as s:  # a port free now (the sessions bind it; the cluster is unreachable)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manager = ForwardManager(str(tmp_path / "kubeconfig"))
    try:
        manager.start(ForwardSpec("a", None, Target("Service", "pg"), port, port, address="localhost"))
        first = manager.get(manager.start(ForwardSpec("a", None, Target("Service", "pg"), port, port, address="auto")))
        assert first.address == auto_address("a", "shop", "pg")  # the context's namespace filled in
        other = manager.get(manager.start(ForwardSpec("a", "data", Target("Service", "pg"), port, port, address="auto")))
        assert other.address == auto_address("a", "data", "pg")
        with pytest.raises(UsageError, match=f"local port {port} is already used by the forward to svc/pg"):
            manager.start(ForwardSpec("a", "shop", Target("Service", "pg"), port, port, address="auto"))
    finally:
        manager.shutdown()
