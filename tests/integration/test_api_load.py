"""The control API under load (issue 13): a `tender daemon` on the test cluster with 200 forwards.

* Three clients follow ``GET /v1/events`` while 200 forwards (to a Pod and
  its Service) start and stop through the API: each client sees every
  forward go active, sees ``stopped`` as its last status before it leaves
  the list, and ends with an empty list.  So does a fourth that reads
  nothing meanwhile (the engine keeps every status event for it).
* The engine at rest: 200 forwards running and one follower connected, the
  daemon uses under 3 % of a CPU over 10 s (``/proc/PID/stat``; the
  ``tray_idle`` benchmark measures about 0.2 %).
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clusterlib import Cluster
from tests.integration.daemon import Daemon
from tests.integration.engine import hostname, pod_manifest, service_manifest, wait_for

pytestmark = pytest.mark.cluster

FORWARDS = 200
CPU_BOUND = 3.0  # percent of one CPU


# ---------------------------------------------------------------- the daemon
@pytest.fixture
def web(cluster: Cluster, namespace: str) -> str:
    cluster.apply(pod_manifest("web"), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    cluster.wait_ready(namespace, "app=web")
    return "web"


# ---------------------------------------------------------------- followers
@dataclass
class Follower:
    """A client of ``GET /v1/events`` on a thread of its own: every event, in order."""

    daemon: Daemon
    events: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: While set, the follower reads nothing after its first event (a slow client: the engine's writes back up).
    hold: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._client = self.daemon.client(timeout=httpx.Timeout(10, read=60))
        self._response: httpx.Response | None = None
        self._closing = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/v1/events") as response:
                self._response = response
                assert response.status_code == 200, response.status_code
                for line in response.iter_lines():
                    if line.strip():
                        event = json.loads(line)
                        with self.lock:
                            self.events.append(event)
                        while self.hold.is_set() and not self._closing:
                            time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            if not self._closing:
                self.error = exc

    def snapshot(self) -> list[dict[str, Any]]:
        assert self.error is None, f"a follower failed: {self.error!r}"
        with self.lock:
            return list(self.events)

    def close(self) -> None:
        self._closing = True
        self._client.close()
        self.thread.join(10)


def statuses(events: list[dict[str, Any]]) -> dict[str, str]:
    """The last status each forward's ``status`` events gave."""
    return {e["session_id"]: e["status"] for e in events if e["event"] == "status"}


def final_states(events: list[dict[str, Any]]) -> tuple[dict[str, str], list[str] | None]:
    """({id: its last status before a ``list`` left it out}, the last list's ids)."""
    last: dict[str, str] = {}
    present: set[str] = set()
    gone: dict[str, str] = {}
    listed = None
    for e in events:
        if e["event"] == "status":
            last[e["session_id"]] = e["status"]
        elif e["event"] == "list":
            listed = [f["session_id"] for f in e["forwards"]]
            for i in present - set(listed):
                gone.setdefault(i, last.get(i, "(no status event)"))
            present = set(listed)
    return gone, listed


def start_many(d: Daemon, namespace: str, n: int) -> list[str]:
    """Start ``n`` forwards (pod/web and svc/web in turn, each from a free local port), 4 requests at a time.

    Returns their ids (not in start order: the requests overlap).
    """

    def start(i: int) -> str:
        target = "pod/web" if i % 2 == 0 else "svc/web"
        with d.client(60) as c:
            answer = c.post("/v1/forwards", json={"target": target, "ports": [":8080" if i % 2 == 0 else ":80"],
                                                  "namespace": namespace})
        assert answer.status_code == 201, answer.text
        return answer.json()["forwards"][0]["session_id"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(start, range(n)))


# ---------------------------------------------------------------- the tests
def test_three_followers_see_every_final_state(namespace: str, web: str, daemon: Daemon) -> None:
    followers = [Follower(daemon) for _ in range(3)]
    slow = Follower(daemon)  # and a fourth that reads nothing until the forwards are stopped (40 s at most:
    slow.hold.set()          # the engine disconnects a follower that has read nothing for 60 s)
    release = threading.Timer(40, slow.hold.clear)
    release.daemon = True
    release.start()
    try:
        for f in [*followers, slow]:
            wait_for(lambda f=f: f.snapshot(), 20, "the first event (a list)")
            assert f.snapshot()[0] == {"event": "list", "forwards": []}

        t0 = time.monotonic()
        ids = start_many(daemon, namespace, FORWARDS)
        assert len(set(ids)) == FORWARDS

        def all_active(f: Follower) -> bool:
            now = statuses(f.snapshot())
            bad = {i: s for i, s in now.items() if s == "error"}
            assert not bad, f"forwards in error: {list(bad.items())[:3]}"
            return sum(now.get(i) == "active" for i in ids) == FORWARDS

        for f in followers:
            wait_for(lambda f=f: all_active(f), 120, f"every follower to see the {FORWARDS} forwards active",
                     interval=0.2)
        with daemon.client(60) as c:
            forwards = c.get("/v1/forwards").json()["forwards"]
        assert sorted(f["session_id"] for f in forwards) == sorted(ids)
        assert hostname(forwards[0]["local_port"]) == web and hostname(forwards[-1]["local_port"]) == web

        # Stop them: by ids in batches of 25, then the rest with "all".
        with daemon.client(60) as c:
            for batch in range(0, 150, 25):
                chosen = ids[batch:batch + 25]
                answer = c.post("/v1/forwards/stop", json={"ids": chosen})
                assert answer.status_code == 200 and sorted(answer.json()["stopped"]) == sorted(chosen), answer.text
            answer = c.post("/v1/forwards/stop", json={"all": True})
            assert answer.status_code == 200 and sorted(answer.json()["stopped"]) == sorted(ids[150:]), answer.text
            assert c.get("/v1/forwards").json() == {"forwards": []}
        slow.hold.clear()

        def settled(f: Follower) -> bool:
            gone, listed = final_states(f.snapshot())
            return listed == [] and set(ids) <= set(gone)

        for f in [*followers, slow]:
            wait_for(lambda f=f: settled(f), 60, "every follower to see every forward leave and an empty list",
                     interval=0.2)
            gone, listed = final_states(f.snapshot())
            wrong = {i: gone[i] for i in ids if gone[i] != "stopped"}
            assert not wrong, f"{len(wrong)} forwards left the list without 'stopped' last: {list(wrong.items())[:5]}"
        assert time.monotonic() - t0 < 240
        assert daemon.proc.poll() is None
    finally:
        release.cancel()
        for f in [*followers, slow]:
            f.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far, in seconds (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14 and 15


def test_idle_cpu_with_200_forwards(namespace: str, web: str, daemon: Daemon) -> None:
    ids = start_many(daemon, namespace, FORWARDS)
    with daemon.client(60) as c:
        def all_active() -> bool:
            forwards = c.get("/v1/forwards").json()["forwards"]
            assert not [f for f in forwards if f["status"] == "error"], forwards
            return sum(f["status"] == "active" for f in forwards) == FORWARDS

        wait_for(all_active, 120, f"the {FORWARDS} forwards to be active", interval=0.5)
    follower = Follower(daemon)
    try:
        wait_for(lambda: follower.snapshot(), 20, "the follower's first event")
        time.sleep(3)  # the starts' last events and the first stats pass
        pid = daemon.proc.pid
        before, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(10)
        used, elapsed = cpu_seconds(pid) - before, time.monotonic() - t0
        percent = 100 * used / elapsed
        print(f"tender daemon at rest with {FORWARDS} forwards and one follower: {percent:.2f} % CPU "
              f"({used:.2f} s in {elapsed:.1f} s)")
        assert percent < CPU_BOUND, f"the idle engine used {percent:.1f} % of a CPU (bound {CPU_BOUND} %)"
        listed = [e for e in follower.snapshot() if e["event"] == "list"]
        assert sorted(f["session_id"] for f in listed[0]["forwards"]) == sorted(ids)
    finally:
        follower.close()
