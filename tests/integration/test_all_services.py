"""A namespace's every Service, followed (issue 14): ``tender forward --all-services`` and ``start_group``.

Five pods run agnhost netexec on distinct ports, one Service each; every
Service must answer on its own 127.A.B.C and its own port with its pod's
name, a Service created later must appear and a deleted one disappear, and
stopping the group must stop every member -- as the unprivileged user
``nobody`` for the command line.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.clusterlib import Cluster
from tests.integration.engine import pod_manifest, service_manifest, wait_for
from tray.domain.addresses import auto_address
from tray.domain.servicegroup import NamespaceSpec
from tray.engine.manager import ForwardManager

pytestmark = pytest.mark.cluster

PODS = 6  # p1..p6: netexec on 9001..9006


@pytest.fixture(scope="module")
def pods_ns(cluster: Cluster) -> str:
    """A namespace with pods p1..p6 (netexec on 9001..9006); each test makes its own Services."""
    ns = cluster.new_namespace("allsvc")
    for i in range(1, PODS + 1):
        cluster.apply(pod_manifest(f"p{i}", args=f"netexec --http-port={9000 + i}", port=9000 + i,
                                   labels={"app": f"p{i}"}), ns)
    for i in range(1, PODS + 1):
        cluster.wait_ready(ns, f"app=p{i}", 1)
    yield ns
    cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def service(name: str, pod: int, port: int, labels: dict[str, str]) -> str:
    text = service_manifest(name, {"app": f"p{pod}"}, f"[{{name: http, port: {port}, targetPort: {9000 + pod}}}]")
    lab = ", ".join(f"{k}: {v}" for k, v in labels.items())
    return text.replace(f"metadata: {{name: {name}}}", f"metadata: {{name: {name}, labels: {{{lab}}}}}")


def get_hostname(address: str, port: int, timeout: float = 5.0) -> str:
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/hostname")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, f"{address}:{port} answered {resp.status}: {body[:200]}"
        return body
    finally:
        conn.close()


def answers(address: str, port: int, expected: str, timeout: float = 30.0, alive: Any = None) -> None:
    """Poll /hostname on address:port until it answers ``expected`` (with a deadline); ``alive()``
    (if given) raises once the forwarding process is gone."""
    last: list[str] = []

    def check() -> bool:
        if alive is not None:
            try:
                alive()
            except AssertionError as exc:
                raise RuntimeError(str(exc)) from None
        try:
            name = get_hostname(address, port)
        except (OSError, AssertionError, http.client.HTTPException) as exc:
            last[:] = [f"{type(exc).__name__}: {exc}"]
            return False
        last[:] = [name]
        return name == expected

    try:
        wait_for(check, timeout, f"{address}:{port} to answer {expected}", interval=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last: {last}") from None


def refuses(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def test_start_group_follows_services_and_stop_stops_all(cluster: Cluster, pods_ns: str,
                                                         manager: ForwardManager) -> None:
    ns, ctx = pods_ns, cluster.context
    for i in range(1, 3):
        cluster.apply(service(f"g{i}", i, 7000 + i, {"suite": "engine"}), ns)
    cluster.apply(service("other", 3, 7100, {"suite": "neither"}), ns)  # not selected
    gid = manager.start_group(NamespaceSpec(ctx, ns, "suite=engine"))
    for i in range(1, 3):
        answers(auto_address(ctx, ns, f"g{i}"), 7000 + i, f"p{i}")
    members = [s for s in manager.list() if s.group == gid]
    assert sorted((s.target, s.address, s.local_port, s.status) for s in members) == [
        ("svc/g1", auto_address(ctx, ns, "g1"), 7001, "active"),
        ("svc/g2", auto_address(ctx, ns, "g2"), 7002, "active")]
    assert manager.group(gid).status == "active" and len(manager.group(gid).members) == 2
    assert refuses(auto_address(ctx, ns, "other"), 7100)
    manager.stop(gid)
    assert manager.list() == [] and manager.groups() == []
    for i in range(1, 3):
        assert refuses(auto_address(ctx, ns, f"g{i}"), 7000 + i)
    wait_for(lambda: not manager.watch_keys(), 5, "every watch released")


class Nobody:
    """``tender forward --all-services -o json`` run as the unprivileged user ``nobody``; its events collected."""

    def __init__(self, cluster: Cluster, *args: str) -> None:
        if os.getuid() != 0:
            pytest.skip("needs root to run tender as another uid")
        if shutil.which("setpriv") is None:
            pytest.fail("setpriv is missing (util-linux): cannot run tender as nobody")
        # A kubeconfig nobody may read (the admin token context; no key files), in a home of its own
        # (pytest's tmp_path lies under a 0700 directory).
        home = Path(tempfile.mkdtemp(prefix="tender-nobody-"))
        self.home = home
        os.chmod(home, 0o777)
        kubeconfig = home / "kubeconfig"
        shutil.copy(cluster.kubeconfig, kubeconfig)
        os.chmod(kubeconfig, 0o644)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "KUBECONFIG": str(kubeconfig),
               "XDG_RUNTIME_DIR": str(home), "XDG_CONFIG_HOME": str(home / "config"), "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
             "import sys; from tray.cli import main; sys.exit(main(sys.argv[1:]))",
             "forward", "--all-services", "--context", cluster.context, "-o", "json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    def status_of(self, target: str) -> dict[str, Any] | None:
        with self._lock:
            found = [e for e in self.events if e.get("event") == "status" and e.get("target") == target]
        return found[-1] if found else None

    def alive(self) -> None:
        assert self.proc.poll() is None, f"tender exited with {self.proc.returncode}; {self.why()}"

    def listed(self) -> list[str]:
        """The targets of the newest list event."""
        with self._lock:
            lists = [e for e in self.events if e.get("event") == "list"]
        return sorted(f["target"] for f in lists[-1]["forwards"]) if lists else []

    def stop(self) -> int:
        shutil.rmtree(self.home, ignore_errors=True)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def why(self) -> str:
        return "stderr: " + "".join(self.stderr[-20:])


def test_all_services_as_nobody(cluster: Cluster, pods_ns: str) -> None:
    ns, ctx = pods_ns, cluster.context
    for i in range(1, 6):
        cluster.apply(service(f"s{i}", i, 8000 + i, {"suite": "cli"}), ns)
    # Port 80 is privileged (net.ipv4.ip_unprivileged_port_start is 1024 here): nobody cannot listen on it.
    cluster.apply(service("priv", 1, 80, {"suite": "cli"}), ns)
    cluster.apply(f"""
apiVersion: v1
kind: Service
metadata: {{name: ext, labels: {{suite: cli}}}}
spec: {{type: ExternalName, externalName: example.com}}
""", ns)
    run = Nobody(cluster, "-n", ns, "-l", "suite=cli")
    try:
        for i in range(1, 6):
            answers(auto_address(ctx, ns, f"s{i}"), 8000 + i, f"p{i}", alive=run.alive)
        five = {auto_address(ctx, ns, f"s{i}") for i in range(1, 6)}
        assert len(five) == 5, "each Service has its own address"

        # The privileged port: an error that says what to do; the others are unaffected.
        priv = wait_for(lambda: (s := run.status_of("svc/priv")) and s["status"] == "error" and s, 20,
                        "svc/priv in error")
        assert "permission denied" in priv["status_reason"].lower(), priv
        assert "sysctl -w net.ipv4.ip_unprivileged_port_start=80" in priv["status_reason"], priv
        assert run.status_of("svc/ext") is None  # ExternalName: skipped
        with run._lock:
            groups = {e["group"] for e in run.events if e.get("event") == "status"}
        assert len(groups) == 1 and None not in groups, groups  # every member carries its group's id

        # A Service created later appears.
        cluster.apply(service("s6", 6, 8006, {"suite": "cli"}), ns)
        answers(auto_address(ctx, ns, "s6"), 8006, "p6", timeout=15, alive=run.alive)

        # A deleted one disappears (its forward stops: the port refuses); the others go on.
        cluster.kubectl("delete", "service", "s2", "-n", ns)
        wait_for(lambda: "svc/s2" not in run.listed(), 15, "svc/s2's forward to leave the list")
        assert refuses(auto_address(ctx, ns, "s2"), 8002)
        assert run.listed() == ["svc/priv", "svc/s1", "svc/s3", "svc/s4", "svc/s5", "svc/s6"]
        assert get_hostname(auto_address(ctx, ns, "s3"), 8003) == "p3"

        # Stopping the group (SIGINT) stops all.
        assert run.stop() == 0, run.why()
        for i in (1, 3, 4, 5, 6):
            assert refuses(auto_address(ctx, ns, f"s{i}"), 8000 + i), f"s{i} still listens"
    except BaseException:
        run.stop()
        print(run.why())
        raise


def test_a_namespace_profile_starts_a_group_and_stops_as_a_whole(cluster: Cluster, pods_ns: str,
                                                                 manager: ForwardManager) -> None:
    from tray.profiles import parse_profiles
    from tray.profiles.run import start_profile

    ns, ctx = pods_ns, cluster.context
    for i in (4, 5):
        cluster.apply(service(f"prof{i}", i, 7200 + i, {"suite": "profile"}), ns)
    (prof,) = parse_profiles(f"""version: 1
profiles:
  - name: everything
    context: {ctx}
    target: namespace/{ns}
    selector: suite=profile
""").profiles
    assert start_profile(manager, prof, None) == []
    assert start_profile(manager, prof, None) == []  # started once
    for i in (4, 5):
        answers(auto_address(ctx, ns, f"prof{i}"), 7200 + i, f"p{i}")
    (group,) = manager.groups()
    assert group.profile == "everything"
    members = manager.list()
    assert {(s.profile, s.group) for s in members} == {("everything", group.id)} and len(members) == 2
    # What the tray's and the API's profile stop do: stop its forwards by id; the first stops the group.
    manager.stop(members[0].id)
    assert manager.list() == [] and manager.groups() == []
    for i in (4, 5):
        assert refuses(auto_address(ctx, ns, f"prof{i}"), 7200 + i)
