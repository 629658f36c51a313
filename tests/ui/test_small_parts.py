"""Dialog validation, editor/clipboard choice, the headless check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tray.ui import host
from tray.ui.dialogs import validate_port_form
from tray.ui.system import clipboard_command, editor_command

ROOT = Path(__file__).resolve().parents[2]


def test_port_form_validation() -> None:
    assert validate_port_form("8080", "18080", used=[9000]) == (8080, 18080)
    assert validate_port_form("http", "8080", used=[]) == ("http", 8080)
    assert validate_port_form("", "1", []).startswith("Enter the remote port")
    assert "between 1 and 65535" in validate_port_form("70000", "1", [])
    assert "between 1 and 65535" in validate_port_form("80", "0", [])
    assert "between 1 and 65535" in validate_port_form("80", "abc", [])
    assert validate_port_form("80", "9000", [9000]) == "Local port 9000 is used by another forward."
    assert "neither a port number nor a port name" in validate_port_form("no such", "1", [])


def test_editor_choice() -> None:
    def which(names):
        return lambda n: f"/usr/bin/{n}" if n in names else None

    assert editor_command("/p.yaml", platform="linux", env={}, which=which({"xdg-open"})) == ["xdg-open", "/p.yaml"]
    assert editor_command("/p.yaml", platform="linux", env={"EDITOR": "vim -n"}, which=which({"xterm"})) == \
        ["xterm", "-e", "vim", "-n", "/p.yaml"]
    assert editor_command("/p.yaml", platform="linux", env={}, which=which({"xterm"})) is None
    assert editor_command("/p.yaml", platform="darwin", env={}, which=which(set())) == ["open", "-t", "/p.yaml"]


def test_clipboard_choice() -> None:
    def which(names):
        return lambda n: f"/usr/bin/{n}" if n in names else None

    assert clipboard_command(platform="linux", env={}, which=which({"xsel"})) == ["xsel", "--clipboard", "--input"]
    assert clipboard_command(platform="linux", env={"WAYLAND_DISPLAY": "w"}, which=which({"wl-copy", "xclip"})) == ["wl-copy"]
    assert clipboard_command(platform="linux", env={}, which=which(set())) is None
    assert clipboard_command(platform="darwin", env={}, which=which({"pbcopy"})) == ["pbcopy"]


def test_no_display_means_no_tray() -> None:
    result = host.check_host({}, platform="linux")
    assert result.backend is None and "no display" in result.reason
    assert host.check_host({}, platform="darwin").backend == ""


def test_headless_tender_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYSTRAY_BACKEND")}
    env.update(HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    for argv in ([], ["tray"]):
        proc = subprocess.run([sys.executable, "-m", "tray", *argv], env=env, capture_output=True, text=True,
                              timeout=60, cwd=ROOT)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert "no system tray" in lines[0] and "tender run" in lines[0] and "tender forward" in lines[0]
        assert proc.stdout == ""
