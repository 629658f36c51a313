"""Start at login.  Linux writes a real file here (in a temp HOME); the macOS
plist and the Windows Run value are checked as data only (no such systems here)."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from tray.ui import autostart


def parse_exec(value: str) -> list[str]:
    """Read an Exec= value back as a desktop launcher does (string escapes, then quoting)."""
    value = value.replace("\\\\", "\0").replace("\\s", " ").replace("\0", "\\").replace("%%", "%")
    args, cur, quoted, i, started = [], "", False, 0, False
    while i < len(value):
        c = value[i]
        if quoted and c == "\\":
            cur += value[i + 1]
            i += 2
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c == " " and not quoted:
            if cur or started:
                args.append(cur)
            cur, started = "", False
        else:
            cur += c
        i += 1
    if cur or started:
        args.append(cur)
    return args


@pytest.fixture
def home(monkeypatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return tmp_path


def exec_argv(path: Path) -> list[str]:
    text = path.read_text()
    return parse_exec(next(line for line in text.splitlines() if line.startswith("Exec="))[5:])


def test_linux_entry_written_and_removed(home: Path) -> None:
    argv = ["/opt/tender env/bin/tender", "tray", "--kubeconfig", '/home/u/k$1 "q" \\ 100%.yaml']
    env = {"HOME": str(home), "KUBECONFIG": "/home/u/k one.yaml:/home/u/k2.yaml", "PATH": "/usr/bin:/bin",
           "TENDER_PROFILES": "/home/u/p.yaml"}
    autostart.set_enabled(True, argv, env=env, platform="linux")
    path = home / ".config" / "autostart" / "tender.desktop"
    assert autostart.is_enabled(platform="linux")
    text = path.read_text()
    assert "[Desktop Entry]" in text and "Type=Application" in text and "Icon=tender" in text
    # The Desktop Entry quoting reads back to the same arguments.
    assert exec_argv(path) == ["env", "TENDER_TRAY_WAIT=60", "KUBECONFIG=/home/u/k one.yaml:/home/u/k2.yaml",
                               "PATH=/usr/bin:/bin", "TENDER_PROFILES=/home/u/p.yaml", *argv]
    assert path.stat().st_mode & 0o777 == 0o644
    autostart.set_enabled(False, argv, platform="linux")
    assert not path.exists() and not autostart.is_enabled(platform="linux")
    autostart.set_enabled(False, argv, platform="linux")  # idempotent


def test_the_entry_runs_as_written_under_a_shell_free_launcher(home: Path) -> None:
    """What a session manager does with Exec=: unquote, then exec (no shell): env prints what it got."""
    import subprocess

    env = {"HOME": str(home), "KUBECONFIG": str(home / "my kube" / "config"), "PATH": "/usr/bin:/bin",
           "TENDER_PROFILES": str(home / "p $x.yaml")}
    path = home / "e.desktop"
    path.write_text(autostart.xdg_entry(["env"], autostart.login_environment(env=env)))
    out = subprocess.run(exec_argv(path), env={}, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["TENDER_TRAY_WAIT=60", f"KUBECONFIG={home}/my kube/config", "PATH=/usr/bin:/bin",
                   f"TENDER_PROFILES={home}/p $x.yaml"]


def test_paths_in_force_are_recorded_absolute(home: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"HOME": "/home/u", "PATH": "/usr/bin", "KUBECONFIG": "a.yaml:~/b.yaml:", "TENDER_PROFILES": "p.yaml"}
    got = autostart.login_environment(env=env)
    assert got["KUBECONFIG"] == f"{tmp_path}/a.yaml:/home/u/b.yaml"
    assert got["TENDER_PROFILES"] == f"{tmp_path}/p.yaml"
    # --kubeconfig and --profiles win over the variables, as they do for the tray.
    got = autostart.login_environment("/k/c", "/p/q.yaml", env=env)
    assert (got["KUBECONFIG"], got["TENDER_PROFILES"]) == ("/k/c", "/p/q.yaml")
    # Nothing set: kubectl's default file under HOME; the default profiles file.
    monkeypatch.delenv("TENDER_PROFILES", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/home/u/cfg")
    got = autostart.login_environment(env={"HOME": "/home/u", "PATH": "/usr/bin"})
    assert got["KUBECONFIG"] == "/home/u/.kube/config"
    assert got["TENDER_PROFILES"] == "/home/u/cfg/tender/profiles.yaml"


KUBECONFIG_WITH_PLUGINS = """\
apiVersion: v1
kind: Config
current-context: a
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
contexts:
  - {name: a, context: {cluster: c, user: sso}}
  - {name: b, context: {cluster: c, user: vendor}}
  - {name: c, context: {cluster: c, user: gone}}
users:
  - name: sso
    user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: fake-login}}
  - name: vendor
    user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: ./vendor/bin/auth}}
  - name: gone
    user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: uninstalled-plugin}}
"""


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_path_finds_the_kubeconfigs_exec_plugins(tmp_path: Path) -> None:
    userbin = executable(tmp_path / "home" / ".local" / "bin" / "fake-login").parent
    kube = tmp_path / "kube"
    executable(kube / "vendor" / "bin" / "auth")
    (kube / "config").write_text(KUBECONFIG_WITH_PLUGINS)
    assert autostart.exec_commands(str(kube / "config")) == [
        "fake-login", f"{kube}/vendor/bin/auth", "uninstalled-plugin"]
    env = {"HOME": str(tmp_path / "home"), "KUBECONFIG": str(kube / "config"),
           "PATH": f"/usr/bin:{userbin}::/usr/bin"}
    # The PATH in force (empty and repeated entries dropped), then the directory of each plugin
    # found on it and not listed yet; a plugin found nowhere adds nothing.
    assert autostart.login_environment(env=env)["PATH"] == f"/usr/bin:{userbin}:{kube}/vendor/bin"
    # Not on the PATH in force: nothing to record for it (it would fail now as well).
    env["PATH"] = "/usr/bin"
    assert autostart.login_environment(env=env)["PATH"] == f"/usr/bin:{kube}/vendor/bin"


def test_a_missing_or_broken_kubeconfig_still_gives_an_entry(tmp_path: Path) -> None:
    (tmp_path / "broken").write_text("users: {not: a list}\n")
    for kubeconfig in (tmp_path / "missing", tmp_path / "broken"):
        env = {"HOME": str(tmp_path), "PATH": "/usr/bin", "KUBECONFIG": str(kubeconfig)}
        assert autostart.exec_commands(str(kubeconfig)) == []
        got = autostart.login_environment(env=env)
        assert got["KUBECONFIG"] == str(kubeconfig) and got["PATH"] == "/usr/bin"


def test_the_entry_reads_back_as_written(home: Path) -> None:
    argv = ["/opt/tender env/bin/tender", "tray", "--kubeconfig", '/home/u/k$1 "q" \\ 100%% `x`.yaml', ""]
    recorded = {"KUBECONFIG": "/home/u/k one.yaml:/home/u/k2.yaml", "PATH": "/usr/bin:/opt/a b/bin",
                "TENDER_PROFILES": "/home/u/p\tq.yaml"}
    # Given the variables to record, the entry records those (not the environment in force).
    assert autostart.set_enabled(True, argv, env={"HOME": str(home)}, recorded=recorded, platform="linux") == recorded
    path = home / ".config" / "autostart" / "tender.desktop"
    assert autostart.read_xdg_entry() == (argv, recorded)
    assert autostart.parse_desktop_exec(next(line for line in path.read_text().splitlines()
                                             if line.startswith("Exec="))[5:]) == exec_argv(path)
    assert autostart.set_enabled(False, argv, platform="linux") == {}
    assert autostart.read_xdg_entry() is None  # no entry
    path.parent.mkdir(parents=True, exist_ok=True)
    for text in ("[Desktop Entry]\n", "[Desktop Entry]\nExec=/usr/bin/tender tray\n",
                 '[Desktop Entry]\nExec=env "KUBECONFIG=/a\n', "[Desktop Entry]\nExec=env KUBECONFIG=/a\n"):
        path.write_text(text)
        assert autostart.read_xdg_entry() is None, text  # not one this code wrote: nothing to keep


def test_xdg_config_home_is_respected(home: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    autostart.set_enabled(True, ["tender", "tray"], platform="linux")
    assert (tmp_path / "cfg" / "autostart" / "tender.desktop").is_file()


def test_command_points_at_the_installed_tender() -> None:
    cmd = autostart.tender_command(["--profiles", "/p.yaml"])
    assert cmd[-3:] == ["tray", "--profiles", "/p.yaml"]
    assert Path(cmd[0]).name in ("tender", "python", "python3") or cmd[1:3] == ["-m", "tray"]


RECORDED = {"KUBECONFIG": "/Users/u/.kube/config", "PATH": "/opt/homebrew/bin:/usr/bin",
            "TENDER_PROFILES": "/Users/u/Library/Application Support/tender/profiles.yaml"}


def test_macos_launch_agent_content(home: Path) -> None:
    data = plistlib.loads(autostart.launch_agent(["/usr/local/bin/tender", "tray"], RECORDED))
    assert data["Label"] == "dev.tender.tray"
    assert data["ProgramArguments"] == ["/usr/local/bin/tender", "tray"]
    assert data["RunAtLoad"] is True
    assert data["EnvironmentVariables"] == {"TENDER_TRAY_WAIT": "60", **RECORDED}
    assert autostart.launch_agent_path() == home / "Library" / "LaunchAgents" / "dev.tender.tray.plist"


def test_windows_run_value_quotes_paths() -> None:
    assert autostart.windows_run_value([r"C:\Program Files\Tender\tender.exe", "tray"]) == \
        r'"C:\Program Files\Tender\tender.exe" tray'


def test_windows_run_value_passes_the_paths_as_options() -> None:
    recorded = {"KUBECONFIG": r"C:\Users\u\.kube\config;D:\k.yaml", "PATH": r"C:\Windows",
                "TENDER_PROFILES": r"C:\Users\u\AppData\Local\tender\profiles.yaml"}
    assert autostart.windows_run_value([r"C:\t\tender.exe", "tray"], recorded) == (
        r"C:\t\tender.exe tray --kubeconfig C:\Users\u\.kube\config;D:\k.yaml "
        r"--profiles C:\Users\u\AppData\Local\tender\profiles.yaml")
    # Given on the command line already: not twice.
    assert autostart.windows_run_value([r"C:\t\tender.exe", "tray", "--kubeconfig", r"E:\k"], recorded) == (
        r"C:\t\tender.exe tray --kubeconfig E:\k --profiles C:\Users\u\AppData\Local\tender\profiles.yaml")
