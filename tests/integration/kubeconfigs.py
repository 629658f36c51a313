"""Kubeconfigs a test writes: one context through a proxy, or one user with its own RBAC."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.clusterlib import Cluster


def _load(cluster: Cluster) -> dict:
    return yaml.safe_load(Path(cluster.kubeconfig).read_text())


def _pick(items: list[dict], name: str) -> dict:
    return next(i for i in items if i["name"] == name)


def server_address(cluster: Cluster) -> tuple[str, int]:
    cfg = _load(cluster)
    ctx = _pick(cfg["contexts"], cluster.context)["context"]
    url = urlsplit(_pick(cfg["clusters"], ctx["cluster"])["cluster"]["server"])
    return url.hostname or "127.0.0.1", url.port or 443


def single_context(cluster: Cluster, path: Path, *, server: str | None = None, token: str | None = None,
                   name: str | None = None) -> str:
    """A kubeconfig with the cluster's context alone (named ``name``), optionally
    through another server address (same CA: the certificate names 127.0.0.1)
    and with another user's bearer token."""
    cfg = _load(cluster)
    ctx = _pick(cfg["contexts"], cluster.context)
    cl = json.loads(json.dumps(_pick(cfg["clusters"], ctx["context"]["cluster"])))
    user = json.loads(json.dumps(_pick(cfg["users"], ctx["context"]["user"])))
    if server:
        cl["cluster"]["server"] = server
    if token:
        user = {"name": f"{name or 'u'}-user", "user": {"token": token}}
    name = name or cluster.context
    out = {
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [cl], "users": [user],
        "contexts": [{"name": name, "context": {"cluster": cl["name"], "user": user["name"]}}],
    }
    path.write_text(yaml.safe_dump(out))
    return str(path)


def user_with_rules(cluster: Cluster, namespace: str, name: str, rules: list[dict], path: Path) -> str:
    """A ServiceAccount bound to a Role with ``rules`` in ``namespace``; a kubeconfig
    (context ``name``) with its token."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
            "rules": rules}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]}
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}
    cluster.apply(yaml.safe_dump_all([sa, role, binding]), namespace)
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
    return single_context(cluster, path, token=token, name=name)
