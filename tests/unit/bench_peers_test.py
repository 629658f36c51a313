"""The benchmark's comparison with its peers (issue 16): what the report says about Tender against the
best of kubectl WS, kubectl SPDY and kftray, and the kftray configuration a kubectl target becomes."""

from __future__ import annotations

import pytest

from bench import report
from bench.procs import kftray_target
from bench.stats import summary, vs_best_peer


def _s(**medians: float | None) -> dict:
    return {tool: summary([] if m is None else [m]) for tool, m in medians.items()}


def test_the_best_peer_is_the_fastest_for_throughput_and_the_quickest_for_latency() -> None:
    meds = _s(tender=300.0, **{"kubectl-ws": 250.0, "kubectl-spdy": 400.0, "kftray": 350.0, "direct": 2000.0})
    up = vs_best_peer(meds, higher_is_better=True)
    assert (up["best"], up["best_median"], up["tender"]) == ("kubectl-spdy", 400.0, 0.75)
    down = vs_best_peer(meds, higher_is_better=False)
    assert (down["best"], down["tender"]) == ("kubectl-ws", 1.2)  # direct is the ceiling, never a peer


def test_a_peer_whose_every_sample_failed_is_not_the_best() -> None:
    meds = _s(tender=300.0, **{"kubectl-ws": 250.0, "kubectl-spdy": None, "kftray": None})
    assert vs_best_peer(meds, True)["best"] == "kubectl-ws"
    assert vs_best_peer(_s(tender=1.0), True) == {"best": None, "best_median": None, "tender": None}


def _results(**bulk: dict[str, float]) -> dict:
    return {"quick": True, "scenarios": {"bulk": {"summary": {
        key: _s(**{t.replace("_", "-"): v for t, v in per_tool.items()}) for key, per_tool in bulk.items()}}}}


def test_bulk_fails_when_tender_beats_kubectl_ws_but_not_kftray() -> None:
    res = _results(download_MBps={"tender": 500.0, "kubectl_ws": 400.0, "kubectl_spdy": 420.0, "kftray": 510.0})
    [row] = [r for r in report.evaluate(res) if r["metric"] == "download MB/s"]
    assert row["pass"] is False
    assert row["best_peer"] == "kftray"
    assert row["cells"]["kftray"] == "510.0"
    table = report.markdown(res, report.evaluate(res))
    assert "| kftray |" in table.splitlines()[[i for i, l in enumerate(table.splitlines()) if "| Scenario" in l][0]]
    assert "0.98× (kftray)" in table


def test_bulk_needs_1_15x_kubectl_ws_as_well_as_the_best_peer() -> None:
    ok = _results(upload_MBps={"tender": 470.0, "kubectl_ws": 400.0, "kubectl_spdy": 300.0, "kftray": 450.0})
    short = _results(upload_MBps={"tender": 450.0, "kubectl_ws": 400.0, "kubectl_spdy": 300.0, "kftray": 440.0})
    [a] = [r for r in report.evaluate(ok) if r["metric"] == "upload MB/s"]
    [b] = [r for r in report.evaluate(short) if r["metric"] == "upload MB/s"]
    assert (a["pass"], b["pass"]) == (True, False)  # 1.175x vs 1.125x kubectl WS


@pytest.mark.parametrize(("target", "kftray"), [("svc/web", "svc/web"), ("deploy/data", "label/app=data")])
def test_a_kubectl_target_becomes_the_kftray_workload_a_user_would_configure(target: str, kftray: str) -> None:
    assert kftray_target(target) == kftray


def test_a_target_kftray_cannot_forward_is_refused() -> None:
    with pytest.raises(ValueError, match="sts/db"):
        kftray_target("sts/db")
