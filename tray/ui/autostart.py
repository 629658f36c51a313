"""Start at login: an XDG autostart entry (Linux), a LaunchAgent (macOS), a Run value (Windows).

Each points at the installed ``tender`` with ``tray`` and the options the
app was started with.  Only the Linux code path runs in this project's tests;
the macOS and Windows ones follow those systems' documented formats.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from tray.atomicfile import write_atomic

LAUNCH_AGENT_LABEL = "dev.tender.tray"
RUN_VALUE = "Tender"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
#: Seconds the tray waits for a panel at login (it may start after us).
LOGIN_TRAY_WAIT = 60


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


# ------------------------------------------------------------------ Linux
def xdg_autostart_path(env: dict[str, str] | None = None) -> Path:
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


def xdg_entry(argv: Sequence[str]) -> str:
    cmd = ["env", f"TENDER_TRAY_WAIT={LOGIN_TRAY_WAIT}", *argv]
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
    return (home or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"


def launch_agent(argv: Sequence[str]) -> bytes:
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "EnvironmentVariables": {"TENDER_TRAY_WAIT": str(LOGIN_TRAY_WAIT)},
    })


# ------------------------------------------------------------------ Windows
def windows_run_value(argv: Sequence[str]) -> str:
    import subprocess

    return subprocess.list2cmdline(list(argv))


def _winreg():  # type: ignore[no-untyped-def]
    import winreg  # only on Windows

    return winreg


# ------------------------------------------------------------------ API
def set_enabled(enabled: bool, argv: Sequence[str] | None = None, *, platform: str | None = None) -> None:
    """Create (or refresh) or remove the login entry for this platform."""
    platform = platform or sys.platform
    argv = list(argv) if argv is not None else tender_command()
    if platform == "darwin":
        path = launch_agent_path()
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, launch_agent(argv), mode=0o644)
        else:
            path.unlink(missing_ok=True)
    elif platform == "win32":
        winreg = _winreg()
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
            if enabled:
                winreg.SetValueEx(key, RUN_VALUE, 0, winreg.REG_SZ, windows_run_value(argv))
            else:
                try:
                    winreg.DeleteValue(key, RUN_VALUE)
                except FileNotFoundError:
                    pass
    else:
        path = xdg_autostart_path()
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, xdg_entry(argv), mode=0o644)
        else:
            path.unlink(missing_ok=True)


def is_enabled(*, platform: str | None = None) -> bool:
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
