"""tray.profiles.importer: other tools' saved forwards read as profile dicts (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tray.errors import UsageError
from tray.profiles.importer import (detect_format, import_text, profile_name, read_kftray, read_kube_forwarder,
                                    read_kubectl, unique_names)

DATA = Path(__file__).resolve().parents[2] / "data" / "import"


# ------------------------------------------------------------------ kubectl
def test_kubectl_flags_anywhere_and_several_ports():
    result = read_kubectl("kubectl -n shop --context tender-a port-forward svc/web 8080:80 9090 --address 0.0.0.0\n")
    assert result.profiles == [{"name": "web", "context": "tender-a", "namespace": "shop", "target": "svc/web",
                                "ports": ["8080:80", "9090"], "address": "0.0.0.0"}]
    assert result.origins == [(1, None)]


@pytest.mark.parametrize("line, expected", [
    ("k port-forward deploy/web :http --namespace=demo &", {"namespace": "demo", "target": "deploy/web",
                                                             "ports": [":http"]}),
    ("/usr/local/bin/kubectl port-forward -ndemo web-0 5432", {"namespace": "demo", "target": "pod/web-0",
                                                                "ports": ["5432"]}),
    ("kubectl.exe port-forward deployments.apps/api 0:8080 -v=4 --pod-running-timeout 2m",
     {"target": "deploy/api", "ports": [":8080"]}),
    ("kubectl port-forward svc/web 80 --address localhost", {"target": "svc/web", "ports": ["80"],
                                                             "address": "localhost"}),
    ("kubectl port-forward svc/web 80 --address 127.0.0.1,::1", {"target": "svc/web", "ports": ["80"],
                                                                  "address": "localhost"}),
    ("kubectl port-forward svc/web 80 --address=127.0.0.1", {"target": "svc/web", "ports": ["80"]}),
    ("kubectl port-forward -- svc/web 80", {"target": "svc/web", "ports": ["80"]}),
])
def test_kubectl_forms(line: str, expected: dict):
    (profile,) = read_kubectl(line).profiles
    name = profile.pop("name")
    assert profile == expected
    assert name == expected["target"].split("/")[1]


def test_kubectl_comments_blank_lines_and_continuations():
    text = "# forwards\n\nkubectl port-forward \\\n  svc/web 8080:80   # the shop\n   \nkubectl port-forward sts/db 5432\n"
    result = read_kubectl(text)
    assert [p["target"] for p in result.profiles] == ["svc/web", "sts/db"]
    assert result.origins == [(3, None), (6, None)]


def test_kubectl_kubeconfig_is_a_note_not_a_field():
    result = read_kubectl("KUBECONFIG=/x kubectl port-forward svc/web 80\nkubectl --kubeconfig /y port-forward svc/a 81\n")
    assert len(result.profiles) == 2 and "kubeconfig" not in result.profiles[0]
    assert len(result.notes) == 1 and "ignored" in result.notes[0]


@pytest.mark.parametrize("line, why", [
    ("kubectl --server https://10.0.0.1 port-forward svc/web 80", "--server"),
    ("kubectl port-forward svc/web 80 --user admin --token t", "--user, --token"),
    ("kubectl port-forward svc/web 80 --insecure-skip-tls-verify", "--insecure-skip-tls-verify"),
    ("kubectl port-forward svc/web 80 --address 10.0.0.1,10.0.0.2", "one address"),
])
def test_kubectl_lines_a_profile_cannot_express_are_skipped(line: str, why: str):
    result = read_kubectl("kubectl port-forward svc/ok 81\n" + line)
    assert [p["target"] for p in result.profiles] == ["svc/ok"]
    (skipped,) = result.skipped
    assert skipped.where == "line 2" and skipped.what == "svc/web 80" and why in skipped.why


@pytest.mark.parametrize("line, fragment", [
    ("kubectl get pods", 'got kubectl "get"'),
    ("echo kubectl port-forward svc/web 80", 'got "echo"'),
    ("kubectl port-forward svc/web", "needs a target and at least one port"),
    ("kubectl port-forward svc/web 99999", "99999 is out of range"),
    ("kubectl port-forward foo/web 80", 'unknown resource kind "foo"'),
    ("kubectl port-forward svc/web 80 --bogus", 'unknown flag "--bogus"'),
    ("kubectl port-forward svc/web 80 -n", "flag -n needs a value"),
    ("kubectl port-forward 'svc/web 80", "cannot split the line"),
])
def test_kubectl_bad_lines_name_the_line(line: str, fragment: str):
    with pytest.raises(UsageError) as info:
        read_kubectl("kubectl port-forward svc/ok 80\n\n" + line, source="f.sh")
    text = str(info.value)
    assert text.startswith("f.sh:3: ") and fragment in text and "\n" not in text


@pytest.mark.parametrize("line, fragment", [
    ("kubectl port-forward svc/dns 5353:53/udp", "takes no /tcp or /udp"),
    ("kubectl port-forward svc/web 8080:80/tcp", "takes no /tcp or /udp"),
    ("kubectl port-forward host/db.internal 5432", "takes no host/ or ip/ targets"),
])
def test_kubectl_lines_stay_tcp_to_pods(line: str, fragment: str):
    with pytest.raises(UsageError) as info:
        read_kubectl(line + "\n", "f.sh")
    assert str(info.value).startswith("f.sh:1: ") and fragment in str(info.value)


# ------------------------------------------------------------------ kftray
def kftray(**fields) -> dict:
    """One config of kftray's JSON export (kftray's Config, crates/kftray-commons/src/models/config_model.rs)."""
    return {"service": "web", "namespace": "demo", "local_port": 8080, "remote_port": 80, "context": "c",
            "workload_type": "service", "protocol": "tcp", **fields}


def test_kftray_service_configs():
    result = read_kftray([kftray(alias="my web", local_address="127.0.0.5", auto_loopback_address=True),
                          kftray(local_port=None, remote_port=5432, service="db", namespace="", context=None),
                          kftray(service="api", auto_loopback_address=True)])
    assert result.profiles == [
        {"name": "my-web", "context": "c", "namespace": "demo", "target": "svc/web", "ports": ["8080:80"],
         "address": "127.0.0.5"},
        {"name": "db", "target": "svc/db", "ports": ["5432"]},
        {"name": "api", "context": "c", "namespace": "demo", "target": "svc/api", "ports": ["8080:80"],
         "address": "auto"},
    ]
    assert result.origins == [(None, "[0]"), (None, "[1]"), (None, "[2]")]
    assert result.pod_ports == {0, 1, 2}  # kftray's remote_port is the pods' port, for the caller to translate


def test_kftray_proxy_and_udp_configs_become_relay_profiles():
    proxy = {"workload_type": "proxy", "service": None, "namespace": "default"}
    result = read_kftray([kftray(alias="dns", protocol="udp", local_port=5353, remote_port=53),
                          kftray(alias="outside", remote_address="DB.example.com", local_port=15432,
                                 remote_port=5432, **proxy),
                          kftray(remote_address="10.0.3.7", local_port=0, remote_port=53, protocol="udp", **proxy),
                          kftray(alias="v6", remote_address="fd00::7", local_port=None, remote_port=443, **proxy)])
    assert result.profiles == [
        {"name": "dns", "context": "c", "namespace": "demo", "target": "svc/web", "ports": ["5353:53/udp"]},
        {"name": "outside", "context": "c", "namespace": "default", "target": "host/db.example.com",
         "ports": ["15432:5432"]},
        {"name": "10.0.3.7", "context": "c", "namespace": "default", "target": "ip/10.0.3.7", "ports": [":53/udp"]},
        {"name": "v6", "context": "c", "namespace": "default", "target": "ip/fd00::7", "ports": ["443"]},
    ]
    assert result.skipped == []
    assert result.pod_ports == {0}  # a proxy's remote_port is the remote host's: nothing to translate


@pytest.mark.parametrize("fields, fragment", [
    ({"workload_type": "proxy"}, "[0]: missing 'remote_address'"),
    ({"workload_type": "proxy", "remote_address": "db_internal"}, "[0]: invalid host name"),
    ({"workload_type": "proxy", "remote_address": 7}, "[0]: remote_address: expected str"),
])
def test_kftray_bad_proxy_configs(fields: dict, fragment: str):
    with pytest.raises(UsageError) as info:
        read_kftray([kftray(**fields)], "k.json")
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("fields, why", [
    ({"protocol": "sctp"}, "protocol sctp"),
    ({"workload_type": "pod", "target": "app=web"}, "label selector"),
    ({"workload_type": "expose"}, "exposes a local port"),
])
def test_kftray_entries_tender_cannot_express_are_skipped(fields: dict, why: str):
    result = read_kftray([kftray(alias="ok"), kftray(alias="odd", **fields)])
    assert [p["name"] for p in result.profiles] == ["ok"]
    (skipped,) = result.skipped
    assert (skipped.where, skipped.what) == ("[1]", "odd") and why in skipped.why


@pytest.mark.parametrize("data, fragment", [
    ({"service": "web"}, "expected a JSON list"),
    (["web"], "[0]: expected a kftray config"),
    ([kftray(), kftray(remote_port="80")], '[1]: remote_port: expected a port number'),
    ([kftray(local_port=70000)], "[0]: local_port: expected a port number"),
    ([kftray(service=None)], "[0]: missing 'service'"),
    ([kftray(namespace=3)], "[0]: namespace: expected str, got int"),
    ([kftray(service="Web_1")], "[0]: invalid resource name"),
    ([kftray(local_address="here")], '[0]: address "here"'),
])
def test_kftray_bad_entries(data, fragment: str):
    with pytest.raises(UsageError) as info:
        read_kftray(data, source="k.json")
    assert str(info.value).startswith("k.json") and fragment in str(info.value)


# ------------------------------------------------------------ kube-forwarder
def kube_forwarder(*services: dict, **cluster) -> dict:
    """kube-forwarder's export, version 2 (pixel-point/kube-forwarder src/renderer/lib/export.js)."""
    return {"version": 2, "clusters": [{"name": "A", "config": {"storingMethod": "content", "content": "",
                                                                 "currentContext": "ctx"},
                                        "_services": list(services), **cluster}]}


def resource(**fields) -> dict:
    return {"namespace": "demo", "workloadType": "deployment", "workloadName": "web",
            "forwards": [{"id": "1", "localPort": 8080, "remotePort": 8080}], **fields}


def test_kube_forwarder_resources():
    result = read_kube_forwarder(kube_forwarder(
        resource(alias="Web!"),
        resource(workloadType="service", forwards=[{"id": "a", "localPort": 0, "remotePort": 80},
                                                   {"id": "b", "localPort": 81, "remotePort": 80}],
                 localAddress="localhost"),
        resource(workloadType="pod", workloadName="db-0", namespace=None)))
    assert result.profiles == [
        {"name": "Web", "context": "ctx", "namespace": "demo", "target": "deploy/web", "ports": ["8080"]},
        {"name": "web", "context": "ctx", "namespace": "demo", "target": "svc/web", "ports": [":80", "81:80"],
         "address": "localhost"},
        {"name": "db-0", "context": "ctx", "target": "pod/db-0", "ports": ["8080"]},
    ]
    assert result.pod_ports == {1}


def test_kube_forwarder_context_from_the_kubeconfig_text_and_version_1():
    v2 = kube_forwarder(resource(), config={"storingMethod": "content", "content": "current-context: from-text\n"})
    assert read_kube_forwarder(v2).profiles[0]["context"] == "from-text"
    v1 = {"_clusters": [{"name": "B", "config": "kind: Config\ncurrent-context: old\n", "_services": [resource()]}]}
    assert read_kube_forwarder(v1).profiles[0]["context"] == "old"
    none = read_kube_forwarder(kube_forwarder(resource(), config={"storingMethod": "content", "content": "{"}))
    assert "context" not in none.profiles[0] and any("names no context" in n for n in none.notes)


@pytest.mark.parametrize("data, fragment", [
    ([], "expected a kube-forwarder export"),
    ({"version": 3, "clusters": []}, 'version "3" is not supported'),
    ({"version": 2, "clusters": {}}, "clusters: expected a list of clusters"),
    (kube_forwarder(resource(forwards=[])), "clusters[0]._services[0]: no forwards"),
    (kube_forwarder(resource(), resource(workloadName=None)), "clusters[0]._services[1]: missing 'workloadName'"),
    (kube_forwarder(resource(forwards=[{"localPort": 1, "remotePort": 0}])),
     "clusters[0]._services[0].forwards[0]: remotePort"),
])
def test_kube_forwarder_bad_exports(data, fragment: str):
    with pytest.raises(UsageError) as info:
        read_kube_forwarder(data, source="kf.json")
    assert str(info.value).startswith("kf.json") and fragment in str(info.value)


def test_kube_forwarder_unknown_workload_type_is_skipped():
    result = read_kube_forwarder(kube_forwarder(resource(workloadType="statefulset", alias="x"), resource()))
    assert len(result.profiles) == 1
    assert [str(s) for s in result.skipped] == ["clusters[0]._services[0] (x): unknown workloadType 'statefulset'"]


# ------------------------------------------------------------------ any
def test_detect_format_and_import_text():
    assert detect_format("\ufeff [ ]") == "kftray"
    assert detect_format('\n{"version": 2}') == "kube-forwarder"
    assert detect_format("kubectl port-forward svc/web 80") == "kubectl"
    with pytest.raises(UsageError) as info:
        import_text('[{"service": "web",\n  oops}]', source="x.json")
    assert str(info.value).startswith("x.json:2: not JSON")
    with pytest.raises(UsageError, match="a kftray export is JSON"):
        import_text("kubectl port-forward svc/web 80", "kftray")


@pytest.mark.parametrize("name", ["kubectl.txt", "kftray.json", "kube-forwarder.json", "kube-forwarder-v1.json"])
def test_each_data_file_gives_profiles(name: str):
    text = (DATA / name).read_text()
    result = import_text(text, source=name)
    assert result.profiles and len(result.origins) == len(result.profiles)
    if name.endswith(".json"):
        json.loads(text)  # the fixtures are JSON as the tools write it


def test_profile_names():
    assert profile_name("db on its own address") == "db-on-its-own-address"
    assert profile_name("--x--") == "x"
    assert profile_name("ü") == "imported"
    assert len(profile_name("a" * 100)) == 63
    named = unique_names([{"name": "web"}, {"name": "web"}, {"name": "a" * 63}], ["web", "a" * 63])
    assert [p["name"] for p in named] == ["web-2", "web-3", "a" * 61 + "-2"]


@pytest.mark.parametrize("fmt", ["auto", "kftray", "kube-forwarder"])
def test_json_nested_too_deeply_is_one_line_not_a_traceback(fmt: str):
    with pytest.raises(UsageError) as exc:
        import_text("[" * 100_000, fmt, "deep.json")
    assert "nested too deeply" in str(exc.value) and "deep.json" in str(exc.value)
