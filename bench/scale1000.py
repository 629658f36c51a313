"""Scenario ``scale1000``: a thousand forwards from one profiles file, connected on demand (issue 16).

``tender run --profiles FILE --all`` with 1,000 (``--quick``: 200) profiles spread over both
clusters, two namespaces each, ``svc/`` and ``deploy/`` targets (the same file shape as scenario 5,
:func:`bench.scenarios.write_profiles`).  Tender dials a forward's pod only at its first local
connection and lets a tunnel without connections go after ``TENDER_TUNNEL_IDLE`` seconds
(:mod:`tray.engine.dialer`); the scenario sets that to :data:`IDLE_CLOSE_S` so the tunnels' end
falls inside the run.  Measured, in order:

1. spawn to the last forward ``active`` (listening, its pod resolved), from ``-o json`` events;
2. an idle window (60 s / 10 s) after 3 s of settling: Tender's CPU (% of one core), RSS, threads,
   sockets; port-forward tunnels open (the API servers' ``apiserver_longrunning_requests`` for the
   ``portforward`` subresource, against their value before Tender started, and Tender's TCP
   connections to each API server); namespace-scoped WATCH gauges per (cluster, resource) against
   the (cluster, namespace, kind) keys the profiles need; LIST/GET deltas (no polling);
3. cold against warm: for ``cold_sample`` forwards spread over the file, the first ``GET /hostname``
   (new connection; the forward has no tunnel: it dials now) and then :data:`WARM_REQUESTS` more
   (new connections over the tunnel the first one opened); per forward the first and the median of
   the rest; p50 over forwards of each and their difference;
4. tunnels right after that (one per sampled forward), and again :data:`IDLE_CLOSE_S` + 3 s later
   (0: every tunnel went when idle).

Targets (issue 16): all active ≤ 3 s, 0 tunnels at idle, cold p50 ≤ warm p50 + 100 ms, idle CPU
≤ 1 % of a core, RSS ≤ 150 MB, ≤ 1 watch per (cluster, namespace, kind), 0 LIST/GET while idle.
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from bench import kube
from bench.procs import TenderProcess, proc_stats, tcp_peers

__all__ = ["run", "rows", "IDLE_CLOSE_S", "WARM_REQUESTS"]

#: The forwards of the full run and of ``--quick``.
FORWARDS_FULL, FORWARDS_QUICK = 1000, 200
#: Forwards sampled for cold/warm, full and quick.
COLD_SAMPLE_FULL, COLD_SAMPLE_QUICK = 50, 20
#: ``TENDER_TUNNEL_IDLE`` for the run: seconds a tunnel without connections stays open.
IDLE_CLOSE_S = 5.0
#: Requests over the warm tunnel after the cold one, per sampled forward.
WARM_REQUESTS = 3

Log = Callable[[str], None]


def _timed_get(port: int, timeout: float = 5.0) -> tuple[float | None, str]:
    """``GET /hostname`` on a new connection: (seconds from connect() to the last byte, body); None on failure."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(b"GET /hostname HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError as exc:
        return None, str(exc)
    t = time.monotonic() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None, head[:80].decode(errors="replace")
    return t, body.decode(errors="replace").strip()


def _tunnels(snap: dict[str, Any]) -> int:
    """Open port-forward requests (any verb) in one API server's long-running gauge."""
    return sum(v for k, v in kube.longrunning(snap).items() if k.split("/")[3] == "portforward")


def _io(pid: int) -> dict[str, int]:
    """/proc/PID/io: syscr, syscw (read and write system calls), rchar, wchar; {} if unreadable."""
    try:
        lines = Path(f"/proc/{pid}/io").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v) for k, _, v in (line.partition(": ") for line in lines) if k in ("syscr", "syscw", "rchar", "wchar")}


def _snap(apis: dict[str, kube.Api]) -> dict[str, Any]:
    return {ctx: kube.scrape(api) for ctx, api in apis.items()}


def _tunnel_count(base: dict[str, Any], apis: dict[str, kube.Api], pid: int,
                  api_ports: dict[str, int]) -> dict[str, Any]:
    now = _snap(apis)
    peers = tcp_peers(pid)
    per = {ctx: _tunnels(now[ctx]) - _tunnels(base[ctx]) for ctx in apis}
    return {"tunnels": sum(per.values()), "per_cluster": per,
            "api_connections": {ctx: peers.get(p, 0) for ctx, p in api_ports.items()}, "snap": now}


def run(cfg: Any, clusters: list[Any], w: Any, workdir: Path, log: Log) -> dict[str, Any]:
    """The scenario (see the module docstring); ``cfg`` is :class:`bench.scenarios.Config`.

    Returns the raw figures and a ``summary`` (JSON-able).  Blocks for the run: about 2 minutes
    in full mode, 40 s in quick mode.  Raises when Tender exits or the forwards do not all start
    within 180 s.
    """
    from bench.scenarios import _split_requests, expected_watches, free_ports, write_profiles

    n = FORWARDS_QUICK if cfg.quick else FORWARDS_FULL
    sample = COLD_SAMPLE_QUICK if cfg.quick else COLD_SAMPLE_FULL
    apis = {c.context: kube.Api(c) for c in clusters}
    api_ports = {ctx: api.port for ctx, api in apis.items()}
    ports = free_ports(n)
    path = workdir / f"profiles-scale1000-{n}.yaml"
    profiles = write_profiles(path, n, w, ports)
    out: dict[str, Any] = {"forwards": n, "profiles_file": str(path), "idle_s": cfg.idle_seconds,
                           "tunnel_idle_s": IDLE_CLOSE_S, "cold_sample": sample}
    base = _snap(apis)
    saved = os.environ.get("TENDER_TUNNEL_IDLE")
    os.environ["TENDER_TUNNEL_IDLE"] = f"{IDLE_CLOSE_S:g}"
    try:
        tp = TenderProcess(["run", "--kubeconfig", clusters[0].kubeconfig, "--profiles", str(path), "--all"],
                           name="tender-scale1000").spawn()
    finally:
        if saved is None:
            os.environ.pop("TENDER_TUNNEL_IDLE", None)
        else:
            os.environ["TENDER_TUNNEL_IDLE"] = saved
    try:
        tp.wait_for(lambda s: s.active_count() + len(s.errors()) >= n, 180, f"{n} active forwards")
        all_active = max(tp.active_at.values()) - tp.t_spawn if tp.active_at else None
        first_active = (tp.first_active or tp.t_spawn) - tp.t_spawn
        errors = tp.errors()
        log(f"scale1000: {tp.active_count()}/{n} active {all_active or 0:.2f}s after spawn "
            f"(first {first_active:.2f}s), {len(errors)} in error")
        time.sleep(3.0)
        pid = tp.proc.pid
        s0 = proc_stats(pid)
        io0 = _io(pid)
        m0 = _snap(apis)
        samples = [s0]
        end = time.monotonic() + cfg.idle_seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            samples.append(proc_stats(pid))
        s1 = proc_stats(pid)
        io1 = _io(pid)
        at_idle = _tunnel_count(base, apis, pid, api_ports)
        m1 = at_idle.pop("snap")
        idle: dict[str, Any] = {
            "seconds": s1["t"] - s0["t"],
            "cpu_pct_of_one_core": 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / (s1["t"] - s0["t"]),
            "rss_mb": s1["rss_mb"], "rss_mb_max": max(x["rss_mb"] for x in samples if x),
            "threads": s1["threads"], "sockets": s1["sockets"], "fds": s1["fds"],
            "tunnels": at_idle["tunnels"], "tunnels_per_cluster": at_idle["per_cluster"],
            "api_connections": at_idle["api_connections"],
        }
        # The API servers' request counts are every client's (other tests may share the clusters):
        # Tender's own system calls say whether any of them can be Tender's.
        idle["io_deltas"] = {k: io1[k] - io0[k] for k in io1 if k in io0}
        req = {ctx: _split_requests(kube.request_deltas(m0[ctx], m1[ctx])) for ctx in apis}
        idle["requests"] = req
        idle["list_get_relevant_total"] = sum(v["relevant_list_get"] for v in req.values())
        watches: dict[str, int] = {}
        for ctx in apis:
            for k, v in kube.gauge_deltas(base[ctx], m1[ctx]).items():
                verb, res, scope, _ = k.split("/")
                if verb == "WATCH" and scope == "namespace":
                    watches[f"{ctx} {res}"] = v
        expected = expected_watches(profiles)
        per_key = {k: {"watches": watches.get(k, 0), "keys": expected.get(k, 0)}
                   for k in sorted(set(watches) | set(expected))}
        idle["watches"] = per_key
        idle["watches_total"] = sum(watches.values())
        idle["watch_keys"] = sum(expected.values())
        idle["max_watches_per_key"] = max((v["watches"] / v["keys"] if v["keys"] else 99.0 * (v["watches"] > 0))
                                          for v in per_key.values()) if per_key else None
        log(f"scale1000 idle {idle['seconds']:.0f}s: CPU {idle['cpu_pct_of_one_core']:.2f}% RSS "
            f"{idle['rss_mb']:.0f} MB threads {idle['threads']} sockets {idle['sockets']} tunnels {idle['tunnels']} "
            f"watches {idle['watches_total']} for {idle['watch_keys']} keys, LIST/GET "
            f"{idle['list_get_relevant_total']} (Tender's write/read syscalls {idle['io_deltas'].get('syscw')}/"
            f"{idle['io_deltas'].get('syscr')})")

        # Cold against warm, on forwards spread over the file (both clusters, every target kind).
        step = max(1, n // sample)
        chosen = profiles[::step][:sample]
        cold: list[float] = []
        warm: list[float] = []
        failures: list[str] = []
        per_forward = []
        for p in chosen:
            t_cold, body = _timed_get(p["local"])
            if t_cold is None:
                failures.append(f"{p['name']} cold: {body}")
                continue
            rest = []
            for _ in range(WARM_REQUESTS):
                t, text = _timed_get(p["local"])
                if t is None:
                    failures.append(f"{p['name']} warm: {text}")
                else:
                    rest.append(t)
            cold.append(t_cold)
            if rest:
                warm.append(statistics.median(rest))
            per_forward.append({"name": p["name"], "target": p["target"], "context": p["context"],
                                "cold_ms": 1000 * t_cold, "warm_ms": [1000 * t for t in rest], "pod": body})
        after = _tunnel_count(base, apis, pid, api_ports)
        after.pop("snap")
        time.sleep(IDLE_CLOSE_S + 3.0)
        later = _tunnel_count(base, apis, pid, api_ports)
        later.pop("snap")
        cw: dict[str, Any] = {
            "forwards": len(chosen), "failures": failures, "per_forward": per_forward,
            "cold_p50_ms": 1000 * statistics.median(cold) if cold else None,
            "warm_p50_ms": 1000 * statistics.median(warm) if warm else None,
            "cold_max_ms": 1000 * max(cold) if cold else None,
            "tunnels_after_requests": after["tunnels"], "api_connections_after_requests": after["api_connections"],
            "tunnels_after_idle_close": later["tunnels"],
            "api_connections_after_idle_close": later["api_connections"],
        }
        # Tender's own count: its connections to the API servers beyond those it keeps with no tunnel
        # open (the watches', the REST client's), i.e. after the idle close.  The API servers' gauges
        # count every client's port-forwards (other tests may share the clusters).
        floor = sum(later["api_connections"].values())
        idle["tender_tunnels"] = max(0, sum(idle["api_connections"].values()) - floor)
        cw["tender_tunnels_after_requests"] = max(0, sum(after["api_connections"].values()) - floor)
        if cw["cold_p50_ms"] is not None and cw["warm_p50_ms"] is not None:
            cw["cold_minus_warm_p50_ms"] = cw["cold_p50_ms"] - cw["warm_p50_ms"]
        log(f"scale1000 cold/warm over {len(cold)} forwards: p50 {cw['cold_p50_ms'] or 0:.1f} ms cold, "
            f"{cw['warm_p50_ms'] or 0:.1f} ms warm, {len(failures)} failures; tunnels {after['tunnels']} after the "
            f"requests, {later['tunnels']} {IDLE_CLOSE_S + 3:g} s later")
        s2 = proc_stats(pid)
        out["tender"] = {"all_active_s": all_active, "first_active_s": first_active, "active": tp.active_count(),
                         "errors": [e.get("status_reason") for e in errors][:10], "idle": idle,
                         "cold_warm": cw, "rss_mb_end": s2["rss_mb"] if s2 else None}
    finally:
        rc = tp.stop()
        out.setdefault("tender", {})["exit_code"] = rc
        out["tender"]["stderr_tail"] = tp.err.text(20)
    return out


def rows(sc: dict[str, Any], row: Callable[..., None]) -> None:
    """The scenario's lines of the report through ``row(scenario, metric, cells, target, ok)``
    (:func:`bench.report.evaluate`'s); nothing when the scenario did not run."""
    s = sc.get("scale1000")
    if not s:
        return
    t = s.get("tender", {})
    idle, cw = t.get("idle", {}), t.get("cold_warm", {})
    label = f"5b Scale, on demand ({s.get('forwards', '?')} forwards, 2 clusters)"

    def cells(text: str) -> dict[str, str]:
        return {"tender": text, "kubectl-ws": "—", "kubectl-spdy": "—", "kftray": "—", "direct": "n/a"}

    def num(v: Any, fmt: str) -> str:
        return "—" if v is None else fmt.format(v)

    v = t.get("all_active_s")
    row(label, f"all {s.get('forwards', '?')} active (listening)", cells(num(v, "{:.2f} s")), "≤ 3 s",
        None if v is None else v <= 3.0)
    v = idle.get("tender_tunnels")
    row(label, "port-forward tunnels at idle (Tender's connections to the API servers beyond its floor)",
        cells(num(v, "{}") + f" (API servers' gauges, all clients: {idle.get('tunnels', '—')})"), "0",
        None if v is None else v == 0)
    c, wm = cw.get("cold_p50_ms"), cw.get("warm_p50_ms")
    ok = None if c is None or wm is None else c - wm <= 100.0
    row(label, f"first request, cold vs warm forward (p50 over {cw.get('forwards', '?')})",
        cells("—" if ok is None else f"{c:.1f} ms vs {wm:.1f} ms (+{c - wm:.1f})"), "cold ≤ warm + 100 ms", ok)
    v = cw.get("tunnels_after_idle_close")
    row(label, f"tunnels {s.get('tunnel_idle_s', '?')} s + 3 s after the last request "
               f"(right after: {cw.get('tender_tunnels_after_requests', '?')} by Tender's connections, "
               f"{cw.get('tunnels_after_requests', '?')} by the gauges)", cells(num(v, "{}")), "0",
        None if v is None else v == 0)
    v = idle.get("cpu_pct_of_one_core")
    row(label, f"idle CPU, % of one core ({idle.get('seconds', 0):.0f} s)", cells(num(v, "{:.2f} %")), "≤ 1 %",
        None if v is None else v <= 1.0)
    v = idle.get("rss_mb")
    row(label, "RSS", cells(num(v, "{:.0f} MB")), "≤ 150 MB", None if v is None else v <= 150.0)
    mw = idle.get("max_watches_per_key")
    row(label, "watches (apiserver, namespace-scoped WATCH, all clients) / (cluster, ns, kind) keys",
        cells(f"{idle.get('watches_total', '—')} / {idle.get('watch_keys', '—')}"), "≤ 1 per key",
        None if mw is None else mw <= 1.0)
    v = idle.get("list_get_relevant_total")
    writes = (idle.get("io_deltas") or {}).get("syscw")
    # The API servers count every client's requests; a Tender that made no system call to write
    # during the window sent none of them.
    text = num(v, "{}") + ("" if writes is None else f" (all clients); Tender's write syscalls {writes}")
    row(label, "LIST+GET on pods/services/workloads during idle", cells(text), "0 (no polling)",
        None if v is None else (v == 0 or writes == 0))
