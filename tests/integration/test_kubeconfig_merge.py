"""KUBECONFIG with several files reaches the cluster kubectl would reach, through `tender forward`.

The test kubeconfig is split in two files in two directories: ``a.yaml``
(context tender-a, current-context tender-a) and ``b.yaml`` (context
tender-b, current-context tender-b), each naming its CA by a path relative to
its own directory.  Both clusters run a Deployment ``web`` in a namespace of
the same name; the pod that answers ``/hostname`` tells which cluster the
forward reached.  kubectl's rule: the first file that sets current-context
wins.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.clusterlib import ROOT, Cluster, deployment_manifest

pytestmark = pytest.mark.cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web(two_clusters: tuple[Cluster, Cluster]) -> tuple[str, dict[str, str]]:
    """The namespace, and the name of the one `web` pod in each cluster (by context)."""
    ns = f"merge-{uuid.uuid4().hex[:8]}"
    pods = {}
    for c in two_clusters:
        c.kubectl("create", "namespace", ns)
        c.apply(deployment_manifest("web", replicas=1), ns)
    for c in two_clusters:
        pods[c.context] = c.wait_ready(ns, "app=web", 1)[0]
    assert pods["tender-a"] != pods["tender-b"]
    yield ns, pods
    for c in two_clusters:
        c.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def _split(cluster: Cluster, directory: Path, *, current: str | None = "same") -> Path:
    """The cluster's admin context alone in directory/NAME.yaml, its CA at the relative path pki/ca.crt."""
    full = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    name = cluster.context
    entry = next(c for c in full["clusters"] if c["name"] == name)["cluster"]
    (directory / "pki").mkdir(parents=True, exist_ok=True)
    (directory / "pki" / "ca.crt").write_bytes(base64.b64decode(entry["certificate-authority-data"]))
    context = next(c for c in full["contexts"] if c["name"] == name)
    user = next(u for u in full["users"] if u["name"] == context["context"]["user"])
    doc = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": name, "cluster": {"server": entry["server"], "certificate-authority": "pki/ca.crt"}}],
           "users": [user], "contexts": [context]}
    if current is not None:
        doc["current-context"] = name if current == "same" else current
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def files(two_clusters: tuple[Cluster, Cluster], tmp_path: Path) -> tuple[Path, Path]:
    a, b = two_clusters
    return _split(a, tmp_path / "one"), _split(b, tmp_path / "two")


def _forward(kubeconfig_env: str, namespace: str, *extra: str, cwd: Path | None = None) -> tuple[int, str, str, str]:
    """`tender forward deploy/web PORT:8080` with KUBECONFIG set (no --kubeconfig); GET /hostname once active.

    Returns (exit code, the context the forward reports, stderr, the body).
    """
    port = _free_port()
    # This checkout's Tender, whatever the working directory.
    env = dict(os.environ, KUBECONFIG=kubeconfig_env, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tray", "forward", "-n", namespace, *extra, "deploy/web", f"{port}:8080",
         "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
    )
    body, context = "", ""
    try:
        for line in proc.stdout:
            event = json.loads(line)
            if event.get("event") != "status":
                continue
            if event.get("status") == "active":
                context = event.get("cluster_id", "")
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET /hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    raw = b""
                    while chunk := s.recv(65536):
                        raw += chunk
                body = raw.decode(errors="replace").partition("\r\n\r\n")[2].strip()
                proc.send_signal(signal.SIGINT)
                break
            if event.get("status") == "error":
                break
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, context, err, body


def test_the_first_file_that_sets_current_context_wins(two_clusters, files: tuple[Path, Path], web,
                                                       tmp_path: Path):
    (a, b), (ns, pods) = files, web
    # The working directory has no pki/: each CA is found next to its own file.
    code, context, err, body = _forward(f"{a}{os.pathsep}{b}", ns, cwd=tmp_path)
    assert (context, body) == ("tender-a", pods["tender-a"]), err
    assert code == 0, err
    code, context, err, body = _forward(f"{b}{os.pathsep}{a}", ns, cwd=tmp_path)
    assert (context, body) == ("tender-b", pods["tender-b"]), err
    assert code == 0, err
    # Files that set no current-context: kubectl needs --context then, and so does Tender.
    first = _split(two_clusters[0], tmp_path / "three", current=None)
    second = _split(two_clusters[1], tmp_path / "four", current=None)
    code, context, err, body = _forward(f"{first}{os.pathsep}{second}", ns, "--context", "tender-b")
    assert (context, body) == ("tender-b", pods["tender-b"]), err
    assert code == 0, err
    code, context, err, body = _forward(f"{first}{os.pathsep}{second}", ns)
    assert code == 2 and body == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--context" in lines[0] and "Traceback" not in err, err


def test_a_later_files_current_context_naming_no_context_is_ignored(two_clusters, web, tmp_path: Path):
    a, b = two_clusters
    ns, pods = web
    first = _split(a, tmp_path / "one")
    dangling = _split(b, tmp_path / "two", current="staging-that-is-gone")
    missing = tmp_path / "missing.yaml"
    code, context, err, body = _forward(os.pathsep.join(map(str, (missing, first, dangling))), ns)
    assert (context, body) == ("tender-a", pods["tender-a"]), err
    assert code == 0, err
