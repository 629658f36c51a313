"""A hermetic throwaway desktop for end-to-end tray tests.

What runs (all child processes of the test, each in its own process group,
stopped by pid/pgid in :meth:`Desktop.stop`):

* **Xvfb** on a display number no X server holds, painted a desktop-like grey;
* a **private session bus**: ``dbus-daemon --config-file=DIR/bus.conf`` whose
  configuration (written here) listens in ``DIR``, activates services from
  ``DIR/services`` only (nothing installed on the machine leaks in) and lets
  anyone monitor (for :class:`~tests.ui.harness.notifications.NotificationMonitor`).
  It is started with this desktop's DISPLAY, HOME and XDG_* and nothing of the
  real session (no DBUS_*, WAYLAND_*, XDG_CURRENT_DESKTOP, SESSION_MANAGER), so
  the services it activates run on this desktop too;
* activatable services (``.service`` files in ``DIR/services``): xfconfd
  (``org.xfce.Xfconf``, xfce4-panel's settings) always; for
  ``org.freedesktop.Notifications`` the real xfce4-notifyd
  (``notifications="xfce4-notifyd"``), a service that crashes on activation
  (``"crash"``: Exec=/bin/false), one that never answers (``"hang"``) or none
  (``None``);
* **xfce4-panel 4.18** (``panel=True``) with ``--disable-wm-check``, laid out by
  an xfconf channel file in this desktop's XDG_CONFIG_HOME: one panel along the
  top, an expanding transparent separator, then the ``systray`` plugin, which
  is the StatusNotifierWatcher and host and draws items' dbusmenu menus
  natively.  XDG_CONFIG_DIRS is an empty directory so /etc/xdg's default panel
  is not used.  :meth:`start` returns once ``org.kde.StatusNotifierWatcher``
  has an owner; :meth:`restart_panel` kills and starts it again.
* optionally **trayer**, an XEmbed-only tray (:meth:`start_trayer`), with
  ``panel=False``.

A :class:`~tests.ui.harness.notifications.NotificationMonitor` watches the bus
from the start (:attr:`Desktop.notifications`).  Screenshots of the root
window go to ``tests/artifacts/`` (:meth:`screenshot`).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.ui.harness.bus import Bus
from tests.ui.harness.notifications import NotificationMonitor, Notified

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "tests" / "artifacts"

XFCONFD = "/usr/lib/x86_64-linux-gnu/xfce4/xfconf/xfconfd"
XFCE4_NOTIFYD = "/usr/lib/x86_64-linux-gnu/xfce4/notifyd/xfce4-notifyd"
WATCHER = "org.kde.StatusNotifierWatcher"
PANEL_HEIGHT = 28

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:tmpdir={dir}</listen>
  <servicedir>{dir}/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="service_start_timeout">5000</limit>
</busconfig>
"""

SERVICE = "[D-BUS Service]\nName={name}\nExec={exec}\n"

# One panel along the top: an expanding transparent separator, then the Status Tray.
PANEL_XML = """<?xml version="1.0" encoding="UTF-8"?>
<channel name="xfce4-panel" version="1.0">
  <property name="configver" type="int" value="2"/>
  <property name="panels" type="array">
    <value type="int" value="1"/>
    <property name="dark-mode" type="bool" value="true"/>
    <property name="panel-1" type="empty">
      <property name="position" type="string" value="p=6;x=0;y=0"/>
      <property name="length" type="uint" value="100"/>
      <property name="position-locked" type="bool" value="true"/>
      <property name="icon-size" type="uint" value="{icon_size}"/>
      <property name="size" type="uint" value="{height}"/>
      <property name="plugin-ids" type="array">
        <value type="int" value="1"/>
        <value type="int" value="2"/>
      </property>
    </property>
  </property>
  <property name="plugins" type="empty">
    <property name="plugin-1" type="string" value="separator">
      <property name="expand" type="bool" value="true"/>
      <property name="style" type="uint" value="0"/>
    </property>
    <property name="plugin-2" type="string" value="systray">
      <property name="square-icons" type="bool" value="true"/>
      <property name="icon-size" type="int" value="{icon_size}"/>
    </property>
  </property>
</channel>
"""


def taken_displays() -> set[int]:
    """X display numbers in use here: a lock file in /tmp, or a socket on disk or abstract (/proc/net/unix)."""
    taken = {int(m) for m in re.findall(r"/tmp/\.X11-unix/X(\d+)", Path("/proc/net/unix").read_text())}
    taken |= {int(m) for f in Path("/tmp").glob(".X*-lock") for m in re.findall(r"\.X(\d+)-lock", f.name)}
    return taken


def missing_tools(*names: str) -> list[str]:
    """The programs of ``names`` that are not on PATH."""
    return [n for n in names if shutil.which(n) is None]


def missing_desktop() -> list[str]:
    """What the xfce4-panel desktop needs and this machine lacks (tests/debian-packages.txt installs it)."""
    missing = missing_tools("Xvfb", "xdpyinfo", "dbus-daemon", "xfce4-panel", "xdotool", "import")
    missing += [p for p in (XFCONFD, XFCE4_NOTIFYD) if not os.access(p, os.X_OK)]
    return missing


@dataclass(frozen=True)
class Window:
    id: str
    name: str
    x: int
    y: int
    width: int
    height: int

    def __getitem__(self, i: int) -> object:  # (id, name, x, y, w, h) as the old tuples
        return (self.id, self.name, self.x, self.y, self.width, self.height)[i]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in root-window pixels."""
        return self.x, self.y, self.x + self.width, self.y + self.height


class Desktop:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager).

    ``panel``: run xfce4-panel (the StatusNotifier host); ``notifications``:
    ``"xfce4-notifyd"``, ``"crash"``, ``"hang"`` or ``None`` (see the module
    docstring); ``width``/``height``: the screen in pixels.
    """

    def __init__(self, *, panel: bool = True, notifications: str | None = "xfce4-notifyd", width: int = 1280,
                 height: int = 800) -> None:
        if notifications not in ("xfce4-notifyd", "crash", "hang", None):
            raise ValueError(f"notifications={notifications!r}")
        self.panel = panel
        self.notification_service = notifications
        self.size = (width, height)
        self.dir = Path(tempfile.mkdtemp(prefix="tender-desktop-"))
        self.home = self.dir / "home"
        self.runtime_dir = self.dir / "runtime"
        self.procs: list[subprocess.Popen] = []
        self.panel_proc: subprocess.Popen | None = None
        self.display = ""
        self.bus = ""
        self.notifications: NotificationMonitor | None = None
        self._client: Bus | None = None

    # -------------------------------------------------------------- lifecycle
    def start(self) -> "Desktop":
        """Start everything; blocks until the panel's watcher is up (at most ~30 s). Raises RuntimeError."""
        try:
            self._write_files()
            self._start_xvfb()
            self._paint_background()
            self._start_bus()
            self._client = Bus(self.bus)
            self.notifications = NotificationMonitor(self.bus).start()
            if self.panel:
                self.start_panel()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> "Desktop":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every process this desktop started (SIGTERM, then SIGKILL after 5 s); remove its directory."""
        if self.notifications:
            self.notifications.stop()
        if self._client:
            self._client.close()
        for proc in reversed(self.procs):
            _stop_group(proc)
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _write_files(self) -> None:
        for d in ("services", "xdg-config-dirs", "home/.config/xfce4/xfconf/xfce-perchannel-xml", "home/.local/share",
                  "home/.cache", "home/.local/state"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(mode=0o700)
        (self.dir / "bus.conf").write_text(BUS_CONFIG.format(dir=self.dir))
        self.add_service("org.xfce.Xfconf", XFCONFD)
        exec_ = {"xfce4-notifyd": XFCE4_NOTIFYD, "crash": "/bin/false", "hang": "/bin/sleep 600"}
        if self.notification_service:
            self.add_service("org.freedesktop.Notifications", exec_[self.notification_service])
        (self.home / ".config/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml").write_text(
            PANEL_XML.format(height=PANEL_HEIGHT, icon_size=PANEL_HEIGHT - 6))

    def add_service(self, name: str, exec_: str) -> Path:
        """Write an activatable service ``name`` running ``exec_`` into the bus's service directory.

        The bus reads its service directory again on the next activation.
        """
        path = self.dir / "services" / f"{name}.service"
        path.write_text(SERVICE.format(name=name, exec=exec_))
        return path

    # -------------------------------------------------------------- environment
    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a program on this desktop: nothing of the real session's.

        PATH, locale and the like are kept; DISPLAY, the bus, HOME and XDG_* are this desktop's.
        """
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DBUS_", "WAYLAND_", "XDG_", "GNOME_", "KDE_", "GTK_", "QT_", "SESSION_MANAGER",
                                    "DESKTOP_SESSION", "DISPLAY", "XAUTHORITY", "PYTEST_", "PYSTRAY_", "TENDER_",
                                    "KUBECONFIG", "VIRTUAL_ENV"))}
        h = self.home
        env.update(DISPLAY=self.display, HOME=str(h), XDG_CONFIG_HOME=str(h / ".config"),
                   XDG_DATA_HOME=str(h / ".local/share"), XDG_CACHE_HOME=str(h / ".cache"),
                   XDG_STATE_HOME=str(h / ".local/state"), XDG_RUNTIME_DIR=str(self.runtime_dir),
                   XDG_CONFIG_DIRS=str(self.dir / "xdg-config-dirs"),
                   NO_AT_BRIDGE="1",  # no accessibility bus: GTK would spawn one and leave it behind
                   GDK_BACKEND="x11")
        env.setdefault("LANG", "C.UTF-8")
        if self.bus:
            env["DBUS_SESSION_BUS_ADDRESS"] = self.bus
        env.update(extra)
        return env

    def _spawn(self, cmd: list[str], **kw: object) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, start_new_session=True, **kw)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    # -------------------------------------------------------------- X
    def _start_xvfb(self) -> None:
        """Xvfb on a display number no other X server holds; returns once it answers (RuntimeError if not).

        Not ``-displayfd``: Xvfb then looks only at lock files, and on a machine where other X
        servers run in their own /tmp it can pick a number whose abstract socket is theirs.
        """
        w_, h_ = self.size
        for _ in range(5):
            number = random.choice([n for n in range(200, 2000) if n not in taken_displays()])
            proc = self._spawn(["Xvfb", f":{number}", "-screen", "0", f"{w_}x{h_}x24", "-nolisten", "tcp",
                                "-noreset"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            lock = Path(f"/tmp/.X{number}-lock")
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    ours = lock.read_text().strip() == str(proc.pid)
                except OSError:
                    ours = False
                if ours and subprocess.run(["xdpyinfo", "-display", f":{number}"], capture_output=True).returncode == 0:
                    self.display = f":{number}"
                    return
                time.sleep(0.05)
            _stop_group(proc)
            self.procs.remove(proc)
        raise RuntimeError("Xvfb did not start")

    def _paint_background(self, rgb: str = "#4c566a") -> None:
        """A desktop-like background instead of Xvfb's black (screenshots are for people)."""
        code = ("import sys; from Xlib import display as d; x=d.Display(); s=x.screen(); "
                "c=s.default_colormap.alloc_named_color(sys.argv[1]); "
                "s.root.change_attributes(background_pixel=c.pixel); s.root.clear_area(); x.sync()")
        subprocess.run([sys.executable, "-c", code, rgb], env=self.env(), check=False, capture_output=True)

    def windows(self) -> list[Window]:
        """Visible (mapped) windows, each with its root-relative geometry."""
        out = []
        for wid in self.xdotool("search", "--onlyvisible", "--name", ".*", check=False).split():
            geo = self.xdotool("getwindowgeometry", "--shell", wid, check=False)
            vals = dict(line.split("=", 1) for line in geo.splitlines() if "=" in line)
            if not vals:
                continue
            name = self.xdotool("getwindowname", wid, check=False).strip()
            out.append(Window(wid, name, int(vals["X"]), int(vals["Y"]), int(vals["WIDTH"]), int(vals["HEIGHT"])))
        return out

    def xdotool(self, *args: str, check: bool = True) -> str:
        out = subprocess.run(["xdotool", *args], env=self.env(), capture_output=True, text=True, timeout=20)
        if check and out.returncode != 0:
            raise AssertionError(f"xdotool {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def screenshot(self, name: str | Path) -> Path:
        """Save the whole screen as PNG: ``name`` under tests/artifacts/ (or a full path). Returns the path."""
        path = Path(name)
        if not path.is_absolute():
            path = ARTIFACTS / path
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-window", "root", str(path)], env=self.env(), check=True, timeout=30,
                       capture_output=True)
        return path

    # -------------------------------------------------------------- bus
    def _start_bus(self) -> None:
        env = self.env()
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        proc = self._spawn(["dbus-daemon", f"--config-file={self.dir / 'bus.conf'}", "--nofork", "--nopidfile",
                            "--print-address=1"], stdout=subprocess.PIPE, stderr=open(self.dir / "bus.log", "w"),
                           text=True, env=env)
        self.bus = proc.stdout.readline().strip()
        if not self.bus:
            raise RuntimeError(f"dbus-daemon did not start: {(self.dir / 'bus.log').read_text()}")

    def name_owner(self, name: str) -> str | None:
        """Who owns ``name`` on this desktop's bus now (None: nobody; never activates)."""
        assert self._client is not None
        return self._client.name_owner(name)

    def wait_name(self, name: str, owned: bool = True, timeout: float = 20.0) -> None:
        """Block until ``name`` is owned (or not); AssertionError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while (self.name_owner(name) is not None) != owned:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} still {'not ' if owned else ''}owned after {timeout}s\n{self.logs()}")
            time.sleep(0.05)

    def read_notifications(self) -> list[Notified]:
        """Every Notify call seen on the bus so far (see NotificationMonitor)."""
        return self.notifications.notified if self.notifications else []

    # -------------------------------------------------------------- the panel
    def start_panel(self, timeout: float = 30.0) -> None:
        """Start xfce4-panel; return once its StatusNotifierWatcher has an owner (AssertionError if not)."""
        log = open(self.dir / "panel.log", "a")
        self.panel_proc = self._spawn(["xfce4-panel", "--disable-wm-check"], env=self.env(), stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.wait_name(WATCHER, timeout=timeout)
        self.wait_name("org.xfce.Panel", timeout=timeout)

    def stop_panel(self) -> None:
        """Kill xfce4-panel and its plugin wrappers; return once the watcher's name is released."""
        if self.panel_proc is not None:
            _stop_group(self.panel_proc)
            self.procs.remove(self.panel_proc)
            self.panel_proc = None
        self.wait_name(WATCHER, owned=False, timeout=10)

    def restart_panel(self) -> None:
        """The watcher restarting, as when a panel crashes and comes back."""
        self.stop_panel()
        self.start_panel()

    def panel_window(self) -> Window:
        """The panel's own window (AssertionError if it is not mapped)."""
        for w in self.windows():
            if w.name == "xfce4-panel" and w.width > 100:
                return w
        raise AssertionError(f"no xfce4-panel window; windows: {self.windows()}\n{self.logs()}")

    def logs(self) -> str:
        """The bus's and the panel's output (for assertion messages)."""
        parts = []
        for name in ("bus.log", "panel.log"):
            p = self.dir / name
            if p.exists():
                parts.append(f"--- {name}\n{p.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    # -------------------------------------------------------------- XEmbed
    def start_trayer(self) -> None:
        """An XEmbed system tray (the kind GtkStatusIcon and pystray's gtk backend use); use with panel=False."""
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


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group ``proc`` leads (it was started in a new session), SIGKILL after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(wait)
            # The leader is gone; give its group (plugin wrappers, activated services) a moment, then kill it.
            time.sleep(0.1)
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        except subprocess.TimeoutExpired:
            continue


def drawn_boxes(png: Path, region: tuple[int, int, int, int], min_size: int = 6) -> list[tuple[int, int, int, int]]:
    """What is drawn in ``region`` (left, top, right, bottom) of a screenshot, apart from its background.

    The background is the region's most common colour; pixels differing from it
    by more than 48 (sum over R, G, B) are "drawn"; neighbouring drawn columns
    form one box.  Returns (left, top, right, bottom) boxes in screenshot
    pixels, left to right, each at least ``min_size`` px wide and high.
    """
    from PIL import Image

    image = Image.open(png).convert("RGB").crop(region)
    w, h = image.size
    px = image.load()
    counts: dict[tuple[int, int, int], int] = {}
    for x in range(w):
        for y in range(h):
            counts[px[x, y]] = counts.get(px[x, y], 0) + 1
    bg = max(counts, key=counts.get)

    def drawn(x: int, y: int) -> bool:
        return sum(abs(a - b) for a, b in zip(px[x, y], bg)) > 48

    boxes, start = [], None
    for x in range(w + 1):
        rows = [y for y in range(h) if x < w and drawn(x, y)]
        if rows and start is None:
            start, top, bottom = x, min(rows), max(rows)
        elif rows:
            top, bottom = min(top, min(rows)), max(bottom, max(rows))
        elif start is not None:
            if x - start >= min_size and bottom - top + 1 >= min_size:
                boxes.append((region[0] + start, region[1] + top, region[0] + x, region[1] + bottom + 1))
            start = None
    return boxes
