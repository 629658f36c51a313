"""The ``tender`` verbs on a running engine, typed as a user types them (issue 13, part 2).

Each test is one user session: a short, fresh ``XDG_RUNTIME_DIR`` in /tmp
(the engine's socket and claim live there), its own config and state dirs,
and a real ``tender daemon`` on the test cluster's kubeconfig.  Every
``tender`` command runs as a subprocess, as from a shell; what is asserted is
what it prints and how it exits.  Waiting for a forward to turn ``active`` is
done through the API itself (:class:`tray.api.client.EngineClient`), which
costs less than a ``tender ls`` a tenth of a second.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.clusterlib import ROOT, Cluster, deployment_manifest
from tests.integration.daemon import Daemon
from tests.integration.engine import http_request, hostname, port_refuses, service_manifest, wait_for
from tray.api.client import EngineClient
from tray.cli.verbs import human_bytes

pytestmark = pytest.mark.cluster

UPLOAD = 100_000  # bytes one upload sends through a forward
DOWNLOAD = 2_000_000  # bytes one download asks for
ONE_LINE = re.compile(r"tender: [^\n]+\n")  # one line on stderr, no traceback


class Proc:
    """A long-running ``tender`` subprocess whose stdout lines are read as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tray", *args], cwd=ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # type: ignore[arg-type]  # EOF

    def line_matching(self, pattern: str, timeout: float) -> re.Match[str]:
        """The next stdout line matching ``pattern`` (lines before it are skipped, and kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in {timeout:.0f}s; got {self.seen}") from None
            if line is None:
                self.lines.put(None)  # type: ignore[arg-type]
                raise AssertionError(f"exited ({self.proc.poll()}) before a line matching {pattern!r}; "
                                     f"got {self.seen}")
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def wait(self, timeout: float = 30) -> tuple[int, str, str]:
        """Exit code, the rest of stdout, all of stderr."""
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"tender did not exit within {timeout:.0f}s; stdout: {self.seen}") from None
        rest = []
        while (line := self.lines.get(timeout=5)) is not None:
            rest.append(line)
        self.seen += rest
        assert self.proc.stderr is not None
        return code, "\n".join(rest), self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class User(Daemon):
    """One user's session (runtime dir, config, profiles file, environment: :class:`Daemon`); runs ``tender`` in it."""

    def tender(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``tender ARGS`` to its end."""
        return super().tender(*args, timeout=timeout, **env)

    def ok(self, *args: str, timeout: float = 60) -> str:
        """``tender ARGS`` that must exit 0; its stdout."""
        done = self.tender(*args, timeout=timeout)
        assert done.returncode == 0, f"tender {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def popen(self, *args: str) -> Proc:
        return Proc(list(args), self.env)

    def ls(self) -> list[dict]:
        """``tender ls -o json``'s forwards."""
        return json.loads(self.ok("ls", "-o", "json"))["forwards"]

    def forward(self, id_: str) -> dict:
        with EngineClient(self.socket, timeout=10) as c:
            return c.get(f"/v1/forwards/{id_}")

    def wait_status(self, id_: str, status: str, timeout: float = 30) -> dict:
        last: list[dict] = []

        def check() -> dict | None:
            last[:] = [self.forward(id_)]
            return last[0] if last[0]["status"] == status else None

        try:
            return wait_for(check, timeout, f"forward {id_[:8]} to be {status}", interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last: {last[0]['status']} {last[0]['status_reason']!r}") from None

    def detach(self, *args: str) -> dict:
        """``tender forward ARGS --detach`` (one port) on the test cluster; the forward, once active."""
        out = self.ok("forward", *args, "--detach")
        m = re.search(r"stop with: tender stop ([0-9a-f]{8})$", out, re.M)
        assert m, out
        [f] = [f for f in self.ls() if f["session_id"].startswith(m.group(1))]
        return self.wait_status(f["session_id"], "active")


@pytest.fixture
def user(cluster: Cluster, tmp_path: Path) -> Iterator[User]:
    with User(cluster, tmp_path) as u:
        yield u


@pytest.fixture
def engine(user: User) -> User:
    """``user`` with a ``tender daemon`` running on the test kubeconfig."""
    user.start()
    return user


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> list[str]:
    """Deployment ``web`` (netexec on 8080, named ``http``) behind Service ``web`` (port 80)."""
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    return cluster.wait_ready(namespace, "app=web")


def one_line(stderr: str) -> str:
    assert ONE_LINE.fullmatch(stderr), f"not one 'tender: ...' line: {stderr!r}"
    return stderr.strip()


def columns(table: str) -> list[dict[str, str]]:
    """The rows of a ``tender ls`` table as {HEADER: cell}; cells are cut where the header's columns start."""
    head, *rows = table.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", head)]
    names = head.split()
    out = []
    for row in rows:
        cells = [row[a:b].strip() for a, b in zip(starts, starts[1:] + [len(row) + 1])]
        out.append(dict(zip(names, cells)))
    return out


# ---------------------------------------------------------------- ls
def test_ls_without_an_engine_and_empty(user: User) -> None:
    for verb in (["ls"], ["ls", "-o", "json"], ["stop", "--all"], ["events"], ["logs", "svc/web"],
                 ["start", "--all"], ["dashboard", "--print-url"]):
        done = user.tender(*verb)
        assert done.returncode == 1, (verb, done)
        assert done.stdout == ""
        line = one_line(done.stderr)
        assert "no Tender engine is running" in line and "tender daemon" in line, line

    user.start()
    done = user.tender("ls")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "No forwards.\n")
    assert json.loads(user.ok("ls", "-o", "json")) == {"forwards": []}
    assert yaml.safe_load(user.ok("ls", "-o", "yaml")) == {"forwards": []}


def test_ls_shows_status_pod_address_connections_bytes_age_reason(cluster: Cluster, namespace: str, web: list[str],
                                                                   engine: User) -> None:
    base = ["--context", cluster.context, "-n", namespace]
    busy = engine.detach(*base, "svc/web", ":80")
    idle = engine.detach(*base, "deploy/web", ":8080", "--address", "localhost")
    done = engine.tender("forward", *base, "svc/nothing", ":80", "--detach")
    assert done.returncode == 1, done  # nothing can forward: as in-process; left listed, for 'tender retry'
    missing = done.stdout
    assert re.search(rf"^{cluster.context}: svc/nothing \d+ -> 80: error: svc/nothing not found in namespace "
                     rf"{namespace}$", missing, re.M), missing
    port = busy["local_port"]

    # Known bytes through one forward: an upload and a download, one connection each.
    status, body = http_request(port, "/upload", method="POST", body=b"u" * UPLOAD)
    assert (status, body) == (200, str(UPLOAD).encode())
    status, body = http_request(port, f"/bytes?n={DOWNLOAD}")
    assert status == 200 and len(body) == DOWNLOAD
    wait_for(lambda: engine.forward(busy["session_id"])["connections_total"] == 2
             and engine.forward(busy["session_id"])["connections"] == 0, 10, "both connections counted and closed")

    forwards = engine.ls()
    assert [f["target"] for f in forwards] == ["svc/web", "deploy/web", "svc/nothing"]  # start order
    b, i, m = forwards
    assert (b["status"], b["pod_name"], b["address"], b["local_port"]) == ("active", web[0], "127.0.0.1", port)
    assert (b["connections"], b["connections_total"]) == (0, 2)
    assert UPLOAD <= b["bytes_out"] < UPLOAD + 1000, b["bytes_out"]  # the body and the request heads
    assert DOWNLOAD <= b["bytes_in"] < DOWNLOAD + 1000, b["bytes_in"]
    assert (i["connections_total"], i["bytes_in"], i["bytes_out"], i["address"]) == (0, 0, 0, "localhost")
    assert (m["status"], m["pod_name"]) == ("error", "")
    assert m["status_reason"] == f"svc/nothing not found in namespace {namespace}"
    for f in forwards:
        assert f["cluster_id"] == cluster.context and f["namespace"] == namespace and f["profile"] is None
        assert re.fullmatch(r"[0-9a-f-]{36}", f["session_id"])
    assert yaml.safe_load(engine.ok("ls", "-o", "yaml")) == {"forwards": engine.ls()}  # nothing moves meanwhile

    text = columns(engine.ok("ls"))
    assert [list(r) for r in text[:1]] == [["ID", "NAME", "STATUS", "LOCAL", "REMOTE", "POD", "AGE"]]
    assert [(r["ID"], r["NAME"], r["STATUS"], r["LOCAL"], r["POD"]) for r in text] == [
        (b["session_id"][:8], "svc/web", "active", f"127.0.0.1:{port}", web[0]),
        (i["session_id"][:8], "deploy/web", "active", f"localhost:{i['local_port']}", web[0]),
        (m["session_id"][:8], "svc/nothing", "error", f"127.0.0.1:{m['local_port']}", "-")]
    assert [r["REMOTE"] for r in text] == ["8080", "8080", "80"]  # the pod's port once chosen, else as asked
    assert all(re.fullmatch(r"\d+[sm]", r["AGE"]) for r in text), text  # seconds old (minutes on a slow day)

    wide = columns(engine.ok("ls", "-o", "wide"))
    assert list(wide[0]) == ["ID", "NAME", "STATUS", "LOCAL", "REMOTE", "POD", "AGE", "CONTEXT", "NAMESPACE",
                             "TARGET", "GROUP", "CONNS", "IN", "OUT", "REASON"]
    assert {r["GROUP"] for r in wide} == {"-"}  # none is a namespace group's
    wb, wi, wm = wide
    assert (wb["CONNS"], wb["IN"], wb["OUT"], wb["REASON"]) == (
        "0/2", human_bytes(b["bytes_in"]), human_bytes(b["bytes_out"]), "-")
    assert re.fullmatch(r"2\.0 MB", wb["IN"]) and re.fullmatch(r"100\.\d kB", wb["OUT"]), wb
    assert (wi["CONNS"], wi["IN"], wi["OUT"]) == ("0/0", "0 B", "0 B")
    assert (wm["STATUS"], wm["REASON"]) == ("error", f"svc/nothing not found in namespace {namespace}")
    assert {(r["CONTEXT"], r["NAMESPACE"]) for r in wide} == {(cluster.context, namespace)}
    assert [r["TARGET"] for r in wide] == ["svc/web", "deploy/web", "svc/nothing"]

    # A connection open now counts as open.
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        wait_for(lambda: engine.forward(busy["session_id"])["connections"] == 1, 10, "the connection counted")
        assert columns(engine.ok("ls", "-o", "wide"))[0]["CONNS"] == "1/3"


# ---------------------------------------------------------------- stop, remove, retry
def test_stop_and_remove_by_id_prefix_name_context_profile_and_all(cluster: Cluster, namespace: str, web: list[str],
                                                                   engine: User) -> None:
    base = ["--context", cluster.context, "-n", namespace]
    engine.profiles.write_text(
        f"version: 1\nprofiles:\n  - name: shop\n    context: {cluster.context}\n    namespace: {namespace}\n"
        f"    target: deploy/web\n    ports: [':8080', ':http']\n")
    a = engine.detach(*base, "svc/web", ":80")
    b = engine.detach(*base, "deploy/web", ":8080")
    c = engine.detach("--context", f"{cluster.context}-cert", "-n", namespace, "svc/web", ":80")
    ids = lambda: [f["session_id"] for f in engine.ls()]  # noqa: E731

    # An unknown name among good ones: exit 2, one line naming it, nothing stopped.
    for verb in ("stop", "remove", "retry"):
        done = engine.tender(verb, a["session_id"], "nosuch")
        assert done.returncode == 2 and done.stdout == "", done
        assert "'nosuch'" in one_line(done.stderr)
    done = engine.tender("stop")
    assert done.returncode == 2 and "--all" in one_line(done.stderr)
    assert ids() == [a["session_id"], b["session_id"], c["session_id"]]
    assert hostname(a["local_port"]) == web[0]

    # By the whole id.
    out = engine.ok("stop", a["session_id"])
    assert out == f"forward {a['session_id'][:8]} (svc/web, 127.0.0.1:{a['local_port']}) stopped\n"
    assert ids() == [b["session_id"], c["session_id"]] and port_refuses(a["local_port"])
    # By a prefix of it.
    out = engine.ok("remove", b["session_id"][:6])
    assert out == f"forward {b['session_id'][:8]} (deploy/web, 127.0.0.1:{b['local_port']}) removed\n"
    assert ids() == [c["session_id"]] and port_refuses(b["local_port"])

    # By context: only that context's forwards.
    d = engine.detach(*base, "svc/web", ":80")
    out = engine.ok("stop", "--cluster", f"{cluster.context}-cert")
    assert out.splitlines() == [f"forward {c['session_id'][:8]} (svc/web, 127.0.0.1:{c['local_port']}) stopped"]
    assert ids() == [d["session_id"]]
    done = engine.tender("stop", "--cluster", "tender-zzz")
    assert (done.returncode, done.stdout) == (0, "") and "no forwards in context 'tender-zzz'" in done.stderr

    # By profile: its two forwards, not the others.
    started = engine.ok("start", "shop")
    assert len(started.splitlines()) == 2, started
    assert len(engine.ls()) == 3
    out = engine.ok("stop", "--profile", "shop")
    assert [line.split(" (")[1].split(",")[0] for line in out.splitlines()] == ["shop", "shop"], out
    assert ids() == [d["session_id"]]

    # A name with --cluster or --profile: they narrow the name's forwards, never add others.
    h = engine.detach("--context", f"{cluster.context}-cert", "-n", namespace, "svc/web", ":80")
    out = engine.ok("stop", "svc/web", "--cluster", f"{cluster.context}-cert")
    assert out.splitlines() == [f"forward {h['session_id'][:8]} (svc/web, 127.0.0.1:{h['local_port']}) stopped"]
    assert ids() == [d["session_id"]]
    done = engine.tender("stop", "svc/web", "--profile", "shop")
    assert done.returncode == 2 and "names no forward of profile 'shop'" in one_line(done.stderr), done
    assert ids() == [d["session_id"]]

    # By name: every forward of that name.
    e = engine.detach(*base, "svc/web", ":80")
    f = engine.detach(*base, "deploy/web", ":8080")
    out = engine.ok("stop", "svc/web")
    assert sorted(out.splitlines()) == sorted(
        f"forward {x['session_id'][:8]} (svc/web, 127.0.0.1:{x['local_port']}) stopped" for x in (d, e))
    assert ids() == [f["session_id"]]

    # --all.
    g = engine.detach(*base, "svc/web", ":80")
    out = engine.ok("stop", "--all")
    assert len(out.splitlines()) == 2 and engine.ls() == []
    assert port_refuses(f["local_port"]) and port_refuses(g["local_port"])
    done = engine.tender("stop", "--all")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "tender: no forwards\n")


def test_retry_a_forward_in_error_after_its_target_appears(cluster: Cluster, namespace: str, web: list[str],
                                                          engine: User) -> None:
    base = ["--context", cluster.context, "-n", namespace]
    good = engine.detach(*base, "svc/web", ":80")
    done = engine.tender("forward", *base, "svc/later", ":80", "--detach")
    assert done.returncode == 1, done
    out = done.stdout
    [later] = [f for f in engine.ls() if f["target"] == "svc/later"]
    later = engine.wait_status(later["session_id"], "error")
    assert later["status_reason"] == f"svc/later not found in namespace {namespace}", later
    assert out.splitlines() == [
        f"{cluster.context}: svc/later {later['local_port']} -> 80: error: svc/later not found in namespace "
        f"{namespace}",
        f"Left in the engine in error (see 'tender ls'); try again with: tender retry {later['session_id'][:8]}; "
        f"drop with: tender remove {later['session_id'][:8]}"]

    # Still missing: retried, and in error again.
    assert engine.ok("retry", later["session_id"][:8]) == f"forward {later['session_id'][:8]} (svc/later) retrying\n"
    assert engine.wait_status(later["session_id"], "error")["status_reason"] == later["status_reason"]
    # A forward that is not in error is left as it is.
    assert engine.ok("retry", good["session_id"]) == \
        f"forward {good['session_id'][:8]} (svc/web) is active, not in error: left as it is\n"

    cluster.apply(service_manifest("later", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    assert engine.ok("retry", "svc/later") == f"forward {later['session_id'][:8]} (svc/later) retrying\n"
    now = engine.wait_status(later["session_id"], "active")
    assert now["local_port"] == later["local_port"]  # the same local port as before
    assert hostname(now["local_port"]) == web[0]
    [row] = [r for r in columns(engine.ok("ls")) if r["NAME"] == "svc/later"]
    assert (row["STATUS"], row["POD"]) == ("active", web[0])


# ---------------------------------------------------------------- start
def test_start_profiles_by_name_group_and_all(cluster: Cluster, namespace: str, web: list[str], user: User) -> None:
    user.profiles.write_text(
        "version: 1\nprofiles:\n"
        f"  - name: api\n    group: shop\n    context: {cluster.context}\n    namespace: {namespace}\n"
        "    target: svc/web\n    ports: [':80']\n"
        f"  - name: app\n    group: shop\n    context: {cluster.context}\n    namespace: {namespace}\n"
        "    target: deploy/web\n    ports: [':8080', ':http']\n"
        f"  - name: solo\n    context: {cluster.context}\n    namespace: {namespace}\n"
        "    target: deploy/web\n    ports: [':8080']\n")
    user.start()  # the file given with --profiles
    done = user.tender("start")
    assert done.returncode == 2 and "--group" in one_line(done.stderr)

    # Unknown profile or group, alone or beside a good one: exit 2 naming it, nothing starts.
    for args, word in ((["nosuch"], "nosuch"), (["api", "nosuch"], "nosuch"), (["--group", "nogroup"], "nogroup")):
        done = user.tender("start", *args)
        assert done.returncode == 2 and done.stdout == "", done
        assert word in one_line(done.stderr), done.stderr
    assert user.ls() == []

    out = user.ok("start", "api")
    [line] = out.splitlines()
    assert re.fullmatch(r"forward [0-9a-f]{8} \(api: svc/web 80\) starting", line), line
    [api] = user.ls()
    api = user.wait_status(api["session_id"], "active")
    assert (api["profile"], api["name"], api["pod_name"]) == ("api", "api", web[0])

    # Twice: nothing new starts.
    done = user.tender("start", "api")
    assert (done.returncode, done.stdout) == (0, "")
    assert "already run" in one_line(done.stderr)
    assert [f["session_id"] for f in user.ls()] == [api["session_id"]]

    out = user.ok("start", "--group", "shop")
    assert sorted(re.sub(r"^forward [0-9a-f]{8} ", "", line) for line in out.splitlines()) == [
        "(app: deploy/web 8080) starting", "(app: deploy/web http) starting"], out
    out = user.ok("start", "--all")
    assert [re.sub(r"^forward [0-9a-f]{8} ", "", line) for line in out.splitlines()] == [
        "(solo: deploy/web 8080) starting"], out
    assert user.tender("start", "--all").stdout == ""
    forwards = user.ls()
    assert sorted((f["profile"], str(f["remote_port"])) for f in forwards) == [
        ("api", "80"), ("app", "8080"), ("app", "http"), ("solo", "8080")]
    for f in forwards:
        user.wait_status(f["session_id"], "active")

    # A profile that cannot start (its context is not in the kubeconfig): one line naming it, exit 1.
    user.profiles.write_text(user.profiles.read_text() + f"  - name: elsewhere\n    context: tender-zzz\n"
                                                        f"    namespace: {namespace}\n    target: svc/web\n"
                                                        "    ports: [':80']\n")
    done = user.tender("start", "elsewhere")
    assert (done.returncode, done.stdout) == (1, ""), done
    line = one_line(done.stderr)
    assert line.startswith("tender: error: profile elsewhere could not start: ") and '"tender-zzz"' in line, line
    assert len(user.ls()) == 4


# ---------------------------------------------------------------- events, logs
def test_events_are_json_lines_and_end_with_the_engine(cluster: Cluster, namespace: str, web: list[str],
                                                       engine: User) -> None:
    events = engine.popen("events")
    interrupted = engine.popen("events")
    try:
        first = json.loads(events.line_matching(r".", 15).string)
        assert first == {"event": "list", "forwards": []}
        interrupted.line_matching(r'"event": "list"', 15)

        f = engine.detach("--context", cluster.context, "-n", namespace, "svc/web", ":80")
        statuses = []  # the forward's status in each event that carries it: a list on start, then status events
        while "active" not in statuses:
            obj = json.loads(events.line_matching(r".", 15).string)  # every line is one JSON object
            assert obj["event"] in ("list", "status", "stats"), obj
            if obj["event"] == "list":
                statuses += [x["status"] for x in obj["forwards"] if x["session_id"] == f["session_id"]]
            if obj["event"] == "status" and obj["session_id"] == f["session_id"]:
                statuses.append(obj["status"])
                assert obj["target"] == "svc/web" and obj["namespace"] == namespace
        assert statuses[0] == "starting" and statuses[-1] == "active", statuses
        assert obj["pod_name"] == web[0] and obj["local_port"] == f["local_port"]

        # Ctrl-C: exit 0, nothing on stderr.
        interrupted.proc.send_signal(signal.SIGINT)
        code, _, err = interrupted.wait()
        assert (code, err) == (0, "")

        # The engine stops: exit 1, one line.
        for proc in engine.procs:
            proc.terminate()
        code, rest, err = events.wait()
        for line in rest.splitlines():
            json.loads(line)
        assert code == 1
        assert "the engine closed the stream" in one_line(err), err
    finally:
        events.kill()
        interrupted.kill()


def test_logs_show_a_forwards_lines(cluster: Cluster, namespace: str, web: list[str], engine: User) -> None:
    f = engine.detach("--context", cluster.context, "-n", namespace, "svc/web", ":80")
    for word in ("svc/web", f["session_id"], f["session_id"][:5]):
        out = engine.ok("logs", word)
        messages = [re.fullmatch(r"(\S+) (info|warning|error) +(.*)", line) for line in out.splitlines()]
        assert all(messages), out
        assert [m.group(3) for m in messages] == ["starting", f"using pod {web[0]}", "active"], out
        for m in messages:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", m.group(1)), m.group(1)
    done = engine.tender("logs", "svc/other")
    assert done.returncode == 2 and "'svc/other'" in one_line(done.stderr)


# ---------------------------------------------------------------- forward joins the engine
def test_forward_joins_the_engine_until_ctrl_c(cluster: Cluster, namespace: str, web: list[str],
                                               engine: User) -> None:
    t = engine.popen("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80")
    try:
        m = t.line_matching(rf"^{cluster.context}: Forwarding from 127\.0\.0\.1:(\d+) -> 8080 "
                            rf"\(svc/web in {namespace}, pod {web[0]}\)$", 30)
        port = int(m.group(1))
        [f] = engine.ls()  # in the engine, not in this process
        assert (f["local_port"], f["status"], f["target"]) == (port, "active", "svc/web")
        assert hostname(port) == web[0]
        t.proc.send_signal(signal.SIGINT)
        code, _, err = t.wait()
        assert (code, err) == (0, ""), err
        assert engine.ls() == [] and port_refuses(port)
    finally:
        t.kill()

    # However the joined forward ends -- its terminal closed (SIGHUP), or killed -- its forward stops.
    t = engine.popen("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80")
    try:
        port = int(t.line_matching(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", 30).group(1))
        t.proc.send_signal(signal.SIGHUP)
        assert t.wait()[0] == 0
        assert engine.ls() == [] and port_refuses(port)
    finally:
        t.kill()
    t = engine.popen("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80")
    try:
        port = int(t.line_matching(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", 30).group(1))
        t.proc.kill()
        t.proc.wait(10)
        wait_for(lambda: engine.ls() == [], 10, "the engine to stop the killed client's forward")
        assert port_refuses(port)
    finally:
        t.kill()

    # --no-engine: in this process, beside the same kubeconfig's engine.
    t = engine.popen("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80", "--no-engine")
    try:
        m = t.line_matching(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", 30)
        assert hostname(int(m.group(1))) == web[0]
        assert engine.ls() == []
        t.proc.send_signal(signal.SIGINT)
        assert t.wait()[0] == 0
    finally:
        t.kill()


def test_a_joined_forward_ends_as_one_in_process(cluster: Cluster, namespace: str, web: list[str],
                                                engine: User) -> None:
    base = ["forward", "--context", cluster.context, "-n", namespace]
    # A target that does not exist: one line, exit 1, nothing left in the engine (in-process: the same).
    for flags in ([], ["--no-engine"]):
        done = engine.tender(*base, "svc/nothing", ":80", *flags, timeout=30)
        assert done.returncode == 1, (flags, done)
        assert re.fullmatch(rf"{cluster.context}: svc/nothing \d+ -> 80: error: svc/nothing not found in namespace "
                            rf"{namespace}\n", done.stdout), done.stdout
        assert engine.ls() == []

    # Stopped from elsewhere ('tender stop'): exit 0, one line.
    t = engine.popen(*base, "svc/web", ":80")
    try:
        t.line_matching(r"Forwarding from", 30)
        engine.ok("stop", "svc/web")
        code, _, err = t.wait()
        assert code == 0 and "stopped from elsewhere" in one_line(err), err
    finally:
        t.kill()

    # The engine stops: exit 1, one line.
    t = engine.popen(*base, "svc/web", ":80")
    try:
        t.line_matching(r"Forwarding from", 30)
        engine.stop()
        code, _, err = t.wait()
        assert code == 1 and "the engine stopped" in one_line(err), err
    finally:
        t.kill()


def test_forward_detach_leaves_it_running(cluster: Cluster, namespace: str, web: list[str], engine: User) -> None:
    done = engine.tender("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80", "--detach")
    assert done.returncode == 0 and done.stderr == "", done
    [f] = engine.ls()
    assert done.stdout.splitlines() == [
        f"{cluster.context}: Forwarding from 127.0.0.1:{f['local_port']} -> 8080 (svc/web in {namespace}, "
        f"pod {web[0]})",
        f"Running in the engine (see 'tender ls'); stop with: tender stop {f['session_id'][:8]}"]
    assert f["status"] == "active" and hostname(f["local_port"]) == web[0]

    # Its local port again, joined or detached: exit 1 (a port in use, as in-process), one line; nothing new.
    for detach in ([], ["--detach"]):
        done = engine.tender("forward", "--context", cluster.context, "-n", namespace, "svc/web",
                             f"{f['local_port']}:80", *detach)
        assert (done.returncode, done.stdout) == (1, ""), done
        assert f"local port {f['local_port']} is already used by the forward to svc/web" in one_line(done.stderr)
        assert [x["session_id"] for x in engine.ls()] == [f["session_id"]]


def test_forward_with_a_bad_port_on_the_engine_exits_2(cluster: Cluster, namespace: str, web: list[str],
                                                      engine: User) -> None:
    for detach in ([], ["--detach"]):
        done = engine.tender("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":81", *detach)
        assert done.returncode == 2, done
        assert one_line(done.stderr) == "tender: error: svc/web has no port 81; its ports are 80/TCP (http)"
        assert done.stdout == "", done.stdout
        assert engine.ls() == []  # nothing left behind, as kubectl starts nothing


def test_forward_runs_in_process_beside_an_engine_of_another_kubeconfig(cluster: Cluster, namespace: str,
                                                                        web: list[str], user: User) -> None:
    other = user.home / "other-kubeconfig"
    shutil.copy(cluster.kubeconfig, other)
    user.start(["--kubeconfig", str(other), "--profiles", str(user.profiles)])
    # --detach needs that engine: it says the kubeconfigs differ (not that no engine runs).
    done = user.tender("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80", "--detach")
    assert done.returncode == 1 and "the running engine uses another kubeconfig" in one_line(done.stderr), done
    t = user.popen("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80")
    try:
        m = t.line_matching(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", 30)
        assert hostname(int(m.group(1))) == web[0]
        assert user.ls() == []  # not the engine's
        t.proc.send_signal(signal.SIGINT)
        code, _, err = t.wait()
        assert code == 0, err
    finally:
        t.kill()
    # The same file under another name (a symlink) is the same kubeconfig: joined.
    link = user.home / "kubeconfig-link"
    link.symlink_to(other)
    done = user.tender("forward", "--kubeconfig", str(link), "--context", cluster.context, "-n", namespace,
                       "svc/web", ":80", "--detach")
    assert done.returncode == 0, done
    assert [f["target"] for f in user.ls()] == ["svc/web"]



def test_forward_without_an_engine(cluster: Cluster, namespace: str, web: list[str], user: User) -> None:
    done = user.tender("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80", "--detach")
    assert (done.returncode, done.stdout) == (1, "")
    assert "no Tender engine is running" in one_line(done.stderr)
    t = user.popen("forward", "--context", cluster.context, "-n", namespace, "svc/web", ":80")
    try:
        m = t.line_matching(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", 30)
        assert hostname(int(m.group(1))) == web[0]
        t.proc.send_signal(signal.SIGINT)
        assert t.wait()[0] == 0
    finally:
        t.kill()


# ---------------------------------------------------------------- daemon, dashboard
def test_daemon_starts_autostart_profiles_and_exits_0_on_sigterm(cluster: Cluster, namespace: str, web: list[str],
                                                                 user: User) -> None:
    user.profiles.write_text(
        "version: 1\nprofiles:\n"
        f"  - name: at-login\n    autostart: true\n    context: {cluster.context}\n    namespace: {namespace}\n"
        "    target: svc/web\n    ports: [':80']\n"
        f"  - name: by-hand\n    context: {cluster.context}\n    namespace: {namespace}\n"
        "    target: svc/web\n    ports: [':80']\n")
    proc = user.start()
    [f] = wait_for(user.ls, 10, "the autostart profile's forward")  # started once the API answers
    assert (f["profile"], f["target"]) == ("at-login", "svc/web")
    f = user.wait_status(f["session_id"], "active")
    assert hostname(f["local_port"]) == web[0]
    assert user.socket.exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert not user.socket.exists()
    assert port_refuses(f["local_port"])
    done = user.tender("ls")
    assert done.returncode == 1 and "no Tender engine is running" in one_line(done.stderr)


def test_dashboard_print_url_and_browser(engine: User) -> None:
    url = engine.ok("dashboard", "--print-url").strip()
    m = re.fullmatch(r"(http://127\.0\.0\.1:\d+)(/d/[A-Za-z0-9_-]{16,}/)\?code=([A-Za-z0-9_-]{32,})", url)
    assert m, url
    origin, prefix = m.group(1), m.group(2)
    answer = httpx.get(url, follow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["location"] == prefix, answer
    assert httpx.get(origin + prefix, timeout=10).status_code == 403  # no cookie
    assert httpx.get(f"{origin}/", timeout=10).status_code == 404  # nothing outside the prefix

    # The link handed to the browser (on its command line: any local user can read it with ps) is good
    # for one visit only, and carries nothing that lasts: once the browser used it, it is refused.
    record = engine.home / "opened"
    browser = engine.home / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {record}\n')
    browser.chmod(0o755)
    done = engine.tender("dashboard", BROWSER=str(browser))
    assert done.returncode == 0, done
    wait_for(record.exists, 10, "the browser script to run")
    opened = wait_for(lambda: record.read_text().strip(), 5, "its argument")
    assert opened.startswith(origin + prefix + "?code=") and opened != url, opened  # the same engine, a new code
    visit = httpx.get(opened, follow_redirects=False, timeout=10)  # the browser's visit
    assert visit.status_code == 303, visit
    key = visit.cookies["tender_session"]
    assert key not in opened
    replayed = httpx.get(opened, follow_redirects=False, timeout=10)  # whoever read it from ps, afterwards
    assert replayed.status_code == 403 and "set-cookie" not in replayed.headers, replayed
    assert "open the dashboard again" in replayed.json()["error"]
    assert httpx.get(url, follow_redirects=False, timeout=10).status_code == 403  # the first link too
    # The browser's cookie opens the page.
    page = httpx.get(origin + prefix, cookies={"tender_session": key}, timeout=10)
    assert page.status_code == 200 and "<title>Tender</title>" in page.text
