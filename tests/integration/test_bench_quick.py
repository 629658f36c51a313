"""The benchmark suite runs: ``python -m bench --quick`` on the session's test clusters.

Checks that every scenario ran and produced numbers, not how fast anything
was (the full ``make bench`` judges that, on a quiet machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clusterlib import ROOT, Cluster

pytestmark = pytest.mark.cluster

SCENARIOS = ("bulk", "latency", "concurrency", "rolling_restart", "pod_deletion", "scale", "startup", "proxy")
TOOLS = ("tender", "kubectl-ws", "kubectl-spdy", "direct")
FORWARDERS = ("tender", "kubectl-ws", "kubectl-spdy")


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # not NaN


@pytest.mark.timeout(600)
def test_bench_quick_runs_every_scenario(two_clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    # kftray's engine is a Rust build of its own (make kftray-peer, minutes cold, not part of make test):
    # the bench's machinery is what this test runs; make bench measures kftray.
    env = dict(os.environ, TENDER_BENCH_CLUSTER_DIR=str(two_clusters[0].dir), TENDER_BENCH_KFTRAY="0")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, f"bench failed ({proc.returncode}):\n{proc.stderr[-6000:]}"
    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert results["errors"] == {}, results["errors"]
    assert set(SCENARIOS) <= set(results["scenarios"])
    sc = results["scenarios"]

    for key in ("download_MBps", "upload_MBps"):
        for tool in TOOLS:
            assert _number(sc["bulk"]["summary"][key][tool]["median"]), (key, tool)
    for key in ("p50_ms", "p99_ms"):
        for tool in TOOLS:
            assert _number(sc["latency"]["summary"][key][tool]["median"]), (key, tool)
            assert len(sc["latency"]["rounds"][0]["tools"][tool]["ms"]) > 0
    for tool in TOOLS:
        assert _number(sc["concurrency"]["summary"]["req_per_s"][tool]["median"]), tool
        assert _number(sc["concurrency"]["summary"]["errors"][tool]), tool
    for tool in FORWARDERS:
        assert sc["rolling_restart"]["summary"]["attempts_total"][tool] > 0, tool
        assert _number(sc["rolling_restart"]["summary"]["failed_total"][tool]), tool
        # kubectl may never recover ("never"); Tender's time must be a number.
        assert sc["pod_deletion"]["rounds"][0]["tools"][tool]["attempts_after_delete"] > 0, tool
    assert _number(sc["pod_deletion"]["summary"]["first_success_after_ready_s"]["tender"]["median"])

    tender = sc["scale"]["tender"]
    assert tender["active"] == sc["scale"]["forwards"]
    assert _number(tender["all_active_s"])
    idle = tender["idle"]
    for key in ("cpu_pct_of_one_core", "rss_mb", "threads", "sockets", "watches_total", "list_get_relevant_total"):
        assert _number(idle[key]), key
    for tool in ("kubectl-ws", "kubectl-spdy"):
        assert _number(sc["scale"]["kubectl"][tool]["rss_mb_total"]), tool
    for variant in ("tender-all", "tender-one", "kubectl-ws", "kubectl-spdy"):
        assert _number(sc["startup"]["summary"]["first_active_s"][variant]["median"]), variant

    for way in ("forward", "proxy-http", "proxy-socks5"):  # the cluster proxy against a direct forward
        assert _number(sc["proxy"]["summary"]["p50_ms"][way]["median"]), way
        assert _number(sc["proxy"]["summary"]["req_per_s"][way]["median"]), way
        assert sc["proxy"]["summary"]["errors"][way] == 0, sc["proxy"]["rounds"]

    # Every reported target has a verdict, and the table was written.
    assert all(t["pass"] is not None for t in results["targets"] if t["target"]), results["targets"]
    md = out.with_suffix(".md").read_text()
    assert "| Scenario | Metric | Tender |" in md
    assert "Kubernetes server v" in md
    assert "| 7 Cluster proxy" in md
