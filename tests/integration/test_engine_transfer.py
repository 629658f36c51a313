"""Bulk transfers through a forward: complete, and in bounded memory."""

from __future__ import annotations

import http.client
import logging
import threading
import time

import pytest

from tests.clusterlib import Cluster
from tests.integration.engine import pod_manifest, wait_status
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster

SIZE = 256 * 1024 * 1024
CHUNK = 1024 * 1024
RSS_BUDGET = 64 * 1024 * 1024


def rss() -> int:
    """This process's resident set (the engine runs in it), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class PeakRSS:
    """Samples RSS every 20 ms while in the with-block; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def test_256mib_download_and_upload(cluster: Cluster, namespace: str, manager: ForwardManager,
                                    caplog: pytest.LogCaptureFixture) -> None:
    # websockets logs every frame at DEBUG with the frame (and its payload) as
    # an argument; when pytest captures DEBUG logs (--log-level=DEBUG) it keeps
    # those records, i.e. every byte transferred, which is not the engine's memory.
    caplog.set_level(logging.INFO, logger="websockets")
    cluster.apply(pod_manifest("bulk"), namespace)
    cluster.wait_ready(namespace, "app=bulk")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "bulk"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    # Warm up: one small request of each kind, so lazily built things exist.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/bytes?n=1048576")
    assert len(conn.getresponse().read()) == 1048576
    conn.close()
    baseline = rss()

    # Download, read in a loop without keeping it.
    t0 = time.monotonic()
    with PeakRSS() as down:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", f"/bytes?n={SIZE}")
        resp = conn.getresponse()
        assert resp.status == 200
        got = 0
        while True:
            block = resp.read(CHUNK)
            if not block:
                break
            got += len(block)
        conn.close()
    down_s = time.monotonic() - t0
    assert got == SIZE

    # Upload a generated body, streamed in chunks; the server answers the length it read.
    block = bytes(range(256)) * (CHUNK // 256)

    def body():
        for _ in range(SIZE // CHUNK):
            yield block

    t0 = time.monotonic()
    with PeakRSS() as up:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/upload", body=body(), headers={"Content-Length": str(SIZE)})
        resp = conn.getresponse()
        answer = resp.read()
        conn.close()
    up_s = time.monotonic() - t0
    assert resp.status == 200, answer[:200]
    assert int(answer) == SIZE

    growth = {"download": down.peak - baseline, "upload": up.peak - baseline}
    assert max(growth.values()) < RSS_BUDGET, (
        f"RSS grew by {growth['download'] >> 20} MiB (download, {down_s:.1f}s) / "
        f"{growth['upload'] >> 20} MiB (upload, {up_s:.1f}s) over a {baseline >> 20} MiB baseline")
    assert manager.get(sid).status == "active"
