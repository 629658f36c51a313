"""SPDY on an HTTP/1.1 upgrade: Tender's first path, and the one for credentials that may only `create`.

A WebSocket upgrade is a GET, which the API server authorizes as `get
pods/portforward`: with `create` only (the Role in issue 10's report) it is
refused with 403.  kubectl then falls back to SPDY over `POST .../portforward`
(`Upgrade: SPDY/3.1`), authorized as `create`, and forwards; so must Tender.
Each test runs on the real cluster with a ServiceAccount of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import select
import socket
import threading
from pathlib import Path

import pytest
import yaml

from tests.clusterlib import Cluster, deployment_manifest, expected_sha256
from tests.integration import test_engine_stall, test_engine_tunnel
from tests.integration.engine import EventLog, hostname, pod_manifest, wait_for, wait_hostname, wait_status
from tests.integration.kubeconfigs import single_context, user_with_rules
from tests.integration.test_engine_cli import Tender
from tests.integration.test_engine_tunnel import tunnels_opened
from tray.errors import ForbiddenError
from tray.kube.kubeapi import KubeAPI, NotFound, Unauthorized
from tray.kube.kubeconfig import load_auth
from tray.engine.manager import ForwardManager
from tray.engine.tunnel import Tunnel
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster

READ = {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]}
READ_APPS = {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["get", "list", "watch"]}
CREATE_ONLY = {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]}


def _create_only(cluster: Cluster, namespace: str, tmp_path: Path, name: str = "createonly") -> str:
    return user_with_rules(cluster, namespace, name, [READ, READ_APPS, CREATE_ONLY], tmp_path / f"{name}.yaml")


@pytest.fixture
def solo(cluster: Cluster, namespace: str) -> str:
    cluster.apply(pod_manifest("solo"), namespace)
    return cluster.wait_ready(namespace, "app=solo")[0]


def _run(coro):  # one asyncio call from a test
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_the_websocket_is_refused_and_the_upgrade_accepted(cluster: Cluster, namespace: str, solo: str,
                                                            tmp_path: Path) -> None:
    """The premise, on this cluster: with `create` only, the WebSocket tunnel gets 403 and the POST upgrade 101."""
    kubeconfig = _create_only(cluster, namespace, tmp_path)

    async def check() -> None:
        auth = load_auth("createonly", kubeconfig)
        await asyncio.to_thread(auth.refresh, full=True)
        api = KubeAPI(auth)
        try:
            with pytest.raises(ForbiddenError):
                await Tunnel.open(api, namespace, solo)
            tunnel = await Tunnel.open(api, namespace, solo, upgrade=True)
            assert await tunnel.answers() and tunnel.usable
            await tunnel.close()
            with pytest.raises(NotFound, match='pods "gone" not found'):
                await Tunnel.open(api, namespace, "gone", upgrade=True)
        finally:
            await api.aclose()
        # A rejected token: the kubeconfig is read again once, then the 401 is the error.
        bogus = load_auth("bogus", single_context(cluster, tmp_path / "bogus.yaml", token="not-a-token", name="bogus"))
        await asyncio.to_thread(bogus.refresh, full=True)
        api = KubeAPI(bogus)
        try:
            with pytest.raises(Unauthorized, match="rejected the credentials"):
                await Tunnel.open(api, namespace, solo, upgrade=True)
        finally:
            await api.aclose()

    _run(check())


def test_cli_forwards_a_pod(cluster: Cluster, namespace: str, solo: str, tmp_path: Path) -> None:
    """`tender forward pod/solo` with `create` only: active, and it answers (kubectl forwards there too)."""
    kubeconfig = _create_only(cluster, namespace, tmp_path)
    t = Tender("forward", "--kubeconfig", kubeconfig, "-n", namespace, "pod/solo", "0:8080", "-o", "json")
    try:
        while True:
            event = json.loads(t.next_line(timeout=30))
            if event["event"] == "status":
                assert event["status"] in ("starting", "active"), event
                if event["status"] == "active":
                    break
        port = event["local_port"]
        for _ in range(5):
            assert hostname(port) == "solo"
        assert t.proc.poll() is None
    finally:
        t.kill()
    assert '"error"' not in "\n".join(t.seen), t.seen


def test_deployment_forward_moves_on_a_deleted_pod(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    old = cluster.wait_ready(namespace, "app=web")[0]
    m = ForwardManager(_create_only(cluster, namespace, tmp_path))
    try:
        sid = m.start(ForwardSpec("createonly", namespace, Target("Deployment", "web"), 8080, local_port=0))
        info = wait_status(m, sid, "active", timeout=30)
        assert info.status_reason == "", info.status_reason
        port = info.local_port
        assert hostname(port) == old
        cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
        new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 60,
                       "the replacement pod")[0]
        wait_hostname(port, new, timeout=15)
        info = wait_status(m, sid, "active")
        assert info.pod_name == new
    finally:
        m.shutdown()


def test_big_download_and_upload_are_whole(cluster: Cluster, namespace: str, solo: str, tmp_path: Path) -> None:
    """128 MiB down (checksum of the seeded stream), 64 MiB up (length read by the pod), 8 at once."""
    size, up_size = 128 << 20, 64 << 20
    m = ForwardManager(_create_only(cluster, namespace, tmp_path))
    try:
        sid = m.start(ForwardSpec("createonly", namespace, Target("Pod", "solo"), 8080, local_port=0))
        port = wait_status(m, sid, "active", timeout=30).local_port

        def download(seed: int, n: int) -> str:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", f"/bytes?n={n}&seed={seed}")
            resp = conn.getresponse()
            assert resp.status == 200
            digest = hashlib.sha256()
            while block := resp.read(1 << 20):
                digest.update(block)
            conn.close()
            return digest.hexdigest()

        assert download(7, size) == expected_sha256(size, 7)

        block = bytes(range(256)) * 4096
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", "/upload", body=(block for _ in range(up_size // len(block))),
                     headers={"Content-Length": str(up_size)})
        resp = conn.getresponse()
        assert resp.status == 200 and int(resp.read()) == up_size
        conn.close()

        results: dict[int, str] = {}
        threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, download(s, 4 << 20)))
                   for s in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert results == {s: expected_sha256(4 << 20, s) for s in range(8)}
        assert m.get(sid).status == "active"
    finally:
        m.shutdown()


@pytest.mark.parametrize("setting", ["", "spdy"])
def test_the_upgrade_by_default_and_when_forced(setting: str, cluster: Cluster, namespace: str, solo: str,
                                               manager: ForwardManager, monkeypatch: pytest.MonkeyPatch) -> None:
    """With full rights, TENDER_PORT_FORWARD unset or `spdy`: the POST upgrade is the path (no WebSocket tunnel counted)."""
    if setting:
        monkeypatch.setenv("TENDER_PORT_FORWARD", setting)
    else:
        monkeypatch.delenv("TENDER_PORT_FORWARD", raising=False)
    before = tunnels_opened(cluster)
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "solo"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    for _ in range(5):
        assert hostname(port) == "solo"
    assert tunnels_opened(cluster) == before


def test_neither_get_nor_create_is_one_error_naming_create(cluster: Cluster, namespace: str, solo: str,
                                                           tmp_path: Path) -> None:
    kubeconfig = user_with_rules(cluster, namespace, "noforward", [READ], tmp_path / "noforward.yaml")
    t = Tender("forward", "--kubeconfig", kubeconfig, "-n", namespace, "pod/solo", "0:8080")
    try:
        code, out, err = t.wait(timeout=30)
    finally:
        t.kill()
    errors = [line for line in (out + "\n" + err).splitlines() if "error" in line]
    assert code == 1 and len(errors) == 1, (code, out, err)
    assert "cannot create pods/portforward" in errors[0], errors
    assert "Traceback" not in err, err

    # The upgrade's own refusal names the verb too (what a forward meets when RBAC changes under it).
    async def upgrade() -> None:
        auth = load_auth("noforward", kubeconfig)
        await asyncio.to_thread(auth.refresh, full=True)
        api = KubeAPI(auth)
        try:
            with pytest.raises(ForbiddenError, match='cannot create resource "pods/portforward"'):
                await Tunnel.open(api, namespace, solo, upgrade=True)
        finally:
            await api.aclose()

    _run(upgrade())


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 (a thread per connection); counts the bytes each tunnel carried."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.carried: list[int] = []  # bytes from the far side, per CONNECT, once it ended
        self.targets: list[str] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            self.targets.append(target)
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host.strip("[]"), int(port))) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                carried = 0
                socks = [client, upstream]
                while not self._stop.is_set():
                    ready, _, _ = select.select(socks, [], [], 0.5)
                    done = False
                    for s in ready:
                        try:
                            data = s.recv(1 << 20)
                        except OSError:  # reset: as good as closed
                            data = b""
                        if not data:
                            done = True
                            break
                        if s is upstream:
                            carried += len(data)
                        try:
                            (upstream if s is client else client).sendall(data)
                        except OSError:
                            done = True
                            break
                    if done:
                        break
                self.carried.append(carried)

    def close(self) -> None:
        self._stop.set()
        self.server.close()


def test_through_the_kubeconfigs_proxy(cluster: Cluster, namespace: str, solo: str, tmp_path: Path) -> None:
    """proxy-url is honoured: the upgraded connection, data and all, goes through the proxy."""
    proxy = ConnectProxy()
    try:
        path = Path(_create_only(cluster, namespace, tmp_path))
        config = yaml.safe_load(path.read_text())
        config["clusters"][0]["cluster"]["proxy-url"] = f"http://127.0.0.1:{proxy.port}"
        path.write_text(yaml.safe_dump(config))
        m = ForwardManager(str(path))
        try:
            sid = m.start(ForwardSpec("createonly", namespace, Target("Pod", "solo"), 8080, local_port=0))
            port = wait_status(m, sid, "active", timeout=30).local_port
            size = 16 << 20
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", f"/bytes?n={size}&seed=3")
            body = conn.getresponse().read()
            conn.close()
            assert hashlib.sha256(body).hexdigest() == expected_sha256(size, 3)
        finally:
            m.shutdown()
        # Every connection to the API server went through the proxy; one of them carried the download.
        wait_for(lambda: any(n > size for n in proxy.carried), 10, "the forward's connection to end at the proxy")
        assert proxy.targets and all(t.endswith(f":{cluster_port(cluster)}") for t in proxy.targets), proxy.targets
    finally:
        proxy.close()


def cluster_port(cluster: Cluster) -> int:
    from tests.integration.kubeconfigs import server_address

    return server_address(cluster)[1]


# ---------------------------------------------------------------- the tunnel's rules, on the upgraded stream
def test_a_connection_after_a_silent_drop_is_not_lost(cluster: Cluster, namespace: str, manager: ForwardManager,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """drop-connections cuts the kubelet's side of the session five times; each next request answers."""
    monkeypatch.setenv("TENDER_PORT_FORWARD", "spdy")
    websockets = tunnels_opened(cluster)
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    sid = manager.start(ForwardSpec(cluster.context, namespace, Target("Pod", "web"), 8080, local_port=0))
    port = wait_status(manager, sid, "active").local_port
    assert hostname(port) == "web"
    for i in range(5):
        before = test_engine_tunnel._drops_logged(cluster)
        cluster.drop_connections("web", namespace)
        wait_for(lambda: test_engine_tunnel._drops_logged(cluster) > before, 10, "the kubelet to cut the connections")
        assert hostname(port) == "web", f"the request after drop {i + 1} failed"
    assert manager.get(sid).status == "active"
    assert tunnels_opened(cluster) == websockets  # all of it over the upgrade


@pytest.mark.parametrize("rule", ["half-close", "frozen kubelet", "dead tunnels freed", "a pod that never reads"])
def test_the_tunnels_rules_hold_on_the_upgrade(rule: str, cluster: Cluster, namespace: str, manager: ForwardManager,
                                                events: EventLog, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """The WebSocket tunnel's own tests (test_engine_tunnel, test_engine_stall), with the POST upgrade forced."""
    monkeypatch.setenv("TENDER_PORT_FORWARD", "spdy")
    websockets = tunnels_opened(cluster)
    if rule == "half-close":
        test_engine_tunnel.test_half_close_gets_the_whole_reply(cluster, namespace, manager)
    elif rule == "frozen kubelet":
        test_engine_tunnel.test_frozen_kubelet_is_noticed(cluster, namespace, manager, monkeypatch)
    elif rule == "dead tunnels freed":
        test_engine_tunnel.test_dead_tunnels_are_freed_at_once(cluster, namespace, manager)
    else:
        test_engine_stall.test_a_pod_that_never_reads_stalls_no_other_connection("Pod", cluster, namespace, manager,
                                                                                 events, caplog)
    assert tunnels_opened(cluster) == websockets  # all of it over the upgrade
