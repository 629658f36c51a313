"""Reading other tools' saved port-forwards as Tender profiles (``tender import``).

Pure: text or parsed JSON in, profile dicts out (spelled as
:meth:`~tray.profiles.model.Profile.to_dict` spells them: ``name``,
``context``, ``namespace``, ``target``, ``ports``, ``address``; keys at
their default left out).  No I/O; the CLI (:mod:`tray.cli.importing`) reads
the file, checks the profiles with the profiles file's own rules and writes
them.  Three formats:

``kubectl``
    ``kubectl port-forward`` command lines (TCP, as kubectl forwards), one per line (a line ending in
    ``\\`` continues on the next), as a shell would split them (quotes, ``#``
    comments; blank lines are ignored).  The command is ``kubectl``, ``k``,
    ``kubectl.exe`` or a path to one of those, optionally after ``VAR=value``
    words, and may end with ``&``.  kubectl's flags may stand anywhere:
    ``-n``/``--namespace``, ``--context``, ``--address`` (comma-separated, as
    kubectl takes it), and flags that do not change what is forwarded
    (``--pod-running-timeout``, ``-v``, ``--request-timeout``, ...) are read;
    flags that pick another cluster or user than the kubeconfig's context
    (``--server``, ``--cluster``, ``--user``, ``--token``, ...) cannot be
    expressed in a profile, so such a line is skipped.  The target and the
    ports are read by :func:`tray.domain.targets.parse_target` and
    :func:`tray.domain.portspec.parse_port_spec`: kubectl's own rules.
    ``--kubeconfig`` is read and ignored (a profile runs on the engine's
    kubeconfig); :attr:`ImportResult.notes` says so.

``kftray``
    kftray's JSON export: a list of configs (kftray's ``Config``, in
    hcavarsan/kftray ``crates/kftray-commons/src/models/config_model.rs``;
    examples in its ``examples/`` folder and ``docs/kftray/USAGE.md``).
    ``workload_type`` ``service`` (the default) becomes ``svc/SERVICE``, and
    ``proxy`` (kftray's relay pod to ``remote_address``, a host or address
    outside the cluster, port ``remote_port``) a ``host/NAME`` or
    ``ip/ADDRESS`` profile, run through Tender's relay pod; ``protocol: udp``
    becomes ``/udp`` ports.  ``pod`` entries name pods by label selector
    (``target: app=web``), which a profile cannot, and ``expose`` entries
    expose a local port to the cluster: these, and other protocols, are
    skipped.
    ``alias`` names the profile, ``local_address`` is its address
    (``auto_loopback_address: true`` without one: ``address: auto``).  kftray
    sends ``remote_port`` to the pod's port unchanged; a Tender ``svc/``
    forward's port is the *Service's* port (kubectl's rule).  They agree
    where the Service's port equals its targetPort; :attr:`ImportResult.pod_ports`
    names these profiles, for the caller to translate against the cluster.

``kube-forwarder``
    kube-forwarder's cluster export (pixel-point/kube-forwarder
    ``src/renderer/lib/export.js``; ``version: 2``): ``{"version": 2,
    "clusters": [{"name", "config": {"content", "currentContext"},
    "_services": [{"alias", "namespace", "workloadType", "workloadName",
    "forwards": [{"localPort", "remotePort"}], "localAddress"}]}]}``.  The
    version-1 shape (``_clusters``, ``config`` the kubeconfig text, as in its
    ``static/`` sample) is read too.  The context is the cluster's
    ``currentContext``, else the ``current-context`` of the kubeconfig text it
    carries, else none (the engine's current context).  ``workloadType`` is
    ``pod``, ``deployment`` or ``service``; kube-forwarder, like kftray, sends
    the remote port to the pod (the same note applies to Services).

Errors: a file that is not in the format (not JSON, a missing or mistyped
field, a line that is not a ``kubectl port-forward`` command, a bad target
or port) raises :class:`~tray.errors.UsageError` with the source, the line
(kubectl) or the entry (``[3]``, ``clusters[0]._services[2]``) and what is
wrong, one line.  Entries that are valid in their tool but that Tender
cannot express are returned in :attr:`ImportResult.skipped`, one each.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from tray.domain.portspec import PortSpec, parse_port_spec
from tray.domain.targets import Target, parse_target
from tray.errors import UsageError

__all__ = [
    "FORMATS",
    "ImportResult",
    "Skipped",
    "detect_format",
    "import_text",
    "profile_name",
    "read_kftray",
    "read_kube_forwarder",
    "read_kubectl",
    "unique_names",
]

#: The formats :func:`import_text` reads (``auto`` guesses one of them).
FORMATS: Final = ("kubectl", "kftray", "kube-forwarder")

_NAME_MAX: Final = 63
_NAME_BAD_RE: Final = re.compile(r"[^A-Za-z0-9._-]+")

# kubectl's flags that take a value and that say nothing a profile keeps
# (timeouts, logging, caches); read and ignored.
_IGNORED_VALUE_FLAGS: Final = frozenset({
    "--pod-running-timeout", "--request-timeout", "-v", "--v", "--vmodule", "--log-file",
    "--log-dir", "--cache-dir", "--log-flush-frequency", "--profile", "--profile-output",
    "--kuberc", "--log-file-max-size", "--stderrthreshold",
})
# kubectl's boolean flags that change nothing a profile keeps.
_IGNORED_BOOL_FLAGS: Final = frozenset({
    "--match-server-version", "--warnings-as-errors", "--disable-compression", "--logtostderr",
    "--alsologtostderr", "--add-dir-header", "--skip-headers", "--skip-log-headers", "--one-output",
})
# Flags that point kubectl at another server or identity than a kubeconfig
# context: a profile cannot say that.
_OTHER_CLUSTER_FLAGS: Final = frozenset({
    "--server", "-s", "--cluster", "--user", "--token", "--as", "--as-group", "--as-uid",
    "--username", "--password", "--certificate-authority", "--client-certificate", "--client-key",
    "--tls-server-name", "--insecure-skip-tls-verify",
})
_BOOL_OTHER_CLUSTER: Final = frozenset({"--insecure-skip-tls-verify"})
_KUBECTL_NAMES: Final = ("kubectl", "k", "kubectl.exe", "k.exe")
_ENV_WORD_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
_KUBECONFIG_NOTE: Final = ("--kubeconfig and KUBECONFIG= are ignored: profiles run on the engine's kubeconfig "
                           "(tender --kubeconfig P)")


@dataclass(frozen=True)
class Skipped:
    """An entry Tender cannot express: ``where`` (``line 3``, ``[2]``), ``what`` it is, ``why`` (one line each)."""

    where: str
    what: str
    why: str

    def __str__(self) -> str:
        return f"{self.where} ({self.what}): {self.why}"


@dataclass
class ImportResult:
    """What a file holds: the profiles (dicts, in file order, names not yet unique), the skipped
    entries, and notes (one line each, said once per file)."""

    profiles: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Where each profile comes from, parallel to :attr:`profiles`: (line, None) for a command
    #: line, (None, entry) for a JSON entry such as ``[2]``; for error messages.
    origins: list[tuple[int | None, str | None]] = field(default_factory=list)
    #: The indexes (in :attr:`profiles`) of ``svc/`` profiles whose remote port numbers are the pods' ports,
    #: as kftray and kube-forwarder mean them, not the Service's: the caller translates them
    #: (:func:`tray.domain.annotations.service_port_for`) or says it could not.
    pod_ports: set[int] = field(default_factory=set)

    def add(self, profile: dict[str, Any], *, line: int | None = None, entry: str | None = None) -> None:
        """Append ``profile``, from ``line`` of the file or its JSON ``entry``."""
        self.profiles.append(profile)
        self.origins.append((line, entry))

    def note(self, text: str) -> None:
        """Add ``text`` to :attr:`notes` unless it is there already."""
        if text not in self.notes:
            self.notes.append(text)


def _q(text: object) -> str:
    return json.dumps(str(text), ensure_ascii=False)


def profile_name(text: str) -> str:
    """A profile name made from ``text`` (an alias, a target's name): characters a name cannot hold
    become ``-``, at most 63 characters, starting with a letter or digit; ``imported`` if nothing is left."""
    name = _NAME_BAD_RE.sub("-", text).lstrip("._-")[:_NAME_MAX].rstrip("-")
    return name or "imported"


def unique_names(profiles: Iterable[dict[str, Any]], taken: Iterable[str]) -> list[dict[str, Any]]:
    """New dicts whose names clash neither with ``taken`` nor with each other.

    A clashing name gets a suffix, ``-2``, ``-3``, ... (shortened to stay
    within 63 characters).  Pure.
    """
    used = set(taken)
    out = []
    for profile in profiles:
        base = profile["name"]
        name, n = base, 1
        while name in used:
            n += 1
            suffix = f"-{n}"
            name = base[: _NAME_MAX - len(suffix)] + suffix
        used.add(name)
        out.append({**profile, "name": name})
    return out


def _profile(name: str, context: str | None, namespace: str | None, target: Target,
             ports: Sequence[PortSpec], address: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": profile_name(name)}
    if context:
        out["context"] = context
    if namespace:
        out["namespace"] = namespace
    out["target"] = str(target)
    out["ports"] = [str(p) for p in ports]
    if address and address != "127.0.0.1":
        out["address"] = address
    return out


# ------------------------------------------------------------------ kubectl
def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each command: lines ending in a backslash are joined."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        stripped = line.rstrip()
        if stripped.endswith("\\") and not stripped.endswith("\\\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(line)
        out.append((start, " ".join(pending)))
        pending = []
    if pending:
        out.append((start, " ".join(pending)))
    return out


def _address(values: list[str]) -> str | None:
    """One profile address for kubectl's ``--address`` list, or None if a profile cannot hold it."""
    addresses: list[str] = []
    for value in values:
        addresses.extend(a.strip() for a in value.split(",") if a.strip())
    unique = list(dict.fromkeys(addresses))
    if not unique:
        return "127.0.0.1"
    if set(unique) <= {"localhost", "127.0.0.1", "::1"} and ("localhost" in unique or len(unique) == 2):
        return "localhost"
    return unique[0] if len(unique) == 1 else None


def read_kubectl(text: str, source: str = "-") -> ImportResult:
    """Profiles from ``kubectl port-forward`` command lines (see the module docstring).

    One profile per command, named after the target (``web`` for
    ``svc/web``).  Raises :class:`UsageError` (``source:LINE: ...``) for a
    line that is not such a command, or whose target, ports or flags kubectl
    would refuse.  Pure.
    """
    result = ImportResult()
    for number, line in _logical_lines(text):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise UsageError(f"cannot split the line as a shell would: {exc}", source=source, line=number) from None
        if not words:
            continue
        profile = _kubectl_command(words, source, number, result)
        if profile is not None:
            result.add(profile, line=number)
    return result


def _kubectl_command(words: list[str], source: str, number: int, result: ImportResult) -> dict[str, Any] | None:
    def bad(message: str) -> UsageError:
        return UsageError(message, source=source, line=number)

    while words and _ENV_WORD_RE.fullmatch(words[0]):
        if words[0].startswith("KUBECONFIG="):
            result.note(_KUBECONFIG_NOTE)
        words = words[1:]
    if words and words[-1] == "&":
        words = words[:-1]
    if not words or os.path.basename(words[0].replace("\\", "/")) not in _KUBECTL_NAMES:
        shown = words[0] if words else ""
        raise bad(f"expected a kubectl port-forward command, got {_q(shown)}")
    namespace: str | None = None
    context: str | None = None
    addresses: list[str] = []
    other_cluster: list[str] = []
    positional: list[str] = []
    rest = iter(words[1:])
    flags_done = False
    for word in rest:
        if flags_done or not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        if word == "--":
            flags_done = True
            continue
        flag, eq, value = word.partition("=")
        if not flag.startswith("--") and len(flag) > 2 and not eq:
            flag, value, eq = flag[:2], flag[2:], "="  # -nshop, as pflag reads it
        takes_value = flag in ("-n", "--namespace", "--context", "--address", "--kubeconfig") \
            or flag in _IGNORED_VALUE_FLAGS or (flag in _OTHER_CLUSTER_FLAGS and flag not in _BOOL_OTHER_CLUSTER)
        if takes_value and not eq:
            value = next(rest, None)  # type: ignore[assignment]
            if value is None:
                raise bad(f"flag {flag} needs a value")
        elif not takes_value and flag not in _IGNORED_BOOL_FLAGS and flag not in _BOOL_OTHER_CLUSTER:
            raise bad(f"unknown flag {_q(flag)} for kubectl port-forward")
        if flag in ("-n", "--namespace"):
            namespace = value
        elif flag == "--context":
            context = value
        elif flag == "--address":
            addresses.append(value)
        elif flag == "--kubeconfig":
            result.note(_KUBECONFIG_NOTE)
        elif flag in _OTHER_CLUSTER_FLAGS:
            other_cluster.append(flag)
    if not positional or positional[0] != "port-forward":
        shown = positional[0] if positional else ""
        raise bad(f"expected a kubectl port-forward command, got kubectl {_q(shown)}")
    if len(positional) < 3:
        raise bad("kubectl port-forward needs a target and at least one port: TYPE/NAME [LOCAL:]REMOTE...")
    try:
        target = parse_target(positional[1])
        ports = [parse_port_spec(p) for p in positional[2:]]
    except UsageError as exc:
        raise bad(exc.message) from None
    if target.relayed or any("/" in p for p in positional[2:]):  # Tender's forms, not kubectl's: kubectl is TCP
        raise bad(f"kubectl port-forward takes no {'host/ or ip/ targets' if target.relayed else '/tcp or /udp'} "
                  "(it forwards TCP to pods); write such a forward as a Tender profile")
    what = " ".join([str(target), *positional[2:]])
    if other_cluster:
        result.skipped.append(Skipped(f"line {number}", what, f"{', '.join(other_cluster)}: a profile reaches a "
                                      "cluster through a kubeconfig context, not a server or user of its own"))
        return None
    address = _address(addresses)
    if address is None:
        result.skipped.append(Skipped(f"line {number}", what, f"--address {','.join(addresses)}: a profile "
                                      "listens on one address (or localhost)"))
        return None
    if namespace is not None and not namespace:
        raise bad("empty namespace")
    return _profile(target.name, context, namespace, target, ports, address)


# ------------------------------------------------------------------ kftray
_KFTRAY_PROTOCOLS: Final = {"": "", "tcp": "", "udp": "/udp"}  # kftray's protocol -> the port spec's suffix


def _field(entry: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, source: str,
           required: bool = False) -> Any:
    value = entry.get(key)
    if value is None:
        if required:
            raise UsageError(f"missing {key!r}", source=source, field=where)
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UsageError(f"{key}: expected {names}, got {type(value).__name__}", source=source, field=where)
    return value


def _port_number(value: Any, key: str, where: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise UsageError(f"{key}: expected a port number 1-65535, got {_q(value)}", source=source, field=where)
    return value


def _port_text(local: Any, remote: int, key: str, where: str, source: str) -> str:
    """The port spec for a local port as the tools store it: missing -> the remote's number, 0 -> a free one."""
    if local is None:
        return str(remote)
    if local == 0 and not isinstance(local, bool):
        return f":{remote}"
    number = _port_number(local, key, where, source)
    return str(remote) if number == remote else f"{number}:{remote}"


def _local_address(value: str | None, where: str, source: str) -> str | None:
    if value is None or value in ("", "127.0.0.1"):
        return None
    if value == "localhost":
        return "localhost"
    import ipaddress

    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise UsageError(f"address {_q(value)} is not an IP address or localhost", source=source,
                         field=where) from None


def read_kftray(data: Any, source: str = "-") -> ImportResult:
    """Profiles from kftray's JSON export (a list of configs, already parsed; see the module docstring).

    One profile per config, named after its ``alias`` (else the service).
    Raises :class:`UsageError` (``source: [N]: ...``) for an entry that is not
    a kftray config: not an object, a field of the wrong type, a service
    config without ``service`` or ports.  Pure.
    """
    if not isinstance(data, list):
        raise UsageError(f"expected a JSON list of kftray configs, got {type(data).__name__}", source=source)
    result = ImportResult()
    for index, entry in enumerate(data):
        where = f"[{index}]"
        if not isinstance(entry, dict):
            raise UsageError(f"expected a kftray config (an object), got {type(entry).__name__}", source=source,
                             field=where)
        workload = _field(entry, "workload_type", str, where, source) or "service"
        protocol = (_field(entry, "protocol", str, where, source) or "").lower()
        alias = _field(entry, "alias", str, where, source)
        service = _field(entry, "service", str, where, source)
        what = alias or service or _field(entry, "target", str, where, source) or workload
        if protocol not in _KFTRAY_PROTOCOLS:
            result.skipped.append(Skipped(where, what, f"protocol {protocol}: Tender forwards TCP and UDP only"))
            continue
        if workload not in ("service", "proxy"):
            why = {"pod": "its pods are named by label selector, which a profile cannot name",
                   "expose": "it exposes a local port to the cluster"}.get(workload,
                                                                           f"unknown workload_type {workload!r}")
            result.skipped.append(Skipped(where, what, why))
            continue
        remote_address = _field(entry, "remote_address", str, where, source) if workload == "proxy" else None
        if workload == "proxy" and not remote_address:
            raise UsageError("missing 'remote_address' (the host a proxy config reaches)", source=source,
                             field=where)
        if workload == "service" and not service:
            raise UsageError("missing 'service'", source=source, field=where)
        namespace = _field(entry, "namespace", str, where, source) or None
        context = _field(entry, "context", str, where, source) or None
        remote = _port_number(entry.get("remote_port"), "remote_port", where, source)
        port_text = _port_text(entry.get("local_port"), remote, "local_port", where, source)
        port_text += _KFTRAY_PROTOCOLS[protocol]
        address = _local_address(_field(entry, "local_address", str, where, source), where, source)
        if address is None and _field(entry, "auto_loopback_address", bool, where, source):
            address = "auto"  # kftray's own 127.x address per forward: Tender's address: auto
        if _field(entry, "kubeconfig", str, where, source):
            result.note("kftray's kubeconfig fields are ignored: profiles run on the engine's kubeconfig")
        try:
            target = parse_target(f"svc/{service}" if remote_address is None else _proxy_target(remote_address))
            port = parse_port_spec(port_text)
        except UsageError as exc:
            raise UsageError(exc.message, source=source, field=where) from None
        if remote_address is None:
            result.pod_ports.add(len(result.profiles))
        name = alias or service or target.name
        result.add(_profile(name, context, namespace, target, [port], address), entry=where)
    return result


def _proxy_target(address: str) -> str:
    """A kftray proxy's ``remote_address`` as a target: ``ip/ADDRESS`` for an IP address, else ``host/NAME``."""
    import ipaddress

    try:
        ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return f"host/{address}"
    return f"ip/{address}"


# ------------------------------------------------------------ kube-forwarder
_KF_KINDS: Final = {"pod": "pod", "deployment": "deploy", "service": "svc"}


def _kf_context(cluster: Mapping[str, Any], where: str, source: str) -> str | None:
    """The context a kube-forwarder cluster uses: its currentContext, else its kubeconfig text's current-context."""
    config = cluster.get("config")
    content: Any = config
    if isinstance(config, dict):
        current = config.get("currentContext")
        if isinstance(current, str) and current:
            return current
        content = config.get("content")
    if isinstance(content, str) and content.strip():
        try:
            loaded = yaml.safe_load(content)
        except yaml.YAMLError:
            return None
        if isinstance(loaded, dict) and isinstance(loaded.get("current-context"), str):
            return loaded["current-context"] or None
    return None


def read_kube_forwarder(data: Any, source: str = "-") -> ImportResult:
    """Profiles from a kube-forwarder export (parsed JSON; see the module docstring).

    One profile per resource, named after its ``alias`` (else the
    workload's name), with one port per forward.  Raises
    :class:`UsageError` (``source: clusters[0]._services[2]: ...``) for an
    export of an unknown version or shape.  Pure.
    """
    if not isinstance(data, dict):
        raise UsageError(f"expected a kube-forwarder export (a JSON object), got {type(data).__name__}",
                         source=source)
    key = "clusters" if "clusters" in data else "_clusters"
    if key == "clusters" and data.get("version") != 2:
        raise UsageError(f"kube-forwarder export version {_q(data.get('version'))} is not supported (2 is)",
                         source=source, field="version")
    clusters = data.get(key)
    if not isinstance(clusters, list):
        raise UsageError(f"expected a list of clusters, got {type(clusters).__name__}", source=source, field=key)
    result = ImportResult()
    for ci, cluster in enumerate(clusters):
        cwhere = f"{key}[{ci}]"
        if not isinstance(cluster, dict):
            raise UsageError("expected a cluster (an object)", source=source, field=cwhere)
        context = _kf_context(cluster, cwhere, source)
        config = cluster.get("config")
        if isinstance(config, str) or (isinstance(config, dict) and config.get("content")):
            result.note("the kubeconfigs kube-forwarder exports with its clusters are not imported: their "
                        "contexts must be in yours (tender profiles check --kubeconfig P says)")
        if context is None:
            result.note(f"{cwhere} ({cluster.get('name', '?')}) names no context: its profiles use the current one")
        services = cluster.get("_services")
        if not isinstance(services, list):
            raise UsageError("expected a list '_services'", source=source, field=cwhere)
        for si, service in enumerate(services):
            where = f"{cwhere}._services[{si}]"
            if not isinstance(service, dict):
                raise UsageError("expected a resource (an object)", source=source, field=where)
            kind = _field(service, "workloadType", str, where, source, required=True)
            name = _field(service, "workloadName", str, where, source, required=True)
            alias = _field(service, "alias", str, where, source)
            if kind not in _KF_KINDS:
                result.skipped.append(Skipped(where, alias or name, f"unknown workloadType {kind!r}"))
                continue
            forwards = _field(service, "forwards", list, where, source, required=True)
            ports = []
            for fi, forward in enumerate(forwards):
                fwhere = f"{where}.forwards[{fi}]"
                if not isinstance(forward, dict):
                    raise UsageError("expected a forward (an object)", source=source, field=fwhere)
                remote = _port_number(forward.get("remotePort"), "remotePort", fwhere, source)
                ports.append(parse_port_spec(_port_text(forward.get("localPort"), remote, "localPort", fwhere, source)))
            if not ports:
                raise UsageError("no forwards", source=source, field=where)
            try:
                target = parse_target(f"{_KF_KINDS[kind]}/{name}")
            except UsageError as exc:
                raise UsageError(exc.message, source=source, field=where) from None
            namespace = _field(service, "namespace", str, where, source) or None
            address = _local_address(_field(service, "localAddress", str, where, source), where, source)
            if kind == "service":
                result.pod_ports.add(len(result.profiles))
            result.add(_profile(alias or name, context, namespace, target, ports, address), entry=where)
    return result


# ------------------------------------------------------------------ any
def detect_format(text: str) -> str:
    """``kftray`` for a JSON list, ``kube-forwarder`` for a JSON object, else ``kubectl``. Pure."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("["):
        return "kftray"
    if stripped.startswith("{"):
        return "kube-forwarder"
    return "kubectl"


def import_text(text: str, fmt: str = "auto", source: str = "-") -> ImportResult:
    """Profiles from ``text`` in format ``fmt`` (one of :data:`FORMATS`, or ``auto``: :func:`detect_format`).

    Returns an :class:`ImportResult` whose profile names are made from the
    entries (not yet unique: see :func:`unique_names`).  Raises
    :class:`UsageError` naming ``source`` and the line or entry for a file
    that is not in the format.  Pure.
    """
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt == "kubectl":
        return read_kubectl(text, source)
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {_q(fmt)}; expected {', '.join(FORMATS)} or auto")
    try:
        data = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"not JSON ({exc.msg}, column {exc.colno}); a {fmt} export is JSON", source=source,
                         line=exc.lineno) from None
    except RecursionError:
        raise UsageError(f"nested too deeply to be a {fmt} export", source=source) from None
    return read_kftray(data, source) if fmt == "kftray" else read_kube_forwarder(data, source)
