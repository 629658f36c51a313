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
from tests.ui.harness.launch import free_port
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


def exec_plugin_kubeconfig(cluster: Cluster, path: Path) -> None:
    """The cluster's context alone, its user an exec plugin named by bare name (found on PATH)."""
    single_context(cluster, path, name="login")
    cfg = yaml.safe_load(path.read_text())
    cfg["users"] = [{"name": "sso", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "fake-login", "interactiveMode": "Never"}}}]
    cfg["contexts"][0]["context"]["user"] = "sso"
    path.write_text(yaml.safe_dump(cfg))


class Login:
    """A user's files on the test desktop, their "Start at login" and the session that runs the entry."""

    def __init__(self, desktop: Desktop, cluster: Cluster, namespace: str, tmp_path: Path) -> None:
        self.desktop, self.cluster, self.out = desktop, cluster, tmp_path
        self.home = desktop.home
        # The user's plugin, in their own bin directory.
        self.marker = self.home / "fake-login.ran"
        self.plugin = self.home / ".local" / "bin" / "fake-login"
        self.plugin.parent.mkdir(parents=True, exist_ok=True)
        credential = json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                                 "status": {"token": cluster.admin_token}})
        self.plugin.write_text(PLUGIN.format(marker=self.marker, credential=credential))
        self.plugin.chmod(0o700)
        # Kubeconfig and profiles where the user keeps them (not the defaults).
        self.work = self.home / "work"
        (self.work / "kube").mkdir(parents=True)
        self.kubeconfig = self.work / "kube" / "config"
        self.local = free_port()
        (self.work / "profiles.yaml").write_text(
            "version: 1\nprofiles:\n"
            f"  - name: login-web\n    namespace: {namespace}\n    target: deploy/web\n"
            f"    ports: [\"{self.local}:8080\"]\n    autostart: true\n")
        self.procs: list[subprocess.Popen] = []
        self.menu = TrayMenu(desktop.bus)

    def write_kubeconfig(self) -> None:
        exec_plugin_kubeconfig(self.cluster, self.kubeconfig)

    def start_at_login(self) -> list[str]:
        """Turn "Start at login" on from a terminal's environment, in the installed copy
        (cwd: not the checkout); returns the entry's Exec line as a launcher reads it."""
        subprocess.run([str(USER_VENV / "bin" / "python"), "-c",
                        "from tray.ui import autostart; autostart.set_enabled(True, autostart.tender_command())"],
                       env=self.terminal(), cwd=self.work, check=True, timeout=60)
        return self.entry_argv()

    @property
    def entry(self) -> Path:
        return self.home / ".config" / "autostart" / "tender.desktop"

    def entry_argv(self) -> list[str]:
        """The login entry's Exec line as a launcher reads it."""
        return parse_exec(next(line for line in self.entry.read_text().splitlines() if line.startswith("Exec="))[5:])

    def session_argv(self, argv: list[str]) -> list[str]:
        """``argv`` as a login session starts it: nothing but HOME, the display and the bus."""
        return ["env", "-i", f"HOME={self.home}", f"DISPLAY={self.desktop.display}",
                f"DBUS_SESSION_BUS_ADDRESS={self.desktop.bus}", *argv]

    def terminal(self) -> dict[str, str]:
        """A terminal's environment: KUBECONFIG (relative), TENDER_PROFILES and a PATH with the plugin's directory."""
        return {"HOME": str(self.home), "PATH": f"{self.plugin.parent}:/usr/local/bin:/usr/bin:/bin",
                "LANG": "C.UTF-8", "KUBECONFIG": "kube/config", "TENDER_PROFILES": str(self.work / "profiles.yaml")}

    def launch(self, argv: list[str], terminal: bool = False) -> subprocess.Popen:
        """Start ``argv`` as a login session does, or with ``terminal`` from a terminal in the work directory."""
        out = open(self.out / f"tray{len(self.procs)}.out", "w")
        if terminal:
            env = {**self.terminal(), "DISPLAY": self.desktop.display, "DBUS_SESSION_BUS_ADDRESS": self.desktop.bus}
            proc = subprocess.Popen(argv, env=env, cwd=self.work, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        else:
            proc = subprocess.Popen(self.session_argv(argv), cwd=self.home, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        out.close()
        self.procs.append(proc)
        return proc

    def story(self) -> str:
        tray_log = self.home / ".local" / "state" / "tender" / "log" / "tender.log"
        outs = "".join(f"\n--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                       for p in sorted(self.out.glob("*.out")))
        return f"{outs}\n--- log\n{tray_log.read_text(errors='replace')[-3000:] if tray_log.exists() else ''}"

    def close(self) -> None:
        self.menu.close()
        for proc in self.procs:
            _stop(proc)


@pytest.fixture
def login(desktop: Desktop, cluster: Cluster, namespace: str, tmp_path: Path) -> Login:
    cluster.apply(deployment_manifest("web"), namespace)
    user = Login(desktop, cluster, namespace, tmp_path)
    yield user
    user.close()


def test_login_entry_runs_the_exec_plugin_and_starts_autostart_profiles(login: Login, namespace: str) -> None:
    [pod] = login.cluster.wait_ready(namespace, "app=web", 1)
    login.write_kubeconfig()
    argv = login.start_at_login()
    assert argv[-2:] == [str(USER_VENV / "bin" / "tender"), "tray"]
    assert f"KUBECONFIG={login.kubeconfig}" in argv  # made absolute: the session starts elsewhere
    assert not login.marker.exists()  # recording the PATH never runs a plugin

    proc = login.launch(argv)
    try:
        login.menu.wait_item(pid=proc.pid, timeout=60)
        wait_for(login.marker.exists, 60, "the exec plugin to run (found through the recorded PATH)")
        wait_for(lambda: _answers(login.local), 60, f"the autostart profile's forward on :{login.local}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}{login.story()}") from None
    assert hostname(login.local) == pod
    assert proc.poll() is None, login.story()


def test_a_missing_kubeconfig_at_login_is_a_menu_row_with_retry_and_a_second_launch_exits(
        login: Login, namespace: str) -> None:
    [pod] = login.cluster.wait_ready(namespace, "app=web", 1)
    argv = login.start_at_login()  # the kubeconfig is not there (yet): a network mount, a new laptop...
    proc = login.launch(argv)
    try:
        login.menu.wait_item(pid=proc.pid, timeout=60)
        row = login.menu.wait_for(lambda label: label.startswith("login-web  ") and label.endswith("error"),
                                  timeout=30)
        assert [c.label for c in row.children if c.type != "separator"][:2] == [
            f"{login.kubeconfig}: kubeconfig not found", "Retry"]
        # A second launch (the user clicks the launcher): it tells the first and ends.
        second = subprocess.run(login.session_argv(argv), cwd=login.home, capture_output=True, text=True, timeout=30)
        assert (second.returncode, second.stdout) == (
            0, "tender: Tender is already running (its icon is in the system tray)\n")
        wait_for(lambda: "another launch of Tender asked this one to show itself" in login.story(), 10,
                 "the first tray to hear of the second launch")
        # The kubeconfig arrives; Retry starts the profile.
        login.write_kubeconfig()
        login.menu.click_path(lambda label: label.startswith("login-web  ") and label.endswith("error"), "Retry")
        wait_for(lambda: _answers(login.local), 60, f"the profile's forward on :{login.local} after Retry")
    except AssertionError as exc:
        raise AssertionError(f"{exc}{login.story()}") from None
    assert hostname(login.local) == pod
    assert login.marker.exists()
    # (The menu follows the forward's start within a refresh interval.)
    wait_for(lambda: login.menu.find(lambda label: label.startswith("login-web  ") and label.endswith("error"))
             is None, 10, "the error row to go")


def test_a_launch_from_the_app_launcher_keeps_what_start_at_login_recorded(login: Login) -> None:
    """Issue 12 (a user test): Start at login turned on from the menu of a tray started in a
    terminal (KUBECONFIG, TENDER_PROFILES, the plugin's directory on PATH); a later tray started
    without them (the app launcher: a bare session environment) refreshes the entry but keeps them."""
    login.write_kubeconfig()
    tender = str(USER_VENV / "bin" / "tender")
    first = login.launch([tender, "tray"], terminal=True)
    try:
        login.menu.wait_item(pid=first.pid, timeout=60)
        login.menu.click_path("Start at login")
        wait_for(login.entry.is_file, 20, "the login entry")
        settings = login.home / ".config" / "tender" / "settings.json"
        wait_for(lambda: settings.is_file() and json.loads(settings.read_text()).get("start_at_login"), 20,
                 "Start at login in settings.json")
        recorded = login.entry_argv()
        assert f"KUBECONFIG={login.kubeconfig}" in recorded and f"PATH={login.terminal()['PATH']}" in recorded
        assert f"TENDER_PROFILES={login.work / 'profiles.yaml'}" in recorded and recorded[-2:] == [tender, "tray"]
        _stop(first)
        written = login.entry.stat()
        second = login.launch([tender, "tray"])
        login.menu.wait_item(pid=second.pid, timeout=60)
        # The start-up refresh rewrites the file (write then rename: a new inode) with what it recorded.
        wait_for(lambda: login.entry.stat().st_ino != written.st_ino, 30, "the start-up refresh of the entry")
        assert login.entry_argv() == recorded
        # The icon registers before the menu has its first state (tray.ui.app): wait for the item.
        login.menu.wait_for("Start at login", timeout=30, where=lambda n: n.toggle_state == 1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}{login.story()}") from None


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
