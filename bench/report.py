"""Targets, pass/fail, and the markdown report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import scale1000
from bench.stats import ratio, vs_best_peer

Row = dict[str, Any]


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _med(s: Any) -> float | None:
    return s.get("median") if isinstance(s, dict) else None


def fmt_summary(s: Any, digits: int = 1, unit: str = "") -> str:
    if not isinstance(s, dict) or s.get("median") is None:
        return "—"
    m, lo, hi = s["median"], s["min"], s["max"]
    if s.get("n", 1) <= 1 or lo == hi:
        return f"{m:.{digits}f}{unit}"
    return f"{m:.{digits}f}{unit} ({lo:.{digits}f}–{hi:.{digits}f})"


def _ratio_text(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


TOOLS = ("tender", "kubectl-ws", "kubectl-spdy", "kftray", "direct")
PEER_NAMES = {"kubectl-ws": "kubectl WS", "kubectl-spdy": "kubectl SPDY", "kftray": "kftray"}


def evaluate(results: dict[str, Any]) -> list[Row]:
    """One row per reported figure; rows with a target carry pass True/False (None: not measured).

    "ratio" is Tender's median over kubectl (WS)'s; "best" is Tender's median over the best
    peer's (kubectl WS, kubectl SPDY, kftray), with "best_peer" naming it: the data-plane
    figures' target (issue 16).
    """
    sc = results.get("scenarios", {})
    rows: list[Row] = []

    def row(scenario: str, metric: str, cells: dict[str, str], target: str, ok: bool | None,
            r: float | None = None, note: str = "", best: dict[str, Any] | None = None) -> None:
        rows.append({"scenario": scenario, "metric": metric, "cells": cells, "ratio": r, "target": target,
                     "pass": ok, "note": note, "best": (best or {}).get("tender"),
                     "best_peer": (best or {}).get("best")})

    tools = TOOLS

    # 1. bulk
    b = sc.get("bulk", {})
    for key, label in (("download_MBps", "download MB/s"), ("upload_MBps", "upload MB/s")):
        s = _get(b, "summary", key) or {}
        t, k = _med(s.get("tender")), _med(s.get("kubectl-ws"))
        r = ratio(t, k)
        best = vs_best_peer(s, True) if s else {}
        bt = best.get("tender")
        row("1 Bulk (256 MiB)" if not results.get("quick") else "1 Bulk (16 MiB)", label,
            {x: fmt_summary(s.get(x)) for x in tools}, "≥ 1.15× kubectl WS, ≥ 1.0× best peer",
            None if r is None or bt is None else (r >= 1.15 and bt >= 1.0), r, best=best)

    failed = _get(b, "summary", "failed")
    if failed:
        row("1 Bulk (256 MiB)" if not results.get("quick") else "1 Bulk (16 MiB)", "failed transfers (down / up)",
            {x: (f"{failed['download'].get(x, '—')} / {failed['upload'].get(x, '—')}"
                 if x in failed["download"] else "—") for x in tools}, "", None)

    # 2. latency
    lat = sc.get("latency", {})
    n_req = lat.get("requests_per_round", "")
    for key, label in (("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
        s = _get(lat, "summary", key) or {}
        t, k = _med(s.get("tender")), _med(s.get("kubectl-ws"))
        r = ratio(t, k)
        best = vs_best_peer(s, False) if s else {}
        bt = best.get("tender")
        row(f"2 Latency ({n_req} GETs, new conn.)", label, {x: fmt_summary(s.get(x), 2) for x in tools},
            "≤ 1.0× best peer", None if bt is None else bt <= 1.0, r, best=best)
    errs = _get(lat, "summary", "errors") or {}
    if errs:
        row(f"2 Latency ({n_req} GETs, new conn.)", "errors", {x: str(errs.get(x, "—")) for x in tools}, "", None)

    # 3. concurrency
    c = sc.get("concurrency", {})
    label3 = f"3 Concurrency ({c.get('clients', '?')}×{c.get('requests_per_client', '?')})"
    s = _get(c, "summary", "req_per_s") or {}
    t, k = _med(s.get("tender")), _med(s.get("kubectl-ws"))
    r = ratio(t, k)
    best = vs_best_peer(s, True) if s else {}
    bt = best.get("tender")
    row(label3, "requests/s", {x: fmt_summary(s.get(x), 0) for x in tools}, "≥ 1.0× best peer",
        None if bt is None else bt >= 1.0, r, best=best)
    errs = _get(c, "summary", "errors") or {}
    row(label3, "errors (all rounds)", {x: str(errs.get(x, "—")) for x in tools}, "0",
        None if "tender" not in errs else errs["tender"] == 0)

    # 4a. rolling restart
    ro = sc.get("rolling_restart", {})
    ft = _get(ro, "summary", "failed_total") or {}
    at = _get(ro, "summary", "attempts_total") or {}
    cells = {x: (f"{ft[x]} / {at[x]}" if x in ft else "—") for x in ("tender", "kubectl-ws", "kubectl-spdy", "kftray")}
    cells["direct"] = "n/a"
    nro = len(ro.get("rounds", []))
    row(f"4a Rolling restart ({nro} round{'s' if nro != 1 else ''}, 1 conn./20 ms)",
        "failed / attempted new connections", cells, "0 failed", None if "tender" not in ft else ft["tender"] == 0)

    # 4b. pod deletion
    pd = sc.get("pod_deletion", {})
    s = _get(pd, "summary", "first_success_after_ready_s") or {}
    rec = _get(pd, "summary", "recovered") or {}
    nr = _get(pd, "summary", "rounds") or 0
    cells = {}
    for x in ("tender", "kubectl-ws", "kubectl-spdy", "kftray"):
        if x not in rec:
            cells[x] = "—"
        elif rec[x] == 0:
            cells[x] = "never"
        else:
            cells[x] = fmt_summary(s.get(x), 3, " s") + ("" if rec[x] == nr else f" ({nr - rec[x]} never)")
    cells["direct"] = "n/a"
    tm = _med(s.get("tender"))
    ok = None if "tender" not in rec else (rec["tender"] == nr and tm is not None and tm <= 0.5)
    label4b = f"4b Pod deleted ({nr} round{'s' if nr != 1 else ''}, 1 conn./{1000 * pd.get('interval_s', 0):.0f} ms)"
    row(label4b, "first success after new pod Ready", cells, "≤ 0.5 s (median)", ok)
    sw = _get(pd, "summary", "tender_reported_new_pod_after_ready_s")
    if sw:
        row(label4b, "Tender's `active` event for the new pod, after Ready",
            {"tender": fmt_summary(sw, 3, " s"), "kubectl-ws": "n/a", "kubectl-spdy": "n/a", "kftray": "n/a",
             "direct": "n/a"}, "", None)

    # 5. scale
    scl = sc.get("scale", {})
    tn = scl.get("tender", {})
    idle = tn.get("idle", {})
    n = scl.get("forwards", "?")
    kub = scl.get("kubectl", {})

    def kcell(tool: str, key: str, per: str, digits: int = 1, unit: str = "") -> str:
        kr = kub.get(tool)
        if not kr:
            return "—"
        total, k = kr.get(key), kr.get("processes", 0)
        pf = _get(kr, "per_forward", per)
        if total is None or pf is None:
            return "—"
        return f"{total:.{digits}f}{unit} for {k} (≈{pf * (n if isinstance(n, int) else 0):.{digits}f}{unit} for {n})"

    label5 = f"5 Scale ({n} forwards, 2 clusters)"
    kf = scl.get("kftray")
    kfi = (kf or {}).get("idle", {})

    def kfcell(value: Any, fmt: str) -> str:
        if kf is None:
            return "—"
        return "—" if value is None else fmt.format(value)

    v = tn.get("all_active_s")
    kc = {t: (f"{kub[t]['all_forwarding_s']:.2f} s for {kub[t]['processes']}" if t in kub else "—")
          for t in ("kubectl-ws", "kubectl-spdy")}
    kft = kfcell(kf and kf.get("all_listening_s"), "{:.2f} s") + (
        f" ({kf['failed']} failed)" if kf and kf.get("failed") else "")
    row(label5, f"all {n} active", {"tender": "—" if v is None else f"{v:.2f} s", **kc, "kftray": kft,
                                   "direct": "n/a"},
        "≤ 10 s", None if v is None else (v <= 10.0 and tn.get("active") == n))
    v = idle.get("cpu_pct_of_one_core")
    row(label5, f"idle CPU, % of one core ({idle.get('seconds', 0):.0f} s)",
        {"tender": "—" if v is None else f"{v:.2f} %",
         "kubectl-ws": kcell("kubectl-ws", "cpu_pct_of_one_core_total", "cpu_pct", 2, " %"),
         "kubectl-spdy": kcell("kubectl-spdy", "cpu_pct_of_one_core_total", "cpu_pct", 2, " %"),
         "kftray": kfcell(kfi.get("cpu_pct_of_one_core"), "{:.2f} %"), "direct": "n/a"},
        "≤ 1 %", None if v is None else v <= 1.0)
    v = idle.get("rss_mb")
    row(label5, "RSS", {"tender": "—" if v is None else f"{v:.0f} MB",
                        "kubectl-ws": kcell("kubectl-ws", "rss_mb_total", "rss_mb", 0, " MB"),
                        "kubectl-spdy": kcell("kubectl-spdy", "rss_mb_total", "rss_mb", 0, " MB"),
                        "kftray": kfcell(kfi.get("rss_mb"), "{:.0f} MB"), "direct": "n/a"},
        "≤ 150 MB", None if v is None else v <= 150.0)
    v = idle.get("threads")
    row(label5, "threads", {"tender": "—" if v is None else str(v),
                            "kubectl-ws": kcell("kubectl-ws", "threads_total", "threads", 0),
                            "kubectl-spdy": kcell("kubectl-spdy", "threads_total", "threads", 0),
                            "kftray": kfcell(kfi.get("threads"), "{}"), "direct": "n/a"},
        "", None)
    v = idle.get("sockets")
    row(label5, "open sockets", {"tender": "—" if v is None else str(v),
                                 "kubectl-ws": kcell("kubectl-ws", "sockets_total", "sockets", 0),
                                 "kubectl-spdy": kcell("kubectl-spdy", "sockets_total", "sockets", 0),
                                 "kftray": kfcell(kfi.get("sockets"), "{}"), "direct": "n/a"}, "", None)
    v = idle.get("api_connections")
    row(label5, "TCP connections to the API servers (idle)",
        {"tender": "—" if v is None else str(sum(v.values())), "kubectl-ws": "—", "kubectl-spdy": "—",
         "kftray": kfcell(kfi.get("api_connections") and sum(kfi["api_connections"].values()), "{}"),
         "direct": "n/a"}, "", None)
    mw = idle.get("max_watches_per_key")
    row(label5, "watches (apiserver, namespace-scoped WATCH) / (cluster, ns, kind) keys",
        {"tender": "—" if mw is None else f"{idle.get('watches_total')} / {idle.get('watch_keys')}",
         "kubectl-ws": "0", "kubectl-spdy": "0",
         "kftray": "—" if not kfi else f"{kfi.get('watches_total')} / {kfi.get('watch_keys')}", "direct": "n/a"},
        "≤ 1 per key", None if mw is None else mw <= 1.0)
    v = idle.get("list_get_relevant_total")
    row(label5, "LIST+GET on pods/services/workloads during idle",
        {"tender": "—" if v is None else str(v),
         "kubectl-ws": _kubectl_list_get(kub.get("kubectl-ws")),
         "kubectl-spdy": _kubectl_list_get(kub.get("kubectl-spdy")),
         "kftray": kfcell(kfi.get("list_get_relevant_total"), "{}"), "direct": "n/a"},
        "0 (no polling)", None if v is None else v == 0)
    if kf is not None:
        row(label5, f"forwards answering /hostname after the idle window",
            {"tender": str(tn.get("answered", "—")), "kubectl-ws": "—", "kubectl-spdy": "—",
             "kftray": str(kf.get("answered", "—")), "direct": "n/a"}, "", None)

    # 6. start-up
    st = sc.get("startup", {})
    s = _get(st, "summary", "first_active_s") or {}
    cells = {"tender": fmt_summary(s.get("tender-all"), 3, " s"), "kubectl-ws": fmt_summary(s.get("kubectl-ws"), 3, " s"),
             "kubectl-spdy": fmt_summary(s.get("kubectl-spdy"), 3, " s"),
             "kftray": fmt_summary(s.get("kftray"), 3, " s") + (" (1 forward)" if s.get("kftray") else ""),
             "direct": "n/a"}
    tm = _med(s.get("tender-all"))
    # Which tender ran: .venv-user's (as a user installs it) or, with the reason, the dev venv's.
    venv = f", {Path(st['tender']).parent.parent.name}" if st.get("tender") else ""
    row(f"6 Start-up ({st.get('profiles', '?')} profiles, `run --all`{venv})", "spawn → first forward active", cells,
        "≤ 0.4 s", None if tm is None else tm <= 0.4, ratio(tm, _med(s.get("kubectl-ws"))),
        note=st.get("tender_note", ""))
    cells = {"tender": fmt_summary(s.get("tender-one"), 3, " s"), "kubectl-ws": "—", "kubectl-spdy": "—",
             "direct": "n/a"}
    row(f"6 Start-up ({st.get('profiles', '?')} profiles, `run NAME`{venv})", "spawn → the one forward active", cells,
        "", None, ratio(_med(s.get("tender-one")), _med(s.get("kubectl-ws"))))
    scale1000.rows(sc, row)
    return rows


def _best_text(r: Row) -> str:
    if r.get("best") is None:
        return "—"
    return f"{r['best']:.2f}× ({PEER_NAMES.get(r.get('best_peer') or '', r.get('best_peer'))})"


def _kubectl_list_get(kr: Any) -> str:
    if not kr:
        return "—"
    return str(sum(v.get("relevant_list_get", 0) for v in kr.get("requests", {}).values()))


def _proxy_table(results: dict[str, Any]) -> list[str]:
    """Scenario 7: the cluster proxy against a direct forward of the same Service (no target: a cost)."""
    px = results.get("scenarios", {}).get("proxy")
    if not px:
        return []
    s, ratios = px.get("summary", {}), px.get("ratio_vs_forward", {})
    out = ["", "| 7 Cluster proxy (svc, new conn. per request) | direct `tender forward` | HTTP proxy | SOCKS5 | "
               "HTTP ÷ forward | SOCKS5 ÷ forward |", "|---|---|---|---|---|---|"]
    for key, label, digits in (("p50_ms", "p50 ms (sequential)", 2), ("req_per_s", "requests/s (concurrent)", 0)):
        cells = [fmt_summary(_get(s, key, t), digits) for t in ("forward", "proxy-http", "proxy-socks5")]
        r = ratios.get(key, {})
        out.append(f"| {label} | {' | '.join(cells)} | {_ratio_text(r.get('proxy-http'))} | "
                   f"{_ratio_text(r.get('proxy-socks5'))} |")
    errs = s.get("errors", {})
    out.append(f"| errors (all rounds) | {errs.get('forward', '—')} | {errs.get('proxy-http', '—')} | "
               f"{errs.get('proxy-socks5', '—')} | | |")
    return out


def markdown(results: dict[str, Any], rows: list[Row]) -> str:
    m = results.get("meta", {})
    cfg = results.get("config", {})
    lines = [f"# Tender benchmark — {m.get('date', '?')}", ""]
    lines.append(f"- Mode: {'quick' if results.get('quick') else 'full'}; data-plane rounds: {cfg.get('rounds')} "
                 "(tools interleaved, order rotated each round); figures are median (min–max) over rounds.")
    lines.append(f"- Machine: {m.get('nproc')} × {m.get('cpu_model')} (nproc {m.get('nproc')}), "
                 f"{m.get('mem_gb', 0):.0f} GB RAM, Linux {m.get('kernel')}, Python {m.get('python')}.")
    lines.append(f"- Kubernetes server {m.get('server_version')} (tests/cluster test cluster, 2 clusters); "
                 f"kubectl {m.get('kubectl_version')}; Tender {m.get('tender_version')} (CLI, its own process).")
    lines.append(f"- Load: the {m.get('nproc')} cores are shared by both clusters' apiserver/etcd/kubelet/"
                 "controllers, kubectl, Tender and the load clients; "
                 f"load average {m.get('loadavg_start')} at start, {m.get('loadavg_end')} at end; machine CPU busy "
                 f"{m.get('machine_busy_pct', 0):.0f} % over the run; "
                 f"other test-cluster apiservers running on the machine (not ours): {m.get('foreign_apiservers')}.")
    dirty = m.get("tray_uncommitted") or []
    lines.append(f"- Source: git {m.get('git_head')}" + (f" plus uncommitted changes in {len(dirty)} tray/ file(s)"
                 if dirty else "") + f"; engine (tray/ but tray/ui/) content hash {m.get('tray_sha256')}.")
    lines.append(f"- Run time {m.get('duration_s', 0):.0f} s (cluster start included).")
    lines.append("")
    lines.append("| Scenario | Metric | Tender | kubectl (WS) | kubectl (SPDY) | kftray | direct | Tender ÷ kubectl WS "
                 "| Tender ÷ best peer | Target | Result |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        res = "" if r["pass"] is None else ("✅ pass" if r["pass"] else "❌ FAIL")
        if r["target"] and r["pass"] is None:
            res = "not measured"
        c = r["cells"]
        lines.append(f"| {r['scenario']} | {r['metric']} | {c.get('tender', '—')} | {c.get('kubectl-ws', '—')} | "
                     f"{c.get('kubectl-spdy', '—')} | {c.get('kftray', '—')} | {c.get('direct', '—')} | "
                     f"{_ratio_text(r['ratio'])} | {_best_text(r)} | {r['target']} | {res} |")
    lines += _proxy_table(results)
    passed = sum(1 for r in rows if r["pass"] is True)
    failed = [r for r in rows if r["pass"] is False]
    targets = sum(1 for r in rows if r["target"])
    lines.append("")
    lines.append(f"**{passed} of {targets} targets met.**" + (
        " Missed: " + "; ".join(f"{r['scenario']} — {r['metric']}" for r in failed) + "." if failed else ""))
    notes = results.get("notes", [])
    errors = results.get("errors", {})
    if errors:
        lines += ["", "Scenarios that failed to run:", ""]
        lines += [f"- {k}: {v.splitlines()[-1] if v else ''}" for k, v in errors.items()]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
