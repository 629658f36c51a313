"""Load and leaks: many connections through one forward, many forwards started and stopped.

Nothing may be left behind: after the load, the Tender process's file
descriptors and threads are back to their baseline and its memory has not
grown; after 500 forwards, no listener, task, watch, thread or fd remains.

The figures (connections per second, fds/threads/RSS before and after) are
printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clusterlib import ROOT, Cluster, deployment_manifest
from tests.integration.engine import hostname, pod_manifest, service_manifest, wait_for, wait_status
from tray.engine.manager import ForwardManager
from tray.engine.pool import WARM_FOR
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster

CONNECTIONS = 10_000
PARALLEL = 64
WARM_UP = 500  # half sequential, half 64 in parallel: the two patterns measured after


@dataclass(frozen=True)
class ProcStats:
    fds: int
    threads: int
    rss_kb: int

    def __str__(self) -> str:
        return f"{self.fds} fds, {self.threads} threads, {self.rss_kb / 1024:.1f} MiB RSS"


def proc_stats(pid: int | str = "self") -> ProcStats:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return ProcStats(fds=len(os.listdir(f"/proc/{pid}/fd")), threads=int(status["Threads"]),
                     rss_kb=int(status["VmRSS"].split()[0]))


def describe_fds(pid: int | str = "self") -> str:
    """A process's fds, TCP sockets shown as local -> remote port and state (0A: LISTEN)."""
    tcp = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            tcp[f"socket:[{f[9]}]"] = (f"tcp :{int(f[1].rsplit(':', 1)[1], 16)} -> "
                                       f":{int(f[2].rsplit(':', 1)[1], 16)} state {f[3]}")
    out = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        out.append(f"fd {fd}: {tcp.get(target, target)}")
    return "\n".join(out)


REQUEST = b"GET /hostname HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n"


def get_hostname(port: int) -> bytes:
    """One GET /hostname on a new connection, read to EOF; raises on anything but 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(REQUEST)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"bad answer: {data[:100]!r}")
    return body


def run_sequential(port: int, n: int, expect: bytes) -> tuple[float, list[str]]:
    errors: list[str] = []
    t0 = time.monotonic()
    for _ in range(n):
        try:
            if get_hostname(port) != expect:
                errors.append("wrong pod")
        except Exception as exc:  # every failure counts
            errors.append(f"{type(exc).__name__}: {exc}")
    return time.monotonic() - t0, errors


def run_parallel(port: int, n: int, workers: int, expect: bytes) -> tuple[float, list[str]]:
    errors: list[str] = []
    lock = threading.Lock()
    left = [n]

    def worker() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                if get_hostname(port) != expect:
                    raise AssertionError("wrong pod")
            except Exception as exc:
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(worker) for _ in range(workers)]:
            f.result()
    return time.monotonic() - t0, errors


class Tender:
    """``python -m tray forward … -o json``: its events, and its pid for /proc."""

    def __init__(self, c: Cluster, namespace: str, target: str, ports: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tray", "forward", "--kubeconfig", c.kubeconfig, "--context", c.context,
             "-n", namespace, target, ports, "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.events: list[dict] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def statuses(self) -> list[str]:
        return [e["status"] for e in self.events if e["event"] == "status"]

    def wait_active(self, timeout: float = 30) -> dict:
        wait_for(lambda: "active" in self.statuses(), timeout, f"tender to forward: {''.join(self.stderr)}")
        return [e for e in self.events if e.get("status") == "active"][-1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("tender did not exit within 20 s of SIGTERM") from None
        return self.proc.returncode


def test_10000_connections_leave_nothing_behind(cluster: Cluster, namespace: str) -> None:
    """10,000 connections one after the other (GET /hostname, Connection: close), then 10,000
    more from 64 clients in parallel, through one `tender forward` process: 0 errors, the
    forward stays active throughout; afterwards (once the spare streams have expired) its fds
    and threads are back to the baseline taken after a warm-up, and its RSS within 10 % of it."""
    cluster.apply(deployment_manifest("web"), namespace)
    pod = cluster.wait_ready(namespace, "app=web")[0].encode()
    tender = Tender(cluster, namespace, "deploy/web", ":8080")
    try:
        port = tender.wait_active()["local_port"]
        pid = tender.proc.pid
        print(f"\nstart: {proc_stats(pid)}")
        _, errs = run_sequential(port, WARM_UP // 2, pod)
        _, errs2 = run_parallel(port, WARM_UP // 2, PARALLEL, pod)
        assert errs + errs2 == [], (errs + errs2)[:5]
        time.sleep(WARM_FOR + 2)  # the spares close 10 s after the last connection
        baseline = proc_stats(pid)
        print(f"baseline after a warm-up of {WARM_UP}: {baseline}")

        seq_time, seq_errors = run_sequential(port, CONNECTIONS, pod)
        print(f"sequential: {CONNECTIONS} in {seq_time:.1f}s = {CONNECTIONS / seq_time:.0f}/s, "
              f"{len(seq_errors)} errors; {proc_stats(pid)}")
        par_time, par_errors = run_parallel(port, CONNECTIONS, PARALLEL, pod)
        peak = proc_stats(pid)
        print(f"{PARALLEL} in parallel: {CONNECTIONS} in {par_time:.1f}s = {CONNECTIONS / par_time:.0f}/s, "
              f"{len(par_errors)} errors; {peak}")

        t_idle = time.monotonic()
        try:
            wait_for(lambda: (s := proc_stats(pid)).fds <= baseline.fds and s.threads <= baseline.threads,
                     WARM_FOR + 20, "fds and threads back to the baseline", interval=0.5)
        except AssertionError:
            raise AssertionError(f"{baseline} before, {proc_stats(pid)} now:\n{describe_fds(pid)}") from None
        after = proc_stats(pid)
        print(f"after ({time.monotonic() - t_idle:.1f}s idle): {after}; "
              f"RSS {100 * (after.rss_kb / baseline.rss_kb - 1):+.1f}% vs baseline")
        assert seq_errors == [], f"{len(seq_errors)} sequential requests failed: {seq_errors[:5]}"
        assert par_errors == [], f"{len(par_errors)} parallel requests failed: {par_errors[:5]}"
        assert (after.fds, after.threads) == (baseline.fds, baseline.threads), \
            f"{baseline} before, {after} after:\n{describe_fds(pid)}"
        assert after.rss_kb <= baseline.rss_kb * 1.10, f"RSS grew: {baseline} -> {after}"
        assert tender.statuses() == ["active"], tender.statuses()
        assert hostname(port) == pod.decode()
    finally:
        rc = tender.stop()
    assert rc == 0, "".join(tender.stderr)[-2000:]


async def _tasks() -> list[str]:
    me = asyncio.current_task()
    return sorted(f"{t.get_name()} {t.get_coro()!r}"[:120] for t in asyncio.all_tasks() if t is not me)


def _our_listening_ports() -> set[int]:
    """Ports this process (the engine runs in it) listens on, from /proc.

    Asking whether a port can be bound again was not enough: on a busy machine
    another program's outgoing connection may take the freed port number as
    its ephemeral port, which says nothing about Tender.
    """
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            ours.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in ours:  # LISTEN, and our socket
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_500_forwards_started_and_stopped_leave_nothing_behind(cluster: Cluster, namespace: str) -> None:
    """500 forwards (Deployment, Pod, Service in turn) started and stopped in one engine: some
    stopped while still starting, some after a request through them, up to 8 alive at once.
    Afterwards every local port they used can be bound again, and no asyncio task, watch,
    thread or fd is left beyond the baseline taken after one forward had come and gone."""
    cluster.apply(deployment_manifest("web"), namespace)
    cluster.apply(pod_manifest("solo"), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    cluster.wait_ready(namespace, "app=web")
    cluster.wait_ready(namespace, "app=solo")
    targets = [("Deployment", "web", 8080), ("Pod", "solo", 8080), ("Service", "web", 80)]
    gc.collect()  # what earlier tests left for the GC is not ours
    before = proc_stats()
    manager = ForwardManager(cluster.kubeconfig)
    try:
        # Warm up: the API client, the credential-loading thread, one watch come and gone.
        sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
        hostname(wait_status(manager, sid, "active").local_port)
        manager.stop(sid)
        wait_for(lambda: not manager.watch_keys() and not manager.run(_tasks()), 10, "the warm-up to end")
        gc.collect()
        baseline = proc_stats()
        print(f"\nbaseline: {baseline}")

        ports: set[int] = set()
        live: list[str] = []
        stopped_starting = 0
        t0 = time.monotonic()
        for i in range(500):
            kind, name, remote = targets[i % 3]
            sid = manager.start(ForwardSpec(cluster.context, namespace, Target(kind, name), remote, local_port=0))
            if i % 4 == 0:  # stop it at once: mid-start
                stopped_starting += manager.get(sid).status == "starting"
                manager.stop(sid)
                continue
            info = wait_status(manager, sid, "active")
            ports.add(info.local_port)
            if i % 4 == 1:
                assert hostname(info.local_port) == info.pod_name
            live.append(sid)
            if len(live) > 8:
                manager.stop(live.pop(0))
        peak_tasks = len(manager.run(_tasks()))
        for sid in live:
            manager.stop(sid)
        took = time.monotonic() - t0
        assert manager.list() == []
        wait_for(lambda: manager.watch_keys() == [], 10, f"the watches to close: {manager.watch_keys()}")
        left: list[str] = []

        def no_tasks() -> bool:
            left[:] = manager.run(_tasks())
            return not left

        try:
            wait_for(no_tasks, 10, "the engine's tasks to end", interval=0.2)
        except AssertionError:
            raise AssertionError(f"{len(left)} tasks left: {left[:10]}") from None
        busy = sorted(ports & _our_listening_ports())
        assert busy == [], f"still listening after stop: {busy}"
        try:
            wait_for(lambda: (s := proc_stats()).fds <= baseline.fds and s.threads <= baseline.threads, 10,
                     "fds and threads back to the baseline")
        except AssertionError:
            raise AssertionError(f"{baseline} before, {proc_stats()} now:\n{describe_fds()}") from None
        after = proc_stats()
        print(f"500 forwards in {took:.1f}s ({stopped_starting} stopped while starting, {len(ports)} ports, "
              f"{peak_tasks} tasks at the end of the loop); after: {after}")
        assert after.fds <= baseline.fds and after.threads <= baseline.threads, (after, baseline)
    finally:
        manager.shutdown()
    # And the engine itself, shut down, leaves no thread or fd either.
    try:
        wait_for(lambda: (s := proc_stats()).fds <= before.fds and s.threads <= before.threads, 10,
                 "the engine's fds and threads to go")
    except AssertionError:
        raise AssertionError(f"{before} before the engine, {proc_stats()} after its shutdown:\n"
                             f"{describe_fds()}") from None
    print(f"before the engine: {before}; after its shutdown: {proc_stats()}")
