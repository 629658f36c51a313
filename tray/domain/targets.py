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

import json
import re
from dataclasses import dataclass
from typing import Final

from tray.errors import UsageError

__all__ = ["KINDS", "KIND_PLURAL", "SHORT_NAMES", "Target", "parse_target", "validate_name"]

#: The supported kinds, in the order used in messages.
KINDS: Final = ("Pod", "Service", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
                "ReplicationController", "Job")

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
        if self.kind not in KIND_PLURAL:
            raise ValueError(f"unsupported kind {self.kind!r}; expected one of {', '.join(KINDS)}")

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
    if text.count("/") > 1:
        raise UsageError(f'too many "/" in {_quote(text)}; expected NAME or TYPE/NAME, e.g. svc/web')
    type_text, slash, name = text.rpartition("/")
    if not slash:
        return Target("Pod", validate_name(text, text=text))
    if not type_text:
        raise UsageError(f"empty resource kind in {_quote(text)}; {_EXPECTED_KINDS}")
    kind = _kind_for(type_text, text)
    return Target(kind, validate_name(name, text=text))
