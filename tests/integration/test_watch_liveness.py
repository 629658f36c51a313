"""The pod watch can be dead while the forward says active (issue: half-open connections
after sleep, a Wi-Fi change or a VPN).

A TCP proxy of the test's own stands between Tender and the API server and freezes every
flow (sockets stay open, bytes vanish).  While frozen, the pod in use is replaced.  Tender
must find out that the API server is not answering (status `reconnecting`, not a stale
`active`), and within 5 s of the thaw new connections must reach the live pod with a true
status.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import hostname, wait_for, wait_hostname, wait_status
from tests.integration.freezeproxy import FreezeProxy
from tests.integration.kubeconfigs import server_address, single_context
from tray.kube import health
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster


@dataclass
class Proxied:
    """A Deployment `web` (1 replica), an engine that reaches the API server through a
    FreezeProxy, and the pod serving at the start."""

    proxy: FreezeProxy
    manager: ForwardManager
    old: str


@pytest.fixture
def proxied(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Proxied]:
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    old = cluster.wait_ready(namespace, "app=web")[0]
    proxy = FreezeProxy(server_address(cluster))
    kubeconfig = single_context(cluster, tmp_path / "proxied.yaml", server=f"https://127.0.0.1:{proxy.port}")
    m = ForwardManager(kubeconfig)
    try:
        yield Proxied(proxy, m, old)
    finally:
        m.shutdown()
        proxy.close()


def test_frozen_flows_then_thaw_reach_the_live_pod(cluster: Cluster, namespace: str, proxied: Proxied) -> None:
    proxy, m, old = proxied.proxy, proxied.manager, proxied.old
    sid = m.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    port = wait_status(m, sid, "active").local_port
    assert hostname(port) == old
    with proxy.freeze():
        t_freeze = time.monotonic()
        cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
        new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 60,
                       "the replacement pod")[0]
        # Silence for IDLE s, then no answer within TIMEOUT s: not answering.
        bound = health.IDLE + health.TIMEOUT + 5
        info = wait_status(m, sid, "reconnecting", timeout=bound, allow_error=True)
        assert "not answering" in info.status_reason, info
        took = time.monotonic() - t_freeze
        # It never claimed the deleted pod as a fresh connection target.
        time.sleep(2)
        info = m.get(sid)
        assert info.status in ("reconnecting", "error") and "not answering" in info.status_reason, info
    t_thaw = time.monotonic()
    wait_hostname(port, new, timeout=5)
    info = wait_for(lambda: (lambda i: i if i.status == "active" and i.pod_name == new else None)(m.get(sid)),
                    max(0.5, 5 - (time.monotonic() - t_thaw)), "active on the new pod")
    settled = time.monotonic() - t_thaw
    print(f"not answering noticed {took:.1f}s after the freeze; settled {settled:.1f}s after the thaw")
    assert settled <= 5.0
    for _ in range(5):
        assert hostname(port) == new


def test_a_dial_that_finds_the_pod_gone_lists_again(cluster: Cluster, namespace: str, proxied: Proxied) -> None:
    """The watch's flow is frozen (so it never hears of the deletion) but new flows work:
    the next connection's dial is told `pods "X" not found`; Tender lists the pods again at
    once instead of trusting the dead watch, and the following connection reaches the new
    pod — long before the watch's own timeout (90 s) or the liveness check (20 s)."""
    proxy, m, old = proxied.proxy, proxied.manager, proxied.old
    sid = m.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    info = wait_status(m, sid, "active")
    assert info.pod_name == old
    frozen = proxy.freeze_existing()  # the API connection (watches, requests); no tunnel yet
    assert frozen >= 1
    cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
    new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 60,
                   "the replacement pod")[0]
    assert m.get(sid).pod_name == old  # the frozen watch did not tell
    t0 = time.monotonic()
    wait_hostname(info.local_port, new, timeout=10)
    took = time.monotonic() - t0
    print(f"the new pod answered {took:.1f}s after the first connection")
    assert took < health.IDLE, took
    info = wait_status(m, sid, "active")
    assert info.pod_name == new, info


def test_a_silent_dead_watch_is_replaced_within_its_deadline(cluster: Cluster, namespace: str, proxied: Proxied,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the watch's flow dies (new flows work, so the API server answers pings) and
    nobody connects: the watch, which the server should have ended after WATCH_SECONDS,
    is still silent WATCH_GRACE s later, so the cache lists again and the forward follows
    the pod that was replaced meanwhile.  (Shortened here to 6 + 4 s; 30 + 10 s by default.)"""
    from tray.kube import watches

    monkeypatch.setattr(watches, "WATCH_SECONDS", 6.0)
    monkeypatch.setattr(watches, "WATCH_GRACE", 4.0)
    proxy, m, old = proxied.proxy, proxied.manager, proxied.old
    sid = m.start(ForwardSpec(cluster.context, namespace, Target("Deployment", "web"), 8080, local_port=0))
    assert wait_status(m, sid, "active").pod_name == old
    t0 = time.monotonic()
    proxy.freeze_existing()
    cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
    new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 60,
                   "the replacement pod")[0]
    info = wait_for(lambda: (lambda i: i if i.pod_name == new and i.status == "active" else None)(m.get(sid)),
                    6 + 4 + 10, "the forward to follow the new pod without any connection")
    print(f"followed the new pod {time.monotonic() - t0:.1f}s after the watch's flow froze")
    assert hostname(info.local_port) == new
