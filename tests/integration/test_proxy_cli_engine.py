"""``tender proxy`` with an engine running (issue 14): the proxy starts in the engine, outlives the command,
shows in the API (so in the tray and the dashboard), and ``tender proxy --stop`` stops it.

Each verb runs as a user's terminal would, in the session of a real ``tender daemon`` on the test cluster
(tests/integration/daemon.py).  The foreground proxy (``--no-engine``, or no engine) is test_proxy.py's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.daemon import Daemon
from tests.integration.engine import service_manifest
from tray.api import proxies

pytestmark = pytest.mark.cluster


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> list[str]:
    cluster.apply(deployment_manifest("web"), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    return cluster.wait_ready(namespace, "app=web", 1)


@pytest.fixture
def engine(cluster: Cluster, tmp_path: Path) -> Iterator[Daemon]:
    with Daemon(cluster, tmp_path) as d:
        d.start()
        yield d


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def free_listen() -> str:
    for port in range(32080, 33000):
        if proxies.port_is_free("127.0.0.1", port):
            return f"127.0.0.1:{port}"
    raise AssertionError("no free port")


def test_tender_proxy_starts_it_in_the_engine_and_stop_stops_it(cluster: Cluster, namespace: str, web: list[str],
                                                                 engine: Daemon) -> None:
    ctx = cluster.context
    listen = free_listen()
    done = engine.tender("proxy", "--context", ctx, "--listen", listen)
    assert done.returncode == 0, done
    assert one_line(done.stdout) == (f"SOCKS5 and HTTP proxy for context {ctx} on {listen} "
                                     f"(curl --socks5-hostname {listen} http://SERVICE.NAMESPACE/)")
    assert "'tender proxy --stop --context" in done.stderr

    # The command has exited; the proxy runs in the engine.
    [running] = engine.api("GET", "/v1/proxies").json()["proxies"]
    assert (running["context"], running["listen"]) == (ctx, listen)
    answer = subprocess.run(["curl", "-sS", "--max-time", "15", "--socks5-hostname", listen,
                             f"http://web.{namespace}/hostname"], capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0 and answer.stdout == web[0], answer.stderr

    # Asked again: it is where it was.
    again = engine.tender("proxy", "--context", ctx)
    assert again.returncode == 0 and listen in one_line(again.stdout), again

    # Another address for a context that has one: exit 1 (as tender forward's conflicts); a bad one: exit 2.
    other = engine.tender("proxy", "--context", ctx, "--listen", free_listen())
    assert other.returncode == 1 and other.stdout == "", other
    assert one_line(other.stderr) == f"tender: error: context {ctx} already has a cluster proxy, on {listen}"
    bad = engine.tender("proxy", "--context", ctx, "--listen", "web.demo:1080")
    assert bad.returncode == 2 and one_line(bad.stderr).startswith("tender: error: "), bad
    # --stop with --listen (it does nothing there) or an unknown context: exit 2, nothing stops.
    odd = engine.tender("proxy", "--stop", "--context", ctx, "--listen", listen)
    assert odd.returncode == 2, odd
    assert one_line(odd.stderr).startswith("tender: error: --listen: --listen does nothing"), odd
    nosuch = engine.tender("proxy", "--stop", "--context", "nosuch")
    assert nosuch.returncode == 2 and one_line(nosuch.stderr).startswith(
        'tender: error: --context: context "nosuch" is not in the kubeconfig (contexts: '), nosuch
    assert [p["listen"] for p in engine.api("GET", "/v1/proxies").json()["proxies"]] == [listen]

    stopped = engine.tender("proxy", "--stop", "--context", ctx)
    assert (stopped.returncode, one_line(stopped.stdout)) == (0, f"Stopped the cluster proxy for context {ctx}")
    assert engine.api("GET", "/v1/proxies").json() == {"proxies": []}
    host, port = proxies.parse_listen(listen)
    assert proxies.port_is_free(host, port)
    nothing = engine.tender("proxy", "--stop", "--context", ctx)
    assert nothing.returncode == 1 and nothing.stdout == "", nothing
    assert one_line(nothing.stderr) == f"tender: error: context {ctx} has no cluster proxy"


def test_without_listen_the_engine_picks_a_free_port_for_the_current_context(cluster: Cluster, engine: Daemon) -> None:
    done = engine.tender("proxy")
    assert done.returncode == 0, done
    [running] = engine.api("GET", "/v1/proxies").json()["proxies"]
    assert running["listen"] in one_line(done.stdout)
    assert int(running["listen"].rsplit(":", 1)[1]) in proxies.DEFAULT_PORTS
    current = [c["name"] for c in engine.api("GET", "/v1/contexts").json()["contexts"] if c["current"]]
    assert [running["context"]] == current
    assert engine.tender("proxy", "--stop").returncode == 0
    assert engine.api("GET", "/v1/proxies").json() == {"proxies": []}


def test_stop_without_an_engine_or_with_no_engine_is_one_line(cluster: Cluster, tmp_path: Path) -> None:
    with Daemon(cluster, tmp_path) as nobody:  # its session, no daemon started
        done = nobody.tender("proxy", "--stop")
        assert done.returncode == 1 and "no Tender engine is running" in one_line(done.stderr), done
        done = nobody.tender("proxy", "--stop", "--context", "nosuch")
        assert done.returncode == 2 and one_line(done.stderr).startswith(
            'tender: error: --context: context "nosuch" is not in the kubeconfig (contexts: '), done
        done = nobody.tender("proxy", "--stop", "--no-engine")
        assert done.returncode == 2 and one_line(done.stderr).startswith("tender: error: "), done


def test_a_listen_port_in_use_is_exit_1_as_tender_forward_says_it(cluster: Cluster, engine: Daemon) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = engine.tender("proxy", "--context", cluster.context, "--listen", f"127.0.0.1:{port}")
    assert done.returncode == 1 and done.stdout == "", done
    assert one_line(done.stderr) == (f"tender: error: local port {port} is already in use on 127.0.0.1; "
                                     "choose another listen address")
    assert engine.api("GET", "/v1/proxies").json() == {"proxies": []}


def test_every_interface_is_warned_of_and_the_hint_connects_on_loopback(cluster: Cluster, engine: Daemon) -> None:
    port = int(free_listen().rsplit(":", 1)[1])
    done = engine.tender("proxy", "--context", cluster.context, "--listen", f"0.0.0.0:{port}")
    assert done.returncode == 0, done
    assert one_line(done.stdout) == (f"SOCKS5 and HTTP proxy for context {cluster.context} on 0.0.0.0:{port} "
                                     f"(curl --socks5-hostname 127.0.0.1:{port} http://SERVICE.NAMESPACE/)")
    warning = ("the proxy listens on every network interface (0.0.0.0): anyone who can reach this machine can use "
               "it to reach the cluster with your credentials")
    assert f"tender: warning: {warning}" in done.stderr.splitlines(), done.stderr
    [running] = engine.api("GET", "/v1/proxies").json()["proxies"]
    assert running["warning"] == warning
    assert warning in engine.log_text()  # the engine's log says it too
    assert engine.tender("proxy", "--stop", "--context", cluster.context).returncode == 0


def test_another_kubeconfig_runs_here_and_says_why(cluster: Cluster, engine: Daemon, tmp_path: Path) -> None:
    import re
    import shutil
    import sys

    other = tmp_path / "other.yaml"
    shutil.copy(cluster.kubeconfig, other)
    proc = subprocess.Popen([sys.executable, "-m", "tray", "proxy", "--kubeconfig", str(other), "--context",
                             cluster.context, "--listen", "127.0.0.1:0"], cwd=Path(__file__).resolve().parents[2],
                            env=engine.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert re.match(r"SOCKS5 and HTTP proxy for context \S+ on 127\.0\.0\.1:\d+ ", banner), banner
        assert engine.api("GET", "/v1/proxies").json() == {"proxies": []}  # not in the engine
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert one_line(err).startswith("tender: the running Tender engine uses another kubeconfig ("), err
    assert one_line(err).endswith("), so the proxy runs here, in this process"), err
