"""The cluster proxy from its shells (issue 14): the control API of a real ``tender daemon`` and the tray's
click on a real engine, each reaching a Service of the test cluster by name through the proxy with curl.

The proxy's own behaviour (names, errors, round robin, rollouts) is tests/integration/test_proxy.py's;
here: that what a user clicks or asks for starts it where it says, that it then answers, and that it stops.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.daemon import Daemon
from tests.integration.engine import service_manifest, wait_for
from tests.ui.fakes import FakeDialogs, FakeNotifier, FakeView
from tray.api import proxies
from tray.api.client import ApiError, EngineClient
from tray.engine.manager import ForwardManager
from tray.ui.controller import Controller
from tray.ui.model import Action, ActionKind, Item

pytestmark = pytest.mark.cluster


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> list[str]:
    """svc/web (port 80 -> the pods' port named http, 8080) in front of two agnhost netexec pods; their names."""
    cluster.apply(deployment_manifest("web", replicas=2), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    return cluster.wait_ready(namespace, "app=web", 2)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "15", *args], capture_output=True, text=True, timeout=30)


def through(listen: str, url: str) -> str:
    """``url``'s body fetched through the proxy at ``listen`` with SOCKS5 (names resolved by the proxy)."""
    done = curl("--socks5-hostname", listen, url)
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_listen() -> str:
    for port in range(31080, 32000):
        if proxies.port_is_free("127.0.0.1", port):
            return f"127.0.0.1:{port}"
    raise AssertionError("no free port")


# ---------------------------------------------------------------- the control API
@pytest.fixture
def engine(cluster: Cluster, tmp_path: Path) -> Iterator[EngineClient]:
    with Daemon(cluster, tmp_path) as d:
        d.start()
        with EngineClient(d.socket, timeout=30) as client:
            yield client


def test_the_api_starts_a_proxy_that_reaches_services_by_name_and_stops_it(
        cluster: Cluster, namespace: str, web: list[str], engine: EngineClient) -> None:
    events: list[dict[str, Any]] = []
    follower = EngineClient(engine.path, timeout=30)
    threading.Thread(target=lambda: events.extend(follower.events()), daemon=True).start()

    listen = free_listen()
    started = engine.post("/v1/proxies", {"context": cluster.context, "listen": listen})
    assert (started["context"], started["listen"], started["connections_total"]) == (cluster.context, listen, 0)
    assert started["curl"] == f"curl --socks5-hostname {listen} http://svc.ns/"
    assert engine.get("/v1/proxies")["proxies"][0]["listen"] == listen

    # SOCKS5 by name, HTTP proxying by name: the Service's pods answer.
    assert through(listen, f"http://web.{namespace}/hostname") in web
    assert through(listen, f"http://web.{namespace}.svc.cluster.local/hostname") in web
    done = curl("-x", started["http_url"], f"http://web.{namespace}/hostname")
    assert done.returncode == 0 and done.stdout in web, done.stderr
    wait_for(lambda: engine.get("/v1/proxies")["proxies"][0]["connections_total"] >= 3, 10, "the counters")

    # One proxy per context; an address in use is refused; bad input names the field.
    with pytest.raises(ApiError) as caught:
        engine.post("/v1/proxies", {"context": cluster.context})
    assert (caught.value.status, caught.value.field) == (409, "context")
    assert f"already has a cluster proxy, on {listen}" in caught.value.message
    with pytest.raises(ApiError) as caught:
        engine.post("/v1/proxies", {"context": "tender-b" if cluster.context != "tender-b" else "tender-a",
                                    "listen": listen})
    assert (caught.value.status, caught.value.field) == (409, "listen")
    with pytest.raises(ApiError) as caught:
        engine.post("/v1/proxies", {"context": cluster.context, "listen": "web.demo:1080"})
    assert (caught.value.status, caught.value.field) == (400, "listen")

    # The follower saw it start (with its counters later).
    wait_for(lambda: any(e["event"] == "proxies" and e["proxies"] for e in events), 10, "a proxies event")

    assert engine.delete(f"/v1/proxies/{cluster.context}") == {"stopped": [cluster.context]}
    assert engine.get("/v1/proxies") == {"proxies": []}
    done = curl("--socks5-hostname", listen, f"http://web.{namespace}/hostname")
    assert done.returncode == 7, done  # curl: could not connect (the port is closed)
    wait_for(lambda: {"event": "proxies", "proxies": []} in events, 10, "the stop's proxies event")
    with pytest.raises(ApiError) as caught:
        engine.delete(f"/v1/proxies/{cluster.context}")
    assert caught.value.status == 404
    follower.close()


# ---------------------------------------------------------------- the tray
@pytest.fixture
def tray(cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Controller, FakeView]]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    first = int(free_listen().rsplit(":", 1)[1])
    monkeypatch.setattr(proxies, "DEFAULT_PORTS", range(first, first + 20))
    manager = ForwardManager(cluster.kubeconfig)
    view = FakeView()
    c = Controller(manager, view, FakeDialogs(), FakeNotifier(), profiles_path=tmp_path / "profiles.yaml",
                   settings_file=tmp_path / "settings.json", refresh_interval=0.05, watch_interval=60)
    c.start()
    try:
        yield c, view
    finally:
        c.close()
        manager.shutdown()


def proxy_entry(view: FakeView, context: str) -> Item | None:
    if not view.shown:
        return None
    for item in view.menu.child("Clusters").children:
        if item.label.split(" ")[0] == context:
            return next((i for i in item.children if i.label.startswith("Cluster proxy")), None)
    return None


def test_the_trays_click_starts_the_proxy_the_menu_says_and_a_second_click_stops_it(
        cluster: Cluster, namespace: str, web: list[str], tray: tuple[Controller, FakeView]) -> None:
    c, view = tray
    entry = wait_for(lambda: proxy_entry(view, cluster.context), 10, "the context's proxy item")
    assert (entry.label, entry.checked) == ("Cluster proxy (SOCKS5/HTTP)", False)
    t0 = time.monotonic()
    c.dispatch(entry.action)  # returns at once: the start runs on a worker
    assert time.monotonic() - t0 < 0.5
    on = wait_for(lambda: (lambda i: i if i is not None and i.checked else None)(proxy_entry(view, cluster.context)),
                  15, "the item to be checked")
    listen = on.label.removeprefix("Cluster proxy on ")
    assert listen == f"127.0.0.1:{proxies.DEFAULT_PORTS[0]}"
    assert through(listen, f"http://web.{namespace}/hostname") in web

    c.dispatch(Action(ActionKind.TOGGLE_PROXY, (cluster.context,))).result(15)
    off = wait_for(lambda: (lambda i: i if i is not None and not i.checked else None)(proxy_entry(view, cluster.context)),
                   15, "the item to be unchecked")
    assert off.label == "Cluster proxy (SOCKS5/HTTP)"
    assert proxies.port_is_free("127.0.0.1", proxies.DEFAULT_PORTS[0])
