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
                                     f"(curl --socks5-hostname {listen} http://web.demo/)")
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

    # Another address for a context that has one, or a bad one: one line, exit 2, nothing changes.
    other = engine.tender("proxy", "--context", ctx, "--listen", free_listen())
    assert other.returncode == 2 and other.stdout == "", other
    assert one_line(other.stderr) == f"tender: error: context {ctx} already has a cluster proxy, on {listen}"
    bad = engine.tender("proxy", "--context", ctx, "--listen", "web.demo:1080")
    assert bad.returncode == 2 and one_line(bad.stderr).startswith("tender: error: "), bad
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
        done = nobody.tender("proxy", "--stop", "--no-engine")
        assert done.returncode == 2 and one_line(done.stderr).startswith("tender: error: "), done
