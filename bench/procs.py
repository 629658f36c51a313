"""Child processes: the forwarders under test, the load workers, and /proc.

Every child the benchmark starts is registered in :data:`CHILDREN` and is
killed (by its own pid, nothing broader) when the benchmark ends, fails or is
interrupted.  Children also get ``PR_SET_PDEATHSIG``, so a benchmark killed
with SIGKILL takes its forwarders down with it.

Forwarders:

* :class:`TenderForward` runs ``tender forward ... -o json`` (or ``tender
  run ... -o json``) and records every JSON event with its arrival time.
* :class:`KubectlForward` runs ``kubectl port-forward`` over WebSocket (the
  default of kubectl >= 1.31) or SPDY (``KUBECTL_PORT_FORWARD_WEBSOCKETS=
  false``) and reads the local port from its "Forwarding from" line.
* :class:`KftrayForward` runs kftray's engine (``kftray-portforward``, the
  harness in ``bench/peers/kftray``) and reads its JSON lines.
* :class:`Direct` is the pod server's own loopback address: no forwarder.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = os.environ.get("KUBECTL", "/usr/bin/kubectl")
TENDER = str(ROOT / ".venv" / "bin" / "tender")
if not Path(TENDER).exists():  # a venv elsewhere: the tender next to this interpreter
    TENDER = str(Path(sys.executable).with_name("tender"))
USER_VENV = ROOT / ".venv-user"


def user_tender() -> tuple[str, str]:
    """The ``tender`` a user runs, and a note: ``.venv-user``'s (a plain ``pip install .``, as pipx
    makes; ``make python-deps``) when it exists and is newer than every source under ``tray/`` and
    ``pyproject.toml``, else :data:`TENDER` (the dev venv, whose extra packages make httpx and
    httpcore import click, rich and trio) with the reason.  Reads file times only; does not block."""
    stamp = USER_VENV / ".installed"
    binary = USER_VENV / "bin" / "tender"
    if not stamp.exists() or not binary.exists():
        return TENDER, f"{USER_VENV.name} missing (make python-deps): the dev venv's tender"
    built = stamp.stat().st_mtime
    sources = [ROOT / "pyproject.toml", *(ROOT / "tray").rglob("*.py")]
    if any(f.stat().st_mtime > built for f in sources if f.exists()):
        return TENDER, f"{USER_VENV.name} older than tray/ (make python-deps): the dev venv's tender"
    return str(binary), f"{USER_VENV.name} (pip install ., as a user gets it)"


CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Children:
    """Every process the benchmark started; :meth:`kill_all` ends them."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []
        self._lock = threading.Lock()

    def popen(self, cmd: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        # Spawned from the main thread only: PDEATHSIG fires when the thread
        # that forked exits, and the main thread lives as long as we do.
        proc = subprocess.Popen(cmd, preexec_fn=_die_with_parent, **kwargs)
        with self._lock:
            self._procs.append(proc)
        return proc

    def forget(self, proc: subprocess.Popen[Any]) -> None:
        with self._lock:
            if proc in self._procs:
                self._procs.remove(proc)

    def alive(self) -> list[subprocess.Popen[Any]]:
        with self._lock:
            return [p for p in self._procs if p.poll() is None]

    def kill_all(self, grace: float = 3.0) -> list[str]:
        """SIGTERM every live child, then SIGKILL what is left; returns what was killed."""
        with self._lock:
            procs = list(self._procs)
            self._procs.clear()
        killed = []
        for p in procs:
            if p.poll() is None:
                killed.append(f"{p.pid} {os.path.basename(str(p.args[0]))}")
                try:
                    p.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        return killed


CHILDREN = Children()


def stop_process(proc: subprocess.Popen[Any], grace: float = 5.0) -> int | None:
    """SIGTERM, wait, SIGKILL; the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    CHILDREN.forget(proc)
    return proc.returncode


# ---------------------------------------------------------------- /proc
def proc_stats(pid: int) -> dict[str, Any] | None:
    """CPU seconds (user+system), RSS, threads and open sockets of one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        utime, stime = int(fields[11]), int(fields[12])
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = threads = 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
        sockets = fds = 0
        for fd in os.scandir(f"/proc/{pid}/fd"):
            fds += 1
            try:
                if os.readlink(fd.path).startswith("socket:"):
                    sockets += 1
            except OSError:
                pass
    except (OSError, ValueError, IndexError):
        return None
    return {"cpu_s": (utime + stime) / CLK_TCK, "rss_mb": rss_kb / 1024.0, "threads": threads,
            "sockets": sockets, "fds": fds, "t": time.monotonic()}


def socket_inodes(pid: int) -> set[str]:
    out = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(fd.path)
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def tcp_peers(pid: int) -> dict[int, int]:
    """Established TCP connections of a process by remote port (IPv4 and IPv6 loopback)."""
    inodes = socket_inodes(pid)
    peers: dict[int, int] = {}
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != "01" or parts[9] not in inodes:  # 01 = ESTABLISHED
                continue
            rport = int(parts[2].rsplit(":", 1)[1], 16)
            peers[rport] = peers.get(rport, 0) + 1
    return peers


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return float(total - idle), float(total)


# ---------------------------------------------------------------- forwarders
class Forwarder:
    """A way to reach the pod server: name, local port, and (if any) a process."""

    name = "?"
    proc: subprocess.Popen[Any] | None = None
    port: int | None = None

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def stats(self) -> dict[str, Any] | None:
        return proc_stats(self.proc.pid) if self.proc is not None else None

    def stop(self) -> int | None:
        return stop_process(self.proc) if self.proc is not None else None


class Direct(Forwarder):
    def __init__(self, port: int) -> None:
        self.name = "direct"
        self.port = port


class _Lines:
    """Reads a child's pipe in a thread; keeps (arrival time, line)."""

    def __init__(self, stream: Any, on_line: Any = None, keep: int = 2000) -> None:
        self.lines: list[tuple[float, str]] = []
        self.count = 0
        self._keep = keep
        self._on_line = on_line
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            t = time.monotonic()
            self.count += 1
            if self._on_line is not None:
                try:
                    if self._on_line(t, line):
                        continue
                except Exception as exc:  # a bad line must not stop the pump
                    line = f"[bench: could not read: {exc}] {line}"
            if len(self.lines) < self._keep:
                self.lines.append((t, line))
        stream.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def text(self, last: int = 30) -> str:
        return "".join(line for _, line in self.lines[-last:])


class KubectlForward(Forwarder):
    """``kubectl port-forward --address 127.0.0.1 TARGET :REMOTE`` (no -v: no log cost)."""

    def __init__(self, kubeconfig: str, context: str, namespace: str, target: str, remote: int, *,
                 websockets: bool) -> None:
        self.name = "kubectl-ws" if websockets else "kubectl-spdy"
        self.websockets = websockets
        self.cmd = [KUBECTL, "--kubeconfig", kubeconfig, "--context", context, "-n", namespace,
                    "port-forward", "--address", "127.0.0.1", target, f":{remote}"]
        self.env = dict(os.environ, KUBECTL_PORT_FORWARD_WEBSOCKETS="true" if websockets else "false")
        self.remote = remote
        self._found = threading.Event()
        self.t_spawn = self.t_ready = 0.0
        self.t_exit: float | None = None
        self.stopping = False
        self.connections = 0

    def _line(self, t: float, line: str) -> bool:
        m = re.search(rf"Forwarding from 127\.0\.0\.1:(\d+) -> {self.remote}", line)
        if m and self.port is None:
            self.port = int(m.group(1))
            self.t_ready = t
            self._found.set()
        if line.startswith("Handling connection for"):
            self.connections += 1
            return True  # not kept: one per connection
        return False

    def spawn(self) -> "KubectlForward":
        self.stopping = False
        self.t_spawn = time.monotonic()
        self.proc = CHILDREN.popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   env=self.env, bufsize=1)
        self.out = _Lines(self.proc.stdout, self._line)
        self.err = _Lines(self.proc.stderr)
        threading.Thread(target=self._reap, daemon=True).start()
        return self

    def _reap(self) -> None:
        assert self.proc is not None
        self.proc.wait()
        if not self.stopping:  # t_exit: when it ended on its own, not when the bench stopped it
            self.t_exit = time.monotonic()

    def stop(self) -> int | None:
        self.stopping = True
        return super().stop()

    def wait_ready(self, timeout: float = 30.0) -> "KubectlForward":
        deadline = time.monotonic() + timeout
        while not self._found.wait(0.02):
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.err.text() if self.proc else ""
                self.stop()
                raise RuntimeError(f"{self.name} did not start forwarding: {' '.join(self.cmd)}\n{err}")
        return self

    def start(self, timeout: float = 30.0) -> "KubectlForward":
        return self.spawn().wait_ready(timeout)

    def stderr_text(self) -> str:
        # kubectl 1.32 warns about the version skew with a 1.37 server: noise.
        return "".join(line for _, line in self.err.lines if "version difference" not in line)


KFTRAY_BUILD = ROOT / "bench" / "peers" / "kftray" / "build"


def kftray_binary() -> tuple[str | None, str]:
    """The kftray peer's binary and "" (``$KFTRAY_PEER``, else ``bench/peers/kftray/build``, which
    builds it when its sources changed: ~8 min cold); or None and why it is not there.

    Blocks for as long as the build takes (nothing when it is cached); never raises.
    """
    env = os.environ.get("KFTRAY_PEER")
    if env:
        return (env, "") if os.access(env, os.X_OK) else (None, f"$KFTRAY_PEER={env} is not executable")
    try:
        r = subprocess.run([str(KFTRAY_BUILD)], capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{KFTRAY_BUILD}: {exc}"
    path = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    if r.returncode != 0 or not os.access(path, os.X_OK):
        return None, f"{KFTRAY_BUILD} failed ({r.returncode}): {r.stderr.strip()[-500:]}"
    return path, ""


def kftray_target(target: str) -> str:
    """kubectl's TARGET as the kftray configuration a user would save for it.

    ``svc/NAME`` is kftray's "service" workload; kftray has no Deployment workload, so
    ``deploy/NAME`` becomes its "pod" workload with the Deployment's pod label (the bench's
    Deployments select ``app=NAME``, see tests.clusterlib.deployment_manifest).
    """
    kind, _, name = target.partition("/")
    if kind in ("svc", "service"):
        return f"svc/{name}"
    if kind in ("deploy", "deployment"):
        return f"label/app={name}"
    raise ValueError(f"no kftray workload for {target}")


class KftrayForward(Forwarder):
    """kftray's engine in a process of its own: one forward, or a batch (``forwards``).

    The harness prints one JSON line per forward once kftray's batch start returned
    (``listening`` with its local port, or ``error``), then ``ready``.  ``t_ready`` is when
    that ``ready`` line arrived; ``port`` the first forward's local port.
    """

    def __init__(self, binary: str, kubeconfig: str, context: str = "", namespace: str = "", target: str = "",
                 remote: int = 0, *, forwards: list[dict[str, Any]] | None = None, workdir: Path | None = None) -> None:
        self.name = "kftray"
        self.cmd = [binary, "--kubeconfig", kubeconfig]
        if forwards is not None:
            assert workdir is not None
            path = workdir / f"kftray-forwards-{len(forwards)}-{os.getpid()}-{id(self)}.json"
            path.write_text(json.dumps([{**f, "target": kftray_target(f["target"])} for f in forwards]))
            self.cmd += ["--forwards", str(path)]
        else:
            self.cmd += ["--context", context, "--namespace", namespace, kftray_target(target), f":{remote}"]
        self.listening: dict[int, int] = {}  # index -> local port
        self.errors: dict[int, str] = {}
        self._ready = threading.Event()
        self.t_spawn = self.t_ready = 0.0
        self.t_exit: float | None = None
        self.stopping = False
        self.ready_seconds: float | None = None  # the harness's own: its start to the batch's return

    def _line(self, t: float, line: str) -> bool:
        if not line.startswith("{"):
            return False
        ev = json.loads(line)
        kind = ev.get("event")
        if kind == "listening":
            self.listening[int(ev["index"])] = int(ev["local_port"])
        elif kind == "error":
            self.errors[int(ev["index"])] = str(ev.get("error", ""))
        elif kind == "ready":
            self.ready_seconds = ev.get("seconds")
            if 0 in self.listening:
                self.port = self.listening[0]
            self.t_ready = t
            self._ready.set()
        return len(self.listening) + len(self.errors) > 20  # a batch's lines are not all kept

    def spawn(self) -> "KftrayForward":
        self.stopping = False
        self.t_spawn = time.monotonic()
        self.proc = CHILDREN.popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                   stdin=subprocess.DEVNULL)
        self.out = _Lines(self.proc.stdout, self._line)
        self.err = _Lines(self.proc.stderr)
        threading.Thread(target=self._reap, daemon=True).start()
        return self

    def _reap(self) -> None:
        assert self.proc is not None
        self.proc.wait()
        if not self.stopping:  # t_exit: when it ended on its own, not when the bench stopped it
            self.t_exit = time.monotonic()

    def stop(self) -> int | None:
        self.stopping = True
        return super().stop()

    def wait_ready(self, timeout: float = 30.0, *, require_all: bool = True) -> "KftrayForward":
        """Wait for the ``ready`` line; raises RuntimeError (the process stopped) when a forward
        failed (``require_all``) or none listens, or the line did not come in ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.02):
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                break
        if not self._ready.is_set() or not self.listening or (require_all and self.errors):
            err = self.err.text() if self.proc else ""
            errors = "; ".join(sorted(set(self.errors.values())))[:1000]
            self.stop()
            raise RuntimeError(f"kftray did not start forwarding: {' '.join(self.cmd)}\n{errors}\n{err}")
        return self

    def start(self, timeout: float = 30.0) -> "KftrayForward":
        return self.spawn().wait_ready(timeout)


class TenderProcess(Forwarder):
    """``tender forward|run ... -o json``: its JSON events, timed on arrival.

    ``list`` events (the whole list, after every start) are counted and
    skipped unparsed: with N forwards there are N of them, each O(N) long.
    ``binary``: the ``tender`` to run (default :data:`TENDER`; start-up runs :func:`user_tender`'s).
    """

    def __init__(self, args: list[str], name: str = "tender", binary: str = TENDER) -> None:
        self.name = name
        self.cmd = [binary, *args, "-o", "json"]
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.status: dict[str, dict[str, Any]] = {}  # session id -> last status event
        self.first_active: float | None = None
        self.active_at: dict[str, float] = {}
        self.list_events = 0
        self.list_bytes = 0
        self.status_events = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.t_spawn = 0.0

    def _line(self, t: float, line: str) -> bool:
        if line.startswith('{"event": "list"'):
            self.list_events += 1
            self.list_bytes += len(line)
            return True
        if not line.startswith("{"):
            return False
        ev = json.loads(line)
        if ev.get("event") != "status":
            return True  # e.g. "connection-error": not a forward's state
        with self._changed:
            self.status_events += 1
            sid = ev.get("session_id", "")
            self.status[sid] = ev
            if len(self.events) < 5000:
                self.events.append((t, ev))
            if ev.get("status") == "active":
                if self.first_active is None:
                    self.first_active = t
                self.active_at.setdefault(sid, t)
            self._changed.notify_all()
        return True

    def spawn(self) -> "TenderProcess":
        self.t_spawn = time.monotonic()
        self.proc = CHILDREN.popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   bufsize=1, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.out = _Lines(self.proc.stdout, self._line)
        self.err = _Lines(self.proc.stderr)
        return self

    def wait_for(self, predicate: Any, timeout: float, what: str) -> float:
        """Wait until predicate(self) holds; the arrival time of the event that made it so."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"tender exited ({self.proc.returncode}) before {what}:\n"
                                       f"{self.err.text()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"tender: no {what} after {timeout:.0f}s:\n{self.err.text()}")
                self._changed.wait(min(left, 0.1))
            return self.events[-1][0] if self.events else time.monotonic()

    def active_count(self) -> int:
        return sum(1 for ev in self.status.values() if ev.get("status") == "active")

    def errors(self) -> list[dict[str, Any]]:
        return [ev for ev in self.status.values() if ev.get("status") == "error"]


class TenderForward(TenderProcess):
    """One ``tender forward`` to TARGET's REMOTE port on a free local port."""

    def __init__(self, kubeconfig: str, context: str, namespace: str, target: str, remote: int) -> None:
        super().__init__(["forward", "--kubeconfig", kubeconfig, "--context", context, "-n", namespace,
                          target, f":{remote}"])

    def start(self, timeout: float = 30.0) -> "TenderForward":
        self.spawn()
        try:
            self.wait_for(lambda s: s.first_active is not None, timeout, "active forward")
        except BaseException:
            self.stop()
            raise
        ev = next(ev for _, ev in self.events if ev.get("status") == "active")
        self.port = int(ev["local_port"])
        return self

    def pods_used(self) -> list[tuple[float, str, str]]:
        """(arrival, status, pod) of every status event."""
        return [(t, ev.get("status", ""), ev.get("pod_name", "")) for t, ev in self.events]


class TenderProxy(Forwarder):
    """``tender proxy``: the cluster proxy (SOCKS5 and HTTP) of one context on a free local port."""

    def __init__(self, kubeconfig: str, context: str) -> None:
        self.name = "tender-proxy"
        self.kubeconfig, self.context = kubeconfig, context

    def start(self, timeout: float = 30.0) -> "TenderProxy":
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = CHILDREN.popen([TENDER, "proxy", "--kubeconfig", self.kubeconfig, "--context", self.context,
                                    "--listen", f"127.0.0.1:{self.port}"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_port(self.port, timeout)
        except BaseException:
            err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"tender proxy did not listen on {self.port}: {err.strip()}") from None
        return self


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts on 127.0.0.1:port."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# ---------------------------------------------------------------- load workers
def run_load(job: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Run one load job in a worker process; its JSON result."""
    proc = CHILDREN.popen([sys.executable, "-m", "bench.load", json.dumps(job)], cwd=str(ROOT),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc, 1)
        raise RuntimeError(f"load job {job['kind']} did not finish in {timeout:.0f}s") from None
    CHILDREN.forget(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"load job {job['kind']} failed ({proc.returncode}):\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def run_load_parallel(jobs: list[dict[str, Any]], timeout: float = 300.0) -> list[dict[str, Any]]:
    procs = [CHILDREN.popen([sys.executable, "-m", "bench.load", json.dumps(j)], cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for j in jobs]
    results = []
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                stop_process(q, 1)
            raise RuntimeError(f"load workers did not finish in {timeout:.0f}s") from None
        CHILDREN.forget(p)
        if p.returncode != 0:
            raise RuntimeError(f"load worker failed ({p.returncode}):\n{err[-2000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


class Prober:
    """A ``probe`` worker running in the background until :meth:`finish`."""

    def __init__(self, ports: dict[str, int], interval: float, timeout: float = 5.0,
                 max_seconds: float = 300.0) -> None:
        job = {"kind": "probe", "ports": ports, "interval": interval, "timeout": timeout,
               "max_seconds": max_seconds}
        self.proc = CHILDREN.popen([sys.executable, "-m", "bench.load", json.dumps(job)], cwd=str(ROOT),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE,
                                   text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().startswith('{"ready"'):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"probe worker did not start: {line!r} {err[-2000:]}")

    def finish(self, timeout: float = 30.0) -> dict[str, Any]:
        try:
            out, err = self.proc.communicate("stop\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, 1)
            raise RuntimeError("probe worker did not stop") from None
        CHILDREN.forget(self.proc)
        if self.proc.returncode != 0:
            raise RuntimeError(f"probe worker failed ({self.proc.returncode}):\n{err[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])
