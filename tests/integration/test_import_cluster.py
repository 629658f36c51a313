"""``tender import`` asks the cluster for Services' ports (issue 14 part 4), and the imported profile runs.

kftray's export names a Service's *pods'* port (kftray's list_ports offers a
Service's targetPorts, resolved through its pods); Tender's ``svc/`` profile
names the Service's port.  On the test cluster, in a namespace of the
test's own: a Service whose named targetPort is 8080 behind port 80 is
imported as port 80, a Service that does not exist keeps its number with
one line saying so, ``tender profiles check`` accepts the file, and the
engine starts the imported profile and reaches the pod through it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.daemon import Daemon
from tests.integration.engine import hostname, service_manifest, wait_for

pytestmark = pytest.mark.cluster

LOCAL = 29341  # below the ephemeral range (32768-60999), where outgoing connections could hold it


def test_kftray_services_get_their_service_port_and_the_profile_runs(cluster: Cluster, namespace: str,
                                                                      daemon: Daemon, tmp_path: Path):
    cluster.apply(deployment_manifest("shop"), namespace)
    cluster.apply(service_manifest("shop", {"app": "shop"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    (pod,) = cluster.wait_ready(namespace, "app=shop")
    # kftray's JSON export (crates/kftray-commons/src/models/config_model.rs' Config, as its examples/ write it)
    export = tmp_path / "kftray.json"
    export.write_text(json.dumps([
        {"alias": "shop", "service": "shop", "namespace": namespace, "local_port": LOCAL, "remote_port": 8080,
         "context": cluster.context, "workload_type": "service", "protocol": "tcp"},
        {"alias": "gone", "service": "gone", "namespace": namespace, "local_port": LOCAL + 1, "remote_port": 9999,
         "context": cluster.context, "workload_type": "service", "protocol": "tcp"},
    ]))
    done = daemon.tender("import", "--kubeconfig", cluster.kubeconfig, str(export))
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "note:" in line]
    assert notes == [
        f"tender: import: note: svc/shop in {cluster.context}/{namespace}: the pods' port 8080 is Service port 80: "
        f"{LOCAL}:8080 -> {LOCAL}:80",
        f"tender: import: note: svc/gone in {cluster.context}/{namespace}: not read (services \"gone\" not found); "
        "the pods' port numbers are kept",
    ], done.stderr
    profiles = {p["name"]: p for p in yaml.safe_load(daemon.profiles.read_text())["profiles"]}
    assert profiles["shop"]["ports"] == [f"{LOCAL}:80"] and profiles["gone"]["ports"] == [f"{LOCAL + 1}:9999"]
    check = daemon.tender("profiles", "check", str(daemon.profiles))
    assert check.returncode == 0, check.stderr

    started = daemon.api("POST", "/v1/profiles/start", {"names": ["shop"]})
    assert started.status_code == 200 and started.json()["failed"] == [], started.text

    def active() -> bool:
        forwards = daemon.api("GET", "/v1/forwards").json()["forwards"]
        return any(f["profile"] == "shop" and f["status"] == "active" for f in forwards)

    wait_for(active, 30, "the imported profile to be active", interval=0.2)
    assert hostname(LOCAL) == pod
