"""Runs ``tender tray`` on a test desktop as a user would: its own process, a private HOME.

Two interpreters:

* ``venv="user"``: ``ROOT/.venv-user/bin/tender`` -- a plain ``pip install .``
  (no extras, no PyGObject: what ``pipx install kube-tender`` gives), run from
  the private HOME so the installed copy is imported, not the checkout.  It is
  rebuilt by ``make python-deps`` after ``tray/`` changes; a missing one fails
  the test with that instruction, a stale one is a warning.
* ``venv="dev"``: ``ROOT/.venv/bin/python -m tray`` (the development venv, with
  PyGObject), for the XEmbed (trayer) tests and pystray's backends, chosen with
  ``backend`` (``PYSTRAY_BACKEND``).
"""

from __future__ import annotations

import re
import subprocess
import time
import warnings
from pathlib import Path

from tests.ui.harness.dbusmenu import TrayMenu
from tests.ui.harness.desktop import ROOT, Desktop

USER_VENV = ROOT / ".venv-user"
DEV_VENV = ROOT / ".venv"
# The tray's Linux path (SNI + dbusmenu on dbus-fast) runs from the plain install.
DEFAULT_VENV = "user"


def user_venv_problem() -> str | None:
    """Why ``.venv-user`` cannot run the checkout's tray (missing, or older than tray/), or None."""
    tender = USER_VENV / "bin" / "tender"
    stamp = USER_VENV / ".installed"
    if not tender.exists() or not stamp.exists():
        return f"{tender} is missing: run `make python-deps` (a plain `pip install .` without PyGObject)"
    newer = [p for p in [*(ROOT / "tray").rglob("*.py"), ROOT / "pyproject.toml"]
             if p.stat().st_mtime > stamp.stat().st_mtime]
    if newer:
        return (f"{USER_VENV} is older than {newer[0].relative_to(ROOT)} (and {len(newer) - 1} more): "
                "run `make python-deps` to reinstall the checkout into it")
    return None


class TrayApp:
    """``tender -v tray --kubeconfig K --profiles P`` on ``desktop`` with HOME ``home``.

    ``env``: variables to add to the desktop's environment (a value of None removes one);
    ``args``: the arguments after ``tender`` instead of the default ones.

    :meth:`start` returns once the tray's StatusNotifierItem is registered with the
    panel's watcher (``wait_registered=True``); :attr:`appeared_after` is how long
    that took, in seconds from the process start.  :attr:`menu` reads and clicks its menu.
    """

    def __init__(self, desktop: Desktop, home: Path, kubeconfig: str, profiles: Path, *,
                 venv: str = DEFAULT_VENV, backend: str | None = None, env: dict[str, str | None] | None = None,
                 args: list[str] | None = None) -> None:
        self.desktop = desktop
        self.home = home
        self.kubeconfig = kubeconfig
        self.profiles = profiles
        self.venv = venv
        self.backend = backend if backend is not None else ("appindicator" if venv == "dev" else "")
        self.extra_env = env or {}
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.appeared_after: float | None = None
        self._menu: TrayMenu | None = None

    @property
    def menu(self) -> TrayMenu:
        if self._menu is None:
            self._menu = TrayMenu(self.desktop.bus)
        return self._menu

    @property
    def log_file(self) -> Path:
        return self.home / "state" / "tender" / "log" / "tender.log"

    def command(self) -> list[str]:
        if self.venv == "user":
            problem = user_venv_problem()
            if problem and not (USER_VENV / "bin" / "tender").exists():
                raise AssertionError(problem)
            if problem:  # others may be editing tray/ right now: run what is installed, say so
                warnings.warn(problem, stacklevel=2)
            base = [str(USER_VENV / "bin" / "tender")]
        else:
            base = [str(DEV_VENV / "bin" / "python"), "-m", "tray"]
        args = self.args if self.args is not None else [
            "-v", "tray", "--kubeconfig", self.kubeconfig, "--profiles", str(self.profiles)]
        return base + args

    def env(self) -> dict[str, str]:
        h = self.home
        env = dict(HOME=str(h), XDG_CONFIG_HOME=str(h / "config"), XDG_STATE_HOME=str(h / "state"),
                   XDG_DATA_HOME=str(h / "data"), XDG_CACHE_HOME=str(h / "cache"), BROWSER="true",
                   PYTHONUNBUFFERED="1")
        if self.backend:
            env["PYSTRAY_BACKEND"] = self.backend
        if self.venv == "dev":
            env["PYTHONPATH"] = str(ROOT)
        env = self.desktop.env(**{**env, **{k: v for k, v in self.extra_env.items() if v is not None}})
        return {k: v for k, v in env.items() if self.extra_env.get(k, "") is not None}

    def start(self, wait_registered: bool = True, timeout: float = 30.0) -> "TrayApp":
        """Start the process; with ``wait_registered``, block until its item is registered (at most ``timeout`` s)."""
        self.home.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        self._out = open(self.home / "stdout.log", "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=self.env(), cwd=self.home, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if wait_registered:
            try:
                self.menu.wait_item(pid=self.proc.pid, timeout=timeout)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{self.output()}\n{self.desktop.logs()}") from None
            self.appeared_after = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._menu is not None:
            self._menu.close()
            self._menu = None

    def stdout(self) -> str:
        """What the process printed (stdout and stderr together)."""
        p = self.home / "stdout.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def log(self) -> str:
        """The tray's log file."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def output(self) -> str:
        return f"--- output\n{self.stdout()[-4000:]}\n--- log\n{self.log()[-4000:]}"

    def clipboard(self) -> str:
        """The desktop's clipboard text, read as another application would (xclip)."""
        out = subprocess.run(["xclip", "-o", "-selection", "clipboard"], env=self.desktop.env(), capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip()

    def loaded_libraries(self) -> str:
        """/proc/PID/maps of the running tray: every shared object it loaded."""
        assert self.proc is not None
        return Path(f"/proc/{self.proc.pid}/maps").read_text()

    # ------------------------------------------------------------ dialogs
    def dialog(self, title: str, timeout: float = 20.0) -> str:
        """The X window id of the dialog whose title starts with ``title``, once it is mapped."""
        deadline = time.time() + timeout
        pattern = "^" + re.escape(title)
        while True:
            out = self.desktop.xdotool("search", "--onlyvisible", "--name", pattern, check=False).split()
            if out:
                time.sleep(0.3)  # let the toolkit finish mapping and take focus
                return out[0]
            if time.time() > deadline:
                raise AssertionError(f"no dialog titled {title!r} appeared\n{self.output()}")
            time.sleep(0.1)

    def answer(self, title: str, *keys: str, text: str | None = None) -> None:
        """Answer a dialog as a person would: focus it, maybe type, press keys."""
        wid = self.dialog(title)
        self.desktop.xdotool("windowfocus", "--sync", wid, check=False)
        if text is not None:
            # The focused field holds a suggestion: select all of it (GTK and Tk alike), delete, type.
            self.desktop.xdotool("key", "End", "shift+Home", "BackSpace")
            self.desktop.xdotool("type", "--delay", "30", text)
        for key in keys:
            self.desktop.xdotool("key", key)
        deadline = time.time() + 10
        while self.desktop.xdotool("search", "--onlyvisible", "--name", "^" + re.escape(title),
                                   check=False).split():
            if time.time() > deadline:
                raise AssertionError(f"dialog {title!r} did not close after {keys}")
            time.sleep(0.1)
