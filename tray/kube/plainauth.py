"""The usual kubeconfig credentials, read without importing the ``kubernetes`` client.

Importing the official client (its generated models, urllib3, requests,
oauthlib, pydantic) takes about 0.2 s: more than everything else Tender does
before its first forward is active.  Most kubeconfigs need none of it: a
server, its CA, and a client certificate, a bearer token (``token`` or
``tokenFile``) or a user name and password.  :func:`plain_config` reads
exactly those, field for field as the client's ``KubeConfigLoader`` reads
them (``load_and_set``: the same host, token, file paths, ``verify_ssl``,
``tls_server_name`` and ``proxy``), and returns ``None`` for everything else:

* an ``exec`` plugin or an ``auth-provider`` (OIDC, gcp, ...);
* a field of another type than the plain case's (a ``null``, a number, a
  mapping), a file it names that does not exist or cannot be read, a
  context without a cluster, a cluster without a server: whatever the client
  would refuse, so its own message reports it;
* a proxy in the environment for the server's scheme (``HTTPS_PROXY``,
  ``ALL_PROXY``, ...) and no ``proxy-url``: recent clients take it into
  ``Configuration.proxy``, older ones do not.

:mod:`tray.kube.kubeconfig` then hands the context to the client as before,
so the answer is the client's in every case; this module only saves its
import where the result is known.  Pure apart from reading the token file
and looking at the environment; never raises.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies

__all__ = ["PlainConfig", "plain_config"]


@dataclass
class PlainConfig:
    """The attributes of the client's ``Configuration`` that :class:`~tray.kube.kubeconfig.ClusterAuth` reads.

    ``host``: the server URL without a trailing slash; ``api_key``:
    ``{"BearerToken": "Bearer T"}`` or ``{"BearerToken": "Basic B64"}`` (the
    client's keys and values), else empty; file paths as the client gives them
    (``os.path.normpath``); ``None`` where the kubeconfig says nothing.
    """

    host: str
    api_key: dict[str, str] = field(default_factory=dict)
    ssl_ca_cert: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify_ssl: bool = True
    tls_server_name: str | None = None
    proxy: str | None = None
    # The client's Configuration has these too; nothing here sets them.
    username: str | None = None
    password: str | None = None
    refresh_api_key_hook: Any = None

    def get_api_key_with_prefix(self, identifier: str) -> str | None:
        """The key stored under ``identifier`` (no prefix is ever configured), else None."""
        return self.api_key.get(identifier) or None


class _NotPlain(Exception):
    """The context needs the client's loader."""


def _str(body: dict[str, Any], key: str) -> str:
    value = body[key]
    if not isinstance(value, str):
        raise _NotPlain
    return value


def _existing_file(body: dict[str, Any] | None, key: str) -> str | None:
    """The client's ``FileOrData(body, key).as_file()``, where it returns a path or None without writing a file."""
    if not body:
        return None
    if key + "-data" in body:
        raise _NotPlain  # the caller turns inline data into files first
    if key not in body:
        return None
    path = os.path.normpath(_str(body, key))
    if not os.path.isfile(path):
        raise _NotPlain  # the client says "File does not exist"
    return path


def _token(user: dict[str, Any]) -> str | None:
    """The ``Authorization`` value the client's loader sets for a user without exec and auth-provider."""
    if "token" in user:
        token = _str(user, "token")
    elif "tokenFile" in user:
        path = os.path.normpath(_str(user, "tokenFile"))
        try:
            with open(path) as f:  # text, the locale's encoding: as the client reads it
                token = f.read()
        except (OSError, ValueError):
            raise _NotPlain from None  # the client's error, from the client
    else:
        token = ""
    if token:
        return f"Bearer {token}"
    if "username" in user and "password" in user:
        pair = _str(user, "username") + ":" + _str(user, "password")
        try:
            raw = pair.encode("latin-1")  # urllib3.util.make_headers(basic_auth=...)
        except UnicodeEncodeError:
            raise _NotPlain from None
        return f"Basic {base64.b64encode(raw).decode()}"
    return None


def plain_config(config: dict[str, Any], context: str) -> PlainConfig | None:
    """The client's configuration for ``context``, or None when only the client may say.

    ``config``: a kubeconfig dict holding that context, its cluster and its
    user (:mod:`tray.kube.kubeconfig`'s ``_client_dict``: absolute paths, no
    ``*-data`` fields left).  Reads a ``tokenFile``; never raises.
    """
    try:
        return _plain(config, context)
    except (_NotPlain, KeyError, TypeError, AttributeError):
        return None


def _named(items: Any, name: str) -> dict[str, Any] | None:
    if not isinstance(items, list):
        raise _NotPlain
    found = [item for item in items if isinstance(item, dict) and item.get("name") == name]
    if len(found) > 1 or any(not isinstance(item, dict) or "name" not in item for item in items):
        raise _NotPlain
    return found[0] if found else None


def _plain(config: dict[str, Any], context: str) -> PlainConfig:
    ctx_entry = _named(config.get("contexts"), context)
    if ctx_entry is None or not isinstance(ctx_entry.get("context"), dict):
        raise _NotPlain
    ctx = ctx_entry["context"]
    user: dict[str, Any] | None = None
    user_name = ctx.get("user")
    if user_name and config.get("users"):
        entry = _named(config["users"], user_name)
        if entry is not None:
            user = entry.get("user")
            if not isinstance(user, dict):
                raise _NotPlain
    cluster_name = ctx.get("cluster")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise _NotPlain
    entry = _named(config.get("clusters"), cluster_name)
    if entry is None or not isinstance(entry.get("cluster"), dict):
        raise _NotPlain
    cluster = entry["cluster"]
    out = PlainConfig(host="")
    if user:
        if "auth-provider" in user or "exec" in user:
            raise _NotPlain
        token = _token(user)
        if token is not None:
            out.api_key["BearerToken"] = token
    if "server" not in cluster:
        raise _NotPlain  # the client's default host, http://localhost
    out.host = _str(cluster, "server").rstrip("/")
    if out.host.startswith("https"):
        out.ssl_ca_cert = _existing_file(cluster, "certificate-authority")
        out.cert_file = _existing_file(user, "client-certificate")
        out.key_file = _existing_file(user, "client-key")
    if "insecure-skip-tls-verify" in cluster:
        skip = cluster["insecure-skip-tls-verify"]
        if not isinstance(skip, bool):
            raise _NotPlain
        out.verify_ssl = not skip
    if "tls-server-name" in cluster:
        out.tls_server_name = _str(cluster, "tls-server-name")
    if "proxy-url" in cluster:
        out.proxy = _str(cluster, "proxy-url")
    else:
        proxies = getproxies()
        if proxies.get(urlsplit(out.host).scheme) or proxies.get("all"):
            raise _NotPlain  # the environment's proxy for this server: the client's version decides
    return out
