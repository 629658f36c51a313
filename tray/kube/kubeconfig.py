"""Clusters from the user's kubeconfig, and how to authenticate to them.

Every context of the merged kubeconfig (``--kubeconfig``, else ``KUBECONFIG``
with several files, else ``~/.kube/config``) is a cluster whose id is the
context name.  The files are merged here, in one place, by kubectl's rule
(client-go's ``ClientConfigLoadingRules.Load``; see :func:`merge_kubeconfigs`):
listing the contexts and loading a context's credentials both start from that
one merged dict.  Authentication is then delegated to the official
``kubernetes`` client's ``KubeConfigLoader``, handed that dict, so client
certificates, tokens, token files, exec plugins, OIDC,
``insecure-skip-tls-verify``, ``tls-server-name`` and ``proxy-url`` behave as
they do for kubectl users of that client.  The plain cases (a certificate, a
token, a user and password) are read by :mod:`tray.kube.plainauth` as that
loader reads them, so the client (0.2 s to import) is imported only for the
others: exec plugins, auth-provider, anything the loader would refuse.

Loading can run an exec plugin (a subprocess, possibly slow), so the engine
calls :meth:`ClusterAuth.refresh` from a worker thread, never on its event
loop or the UI thread.  Loading contexts in parallel threads is safe: the
``*-data`` fields are written to files here, completely, before the client
sees a path (the client's own cache of such files publishes a file's name
before writing it, so a parallel load could open an empty CA file).

A kubeconfig that is being rewritten in place (kubectl truncates the file,
then writes it) is read again shortly, for at most :data:`REREAD_FOR` seconds,
rather than reported broken.

Credentials never leave this module in a printable form: :class:`ClusterAuth`
has a ``repr`` without them, and error messages name files and fields only.

Why one module of ~650 lines: its one job is "the kubeconfig as kubectl reads
it", and the merge (client-go's order, relative paths, inline ``*-data``),
the reread of a file caught mid-rewrite and the credential loading all work
on the same merged dict and report errors the same way (file, context,
field, never a secret).  Split, each part would re-derive where an entry
came from.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import copy
import hashlib
import json
import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tray.errors import UsageError
from tray.kube.plainauth import plain_config

__all__ = [
    "ClusterInfo", "ClusterAuth", "Kubeconfig", "kubeconfig_paths", "load_kubeconfig", "merge_kubeconfigs",
    "list_clusters", "default_context", "no_context_message", "load_auth", "REREAD_FOR",
]

#: How long a read is retried while a kubeconfig file looks mid-rewrite (seconds).
REREAD_FOR = 0.5
#: A file modified this recently (seconds) may still be being written.
_FRESH = 2.0

# (list key, entry key) of the three named lists of a kubeconfig.
_SECTIONS = (("clusters", "cluster"), ("contexts", "context"), ("users", "user"))
# Paths resolved against the directory of the file that holds them: client-go's
# GetClusterFileReferences and GetAuthInfoFileReferences (exec.command only when
# it has a slash; a bare name is looked up on PATH).
_PATH_FIELDS = {"clusters": ("certificate-authority",), "users": ("client-certificate", "client-key", "tokenFile")}
# Inline material the client would write to temp files itself (see _data_file).
_DATA_FIELDS = {"clusters": ("certificate-authority",), "users": ("client-certificate", "client-key")}

try:
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _YamlLoader = yaml.SafeLoader


def kubeconfig_paths(explicit: str | None = None) -> str:
    """The kubeconfig path list as kubectl resolves it (``os.pathsep``-separated).

    ``explicit`` (``--kubeconfig``) wins, then ``$KUBECONFIG``, then
    ``~/.kube/config`` (client-go's ``NewDefaultClientConfigLoadingRules``).
    """
    if explicit:
        return explicit
    env = os.environ.get("KUBECONFIG")
    if env:
        return env
    return str(Path.home() / ".kube" / "config")


# ---------------------------------------------------------------- merging
def merge_kubeconfigs(files: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Merge parsed kubeconfig files by kubectl's rule; pure (no file is read).

    ``files``: ``(path, document)`` pairs in precedence order (the order of
    ``KUBECONFIG``), where ``document`` is the file's parsed YAML (``None`` for
    an empty file).  ``path`` names the file in errors and is the base of its
    relative paths (made absolute against the current directory).

    Returns one kubeconfig dict: ``current-context`` from the first file that
    sets a non-empty one (absent if none does); ``clusters``, ``contexts`` and
    ``users`` from all files, combined by name, where a name defined in
    several files takes the first file's entry whole (later files' fields are
    never mixed in); entries in order of first appearance.  In each entry,
    ``certificate-authority``, ``client-certificate``, ``client-key``,
    ``tokenFile`` and an ``exec.command`` containing a slash are made absolute
    against the directory of the file that holds the entry.  ``preferences``
    and ``extensions`` are dropped (nothing here reads them).  This is
    client-go's ``ClientConfigLoadingRules.Load`` with ``ResolveLocalPaths``.

    Raises :class:`UsageError` naming the file and field for a document that
    is not a kubeconfig (not a mapping; clusters, contexts or users not a
    list; an entry without a name; a name twice in one file; a path that is
    not a string), as client-go refuses such a file.
    """
    return _merge(list(files))[0]


def _merge(files: list[tuple[str, Any]]) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    """:func:`merge_kubeconfigs`, plus where each entry (and current-context) came from."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    origin: dict[tuple[str, str], str] = {}
    entries: dict[str, dict[str, Any]] = {section: {} for section, _ in _SECTIONS}
    for path, doc in files:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise UsageError("not a kubeconfig: expected a mapping at the top level", source=path)
        current = doc.get("current-context")
        if current is not None and not isinstance(current, str):
            raise UsageError("expected a string", source=path, field="current-context")
        if current and "current-context" not in merged:
            merged["current-context"] = current
            origin[("current-context", "")] = path
        base = os.path.dirname(os.path.abspath(path))
        for section, key in _SECTIONS:
            items = doc.get(section)
            if items is None:
                continue
            if not isinstance(items, list):
                raise UsageError("expected a list", source=path, field=section)
            seen: set[str] = set()
            for i, item in enumerate(items):
                entry = _checked_entry(path, section, key, i, item)
                name = entry["name"]
                if name in seen:
                    # client-go refuses such a file ("duplicate name ... in list").
                    raise UsageError(f'duplicate name "{name}"', source=path, field=section)
                seen.add(name)
                if name not in entries[section]:
                    entries[section][name] = _resolved(entry, section, key, base)
                    origin[(section, name)] = path
    for section, _ in _SECTIONS:
        merged[section] = list(entries[section].values())
    return merged, origin


def _checked_entry(path: str, section: str, key: str, i: int, item: Any) -> dict[str, Any]:
    where = f"{section}[{i}]"
    if not isinstance(item, dict):
        raise UsageError("expected a mapping with a name", source=path, field=where)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise UsageError("expected a non-empty string", source=path, field=f"{where}.name")
    where = f"{section}[name={name}]"
    body = item.get(key)
    if body is not None and not isinstance(body, dict):
        raise UsageError("expected a mapping", source=path, field=f"{where}.{key}")
    body = body or {}
    for f in (*_PATH_FIELDS.get(section, ()), *(d + "-data" for d in _DATA_FIELDS.get(section, ()))):
        if body.get(f) is not None and not isinstance(body[f], str):
            raise UsageError("expected a string", source=path, field=f"{where}.{key}.{f}")
    if section == "users" and body.get("exec") is not None:
        exec_ = body["exec"]
        if not isinstance(exec_, dict) or not isinstance(exec_.get("command", ""), str):
            raise UsageError("expected a mapping with a command string", source=path, field=f"{where}.user.exec")
    if section == "contexts":
        for f in ("cluster", "user", "namespace"):
            if body.get(f) is not None and not isinstance(body[f], str):
                raise UsageError("expected a string", source=path, field=f"{where}.context.{f}")
    return {"name": name, key: body}


def _resolved(entry: dict[str, Any], section: str, key: str, base: str) -> dict[str, Any]:
    out = copy.deepcopy(entry)
    body = out[key]
    for f in _PATH_FIELDS.get(section, ()):
        if body.get(f):
            body[f] = _absolute(body[f], base)
    if section == "users" and isinstance(body.get("exec"), dict):
        command = body["exec"].get("command")
        if command and os.sep in command:
            body["exec"]["command"] = _absolute(command, base)
    return out


def _absolute(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


# ---------------------------------------------------------------- reading
@dataclass(frozen=True)
class Kubeconfig:
    """The merged kubeconfig and where its parts came from."""

    paths: str  # the path list as given
    files: tuple[str, ...]  # the files read, in order (missing ones skipped)
    config: dict[str, Any]  # the merged dict (merge_kubeconfigs)
    origin: dict[tuple[str, str], str]  # (section, name) -> file; ("current-context", "") -> file

    @property
    def current_context(self) -> str | None:
        return self.config.get("current-context") or None

    def contexts(self) -> list[str]:
        return [c["name"] for c in self.config["contexts"]]

    def entry(self, section: str, name: str) -> dict[str, Any] | None:
        key = dict(_SECTIONS)[section]
        for item in self.config[section]:
            if item["name"] == name:
                return item[key]
        return None

    def source(self, section: str, name: str) -> str:
        """The file that defines an entry (for error messages), else the path list."""
        return self.origin.get((section, name), self.paths)


class _MidWrite(Exception):
    """A file looked as if it was being rewritten: read the files again once they change."""

    def __init__(self, stamps: tuple[tuple[int, int] | None, ...]) -> None:
        super().__init__("mid-write")
        self.stamps = stamps


def _stamps(files: list[str]) -> tuple[tuple[int, int] | None, ...]:
    out: list[tuple[int, int] | None] = []
    for p in files:
        try:
            st = os.stat(p)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def load_kubeconfig(kubeconfig: str | None = None) -> Kubeconfig:
    """Read and merge the kubeconfig files (:func:`kubeconfig_paths`).

    Blocking: reads every file.  A file that looks mid-rewrite (kubectl
    truncates it, then writes it: changed while read, or modified in the last
    2 s and empty or not a valid kubeconfig) is read again as soon as a file
    changes (checked every 5 ms), for at most :data:`REREAD_FOR` seconds in
    all; then the files are taken as they are.  Missing files in the list are
    skipped, as kubectl skips them; if none of them exists that is an error.
    A path listed twice is read once.

    Raises :class:`UsageError` with one line naming the file (and its line
    and field where known): not found, a directory, unreadable, not YAML, not
    a kubeconfig.
    """
    paths = kubeconfig_paths(kubeconfig)
    listed = list(dict.fromkeys(os.path.expanduser(p) for p in paths.split(os.pathsep) if p))
    if not listed:
        raise UsageError("no kubeconfig given", field="kubeconfig")
    deadline = time.monotonic() + REREAD_FOR
    while True:
        try:
            # Past the deadline, the files are taken as they are (an empty
            # file is a valid empty config; a broken one is reported).
            return _load_once(paths, listed, final=time.monotonic() >= deadline)
        except _MidWrite as exc:
            while time.monotonic() < deadline and _stamps(listed) == exc.stamps:
                time.sleep(0.005)


def _load_once(paths: str, listed: list[str], final: bool) -> Kubeconfig:
    stamps = _stamps(listed)
    docs: list[tuple[str, Any]] = []
    fresh_files: set[str] = set()
    for p in listed:
        try:
            data, fresh = _read_file(p)
        except FileNotFoundError:
            continue  # client-go skips missing files of the list
        except IsADirectoryError:
            raise UsageError("is a directory, not a kubeconfig file", source=p) from None
        except PermissionError:
            raise UsageError("kubeconfig is not readable (permission denied)", source=p) from None
        except OSError as exc:
            raise UsageError(f"cannot read kubeconfig: {exc.strerror or exc}", source=p) from None
        if fresh:
            fresh_files.add(p)
        if fresh and not final and not data.strip():
            raise _MidWrite(stamps)  # truncated, not yet written (an empty file is a valid empty config)
        try:
            doc = yaml.load(data, Loader=_YamlLoader)  # noqa: S506 (a safe loader)
        except yaml.YAMLError as exc:
            if fresh and not final:
                raise _MidWrite(stamps) from None
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            problem = getattr(exc, "problem", None) or exc
            raise UsageError(f"cannot read kubeconfig: {_clean(Exception(problem))}", source=p,
                             line=mark.line + 1 if mark is not None else None) from None
        docs.append((p, doc))
    if not docs:
        if len(listed) == 1:
            raise UsageError("kubeconfig not found", source=paths)
        raise UsageError("kubeconfig not found (none of these files exists)", source=paths)
    try:
        config, origin = _merge(docs)
    except UsageError as exc:
        if exc.source in fresh_files and not final:
            raise _MidWrite(stamps) from None
        raise
    return Kubeconfig(paths=paths, files=tuple(p for p, _ in docs), config=config, origin=origin)


def _read_file(path: str) -> tuple[bytes, bool]:
    """A file's bytes, and whether it may be mid-write (changed while read, or just modified)."""
    with open(path, "rb") as f:
        before = os.fstat(f.fileno())
        data = f.read()
        after = os.fstat(f.fileno())
    changed = (before.st_mtime_ns, before.st_size) != (after.st_mtime_ns, after.st_size) or len(data) != after.st_size
    return data, changed or abs(time.time() - after.st_mtime) < _FRESH


# ---------------------------------------------------------------- contexts
@dataclass(frozen=True)
class ClusterInfo:
    """One kubeconfig context as the menu and the CLI show it."""

    id: str  # the context name
    cluster_name: str
    user: str
    namespace: str  # the context's namespace, else "default"
    current: bool = False


def list_clusters(kubeconfig: str | None = None) -> list[ClusterInfo]:
    """All contexts of the merged kubeconfig, in order of first appearance.

    ``current`` marks the merged current-context (the first file's that sets
    one); none is marked when no file sets one or it names no context (kubectl
    still uses every context then, and so does Tender).  Blocking: see
    :func:`load_kubeconfig`, whose :class:`UsageError` it raises.
    """
    kc = load_kubeconfig(kubeconfig)
    out = []
    for item in kc.config["contexts"]:
        c = item["context"]
        out.append(ClusterInfo(
            id=item["name"],
            cluster_name=str(c.get("cluster") or ""),
            user=str(c.get("user") or ""),
            namespace=str(c.get("namespace") or "default"),
            current=item["name"] == kc.current_context,
        ))
    return out


def default_context(kubeconfig: str | None = None) -> str:
    """The context kubectl uses when none is given: the merged current-context.

    Blocking (reads the files).  Raises :class:`UsageError` (field
    ``--context``) saying what to pass when no file sets a current-context or
    it names no context, e.g. ``the kubeconfig sets no current-context; pass
    --context NAME (contexts: tender-a, tender-b)``.
    """
    kc = load_kubeconfig(kubeconfig)
    names = kc.contexts()
    current = kc.current_context
    if current in names:
        return str(current)
    raise UsageError(no_context_message(kc), field="--context")


def no_context_message(kc: Kubeconfig, remedy: str = "pass --context NAME") -> str:
    """One line: why there is no default context, then ``remedy`` and the contexts to choose from.

    ``remedy`` says what to do, e.g. ``set context: NAME`` for a profile.
    """
    names = kc.contexts()
    if not names:
        return f"the kubeconfig ({kc.paths}) has no contexts"
    listing = ", ".join(names)
    current = kc.current_context
    if current:
        return (f'current-context "{current}" (set in {kc.source("current-context", "")}) is not a context '
                f"of the kubeconfig; {remedy} (contexts: {listing})")
    return f"the kubeconfig sets no current-context; {remedy} (contexts: {listing})"


# ---------------------------------------------------------------- credentials
_data_lock = threading.Lock()
_data_files: dict[str, str] = {}  # sha256 of the content -> file
_data_dir: list[str] = []  # the private directory, once made


def _data_file(content: bytes) -> str:
    """A file holding ``content``, written completely before its name is returned.

    One file per distinct content for the life of the process (0600, in a
    private 0700 directory removed at exit), shared by every thread.  The
    client's own equivalent (``_create_temp_file_with_content``) publishes a
    file's name before writing it, so a context loaded in another thread at
    that moment read an empty CA file ("cannot load TLS material:
    NO_CERTIFICATE_OR_CRL_FOUND").
    """
    key = hashlib.sha256(content).hexdigest()
    with _data_lock:
        path = _data_files.get(key)
        if path is not None and os.path.isfile(path):
            return path
        if not _data_dir or not os.path.isdir(_data_dir[0]):
            _data_dir[:] = [tempfile.mkdtemp(prefix="tender-kubeconfig-")]
            atexit.register(shutil.rmtree, _data_dir[0], True)
        fd, path = tempfile.mkstemp(dir=_data_dir[0])
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        _data_files[key] = path
        return path


def _client_dict(kc: Kubeconfig, context: str) -> dict[str, Any]:
    """The one context, its cluster and its user, ready for the client's loader.

    Inline ``*-data`` (base64) becomes a file from :func:`_data_file`; the data
    wins over a path, as in the client.  Raises UsageError for data that is
    not base64.
    """
    ctx = kc.entry("contexts", context) or {}
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "current-context": context,
                           "contexts": [{"name": context, "context": copy.deepcopy(ctx)}],
                           "clusters": [], "users": []}
    for section, key, name in (("clusters", "cluster", ctx.get("cluster")), ("users", "user", ctx.get("user"))):
        body = kc.entry(section, name) if name else None
        if body is None:
            continue
        body = copy.deepcopy(body)
        for f in _DATA_FIELDS[section]:
            data = body.pop(f + "-data", None)
            if not data:
                continue
            try:
                # Line breaks are allowed (Go's decoder skips them); nothing else outside the alphabet.
                content = base64.b64decode("".join(str(data).split()), validate=True)
            except (binascii.Error, ValueError):
                raise UsageError("not valid base64", source=kc.source(section, name),
                                 field=f"{section}[name={name}].{key}.{f}-data") from None
            body[f] = _data_file(content)
        out[section].append({"name": name, key: body})
    return out


_exec_locks_guard = threading.Lock()
_exec_locks: dict[str, threading.Lock] = {}


def _exec_lock(user: dict[str, Any] | None) -> threading.Lock | None:
    """One lock per exec plugin configuration (None for users without one).

    Contexts sharing an exec plugin load one at a time: the plugin runs once
    at a time (an interactive login asks once, not once per context), and the
    client writes certificates returned by a plugin through its temp-file
    cache, which is not safe for parallel writers of the same content.
    """
    exec_ = (user or {}).get("exec")
    if not exec_:
        return None
    key = json.dumps(exec_, sort_keys=True, default=str)
    with _exec_locks_guard:
        return _exec_locks.setdefault(key, threading.Lock())


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
    _source: str = field(default="", repr=False)  # the file defining the context, for errors
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
        """(Re)load credentials.  Blocking: may run an exec plugin (for as long as it takes).

        ``full`` reads the kubeconfig files again and merges them
        (:func:`load_kubeconfig`, which may wait up to :data:`REREAD_FOR`
        seconds for a file being rewritten), then has the client's
        ``KubeConfigLoader`` load this context from the merged dict;
        otherwise the client's own hook renews only what has expired.  Safe to
        call from several threads for different contexts at once.  Raises
        :class:`UsageError` (one line naming the file and the context) for a
        broken kubeconfig, an unknown context, unreadable TLS material or a
        failing exec plugin.
        """
        cfg, source = self._config, self._source
        if cfg is None or full:
            cfg, source = self._load()
        elif cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        headers: dict[str, str] = {}
        auth = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix("BearerToken")
        if auth:
            # A tokenFile's trailing newline is not part of the token (client-go trims it; the client does not).
            auth = auth.strip()
            headers["Authorization"] = auth if " " in auth else f"Bearer {auth}"
        if cfg.username and cfg.password and "Authorization" not in headers:
            headers["Authorization"] = cfg.get_basic_auth_token()
        ctx = _ssl_context(cfg, source, self.context)
        identity = (cfg.host, tuple(sorted(headers.items())), cfg.cert_file, cfg.key_file, cfg.ssl_ca_cert,
                    bool(cfg.verify_ssl), cfg.proxy)
        with self._lock:
            if identity != self._identity:
                self._identity = identity
                self.generation += 1
            self._config, self._source = cfg, source
            self.server = cfg.host.rstrip("/")
            self.proxy = cfg.proxy or None
            self.tls_server_name = getattr(cfg, "tls_server_name", None) or None
            self.verify = bool(cfg.verify_ssl)
            self._headers = headers
            self._ssl = ctx

    def _load(self) -> tuple[Any, str]:
        """A fresh client Configuration for the context, and the file that defines the context."""
        kc = load_kubeconfig(self.kubeconfig)
        if self.context not in kc.contexts():
            known = ", ".join(kc.contexts()) or "none"
            raise UsageError(f'context "{self.context}" not found in the kubeconfig (contexts: {known})',
                             source=kc.paths, field="context")
        source = kc.source("contexts", self.context)
        where = f"context {self.context}"
        # The client logs (rather than raises) a failing exec plugin and
        # goes on without credentials; catch that to say it clearly.
        failures = _CaptureErrors()
        logging.getLogger().addFilter(failures)
        try:
            config_dict = _client_dict(kc, self.context)
            # Certificates, tokens, user and password: read as the client would
            # (tray.kube.plainauth), without importing it (0.2 s at start-up);
            # everything else by the client's own loader.
            cfg = plain_config(config_dict, self.context) or _client_config(config_dict, self.context)
            if failures.messages and not (cfg.api_key or cfg.cert_file):
                raise UsageError(f"credentials could not be loaded: {_clean(Exception(failures.messages[0]))}",
                                 source=source, field=where)
        except _Refused as exc:
            raise UsageError(str(exc), source=source, field=where) from None
        except OSError as exc:
            raise UsageError(f"cannot read a file it names: {exc.strerror}: {exc.filename}",
                             source=source, field=where) from None
        except UsageError:
            raise
        except Exception as exc:  # wrong types the merge does not check
            raise UsageError(f"cannot read kubeconfig: {_clean(exc)}", source=source, field=where) from None
        finally:
            logging.getLogger().removeFilter(failures)
        return cfg, source

    def __repr__(self) -> str:  # never show credentials
        return f"ClusterAuth(context={self.context!r}, server={self.server!r})"


class _Refused(Exception):
    """The client's loader refused the context (its ``ConfigException``, message cleaned)."""


def _client_config(config_dict: dict[str, Any], context: str) -> Any:
    """The ``kubernetes`` client's ``Configuration`` for ``context``, loaded by its ``KubeConfigLoader``.

    Imports the client (about 0.2 s the first time).  Blocking: may run an
    exec plugin, one at a time per plugin configuration (:func:`_exec_lock`).
    Raises :class:`_Refused` for the client's ``ConfigException``, and what
    the loader raises otherwise (``OSError`` for a file it cannot read).
    """
    from kubernetes import client as k8s_client
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigLoader

    cfg = k8s_client.Configuration()
    users = config_dict["users"]
    lock = _exec_lock(users[0]["user"] if users else None)
    try:
        # config_base_path "": every path is absolute already, and an exec
        # plugin runs in Tender's working directory, as under kubectl.
        loader = KubeConfigLoader(config_dict=config_dict, active_context=context, config_base_path="")
        if lock is None:
            loader.load_and_set(cfg)
        else:
            with lock:
                loader.load_and_set(cfg)
    except ConfigException as exc:
        raise _Refused(_clean(exc)) from None
    return cfg


class _CaptureErrors(logging.Filter):
    """Takes the client's root-logger errors off the console; we report them.

    Only this thread's: contexts load in parallel threads, and one context's
    failing exec plugin is not another's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self._thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.thread == self._thread:
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
    """Credentials for one context (blocking, see :meth:`ClusterAuth.refresh`; run it off the event loop)."""
    auth = ClusterAuth(context=context, kubeconfig=kubeconfig_paths(kubeconfig))
    auth.refresh(full=True)
    return auth
