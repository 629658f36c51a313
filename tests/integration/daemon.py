"""A ``tender daemon`` for the engine's integration tests: one user's session, as a subprocess.

:class:`Daemon` is one user's session on the test cluster: a runtime
directory of its own (short, in /tmp: a unix socket's path has at most 107
bytes), config and state directories and a profiles file under the test's
``home`` (its ``tmp_path``), and the environment a terminal of that user has
(``KUBECONFIG`` naming the test kubeconfig, ``XDG_*``, ``TENDER_PROFILES``).
In it, :meth:`Daemon.start` starts ``tender daemon`` and waits until it
answers on its socket; :meth:`Daemon.api` sends one request over the socket
(httpx); :meth:`Daemon.tender` runs a ``tender`` verb to its end.  Used as a
context manager, every daemon it started is stopped at the end and the
runtime directory removed::

    @pytest.fixture
    def daemon(cluster: Cluster, tmp_path: Path) -> Iterator[Daemon]:
        with Daemon(cluster, tmp_path) as d:
            d.start()
            yield d
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.clusterlib import ROOT, Cluster
from tests.integration.engine import wait_for

EMPTY_PROFILES = "version: 1\nprofiles: []\n"


def tender(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run ``tender ARGS`` (this checkout's, ``python -m tray``) with ``env`` to its end, as from a shell.

    Blocks up to ``timeout`` seconds (then raises :class:`subprocess.TimeoutExpired`); returns its exit
    code, stdout and stderr (text).
    """
    return subprocess.run([sys.executable, "-m", "tray", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


class Daemon:
    """One user's session with ``tender daemon`` processes in it (see the module's docstring).

    ``home``: a directory of the test's (``config/``, ``state/``, ``profiles.yaml`` and the daemons' logs go
    there).  Nothing is started until :meth:`start`.
    """

    def __init__(self, cluster: Cluster, home: Path) -> None:
        self.cluster = cluster
        self.home = home
        self.run_dir = Path(tempfile.mkdtemp(prefix="td-", dir="/tmp"))  # mode 0700
        self.profiles = home / "profiles.yaml"
        if not self.profiles.exists():
            self.profiles.write_text(EMPTY_PROFILES)
        for sub in ("config", "state"):
            (home / sub).mkdir(mode=0o700, exist_ok=True)
        self.env = cluster.env(XDG_RUNTIME_DIR=str(self.run_dir), XDG_CONFIG_HOME=str(home / "config"),
                               XDG_STATE_HOME=str(home / "state"), TENDER_PROFILES=str(self.profiles))
        self.env.pop("BROWSER", None)  # no test opens a real browser by accident
        #: Every ``tender daemon`` started, oldest first, and its log file (stdout and stderr).
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # ------------------------------------------------------------ paths
    @property
    def socket(self) -> Path:
        """The engine's socket: ``$XDG_RUNTIME_DIR/tender/engine.sock``."""
        return self.run_dir / "tender" / "engine.sock"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The last ``tender daemon`` started."""
        return self.procs[-1]

    @property
    def log(self) -> Path:
        """The last started daemon's log file."""
        return self.logs[-1]

    # ------------------------------------------------------------ life
    def start(self, args: Sequence[str] | None = None, *, log: str | None = None,
              timeout: float = 30) -> subprocess.Popen[bytes]:
        """Start ``tender daemon ARGS`` and wait until it answers ``GET /v1/engine`` with its own pid.

        ``args`` default: ``--kubeconfig`` the test kubeconfig, ``--profiles`` :attr:`profiles`
        (``[]``: none, so the environment decides).  ``log``: the log file's name in ``home``
        (default ``daemonN.log``).  Blocks up to ``timeout`` seconds; raises AssertionError, with the
        daemon's log, if it exits or does not answer by then.  Returns the process.
        """
        if args is None:
            args = ["--kubeconfig", self.cluster.kubeconfig, "--profiles", str(self.profiles)]
        path = self.home / (log or f"daemon{len(self.procs)}.log")
        with path.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "tray", "daemon", *args], cwd=ROOT, env=self.env,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.logs.append(path)
        wait_for(lambda: self.answers(proc), timeout, "tender daemon to answer GET /v1/engine", interval=0.1)
        return proc

    def answers(self, proc: subprocess.Popen[Any] | None = None) -> bool:
        """Whether ``proc`` (default :attr:`proc`) answers ``GET /v1/engine`` on :attr:`socket` with its pid.

        Raises AssertionError (with its log, if it is one of :attr:`procs`) when it has exited.
        Blocks up to 2 s.
        """
        proc = proc or self.proc
        if proc.poll() is not None:
            raise AssertionError(f"tender daemon exited {proc.returncode}:\n{self.log_text(proc)}")
        try:
            with self.client(timeout=2) as c:
                return c.get("/v1/engine").json().get("pid") == proc.pid
        except (httpx.TransportError, FileNotFoundError, ValueError):
            return False

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every daemon still running and wait up to ``timeout`` s each (then SIGKILL)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def log_text(self, proc: subprocess.Popen[Any] | None = None) -> str:
        """What ``proc`` (default :attr:`proc`) wrote so far ("" for a process not started here)."""
        proc = proc or self.proc
        for p, path in zip(self.procs, self.logs):
            if p is proc:
                return path.read_text(errors="replace")
        return ""

    # ------------------------------------------------------------ talking
    def client(self, timeout: float | httpx.Timeout | None = 30) -> httpx.Client:
        """An httpx client of the engine's socket (base URL ``http://tender``); ``timeout`` in seconds."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://tender",
                            timeout=timeout)

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30) -> httpx.Response:
        """One request on a fresh connection: ``method`` ``path`` (``/v1/...``) with JSON ``body`` (None: no
        body); the answer, whatever its status.  Blocks up to ``timeout`` s; raises httpx's errors."""
        with self.client(timeout) as c:
            return c.request(method, path, json=body)

    def start_forward(self, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
        """``POST /v1/forwards`` with ``body`` (one port; 201 asserted), then poll the forward until it is
        ``active`` (AssertionError if it leaves ``starting`` for anything else, or after ``timeout`` s).
        Returns the forward's object, active."""
        with self.client() as c:
            answer = c.post("/v1/forwards", json=body)
            assert answer.status_code == 201, answer.text
            (fwd,) = answer.json()["forwards"]

            def active() -> dict[str, Any] | None:
                now = c.get(f"/v1/forwards/{fwd['session_id']}").json()
                assert now["status"] in ("starting", "active"), now
                return now if now["status"] == "active" else None

            return wait_for(active, timeout, f"{body['target']} to be active", interval=0.1)

    def ids(self) -> list[str]:
        """The session ids ``GET /v1/forwards`` lists, in its order."""
        answer = self.api("GET", "/v1/forwards")
        assert answer.status_code == 200, answer.text
        return [f["session_id"] for f in answer.json()["forwards"]]

    def tender(self, *args: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``tender ARGS`` in this session (its environment, plus ``env``); see :func:`tender`."""
        return tender(*args, env={**self.env, **env}, timeout=timeout)
