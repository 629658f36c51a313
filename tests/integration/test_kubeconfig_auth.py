"""Every way a kubeconfig authenticates, on the real cluster, through `tender forward`.

Each case writes its own kubeconfig from the test cluster's credentials and
checks what the user sees: the forward answering, or one clear error line
with exit code 2 (configuration trouble) or 1 (the cluster refused).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.clusterlib import MANIFESTS, Cluster

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def demo(cluster: Cluster) -> Cluster:
    cluster.kubectl("apply", "-f", str(MANIFESTS / "demo.yaml"))
    cluster.wait_ready("demo", "app=web", 2)
    return cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kubeconfig(tmp: Path, cluster: Cluster, user: dict, *, cluster_extra: dict | None = None,
                name: str = "kubeconfig") -> Path:
    st = cluster.state
    entry = {"server": f"https://127.0.0.1:{st['api_port']}", "certificate-authority": st["ca_file"]}
    entry.update(cluster_extra or {})
    entry = {k: v for k, v in entry.items() if v is not None}
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "case",
        "clusters": [{"name": "case", "cluster": entry}],
        "users": [{"name": "case", "user": user}],
        "contexts": [{"name": "case", "context": {"cluster": "case", "user": "case", "namespace": "demo"}}],
    }
    path = tmp / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _forward(kubeconfig: Path | str, *extra: str, timeout: float = 30) -> tuple[int, str, str, bytes]:
    """Run `tender forward svc/web PORT:80`; GET /hostname once it is active; stop it."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tray", "forward", "--kubeconfig", str(kubeconfig), *extra,
         "svc/web", f"{port}:80", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    body = b""
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            event = json.loads(line)
            if event.get("status") == "active":
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    while chunk := s.recv(65536):
                        body += chunk
                proc.send_signal(signal.SIGINT)
                break
            if event.get("status") == "error":
                break
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(lines) + out, err, body


def _assert_works(result: tuple[int, str, str, bytes]) -> None:
    code, out, err, body = result
    assert b"200 OK" in body and b"web-" in body, (code, out, err)
    assert code == 0, (out, err)


def _assert_usage_error(result: tuple[int, str, str, bytes], *fragments: str) -> None:
    code, out, err, _ = result
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tender: error: "), err
    assert "Traceback" not in err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_bearer_token(demo: Cluster, tmp_path: Path):
    _assert_works(_forward(_kubeconfig(tmp_path, demo, {"token": demo.admin_token})))


def test_token_file(demo: Cluster, tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text(demo.admin_token)
    _assert_works(_forward(_kubeconfig(tmp_path, demo, {"tokenFile": str(token_file)})))


def test_client_certificate(demo: Cluster, tmp_path: Path):
    pki = Path(demo.state["ca_file"]).parent
    user = {"client-certificate": str(pki / "admin-client.crt"), "client-key": str(pki / "admin-client.key")}
    _assert_works(_forward(_kubeconfig(tmp_path, demo, user)))


def test_exec_plugin(demo: Cluster, tmp_path: Path):
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(
        "#!/bin/sh\n"
        'echo \'{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential",'
        f'"status":{{"token":"{demo.admin_token}"}}}}\'\n'
    )
    plugin.chmod(0o755)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
                     "interactiveMode": "Never"}}
    _assert_works(_forward(_kubeconfig(tmp_path, demo, user)))


def test_broken_exec_plugin_is_one_line_exit_2(demo: Cluster, tmp_path: Path):
    plugin = tmp_path / "plugin.sh"
    plugin.write_text("#!/bin/sh\necho 'sso session expired' >&2\nexit 1\n")
    plugin.chmod(0o755)
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": str(plugin),
                     "interactiveMode": "Never"}}
    kc = _kubeconfig(tmp_path, demo, user)
    _assert_usage_error(_forward(kc), str(kc), "context case", "credentials could not be loaded")


def test_unreadable_client_key_is_one_line_exit_2(demo: Cluster, tmp_path: Path):
    pki = Path(demo.state["ca_file"]).parent
    user = {"client-certificate": str(pki / "admin-client.crt"), "client-key": str(tmp_path / "missing.key")}
    kc = _kubeconfig(tmp_path, demo, user)
    _assert_usage_error(_forward(kc), str(kc), "context case")


def test_insecure_skip_tls_verify(demo: Cluster, tmp_path: Path):
    kc = _kubeconfig(tmp_path, demo, {"token": demo.admin_token},
                     cluster_extra={"certificate-authority": None, "insecure-skip-tls-verify": True})
    _assert_works(_forward(kc))


def test_verification_is_not_silently_disabled(two_clusters: tuple[Cluster, Cluster], demo: Cluster,
                                                tmp_path: Path):
    """Cluster a's server checked against cluster b's CA must fail, loudly."""
    a, b = two_clusters
    kc = _kubeconfig(tmp_path, a, {"token": a.admin_token},
                     cluster_extra={"certificate-authority": b.state["ca_file"]})
    code, out, err, body = _forward(kc)
    assert body == b""
    assert code == 1, (out, err)
    assert "CERTIFICATE_VERIFY_FAILED" in out + err


def test_tls_server_name(demo: Cluster, tmp_path: Path):
    # The serving certificate names kubernetes.default, not the address we dial.
    good = _kubeconfig(tmp_path, demo, {"token": demo.admin_token},
                       cluster_extra={"tls-server-name": "kubernetes.default"}, name="good")
    _assert_works(_forward(good))
    bad = _kubeconfig(tmp_path, demo, {"token": demo.admin_token},
                      cluster_extra={"tls-server-name": "not-the-apiserver.example"}, name="bad")
    code, out, err, body = _forward(bad)
    assert code == 1 and body == b""
    assert "CERTIFICATE_VERIFY_FAILED" in out + err or "certificate" in (out + err).lower()


def test_merged_kubeconfig_files(two_clusters: tuple[Cluster, Cluster], demo: Cluster, tmp_path: Path):
    """KUBECONFIG=a:b: a context defined only in the second file is usable."""
    first = _kubeconfig(tmp_path, demo, {"token": demo.admin_token}, name="first")
    cfg = yaml.safe_load(Path(demo.kubeconfig).read_text())
    second = tmp_path / "second"
    second.write_text(yaml.safe_dump(cfg))
    env_kc = f"{first}{os.pathsep}{second}"
    _assert_works(_forward(env_kc, "--context", demo.context, "-n", "demo"))


def test_missing_kubeconfig_and_unknown_context(demo: Cluster, tmp_path: Path):
    _assert_usage_error(_forward(tmp_path / "nope"), "kubeconfig not found")
    _assert_usage_error(_forward(demo.kubeconfig, "--context", "nope"), '"nope"', "tender-a")


def test_kubeconfig_is_a_directory(tmp_path: Path):
    _assert_usage_error(_forward(tmp_path), "is a directory")
