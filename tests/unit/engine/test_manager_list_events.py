"""List events while many forwards start at once: one at once, then at most one per LIST_EVERY.

Each list event holds every forward's snapshot; one per start made starting 1,000 profiles
O(n²) (23 s, 1.8 GB).  The cluster here is unreachable (127.0.0.1:1): the forwards go to
error on their own, which is all the list needs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target
from tray.engine.manager import LIST_EVERY, ForwardManager, ListEvent

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u, namespace: ns}}]
current-context: ctx
"""


def test_a_burst_of_starts_makes_a_few_lists_and_the_last_has_them_all(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    manager = ForwardManager(str(path))
    lists: list[tuple[float, int]] = []
    lock = threading.Lock()

    def on_event(event: object) -> None:
        if isinstance(event, ListEvent):
            with lock:
                lists.append((time.monotonic(), len(event.sessions)))

    manager.subscribe(on_event)
    try:
        t0 = time.monotonic()
        first = manager.start(ForwardSpec("ctx", "ns", Target("Deployment", "web"), 8080))
        deadline = time.monotonic() + 2
        while not lists and time.monotonic() < deadline:
            time.sleep(0.001)
        assert lists and lists[0][1] == 1, "a lone start is listed by itself, before the next start"
        ids = [first] + [manager.start(ForwardSpec("ctx", "ns", Target("Deployment", f"web{i}"), 8080))
                         for i in range(299)]
        took = time.monotonic() - t0
        time.sleep(2 * LIST_EVERY + 0.1)
        with lock:
            seen = list(lists)
        assert seen[-1][1] == 300, "the last list has every forward"
        assert len(seen) <= 2 + took / LIST_EVERY + 1, f"{len(seen)} lists for 300 starts in {took:.2f} s"
        assert [s.id for s in manager.list()] == ids
    finally:
        manager.shutdown()
