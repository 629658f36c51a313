"""Clusters from the user's kubeconfig, and how to authenticate to them.

Every context of the merged kubeconfig (``--kubeconfig``, else ``KUBECONFIG``
with several files, else ``~/.kube/config``) is a cluster whose id is the
context name.  Authentication is delegated to the official ``kubernetes``
client's kubeconfig loader, so client certificates, tokens, token files, exec
plugins, OIDC, ``insecure-skip-tls-verify``, ``tls-server-name`` and
``proxy-url`` behave exactly as they do for kubectl users of that client.

Loading can run an exec plugin (a subprocess, possibly slow), so the engine
calls :meth:`ClusterAuth.refresh` from a worker thread, never on its event
loop or the UI thread.

Credentials never leave this module in a printable form: :class:`ClusterAuth`
has a ``repr`` without them, and error messages name files and fields only.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from tray.errors import UsageError

__all__ = ["ClusterInfo", "ClusterAuth", "kubeconfig_paths", "list_clusters", "load_auth"]


def kubeconfig_paths(explicit: str | None = None) -> str:
    """The kubeconfig path list as kubectl resolves it (``:``-separated)."""
    if explicit:
        return explicit
    env = os.environ.get("KUBECONFIG")
    if env:
        return env
    return str(Path.home() / ".kube" / "config")


@dataclass(frozen=True)
class ClusterInfo:
    """One kubeconfig context as the menu and the CLI show it."""

    id: str  # the context name
    cluster_name: str
    user: str
    namespace: str  # the context's namespace, else "default"
    current: bool = False


def list_clusters(kubeconfig: str | None = None) -> list[ClusterInfo]:
    """All contexts of the merged kubeconfig; raises UsageError on a broken one."""
    paths = kubeconfig_paths(kubeconfig)
    _check_files(paths)
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=paths)
    except ConfigException as exc:
        # The client rejects the whole file when current-context names a
        # context that is gone (say, removed while Tender runs); kubectl
        # still uses every other context then, and so does Tender.
        contexts, current = _contexts_without_current(paths), None
        if contexts is None:
            raise UsageError(_clean(exc), source=paths, field="kubeconfig") from None
    except Exception as exc:  # yaml errors, wrong types in the file
        raise UsageError(f"cannot read kubeconfig: {_clean(exc)}", source=paths) from None
    out = []
    current_name = (current or {}).get("name")
    for ctx in contexts or []:
        c = ctx.get("context") or {}
        out.append(
            ClusterInfo(
                id=ctx["name"],
                cluster_name=str(c.get("cluster", "")),
                user=str(c.get("user", "")),
                namespace=str(c.get("namespace") or "default"),
                current=ctx["name"] == current_name,
            )
        )
    return out


def _contexts_without_current(paths: str) -> list[dict[str, Any]] | None:
    """The contexts of a kubeconfig whose current-context dangles; None if that is not its problem."""
    try:
        from kubernetes.config.kube_config import KubeConfigMerger

        doc = KubeConfigMerger(paths).config.value
        # Merged entries are the client's ConfigNode wrappers; take their dicts.
        contexts = [getattr(c, "value", c) for c in doc.get("contexts") or []]
        names = {c.get("name") for c in contexts if isinstance(c, dict)}
        if not contexts or not all(isinstance(c, dict) and c.get("name") for c in contexts):
            return None
        return contexts if doc.get("current-context") not in names else None
    except Exception:
        return None


def _check_files(paths: str) -> None:
    existing = [p for p in paths.split(os.pathsep) if p]
    if not existing:
        raise UsageError("no kubeconfig given", field="kubeconfig")
    if not any(Path(p).expanduser().is_file() for p in existing):
        if len(existing) == 1 and Path(existing[0]).expanduser().is_dir():
            raise UsageError("is a directory, not a kubeconfig file", source=paths)
        raise UsageError("kubeconfig not found", source=paths)
    for p in existing:
        path = Path(p).expanduser()
        if path.exists() and not os.access(path, os.R_OK):
            raise UsageError("kubeconfig is not readable (permission denied)", source=p)


def _clean(exc: BaseException) -> str:
    """One line of an exception's message, without anything token-like."""
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


@dataclass
class ClusterAuth:
    """How to reach and authenticate to one context's API server.

    ``headers`` and ``ssl_context`` are rebuilt by :meth:`refresh`; readers
    take a snapshot through :meth:`snapshot` so a refresh never tears them.
    """

    context: str
    kubeconfig: str
    server: str = ""
    proxy: str | None = None
    tls_server_name: str | None = None
    verify: bool = True
    _headers: dict[str, str] = field(default_factory=dict, repr=False)
    _ssl: ssl.SSLContext | None = field(default=None, repr=False)
    _config: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Bumped whenever a refresh changes who we are or where we connect, so
    #: long-lived connections (port-forward tunnels) can tell they were
    #: opened with credentials the kubeconfig no longer names.
    generation: int = 0
    _identity: tuple[Any, ...] = field(default=(), repr=False)

    def snapshot(self) -> tuple[dict[str, str], ssl.SSLContext | None]:
        with self._lock:
            return dict(self._headers), self._ssl

    def refresh(self, *, full: bool = False) -> None:
        """(Re)load credentials.  Blocking: may run an exec plugin.

        ``full`` reloads the kubeconfig from scratch (after a 401); otherwise
        the client's own hook renews only what has expired.
        """
        cfg = self._config
        if cfg is None or full:
            cfg = k8s_client.Configuration()
            # The client logs (rather than raises) a failing exec plugin and
            # goes on without credentials; catch that to say it clearly.
            failures = _CaptureErrors()
            logging.getLogger().addFilter(failures)
            try:
                k8s_config.load_kube_config(
                    config_file=self.kubeconfig, context=self.context,
                    client_configuration=cfg, persist_config=False,
                )
                if failures.messages and not (cfg.api_key or cfg.cert_file):
                    raise UsageError(f"credentials could not be loaded: {_clean(Exception(failures.messages[0]))}",
                                     source=self.kubeconfig, field=f"context {self.context}")
            except ConfigException as exc:
                raise UsageError(_clean(exc), source=self.kubeconfig, field=f"context {self.context}") from None
            except OSError as exc:
                raise UsageError(f"cannot read a file it names: {exc.strerror}: {exc.filename}",
                                 source=self.kubeconfig, field=f"context {self.context}") from None
            except UsageError:
                raise
            except Exception as exc:  # YAML errors, wrong types: the file was edited badly
                raise UsageError(f"cannot read kubeconfig: {_clean(exc)}", source=self.kubeconfig,
                                 field=f"context {self.context}") from None
            finally:
                logging.getLogger().removeFilter(failures)
        elif cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        headers: dict[str, str] = {}
        auth = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix("BearerToken")
        if auth:
            headers["Authorization"] = auth if " " in auth else f"Bearer {auth}"
        if cfg.username and cfg.password and "Authorization" not in headers:
            headers["Authorization"] = cfg.get_basic_auth_token()
        ctx = _ssl_context(cfg, self.kubeconfig, self.context)
        identity = (cfg.host, tuple(sorted(headers.items())), cfg.cert_file, cfg.key_file, cfg.ssl_ca_cert,
                    bool(cfg.verify_ssl), cfg.proxy)
        with self._lock:
            if identity != self._identity:
                self._identity = identity
                self.generation += 1
            self._config = cfg
            self.server = cfg.host.rstrip("/")
            self.proxy = cfg.proxy or None
            self.tls_server_name = getattr(cfg, "tls_server_name", None) or None
            self.verify = bool(cfg.verify_ssl)
            self._headers = headers
            self._ssl = ctx

    def __repr__(self) -> str:  # never show credentials
        return f"ClusterAuth(context={self.context!r}, server={self.server!r})"


class _CaptureErrors(logging.Filter):
    """Takes the client's root-logger errors off the console; we report them."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.messages.append(record.getMessage())
            return False
        return True


def _ssl_context(cfg: Any, kubeconfig: str, context: str) -> ssl.SSLContext | None:
    if not cfg.host.startswith("https"):
        return None
    try:
        if cfg.verify_ssl:
            ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        else:
            # Only because the kubeconfig says insecure-skip-tls-verify.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load TLS material: {_clean(exc)}", source=kubeconfig,
                         field=f"context {context}") from None
    # Port-forward streams are long-lived and latency-sensitive; HTTP/1.1 is
    # what the WebSocket upgrade needs.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def load_auth(context: str, kubeconfig: str | None = None) -> ClusterAuth:
    """Credentials for one context (blocking; run it off the event loop)."""
    auth = ClusterAuth(context=context, kubeconfig=kubeconfig_paths(kubeconfig))
    auth.refresh(full=True)
    return auth
