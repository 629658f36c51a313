"""The soak's engine: ``tender daemon`` (the engine host the tray app uses too) in a private home.

:class:`Daemon` runs ``tender daemon --kubeconfig K --profiles P`` with
``HOME``, ``XDG_RUNTIME_DIR``, ``XDG_CONFIG_HOME`` and ``XDG_STATE_HOME``
in a directory of its own (so it never meets the user's engine or tray),
its stderr (the daemon's log) in ``daemon.log`` there, and follows its
state over the control API (``GET /v1/events`` through
:class:`tray.api.client.EngineClient` on that home's socket), as
``tender events`` does.  The forwards come from the profiles file's
``autostart: true`` profiles, as the tray's do at login.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.procs import CHILDREN, TENDER, stop_process

__all__ = ["Daemon"]


class Daemon:
    """``tender daemon`` in the private home ``home``; :attr:`status` is each forward's last state by name."""

    def __init__(self, home: Path, kubeconfig: str, profiles: Path) -> None:
        self.home = home
        self.runtime = home / "run"
        self.runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_path = home / "daemon.log"
        self.cmd = [TENDER, "daemon", "--kubeconfig", kubeconfig, "--profiles", str(profiles)]
        self.env = dict(os.environ, HOME=str(home), XDG_RUNTIME_DIR=str(self.runtime),
                        XDG_CONFIG_HOME=str(home / "config"), XDG_STATE_HOME=str(home / "state"),
                        XDG_CACHE_HOME=str(home / "cache"), PYTHONUNBUFFERED="1")
        self.env.pop("KUBECONFIG", None)
        self.env.pop("TENDER_PROFILES", None)
        self.socket = self.runtime / "tender" / "engine.sock"
        self.proc: subprocess.Popen[Any] | None = None
        self.status: dict[str, dict[str, Any]] = {}  # forward name -> its last FORWARD object
        self.status_events = 0
        self.changes: dict[str, dict[str, int]] = {}  # forward name -> {"active->reconnecting": N, ...}
        self.event_streams = 0
        self.engine: dict[str, Any] = {}
        self._changed = threading.Condition()
        self._stopping = False

    def spawn(self) -> "Daemon":
        """Start the daemon and the thread following its events; returns at once."""
        self._log = self.log_path.open("w")
        self.proc = CHILDREN.popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                   env=self.env, cwd=str(self.home))
        threading.Thread(target=self._follow, daemon=True, name="daemon events").start()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def forward(self, name: str) -> dict[str, Any]:
        """The forward named ``name`` (its profile's name) as the engine last said, {} if unknown."""
        with self._changed:
            return dict(self.status.get(name, {}))

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        """Block until ``predicate(self)`` holds; raises TimeoutError (with the daemon's log) after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                if not self.alive():
                    raise RuntimeError(f"tender daemon exited before {what}:\n{self.log_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"tender daemon: no {what} after {timeout:.0f} s:\n{self.log_tail()}")
                self._changed.wait(min(left, 0.2))

    def active(self, names: list[str]) -> bool:
        return all(self.status.get(n, {}).get("status") == "active" for n in names)

    def stop(self) -> int | None:
        self._stopping = True
        code = stop_process(self.proc, 20) if self.proc is not None else None
        try:
            self._log.close()
        except (AttributeError, OSError):
            pass
        return code

    def _update(self, fwd: dict[str, Any]) -> None:
        name = fwd.get("profile") or fwd.get("name") or fwd.get("session_id", "?")
        before = self.status.get(name, {}).get("status")
        if before is not None and fwd.get("status") != before:
            key = f"{before}->{fwd.get('status')}"
            changes = self.changes.setdefault(name, {})
            changes[key] = changes.get(key, 0) + 1
        self.status[name] = fwd

    def _follow(self) -> None:
        """Follow /v1/events for the daemon's life, reconnecting if the stream ends while it runs."""
        from tray.api.client import ApiError, EngineClient, NoEngine

        while not self._stopping and self.alive():
            client = EngineClient(self.socket, timeout=10.0)
            try:
                if not self.engine:
                    self.engine = client.get("/v1/engine")
                self.event_streams += 1
                for ev in client.events():
                    kind = ev.get("event")
                    with self._changed:
                        if kind == "list":
                            for fwd in ev.get("forwards", []):
                                self._update(fwd)
                        elif kind == "status":
                            self.status_events += 1
                            self._update(ev)
                        self._changed.notify_all()
            except (NoEngine, ApiError, OSError):
                pass
            finally:
                client.close()
            time.sleep(0.2)
