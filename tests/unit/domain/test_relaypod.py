"""Relay targets, UDP port specs and the relay pod's manifest (plain data)."""

from __future__ import annotations

import pytest

from tray.domain import relaypod, selection
from tray.domain.portspec import PortSpec, parse_port_spec
from tray.domain.spec import parse_target_and_ports
from tray.domain.targets import Target, parse_target, split_target_port
from tray.errors import TargetError, UsageError


@pytest.mark.parametrize("text, target, port", [
    ("host/db.internal", Target("Host", "db.internal"), None),
    ("host/DB.Internal.:5432", Target("Host", "db.internal"), 5432),
    ("ip/10.0.3.7:5432", Target("IP", "10.0.3.7"), 5432),
    ("ip/[fd00::7]:53", Target("IP", "fd00::7"), 53),
    ("ip/fd00::7", Target("IP", "fd00::7"), None),
    ("svc/web", Target("Service", "web"), None),
])
def test_relay_targets(text: str, target: Target, port: int | None) -> None:
    bare, carried = split_target_port(text)
    assert parse_target(bare) == target and carried == port
    assert target.relayed == (target.kind in ("Host", "IP"))


@pytest.mark.parametrize("text, message", [
    ("host/db_internal", 'invalid host name "db_internal"'),
    ("host/-db", 'invalid host name "-db"'),
    ("host/" + "a" * 64, "invalid host name"),
    ("ip/10.0.0.300", 'invalid IP address "10.0.0.300"'),
    ("ip/db.internal", 'invalid IP address "db.internal"'),
])
def test_bad_relay_targets(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_target(split_target_port(text)[0])


@pytest.mark.parametrize("text", ["host/db:0", "host/db:65536", "host/db:x", "ip/[fd00::7]x"])
def test_bad_carried_ports(text: str) -> None:
    with pytest.raises(UsageError):
        split_target_port(text)


def test_udp_port_specs() -> None:
    assert parse_port_spec("8053:53/udp") == PortSpec(8053, 53, protocol="UDP")
    assert parse_port_spec(":dns/UDP") == PortSpec(None, "dns", protocol="UDP")
    assert parse_port_spec("80/tcp") == PortSpec(80, 80)
    assert str(parse_port_spec("53/udp")) == "53/udp" and str(parse_port_spec("80/tcp")) == "80"
    for bad, message in (("53/sctp", "unknown protocol"), ("/udp", "empty port spec"),
                         ("53/udp/udp", "more than one protocol"), ("70000/udp", "out of range")):
        with pytest.raises(UsageError, match=message):
            parse_port_spec(bad)


def test_target_and_ports() -> None:
    target, specs = parse_target_and_ports("host/db.internal:5432", [])
    assert target == Target("Host", "db.internal") and specs == [PortSpec(5432, 5432)]
    assert parse_target_and_ports("host/db.internal:5432", ["6432:5432"])[1] == [PortSpec(6432, 5432)]
    assert parse_target_and_ports("svc/dns", ["8053:53/udp"])[1] == [PortSpec(8053, 53, protocol="UDP")]
    with pytest.raises(UsageError, match="names remote port 5433, but the target") as err:
        parse_target_and_ports("host/db.internal:5432", ["5433"])
    assert err.value.field == "port 0"
    with pytest.raises(UsageError, match="no named ports"):
        parse_target_and_ports("host/db.internal", ["pg"])
    with pytest.raises(UsageError) as err:
        parse_target_and_ports("host/db_x", ["1"])
    assert err.value.field == "TARGET"


def test_the_pod_is_owned_bounded_and_unprivileged() -> None:
    labels = relaypod.relay_labels("alice@corp", "laptop.local", "e1", "host/db.internal:5432/udp")
    assert labels == {
        "app.kubernetes.io/name": "tender-relay", "app.kubernetes.io/managed-by": "tender",
        "kube-tender/user": "alice-corp", "kube-tender/host": "laptop.local", "kube-tender/engine": "e1",
        "kube-tender/forward": "host.db.internal-5432.udp"}
    pod = relaypod.relay_pod(source="print(1)", image="mirror.corp/python:3.13-alpine", labels=labels,
                             target="host/db.internal:5432")
    spec = pod["spec"]
    assert pod["metadata"]["generateName"] == "tender-relay-" and pod["metadata"]["labels"] == labels
    assert spec["activeDeadlineSeconds"] == relaypod.DEFAULT_DEADLINE and spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False and spec["securityContext"]["runAsNonRoot"] is True
    (container,) = spec["containers"]
    assert container["image"] == "mirror.corp/python:3.13-alpine"
    assert container["command"] == ["python3", "-c", "print(1)", "--listen", "127.0.0.1:8400", "--exit-idle", "60"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_label_values() -> None:
    assert relaypod.label_value("") == "unknown"
    assert relaypod.label_value("-" * 5 + "x" * 80) == "x" * 63
    assert relaypod.owner_selector("bob", "box") == (
        "app.kubernetes.io/managed-by=tender,app.kubernetes.io/name=tender-relay,"
        "kube-tender/user=bob,kube-tender/host=box")


def test_orphans_are_relays_whose_tender_is_gone() -> None:
    def pod(name: str, engine: str, pid: str = "", start: str = "", deleting: bool = False) -> dict:
        meta = {"name": name, "labels": {"kube-tender/engine": engine},
                "annotations": {"kube-tender/pid": pid, "kube-tender/pid-start": start}}
        if deleting:
            meta["deletionTimestamp"] = "2026-11-30T20:00:00Z"
        return {"metadata": meta}

    running = {(100, "5"), (300, "")}
    pods = [pod("mine", "e1", "100", "5"), pod("dead", "e0", "200", "7"), pod("reused-pid", "e2", "100", "9"),
            pod("live", "e3", "300", "11"), pod("going", "e4", "200", "7", deleting=True), pod("unknown", "e5")]
    alive = lambda pid, start: any(p == pid and (not s or not start or s == start) for p, s in running)  # noqa: E731
    assert relaypod.orphans(pods, "e1", alive) == ["dead", "reused-pid"]


def test_which_forwards_need_a_relay() -> None:
    assert relaypod.needs_relay(Target("Host", "db"), "TCP") and relaypod.needs_relay(Target("Pod", "x"), "UDP")
    assert not relaypod.needs_relay(Target("Service", "web"), "TCP")
    assert relaypod.service_needs_relay({"spec": {"type": "ExternalName", "externalName": "db.corp"}}) == "ExternalName"
    assert relaypod.service_needs_relay({"spec": {"ports": [{"port": 80}]}}) == "no selector"
    assert relaypod.service_needs_relay({"spec": {"selector": {"app": "web"}}}) == ""


def test_selection_by_protocol() -> None:
    svc = {"metadata": {"name": "dns"}, "spec": {"ports": [
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 1053}]}}
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"ports": [
        {"name": "echo", "containerPort": 9000, "protocol": "UDP"}, {"name": "web", "containerPort": 80}]}]}}
    assert selection.container_port_for_service(svc, pod, 53) == 5353
    assert selection.container_port_for_service(svc, pod, 53, "UDP") == 1053
    assert selection.container_port_for_pod(pod, "echo", "UDP") == 9000
    assert selection.container_port_for_pod(pod, 1234, "UDP") == 1234  # undeclared numbers pass, as kubectl's
    with pytest.raises(TargetError, match="port 80 of pod/p is declared as TCP only; not UDP"):
        selection.container_port_for_pod(pod, 80, "UDP")
    with pytest.raises(TargetError, match='port "web" \\(80\\) of pod/p is TCP, not UDP'):
        selection.container_port_for_pod(pod, "web", "UDP")
    with pytest.raises(TargetError, match="only TCP can be port-forwarded \\(add /udp to forward it through a relay pod\\)"):
        selection.container_port_for_pod(pod, 9000)
