"""The launcher: ``tender.desktop`` and the application icon, for the user's menus.

``icons/make_icons.py`` writes the same files into the repository (from this
code), and ``tender install-desktop`` installs them under the XDG data dir
with ``Exec=`` pointing at this installation's ``tender``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tray.atomicfile import write_atomic
from tray.ui.autostart import desktop_exec, tender_command, xdg_autostart_path
from tray.ui.icon import APP_ICON_SIZES, app_icon
from tray.ui.settings import load_settings, save_settings


def desktop_entry(argv: Sequence[str] = ("tender", "tray")) -> str:
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Tender\n"
        "GenericName=Port-forward manager\n"
        "Comment=Kubernetes port-forwards that survive pod restarts, in the system tray\n"
        f"Exec={desktop_exec(argv)}\n"
        "Icon=tender\n"
        "Terminal=false\n"
        "Categories=Development;Network;\n"
        "Keywords=kubernetes;kubectl;port-forward;tray;\n"
        "StartupNotify=false\n"
    )


def data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def install_desktop(prefix: str | None = None) -> str:
    """Install the icons and the launcher for this user; returns what was done, in one line."""
    base = Path(prefix).expanduser() if prefix else data_home()
    icons = base / "icons" / "hicolor"
    for size in APP_ICON_SIZES:
        target = icons / f"{size}x{size}" / "apps" / "tender.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        app_icon(size).save(target, "PNG")
    launcher = base / "applications" / "tender.desktop"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(launcher, desktop_entry(tender_command()), mode=0o644)
    # Desktops notice new icons by the theme directory's mtime.
    os.utime(icons, None)
    return f"installed {launcher} and the Tender icon ({len(APP_ICON_SIZES)} sizes) under {icons}"


def remove_desktop(prefix: str | None = None, settings_file: str | os.PathLike[str] | None = None) -> str:
    """Undo :func:`install_desktop`, remove the XDG autostart entry and turn Start at login off;
    returns what was done, in one line.

    ``prefix``: as :func:`install_desktop` takes it.  ``settings_file``: the
    settings (default :func:`tray.ui.settings.settings_path`); when it says
    ``start_at_login``, that becomes false (and the variables recorded for
    the entry are dropped), written atomically with the other settings kept,
    so that the next tray does not write the entry again.  Files that are
    not there are skipped; nothing else is touched (profiles stay).  Blocks
    for the file system calls only.  Raises ``OSError`` when a file cannot
    be removed or the settings cannot be written.
    """
    base = Path(prefix).expanduser() if prefix else data_home()
    icons = base / "icons" / "hicolor"
    removed = [p for p in [base / "applications" / "tender.desktop", xdg_autostart_path(),
                           *(icons / f"{size}x{size}" / "apps" / "tender.png" for size in APP_ICON_SIZES)]
               if p.is_file()]
    for path in removed:
        path.unlink()
    settings = load_settings(settings_file)
    turned_off = settings.start_at_login
    if turned_off:
        save_settings(replace(settings, start_at_login=False, login_environment=None, login_arguments=None),
                      settings_file)
    off = "; Start at login turned off" if turned_off else ""
    if not removed:
        return "nothing to remove: no Tender launcher, icon or login entry is installed" + off
    if icons.is_dir():
        os.utime(icons, None)
    return f"removed {len(removed)} files: " + ", ".join(str(p) for p in removed[:3]) + (
        f" and {len(removed) - 3} more" if len(removed) > 3 else "") + off
