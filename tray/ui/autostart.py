"""Start at login: an XDG autostart entry (Linux), a LaunchAgent (macOS), a Run value (Windows).

Each points at the installed ``tender`` with ``tray`` and the options the
app was started with, and records what the login session may lack (a
desktop session's environment is not a terminal's): the kubeconfig path(s)
in force (``--kubeconfig``, else ``KUBECONFIG``, else ``~/.kube/config``)
and the profiles file (``--profiles``, else ``TENDER_PROFILES``, else the
default), both absolute, and a ``PATH`` that finds the kubeconfig's exec
credential plugins (aws, gcloud, kubelogin...): the ``PATH`` in force when
"Start at login" was turned on, plus the directory of each plugin that
resolves there now (see :func:`login_environment`).

How each platform carries them:

* Linux: the entry's ``Exec=`` runs ``env TENDER_TRAY_WAIT=60 KUBECONFIG=...
  PATH=... TENDER_PROFILES=... /path/to/tender tray``, quoted by the Desktop
  Entry spec (:func:`desktop_exec`).
* macOS: the LaunchAgent's ``EnvironmentVariables``.
* Windows: a Run value is a command line and cannot set variables, and
  ``cmd /c set ...&& ...`` would flash a console window; so the kubeconfig
  and profiles paths become ``--kubeconfig`` / ``--profiles`` arguments and
  ``PATH`` is the user's own (the one Explorer gives every program it starts,
  which is where installers put plugins such as ``kubelogin``).

Only the Linux code path runs in this project's tests; the macOS and
Windows ones follow those systems' documented formats.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tray.atomicfile import write_atomic

LAUNCH_AGENT_LABEL = "dev.tender.tray"
RUN_VALUE = "Tender"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
#: Seconds the tray waits for a panel at login (it may start after us).
LOGIN_TRAY_WAIT = 60
#: The variables a login entry records (see :func:`login_environment`).
RECORDED = ("KUBECONFIG", "PATH", "TENDER_PROFILES")


def tender_command(extra: Sequence[str] = ()) -> list[str]:
    """The command that starts this Tender's tray: the installed script, else ``python -m tray``."""
    here = Path(sys.executable).parent
    for name in ("tender", "tender.exe", "tender-script.py"):
        if (here / name).is_file():
            return [str(here / name), "tray", *extra]
    found = shutil.which("tender")
    if found:
        return [found, "tray", *extra]
    return [sys.executable, "-m", "tray", "tray", *extra]


# ------------------------------------------------------------------ what is recorded
def login_environment(kubeconfig: str | None = None, profiles: str | os.PathLike[str] | None = None,
                      env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a login entry sets: ``{"KUBECONFIG", "PATH", "TENDER_PROFILES"}``.

    ``kubeconfig``: the ``--kubeconfig`` value (a path list, ``os.pathsep``
    separated) or None for ``env["KUBECONFIG"]``, else ``~/.kube/config``
    under ``env["HOME"]``.  ``profiles``: the ``--profiles`` value or None
    for ``env["TENDER_PROFILES"]``, else the default profiles file.  Every
    path is made absolute (``~`` expanded, relative to the current
    directory).  ``env``: the environment in force (default ``os.environ``).

    ``PATH`` is ``env["PATH"]`` (``os.defpath`` if unset; empty and repeated
    entries dropped) followed by the directory of each exec plugin of the
    kubeconfig (:func:`exec_commands`) that ``shutil.which`` finds on it now
    and whose directory it does not list yet (a plugin given by absolute
    path may call tools next to it).

    Blocks for reading the kubeconfig files (milliseconds); never runs a
    plugin.  Raises nothing for a missing or broken kubeconfig (the entry
    still records where it is; the tray reports it at login).
    """
    env = os.environ if env is None else env
    home = env.get("HOME") or str(Path.home())
    paths = kubeconfig or env.get("KUBECONFIG") or str(Path(home) / ".kube" / "config")
    kubeconfig_abs = os.pathsep.join(_absolute(p, home) for p in paths.split(os.pathsep) if p)
    if profiles is None:
        profiles = env.get("TENDER_PROFILES") or None
    if profiles is None:
        from tray.profiles import default_profiles_path

        profiles = default_profiles_path()
    return {
        "KUBECONFIG": kubeconfig_abs,
        "PATH": login_path(exec_commands(kubeconfig_abs), env.get("PATH", os.defpath)),
        "TENDER_PROFILES": _absolute(os.fspath(profiles), home),
    }


def _absolute(path: str, home: str) -> str:
    if path == "~" or path.startswith("~" + os.sep):
        path = home + path[1:]
    return os.path.abspath(os.path.expanduser(path))


def exec_commands(kubeconfig: str) -> list[str]:
    """Every ``users[].user.exec.command`` of the merged kubeconfig ``kubeconfig`` (a path list), in order.

    A command containing a slash is made absolute against its file's
    directory, as kubectl does; a bare name is left to ``PATH``.  Blocks
    for the reads; a missing or broken kubeconfig gives ``[]``.
    """
    from tray.errors import UsageError
    from tray.kube.kubeconfig import load_kubeconfig

    try:
        kc = load_kubeconfig(kubeconfig)
    except UsageError:
        return []
    out: list[str] = []
    for item in kc.config.get("users") or []:
        exec_ = (item.get("user") or {}).get("exec") if isinstance(item, dict) else None
        command = exec_.get("command") if isinstance(exec_, dict) else None
        if isinstance(command, str) and command and command not in out:
            out.append(command)
    return out


def login_path(commands: Iterable[str], path: str) -> str:
    """``path`` with the directory of each of ``commands`` that resolves on it appended.

    See :func:`login_environment`.  Pure but for ``shutil.which``'s lookups.
    """
    entries = list(dict.fromkeys(e for e in path.split(os.pathsep) if e))
    for command in commands:
        found = shutil.which(command, path=path)
        if found:
            directory = os.path.dirname(os.path.abspath(found))
            if directory not in entries:
                entries.append(directory)
    return os.pathsep.join(entries)


# ------------------------------------------------------------------ Linux
def xdg_autostart_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/autostart/tender.desktop`` (default ``~/.config/autostart/``)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "autostart" / "tender.desktop"


def desktop_exec(argv: Sequence[str]) -> str:
    """An Exec= value for ``argv``, quoted as the Desktop Entry spec asks.

    Arguments with reserved characters are double-quoted with ``"`` `` ` ``
    ``$`` and ``\\`` backslash-escaped; then, because Exec is a string value,
    every backslash is escaped once more; ``%`` is doubled (field codes).
    """
    out = []
    for arg in argv:
        if arg and not any(c in arg for c in " \t\n\"'\\><~|&;$*?#()`%"):
            out.append(arg)
            continue
        quoted = "".join("\\" + c if c in '"`$\\' else c for c in arg)
        out.append('"' + quoted.replace("\\", "\\\\").replace("%", "%%") + '"')
    return " ".join(out)


def parse_desktop_exec(value: str) -> list[str]:
    """The arguments of an Exec= value, read as a launcher reads them: the inverse of :func:`desktop_exec`.

    ``value``: the text after ``Exec=``.  First the string value's escapes
    (``\\s`` ``\\n`` ``\\t`` ``\\r`` ``\\\\``), then the Exec quoting: words
    split on unquoted blanks, ``"..."`` quotes with ``\\"`` `` \\` `` ``\\$``
    ``\\\\`` escaped inside, and ``%%`` read as ``%`` (other field codes are
    kept as written).  Pure.  Raises ``ValueError`` for an unterminated quote.
    """
    escapes = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    text, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value) and value[i + 1] in escapes:
            text.append(escapes[value[i + 1]])
            i += 2
        else:
            text.append(value[i])
            i += 1
    line = "".join(text)
    args: list[str] = []
    word: list[str] | None = None  # None: between words
    quoted, i = False, 0
    while i < len(line):
        c = line[i]
        if quoted:
            if c == "\\" and i + 1 < len(line) and line[i + 1] in '"`$\\':
                word.append(line[i + 1])  # type: ignore[union-attr]
                i += 1
            elif c == '"':
                quoted = False
            else:
                word.append(c)  # type: ignore[union-attr]
        elif c in " \t\n":
            if word is not None:
                args.append("".join(word))
            word = None
        else:
            word = [] if word is None else word
            if c == '"':
                quoted = True
            else:
                word.append(c)
        i += 1
    if quoted:
        raise ValueError("unterminated quote in Exec value")
    if word is not None:
        args.append("".join(word))
    return [a.replace("%%", "%") for a in args]


def read_xdg_entry(path: Path | None = None) -> tuple[list[str], dict[str, str]] | None:
    """What an autostart entry written by :func:`xdg_entry` runs: ``(argv, recorded)``.

    ``path``: the entry (default :func:`xdg_autostart_path`).  ``argv`` is
    the command after ``env`` and its ``NAME=VALUE`` words (``[tender,
    "tray", options...]``); ``recorded`` holds those words' variables
    named in :data:`RECORDED`, in the entry's order.  Returns None when the
    file is missing or unreadable, or its Exec= line is not ``env ...``
    followed by a command.  Blocks for one small file read.
    """
    path = path if path is not None else xdg_autostart_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    line = next((ln for ln in text.splitlines() if ln.startswith("Exec=")), None)
    if line is None:
        return None
    try:
        words = parse_desktop_exec(line[len("Exec="):])
    except ValueError:
        return None
    if not words or words[0] != "env":
        return None
    recorded: dict[str, str] = {}
    i = 1
    while i < len(words) and "=" in words[i] and not words[i].startswith("="):
        name, _, value = words[i].partition("=")
        if name in RECORDED:
            recorded[name] = value
        i += 1
    argv = words[i:]
    return (argv, recorded) if argv else None


def xdg_entry(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The autostart ``.desktop`` file's text: ``Exec=env TENDER_TRAY_WAIT=60 [NAME=VALUE...] ARGV...``.

    ``env``: the variables to record (:func:`login_environment`), in
    that order; None or empty records none.  Pure.
    """
    cmd = ["env", f"TENDER_TRAY_WAIT={LOGIN_TRAY_WAIT}", *(f"{k}={v}" for k, v in (env or {}).items()), *argv]
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Tender\n"
        "Comment=Kubernetes port-forwards in the system tray\n"
        f"Exec={desktop_exec(cmd)}\n"
        "Icon=tender\n"
        "Terminal=false\n"
        "Categories=Development;Network;\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


# ------------------------------------------------------------------ macOS
def launch_agent_path(home: Path | None = None) -> Path:
    """``~/Library/LaunchAgents/dev.tender.tray.plist``."""
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"


def launch_agent(argv: Sequence[str], env: Mapping[str, str] | None = None) -> bytes:
    """The LaunchAgent plist (XML bytes): ``argv`` at load, ``env`` and TENDER_TRAY_WAIT as
    its EnvironmentVariables.  Pure."""
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "EnvironmentVariables": {"TENDER_TRAY_WAIT": str(LOGIN_TRAY_WAIT), **(env or {})},
    })


# ------------------------------------------------------------------ Windows
def windows_run_value(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The Run value: ``argv`` as a Windows command line, plus ``--kubeconfig`` and ``--profiles``
    from ``env``'s KUBECONFIG and TENDER_PROFILES when ``argv`` has no such option (a Run value
    cannot set variables; PATH stays the user's).  Pure."""
    import subprocess

    args = list(argv)
    for option, name in (("--kubeconfig", "KUBECONFIG"), ("--profiles", "TENDER_PROFILES")):
        value = (env or {}).get(name)
        if value and not any(a == option or a.startswith(option + "=") for a in args):
            args += [option, value]
    return subprocess.list2cmdline(args)


def _winreg():  # type: ignore[no-untyped-def]
    import winreg  # only on Windows

    return winreg


# ------------------------------------------------------------------ API
def set_enabled(enabled: bool, argv: Sequence[str] | None = None, *, kubeconfig: str | None = None,
                profiles: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                platform: str | None = None, recorded: Mapping[str, str] | None = None) -> dict[str, str]:
    """Create (or refresh) or remove the login entry for this platform; returns what it records.

    ``argv``: the command (default :func:`tender_command`).  ``kubeconfig``,
    ``profiles``, ``env``: what the entry records, as
    :func:`login_environment` takes them (the tray passes the paths it
    runs with; ``env`` defaults to ``os.environ``).  ``recorded``: the
    variables to record instead, as-is (a refresh passes those recorded
    when the user turned the entry on); then ``kubeconfig`` and
    ``profiles`` are unused and ``env`` only locates the XDG entry.

    Returns the recorded variables (``{"KUBECONFIG", "PATH",
    "TENDER_PROFILES"}``), or ``{}`` when removing.  Blocks for a few file
    writes (and the kubeconfig reads).  Raises ``OSError`` when the entry
    cannot be written or removed.
    """
    platform = platform or sys.platform
    argv = list(argv) if argv is not None else tender_command()
    if not enabled:
        recorded = {}
    elif recorded is None:
        recorded = login_environment(kubeconfig, profiles, env)
    recorded = dict(recorded)
    if platform == "darwin":
        path = launch_agent_path()
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, launch_agent(argv, recorded), mode=0o644)
        else:
            path.unlink(missing_ok=True)
    elif platform == "win32":
        winreg = _winreg()
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            if enabled:
                winreg.SetValueEx(key, RUN_VALUE, 0, winreg.REG_SZ, windows_run_value(argv, recorded))
            else:
                try:
                    winreg.DeleteValue(key, RUN_VALUE)
                except FileNotFoundError:
                    pass
    else:
        path = xdg_autostart_path(env)
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, xdg_entry(argv, recorded), mode=0o644)
        else:
            path.unlink(missing_ok=True)
    return recorded


def is_enabled(*, platform: str | None = None) -> bool:
    """Whether this platform's login entry exists (reads one file or registry value)."""
    platform = platform or sys.platform
    if platform == "darwin":
        return launch_agent_path().is_file()
    if platform == "win32":
        winreg = _winreg()
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
                winreg.QueryValueEx(key, RUN_VALUE)
                return True
        except FileNotFoundError:
            return False
    return xdg_autostart_path().is_file()
