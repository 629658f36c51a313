"""``address: auto`` on the real cluster (issue 14): two Services on 5432 at once, without root, and ``tender hosts``.

Two Services, ``pg-a`` and ``pg-b``, both on port 5432 (agnhost netexec
listening on 5432, so ``/hostname`` tells which pod answered), forwarded at
the same time with ``--address auto``: each gets its own ``127.A.B.C`` and
keeps the real port.  Once as the unprivileged user ``nobody`` (``setpriv``;
the suite runs as root), in-process ``tender forward`` as a user types it;
once on a running ``tender daemon``, whose forwards ``tender ls`` and
``tender hosts`` show with their concrete addresses, and whose lines
``tender hosts --write``/``--remove`` keep in a temporary hosts file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusterlib import ROOT, Cluster, deployment_manifest
from tests.integration.daemon import Daemon
from tests.integration.engine import http_request, service_manifest
from tray.domain.addresses import auto_address
from tray.domain.hostsfile import BEGIN, END

pytestmark = pytest.mark.cluster

NAMES = ("pg-a", "pg-b")
HOSTS = "127.0.0.1\tlocalhost\n::1     localhost ip6-localhost\n# the user's own comment\n10.9.8.7  nas.lan\n"


@pytest.fixture
def two_pg(cluster: Cluster, namespace: str) -> dict[str, str]:
    """Services pg-a and pg-b on port 5432, one pod each; returns {service: its pod's name}."""
    for name in NAMES:
        cluster.apply(deployment_manifest(name, args="netexec --http-port=5432", port=5432, port_name="pg"),
                      namespace)
        cluster.apply(service_manifest(name, {"app": name}, "[{name: pg, port: 5432, targetPort: pg}]"), namespace)
    return {name: cluster.wait_ready(namespace, f"app={name}")[0] for name in NAMES}


def hostname_at(address: str, port: int = 5432) -> str:
    status, body = http_request(port, "/hostname", host=address)
    assert status == 200, body
    return body.decode()


# ---------------------------------------------------------------- as nobody
@pytest.fixture
def nobody_home(cluster: Cluster) -> Iterator[Path]:
    """A directory nobody can read: the test kubeconfig copied in, mode 0644 (its credentials are inline)."""
    if os.getuid() != 0:
        pytest.skip("needs root to run tender as another uid")
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv is missing (util-linux): cannot run tender as nobody")
    home = Path(tempfile.mkdtemp(prefix="tender-nobody-", dir="/tmp"))
    os.chmod(home, 0o755)
    shutil.copy(cluster.kubeconfig, home / "kubeconfig")
    os.chmod(home / "kubeconfig", 0o644)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


def as_nobody(home: Path, *args: str, **more_env: str) -> subprocess.Popen[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1",
           "KUBECONFIG": str(home / "kubeconfig"), **more_env}
    return subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                             "-m", "tray", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_listening(engine: subprocess.Popen[str], sock_path: Path, timeout: float = 30.0) -> None:
    """Block until the engine ``engine`` answers on ``sock_path`` (AssertionError with its stderr if it exits first)."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.poll() is not None:
            raise AssertionError(f"the engine exited ({engine.returncode}): {engine.communicate()[1][-2000:]}")
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(sock_path))
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the engine did not listen on {sock_path} within {timeout:.0f} s")


def listening(uid: int, port: int) -> list[str]:
    """The IPv4 addresses on which ``uid``'s sockets listen on ``port`` (from /proc/net/tcp), sorted."""
    out = []
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = row.split()
        address, hex_port = fields[1].split(":")
        if fields[3] == "0A" and int(hex_port, 16) == port and int(fields[7]) == uid:  # 0A: LISTEN
            out.append(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return sorted(out)


def forwarding_line(proc: subprocess.Popen[str]) -> str:
    """The first stdout line, which must be the 'Forwarding from' one (AssertionError with stderr otherwise)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "Forwarding from" not in line:
        proc.kill()
        raise AssertionError(f"no 'Forwarding from' line: {line!r}; exit {proc.wait(10)}; stderr: "
                             f"{proc.stderr.read() if proc.stderr else ''}")
    return line


def test_two_services_on_5432_at_once_as_nobody(cluster: Cluster, namespace: str, two_pg: dict[str, str],
                                                 nobody_home: Path) -> None:
    procs = {name: as_nobody(nobody_home, "forward", "--no-engine", "--address", "auto", "-n", namespace,
                             f"svc/{name}", "5432") for name in NAMES}
    try:
        for name, proc in procs.items():
            address = auto_address(cluster.context, namespace, name)
            line = forwarding_line(proc)
            assert line.startswith(f"{cluster.context}: Forwarding from {address}:5432 -> 5432 (svc/{name} in "
                                   f"{namespace}, pod {two_pg[name]})"), line
            assert os.stat(f"/proc/{proc.pid}").st_uid == 65534  # the forward itself runs as nobody
        assert auto_address(cluster.context, namespace, "pg-a") != auto_address(cluster.context, namespace, "pg-b")
        for _ in range(3):  # both at once, each to its own pod through its own address
            for name in NAMES:
                assert hostname_at(auto_address(cluster.context, namespace, name)) == two_pg[name]
        # nobody listens on 5432 on exactly the Services' two addresses (127.0.0.1:5432 is left free).
        assert listening(65534, 5432) == sorted(auto_address(cluster.context, namespace, n) for n in NAMES)
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            assert proc.wait(15) == 0, proc.stderr.read() if proc.stderr else ""


# ---------------------------------------------------------------- on the engine, and tender hosts
def test_engine_forwards_ls_and_hosts_write_remove(cluster: Cluster, namespace: str, two_pg: dict[str, str],
                                                    daemon: Daemon, nobody_home: Path) -> None:
    addresses = {name: auto_address(cluster.context, namespace, name) for name in NAMES}
    for name in NAMES:
        fwd = daemon.start_forward({"target": f"svc/{name}", "ports": ["5432"], "namespace": namespace,
                                    "address": "auto"})
        assert (fwd["address"], fwd["local_port"]) == (addresses[name], 5432)  # the listing's address is concrete
        assert hostname_at(addresses[name]) == two_pg[name]
    ls = daemon.tender("ls")
    assert ls.returncode == 0, ls.stderr
    for name in NAMES:
        assert re.search(rf"svc/{name}\s+active\s+{re.escape(addresses[name])}:5432\s", ls.stdout), ls.stdout

    # A profile with address auto for one of them (not started) adds no second line for it.
    daemon.profiles.write_text(f"version: 1\nprofiles:\n  - {{name: pg-a, target: svc/pg-a, ports: ['5432'], "
                               f"address: auto, namespace: {namespace}}}\n")
    lines = [f"{addresses[n]}  {n}  {n}.{namespace}  {n}.{namespace}.svc  {n}.{namespace}.svc.cluster.local"
             for n in NAMES]
    shown = daemon.tender("hosts")
    assert (shown.returncode, shown.stdout.splitlines(), shown.stderr) == (0, lines, "")

    hosts = nobody_home / "hosts"
    hosts.write_text(HOSTS)
    os.chmod(hosts, 0o644)
    wrote = daemon.tender("hosts", "--file", str(hosts), "--write")
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout == f"{hosts}: wrote the tender block (2 lines)\n"
    assert hosts.read_text() == HOSTS + "\n".join([BEGIN, *lines, END]) + "\n"
    assert os.stat(hosts).st_mode & 0o777 == 0o644

    # Without the right to write it (nobody, a root-owned file): one line telling to use sudo, exit 2.
    denied = as_nobody(nobody_home, "hosts", "--file", str(hosts), "--remove")
    out, err = denied.communicate(timeout=30)
    assert denied.returncode == 2, (out, err)
    assert err == (f"tender: error: hosts: cannot write {hosts}: permission denied; run it with sudo: "
                   f"sudo tender hosts --file {hosts} --remove\n")

    # One forward stopped: --write again leaves one line; --remove gives the file back byte for byte.
    pg_b = next(f for f in daemon.api("GET", "/v1/forwards").json()["forwards"] if f["target_name"] == "pg-b")
    assert daemon.api("DELETE", f"/v1/forwards/{pg_b['session_id']}").status_code == 200
    assert daemon.tender("hosts", "--file", str(hosts), "--write").returncode == 0
    assert hosts.read_text() == HOSTS + "\n".join([BEGIN, lines[0], END]) + "\n"
    removed = daemon.tender("hosts", "--file", str(hosts), "--remove")
    assert (removed.returncode, removed.stdout) == (0, f"{hosts}: removed the tender block\n")
    assert hosts.read_text() == HOSTS


def test_sudo_hosts_write_asks_the_invoking_users_engine(cluster: Cluster, namespace: str, two_pg: dict[str, str],
                                                         nobody_home: Path) -> None:
    """``sudo tender hosts --write`` by a user whose engine runs: the lines are that user's, the file root's."""
    user = nobody_home / "user"  # nobody's session: its home, runtime dir and profiles
    run_dir = Path(tempfile.mkdtemp(prefix="tn-", dir="/tmp"))
    for d in (user, run_dir):
        d.mkdir(exist_ok=True)
        os.chown(d, 65534, 65534)
        os.chmod(d, 0o700)
    (user / ".kube").mkdir()
    shutil.copy(cluster.kubeconfig, user / ".kube" / "config")  # where sudo's child finds the user's kubeconfig
    for path in (user / ".kube", user / ".kube" / "config"):
        os.chown(path, 65534, 65534)
    profiles = nobody_home / "profiles.yaml"
    profiles.write_text(f"version: 1\nprofiles:\n  - {{name: b, target: svc/pg-b, ports: ['5432'], address: auto, "
                        f"namespace: {namespace}}}\n")
    os.chmod(profiles, 0o644)
    session = {"HOME": str(user), "XDG_RUNTIME_DIR": str(run_dir), "TENDER_PROFILES": str(profiles)}
    engine = as_nobody(nobody_home, "daemon", **session)
    try:
        wait_listening(engine, run_dir / "tender" / "engine.sock")  # --detach needs it up: no race with its start
        start = as_nobody(nobody_home, "forward", "--detach", "--address", "auto", "-n", namespace, "svc/pg-a",
                          "5432", **session)
        out, err = start.communicate(timeout=60)
        assert start.returncode == 0, (out, err)
        a, b = (auto_address(cluster.context, namespace, n) for n in NAMES)
        assert hostname_at(a) == two_pg["pg-a"]

        hosts = nobody_home / "hosts"
        hosts.write_text(HOSTS)
        os.chmod(hosts, 0o644)
        # What sudo leaves of the user's environment (sudo -E keeps more; HOME and the rest are checked for
        # being the user's before they are used).
        sudo_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SUDO_UID": "65534", "SUDO_GID": "65534",
                    "SUDO_USER": "nobody", "PYTHONDONTWRITEBYTECODE": "1", **session}
        # As root, an interpreter nobody may run too (this venv's is under root's 0700 home): the system's
        # python3.11 with this checkout and the venv's libraries, which tender hosts hands to the user's run.
        python = shutil.which("python3.11", path="/usr/bin")
        if python is None:
            pytest.skip("no /usr/bin/python3.11 that nobody can run")
        sudo_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *(p for p in sys.path if "site-packages" in p)])
        done = subprocess.run([python, "-m", "tray", "hosts", "--file", str(hosts), "--write"], cwd=ROOT,
                              env=sudo_env, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, ""), done
        ns = namespace
        assert hosts.read_text() == HOSTS + "\n".join([
            BEGIN, f"{a}  pg-a  pg-a.{ns}  pg-a.{ns}.svc  pg-a.{ns}.svc.cluster.local",  # nobody's engine
            f"{b}  pg-b  pg-b.{ns}  pg-b.{ns}.svc  pg-b.{ns}.svc.cluster.local", END]) + "\n"  # nobody's profile
        assert os.stat(hosts).st_uid == 0
    finally:
        engine.terminate()
        engine.wait(30)
        shutil.rmtree(run_dir, ignore_errors=True)
