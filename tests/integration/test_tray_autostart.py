"""Start at login, as a login session runs it, against the real test cluster.

A user whose kubeconfig (not at the default place) authenticates through an
exec credential plugin in their own bin directory turns "Start at login" on
(the code path the menu uses, in the plain install ``.venv-user``, from a
terminal's environment: KUBECONFIG, TENDER_PROFILES and a PATH with
``~/.local/bin``).  Then the autostart entry's ``Exec=`` line runs as a
session manager runs it: under ``env -i`` with only HOME, DISPLAY and the
session bus address, on a test desktop (tests/ui/harness: Xvfb, a private
bus, xfce4-panel).  The plugin must run (found through the recorded PATH)
and the profile marked ``autostart: true`` must reach its pod.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import hostname, wait_for
from tests.integration.kubeconfigs import single_context
from tests.ui.harness.app import USER_VENV, user_venv_problem
from tests.ui.harness.dbusmenu import TrayMenu
from tests.ui.harness.desktop import Desktop, missing_desktop
from tests.ui.test_autostart import parse_exec

pytestmark = pytest.mark.cluster

PLUGIN = """#!/bin/sh
# A stand-in for aws/gcloud/kubelogin: say it ran, print an ExecCredential.
touch {marker}
cat <<'EOF'
{credential}
EOF
"""


@pytest.fixture
def desktop() -> Desktop:
    missing = missing_desktop()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (tests/debian-packages.txt)")
    problem = user_venv_problem()
    if problem:
        raise AssertionError(problem)
    d = Desktop().start()
    yield d
    d.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exec_plugin_kubeconfig(cluster: Cluster, path: Path) -> None:
    """The cluster's context alone, its user an exec plugin named by bare name (found on PATH)."""
    single_context(cluster, path, name="login")
    cfg = yaml.safe_load(path.read_text())
    cfg["users"] = [{"name": "sso", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "fake-login", "interactiveMode": "Never"}}}]
    cfg["contexts"][0]["context"]["user"] = "sso"
    path.write_text(yaml.safe_dump(cfg))


def test_login_entry_runs_the_exec_plugin_and_starts_autostart_profiles(
        desktop: Desktop, cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.apply(deployment_manifest("web"), namespace)
    [pod] = cluster.wait_ready(namespace, "app=web", 1)
    home = desktop.home
    # The user's plugin, in their own bin directory.
    marker = home / "fake-login.ran"
    plugin = home / ".local" / "bin" / "fake-login"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    credential = json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                             "status": {"token": cluster.admin_token}})
    plugin.write_text(PLUGIN.format(marker=marker, credential=credential))
    plugin.chmod(0o700)
    # Kubeconfig and profiles where the user keeps them (not the defaults).
    work = home / "work"
    (work / "kube").mkdir(parents=True)
    exec_plugin_kubeconfig(cluster, work / "kube" / "config")
    local = free_port()
    (work / "profiles.yaml").write_text(
        "version: 1\nprofiles:\n"
        f"  - name: login-web\n    namespace: {namespace}\n    target: deploy/web\n"
        f"    ports: [\"{local}:8080\"]\n    autostart: true\n")

    # "Start at login", from a terminal's environment, in the installed copy (cwd: not the checkout).
    terminal = {"HOME": str(home), "PATH": f"{plugin.parent}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                "KUBECONFIG": "kube/config", "TENDER_PROFILES": str(work / "profiles.yaml")}
    subprocess.run([str(USER_VENV / "bin" / "python"), "-c",
                    "from tray.ui import autostart; autostart.set_enabled(True, autostart.tender_command())"],
                   env=terminal, cwd=work, check=True, timeout=60)
    entry = home / ".config" / "autostart" / "tender.desktop"
    exec_line = next(line for line in entry.read_text().splitlines() if line.startswith("Exec="))[5:]
    argv = parse_exec(exec_line)
    assert argv[-2:] == [str(USER_VENV / "bin" / "tender"), "tray"]
    assert f"KUBECONFIG={work}/kube/config" in argv  # made absolute: the session starts elsewhere
    assert not marker.exists()  # recording the PATH never runs a plugin

    # The login session: nothing but HOME, the display and the bus.
    log = open(tmp_path / "tray.out", "w")
    proc = subprocess.Popen(["env", "-i", f"HOME={home}", f"DISPLAY={desktop.display}",
                             f"DBUS_SESSION_BUS_ADDRESS={desktop.bus}", *argv],
                            cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    menu = TrayMenu(desktop.bus)
    try:
        def story() -> str:
            tray_log = home / ".local" / "state" / "tender" / "log" / "tender.log"
            return (f"\n--- output\n{(tmp_path / 'tray.out').read_text(errors='replace')[-3000:]}"
                    f"\n--- log\n{tray_log.read_text(errors='replace')[-3000:] if tray_log.exists() else ''}")

        try:
            menu.wait_item(pid=proc.pid, timeout=60)
            wait_for(marker.exists, 60, "the exec plugin to run (found through the recorded PATH)")
            wait_for(lambda: _answers(local), 60, f"the autostart profile's forward on :{local}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}{story()}") from None
        assert hostname(local) == pod
        assert proc.poll() is None, story()
    finally:
        menu.close()
        _stop(proc)
        log.close()


def _answers(port: int) -> bool:
    try:
        hostname(port, timeout=2)
        return True
    except Exception:  # refused, reset, not HTTP yet
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
