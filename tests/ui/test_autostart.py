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


def test_linux_entry_written_and_removed(home: Path) -> None:
    argv = ["/opt/tender env/bin/tender", "tray", "--kubeconfig", '/home/u/k$1 "q" \\ 100%.yaml']
    autostart.set_enabled(True, argv, platform="linux")
    path = home / ".config" / "autostart" / "tender.desktop"
    assert autostart.is_enabled(platform="linux")
    text = path.read_text()
    assert "[Desktop Entry]" in text and "Type=Application" in text and "Icon=tender" in text
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))[5:]
    # The Desktop Entry quoting reads back to the same arguments.
    assert parse_exec(exec_line) == ["env", "TENDER_TRAY_WAIT=60", *argv]
    assert path.stat().st_mode & 0o777 == 0o644
    autostart.set_enabled(False, argv, platform="linux")
    assert not path.exists() and not autostart.is_enabled(platform="linux")
    autostart.set_enabled(False, argv, platform="linux")  # idempotent


def test_xdg_config_home_is_respected(home: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    autostart.set_enabled(True, ["tender", "tray"], platform="linux")
    assert (tmp_path / "cfg" / "autostart" / "tender.desktop").is_file()


def test_command_points_at_the_installed_tender() -> None:
    cmd = autostart.tender_command(["--profiles", "/p.yaml"])
    assert cmd[-3:] == ["tray", "--profiles", "/p.yaml"]
    assert Path(cmd[0]).name in ("tender", "python", "python3") or cmd[1:3] == ["-m", "tray"]


def test_macos_launch_agent_content(home: Path) -> None:
    data = plistlib.loads(autostart.launch_agent(["/usr/local/bin/tender", "tray"]))
    assert data["Label"] == "dev.tender.tray"
    assert data["ProgramArguments"] == ["/usr/local/bin/tender", "tray"]
    assert data["RunAtLoad"] is True
    assert autostart.launch_agent_path() == home / "Library" / "LaunchAgents" / "dev.tender.tray.plist"


def test_windows_run_value_quotes_paths() -> None:
    assert autostart.windows_run_value([r"C:\Program Files\Tender\tender.exe", "tray"]) == \
        r'"C:\Program Files\Tender\tender.exe" tray'
