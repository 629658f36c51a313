"""Profiles with ``target: namespace/NS`` (every Service of a namespace): checked, written, started as a group."""

from __future__ import annotations

from typing import Any

from tray.domain.servicegroup import NamespaceTarget
from tray.profiles import parse_profiles
from tray.profiles.run import start_profile

from tests.unit.profiles.helpers import _errors_of


def doc(*items: str) -> str:
    return "version: 1\nprofiles:\n" + "".join(items)


ALL = """  - name: shop-all
    context: tender-a
    target: namespace/shop
    selector: "tier in (web, api),!canary"
    autostart: true
"""


def test_a_namespace_profile_is_read_and_written_back() -> None:
    (p,) = parse_profiles(doc(ALL)).profiles
    assert (p.target, p.namespace, p.selector, p.ports, p.is_namespace) == (
        NamespaceTarget("shop"), "shop", "tier in (web, api),!canary", (), True)
    assert p.to_dict() == {"name": "shop-all", "context": "tender-a", "target": "namespace/shop",
                           "selector": "tier in (web, api),!canary", "autostart": True}
    (plain,) = parse_profiles(doc("  - {name: all, target: namespace/shop}\n")).profiles
    assert plain.selector is None and plain.to_dict() == {"name": "all", "target": "namespace/shop"}


def test_fields_a_namespace_profile_cannot_have_are_named_one_line_each() -> None:
    errors = _errors_of(doc("""  - name: bad
    target: namespace/shop
    ports: ["8080:80"]
    namespace: other
    address: auto
    selector: "tier in (web"
"""))
    assert errors == [
        "p.yaml:5: profiles[0].ports: 'ports' is not allowed with 'target: namespace/shop' "
        "(every Service port is forwarded on its real port)",
        "p.yaml:6: profiles[0].namespace: 'namespace' is not allowed with 'target: namespace/shop' "
        "(the target names the namespace)",
        "p.yaml:7: profiles[0].address: 'address' is not allowed with 'target: namespace/shop' "
        "(each Service listens on its own 127.A.B.C)",
        "p.yaml:8: profiles[0].selector: unbalanced parentheses in label selector 'tier in (web'",
    ]


def test_other_targets_still_need_ports_and_take_no_selector() -> None:
    errors = _errors_of(doc("  - {name: a, target: svc/web}\n",
                            "  - {name: b, target: svc/web, ports: [80], selector: app=web}\n",
                            "  - {name: c, target: namespace/Shop}\n"))
    assert errors[0] == "p.yaml:3: profiles[0]: missing required key 'ports'"
    assert errors[1].startswith("p.yaml:4: profiles[1].selector: 'selector' chooses the Services of a "
                                "'target: namespace/NS' profile")
    assert errors[2].startswith("p.yaml:5: profiles[2].target: invalid namespace target 'namespace/Shop'")
    assert len(errors) == 3


class Engine:
    kubeconfig = ""

    def __init__(self) -> None:
        self.started: list[Any] = []

    def groups(self) -> list[Any]:
        from types import SimpleNamespace

        return [SimpleNamespace(profile=s.profile) for s in self.started]

    def start_group(self, spec: Any) -> str:
        self.started.append(spec)
        return f"g-{len(self.started)}"


def test_starting_a_namespace_profile_starts_its_group_once() -> None:
    (p,) = parse_profiles(doc(ALL)).profiles
    engine = Engine()
    assert start_profile(engine, p, "ignored") == []  # members start as the Services are listed
    assert start_profile(engine, p, "ignored") == []
    (spec,) = engine.started
    assert (spec.cluster, spec.namespace, spec.selector, spec.profile) == (
        "tender-a", "shop", "tier in (web, api),!canary", "shop-all")
