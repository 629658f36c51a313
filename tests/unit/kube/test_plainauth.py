"""The plain kubeconfig credentials (tray.kube.plainauth) against the client's own loader.

Whatever :func:`plain_config` answers must be exactly what the ``kubernetes``
client's ``KubeConfigLoader`` would have set (the server, the Authorization
value, the TLS files, verification, SNI name, proxy): it only saves importing
the client.  Where it is not sure it answers None, and the client decides.
Also: the engine and a plain context's credentials no longer import the
client at all (the 0.2 s that start-up saves).  Nothing is dialled.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tray.kube.kubeconfig import load_auth
from tray.kube.plainauth import plain_config

DATA = Path(__file__).resolve().parents[2] / "data" / "kubeconfig"
CA = str(DATA / "ca.crt")
KEY = str(DATA / "ca.key")
ROOT = Path(__file__).resolve().parents[3]


def _client(config: dict[str, Any], context: str = "c") -> tuple[Any, ...]:
    from kubernetes import client
    from kubernetes.config.kube_config import KubeConfigLoader

    cfg = client.Configuration()
    KubeConfigLoader(config_dict=copy.deepcopy(config), active_context=context,
                     config_base_path="").load_and_set(cfg)
    return _view(cfg)


def _view(cfg: Any) -> tuple[Any, ...]:
    return (cfg.host, cfg.get_api_key_with_prefix("BearerToken"), cfg.ssl_ca_cert, cfg.cert_file, cfg.key_file,
            bool(cfg.verify_ssl), cfg.tls_server_name, cfg.proxy)


def _config(cluster: dict[str, Any] | None, user: dict[str, Any] | None) -> dict[str, Any]:
    ctx: dict[str, Any] = {"cluster": "k"}
    cfg: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
                           "contexts": [{"name": "c", "context": ctx}], "clusters": [], "users": []}
    if cluster is not None:
        cfg["clusters"].append({"name": "k", "cluster": cluster})
    if user is not None:
        ctx["user"] = "u"
        cfg["users"].append({"name": "u", "user": user})
    return cfg


@contextmanager
def _env(proxies: dict[str, str]) -> Iterator[None]:
    """The environment with exactly these ``*_proxy`` variables."""
    with mock.patch.dict(os.environ):
        for name in [n for n in os.environ if n.lower().endswith("_proxy")]:
            del os.environ[name]
        os.environ.update(proxies)
        yield


@pytest.fixture()
def token_files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "empty").write_text("")
    return {"token": str(tmp_path / "token"), "empty": str(tmp_path / "empty")}


COMMON = [
    ({"server": "https://127.0.0.1:6443", "certificate-authority": CA}, {"client-certificate": CA, "client-key": KEY}),
    ({"server": "https://api.example:6443/", "certificate-authority": CA}, {"token": "abc.def"}),
    ({"server": "https://api.example:6443"}, {"username": "admin", "password": "s3cret"}),
    ({"server": "https://api.example:6443", "insecure-skip-tls-verify": True}, {"token": "t"}),
    ({"server": "https://api.example:6443", "insecure-skip-tls-verify": False, "tls-server-name": "kubernetes"},
     {"token": "t"}),
    ({"server": "https://api.example:6443", "proxy-url": "socks5://127.0.0.1:1080"}, {"token": "t"}),
    ({"server": "http://127.0.0.1:8080"}, {"client-certificate": "/nonexistent/ignored-over-http"}),
    ({"server": "https://api.example:6443"}, {"token": "", "username": "a", "password": "b"}),
    ({"server": "https://api.example:6443"}, {"username": "ümlaut", "password": ""}),
    ({"server": "https://api.example:6443"}, {}),
    ({"server": "https://api.example:6443"}, None),
]


@pytest.mark.parametrize("cluster,user", COMMON)
def test_common_kubeconfigs_are_read_as_the_client_reads_them(cluster: dict, user: dict | None) -> None:
    config = _config(cluster, user)
    with _env({}):
        plain = plain_config(config, "c")
        assert plain is not None, "a plain kubeconfig must not need the client"
        assert _view(plain) == _client(config)


def test_token_file_is_read_as_the_client_reads_it(token_files: dict[str, str]) -> None:
    for user in ({"tokenFile": token_files["token"]}, {"tokenFile": token_files["empty"], "username": "u",
                                                         "password": "p"}, {"token": "", "tokenFile": "/nonexistent"}):
        config = _config({"server": "https://api.example:6443"}, user)
        with _env({}):
            plain = plain_config(config, "c")
            assert plain is not None
            assert _view(plain) == _client(config)
    assert _view(plain_config(_config({"server": "https://a:1"}, {"tokenFile": token_files["token"]}), "c"))[1] \
        == "Bearer from-file\n"  # ClusterAuth strips it, as client-go does


@pytest.mark.parametrize("cluster,user", [
    ({"server": "https://a:1"}, {"exec": {"command": "kubectl-login", "apiVersion": "client.authentication.k8s.io/v1"}}),
    ({"server": "https://a:1"}, {"auth-provider": {"name": "oidc", "config": {}}}),
    ({"server": "https://a:1", "certificate-authority": "/nonexistent/ca.crt"}, {"token": "t"}),
    ({"server": "https://a:1"}, {"client-certificate": "/nonexistent/c.crt", "client-key": KEY}),
    ({"server": "https://a:1"}, {"tokenFile": "/nonexistent/token"}),
    ({"server": None}, {"token": "t"}),
    ({"certificate-authority": CA}, {"token": "t"}),  # no server: the client's default host
    ({"server": "https://a:1", "insecure-skip-tls-verify": None}, {"token": "t"}),
    ({"server": "https://a:1"}, {"token": None}),
    ({"server": "https://a:1"}, {"username": "a", "password": "€"}),  # not latin-1
])
def test_anything_else_is_left_to_the_client(cluster: dict, user: dict) -> None:
    with _env({}):
        assert plain_config(_config(cluster, user), "c") is None


def test_a_proxy_from_the_environment_is_left_to_the_client() -> None:
    config = _config({"server": "https://api.example:6443"}, {"token": "t"})
    for proxies in ({"HTTPS_PROXY": "http://proxy:3128"}, {"all_proxy": "socks5://proxy:1080"}):
        with _env(proxies):
            assert plain_config(config, "c") is None
    # A proxy for another scheme, or only NO_PROXY: no client takes a proxy for this server.
    for proxies in ({"http_proxy": "http://proxy:3128"}, {"NO_PROXY": "localhost"}):
        with _env(proxies):
            plain = plain_config(config, "c")
            assert plain is not None and plain.proxy is None
            assert _view(plain) == _client(config)
    with _env({"HTTPS_PROXY": "http://proxy:3128"}):  # the kubeconfig's own proxy-url wins in every client
        config = _config({"server": "https://a:1", "proxy-url": "http://mine:1"}, {"token": "t"})
        assert _view(plain_config(config, "c")) == _client(config)


VALUES = st.sampled_from
CLUSTER = st.fixed_dictionaries({}, optional={
    "server": VALUES(["https://a.example:6443", "https://a.example:6443//", "http://a.example:8080", "", None, 6443]),
    "certificate-authority": VALUES([CA, "/nonexistent/ca.crt", "", None, 1]),
    "insecure-skip-tls-verify": VALUES([True, False, None, "true", 0]),
    "tls-server-name": VALUES(["kubernetes", "", None]),
    "proxy-url": VALUES(["http://p:1", None]),
})
USER = st.fixed_dictionaries({}, optional={
    "token": VALUES(["abc", "", None, 7, "with space"]),
    "tokenFile": VALUES(["TOKEN", "EMPTY", "/nonexistent/token", "", None]),
    "username": VALUES(["admin", "", "ümlaut", "€", None, 3]),
    "password": VALUES(["pw", "", None]),
    "client-certificate": VALUES([CA, "/nonexistent/c.crt", "", None]),
    "client-key": VALUES([KEY, "/nonexistent/c.key", None]),
    "auth-provider": VALUES([{"name": "gcp"}]),
})
PROXIES = VALUES([{}, {"https_proxy": "http://p:3128"}, {"http_proxy": "http://p:3128"}, {"no_proxy": "*"}])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cluster=st.one_of(st.none(), CLUSTER), user=st.one_of(st.none(), USER), proxies=PROXIES)
def test_whatever_it_answers_is_the_clients_answer(token_files: dict[str, str], cluster: dict | None,
                                                    user: dict | None, proxies: dict[str, str]) -> None:
    if user is not None and isinstance(user.get("tokenFile"), str):
        user = {**user, "tokenFile": {"TOKEN": token_files["token"], "EMPTY": token_files["empty"]}.get(
            user["tokenFile"], user["tokenFile"])}
    config = _config(cluster, user)
    with _env(proxies):
        plain = plain_config(config, "c")
        if plain is not None:
            assert _view(plain) == _client(config)


def _kubeconfig(tmp_path: Path, user: dict[str, Any]) -> str:
    path = tmp_path / "kubeconfig"
    cfg = _config({"server": "https://127.0.0.1:6443", "certificate-authority": CA}, user)
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _imports_client(code: str) -> bool:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('kubernetes' in sys.modules)"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def test_start_up_does_not_import_the_client_for_a_plain_kubeconfig(tmp_path: Path) -> None:
    kubeconfig = _kubeconfig(tmp_path, {"client-certificate": CA, "client-key": KEY})
    assert not _imports_client(
        "import tray.cli, tray.cli.verbs\nfrom tray.engine.manager import ForwardManager\n"
        "from tray.kube.kubeconfig import load_auth\n"
        f"auth = load_auth('c', {kubeconfig!r})\nassert auth.server == 'https://127.0.0.1:6443'")


def test_an_exec_plugin_still_goes_through_the_client(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    plugin.write_text('#!/bin/sh\necho \'{"apiVersion": "client.authentication.k8s.io/v1", '
                      '"kind": "ExecCredential", "status": {"token": "from-plugin"}}\'\n')
    plugin.chmod(0o755)
    kubeconfig = _kubeconfig(tmp_path, {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                                 "command": str(plugin), "interactiveMode": "Never"}})
    auth = load_auth("c", kubeconfig)
    assert auth.snapshot()[0] == {"Authorization": "Bearer from-plugin"}
    assert _imports_client(f"from tray.kube.kubeconfig import load_auth\nload_auth('c', {kubeconfig!r})")
