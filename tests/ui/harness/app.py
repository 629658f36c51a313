"""Runs ``tender tray`` on a test desktop, as a separate process, with a private HOME."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.ui.harness.dbusmenu import TrayMenu
from tests.ui.harness.desktop import ROOT, Desktop


class TrayApp:
    def __init__(self, desktop: Desktop, home: Path, kubeconfig: str, profiles: Path, *,
                 backend: str = "appindicator", env: dict[str, str] | None = None) -> None:
        self.desktop = desktop
        self.home = home
        self.kubeconfig = kubeconfig
        self.profiles = profiles
        self.backend = backend
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.menu = TrayMenu(desktop.bus)

    @property
    def log_file(self) -> Path:
        return self.home / "state" / "tender" / "log" / "tender.log"

    def env(self) -> dict[str, str]:
        h = self.home
        env = dict(PYSTRAY_BACKEND=self.backend, HOME=str(h), XDG_CONFIG_HOME=str(h / "config"),
                   XDG_STATE_HOME=str(h / "state"), XDG_DATA_HOME=str(h / "data"), XDG_CACHE_HOME=str(h / "cache"),
                   BROWSER="true", PYTHONUNBUFFERED="1")
        return self.desktop.env(**{**env, **self.extra_env})

    def start(self) -> "TrayApp":
        self.home.mkdir(parents=True, exist_ok=True)
        self._out = open(self.home / "stdout.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tray", "-v", "tray", "--kubeconfig", self.kubeconfig, "--profiles",
             str(self.profiles)], env=self.env(), cwd=ROOT, stdout=self._out, stderr=subprocess.STDOUT)
        if self.backend == "appindicator":
            self.menu.wait_item(pid=self.proc.pid)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        out = (self.home / "stdout.log").read_text(errors="replace") if (self.home / "stdout.log").exists() else ""
        log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return f"--- output\n{out[-4000:]}\n--- log\n{log[-4000:]}"

    def clipboard(self) -> str:
        """The desktop's clipboard text, read as another application would."""
        code = ("import gi; gi.require_version('Gtk', '3.0'); from gi.repository import Gtk, Gdk; "
                "print(Gtk.Clipboard.get(Gdk.SELECTION_CLIPBOARD).wait_for_text() or '')")
        out = subprocess.run([sys.executable, "-c", code], env=self.desktop.env(), capture_output=True, text=True,
                             timeout=20)
        return out.stdout.strip()

    # ------------------------------------------------------------ dialogs
    def dialog(self, title: str, timeout: float = 20.0) -> str:
        """The X window id of the (Tk) dialog whose title starts with ``title``, once it is mapped."""
        deadline = time.time() + timeout
        pattern = "^" + re.escape(title)
        while True:
            out = self.desktop.xdotool("search", "--onlyvisible", "--name", pattern, check=False).split()
            if out:
                time.sleep(0.3)  # let Tk finish mapping and take focus
                return out[0]
            if time.time() > deadline:
                raise AssertionError(f"no dialog titled {title!r} appeared\n{self.output()}")
            time.sleep(0.1)

    def answer(self, title: str, *keys: str, text: str | None = None) -> None:
        """Answer a dialog as a person would: focus it, maybe type, press keys."""
        wid = self.dialog(title)
        self.desktop.xdotool("windowfocus", "--sync", wid, check=False)
        if text is not None:
            # The focused field holds a suggestion: clear it, then type.
            self.desktop.xdotool("key", "End", *(["BackSpace"] * 8))
            self.desktop.xdotool("type", "--delay", "30", text)
        for key in keys:
            self.desktop.xdotool("key", key)
        deadline = time.time() + 10
        while self.desktop.xdotool("search", "--onlyvisible", "--name", "^" + re.escape(title),
                                   check=False).split():
            if time.time() > deadline:
                raise AssertionError(f"dialog {title!r} did not close after {keys}")
            time.sleep(0.1)
