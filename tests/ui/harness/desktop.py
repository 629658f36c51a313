"""A throwaway desktop for end-to-end tray tests: Xvfb, a private session bus,
a StatusNotifierWatcher and a notification daemon (``desktop_services``),
optionally an XEmbed tray (trayer) for screenshots.

Everything runs as child processes of the test and is stopped by pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


class Desktop:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, *, watcher: bool = True, notifications: bool = True, width: int = 1280,
                 height: int = 800) -> None:
        self.watcher = watcher
        self.notification_service = notifications
        self.size = (width, height)
        self.dir = Path(tempfile.mkdtemp(prefix="tender-desktop-"))
        self.notifications = self.dir / "notifications.jsonl"
        self.procs: list[subprocess.Popen] = []
        self.display = ""
        self.bus = ""

    # -------------------------------------------------------------- lifecycle
    def start(self) -> "Desktop":
        self._start_xvfb()
        self._paint_background()
        self._start_bus()
        if self.watcher:
            self._start_services()
        return self

    def __enter__(self) -> "Desktop":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a program on this desktop (nothing of the real one's)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DBUS_", "WAYLAND_", "XDG_SESSION", "XDG_CURRENT"))}
        env.update(DISPLAY=self.display, DBUS_SESSION_BUS_ADDRESS=self.bus,
                   NO_AT_BRIDGE="1",  # no accessibility bus: GTK would spawn one and leave it behind
                   GDK_BACKEND="x11")
        env.update(extra)
        return env

    def _spawn(self, cmd: list[str], **kw: object) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def _start_xvfb(self) -> None:
        # -displayfd: Xvfb picks a free display number and writes it to us when ready.
        r, w = os.pipe()
        w_, h_ = self.size
        self._spawn(["Xvfb", "-displayfd", str(w), "-screen", "0", f"{w_}x{h_}x24", "-nolisten", "tcp",
                     "-noreset"], pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"

    def _paint_background(self, rgb: str = "#4c566a") -> None:
        """A desktop-like background instead of Xvfb's black (screenshots are for people)."""
        code = ("import sys; from Xlib import display as d; x=d.Display(); s=x.screen(); "
                "c=s.default_colormap.alloc_named_color(sys.argv[1]); "
                "s.root.change_attributes(background_pixel=c.pixel); s.root.clear_area(); x.sync()")
        subprocess.run([sys.executable, "-c", code, rgb], env=self.env(), check=False, capture_output=True)

    def windows(self) -> list[tuple[str, str, int, int, int, int]]:
        """Visible windows: (id, name, x, y, width, height)."""
        out = []
        for wid in self.xdotool("search", "--onlyvisible", "--name", ".*", check=False).split():
            geo = self.xdotool("getwindowgeometry", "--shell", wid, check=False)
            vals = dict(line.split("=", 1) for line in geo.splitlines() if "=" in line)
            if not vals:
                continue
            name = self.xdotool("getwindowname", wid, check=False).strip()
            out.append((wid, name, int(vals["X"]), int(vals["Y"]), int(vals["WIDTH"]), int(vals["HEIGHT"])))
        return out

    def _start_bus(self) -> None:
        proc = self._spawn(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1"],
                           stdout=subprocess.PIPE, text=True)
        self.bus = proc.stdout.readline().strip()
        if not self.bus:
            raise RuntimeError("dbus-daemon did not start")

    def _start_services(self) -> None:
        args = [str(self.notifications)] + ([] if self.notification_service else ["--no-notifications"])
        proc = self._spawn([sys.executable, "-m", "tests.ui.harness.desktop_services", *args],
                           cwd=ROOT, env=self.env(), stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"desktop services did not start: {line!r}")

    def start_trayer(self) -> None:
        """An XEmbed system tray (the kind GtkStatusIcon and pystray's gtk backend use)."""
        self._spawn(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                     "--height", "28", "--transparent", "false", "--tint", "0x2e3440", "--SetDockType", "true",
                     "--expand", "true", "--iconspacing", "4"],
                    env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not self.xembed_tray_present():
            if time.time() > deadline:
                raise RuntimeError("trayer did not claim the system tray selection")
            time.sleep(0.1)

    def xembed_tray_present(self) -> bool:
        code = ("from Xlib import display as d; x=d.Display(); "
                "print(x.get_selection_owner(x.intern_atom('_NET_SYSTEM_TRAY_S0')))")
        out = subprocess.run([sys.executable, "-c", code], env=self.env(), capture_output=True, text=True)
        return out.returncode == 0 and out.stdout.strip() not in ("0", "")

    # -------------------------------------------------------------- helpers
    def read_notifications(self) -> list[dict]:
        if not self.notifications.exists():
            return []
        return [json.loads(line) for line in self.notifications.read_text().splitlines() if line.strip()]

    def xdotool(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["xdotool", *args], env=self.env(), capture_output=True, text=True, timeout=20)
        if check and out.returncode != 0:
            raise AssertionError(f"xdotool {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-window", "root", str(path)], env=self.env(), check=True, timeout=30)
        return path
