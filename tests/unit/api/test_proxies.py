"""Cluster proxies in the control API (tray/api/proxies.py, the /v1/proxies routes): listen addresses,
the default port, conflicts, the JSON, and the routes' answers on a real ApiServer over a unix socket.

The engine's proxy is stood in for by a small in-memory manager here (it only records what was
asked); the real proxy is driven by tests/integration/test_proxy_ui.py.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tray.api import proxies
from tray.api.client import ApiError, EngineClient
from tray.api.server import ApiServer
from tray.errors import UsageError
from tray.kube.kubeconfig import ClusterInfo


# ---------------------------------------------------------------- listen addresses
@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:1080", ("127.0.0.1", 1080)),
    ("1081", ("127.0.0.1", 1081)),
    ("localhost:1082", ("localhost", 1082)),
    ("[::1]:1083", ("::1", 1083)),
    ("0.0.0.0:1084", ("0.0.0.0", 1084)),
    (" 127.0.0.2:65535 ", ("127.0.0.2", 65535)),
    (1085, ("127.0.0.1", 1085)),  # a JSON number, as "1085"
])
def test_listen_addresses_that_are_accepted(text: str, expected: tuple[str, int]) -> None:
    assert proxies.parse_listen(text) == expected


@pytest.mark.parametrize("text, words", [
    ("", "must be an address"),
    (True, "must be an address"),
    (1.5, "must be an address"),
    ("127.0.0.1", "has no port"),
    (":1086", "has no host"),
    ("127.0.0.1:0", "1-65535"),
    ("127.0.0.1:65536", "1-65535"),
    ("127.0.0.1:http", "1-65535"),
    ("web.demo:1080", "not an IP address"),
    ("::1:1080", "[ADDRESS]:PORT"),
    ("[127.0.0.1]:1080", "[ADDRESS]:PORT"),
    ("[::1]1080", "[ADDRESS]:PORT"),
])
def test_bad_listen_addresses_name_the_field(text: Any, words: str) -> None:
    with pytest.raises(UsageError) as caught:
        proxies.parse_listen(text)
    assert caught.value.field == "listen" and words in caught.value.message, caught.value.message


def test_where_a_client_connects_and_what_it_types() -> None:
    assert proxies.client_address("0.0.0.0:1080") == "127.0.0.1:1080"
    assert proxies.client_address("localhost:1081") == "127.0.0.1:1081"
    assert proxies.client_address("[::]:1082") == "[::1]:1082"
    assert proxies.usage_hints("127.0.0.1:1080") == {
        "socks5_url": "socks5h://127.0.0.1:1080", "http_url": "http://127.0.0.1:1080",
        "curl": "curl --socks5-hostname 127.0.0.1:1080 http://svc.ns/"}


# ---------------------------------------------------------------- a manager with proxies
@dataclass(frozen=True)
class Info:
    context: str
    listen: str
    connections: int = 0
    connections_total: int = 0
    last_error: str = ""


class Manager:
    """The slice of ForwardManager the proxy routes use; start_proxy really binds, as the engine would."""

    def __init__(self) -> None:
        self.kubeconfig = "/nonexistent/kubeconfig"
        self.running: dict[str, tuple[Info, socket.socket]] = {}
        self.calls: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def clusters(self) -> list[ClusterInfo]:
        return [ClusterInfo(id=c, cluster_name=c, user="u", namespace="default", current=c == "tender-a")
                for c in ("tender-a", "tender-b", "tender-c")]

    def list(self) -> list[Any]:
        return []

    def subscribe(self, fn: Any) -> None:
        pass

    def unsubscribe(self, fn: Any) -> None:
        pass

    def proxies(self) -> list[Info]:
        with self.lock:
            return [info for info, _ in self.running.values()]

    def start_proxy(self, context: str, listen: str = "127.0.0.1:1080") -> Info:
        self.calls.append(("start_proxy", context, listen))
        host, port = proxies.parse_listen(listen)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise UsageError(f"{listen} is already in use", field="listen") from None
        sock.listen(1)
        info = Info(context, listen)
        with self.lock:
            self.running[context] = (info, sock)
        return info

    def stop_proxy(self, context: str) -> None:
        self.calls.append(("stop_proxy", context))
        with self.lock:
            _, sock = self.running.pop(context)
        sock.close()

    def close(self) -> None:
        for context in list(self.running):
            self.stop_proxy(context)


def free_ports(n: int) -> list[int]:
    """``n`` consecutive ports on 127.0.0.1 that nothing listens on now."""
    for start in range(21080, 60000, 37):
        if all(proxies.port_is_free("127.0.0.1", p) for p in range(start, start + n)):
            return list(range(start, start + n))
    raise AssertionError("no free ports")


@pytest.fixture
def manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Manager]:
    monkeypatch.setattr(proxies, "DEFAULT_PORTS", range(*(lambda p: (p[0], p[-1] + 1))(free_ports(3))))
    m = Manager()
    yield m
    m.close()


def test_the_first_context_gets_the_first_default_port_and_the_next_one_the_next(manager: Manager) -> None:
    first, second, _ = proxies.DEFAULT_PORTS
    assert proxies.start_proxy(manager, "tender-a").listen == f"127.0.0.1:{first}"
    assert proxies.start_proxy(manager, "tender-b").listen == f"127.0.0.1:{second}"


def test_a_default_port_something_else_holds_is_skipped(manager: Manager) -> None:
    first, second, third = proxies.DEFAULT_PORTS
    with socket.socket() as other:
        other.bind(("127.0.0.1", first))
        other.listen(1)
        assert proxies.start_proxy(manager, "tender-a").listen == f"127.0.0.1:{second}"
        assert proxies.start_proxy(manager, "tender-b").listen == f"127.0.0.1:{third}"
        with pytest.raises(proxies.ProxyConflict) as caught:
            proxies.start_proxy(manager, "tender-c")
    assert caught.value.field == "listen" and "every port of 127.0.0.1" in caught.value.message


def test_a_context_has_one_proxy_and_a_taken_address_is_a_conflict(manager: Manager) -> None:
    first, second, _ = proxies.DEFAULT_PORTS
    proxies.start_proxy(manager, "tender-a", f"127.0.0.1:{second}")
    with pytest.raises(proxies.ProxyConflict) as caught:
        proxies.start_proxy(manager, "tender-a", f"127.0.0.1:{first}")
    assert caught.value.field == "context" and f"already has a cluster proxy, on 127.0.0.1:{second}" in str(caught.value)
    with pytest.raises(proxies.ProxyConflict) as caught:
        proxies.start_proxy(manager, "tender-b", f"{second}")
    assert caught.value.field == "listen" and "already in use" in str(caught.value)
    assert [c[0] for c in manager.calls] == ["start_proxy"]  # the conflicts never reached the engine


# ---------------------------------------------------------------- the routes
class Api:
    def __init__(self, manager: Manager, path: Path) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(16)
        self.server = ApiServer(manager, host="daemon", profiles_path=path.parent / "profiles.yaml")
        self.server.start(listener)
        self.client = EngineClient(path, timeout=10)

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.fixture
def api(manager: Manager, tmp_path: Path) -> Iterator[Api]:
    a = Api(manager, tmp_path / "engine.sock")
    yield a
    a.close()


def refused(api: Api, method: str, path: str, body: Any = None) -> tuple[int, str | None, str]:
    with pytest.raises(ApiError) as caught:
        api.client.request(method, path, body)
    return caught.value.status, caught.value.field, caught.value.message


def test_start_list_and_stop_a_proxy_over_the_api(api: Api, manager: Manager) -> None:
    first = proxies.DEFAULT_PORTS[0]
    assert api.client.get("/v1/proxies") == {"proxies": []}
    started = api.client.post("/v1/proxies", {})  # the current context, the first free default port
    assert started == {"context": "tender-a", "listen": f"127.0.0.1:{first}", "connections": 0,
                       "connections_total": 0, "last_error": "", "warning": "",
                       "socks5_url": f"socks5h://127.0.0.1:{first}",
                       "http_url": f"http://127.0.0.1:{first}",
                       "curl": f"curl --socks5-hostname 127.0.0.1:{first} http://svc.ns/"}
    assert api.client.get("/v1/proxies") == {"proxies": [started]}
    assert api.client.delete("/v1/proxies/tender-a") == {"stopped": ["tender-a"]}
    assert api.client.get("/v1/proxies") == {"proxies": []}
    assert proxies.port_is_free("127.0.0.1", first)


def test_the_api_refuses_bad_input_and_conflicts_naming_the_field(api: Api, manager: Manager) -> None:
    first, second, _ = proxies.DEFAULT_PORTS
    assert refused(api, "POST", "/v1/proxies", {"listen": "127.0.0.1"})[:2] == (400, "listen")
    assert refused(api, "POST", "/v1/proxies", {"listen": ":1086"}) == (
        400, "listen", "listen ':1086' has no host: write HOST:PORT, e.g. \"127.0.0.1:1086\", or the port alone")
    assert refused(api, "POST", "/v1/proxies", {"port": 1080}) == (
        400, "port", "unknown field 'port' (fields: context, listen)")
    assert refused(api, "POST", "/v1/proxies", ["tender-a"])[:2] == (400, None)
    status, field, message = refused(api, "POST", "/v1/proxies", {"context": "tender-zzz"})
    assert (status, field) == (400, "context") and 'context "tender-zzz" not found' in message
    assert refused(api, "POST", "/v1/proxies", {"context": ""})[:2] == (400, "context")
    assert manager.calls == []
    taken = api.client.post("/v1/proxies", {"context": "tender-c", "listen": second + 1})  # a number, as "N"
    assert taken["listen"] == f"127.0.0.1:{second + 1}"
    api.client.delete("/v1/proxies/tender-c")

    api.client.post("/v1/proxies", {"context": "tender-b", "listen": f"127.0.0.1:{second}"})
    status, field, message = refused(api, "POST", "/v1/proxies", {"context": "tender-b"})
    assert (status, field) == (409, "context") and "already has a cluster proxy" in message
    status, field, message = refused(api, "POST", "/v1/proxies", {"listen": f"127.0.0.1:{second}"})
    assert (status, field) == (409, "listen") and "already in use" in message
    assert refused(api, "DELETE", "/v1/proxies/tender-a") == (404, "context", "context tender-a has no cluster proxy")


def test_proxy_starts_and_stops_reach_the_event_stream(api: Api, manager: Manager) -> None:
    first = proxies.DEFAULT_PORTS[0]
    got: list[dict[str, Any]] = []
    follower = EngineClient(api.client.path, timeout=10)

    def follow() -> None:
        for event in follower.events():
            got.append(event)

    threading.Thread(target=follow, daemon=True).start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    assert got == [{"event": "list", "forwards": []}]  # no proxies: no proxies event

    started = api.client.post("/v1/proxies", {"context": "tender-c"})
    api.client.delete("/v1/proxies/tender-c")
    manager.start_proxy("tender-a", f"127.0.0.1:{first}")  # started elsewhere (the tray): within a second
    deadline = time.monotonic() + 10
    while len([e for e in got if e["event"] == "proxies"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    said = [[p["context"] for p in e["proxies"]] for e in got if e["event"] == "proxies"]
    assert said == [["tender-c"], [], ["tender-a"]], got
    assert [e for e in got if e["event"] == "proxies"][0]["proxies"] == [started]
    follower.close()
