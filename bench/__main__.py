"""``python -m bench [--quick] [--out PATH]``: Tender vs kubectl port-forward and kftray's engine.

Starts its own two-cluster test cluster in a temporary directory (or uses
the one in ``$TENDER_BENCH_CLUSTER_DIR``), runs the six scenarios, writes
PATH (JSON: every raw sample and the summaries) and PATH with ``.md`` (the
table), and stops every process it started, on success, failure or Ctrl-C.
Exit status: 0 when every scenario ran (whether or not targets were met),
1 when a scenario could not run (or kftray's engine could not be built),
130 when interrupted.  ``TENDER_BENCH_KFTRAY=0`` leaves kftray out on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report, scale1000, scenarios  # noqa: E402
from bench.procs import CHILDREN, KUBECTL, kftray_binary, system_cpu  # noqa: E402
from tests.clusterlib import Cluster, cluster_down, cluster_up  # noqa: E402

SCENARIOS = ("bulk", "latency", "concurrency", "rolling_restart", "pod_deletion", "scale", "startup", "tray_idle", "proxy",
             "scale1000")


class Interrupted(BaseException):
    pass


def _on_term(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "mem_gb": mem, "kernel": platform.release(),
            "python": platform.python_version()}


def versions(cluster: Cluster) -> dict[str, str]:
    out = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "--context", cluster.context, "version",
                          "-o", "json"], capture_output=True, text=True, timeout=30)
    try:
        v = json.loads(out.stdout)
    except ValueError:
        v = {}
    from tray import __version__

    return {"server_version": v.get("serverVersion", {}).get("gitVersion", "?"),
            "kubectl_version": v.get("clientVersion", {}).get("gitVersion", "?"), "tender_version": __version__}


def source_info() -> dict[str, Any]:
    """Which Tender was measured: the commit, and whether tray/ had uncommitted changes."""
    import hashlib

    def git(*a: str) -> str:
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30)
        return r.stdout.strip()

    return {"git_head": git("rev-parse", "--short", "HEAD"),
            "tray_uncommitted": git("status", "--porcelain", "--", "tray").splitlines(),
            "tray_sha256": engine_hash()}


def engine_hash() -> str:
    """Hash of the code the CLI runs (tray/**/*.py but tray/ui/, which the CLI does not load)."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted((ROOT / "tray").rglob("*.py")):
        rel = f.relative_to(ROOT / "tray")
        if rel.parts[0] == "ui":
            continue
        h.update(rel.as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def foreign_apiservers(our_dir: Path) -> int:
    """How many other test-cluster API servers run on this machine (they share our CPU)."""
    n = 0
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            args = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"component" in args and b"apiserver" in args and str(our_dir).encode() not in b" ".join(args):
            n += 1
    return n


def notes(results: dict[str, Any]) -> list[str]:
    """What a reader needs to trust the numbers: client headroom, how kubectl failed, costs."""
    out = []
    sc = results["scenarios"]
    try:
        s = sc["bulk"]["summary"]
        for key, name in (("download_MBps", "download"), ("upload_MBps", "upload")):
            d = s[key]["direct"]["median"]
            best = max(s[key][t]["median"] or 0 for t in scenarios.FORWARDERS)
            out.append(f"Bulk {name}: the client moved {d:.0f} MB/s on the direct path, "
                       f"{d / best:.1f}× the fastest forwarder: the client is not the bottleneck.")
        cpu = sc["bulk"]["cpu_s_per_GB"]

        def g(t: str, d: str, k: str) -> str:
            v = cpu.get(f"{t} {d} {k}", {}).get("median")
            return "—" if v is None else f"{v:.2f}"

        out.append("Bulk, CPU seconds per GB moved, forwarder + apiserver + kubelet (download; upload): " + "; ".join(
            f"{t} {g(t, 'download', 'forwarder')} + {g(t, 'download', 'apiserver')} + {g(t, 'download', 'kubelet')}"
            f"; {g(t, 'upload', 'forwarder')} + {g(t, 'upload', 'apiserver')} + {g(t, 'upload', 'kubelet')}"
            for t in scenarios.TOOLS) + ".")
    except (KeyError, TypeError, ZeroDivisionError):
        pass
    try:
        f = sc["bulk"]["summary"]["failed"]
        samples = sc["bulk"]["summary"]["error_samples"]
        bad = [f"{t} {f['download'][t]} download(s) and {f['upload'][t]} upload(s) failed ({'; '.join(samples[t])})"
               for t in f["download"] if f["download"][t] or f["upload"][t]]
        if bad:
            out.append("Bulk: " + "; ".join(bad) + ". A failed transfer has no MB/s and is no candidate for the "
                       "best peer.")
    except (KeyError, TypeError):
        pass
    try:
        s = sc["latency"]["summary"]["p50_ms"]
        out.append(f"Latency: direct p50 {s['direct']['median']:.2f} ms is the client+server floor.")
    except (KeyError, TypeError):
        pass
    for name in ("latency", "concurrency"):
        try:
            cpu = sc[name]["summary"]["cpu_ms_per_request"]

            def h(t: str, k: str) -> str:
                v = cpu[t][k]["median"]
                return "—" if v is None else f"{v:.2f}"

            out.append(f"{name.capitalize()}, CPU ms per request, forwarder + apiserver + kubelet: " + "; ".join(
                f"{t} {h(t, 'forwarder')} + {h(t, 'apiserver')} + {h(t, 'kubelet')}" for t in scenarios.TOOLS) + ".")
        except (KeyError, TypeError):
            pass
    try:
        s = sc["concurrency"]["summary"]["req_per_s"]
        best = max(s[t]["median"] or 0 for t in scenarios.FORWARDERS)
        out.append(f"Concurrency: direct {s['direct']['median']:.0f} req/s, "
                   f"{s['direct']['median'] / best:.1f}× the fastest forwarder: the client is not the bottleneck.")
    except (KeyError, TypeError, ZeroDivisionError):
        pass
    try:
        for r in sc["rolling_restart"]["rounds"]:
            parts = []
            for t in [t for t in scenarios.PEERS if t in r["tools"]]:
                e = r["tools"][t]["exited_s"]
                parts.append(f"{t} exited {e:.1f} s after the restart" if e is not None else f"{t} kept running")
            out.append(f"Rolling restart round {r['round']}: `rollout status` done {r['restart_to_status_s']:.1f} s "
                       f"after the restart, old pods gone at {r['restart_to_old_pods_gone_s']:.1f} s, probing "
                       f"window {r['window_s']:.1f} s; " + ", ".join(parts) + ".")
    except (KeyError, TypeError):
        pass
    try:
        pd = sc["pod_deletion"]
        for r in pd["rounds"]:
            t = r["tools"]["tender"]
            out.append(f"Pod deletion round {r['round']}: new pod Ready {r['delete_to_ready_s']:.2f} s after the "
                       f"delete; Tender reported the new pod {_f(t.get('tender_reported_new_pod_after_ready_s'))} s "
                       f"and served it {_f(t['first_success_after_ready_s'])} s after Ready; kubectl WS/SPDY "
                       f"exited {_f(r['tools']['kubectl-ws']['exited_s'])} / "
                       f"{_f(r['tools']['kubectl-spdy']['exited_s'])} s after the delete"
                       + (f"; kftray served the new pod {_f(r['tools']['kftray']['first_success_after_ready_s'])} s "
                          f"after Ready, {r['tools']['kftray']['failed_after_delete']} of "
                          f"{r['tools']['kftray']['attempts_after_delete']} attempts failed after the delete"
                          if "kftray" in r["tools"] else "") + ".")
    except (KeyError, TypeError):
        pass
    try:
        kf = sc["scale"]["kftray"]
        idle = kf["idle"]
        out.append(f"Scale, kftray's engine (one process, the same {kf['forwards']} forwards as one batch): "
                   f"{kf['listening']} listening {kf['all_listening_s']:.2f} s after spawn, {kf['failed']} failed"
                   + (f" ({'; '.join(kf['errors'])[:300]})" if kf["errors"] else "")
                   + f"; {kf['answered']} answered /hostname after the idle window; connections to the API "
                   f"servers during idle: {idle['api_connections']}; per-key watches: "
                   + ", ".join(f"{k} {v['watches']}/{v['keys']}" for k, v in idle["watches"].items()) + ".")
    except (KeyError, TypeError):
        pass
    try:
        tn = sc["scale"]["tender"]
        idle = tn["idle"]
        out.append(f"Scale: {tn['answered']}/{sc['scale']['forwards']} forwards answered /hostname after the idle "
                   f"window; Tender printed {tn['list_events']} list events ({tn['list_event_bytes'] / 1e6:.1f} MB of "
                   f"JSON) at start-up; connections to the API servers during idle: {idle['api_connections']}; "
                   f"per-key watches: " + ", ".join(f"{k} {v['watches']}/{v['keys']}"
                                                    for k, v in idle["watches"].items()) + ".")
        if "control" in sc["scale"]:
            ctl = sc["scale"]["control"]
            out.append(f"Scale control window ({ctl['seconds']:.0f} s before Tender started): LIST+GET on the "
                       "forward-relevant resources by everything else: " + ", ".join(
                           f"{c} {v['relevant_list_get']}" for c, v in ctl["requests"].items()) + ".")
    except (KeyError, TypeError):
        pass
    try:
        ti = sc["tray_idle"]
        t = ti["tray"]
        out.append(f"Tray idle: `tender tray` (the D-Bus item, from a plain `pip install .`) under xfce4-panel with "
                   f"{ti['forwards']} autostart forwards (menu: \"{ti['first_line']}\"): "
                   f"{t['cpu_pct_of_one_core']:.2f} % of one core over {t['seconds']:.0f} s, RSS {t['rss_mb']:.0f} MB, "
                   f"{t['threads']} threads, menu layout revisions meanwhile: {t['menu_revision_change']}.")
    except (KeyError, TypeError):
        pass
    return out


def _f(x: Any) -> str:
    return "—" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a small version of every scenario (< 2 min)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    p.add_argument("--only", action="append", choices=SCENARIOS, help="run only these scenarios (repeatable)")
    args = p.parse_args(argv)
    # Installed explicitly: a shell starting us in the background may have set SIGINT to "ignore".
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)

    cfg = scenarios.Config.make(args.quick)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t_begin = time.monotonic()
    busy0 = system_cpu()
    results: dict[str, Any] = {"quick": args.quick, "config": cfg.to_dict(), "scenarios": {}, "errors": {},
                               "meta": {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                                        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                                        **machine_info()}}
    reuse = os.environ.get("TENDER_BENCH_CLUSTER_DIR")
    workdir = Path(tempfile.mkdtemp(prefix="tender-bench-"))
    cluster_dir = Path(reuse) if reuse else workdir / "cluster"
    started_cluster = False
    workloads = None
    clusters: list[Cluster] = []
    rc = 0
    try:
        if os.environ.get("TENDER_BENCH_KFTRAY") == "0":
            results["meta"]["kftray"] = "left out (TENDER_BENCH_KFTRAY=0)"
        else:
            log("kftray's engine: bench/peers/kftray/build (cached; a cold build takes ~8 min)")
            binary, why = kftray_binary()
            scenarios.use_kftray(binary)
            results["meta"]["kftray"] = binary or why
            if binary is None:
                results["errors"]["kftray"] = f"kftray's engine is not measured: {why}"
                log(results["errors"]["kftray"])
        if reuse:
            clusters = [Cluster(cluster_dir, "a"), Cluster(cluster_dir, "b")]
            log(f"using the clusters in {cluster_dir}")
        else:
            log(f"starting 2 test clusters in {cluster_dir}")
            started_cluster = True
            clusters = cluster_up(cluster_dir, 2)
        results["meta"]["cluster_up_s"] = time.monotonic() - t_begin
        results["meta"].update(versions(clusters[0]))
        results["meta"].update(source_info())
        results["meta"]["foreign_apiservers"] = foreign_apiservers(cluster_dir)
        workloads = scenarios.setup_workloads(clusters, log)
        a = clusters[0]
        wanted = args.only or list(SCENARIOS)

        def attempt(name: str, fn: Any) -> None:
            if name not in wanted:
                return
            log(f"--- {name}")
            t0 = time.monotonic()
            code = engine_hash()
            try:
                results["scenarios"][name] = fn()
                results["scenarios"][name]["duration_s"] = time.monotonic() - t0
                results["scenarios"][name]["engine_sha256"] = code
            except Exception:
                results["errors"][name] = traceback.format_exc()
                log(f"{name} FAILED:\n{results['errors'][name]}")

        dp = None
        if {"bulk", "latency", "concurrency"} & set(wanted):
            dp = scenarios.DataPlane(a, workloads.data_ns, "data", log)
            try:
                dp.start()
            except Exception:
                for name in ("bulk", "latency", "concurrency"):
                    results["errors"][name] = traceback.format_exc()
                dp.stop()
                dp = None
        if dp is not None:
            try:
                attempt("bulk", lambda: scenarios.bulk(cfg, dp, log))
                attempt("latency", lambda: scenarios.latency(cfg, dp, log))
                attempt("concurrency", lambda: scenarios.concurrency(cfg, dp, log))
            finally:
                results["meta"]["data_plane_restarts"] = dp.restarts
                results["meta"]["data_plane_exited_stderr"] = dp.stderr
                dp.stop()
        attempt("rolling_restart", lambda: scenarios.rolling_restart(cfg, a, workloads.fail_ns, log))
        attempt("pod_deletion", lambda: scenarios.pod_deletion(cfg, a, workloads.fail_ns, log))
        attempt("scale", lambda: scenarios.scale(cfg, clusters, workloads, workdir, log))
        attempt("startup", lambda: scenarios.startup(cfg, clusters, workloads, workdir, log))
        attempt("tray_idle", lambda: scenarios.tray_idle(cfg, workdir, workloads, clusters[0].kubeconfig, log))
        attempt("proxy", lambda: scenarios.proxy(cfg, a, workloads.data_ns, log))
        attempt("scale1000", lambda: scale1000.run(cfg, clusters, workloads, workdir, log))
        missing = [n for n in wanted if n not in results["scenarios"]]
        rc = 1 if missing or "kftray" in results["errors"] else 0
    except (KeyboardInterrupt, Interrupted) as exc:
        log(f"interrupted ({str(exc) or 'Ctrl-C'}); cleaning up")
        results["errors"]["interrupted"] = repr(exc)
        rc = 130
    except Exception:
        results["errors"]["setup"] = traceback.format_exc()
        log(f"FAILED:\n{results['errors']['setup']}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        killed = CHILDREN.kill_all()
        if killed:
            log(f"killed leftover children: {', '.join(killed)}")
        if workloads is not None and reuse:
            scenarios.teardown_workloads(clusters, workloads)
        if started_cluster:
            log("stopping the test clusters")
            cluster_down(cluster_dir)
        shutil.rmtree(workdir, ignore_errors=True)
        busy1 = system_cpu()
        meta = results["meta"]
        meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        meta["machine_busy_pct"] = 100.0 * (busy1[0] - busy0[0]) / max(1.0, busy1[1] - busy0[1])
        meta["duration_s"] = time.monotonic() - t_begin
        results["notes"] = notes(results)
        if "tray_sha256" in meta:
            meta["tray_sha256_end"] = engine_hash()
            seen = {n: sc.get("engine_sha256") for n, sc in results["scenarios"].items()}
            if meta["tray_sha256_end"] != meta["tray_sha256"] or len(set(seen.values())) > 1:
                results["notes"].insert(0, "WARNING: the engine (tray/ but tray/ui/) changed while the benchmark ran "
                                           f"({meta['tray_sha256']} at the start, {meta['tray_sha256_end']} at the "
                                           "end); code each scenario started with: "
                                           + ", ".join(f"{n} {h}" for n, h in seen.items()) + ".")
        rows = report.evaluate(results)
        results["targets"] = [{k: v for k, v in r.items()} for r in rows]
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(results, indent=1, default=str))
        tmp.replace(out)
        md = report.markdown(results, rows)
        out.with_suffix(".md").write_text(md)
        print(md)
        log(f"wrote {out} and {out.with_suffix('.md')}")
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
