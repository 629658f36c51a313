"""What the user typed as a forward target, read the way kubectl reads it.

``kubectl port-forward`` takes ``TYPE/NAME`` (or a bare pod ``NAME``), where
TYPE is any name the API discovery knows for the resource: singular, plural,
short name, Kind, optionally group-qualified (``deployment.apps``,
``deployments.v1.apps``), case-insensitively.  Tender supports the kinds
kubectl can forward to (those ``polymorphichelpers.AttachablePodForObjectFn``
finds a pod for: Pod, Service, Deployment, StatefulSet, DaemonSet,
ReplicaSet, ReplicationController, Job) and spells out that list in the
error for anything else, instead of kubectl's generic "the server doesn't
have a resource type".

Parsing is offline: no discovery call, so a typo is reported immediately and
the profiles file can be validated without a cluster.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Final

from tray.errors import UsageError

__all__ = ["KINDS", "RELAY_KINDS", "KIND_PLURAL", "SHORT_NAMES", "Target", "parse_target", "validate_name",
           "split_target_port"]

#: The supported kinds, in the order used in messages.
KINDS: Final = ("Pod", "Service", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
                "ReplicationController", "Job")

#: Targets no port-forward reaches, served through a relay pod (:mod:`tray.wire.relay`):
#: ``host/NAME`` (a DNS name resolved inside the cluster) and ``ip/ADDRESS``.
#: They are not Kubernetes objects: no API path, no pods of their own.
RELAY_KINDS: Final = ("Host", "IP")

#: Kind -> (API path prefix, plural resource); the engine builds URLs as
#: ``/{prefix}/namespaces/{ns}/{plural}/{name}``.
KIND_PLURAL: Final[dict[str, tuple[str, str]]] = {
    "Pod": ("api/v1", "pods"),
    "Service": ("api/v1", "services"),
    "Deployment": ("apis/apps/v1", "deployments"),
    "StatefulSet": ("apis/apps/v1", "statefulsets"),
    "DaemonSet": ("apis/apps/v1", "daemonsets"),
    "ReplicaSet": ("apis/apps/v1", "replicasets"),
    "ReplicationController": ("api/v1", "replicationcontrollers"),
    "Job": ("apis/batch/v1", "jobs"),
}

#: Kind -> the short resource name used in ``str(target)`` (kubectl's short names).
SHORT_NAMES: Final[dict[str, str]] = {
    "Pod": "pod",
    "Service": "svc",
    "Deployment": "deploy",
    "StatefulSet": "sts",
    "DaemonSet": "ds",
    "ReplicaSet": "rs",
    "ReplicationController": "rc",
    "Job": "job",
    "Host": "host",
    "IP": "ip",
}

# Every spelling accepted before the optional group, lowercase.
_ALIASES: Final[dict[str, str]] = {
    "pod": "Pod",
    "pods": "Pod",
    "po": "Pod",
    "service": "Service",
    "services": "Service",
    "svc": "Service",
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "statefulset": "StatefulSet",
    "statefulsets": "StatefulSet",
    "sts": "StatefulSet",
    "daemonset": "DaemonSet",
    "daemonsets": "DaemonSet",
    "ds": "DaemonSet",
    "replicaset": "ReplicaSet",
    "replicasets": "ReplicaSet",
    "rs": "ReplicaSet",
    "replicationcontroller": "ReplicationController",
    "replicationcontrollers": "ReplicationController",
    "rc": "ReplicationController",
    "job": "Job",
    "jobs": "Job",
}

# Group qualifiers accepted after the alias (``RESOURCE.GROUP`` and
# ``RESOURCE.VERSION.GROUP`` as kubectl's resource-argument parser allows).
# The core group is the empty string, and kubectl cannot name it
# explicitly, so core kinds take no qualifier.
_GROUP_SUFFIXES: Final[dict[str, frozenset[str]]] = {
    "Pod": frozenset({""}),
    "Service": frozenset({""}),
    "Deployment": frozenset({"", "apps", "v1.apps"}),
    "StatefulSet": frozenset({"", "apps", "v1.apps"}),
    "DaemonSet": frozenset({"", "apps", "v1.apps"}),
    "ReplicaSet": frozenset({"", "apps", "v1.apps"}),
    "ReplicationController": frozenset({""}),
    "Job": frozenset({"", "batch", "v1.batch"}),
}

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE: Final = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")
_MAX_NAME_LEN: Final = 253
_EXPECTED_KINDS: Final = "expected pod, svc, deploy, sts, ds, rs, rc or job"


def _quote(text: str) -> str:
    """Double-quote user text for a one-line message, escaping control characters."""
    return json.dumps(text, ensure_ascii=False)


def validate_name(name: str, *, text: str | None = None) -> str:
    """Check ``name`` is a DNS-1123 subdomain (what object names must be).

    ``text`` is the whole argument, quoted in the error so the user sees
    what they typed.  Returns ``name`` for convenience.
    """
    where = f" in {_quote(text)}" if text is not None else ""
    if not name:
        raise UsageError(f"empty resource name{where}")
    if len(name) > _MAX_NAME_LEN:
        raise UsageError(
            f"resource name is {len(name)} characters long{where}; at most {_MAX_NAME_LEN} are allowed"
        )
    if _DNS1123_SUBDOMAIN_RE.fullmatch(name) is None:
        raise UsageError(
            f"invalid resource name {_quote(name)}{where}: names are lowercase letters, digits, "
            "'-' and '.', and start and end with a letter or digit"
        )
    return name


def _kind_for(type_text: str, text: str) -> str:
    lowered = type_text.lower()
    alias, dot, group = lowered.partition(".")
    kind = _ALIASES.get(alias)
    if kind is None or (dot and not group) or group not in _GROUP_SUFFIXES[kind]:
        raise UsageError(f"unknown resource kind {_quote(type_text)} in {_quote(text)}; {_EXPECTED_KINDS}")
    return kind


@dataclass(frozen=True)
class Target:
    """A resolved-by-name (not yet by cluster) forward target."""

    kind: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KIND_PLURAL and self.kind not in RELAY_KINDS:
            raise ValueError(f"unsupported kind {self.kind!r}; expected one of {', '.join(KINDS + RELAY_KINDS)}")

    def __str__(self) -> str:
        return f"{SHORT_NAMES[self.kind]}/{self.name}"

    @property
    def reconnects(self) -> bool:
        """Whether a lost pod should be replaced by another matching pod.

        A named pod is that pod: once it is gone there is nothing to
        reconnect to (a recreated pod with the same name, e.g. a StatefulSet
        member addressed as ``pod/db-0``, is found again by name, but Tender
        does not go looking for a *different* pod).  Every other kind selects
        pods by label, so a replacement pod is a legitimate new endpoint.
        """
        return self.kind != "Pod"

    @property
    def relayed(self) -> bool:
        """Whether the target is outside port-forward's reach by kind (``host/``, ``ip/``): always relayed."""
        return self.kind in RELAY_KINDS

    @property
    def plural(self) -> str:
        """The resource's plural name (``deployments``)."""
        return KIND_PLURAL[self.kind][1]

    def api_path(self, namespace: str) -> str:
        """REST path of the object, e.g. ``/apis/apps/v1/namespaces/ns/deployments/web``."""
        prefix, plural = KIND_PLURAL[self.kind]
        return f"/{prefix}/namespaces/{namespace}/{plural}/{self.name}"


def parse_target(text: str) -> Target:
    """Parse ``NAME`` or ``TYPE/NAME`` as ``kubectl port-forward`` would.

    A bare name is a pod.  TYPE is matched case-insensitively against the
    singular, plural and short names (``po``, ``svc``, ``deploy``, ``sts``,
    ``ds``, ``rs``, ``rc``; Job has no short name), optionally qualified
    with the API group for the apps and batch kinds (``deployment.apps/web``,
    ``statefulsets.v1.apps/db``, ``jobs.batch/migrate``).  Returns a
    :class:`Target`; raises :class:`UsageError` naming the offending text.
    Pure and offline: never blocks.
    """
    if not isinstance(text, str):
        raise UsageError(f"target must be text, not {type(text).__name__}")
    if not text:
        raise UsageError("empty target; expected NAME or TYPE/NAME, e.g. svc/web")
    if any(c.isspace() for c in text):
        raise UsageError(f"target {_quote(text)} contains whitespace")
    lowered = text.lower()
    if lowered.startswith(("host/", "ip/")):
        return _relay_target(text)
    if text.count("/") > 1:
        raise UsageError(f'too many "/" in {_quote(text)}; expected NAME or TYPE/NAME, e.g. svc/web')
    type_text, slash, name = text.rpartition("/")
    if not slash:
        return Target("Pod", validate_name(text, text=text))
    if not type_text:
        raise UsageError(f"empty resource kind in {_quote(text)}; {_EXPECTED_KINDS}")
    kind = _kind_for(type_text, text)
    return Target(kind, validate_name(name, text=text))


_HOST_LABEL_RE: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _relay_target(text: str) -> Target:
    kind_text, _, rest = text.partition("/")
    if ":" in rest and not rest.startswith("["):
        name, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
        if port:
            rest = name
    elif rest.startswith("[") and "]" in rest:
        rest = rest[1:rest.index("]")]
    if kind_text.lower() == "ip":
        try:
            return Target("IP", str(ipaddress.ip_address(rest)))
        except ValueError:
            raise UsageError(f"invalid IP address {_quote(rest)} in {_quote(text)}; expected ip/ADDRESS, "
                             "e.g. ip/10.0.3.7 or ip/[fd00::7]:5432") from None
    host = rest.rstrip(".").lower()
    if not host or len(host) > 253 or not all(_HOST_LABEL_RE.fullmatch(label) for label in host.split(".")):
        raise UsageError(f"invalid host name {_quote(rest)} in {_quote(text)}; host names are labels of "
                         "letters, digits and '-' (1-63 each, not starting or ending with '-') joined by '.'")
    return Target("Host", host)


def split_target_port(text: str) -> tuple[str, int | None]:
    """``"host/db.internal:5432"`` -> ``("host/db.internal", 5432)``; ``"ip/[fd00::7]:53"`` -> ``("ip/fd00::7", 53)``.

    Only ``host/`` and ``ip/`` targets carry a port (``TYPE/NAME:PORT``, as
    kftray's and krelay's targets do); anything else comes back as it is with
    None.  Raises :class:`UsageError` for a port that is not 1-65535.  Pure.
    """
    if not isinstance(text, str) or not text.lower().startswith(("host/", "ip/")):
        return text, None
    kind_text, _, rest = text.partition("/")
    if rest.startswith("["):
        addr, close, tail = rest[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise UsageError(f"invalid target {_quote(text)}; expected ip/[IPv6]:PORT")
        rest, port_text = addr, tail[1:] if tail else ""
    elif rest.count(":") == 1:
        rest, _, port_text = rest.partition(":")
    else:
        port_text = ""  # no port, or a bare IPv6 address
    if not port_text:
        return f"{kind_text}/{rest}", None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise UsageError(f"invalid port {_quote(port_text)} in {_quote(text)}: expected 1-65535")
    return f"{kind_text}/{rest}", int(port_text)
