"""Start at login without a tray: ``tender install-service [--remove]``.

A service runs ``tender daemon`` (the engine without a tray: the profiles
with ``autostart: true``, until SIGTERM) under the user's service manager,
so it works on a server with lingering (``loginctl enable-linger``), under
a tiling window manager with no tray, and in WSL with systemd:

* Linux: a systemd user unit, ``$XDG_CONFIG_HOME/systemd/user/tender.service``
  (default ``~/.config/systemd/user/``), ordered after nothing graphical and
  wanted by ``default.target``; ``Restart=on-failure`` after 5 s.  When a
  user manager answers, ``systemctl --user daemon-reload`` and ``systemctl
  --user enable --now tender.service`` are run; otherwise the commands to
  run are printed.
* macOS: a LaunchAgent, ``~/Library/LaunchAgents/io.github.kube-tender.tender.plist``
  (``RunAtLoad``; ``KeepAlive`` only after an unsuccessful exit); the
  ``launchctl`` command that loads it now is printed (it loads by itself at
  the next login).  Written to launchd's documented format, not run here.
* Windows: refused (:class:`~tray.errors.UsageError`); the README names
  Task Scheduler instead.

Like the tray's Start at login entry (:mod:`tray.ui.autostart`, whose
helpers this module uses), the service records what a login session may
lack: ``KUBECONFIG``, ``TENDER_PROFILES`` (absolute) and a ``PATH`` that
finds the kubeconfig's exec credential plugins, as systemd ``Environment=``
lines (the LaunchAgent's ``EnvironmentVariables``).  ``--kubeconfig`` and
``--profiles`` given to ``install-service`` are also passed on to ``tender
daemon``, made absolute.

Quoting follows systemd.syntax(7) and systemd.service(5) "Command lines":
each word in double quotes when it needs them, ``\\`` and ``"`` backslash
escaped, ``%`` written ``%%`` (specifiers), and ``$`` written ``$$`` in the
arguments of ``ExecStart=`` (variable expansion; the executable's path and
``Environment=`` values take ``$`` as it is).  Control characters are
refused (:class:`ValueError`): systemd rejects them in command paths and
environment values.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tray.atomicfile import write_atomic
from tray.errors import TenderError, UsageError
from tray.ui.autostart import login_environment, tender_command

UNIT_NAME = "tender.service"
LAUNCH_AGENT_LABEL = "io.github.kube-tender.tender"
#: Seconds systemd (``RestartSec=``) and launchd (``ThrottleInterval``) wait before a restart.
RESTART_SECONDS = 5
#: Seconds a ``systemctl`` call may take (``enable --now`` waits for the start job).
SYSTEMCTL_TIMEOUT = 60.0

__all__ = [
    "LAUNCH_AGENT_LABEL",
    "UNIT_NAME",
    "daemon_command",
    "install_service",
    "launch_agent",
    "launch_agent_path",
    "systemd_environment",
    "systemd_exec",
    "systemd_unit",
    "unit_path",
]


# ------------------------------------------------------------------ what runs
def daemon_command(kubeconfig: str | None = None, profiles: str | os.PathLike[str] | None = None,
                   recorded: Mapping[str, str] | None = None) -> list[str]:
    """``[/abs/tender, "daemon", options...]``: this installation's ``tender`` (as the tray's login
    entry finds it, :func:`tray.ui.autostart.tender_command`), made absolute.

    ``kubeconfig``/``profiles``: the ``--kubeconfig``/``--profiles`` values
    given to ``install-service`` (None: not given, no option); passed on as
    the absolute paths ``recorded["KUBECONFIG"]`` / ``recorded["TENDER_PROFILES"]``
    (:func:`tray.ui.autostart.login_environment` of the same values).
    Blocks for a ``PATH`` lookup at most.
    """
    command = tender_command()[:-1]  # without its "tray"
    command[0] = os.path.abspath(command[0])
    command.append("daemon")
    recorded = recorded or {}
    if kubeconfig is not None:
        command += ["--kubeconfig", recorded.get("KUBECONFIG") or kubeconfig]
    if profiles is not None:
        command += ["--profiles", recorded.get("TENDER_PROFILES") or os.fspath(profiles)]
    return command


# ------------------------------------------------------------------ Linux: the unit
def unit_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/systemd/user/tender.service`` (default ``~/.config/systemd/user/``), from ``env``
    (default ``os.environ``; ``HOME`` locates the default)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "systemd" / "user" / UNIT_NAME


def _refuse_control(text: str, what: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{what} contains a control character: {text!r}")


def _word(text: str, *, dollar: bool) -> str:
    """One word of a systemd setting: double-quoted when it needs to be, ``%`` doubled, ``$`` too if ``dollar``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    if dollar:
        escaped = escaped.replace("$", "$$")
    if text and escaped == text and not any(c in text for c in " \t'\";"):
        return text
    return f'"{escaped}"'


def systemd_exec(argv: Sequence[str]) -> str:
    """An ``ExecStart=`` value that runs ``argv`` (an absolute executable and its arguments).

    Quoted per systemd.syntax(7); ``%`` becomes ``%%``; ``$`` becomes ``$$``
    in the arguments (systemd expands ``$NAME`` there) but not in the
    executable's path (systemd takes that as written).  Pure.  Raises
    ``ValueError`` for a relative executable, one whose path has a quote or
    a backslash (systemd refuses to run it: "Executable name contains
    special characters"), a control character, or a lone ``;`` argument
    (systemd's command separator).
    """
    if not argv or not os.path.isabs(argv[0]):
        raise ValueError(f"ExecStart= needs an absolute executable, not {argv[:1]!r}")
    if any(c in argv[0] for c in "\"'\\"):
        raise ValueError(f"systemd refuses to run an executable whose path has a quote or a backslash: {argv[0]}")
    for arg in argv:
        _refuse_control(arg, "a command line argument")
        if arg == ";":
            raise ValueError("a lone ';' argument would end systemd's command line")
    return " ".join([_word(argv[0], dollar=False), *(_word(a, dollar=True) for a in argv[1:])])


def systemd_environment(name: str, value: str) -> str:
    """An ``Environment=`` value setting ``name`` to ``value``: ``"NAME=value"`` quoted per
    systemd.syntax(7), ``%`` doubled (``$`` has no special meaning there).  Pure.  Raises
    ``ValueError`` for a name systemd refuses or a control character in ``value``."""
    if not name or name[0].isdigit() or not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        raise ValueError(f"not an environment variable name: {name!r}")
    _refuse_control(value, f"{name}'s value")
    return _word(f"{name}={value}", dollar=False)


def systemd_unit(argv: Sequence[str], environment: Mapping[str, str] | None = None) -> str:
    """The unit file's text: ``ExecStart=`` ``argv`` (:func:`systemd_exec`) with one ``Environment=``
    line per item of ``environment``, in order (:func:`systemd_environment`).  Pure; raises
    ``ValueError`` as those do."""
    lines = [
        "# Written by `tender install-service`; `tender install-service --remove` removes it.",
        "[Unit]",
        "Description=Tender: Kubernetes port-forwards (the profiles with autostart: true)",
        "Documentation=https://github.com/kube-tender/kube-tender",
        "",
        "[Service]",
        "Type=simple",
        *(f"Environment={systemd_environment(k, v)}" for k, v in (environment or {}).items()),
        f"ExecStart={systemd_exec(argv)}",
        "Restart=on-failure",
        f"RestartSec={RESTART_SECONDS}",
        # `tender daemon` exits 3 when another engine (the tray app) holds the claim: not a failure to retry.
        "RestartPreventExitStatus=3",
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ macOS
def launch_agent_path(home: Path | None = None) -> Path:
    """``~/Library/LaunchAgents/io.github.kube-tender.tender.plist`` under ``home`` (default the user's)."""
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"


def launch_agent(argv: Sequence[str], environment: Mapping[str, str] | None = None) -> bytes:
    """The LaunchAgent plist (XML bytes): ``argv`` at load, again after an unsuccessful exit (not
    sooner than :data:`RESTART_SECONDS` after the last start), with ``environment``.  Pure."""
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(argv),
        "EnvironmentVariables": dict(environment or {}),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_SECONDS,
    })


# ------------------------------------------------------------------ running systemctl
def _systemctl(systemctl: str, args: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([systemctl, "--user", *args], env=dict(env), capture_output=True, text=True,
                              timeout=SYSTEMCTL_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise TenderError(f"systemctl --user {' '.join(args)} did not answer in {SYSTEMCTL_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise TenderError(f"cannot run {systemctl}: {exc.strerror or exc}") from None


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (result.stderr or result.stdout or "").splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def _must(systemctl: str, args: Sequence[str], env: Mapping[str, str], say: Callable[[str], None]) -> None:
    result = _systemctl(systemctl, args, env)
    if result.returncode != 0:
        raise TenderError(f"systemctl --user {' '.join(args)} failed: {_last_line(result)}")
    say(f"ran systemctl --user {' '.join(args)}")


def _manager(systemctl: str | None, env: Mapping[str, str]) -> tuple[bool, str]:
    """Whether a systemd user manager answers ``systemctl``, and why not (one phrase)."""
    if systemctl is None:
        return False, "systemctl not found"
    result = _systemctl(systemctl, ["show-environment"], env)
    if result.returncode == 0:
        return True, ""
    return False, f"no systemd user manager answers ({_last_line(result)})"


# ------------------------------------------------------------------ API
def install_service(*, kubeconfig: str | None = None, profiles: str | os.PathLike[str] | None = None,
                    remove: bool = False, env: Mapping[str, str] | None = None, platform: str | None = None,
                    systemctl: str | None = None, home: Path | None = None,
                    say: Callable[[str], None] = print) -> None:
    """Install (or refresh) or remove the service that runs ``tender daemon`` at login.

    ``kubeconfig``, ``profiles``: the ``--kubeconfig``/``--profiles`` values
    (None: not given), recorded and passed on as described in the module
    docstring.  ``remove``: undo instead (``--remove``).  ``env``: the
    environment in force (default ``os.environ``): it locates the unit
    (``XDG_CONFIG_HOME``, ``HOME``), gives what is recorded, and is the
    environment of the ``systemctl`` calls.  ``platform``: ``sys.platform``
    by default.  ``systemctl``: the program to run (None: ``systemctl`` on
    ``env["PATH"]``; ``""`` or not found: there is none).  ``home``: the macOS home
    (default ``env["HOME"]``, else the user's).  ``say``: called with each line for the user, as
    it happens (what was written, run or removed, or the commands to run).

    Blocks for a few file writes, the kubeconfig reads, and each
    ``systemctl`` call (at most :data:`SYSTEMCTL_TIMEOUT` s each; ``enable
    --now`` waits for the start).  Raises :class:`~tray.errors.UsageError`
    on Windows; :class:`~tray.errors.TenderError` (one line) when the file
    cannot be written or removed, when the command line cannot be written
    in a unit, or when a ``systemctl`` call fails or times out (what was
    done before has been said).
    """
    env = dict(os.environ if env is None else env)
    platform = platform or sys.platform
    if platform == "win32":
        raise UsageError("install-service is not supported on Windows: to run `tender daemon` at logon, "
                         "create a Task Scheduler task (see the README)")
    if platform == "darwin":
        _launch_agent(kubeconfig, profiles, remove, env, home, say)
        return
    if systemctl is None:
        systemctl = shutil.which("systemctl", path=env.get("PATH", os.defpath))
    systemctl = systemctl or None
    path = unit_path(env)
    if remove:
        _remove_unit(path, env, systemctl, say)
    else:
        _install_unit(path, kubeconfig, profiles, env, systemctl, say)


def _install_unit(path: Path, kubeconfig: str | None, profiles: str | os.PathLike[str] | None,
                  env: dict[str, str], systemctl: str | None, say: Callable[[str], None]) -> None:
    recorded = login_environment(kubeconfig, profiles, env)
    argv = daemon_command(kubeconfig, profiles, recorded)
    try:
        text = systemd_unit(argv, recorded)
    except ValueError as exc:
        raise TenderError(f"cannot write the unit: {exc}") from None
    try:
        previous: str | None = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        previous = None
    answers, why = _manager(systemctl, env)
    # A running service keeps its old command line through daemon-reload and enable --now.
    was_active = False
    if answers and previous is not None and previous != text:
        assert systemctl is not None
        was_active = _systemctl(systemctl, ["is-active", "--quiet", UNIT_NAME], env).returncode == 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text, mode=0o644)
    except OSError as exc:
        raise TenderError(f"cannot write {path}: {exc.strerror or exc}") from None
    say(f"wrote {path} (runs {shlex.join(argv)})")
    if not answers:
        say(f"{why}; to start it now and at every login, run: "
            f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}")
        return
    assert systemctl is not None
    _must(systemctl, ["daemon-reload"], env, say)
    _must(systemctl, ["enable", "--now", UNIT_NAME], env, say)
    if was_active:
        say(f"{UNIT_NAME} was already running the previous unit; this one applies after: "
            f"systemctl --user restart {UNIT_NAME} (it restarts the forwards)")


def _remove_unit(path: Path, env: dict[str, str], systemctl: str | None, say: Callable[[str], None]) -> None:
    if not path.exists():
        say(f"no Tender service to remove ({path} does not exist)")
        return
    answers, why = _manager(systemctl, env)
    links = f"the {UNIT_NAME} links under {path.parent}/*.wants/"
    if answers:
        assert systemctl is not None
        _must(systemctl, ["disable", "--now", UNIT_NAME], env, say)
    elif systemctl is not None:
        # Without a manager, systemctl still edits the files: disable removes the .wants/ link.
        result = _systemctl(systemctl, ["disable", UNIT_NAME], env)
        if result.returncode == 0:
            say(f"ran systemctl --user disable {UNIT_NAME}")
        else:
            say(f"systemctl --user disable {UNIT_NAME} failed ({_last_line(result)}): remove {links} if any")
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise TenderError(f"cannot remove {path}: {exc.strerror or exc}") from None
    say(f"removed {path}")
    if answers:
        assert systemctl is not None
        _must(systemctl, ["daemon-reload"], env, say)
    elif systemctl is None:
        say(f"{why}: if it was enabled elsewhere, remove {links}")


def _launch_agent(kubeconfig: str | None, profiles: str | os.PathLike[str] | None, remove: bool,
                  env: dict[str, str], home: Path | None, say: Callable[[str], None]) -> None:
    path = launch_agent_path(home or Path(env.get("HOME") or Path.home()))
    domain = f"gui/{os.getuid()}" if hasattr(os, "getuid") else "gui/$(id -u)"
    if remove:
        if not path.exists():
            say(f"no Tender service to remove ({path} does not exist)")
            return
        try:
            path.unlink()
        except OSError as exc:
            raise TenderError(f"cannot remove {path}: {exc.strerror or exc}") from None
        say(f"removed {path}; to stop the running one now, run: launchctl bootout {domain}/{LAUNCH_AGENT_LABEL}")
        return
    recorded = login_environment(kubeconfig, profiles, env)
    argv = daemon_command(kubeconfig, profiles, recorded)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, launch_agent(argv, recorded), mode=0o644)
    except OSError as exc:
        raise TenderError(f"cannot write {path}: {exc.strerror or exc}") from None
    say(f"wrote {path} (runs {shlex.join(argv)})")
    say(f"it starts at the next login; to start it now, run: launchctl bootstrap {domain} {path}")
