"""Handing things to the desktop: a URL to the browser, a file to an editor, text to the clipboard.

Each ``*_command`` function is pure (platform, environment and ``which``
are arguments) so the choice is tested; the callers run the command
detached, from a worker thread.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import webbrowser
from collections.abc import Callable, Mapping

Which = Callable[[str], str | None]
TERMINALS = ("x-terminal-emulator", "gnome-terminal", "konsole", "xfce4-terminal", "xterm")


def editor_command(path: str, *, platform: str = sys.platform, env: Mapping[str, str] | None = None,
                   which: Which = shutil.which) -> list[str] | None:
    """How to open ``path`` for editing: the desktop's handler, else $VISUAL/$EDITOR in a terminal."""
    env = os.environ if env is None else env
    if platform == "darwin":
        return ["open", "-t", path]
    if platform == "win32":
        return ["notepad.exe", path]
    if which("xdg-open"):
        return ["xdg-open", path]
    editor = env.get("VISUAL") or env.get("EDITOR")
    if editor:
        for term in TERMINALS:
            if which(term):
                return [term, "-e", *shlex.split(editor), path]
    return None


def clipboard_command(*, platform: str = sys.platform, env: Mapping[str, str] | None = None,
                      which: Which = shutil.which) -> list[str] | None:
    """A command that puts its stdin on the clipboard, if there is one."""
    env = os.environ if env is None else env
    candidates: list[list[str]] = []
    if platform == "darwin":
        candidates = [["pbcopy"]]
    elif platform == "win32":
        candidates = [["clip"]]
    else:
        if env.get("WAYLAND_DISPLAY"):
            candidates.append(["wl-copy"])
        candidates += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    for cmd in candidates:
        if which(cmd[0]):
            return cmd
    return None


def spawn(cmd: list[str]) -> None:
    """Start a program and let it go (it outlives nothing of ours)."""
    subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def open_url(url: str) -> None:
    if not webbrowser.open(url):
        raise OSError(f"no web browser found to open {url}")


def edit_file(path: str) -> None:
    cmd = editor_command(path)
    if cmd is None:
        raise OSError(f"no editor found: set $EDITOR or install xdg-utils, then edit {path}")
    spawn(cmd)


def copy_with_command(text: str) -> None:
    cmd = clipboard_command()
    if cmd is None:
        raise OSError("no clipboard tool found (xclip, xsel or wl-copy)")
    # The X tools keep running to serve the selection: do not wait for them.
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(text.encode())
    proc.stdin.close()
