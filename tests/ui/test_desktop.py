"""`tender install-desktop`: the launcher and icons for this user."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tray.ui.desktop import install_desktop
from tray.ui.icon import APP_ICON_SIZES


def test_installs_launcher_and_icons(tmp_path: Path) -> None:
    summary = install_desktop(str(tmp_path))
    launcher = tmp_path / "applications" / "tender.desktop"
    assert str(launcher) in summary
    text = launcher.read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    assert exec_line.split()[0].startswith("Exec=/")  # an absolute path to this installation
    assert "Icon=tender" in text
    for size in APP_ICON_SIZES:
        icon = tmp_path / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "tender.png"
        assert Image.open(icon).size == (size, size)


def test_default_prefix_is_xdg_data_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    install_desktop(None)
    assert (tmp_path / "data" / "applications" / "tender.desktop").is_file()


def test_cli_command(monkeypatch, tmp_path: Path, capsys) -> None:
    from tray.cli import main

    assert main(["install-desktop", "--prefix", str(tmp_path)]) == 0
    assert "tender.desktop" in capsys.readouterr().out


def test_remove_undoes_install_and_the_login_entry(monkeypatch, tmp_path: Path, capsys) -> None:
    import json

    from tray.cli import main
    from tray.ui.settings import load_settings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    login = tmp_path / "config" / "autostart" / "tender.desktop"
    login.parent.mkdir(parents=True)
    login.write_text("[Desktop Entry]\n")
    # Start at login is on (and notifications off): --remove turns the first off, keeps the second.
    settings = tmp_path / "config" / "tender" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"notifications": False, "start_at_login": True,
                                    "login_environment": {"KUBECONFIG": "/a/b.yaml"},
                                    "login_arguments": []}))
    keep = tmp_path / "applications" / "other.desktop"
    keep.parent.mkdir(parents=True)
    keep.write_text("[Desktop Entry]\n")
    install_desktop(str(tmp_path))
    assert main(["install-desktop", "--remove", "--prefix", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"removed {len(APP_ICON_SIZES) + 2} files: ")
    assert out.rstrip().endswith("; Start at login turned off")
    assert not (tmp_path / "applications" / "tender.desktop").exists() and not login.exists()
    # The next tray neither writes the entry again nor shows Start at login checked.
    assert json.loads(settings.read_text()) == {"notifications": False, "start_at_login": False}
    assert not load_settings().start_at_login
    assert not list((tmp_path / "icons").rglob("tender.png"))
    assert keep.is_file()
    assert main(["install-desktop", "--remove", "--prefix", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("nothing to remove") and "Start at login" not in out
    assert json.loads(settings.read_text()) == {"notifications": False, "start_at_login": False}


def test_an_unwritable_prefix_is_one_line(tmp_path: Path, capsys) -> None:
    from tray.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["install-desktop", "--prefix", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tender: error: install-desktop: ") and err.count("\n") == 1 and str(blocker) in err
