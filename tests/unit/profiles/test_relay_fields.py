"""Relay forwards in profiles (issue 15): host/ and ip/ targets, /udp ports, protocol, relay: {image}.

Reading and checking (every bad value names file, line and field), the
schema agreeing with the loader, starting a profile (what reaches the
engine) and writing (a round trip keeps comments; the file's relay stays).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from tray.domain.portspec import PortSpec
from tray.domain.targets import Target
from tray.profiles import add_profile, load_profiles, parse_profiles, save_profiles, update_profile
from tray.profiles.run import start_profile
from tray.profiles.writer import dump_profiles

from tests.unit.profiles.helpers import EXAMPLE, SCHEMA, _doc, _errors_of, _first_error, _p

RELAY_FILE = """\
# relay forwards
version: 1
relay: {image: mirror.example/python:3.13-alpine}   # the file's image
profiles:
  - name: db                      # a host only the cluster reaches
    context: tender-a
    namespace: demo
    target: host/db.internal:5432
  - name: dns
    context: tender-a
    namespace: demo
    target: svc/dns
    ports: ["8053:53"]
    protocol: UDP                 # every port without /tcp or /udp
    relay:
      image: other.example/py:3   # this profile's own
  - name: both
    target: ip/10.0.3.7
    ports: ["8054:53/udp", "8054:53"]   # one local port, once per protocol
"""


def test_relay_fields_read_back() -> None:
    db, dns, both = parse_profiles(RELAY_FILE, source="p.yaml").profiles
    assert (db.target, db.target_port, db.ports) == (Target("Host", "db.internal"), 5432, (PortSpec(5432, 5432),))
    assert db.effective_relay_image == "mirror.example/python:3.13-alpine" and db.relay_image is None
    assert dns.protocol == "UDP" and dns.ports == (PortSpec(8053, 53, protocol="UDP"),)
    assert dns.effective_relay_image == "other.example/py:3"
    assert both.target == Target("IP", "10.0.3.7") and both.protocol is None
    assert [p.protocol for p in both.ports] == ["UDP", "TCP"]
    assert parse_profiles(RELAY_FILE).relay_image == "mirror.example/python:3.13-alpine"


@pytest.mark.parametrize("target, ports, extra, expected", [
    ("ip/[fd00::7]:53", None, {"protocol": "udp"}, (("IP", "fd00::7"), 53, [PortSpec(53, 53, protocol="UDP")])),
    ("HOST/DB.Internal.:5432", '["15432:5432"]', {}, (("Host", "db.internal"), 5432, [PortSpec(15432, 5432)])),
    ("host/db.internal", '["5432", ":5433/UDP"]', {}, (("Host", "db.internal"), None,
                                                       [PortSpec(5432, 5432), PortSpec(None, 5433, protocol="UDP")])),
    ("svc/web", '["8080:80/tcp"]', {"protocol": "TCP"}, (("Service", "web"), None, [PortSpec(8080, 80)])),
])
def test_relay_targets_and_ports(target: str, ports: str | None, extra: dict[str, str], expected: Any) -> None:
    text = f"version: 1\nprofiles:\n  - name: a\n    target: {target}\n"
    text += f"    ports: {ports}\n" if ports else ""
    text += "".join(f"    {k}: {v}\n" for k, v in extra.items())
    (profile,) = parse_profiles(text).profiles
    kind_name, port, specs = expected
    assert ((profile.target.kind, profile.target.name), profile.target_port, list(profile.ports)) == (
        kind_name, port, specs)


@pytest.mark.parametrize("profile, expected", [
    (_p("a", target="host/db.internal:5432", ports='["15432:5433"]'),
     'p.yaml:5: profiles[0].ports[0]: port "15432:5433" names remote port 5433, but the target '
     'host/db.internal:5432 says 5432'),
    (_p("a", target="ip/10.0.0.1", ports='["8080:http"]'),
     "p.yaml:5: profiles[0].ports[0]: ip/10.0.0.1 has no named ports: give the port as a number"),
    (_p("a", target="host/db.internal", ports='["db"]'),
     "p.yaml:5: profiles[0].ports[0]: host/db.internal has no named ports: give the port as a number"),
    (_p("a", ports='["8080:80/tcp"]', protocol="UDP"),
     'p.yaml:5: profiles[0].ports[0]: port "8080:80/tcp" says TCP, but the profile\'s protocol '
     "(profiles[0].protocol) is UDP; drop the suffix or the protocol"),
    (_p("a", protocol="sctp"), 'p.yaml:6: profiles[0].protocol: unknown protocol "sctp"; expected TCP or UDP'),
    (_p("a", protocol="[UDP]"), "p.yaml:6: profiles[0].protocol: expected a string, got a list"),
    (_p("a", ports='["53/sctp"]'),
     'p.yaml:5: profiles[0].ports[0]: invalid port spec "53/sctp": unknown protocol "sctp" (expected /tcp or /udp)'),
    ("  - name: a\n    target: host/db.internal\n",
     "p.yaml:3: profiles[0]: missing required key 'ports'"),
    ("  - name: a\n    target: host/db_internal:5432\n",
     'p.yaml:4: profiles[0].target: invalid host name "db_internal" in "host/db_internal"; host names are labels '
     "of letters, digits and '-' (1-63 each, not starting or ending with '-') joined by '.'"),
    ("  - name: a\n    target: ip/10.0.0.1:70000\n",
     'p.yaml:4: profiles[0].target: invalid port "70000" in "ip/10.0.0.1:70000": expected 1-65535'),
    (_p("a", relay="python:3.13-alpine"),
     "p.yaml:6: profiles[0].relay: expected a mapping like {image: python:3.13-alpine}, got a string"),
    (_p("a", relay="{image: 'my image'}"),
     'p.yaml:6: profiles[0].relay.image: invalid image "my image": expected an image reference such as '
     "python:3.13-alpine or registry.example/python:3.13-alpine"),
    (_p("a", relay="{img: x}"), "p.yaml:6: profiles[0].relay.img: unknown key \"img\"; did you mean 'image'?"),
    (_p("a", relay="{}"),
     "p.yaml:6: profiles[0].relay: an empty 'relay:' says nothing; give 'image: IMAGE' or leave it out"),
    (_p("a", relay="{image: ''}"), "p.yaml:6: profiles[0].relay.image: image must not be empty"),
    ("  - name: all\n    target: namespace/demo\n    protocol: UDP\n",
     "p.yaml:5: profiles[0].protocol: 'protocol' is not allowed with 'target: namespace/demo' (every Service "
     "port is forwarded with its own protocol)"),
])
def test_bad_relay_values_name_file_line_and_field(profile: str, expected: str) -> None:
    assert _errors_of(_doc(profile)) == [expected]


def test_the_files_relay_is_checked_and_only_one_protocol_clashes() -> None:
    text = ("version: 1\nrelay: {image: 5}\nprofiles:\n"
            + _p("a", target="ip/10.0.0.1", ports='["8053:53/udp"]')
            + _p("b", target="ip/10.0.0.2", ports='["8053:53/udp", "8053:53"]'))
    assert _errors_of(text) == [
        'p.yaml:2: relay.image: expected a string, got a number; quote it if you mean the text: "5"',
        "p.yaml:9: profiles[1].ports[0]: local address 127.0.0.1:8053/udp is already used by profile 'a' "
        "(profiles[0].ports[0], line 6)",
    ]
    carried = _doc(_p("a", ports='["5432"]'), "  - name: b\n    target: host/db.internal:5432\n")
    assert str(_first_error(carried)) == (
        "p.yaml:7: profiles[1].target: local address 127.0.0.1:5432 is already used by profile 'a' "
        "(profiles[0].ports[0], line 5)")


def test_check_command_exits_2_naming_the_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "profiles.yaml"
    path.write_text(_doc(_p("dns", target="svc/dns", ports='["8053:53/tcp"]', protocol="UDP")))
    proc = subprocess.run([sys.executable, "-m", "tray", "profiles", "check", str(path)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert f"{path}:5: profiles[0].ports[0]: port \"8053:53/tcp\" says TCP" in proc.stderr


# -- what reaches the engine -----------------------------------------------


class Engine:
    kubeconfig = ""

    def __init__(self) -> None:
        self.specs: list[Any] = []

    def list(self) -> list[Any]:
        return [SimpleNamespace(profile=s.profile, remote_port=s.remote_port, protocol=s.protocol)
                for s in self.specs]

    def start(self, spec: Any) -> str:
        self.specs.append(spec)
        return f"id-{len(self.specs)}"


def test_start_profile_passes_protocol_and_relay_image() -> None:
    db, dns, both = parse_profiles(RELAY_FILE).profiles
    engine = Engine()
    for profile in (db, dns, both):
        start_profile(engine, profile, "ctx")
    got = [(s.profile, str(s.target), s.remote_port, s.local_port, s.protocol, s.relay_image) for s in engine.specs]
    assert got == [
        ("db", "host/db.internal", 5432, 5432, "TCP", "mirror.example/python:3.13-alpine"),
        ("dns", "svc/dns", 53, 8053, "UDP", "other.example/py:3"),
        ("both", "ip/10.0.3.7", 53, 8054, "UDP", "mirror.example/python:3.13-alpine"),
        ("both", "ip/10.0.3.7", 53, 8054, "TCP", "mirror.example/python:3.13-alpine"),
    ]
    assert start_profile(engine, both, "ctx") == []  # both ports run: 53/udp and 53 are two forwards
    plain = parse_profiles(_doc(_p("w"))).profiles[0]
    start_profile(engine, plain, "ctx")
    assert (engine.specs[-1].protocol, engine.specs[-1].relay_image) == ("TCP", None)  # None: the default


# -- writing ------------------------------------------------------------------


def test_unchanged_relay_profiles_save_byte_for_byte_and_an_edit_keeps_comments(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(RELAY_FILE)
    loaded = load_profiles(path)
    save_profiles(path, loaded)
    assert path.read_text() == RELAY_FILE
    db, dns, both = loaded.profiles
    update_profile(path, "db", dataclasses.replace(db, target_port=5433, ports=(PortSpec(5433, 5433),),
                                                   relay_image="third.example/py:3.12"))
    update_profile(path, "dns", dataclasses.replace(dns, relay_image="other.example/py:4"))
    text = path.read_text()
    # Values with a ':' are quoted (PyYAML would not read every such plain scalar back as written).
    assert text == RELAY_FILE.replace("host/db.internal:5432\n", "'host/db.internal:5433'\n"
                                      "    relay: {image: 'third.example/py:3.12'}\n").replace(
        "other.example/py:3   #", "'other.example/py:4' #")
    again = load_profiles(path)
    assert again.by_name("db").effective_relay_image == "third.example/py:3.12"
    assert again.by_name("both").effective_relay_image == "mirror.example/python:3.13-alpine"


def test_added_relay_profile_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(RELAY_FILE)
    new = parse_profiles(_doc(_p("new", target="ip/[fd00::7]:53", ports='["5353:53"]', protocol="UDP",
                                 relay="{image: 'a.example/b:c'}"))).profiles[0]
    written = add_profile(path, new)
    assert written.by_name("new") == new
    assert written.by_name("new").file_relay_image == "mirror.example/python:3.13-alpine"
    tail = path.read_text()[len(RELAY_FILE):]
    assert tail == ("  - name: new\n    target: 'ip/[fd00::7]:53'\n    ports: [\"5353:53\"]\n    protocol: UDP\n"
                    "    relay: {image: 'a.example/b:c'}\n")


def test_a_file_written_anew_keeps_the_files_relay(tmp_path: Path) -> None:
    profiles = parse_profiles(RELAY_FILE).profiles
    path = tmp_path / "new.yaml"
    written = save_profiles(path, profiles)
    assert written.profiles == profiles and written.relay_image == "mirror.example/python:3.13-alpine"
    assert yaml.safe_load(path.read_text())["relay"] == {"image": "mirror.example/python:3.13-alpine"}
    assert parse_profiles(dump_profiles([], "x.example/y:1")).relay_image is None  # no profiles to carry it
    assert yaml.safe_load(dump_profiles([], "x.example/y:1")) == {"version": 1, "relay": {"image": "x.example/y:1"},
                                                                  "profiles": []}


# -- the schema and the example -------------------------------------------------


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text(encoding="utf-8"))


def _ecma(pattern: str, text: str) -> bool:
    return re.search(pattern.replace("$", r"\Z"), text) is not None


def _accepts(profile: dict[str, Any], top: dict[str, Any] | None = None) -> bool:
    from tray.errors import UsageError

    try:
        parse_profiles(yaml.safe_dump({"version": 1, **(top or {}), "profiles": [profile]}))
    except UsageError:
        return False
    return True


_RELAY_TARGETS = [
    "host/db", "host/db.internal", "HOST/Db.Internal", "host/db.internal.", "host/db.internal:5432",
    "host/db:0", "host/db:65536", "host/db_x", "host/-db", "host/", "host/db:", "host/db:x",
    "ip/10.0.0.1", "ip/10.0.0.1:53", "ip/10.0.0.256", "ip/fd00::7", "ip/[fd00::7]:53", "ip/[fd00::7]",
    "ip/db.internal", "ip/", "IP/10.0.0.1:00053",
]


def test_schema_target_pattern_agrees_with_the_loader_on_relay_targets() -> None:
    from tray.domain.targets import split_target_port
    from tray.errors import UsageError

    profile_schema = _schema()["$defs"]["profile"]
    target = profile_schema["properties"]["target"]["pattern"]
    ports_optional = [alt for alt in profile_schema["anyOf"] if "properties" in alt]
    for sample in _RELAY_TARGETS:
        try:
            carried = split_target_port(sample)[1]
        except UsageError:
            carried = None
        if carried is None or carried == 53:  # a carried port other than 53 disagrees with ports: [53]
            assert _ecma(target, sample) == _accepts({"name": "a", "target": sample, "ports": ["53"]}), sample
        schema_ok = _ecma(target, sample) and any(
            _ecma(alt["properties"]["target"]["pattern"], sample) for alt in ports_optional)
        assert schema_ok == _accepts({"name": "a", "target": sample}), (sample, "no ports")


def test_schema_knows_protocol_relay_and_port_suffixes() -> None:
    schema = _schema()
    props = schema["$defs"]["profile"]["properties"]
    relay = schema["$defs"]["relay"]
    for value in ("TCP", "UDP", "udp", "Tcp", "sctp", "", "UDP "):
        assert _ecma(props["protocol"]["pattern"], value) == _accepts({"name": "a", "target": "svc/web",
                                                                      "ports": ["80"], "protocol": value}), value
    for image in ("python:3.13-alpine", "registry.example:5000/mirror/python@sha256:abc", "my image", "",
                  "-x", "a" * 513):
        ok = _ecma(relay["properties"]["image"]["pattern"], image)
        assert ok == _accepts({"name": "a", "target": "svc/web", "ports": ["80"], "relay": {"image": image}}), image
        assert ok == _accepts({"name": "a", "target": "svc/web", "ports": ["80"]}, {"relay": {"image": image}})
    (port_pattern,) = [alt["pattern"] for alt in props["ports"]["items"]["anyOf"] if alt.get("type") == "string"]
    for port in ("53/udp", "8053:53/UDP", ":53/tcp", "http/udp", "53/", "/udp", "53/sctp", "53/udp/tcp"):
        assert _ecma(port_pattern, port) == _accepts({"name": "a", "target": "svc/web", "ports": [port]}), port


def test_the_example_has_commented_relay_examples_that_load() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert parse_profiles(text).relay_image is None  # commented out: the example runs as it is
    lines = text.splitlines()
    block = lines[lines.index("# Relay forwards: what port-forward cannot reach (UDP ports, hosts and"):]
    commented = [line[len("#  "):] for line in block[:block.index("")] if line.startswith(("#  - ", "#    "))]
    (relay_line,) = [line for line in text.splitlines() if line.startswith("# relay: ")]
    doc = "version: 1\n" + relay_line[2:] + "\nprofiles:\n" + "".join(f"  {line}\n" for line in commented)
    loaded = parse_profiles(doc)
    dns, db = loaded.profiles
    assert dns.ports == (PortSpec(8053, 53, protocol="UDP"),)
    assert (db.target, db.target_port) == (Target("Host", "orders-db.internal"), 5432)
    assert db.effective_relay_image == "registry.example/mirror/python:3.13-alpine"
    assert dns.effective_relay_image == loaded.relay_image == "registry.example/mirror/python:3.13-alpine"
    merged = text.replace("\nprofiles:\n", "\nprofiles:\n" + "".join(f"  {line}\n" for line in commented))
    assert len(parse_profiles(merged, known_contexts={"tender-a", "tender-b"})) == len(parse_profiles(text)) + 2


def test_dropping_relay_and_protocol_takes_only_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "profiles.yaml"
    path.write_text(RELAY_FILE)
    dns = load_profiles(path).by_name("dns")
    update_profile(path, "dns", dataclasses.replace(dns, relay_image=None, protocol=None))
    text = path.read_text()
    # Without protocol: UDP the port says /udp itself; the comments of the other lines stay.
    assert text == RELAY_FILE.replace('    ports: ["8053:53"]\n    protocol: UDP                 # every port without '
                                      "/tcp or /udp\n    relay:\n      image: other.example/py:3   # this profile's "
                                      "own\n", '    ports: ["8053:53/udp"]\n')
    again = load_profiles(path).by_name("dns")
    assert again.ports == dns.ports and again.effective_relay_image == "mirror.example/python:3.13-alpine"
