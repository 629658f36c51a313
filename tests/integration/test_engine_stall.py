"""One connection that the pod never reads must not stall the others (issue 10, item 5).

A few clients POST several MB each to netexec's ``/delay?ms=N`` (the test
cluster's stand-in answers after N ms and reads none of the body meanwhile)
while another client makes GETs in a loop, each on a new connection, all
through one forward.  Inside the kubelet the POSTs' bytes wait for a pod that
does not read, and the kubelet's SPDY session (moby/spdystream) stops
handling what queues behind them, for good; before Tender contained it, GETs
through the same tunnel timed out (13-18 a run) and the tunnel was declared
dead ("no answer to a ping"), so the forward went ``reconnecting``.

What a user must see: every GET answers within a second of its normal time,
the forward never leaves ``active``, and nothing is reconnected.
"""

from __future__ import annotations

import logging
import socket
import statistics
import threading
import time

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import EventLog, http_request, pod_manifest, wait_status
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster

RUN_SECONDS = 20.0
POSTERS = 3
POST_BYTES = 4 << 20  # "a few MB" each
DELAY_MS = 3000  # the pod answers after this, having read none of the body
GET_TIMEOUT = 10.0


def _poster(port: int, stop: threading.Event, posts: list[int]) -> None:
    """POST POST_BYTES to /delay in a loop; the outcome does not matter, only what it does to the others."""
    head = (f"POST /delay?ms={DELAY_MS} HTTP/1.1\r\nHost: x\r\nContent-Length: {POST_BYTES}\r\n"
            "Connection: close\r\n\r\n").encode()
    body = b"y" * POST_BYTES
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(head)
                view = memoryview(body)
                while view and not stop.is_set():
                    try:
                        view = view[s.send(view[:256 * 1024]):]
                    except TimeoutError:
                        continue  # the pod is not reading: keep trying until it answers or we stop
                s.settimeout(DELAY_MS / 1000 + 5)
                while s.recv(65536):
                    pass
        except OSError:
            pass  # the pod answered and closed while we were still sending: the POST is over
        posts[0] += 1


def _get_loop(port: int, stop: threading.Event, times: list[float], failures: list[str]) -> None:
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            status, body = http_request(port, "/hostname", timeout=GET_TIMEOUT)
            assert status == 200, (status, body[:100])
        except (OSError, AssertionError) as exc:
            failures.append(f"{type(exc).__name__}: {exc} after {time.monotonic() - t0:.1f} s")
            continue
        times.append(time.monotonic() - t0)


def _baseline(port: int) -> float:
    """The normal time of a GET through the forward (median of 30)."""
    times = []
    for _ in range(30):
        t0 = time.monotonic()
        status, _ = http_request(port, "/hostname", timeout=GET_TIMEOUT)
        assert status == 200
        times.append(time.monotonic() - t0)
    return statistics.median(times)


@pytest.mark.parametrize("kind", ["Pod", "Deployment"])
def test_a_pod_that_never_reads_stalls_no_other_connection(
        kind: str, cluster: Cluster, namespace: str, manager: ForwardManager, events: EventLog,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tray")
    if kind == "Pod":
        cluster.apply(pod_manifest("web"), namespace)
    else:
        cluster.apply(deployment_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target(kind, "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    normal = _baseline(port)
    mark = events.mark()

    stop = threading.Event()
    times: list[float] = []
    failures: list[str] = []
    posts = [0]
    statuses: set[str] = set()
    threads = [threading.Thread(target=_poster, args=(port, stop, posts), daemon=True) for _ in range(POSTERS)]
    threads.append(threading.Thread(target=_get_loop, args=(port, stop, times, failures), daemon=True))
    for t in threads:
        t.start()
    deadline = time.monotonic() + RUN_SECONDS
    while time.monotonic() < deadline:
        statuses.add(manager.get(sid).status)
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(GET_TIMEOUT + DELAY_MS / 1000 + 10)
    statuses.add(manager.get(sid).status)

    slow = [t for t in times if t > normal + 1.0]
    moved = sum("new connections use a fresh tunnel" in r.getMessage() for r in caplog.records)
    print(f"\n{kind}: {len(times)} GETs, {len(failures)} failed, {len(slow)} more than 1 s over the normal "
          f"{normal * 1000:.1f} ms; slowest {max(times, default=0) * 1000:.0f} ms, median "
          f"{statistics.median(times) * 1000 if times else 0:.1f} ms; {posts[0]} POSTs; statuses {sorted(statuses)}; "
          f"tunnels left for a stuck one: {moved}")
    assert posts[0] >= POSTERS, "the POSTs did not run"
    assert len(times) >= 100, f"only {len(times)} GETs answered in {RUN_SECONDS:.0f} s"
    assert not failures, f"{len(failures)} GETs failed: {failures[:5]}"
    assert not slow, f"{len(slow)} GETs took more than 1 s over the normal {normal * 1000:.1f} ms: " \
                     f"{[round(t, 2) for t in slow[:10]]}"
    assert statuses == {"active"}, statuses
    left = [e for e in events.since(mark, sid) if e.status != "active"]
    assert not left, left
    reconnects = [r.getMessage() for r in caplog.records
                  if "no answer to a ping" in r.getMessage() or "did not answer" in r.getMessage()]
    assert not reconnects, reconnects
