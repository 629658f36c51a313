"""`tender install-service`: the systemd user unit (written for real, in a temp HOME), read back
by the rules of systemd.syntax(7) and by `systemd-analyze verify`; the systemctl calls (a recording
stand-in where a user manager would answer, the real systemctl where none does: this machine);
the macOS LaunchAgent as data; the Windows refusal."""

from __future__ import annotations

import json
import os
import plistlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tray.errors import TenderError, UsageError
from tray.ui import service
from tray.ui.service import install_service, systemd_unit

TENDER = str(Path(sys.executable).parent / "tender")
#: Characters systemd treats specially in a unit: quotes, backslash, specifiers, variables.
AWKWARD = "my tender 100% $HOME \"q\" 'x' \\n"


# ------------------------------------------------------------------ reading a unit back as systemd does
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "s": " "}


def _words(value: str) -> list[str]:
    """systemd.syntax(7) "Quoting": words split on blanks, "..." or '...' around a whole word,
    C escapes (the subset of the table a unit may hold) inside and outside quotes."""
    words: list[str] = []
    i = 0
    while i < len(value):
        if value[i] in " \t":
            i += 1
            continue
        quote = value[i] if value[i] in "\"'" else None
        i += 1 if quote else 0
        word = []
        while i < len(value):
            c = value[i]
            if c == "\\":
                nxt = value[i + 1]
                if nxt == "x":
                    word.append(chr(int(value[i + 2:i + 4], 16)))
                    i += 4
                    continue
                assert nxt in _ESCAPES, f"unknown escape \\{nxt} in {value!r}"
                word.append(_ESCAPES[nxt])
                i += 2
                continue
            if quote and c == quote:
                i += 1
                assert i == len(value) or value[i] in " \t", f"a closing quote not followed by a blank in {value!r}"
                break
            if not quote and c in " \t":
                break
            word.append(c)
            i += 1
        else:
            assert not quote, f"unterminated quote in {value!r}"
        words.append("".join(word))
    return words


def _specifiers(word: str) -> str:
    """systemd.unit(5) "Specifiers": the unit writes none but "%%" (a literal %)."""
    assert re.fullmatch(r"([^%]|%%)*", word), f"a specifier other than %% in {word!r}"
    return word.replace("%%", "%")


def _variables(word: str) -> str:
    """systemd.service(5) "Command lines": "$$" is a literal $; the unit expands no variable."""
    assert re.fullmatch(r"([^$]|\$\$)*", word), f"a variable expansion in {word!r}"
    return word.replace("$$", "$")


def read_unit(path: Path) -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    """``(argv, environment, settings)`` of a unit: ExecStart= as systemd executes it (the
    executable's path taken as written, its arguments variable-expanded), Environment= as set,
    and every line's raw values by key."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    env: dict[str, str] = {}
    for value in settings.get("Environment", []):
        for word in _words(value):
            name, _, val = _specifiers(word).partition("=")
            env[name] = val
    (exec_start,) = settings["ExecStart"]
    first, *rest = [_specifiers(w) for w in _words(exec_start)]
    return [first, *(_variables(w) for w in rest)], env, settings


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def environment(home: Path, **extra: str) -> dict[str, str]:
    """The environment install-service is given: plain data, no os.environ."""
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "KUBECONFIG": str(home / "kube config"),
            "TENDER_PROFILES": str(home / "profiles.yaml"), **extra}


@pytest.fixture
def fake_systemctl(tmp_path: Path) -> tuple[str, Path]:
    """A systemctl whose user manager answers: it logs each call's arguments (one line each) and
    exits with $FAKE_<VERB>_EXIT (default 0), printing $FAKE_<VERB>_ERR on stderr."""
    log = tmp_path / "systemctl.log"
    script = tmp_path / "bin" / "systemctl"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'verb=$(echo "$2" | tr a-z- A-Z_)\n'
        'eval "err=\\${FAKE_${verb}_ERR:-}; code=\\${FAKE_${verb}_EXIT:-0}"\n'
        '[ -n "$err" ] && echo "$err" >&2\n'
        'exit "$code"\n')
    script.chmod(0o755)
    return str(script), log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# ------------------------------------------------------------------ the unit
def test_unit_for_a_given_environment(home: Path) -> None:
    argv = ["/opt/tender/bin/tender", "daemon"]
    env = {"KUBECONFIG": "/home/u/.kube/config", "PATH": "/usr/bin:/bin", "TENDER_PROFILES": "/home/u/p.yaml"}
    assert systemd_unit(argv, env).splitlines() == [
        "# Written by `tender install-service`; `tender install-service --remove` removes it.",
        "[Unit]",
        "Description=Tender: Kubernetes port-forwards (the profiles with autostart: true)",
        "Documentation=https://github.com/kube-tender/kube-tender",
        "",
        "[Service]",
        "Type=simple",
        "Environment=KUBECONFIG=/home/u/.kube/config",
        "Environment=PATH=/usr/bin:/bin",
        "Environment=TENDER_PROFILES=/home/u/p.yaml",
        "ExecStart=/opt/tender/bin/tender daemon",
        "Restart=on-failure",
        "RestartSec=5",
        "RestartPreventExitStatus=3",
        "",
        "[Install]",
        "WantedBy=default.target",
    ]


def test_install_writes_the_unit_under_xdg_config_home(home: Path, tmp_path: Path) -> None:
    said: list[str] = []
    env = environment(home, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    install_service(env=env, platform="linux", systemctl="", say=said.append)
    path = tmp_path / "xdg" / "systemd" / "user" / "tender.service"
    argv, unit_env, settings = read_unit(path)
    # Nothing given on the command line: the daemon reads the recorded variables.
    assert argv == [TENDER, "daemon"]
    assert unit_env == {"KUBECONFIG": str(home / "kube config"), "PATH": "/usr/bin:/bin",
                        "TENDER_PROFILES": str(home / "profiles.yaml")}
    assert settings["Restart"] == ["on-failure"] and settings["RestartSec"] == ["5"]
    assert settings["WantedBy"] == ["default.target"]
    assert not any(k in settings for k in ("After", "Wants", "Requires", "PartOf"))  # nothing graphical
    assert path.stat().st_mode & 0o777 == 0o644
    assert said[0] == f"wrote {path} (runs {TENDER} daemon)"
    assert not (home / ".config").exists()


def test_options_are_passed_on_absolute_and_quoted(home: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Spaces, quotes, backslashes, % (specifiers) and $ (variables) in every path come back as typed."""
    monkeypatch.chdir(tmp_path)
    weird = home / AWKWARD
    weird.mkdir()
    plugin_dir = home / "plugins 50%"
    plugin_dir.mkdir()
    (plugin_dir / "kubelogin").write_text("#!/bin/sh\n")
    (plugin_dir / "kubelogin").chmod(0o755)
    (weird / "config").write_text("users:\n- name: u\n  user:\n    exec:\n      command: kubelogin\n")
    env = environment(home, PATH=f"/usr/bin:{plugin_dir}")
    install_service(kubeconfig=f"~/{AWKWARD}/config", profiles=f"{AWKWARD}.yaml", env=env, platform="linux",
                    systemctl="", say=lambda line: None)
    path = home / ".config" / "systemd" / "user" / "tender.service"
    argv, unit_env, settings = read_unit(path)
    assert argv == [TENDER, "daemon", "--kubeconfig", str(weird / "config"),
                    "--profiles", str(tmp_path / f"{AWKWARD}.yaml")]
    assert unit_env == {"KUBECONFIG": str(weird / "config"), "PATH": f"/usr/bin:{plugin_dir}",
                        "TENDER_PROFILES": str(tmp_path / f"{AWKWARD}.yaml")}
    # As written: % doubled everywhere, $ doubled in the command line only.
    assert "100%% $$HOME" in settings["ExecStart"][0] and "100%% $HOME" in settings["Environment"][0]


def test_control_characters_are_refused(home: Path, tmp_path: Path) -> None:
    with pytest.raises(TenderError, match="cannot write the unit: .*control character"):
        install_service(profiles=str(home / "a\nb.yaml"), env=environment(home), platform="linux",
                        systemctl="", say=lambda line: None)
    assert not (home / ".config" / "systemd").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (the systemd package, not in tests/debian-packages.txt)")
def test_systemd_analyze_verify_accepts_the_unit(home: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd itself reads the unit: verify finds the executable through a path with spaces, % and $
    (it says "not executable" for a path it read differently, and refuses quotes: both checked)."""
    bindir = tmp_path / "venv my tender 100% $HOME" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "tender").symlink_to(TENDER)
    monkeypatch.setattr(service, "tender_command", lambda extra=(): [str(bindir / "tender"), "tray", *extra])
    install_service(kubeconfig=str(home / f"{AWKWARD}.yaml"), env=environment(home), platform="linux",
                    systemctl="", say=lambda line: None)
    path = home / ".config" / "systemd" / "user" / "tender.service"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    verify_env = {"HOME": str(home), "PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime)}

    def verify(text: str) -> subprocess.CompletedProcess[str]:
        unit = tmp_path / "verify" / "tender.service"
        unit.parent.mkdir(exist_ok=True)
        unit.write_text(text)
        return subprocess.run(["systemd-analyze", "--user", "verify", str(unit)], env=verify_env,
                              capture_output=True, text=True, timeout=60)

    text = path.read_text()
    result = verify(text)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # The controls: $ doubled in the executable is read as "$$"; a quote in it is refused.
    result = verify(text.replace("venv my tender 100%% $HOME", "venv my tender 100%% $$HOME"))
    assert result.returncode != 0
    assert f"{tmp_path}/venv my tender 100% $$HOME/bin/tender is not executable" in result.stderr
    result = verify(text.replace("venv my tender 100%% $HOME", "venv my tender \\'q"))
    assert result.returncode != 0 and "Executable name contains special characters" in result.stderr


@pytest.mark.parametrize("char", ["'", '"', "\\"])
def test_an_executable_systemd_refuses_is_one_line(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   char: str) -> None:
    tender = f"/opt/o{char}brien/bin/tender"
    monkeypatch.setattr(service, "tender_command", lambda extra=(): [tender, "tray", *extra])
    with pytest.raises(TenderError) as err:
        install_service(env=environment(home), platform="linux", systemctl="", say=lambda line: None)
    assert str(err.value) == ("cannot write the unit: systemd refuses to run an executable whose path has "
                              f"a quote or a backslash: {tender}")


def test_the_unit_command_line_runs_with_its_environment(home: Path, tmp_path: Path) -> None:
    """ExecStart= parsed back from the file and run as systemd runs it: that environment only (plus
    what a user manager adds: HOME, XDG_RUNTIME_DIR)."""
    kubeconfig = home / "kube config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    profiles = home / "p 100%.yaml"
    profiles.write_text("version: 1\nprofiles: []\n")
    install_service(kubeconfig=str(kubeconfig), profiles=str(profiles), env=environment(home), platform="linux",
                    systemctl="", say=lambda line: None)
    argv, unit_env, _ = read_unit(home / ".config" / "systemd" / "user" / "tender.service")
    assert argv == [TENDER, "daemon", "--kubeconfig", str(kubeconfig), "--profiles", str(profiles)]
    runtime = Path(tempfile.mkdtemp(prefix="tender-svc-"))  # short: a socket path has at most 107 bytes
    manager_env = {**unit_env, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    result = subprocess.run([argv[0], "--version"], env=manager_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("tender "), result.stderr
    daemon = subprocess.Popen(argv, env=manager_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        engine = _get_json(runtime / "tender" / "engine.sock", "/v1/engine", daemon)
        assert (engine["host"], engine["kubeconfig"], engine["profiles"]) == ("daemon", [str(kubeconfig)],
                                                                             str(profiles))
        daemon.send_signal(signal.SIGTERM)  # what systemctl stop sends
        assert daemon.wait(timeout=30) == 0, daemon.communicate()[0]
    finally:
        if daemon.poll() is None:
            daemon.kill()
        daemon.communicate()
        shutil.rmtree(runtime, ignore_errors=True)


def _get_json(sock: Path, path: str, process: subprocess.Popen[str]) -> dict:
    """GET ``path`` on the engine's socket, waiting up to 30 s for it to listen."""
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"the daemon exited {process.returncode}: {process.communicate()[0]}"
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(sock))
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: tender\r\nConnection: close\r\n\r\n".encode())
                answer = b"".join(iter(lambda: s.recv(65536), b""))
            break
        except (FileNotFoundError, ConnectionRefusedError):
            assert time.monotonic() < deadline, f"nothing listens on {sock} after 30 s"
            time.sleep(0.1)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    return json.loads(body)


# ------------------------------------------------------------------ systemctl
def test_install_enables_and_starts_when_a_user_manager_answers(home: Path, fake_systemctl) -> None:
    systemctl, log = fake_systemctl
    said: list[str] = []
    install_service(env=environment(home), platform="linux", systemctl=systemctl, say=said.append)
    path = home / ".config" / "systemd" / "user" / "tender.service"
    assert calls(log) == ["--user show-environment", "--user daemon-reload", "--user enable --now tender.service"]
    assert said == [f"wrote {path} (runs {TENDER} daemon)", "ran systemctl --user daemon-reload",
                    "ran systemctl --user enable --now tender.service"]


def test_reinstall_over_a_running_service_says_how_to_apply_it(home: Path, fake_systemctl) -> None:
    systemctl, log = fake_systemctl
    install_service(env=environment(home), platform="linux", systemctl=systemctl, say=lambda line: None)
    log.unlink()
    said: list[str] = []
    install_service(profiles=str(home / "other.yaml"), env=environment(home), platform="linux",
                    systemctl=systemctl, say=said.append)
    assert calls(log) == ["--user show-environment", "--user is-active --quiet tender.service",
                          "--user daemon-reload", "--user enable --now tender.service"]
    assert said[-1] == ("tender.service was already running the previous unit; this one applies after: "
                        "systemctl --user restart tender.service (it restarts the forwards)")


def test_a_failing_systemctl_is_one_line_after_what_was_done(home: Path, fake_systemctl) -> None:
    systemctl, log = fake_systemctl
    env = environment(home, FAKE_ENABLE_EXIT="1", FAKE_ENABLE_ERR="Failed to enable unit: boom")
    said: list[str] = []
    with pytest.raises(TenderError) as err:
        install_service(env=env, platform="linux", systemctl=systemctl, say=said.append)
    assert str(err.value) == "systemctl --user enable --now tender.service failed: Failed to enable unit: boom"
    assert said[1:] == ["ran systemctl --user daemon-reload"]
    assert (home / ".config" / "systemd" / "user" / "tender.service").is_file()


def test_without_a_user_manager_it_prints_the_commands(home: Path) -> None:
    """This machine's real systemctl: no user manager answers (no session bus, no lingering)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        pytest.skip("systemctl is not installed (the systemd package, not in tests/debian-packages.txt)")
    runtime = home / "runtime"
    runtime.mkdir(mode=0o700)
    env = environment(home, XDG_RUNTIME_DIR=str(runtime))
    said: list[str] = []
    install_service(env=env, platform="linux", systemctl=systemctl, say=said.append)
    assert len(said) == 2 and said[1].startswith("no systemd user manager answers (")
    assert said[1].endswith("); to start it now and at every login, run: "
                            "systemctl --user daemon-reload && systemctl --user enable --now tender.service")
    # Enabled by hand (systemctl edits the files without a manager), then removed: the link goes too.
    subprocess.run([systemctl, "--user", "enable", "tender.service"], env=env, check=True,
                   capture_output=True, timeout=60)
    link = home / ".config" / "systemd" / "user" / "default.target.wants" / "tender.service"
    assert link.is_symlink()
    said.clear()
    install_service(remove=True, env=env, platform="linux", systemctl=systemctl, say=said.append)
    unit = home / ".config" / "systemd" / "user" / "tender.service"
    assert said == ["ran systemctl --user disable tender.service", f"removed {unit}"]
    assert not unit.exists() and not link.is_symlink()


def test_remove_disables_stops_and_deletes(home: Path, fake_systemctl) -> None:
    systemctl, log = fake_systemctl
    install_service(env=environment(home), platform="linux", systemctl=systemctl, say=lambda line: None)
    log.unlink()
    said: list[str] = []
    install_service(remove=True, env=environment(home), platform="linux", systemctl=systemctl, say=said.append)
    path = home / ".config" / "systemd" / "user" / "tender.service"
    assert calls(log) == ["--user show-environment", "--user disable --now tender.service", "--user daemon-reload"]
    assert said == ["ran systemctl --user disable --now tender.service", f"removed {path}",
                    "ran systemctl --user daemon-reload"]
    assert not path.exists()


def test_remove_of_nothing_says_so(home: Path, fake_systemctl) -> None:
    systemctl, log = fake_systemctl
    said: list[str] = []
    install_service(remove=True, env=environment(home), platform="linux", systemctl=systemctl, say=said.append)
    path = home / ".config" / "systemd" / "user" / "tender.service"
    assert said == [f"no Tender service to remove ({path} does not exist)"]
    assert calls(log) == []


def test_an_unwritable_folder_is_one_line(home: Path, tmp_path: Path) -> None:
    (tmp_path / "not a dir").write_text("")
    with pytest.raises(TenderError) as err:
        install_service(env=environment(home, XDG_CONFIG_HOME=str(tmp_path / "not a dir")), platform="linux",
                        systemctl="", say=lambda line: None)
    assert str(err.value) == f"cannot write {tmp_path}/not a dir/systemd/user/tender.service: Not a directory"


# ------------------------------------------------------------------ other systems
def test_macos_launch_agent(home: Path, tmp_path: Path) -> None:
    said: list[str] = []
    install_service(kubeconfig=str(home / "k.yaml"), env=environment(home), platform="darwin", home=home,
                    say=said.append)
    path = home / "Library" / "LaunchAgents" / "io.github.kube-tender.tender.plist"
    with path.open("rb") as f:
        plist = plistlib.load(f)
    assert plist == {
        "Label": "io.github.kube-tender.tender",
        "ProgramArguments": [TENDER, "daemon", "--kubeconfig", str(home / "k.yaml")],
        "EnvironmentVariables": {"KUBECONFIG": str(home / "k.yaml"), "PATH": "/usr/bin:/bin",
                                 "TENDER_PROFILES": str(home / "profiles.yaml")},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},  # started again after a failure only
        "ThrottleInterval": 5,
    }
    assert said == [f"wrote {path} (runs {TENDER} daemon --kubeconfig {home}/k.yaml)",
                    f"it starts at the next login; to start it now, run: launchctl bootstrap gui/{os.getuid()} {path}"]
    said.clear()
    install_service(remove=True, platform="darwin", home=home, say=said.append)
    assert not path.exists()
    assert said == [f"removed {path}; to stop the running one now, run: "
                    f"launchctl bootout gui/{os.getuid()}/io.github.kube-tender.tender"]
    said.clear()
    install_service(remove=True, platform="darwin", home=home, say=said.append)
    assert said == [f"no Tender service to remove ({path} does not exist)"]


def test_windows_is_refused(home: Path) -> None:
    said: list[str] = []
    for remove in (False, True):
        with pytest.raises(UsageError, match=r"^install-service is not supported on Windows: .*Task Scheduler"):
            install_service(remove=remove, env=environment(home), platform="win32", say=said.append)
    assert said == [] and list(home.iterdir()) == []
