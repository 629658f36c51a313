"""The scenarios.  Each returns a JSON-able dict: raw samples + summary.

Tools (the ways to reach the pod server), measured side by side in one run:

* ``tender``: ``tender forward`` / ``tender run`` as a separate process;
* ``kubectl-ws``: ``kubectl port-forward`` over its default WebSocket path;
* ``kubectl-spdy``: the same with ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``;
* ``kftray``: kftray's engine (the ``kftray-portforward`` crate) started as kftray
  starts forwards, in a process of its own (``bench/peers/kftray``); present when
  :func:`use_kftray` was given its binary;
* ``direct``: the pod server's own loopback address (the ceiling, and the
  check that the load client is not the bottleneck).

Rounds interleave the tools, and the order rotates each round, so a slow
spell of the (shared, 2-core) machine does not land on one tool only.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from bench import kube
from bench.procs import (
    CHILDREN,
    Direct,
    Forwarder,
    KftrayForward,
    KubectlForward,
    Prober,
    TenderForward,
    TenderProcess,
    TenderProxy,
    proc_stats,
    run_load,
    run_load_parallel,
    tcp_peers,
    user_tender,
)
from bench.stats import PEERS, percentile, ratio, summary, vs_best_peer
from tests.clusterlib import Cluster, deployment_manifest

ALL_TOOLS = ("tender", "kubectl-ws", "kubectl-spdy", "kftray", "direct")
# The tools of this run: without kftray until use_kftray() is given its binary.
TOOLS = tuple(t for t in ALL_TOOLS if t != "kftray")
FORWARDERS = tuple(t for t in TOOLS if t != "direct")
KFTRAY: str | None = None
MB = 1e6


def use_kftray(binary: str | None) -> None:
    """Measure kftray's engine with this harness binary (None: leave kftray out of the run)."""
    global TOOLS, FORWARDERS, KFTRAY
    KFTRAY = binary
    TOOLS = tuple(t for t in ALL_TOOLS if binary or t != "kftray")
    FORWARDERS = tuple(t for t in TOOLS if t != "direct")


@dataclass
class Config:
    quick: bool
    rounds: int = 5
    bulk_bytes: int = 256 * 1024 * 1024
    latency_requests: int = 500
    conc_clients: int = 64
    conc_requests: int = 20
    conc_procs: int = 2
    rollout_rounds: int = 3
    probe_interval: float = 0.020
    delete_rounds: int = 3
    delete_probe_interval: float = 0.020
    never_window: float = 10.0
    scale_forwards: int = 200
    idle_seconds: float = 60.0
    control_seconds: float = 20.0
    kubectl_scale: int = 20
    kubectl_idle_seconds: float = 20.0
    startup_rounds: int = 5
    warmup_requests: int = 5

    @classmethod
    def make(cls, quick: bool) -> "Config":
        if not quick:
            return cls(quick=False)
        return cls(quick=True, rounds=1, bulk_bytes=16 * 1024 * 1024, latency_requests=50, conc_clients=8,
                   conc_requests=5, conc_procs=1, rollout_rounds=1, delete_rounds=1, never_window=3.0,
                   scale_forwards=20, idle_seconds=10.0, control_seconds=0.0, kubectl_scale=4,
                   kubectl_idle_seconds=3.0, startup_rounds=1, warmup_requests=3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Log = Callable[[str], None]


def rotated(items: tuple[str, ...], r: int) -> list[str]:
    k = r % len(items)
    return list(items[k:] + items[:k])


# ====================================================================== setup
@dataclass
class Workloads:
    data_ns: str
    fail_ns: str
    scale_ns: list[str]  # the same names in both clusters
    tag: str


def setup_workloads(clusters: list[Cluster], log: Log) -> Workloads:
    """Namespaces and workloads of every scenario, created up front, in parallel."""
    a, b = clusters[0], clusters[1]
    tag = uuid.uuid4().hex[:5]
    w = Workloads(data_ns=f"bench-data-{tag}", fail_ns=f"bench-fail-{tag}",
                  scale_ns=[f"bench-s0-{tag}", f"bench-s1-{tag}"], tag=tag)
    for c, names in ((a, [w.data_ns, w.fail_ns, *w.scale_ns]), (b, w.scale_ns)):
        for ns in names:
            c.kubectl("create", "namespace", ns)
    # The ServiceAccount admission plugin refuses pods until "default" exists.
    for c, names in ((a, [w.data_ns, w.fail_ns, *w.scale_ns]), (b, w.scale_ns)):
        for ns in names:
            deadline = time.monotonic() + 30
            while c.kubectl("get", "sa", "default", "-n", ns, check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no default ServiceAccount in {ns}")
                time.sleep(0.1)
    a.apply(deployment_manifest("data"), w.data_ns)
    a.apply(deployment_manifest("roll", replicas=2) + "\n---\n" + deployment_manifest("solo"), w.fail_ns)
    scale = "\n---\n".join(deployment_manifest(f"w{i}") + "\n---\n" + service_manifest(f"w{i}") for i in (0, 1))
    for c in (a, b):
        for ns in w.scale_ns:
            c.apply(scale, ns)
    a.wait_ready(w.data_ns, "app=data", 1, timeout=90)
    a.wait_ready(w.fail_ns, "app=roll", 2, timeout=90)
    a.wait_ready(w.fail_ns, "app=solo", 1, timeout=90)
    for c in (a, b):
        for ns in w.scale_ns:
            for i in (0, 1):
                c.wait_ready(ns, f"app=w{i}", 1, timeout=90)
    log(f"workloads ready (tag {tag})")
    return w


def kftray_remote(target: str, remote: int) -> int:
    """The remote port of kftray's configuration for kubectl's TARGET REMOTE.

    kftray forwards a Service to a port of the pod it selects (its remote port is the pod's
    port; it does not map Service ports), so a user configures the Service's target port:
    for the bench's Services (:func:`service_manifest`) port 80 is the pods' ``http``, 8080.
    """
    if target.startswith("svc/") and remote == 80:
        return 8080
    return remote


def service_manifest(name: str) -> str:
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: web, port: 80, targetPort: http}}]
"""


def teardown_workloads(clusters: list[Cluster], w: Workloads) -> None:
    a, b = clusters[0], clusters[1]
    for c, names in ((a, [w.data_ns, w.fail_ns, *w.scale_ns]), (b, w.scale_ns)):
        for ns in names:
            c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# ====================================================================== helpers
class DataPlane:
    """The four ways to reach one pod server, kept running across rounds."""

    def __init__(self, cluster: Cluster, namespace: str, deployment: str, log: Log) -> None:
        self.cluster, self.namespace, self.deployment, self.log = cluster, namespace, deployment, log
        self.fw: dict[str, Forwarder] = {}
        self.restarts: dict[str, int] = {t: 0 for t in FORWARDERS}
        self.stderr: dict[str, str] = {}  # the stderr tail of a forwarder that had exited
        self.control_plane = control_plane_pids(cluster)

    def _make(self, tool: str) -> Forwarder:
        c = self.cluster
        target = f"deploy/{self.deployment}"
        if tool == "tender":
            return TenderForward(c.kubeconfig, c.context, self.namespace, target, 8080).start()
        if tool in ("kubectl-ws", "kubectl-spdy"):
            return KubectlForward(c.kubeconfig, c.context, self.namespace, target, 8080,
                                  websockets=tool == "kubectl-ws").start()
        if tool == "kftray":
            assert KFTRAY is not None
            return KftrayForward(KFTRAY, c.kubeconfig, c.context, self.namespace, target, 8080).start()
        [pod] = c.ready_pods(self.namespace, f"app={self.deployment}")
        return Direct(c.direct_address(self.namespace, pod, 8080)[1])

    def start(self) -> None:
        for tool in TOOLS:
            self.fw[tool] = self._make(tool)
        self.log("data plane: " + ", ".join(f"{t} :{f.port}" for t, f in self.fw.items()))

    def get(self, tool: str) -> Forwarder:
        fw = self.fw[tool]
        if not fw.alive():
            self.log(f"{tool} had exited (rc {fw.proc.returncode if fw.proc else '?'}); restarting it")
            self.restarts[tool] += 1
            err = getattr(fw, "err", None)
            if err is not None:
                self.stderr[tool] = err.text(10)
            fw.stop()
            fw = self.fw[tool] = self._make(tool)
        return fw

    def stop(self) -> None:
        for fw in self.fw.values():
            fw.stop()


def control_plane_pids(cluster: Cluster) -> dict[str, int]:
    """The cluster's apiserver and kubelet processes (they carry every forwarded byte too)."""
    out = {}
    for comp in ("apiserver", "kubelet"):
        try:
            out[comp] = int((cluster.dir / cluster.letter / "pids" / f"{comp}.pid").read_text().strip())
        except (OSError, ValueError):
            pass
    return out


def measured(fw: Forwarder, fn: Callable[[], dict[str, Any]], others: dict[str, int] | None = None) -> dict[str, Any]:
    """Run fn; add the CPU seconds the forwarder (and the apiserver, kubelet) spent meanwhile."""
    others = others or {}
    before = fw.stats()
    before_o = {k: proc_stats(pid) for k, pid in others.items()}
    result = fn()
    after = fw.stats()
    if before and after:
        result["forwarder_cpu_s"] = round(after["cpu_s"] - before["cpu_s"], 3)
        result["forwarder_rss_mb"] = round(after["rss_mb"], 1)
        result["forwarder_threads"] = after["threads"]
    for k, pid in others.items():
        a, b = before_o[k], proc_stats(pid)
        if a and b:
            result[f"{k}_cpu_s"] = round(b["cpu_s"] - a["cpu_s"], 3)
    return result


def warm_up(port: int, n: int) -> None:
    if n > 0:
        run_load({"kind": "latency", "port": port, "count": n, "timeout": 10.0}, timeout=60)


def per_tool_summary(rounds: list[dict[str, Any]], metric: str, tools: tuple[str, ...] | None = None) -> dict[str, Any]:
    """{tool: summary of metric over the rounds}; tools: this run's TOOLS unless given."""
    return {t: summary([r["tools"].get(t, {}).get(metric) for r in rounds]) for t in (tools or TOOLS)}


def ratios(summaries: dict[str, Any], base: str = "kubectl-ws") -> dict[str, float | None]:
    return {t: ratio(s["median"], summaries[base]["median"]) for t, s in summaries.items()}


# ====================================================================== 1. bulk
def bulk(cfg: Config, dp: DataPlane, log: Log) -> dict[str, Any]:
    n = cfg.bulk_bytes
    rounds = []
    for r in range(cfg.rounds):
        order = rotated(TOOLS, r)
        tools: dict[str, Any] = {}
        for tool in order:
            fw = dp.get(tool)
            assert fw.port is not None
            warm_up(fw.port, 1)
            down = measured(fw, lambda: run_load({"kind": "download", "port": fw.port, "n": n}, timeout=180),
                            dp.control_plane)
            up = measured(fw, lambda: run_load({"kind": "upload", "port": fw.port, "n": n}, timeout=180),
                          dp.control_plane)
            tools[tool] = {
                "download": down, "upload": up,
                "download_MBps": n / down["seconds"] / MB if down.get("ok") else None,
                "upload_MBps": n / up["seconds"] / MB if up.get("ok") else None,
            }
            log(f"bulk round {r + 1}/{cfg.rounds} {tool}: down {_fmt(tools[tool]['download_MBps'])} MB/s"
                f" up {_fmt(tools[tool]['upload_MBps'])} MB/s"
                + ("" if down.get("ok") and up.get("ok") else f" ERRORS {down.get('error')} {up.get('error')}"))
        rounds.append({"round": r + 1, "order": order, "tools": tools})
    s = {"download_MBps": per_tool_summary(rounds, "download_MBps"),
         "upload_MBps": per_tool_summary(rounds, "upload_MBps"),
         # A failed transfer has no MB/s: counted here, with its error, so it is not just a gap.
         "failed": {d: {t: sum(1 for r in rounds if not r["tools"][t][d].get("ok")) for t in TOOLS}
                    for d in ("download", "upload")},
         "error_samples": {t: sorted({str(r["tools"][t][d].get("error")) for r in rounds for d in ("download", "upload")
                                      if not r["tools"][t][d].get("ok")})[:3] for t in TOOLS}}
    return {"bytes": n, "unit": "MB/s (1 MB = 10^6 bytes)", "rounds": rounds, "summary": s,
            "ratio_vs_kubectl_ws": {k: ratios(s[k]) for k in ("download_MBps", "upload_MBps")},
            "ratio_vs_best_peer": {k: vs_best_peer(s[k], True) for k in ("download_MBps", "upload_MBps")},
            "cpu_s_per_GB": _cpu_per_gb(rounds, n)}


def _cpu_per_gb(rounds: list[dict[str, Any]], n: int) -> dict[str, Any]:
    out = {}
    for tool in TOOLS:
        for d in ("download", "upload"):
            for k in ("forwarder", "apiserver", "kubelet"):
                xs = [r["tools"][tool][d].get(f"{k}_cpu_s") for r in rounds if tool in r["tools"]]
                xs = [x / (n / 1e9) for x in xs if x is not None]
                if xs:
                    out[f"{tool} {d} {k}"] = summary(xs)
    return out


def _cpu_per_request(res: dict[str, Any], n: int) -> dict[str, Any]:
    """CPU seconds of the forwarder, apiserver and kubelet during a run, and ms per request."""
    out: dict[str, Any] = {}
    for k in ("forwarder", "apiserver", "kubelet"):
        v = res.get(f"{k}_cpu_s")
        out[f"{k}_cpu_s"] = v
        out[f"{k}_cpu_ms_per_request"] = None if v is None or not n else 1000.0 * v / n
    return out


def _cpu_summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {t: {k: summary([r["tools"][t].get(f"{k}_cpu_ms_per_request") for r in rounds])
                for k in ("forwarder", "apiserver", "kubelet")} for t in TOOLS}


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


# ====================================================================== 2. latency
def latency(cfg: Config, dp: DataPlane, log: Log) -> dict[str, Any]:
    rounds = []
    for r in range(cfg.rounds):
        order = rotated(TOOLS, r)
        tools: dict[str, Any] = {}
        for tool in order:
            fw = dp.get(tool)
            warm_up(fw.port, cfg.warmup_requests)
            res = measured(fw, lambda: run_load({"kind": "latency", "port": fw.port,
                                                 "count": cfg.latency_requests}, timeout=600), dp.control_plane)
            ms = res["ms"]
            tools[tool] = {"p50_ms": percentile(ms, 50), "p90_ms": percentile(ms, 90),
                           "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None,
                           "errors": len(res["errors"]), "error_samples": res["errors"][:5],
                           "ms": [round(x, 3) for x in ms], "seconds": res["seconds"],
                           **_cpu_per_request(res, cfg.latency_requests)}
            log(f"latency round {r + 1}/{cfg.rounds} {tool}: p50 {_fmt(tools[tool]['p50_ms'], 2)} ms "
                f"p99 {_fmt(tools[tool]['p99_ms'], 2)} ms errors {len(res['errors'])}")
        rounds.append({"round": r + 1, "order": order, "tools": tools})
    s = {"p50_ms": per_tool_summary(rounds, "p50_ms"), "p99_ms": per_tool_summary(rounds, "p99_ms"),
         "errors": {t: sum(r["tools"][t]["errors"] for r in rounds) for t in TOOLS}}
    pooled = {t: {"p50_ms": percentile([x for r in rounds for x in r["tools"][t]["ms"]], 50),
                  "p99_ms": percentile([x for r in rounds for x in r["tools"][t]["ms"]], 99)} for t in TOOLS}
    s["cpu_ms_per_request"] = _cpu_summary(rounds)
    return {"requests_per_round": cfg.latency_requests, "rounds": rounds, "summary": s, "pooled": pooled,
            "ratio_vs_kubectl_ws": {"p50_ms": ratios(s["p50_ms"]), "p99_ms": ratios(s["p99_ms"])},
            "ratio_vs_best_peer": {"p50_ms": vs_best_peer(s["p50_ms"], False),
                                   "p99_ms": vs_best_peer(s["p99_ms"], False)}}


# ====================================================================== 3. concurrency
def concurrency(cfg: Config, dp: DataPlane, log: Log) -> dict[str, Any]:
    rounds = []
    procs = max(1, min(cfg.conc_procs, cfg.conc_clients))
    split = [cfg.conc_clients // procs + (1 if i < cfg.conc_clients % procs else 0) for i in range(procs)]
    for r in range(cfg.rounds):
        order = rotated(TOOLS, r)
        tools: dict[str, Any] = {}
        for tool in order:
            fw = dp.get(tool)
            warm_up(fw.port, cfg.warmup_requests)
            start_at = time.monotonic() + 1.0
            jobs = [{"kind": "concurrency", "port": fw.port, "clients": k, "requests": cfg.conc_requests,
                     "start_at": start_at, "timeout": 15.0} for k in split]
            res = measured(fw, lambda: {"workers": run_load_parallel(jobs, timeout=600)}, dp.control_plane)
            ms = [x for w in res["workers"] for x in w["ms"]]
            errors = [e for w in res["workers"] for e in w["errors"]]
            t0 = min(w["t_start"] for w in res["workers"])
            t1 = max(w["t_end"] for w in res["workers"])
            tools[tool] = {"req_per_s": len(ms) / (t1 - t0) if t1 > t0 else None, "ok": len(ms),
                           "errors": len(errors), "error_samples": errors[:5], "seconds": t1 - t0,
                           "late_start_s": t0 - start_at,
                           "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
                           "ms": [round(x, 3) for x in ms],
                           **_cpu_per_request(res, cfg.conc_clients * cfg.conc_requests)}
            log(f"concurrency round {r + 1}/{cfg.rounds} {tool}: {_fmt(tools[tool]['req_per_s'])} req/s, "
                f"{len(errors)} errors")
        rounds.append({"round": r + 1, "order": order, "tools": tools})
    s = {"req_per_s": per_tool_summary(rounds, "req_per_s"),
         "errors": {t: sum(r["tools"][t]["errors"] for r in rounds) for t in TOOLS},
         "p50_ms": per_tool_summary(rounds, "p50_ms"), "p99_ms": per_tool_summary(rounds, "p99_ms")}
    s["cpu_ms_per_request"] = _cpu_summary(rounds)
    return {"clients": cfg.conc_clients, "requests_per_client": cfg.conc_requests, "client_processes": procs,
            "rounds": rounds, "summary": s, "ratio_vs_kubectl_ws": {"req_per_s": ratios(s["req_per_s"])},
            "ratio_vs_best_peer": {"req_per_s": vs_best_peer(s["req_per_s"], True)}}


# ====================================================================== 4a. rolling restart
def _start_forwarders(cluster: Cluster, namespace: str, target: str) -> dict[str, Forwarder]:
    fws: dict[str, Forwarder] = {}
    try:
        fws["tender"] = TenderForward(cluster.kubeconfig, cluster.context, namespace, target, 8080).start()
        for tool in ("kubectl-ws", "kubectl-spdy"):
            fws[tool] = KubectlForward(cluster.kubeconfig, cluster.context, namespace, target, 8080,
                                       websockets=tool == "kubectl-ws").start()
        if KFTRAY is not None:
            fws["kftray"] = KftrayForward(KFTRAY, cluster.kubeconfig, cluster.context, namespace, target,
                                          8080).start()
    except BaseException:
        for fw in fws.values():
            fw.stop()
        raise
    return fws


def _exit_time(fw: Forwarder) -> float | None:
    return getattr(fw, "t_exit", None)


def rolling_restart(cfg: Config, cluster: Cluster, namespace: str, log: Log) -> dict[str, Any]:
    rounds = []
    for r in range(cfg.rollout_rounds):
        fws = _start_forwarders(cluster, namespace, "deploy/roll")
        try:
            for fw in fws.values():
                warm_up(fw.port, 2)
            before = set(cluster.ready_pods(namespace, "app=roll"))
            prober = Prober({t: fw.port for t, fw in fws.items()}, cfg.probe_interval, timeout=5.0,
                            max_seconds=240)
            time.sleep(1.0)
            t_restart = time.monotonic()
            cluster.kubectl("rollout", "restart", "deployment/roll", "-n", namespace)
            cluster.kubectl("rollout", "status", "deployment/roll", "-n", namespace, "--timeout=180s", timeout=200)
            t_status = time.monotonic()
            # rollout status returns once the new pods are available; the old
            # ones still serve through their grace period.  Keep probing until
            # they are gone (that is when kubectl's forward dies), plus 1 s.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pods = cluster.pods(namespace, "app=roll")
                if not any(p["metadata"]["name"] in before for p in pods):
                    break
                time.sleep(0.2)
            t_old_gone = time.monotonic()
            time.sleep(1.0)
            res = prober.finish()
        finally:
            for fw in fws.values():
                fw.stop()
        after = set(cluster.ready_pods(namespace, "app=roll"))
        tools = {}
        for tool, rows in res["results"].items():
            fails = [row for row in rows if not row[2]]
            fails_after = [row for row in rows if not row[2] and row[0] >= t_restart]
            served = sorted({row[3] for row in rows if row[2]})
            t_exit = _exit_time(fws[tool])
            tools[tool] = {
                "attempts": len(rows), "failed": len(fails), "failed_after_restart": len(fails_after),
                "first_failure_s": (fails[0][0] - t_restart) if fails else None,
                "exited_s": (t_exit - t_restart) if t_exit else None,
                "pods_served": served, "served_new_pods": sorted(set(served) & after),
                "error_samples": sorted({row[3] for row in fails})[:5],
                "max_ms": max((row[1] - row[0]) * 1000 for row in rows) if rows else None,
            }
            log(f"rollout round {r + 1}/{cfg.rollout_rounds} {tool}: {len(fails)} failed of {len(rows)}"
                + (f" (process exited {tools[tool]['exited_s']:.1f}s after the restart)" if t_exit else ""))
        rounds.append({"round": r + 1, "restart_to_status_s": t_status - t_restart,
                       "restart_to_old_pods_gone_s": t_old_gone - t_restart,
                       "window_s": res["t_end"] - t_restart, "old_pods": sorted(before), "new_pods": sorted(after),
                       "tools": tools, "raw": res["results"]})
    s = {"failed": {t: summary([r["tools"][t]["failed"] for r in rounds]) for t in FORWARDERS},
         "failed_total": {t: sum(r["tools"][t]["failed"] for r in rounds) for t in FORWARDERS},
         "attempts_total": {t: sum(r["tools"][t]["attempts"] for r in rounds) for t in FORWARDERS}}
    return {"interval_s": cfg.probe_interval, "rounds": rounds, "summary": s}


# ====================================================================== 4b. pod deletion
def pod_deletion(cfg: Config, cluster: Cluster, namespace: str, log: Log) -> dict[str, Any]:
    api = kube.Api(cluster)
    rounds = []
    for r in range(cfg.delete_rounds):
        fws = _start_forwarders(cluster, namespace, "deploy/solo")
        watch = kube.PodWatch(api, namespace).start()
        try:
            for fw in fws.values():
                warm_up(fw.port, 2)
            [old] = cluster.ready_pods(namespace, "app=solo")
            prober = Prober({t: fw.port for t, fw in fws.items()}, cfg.delete_probe_interval, timeout=5.0,
                            max_seconds=180)
            time.sleep(0.5)
            t_del = time.monotonic()
            cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
            new, t_ready = _wait_new_ready(watch, old, "solo", 90)
            # Every tool gets never_window seconds after the new pod is Ready
            # to reach it (kubectl cannot: its forward died with the old pod).
            time.sleep(max(0.0, t_ready + cfg.never_window - time.monotonic()))
            res = prober.finish()
        finally:
            watch.stop()
            for fw in fws.values():
                fw.stop()
        tools = {}
        for tool, rows in res["results"].items():
            after_del = [row for row in rows if row[0] >= t_del]
            ok_new = [row for row in after_del if row[2] and row[3] == new]
            first = min((row[1] for row in ok_new), default=None)
            last_old = max((row[1] for row in after_del if row[2] and row[3] == old), default=None)
            fails = [row for row in after_del if not row[2]]
            t_exit = _exit_time(fws[tool])
            tools[tool] = {
                "first_success_after_ready_s": (first - t_ready) if first is not None else None,
                "recovered": first is not None,
                "first_success_after_delete_s": (first - t_del) if first is not None else None,
                "last_old_pod_success_after_delete_s": (last_old - t_del) if last_old else None,
                "failed_after_delete": len(fails), "attempts_after_delete": len(after_del),
                "exited_s": (t_exit - t_del) if t_exit else None,
                "error_samples": sorted({row[3] for row in fails})[:5],
            }
            if tool == "tender":
                tf = fws["tender"]
                assert isinstance(tf, TenderForward)
                switch = [t for t, st, pod in tf.pods_used() if st == "active" and pod == new]
                tools[tool]["tender_reported_new_pod_after_ready_s"] = (switch[0] - t_ready) if switch else None
            v = tools[tool]["first_success_after_ready_s"]
            log(f"pod deletion round {r + 1}/{cfg.delete_rounds} {tool}: "
                + (f"first success {v:.3f}s after the new pod was Ready" if v is not None else "never recovered")
                + f"; {len(fails)} failed after the delete")
        rounds.append({"round": r + 1, "old_pod": old, "new_pod": new, "delete_to_ready_s": t_ready - t_del,
                       "watch_error": watch.error, "tools": tools, "raw": res["results"]})
    s = {"first_success_after_ready_s": {
        t: summary([r["tools"][t]["first_success_after_ready_s"] for r in rounds]) for t in FORWARDERS},
        "recovered": {t: sum(1 for r in rounds if r["tools"][t]["recovered"]) for t in FORWARDERS},
        "tender_reported_new_pod_after_ready_s": summary(
            [r["tools"]["tender"].get("tender_reported_new_pod_after_ready_s") for r in rounds]),
        "rounds": len(rounds)}
    return {"interval_s": cfg.delete_probe_interval, "never_window_s": cfg.never_window, "rounds": rounds,
            "summary": s}


def _wait_new_ready(watch: kube.PodWatch, old: str, app: str, timeout: float) -> tuple[str, float]:
    """The replacement pod (label app=APP) and when the watch first saw it Ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = {p: t for p, t in list(watch.ready_at.items())
                 if p != old and p not in watch.terminating_at and watch.labels.get(p, {}).get("app") == app}
        if fresh:
            pod = min(fresh, key=fresh.get)
            return pod, fresh[pod]
        if watch.error:
            raise RuntimeError(f"pod watch failed: {watch.error}")
        time.sleep(0.01)
    raise TimeoutError("no new pod turned Ready")


def _hostname(port: int | None, timeout: float = 3.0) -> str | None:
    """/hostname through a port on a new connection; None on any failure."""
    if port is None:
        return None
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET /hostname HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    return body.decode(errors="replace").strip()


def _answers(port: int | None, pod: str) -> bool:
    return _hostname(port) == pod


# ====================================================================== 5. scale
def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports below the ephemeral range."""
    ports: list[int] = []
    start = random.randint(20000, 26000)
    p = start
    while len(ports) < n and p < 32000:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
                ports.append(p)
            except OSError:
                pass
        p += 1
    if len(ports) < n:
        raise RuntimeError("not enough free ports in 20000-32000")
    return ports


def write_profiles(path: Path, n: int, w: Workloads, ports: list[int]) -> list[dict[str, Any]]:
    """n profiles spread round-robin over both clusters, both namespaces, svc/ and deploy/.

    The first profile (p000: svc/w0 in tender-a) is the start-up scenario's.
    """
    combos = [(ctx, ns, kind, i) for ctx in ("tender-a", "tender-b") for ns in w.scale_ns
              for kind in ("svc", "deploy") for i in (0, 1)]
    profiles = []
    lines = ["version: 1", "profiles:"]
    for k in range(n):
        ctx, ns, kind, i = combos[k % len(combos)]
        remote = 80 if kind == "svc" else 8080
        name = f"p{k:03d}"
        profiles.append({"name": name, "context": ctx, "namespace": ns, "target": f"{kind}/w{i}",
                         "local": ports[k], "remote": remote})
        lines += [f"  - name: {name}", f"    context: {ctx}", f"    namespace: {ns}",
                  f"    target: {kind}/w{i}", f'    ports: ["{ports[k]}:{remote}"]']
    path.write_text("\n".join(lines) + "\n")
    return profiles


def tray_idle(cfg: Config, workdir: Path, w: Workloads, kubeconfig: str, log: Log) -> dict[str, Any]:
    """The tray's own idle cost: ``tender tray`` (the D-Bus item, from ``.venv-user``) on the hermetic
    xfce4-panel desktop of the tests, with ``cfg.scale_forwards`` autostart profiles active.

    Measures the tray process's CPU (% of one core), RSS and threads over ``cfg.idle_seconds``
    once the menu's first line says every forward is active, and counts the D-Bus signals the item
    sent meanwhile (a timer-driven redraw would show as a steady stream of them).
    """
    from tests.ui.harness.app import TrayApp
    from tests.ui.harness.desktop import Desktop

    n = cfg.scale_forwards
    path = workdir / f"tray-profiles-{n}.yaml"
    profiles = write_profiles(path, n, w, free_ports(n))
    path.write_text(path.read_text().replace('"]\n', '"]\n    autostart: true\n'))
    out: dict[str, Any] = {"forwards": n, "idle_s": cfg.idle_seconds}
    with Desktop(notifications="xfce4-notifyd") as desktop:
        app = TrayApp(desktop, workdir / "tray-home", kubeconfig, path, venv="user").start()
        try:
            deadline = time.monotonic() + 180
            first = ""
            while time.monotonic() < deadline:
                first = app.menu.layout().children[0].label
                if first == f"{n} active":
                    break
                time.sleep(1.0)
            out["first_line"] = first
            log(f"tray: menu says {first!r} {time.monotonic() - (deadline - 180):.1f}s after the item appeared")
            time.sleep(3.0)
            pid = app.proc.pid
            revision0 = _menu_revision(app.menu)
            s0 = proc_stats(pid)
            time.sleep(cfg.idle_seconds)
            s1 = proc_stats(pid)
            out["tray"] = {
                "seconds": s1["t"] - s0["t"],
                "cpu_pct_of_one_core": 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / (s1["t"] - s0["t"]),
                "rss_mb": s1["rss_mb"], "threads": s1["threads"],
                # dbusmenu's layout revision: it grows only when the menu's structure changed.
                "menu_revision_change": _menu_revision(app.menu) - revision0,
            }
            log(f"tray idle {out['tray']['seconds']:.0f}s with {n} forwards: CPU "
                f"{out['tray']['cpu_pct_of_one_core']:.2f}% RSS {s1['rss_mb']:.0f} MB threads {s1['threads']}")
        finally:
            app.stop()
    return out


def _menu_revision(menu: Any) -> int:
    """The item's dbusmenu layout revision (GetLayout's first value), through the harness's connection."""
    from tests.ui.harness.dbusmenu import MENU

    return int(menu.bus.call(menu.service, menu.menu_path, MENU, "GetLayout", "iias", [0, 0, []])[0])


def expected_watches(profiles: list[dict[str, Any]]) -> dict[str, int]:
    """(cluster, resource) -> number of distinct (cluster, namespace, kind) keys the profiles need."""
    keys = set()
    for p in profiles:
        kind = {"svc": "services", "deploy": "deployments"}[p["target"].split("/")[0]]
        keys.add((p["context"], p["namespace"], "pods"))
        keys.add((p["context"], p["namespace"], kind))
    out: dict[str, int] = {}
    for ctx, _, res in keys:
        out[f"{ctx} {res}"] = out.get(f"{ctx} {res}", 0) + 1
    return out


RELEVANT = ("pods", "services", "deployments", "replicasets", "statefulsets", "daemonsets", "endpoints",
            "endpointslices")


def _split_requests(deltas: dict[str, int]) -> dict[str, Any]:
    """Request deltas: those a forwarder could have made vs everything else.

    A forwarder's requests are namespace-scoped (LIST/WATCH of one
    namespace's pods, services, ...) or name one object (GET, scope
    "resource"); cluster-scoped ones come from the control plane itself
    (e.g. kube-apiserver's Service IP repair loop LISTs all services every
    3 minutes) and are kept under "other".
    """
    relevant = {k: v for k, v in deltas.items()
                if k.split("/")[1] in RELEVANT and k.split("/")[2] in ("namespace", "resource")}
    lg = {k: v for k, v in relevant.items() if k.split("/")[0] in ("LIST", "GET")}
    return {"relevant": relevant, "relevant_list_get": sum(lg.values()),
            "other": {k: v for k, v in deltas.items() if k not in relevant}}


def scale(cfg: Config, clusters: list[Cluster], w: Workloads, workdir: Path, log: Log) -> dict[str, Any]:
    apis = {c.context: kube.Api(c) for c in clusters}
    api_ports = {c.context: kube.Api(c).port for c in clusters}
    n = cfg.scale_forwards
    ports = free_ports(n)
    path = workdir / f"profiles-{n}.yaml"
    profiles = write_profiles(path, n, w, ports)
    kubeconfig = clusters[0].kubeconfig
    out: dict[str, Any] = {"forwards": n, "profiles_file": str(path), "idle_s": cfg.idle_seconds}

    # A control window first: what the clusters do on their own, with no forwarder.
    if cfg.control_seconds > 0:
        snap0 = {ctx: kube.scrape(api) for ctx, api in apis.items()}
        time.sleep(cfg.control_seconds)
        snap1 = {ctx: kube.scrape(api) for ctx, api in apis.items()}
        out["control"] = {"seconds": cfg.control_seconds,
                          "requests": {ctx: _split_requests(kube.request_deltas(snap0[ctx], snap1[ctx]))
                                       for ctx in apis}}
    base = {ctx: kube.scrape(api) for ctx, api in apis.items()}

    tp = TenderProcess(["run", "--kubeconfig", kubeconfig, "--profiles", str(path), "--all"]).spawn()
    try:
        tp.wait_for(lambda s: s.active_count() + len(s.errors()) >= n, 180, f"{n} active forwards")
        all_active = max(tp.active_at.values()) - tp.t_spawn
        first_active = (tp.first_active or 0) - tp.t_spawn
        errors = tp.errors()
        log(f"scale: {tp.active_count()}/{n} active {all_active:.2f}s after spawn "
            f"(first {first_active:.2f}s), {len(errors)} in error")
        time.sleep(3.0)  # let the start-up burst settle
        pid = tp.proc.pid
        s0 = proc_stats(pid)
        m0 = {ctx: kube.scrape(api) for ctx, api in apis.items()}
        samples = [s0]
        end = time.monotonic() + cfg.idle_seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            samples.append(proc_stats(pid))
        s1 = proc_stats(pid)
        m1 = {ctx: kube.scrape(api) for ctx, api in apis.items()}
        peers = tcp_peers(pid)
        idle = {
            "seconds": s1["t"] - s0["t"],
            "cpu_s": s1["cpu_s"] - s0["cpu_s"],
            "cpu_pct_of_one_core": 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / (s1["t"] - s0["t"]),
            "rss_mb": s1["rss_mb"], "rss_mb_max": max(x["rss_mb"] for x in samples if x),
            "threads": s1["threads"], "sockets": s1["sockets"], "fds": s1["fds"],
            "samples": samples,
            "api_connections": {ctx: peers.get(p, 0) for ctx, p in api_ports.items()},
        }
        req = {ctx: kube.request_deltas(m0[ctx], m1[ctx]) for ctx in apis}
        idle["requests"] = {ctx: _split_requests(req[ctx]) for ctx in apis}
        idle["list_get_relevant_total"] = sum(v["relevant_list_get"] for v in idle["requests"].values())
        # Watches Tender holds: namespace-scoped WATCH gauges now vs before it started.
        gauges = {ctx: kube.gauge_deltas(base[ctx], m1[ctx]) for ctx in apis}
        watches: dict[str, int] = {}
        for ctx, g in gauges.items():
            for k, v in g.items():
                verb, res, scope, _ = k.split("/")
                if verb == "WATCH" and scope == "namespace":
                    watches[f"{ctx} {res}"] = v
        expected = expected_watches(profiles)
        per_key = {k: {"watches": watches.get(k, 0), "keys": expected.get(k, 0)}
                   for k in sorted(set(watches) | set(expected))}
        idle["watches"] = per_key
        idle["watches_total"] = sum(watches.values())
        idle["watch_keys"] = sum(expected.values())
        idle["max_watches_per_key"] = max((v["watches"] / v["keys"] if v["keys"] else float(v["watches"] > 0) * 99)
                                          for v in per_key.values()) if per_key else None
        idle["longrunning_deltas"] = gauges
        log(f"scale idle {idle['seconds']:.0f}s: CPU {idle['cpu_pct_of_one_core']:.2f}% RSS {idle['rss_mb']:.0f} MB "
            f"threads {idle['threads']} sockets {idle['sockets']} watches {idle['watches_total']} for "
            f"{idle['watch_keys']} keys, LIST/GET {idle['list_get_relevant_total']}")
        # Now that the idle window is over: does every forward answer?
        answered = sum(1 for p in profiles if _answers_any(p["local"]))
        log(f"scale: {answered}/{n} forwards answered /hostname")
        out["tender"] = {"all_active_s": all_active, "first_active_s": first_active,
                         "active": tp.active_count(), "errors": [e.get("status_reason") for e in errors][:10],
                         "list_events": tp.list_events, "list_event_bytes": tp.list_bytes,
                         "status_events": tp.status_events, "idle": idle, "answered": answered}
    finally:
        rc = tp.stop()
        out.setdefault("tender", {})["exit_code"] = rc
        out["tender"]["stderr_tail"] = tp.err.text(20)

    if KFTRAY is not None:
        out["kftray"] = _kftray_scale(cfg, clusters, w, workdir, apis, api_ports, log)

    # The same idle measurements for a few kubectl port-forwards (one process each).
    out["kubectl"] = {}
    for tool in ("kubectl-ws", "kubectl-spdy"):
        out["kubectl"][tool] = _kubectl_scale(cfg, clusters, profiles[: cfg.kubectl_scale], tool, apis, log)
    return out


def _answers_any(port: int | None) -> bool:
    return bool(_hostname(port))


def _kftray_scale(cfg: Config, clusters: list[Cluster], w: Workloads, workdir: Path, apis: dict[str, kube.Api],
                  api_ports: dict[str, int], log: Log) -> dict[str, Any]:
    """Tender's scale measurements for kftray's engine: the same n forwards (fresh local ports)
    in one harness process, started as one batch as kftray starts a selection.

    "all_listening_s": spawn to the harness's ``ready`` line (every forward listening or
    failed); then the idle window as for Tender: CPU, RSS, threads, sockets, connections to
    each API server, request deltas and the WATCH gauges against their value before the
    harness started; finally how many forwards answer ``/hostname``.  Every forward that did
    not start is counted in "failed" with its error.
    """
    n = cfg.scale_forwards
    by_ctx = {c.context: c for c in clusters}
    profiles = write_profiles(workdir / f"kftray-profiles-{n}.yaml", n, w, free_ports(n))
    forwards = [{"context": p["context"], "namespace": p["namespace"], "target": p["target"],
                 "remote": kftray_remote(p["target"], p["remote"]), "local": p["local"]} for p in profiles]
    base = {ctx: kube.scrape(api) for ctx, api in apis.items()}
    assert KFTRAY is not None
    kf = KftrayForward(KFTRAY, by_ctx["tender-a"].kubeconfig, forwards=forwards, workdir=workdir).spawn()
    out: dict[str, Any] = {"forwards": n}
    try:
        kf.wait_ready(300, require_all=False)
        out.update({"all_listening_s": kf.t_ready - kf.t_spawn, "harness_ready_s": kf.ready_seconds,
                    "listening": len(kf.listening), "failed": len(kf.errors),
                    "errors": sorted(set(kf.errors.values()))[:10]})
        log(f"scale kftray: {len(kf.listening)}/{n} listening {out['all_listening_s']:.2f}s after spawn, "
            f"{len(kf.errors)} failed")
        time.sleep(3.0)
        assert kf.proc is not None
        pid = kf.proc.pid
        s0 = proc_stats(pid)
        m0 = {ctx: kube.scrape(api) for ctx, api in apis.items()}
        samples = [s0]
        end = time.monotonic() + cfg.idle_seconds
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            samples.append(proc_stats(pid))
        s1 = proc_stats(pid)
        m1 = {ctx: kube.scrape(api) for ctx, api in apis.items()}
        if s0 is None or s1 is None:
            raise RuntimeError(f"kftray exited during the idle window (rc {kf.proc.poll()}):\n{kf.err.text()}")
        peers = tcp_peers(pid)
        idle: dict[str, Any] = {
            "seconds": s1["t"] - s0["t"], "cpu_s": s1["cpu_s"] - s0["cpu_s"],
            "cpu_pct_of_one_core": 100.0 * (s1["cpu_s"] - s0["cpu_s"]) / (s1["t"] - s0["t"]),
            "rss_mb": s1["rss_mb"], "rss_mb_max": max(x["rss_mb"] for x in samples if x),
            "threads": s1["threads"], "sockets": s1["sockets"], "fds": s1["fds"],
            "api_connections": {ctx: peers.get(p, 0) for ctx, p in api_ports.items()},
            "requests": {ctx: _split_requests(kube.request_deltas(m0[ctx], m1[ctx])) for ctx in apis},
        }
        idle["list_get_relevant_total"] = sum(v["relevant_list_get"] for v in idle["requests"].values())
        gauges = {ctx: kube.gauge_deltas(base[ctx], m1[ctx]) for ctx in apis}
        watches: dict[str, int] = {}
        for ctx, g in gauges.items():
            for k, v in g.items():
                verb, res, scope, _ = k.split("/")
                if verb == "WATCH" and scope == "namespace":
                    watches[f"{ctx} {res}"] = v
        expected = expected_watches(profiles)
        idle["watches"] = {k: {"watches": watches.get(k, 0), "keys": expected.get(k, 0)}
                           for k in sorted(set(watches) | set(expected))}
        idle["watches_total"] = sum(watches.values())
        idle["watch_keys"] = sum(expected.values())
        idle["longrunning_deltas"] = gauges
        out["idle"] = idle
        log(f"scale kftray idle {idle['seconds']:.0f}s: CPU {idle['cpu_pct_of_one_core']:.2f}% "
            f"RSS {idle['rss_mb']:.0f} MB threads {idle['threads']} sockets {idle['sockets']} "
            f"API connections {sum(idle['api_connections'].values())} watches {idle['watches_total']} for "
            f"{idle['watch_keys']} keys, LIST/GET {idle['list_get_relevant_total']}")
        out["answered"] = sum(1 for i, p in enumerate(profiles) if i in kf.listening and _answers_any(kf.listening[i]))
        log(f"scale kftray: {out['answered']}/{n} forwards answered /hostname")
    finally:
        out["exit_code"] = kf.stop()
        out["stderr_tail"] = kf.err.text(20)
    return out


def _kubectl_scale(cfg: Config, clusters: list[Cluster], profiles: list[dict[str, Any]], tool: str,
                   apis: dict[str, kube.Api], log: Log) -> dict[str, Any]:
    by_ctx = {c.context: c for c in clusters}
    base = {ctx: kube.scrape(api) for ctx, api in apis.items()}
    fws: list[KubectlForward] = []
    t0 = time.monotonic()
    try:
        for p in profiles:
            c = by_ctx[p["context"]]
            fws.append(KubectlForward(c.kubeconfig, c.context, p["namespace"], p["target"], p["remote"],
                                      websockets=tool == "kubectl-ws").spawn())
        for fw in fws:
            fw.wait_ready(60)
        all_ready = max(fw.t_ready for fw in fws) - t0
        time.sleep(2.0)
        s0 = [proc_stats(fw.proc.pid) for fw in fws]
        m0 = {ctx: kube.scrape(api) for ctx, api in apis.items()}
        time.sleep(cfg.kubectl_idle_seconds)
        s1 = [proc_stats(fw.proc.pid) for fw in fws]
        m1 = {ctx: kube.scrape(api) for ctx, api in apis.items()}
        secs = s1[0]["t"] - s0[0]["t"]
        k = len(fws)
        res = {
            "processes": k, "all_forwarding_s": all_ready, "idle_s": secs,
            "cpu_pct_of_one_core_total": 100.0 * sum(b["cpu_s"] - a["cpu_s"] for a, b in zip(s0, s1)) / secs,
            "rss_mb_total": sum(b["rss_mb"] for b in s1), "threads_total": sum(b["threads"] for b in s1),
            "sockets_total": sum(b["sockets"] for b in s1),
            "requests": {ctx: _split_requests(kube.request_deltas(m0[ctx], m1[ctx])) for ctx in apis},
            "longrunning_deltas": {ctx: kube.gauge_deltas(base[ctx], m1[ctx]) for ctx in apis},
        }
        res["per_forward"] = {"cpu_pct": res["cpu_pct_of_one_core_total"] / k, "rss_mb": res["rss_mb_total"] / k,
                              "threads": res["threads_total"] / k, "sockets": res["sockets_total"] / k}
        log(f"scale {tool} x{k}: all forwarding {all_ready:.2f}s; idle CPU {res['cpu_pct_of_one_core_total']:.2f}% "
            f"RSS {res['rss_mb_total']:.0f} MB threads {res['threads_total']} sockets {res['sockets_total']}")
        return res
    finally:
        for fw in fws:
            fw.stop()


# ====================================================================== 6. start-up
def startup(cfg: Config, clusters: list[Cluster], w: Workloads, workdir: Path, log: Log) -> dict[str, Any]:
    n = cfg.scale_forwards
    ports = free_ports(n)
    path = workdir / f"profiles-startup-{n}.yaml"
    profiles = write_profiles(path, n, w, ports)
    first = profiles[0]
    kubeconfig = clusters[0].kubeconfig
    a = clusters[0]
    variants = ("tender-all", "tender-one", "kubectl-ws", "kubectl-spdy") + (("kftray",) if KFTRAY else ())
    # Start-up is mostly imports: the tender a user installs (pipx/pip), not the dev venv's.
    binary, binary_note = user_tender()
    log(f"start-up: tender is {binary} ({binary_note})")
    rounds = []
    for r in range(cfg.startup_rounds):
        order = rotated(variants, r)
        tools: dict[str, Any] = {}
        for v in order:
            if v.startswith("tender"):
                args = ["run", "--kubeconfig", kubeconfig, "--profiles", str(path)]
                args += ["--all"] if v == "tender-all" else [first["name"]]
                tp = TenderProcess(args, name=v, binary=binary).spawn()
                try:
                    tp.wait_for(lambda s: s.first_active is not None, 120, "first active forward")
                    rec = {"first_active_s": tp.first_active - tp.t_spawn,
                           "first_is_first_profile": tp.events and next(
                               ev for _, ev in tp.events if ev.get("status") == "active").get("profile") == first["name"]}
                    if v == "tender-all":
                        tp.wait_for(lambda s: s.active_count() + len(s.errors()) >= n, 180, "all active")
                        rec["all_active_s"] = max(tp.active_at.values()) - tp.t_spawn
                        rec["errors"] = len(tp.errors())
                        rec["list_events"] = tp.list_events
                        rec["list_event_bytes"] = tp.list_bytes
                    rec["answers"] = _answers_any(first["local"])
                finally:
                    tp.stop()
            elif v == "kftray":
                assert KFTRAY is not None
                kf = KftrayForward(KFTRAY, a.kubeconfig, a.context, first["namespace"], first["target"],
                                   kftray_remote(first["target"], first["remote"])).spawn()
                try:
                    kf.wait_ready(60)
                    rec = {"first_active_s": kf.t_ready - kf.t_spawn, "answers": _answers_any(kf.port)}
                finally:
                    kf.stop()
            else:
                fw = KubectlForward(a.kubeconfig, a.context, first["namespace"], first["target"], first["remote"],
                                    websockets=v == "kubectl-ws").spawn()
                try:
                    fw.wait_ready(60)
                    rec = {"first_active_s": fw.t_ready - fw.t_spawn, "answers": _answers_any(fw.port)}
                finally:
                    fw.stop()
            tools[v] = rec
            log(f"start-up round {r + 1}/{cfg.startup_rounds} {v}: first forward "
                f"{rec['first_active_s']:.3f}s" + (f", all {rec['all_active_s']:.2f}s" if "all_active_s" in rec else ""))
        rounds.append({"round": r + 1, "order": order, "tools": tools})
    s = {"first_active_s": {v: summary([r["tools"][v]["first_active_s"] for r in rounds]) for v in variants},
         "all_active_s": summary([r["tools"]["tender-all"].get("all_active_s") for r in rounds])}
    return {"profiles": n, "first_profile": first, "tender": binary, "tender_note": binary_note,
            "rounds": rounds, "summary": s}


# ====================================================================== proxy
PROXY_TOOLS = ("forward", "proxy-http", "proxy-socks5")


def proxy(cfg: Config, cluster: Cluster, namespace: str, log: Log) -> dict[str, Any]:
    """The cluster proxy against a direct forward of the same Service (issue 14).

    ``forward``: ``tender forward svc/data :80`` (kubectl's one-pod rule
    would be the same pod; the Service has one replica).  ``proxy-http``:
    absolute-URI GETs to ``http://data.NS:80`` through ``tender proxy``;
    ``proxy-socks5``: SOCKS5 CONNECTs to ``data.NS:80`` (the proxy resolves the
    name).  Each request opens a new connection, so the proxy's handshake and
    name resolution are in every sample.  Sequential requests give p50
    latency; the concurrency job gives requests per second.
    """
    cluster.apply(service_manifest("data"), namespace)
    host = f"data.{namespace}"
    fw = TenderForward(cluster.kubeconfig, cluster.context, namespace, "svc/data", 80).start()
    px = TenderProxy(cluster.kubeconfig, cluster.context).start()
    ways: dict[str, tuple[Forwarder, dict[str, Any] | None]] = {
        "forward": (fw, None),
        "proxy-http": (px, {"proxy": "http", "host": host, "port": 80}),
        "proxy-socks5": (px, {"proxy": "socks5", "host": host, "port": 80}),
    }
    procs = max(1, min(cfg.conc_procs, cfg.conc_clients))
    split = [cfg.conc_clients // procs + (1 if i < cfg.conc_clients % procs else 0) for i in range(procs)]
    rounds = []
    try:
        for r in range(cfg.rounds):
            order = rotated(PROXY_TOOLS, r)
            tools: dict[str, Any] = {}
            for tool in order:
                way, via = ways[tool]
                assert way.port is not None
                run_load({"kind": "latency", "port": way.port, "count": max(1, cfg.warmup_requests),
                          "via": via}, timeout=60)
                lat = measured(way, lambda: run_load({"kind": "latency", "port": way.port,
                                                      "count": cfg.latency_requests, "via": via}, timeout=600))
                start_at = time.monotonic() + 1.0
                jobs = [{"kind": "concurrency", "port": way.port, "clients": k, "requests": cfg.conc_requests,
                         "start_at": start_at, "timeout": 15.0, "via": via} for k in split]
                conc = {"workers": run_load_parallel(jobs, timeout=600)}
                ms = [x for w in conc["workers"] for x in w["ms"]]
                errors = lat["errors"] + [e for w in conc["workers"] for e in w["errors"]]
                t0 = min(w["t_start"] for w in conc["workers"])
                t1 = max(w["t_end"] for w in conc["workers"])
                tools[tool] = {"p50_ms": percentile(lat["ms"], 50), "p99_ms": percentile(lat["ms"], 99),
                               "req_per_s": len(ms) / (t1 - t0) if t1 > t0 else None,
                               "errors": len(errors), "error_samples": errors[:5],
                               "forwarder_cpu_s": lat.get("forwarder_cpu_s")}
                log(f"proxy round {r + 1}/{cfg.rounds} {tool}: p50 {_fmt(tools[tool]['p50_ms'], 2)} ms, "
                    f"{_fmt(tools[tool]['req_per_s'])} req/s, {len(errors)} errors")
            rounds.append({"round": r + 1, "order": order, "tools": tools})
    finally:
        fw.stop()
        px.stop()
    s = {"p50_ms": per_tool_summary(rounds, "p50_ms", PROXY_TOOLS),
         "req_per_s": per_tool_summary(rounds, "req_per_s", PROXY_TOOLS),
         "errors": {t: sum(r["tools"][t]["errors"] for r in rounds) for t in PROXY_TOOLS}}
    return {"rounds": rounds, "summary": s,
            "ratio_vs_forward": {"p50_ms": ratios(s["p50_ms"], "forward"),
                                 "req_per_s": ratios(s["req_per_s"], "forward")}}
