"""Forwards that objects suggest through other tools' annotations (k9s, kftray), read from API dicts.

Pure: a pod, workload or Service as the REST API returns it (a dict) in, a
list of :class:`Suggestion` out.  What each tool reads, and what Tender
makes of it:

k9s (derailed/k9s, README "FastForwards"; ``internal/port/pf.go``)
    ``k9scli.io/auto-port-forwards`` (k9s starts these without asking) and
    ``k9scli.io/port-forwards`` (k9s preselects them in its dialog), on a
    pod.  The value is a comma-separated list of
    ``[CONTAINER::][LOCAL:]PORT``, PORT a container port number or name;
    without LOCAL the local port is the container port's number.  Tender
    forwards to the pod's port whatever container declares it, so CONTAINER
    is only checked.  Read on pods that no controller owns, and on
    workloads (Deployment, StatefulSet, DaemonSet, ReplicaSet,
    ReplicationController, Job): their pod template's annotations (what
    their pods carry) and their own.  The suggestion targets the workload,
    which outlives its pods.

kftray (hcavarsan/kftray, ``docs/kftui/USAGE.md`` "Service Auto-Discovery";
``crates/kftray-portforward/src/kube/service.rs``)
    ``kftray.app/configs`` on a Service: a comma-separated list of
    ``ALIAS-LOCAL-PORT`` (exactly three ``-``-separated parts, so ALIAS holds
    no ``-``), PORT a number or a Service port's name.  kftray forwards a
    number to the pods' port (a Service port's targetPort); Tender's
    ``svc/`` ports are the Service's (kubectl's rule), so the number is
    translated to the Service port whose targetPort it is (or that has no
    targetPort and that number, or is that number: :func:`service_port_for`;
    a named targetPort is matched through the Service's EndpointSlices,
    :func:`resolved_ports`, when the caller has them); a number no Service
    port matches is a problem.  A name stays a name.  ``kftray.app/enabled: "true"``
    without ``configs`` suggests every TCP port of the Service, locally on
    its targetPort number (else its port), as kftray does.

Annotation values are user text: an item that cannot be read is not
suggested, and is returned in :attr:`Found.problems` (one line each) instead
of raising; the other items of the value are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tray.domain.portspec import PortSpec, parse_port_spec
from tray.domain.targets import SHORT_NAMES, Target, validate_name
from tray.errors import UsageError

__all__ = [
    "ANNOTATIONS",
    "K9S_AUTO_PORT_FORWARDS",
    "K9S_PORT_FORWARDS",
    "KFTRAY_CONFIGS",
    "KFTRAY_ENABLED",
    "Found",
    "Suggestion",
    "parse_k9s",
    "needs_endpoints",
    "parse_kftray",
    "resolved_ports",
    "service_port_for",
    "suggestions",
    "suggestions_of",
]

K9S_AUTO_PORT_FORWARDS: Final = "k9scli.io/auto-port-forwards"
K9S_PORT_FORWARDS: Final = "k9scli.io/port-forwards"
KFTRAY_CONFIGS: Final = "kftray.app/configs"
KFTRAY_ENABLED: Final = "kftray.app/enabled"
#: Every annotation read here.
ANNOTATIONS: Final = (K9S_AUTO_PORT_FORWARDS, K9S_PORT_FORWARDS, KFTRAY_CONFIGS, KFTRAY_ENABLED)

_CONTAINER_RE: Final = re.compile(r"[\w-]+")
_WORKLOADS: Final = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job")
_MAX_ITEMS: Final = 64  # of one annotation value: more is not a list of forwards


@dataclass(frozen=True)
class Suggestion:
    """One forward an annotation suggests.

    ``target``: what to forward to (``svc/web``, ``deploy/web``, ``pod/x``).
    ``ports``: kubectl's port specs, as a profile or ``tender forward`` takes
    them.  ``alias``: a name for it (kftray's alias, k9s's container),
    or None.  ``annotation``: the annotation it comes from.
    """

    target: Target
    ports: tuple[PortSpec, ...]
    alias: str | None
    annotation: str

    def to_dict(self) -> dict[str, Any]:
        """``{"target": "svc/web", "ports": ["8080:80"], "alias": ..., "annotation": ...}`` (a new dict)."""
        return {"target": str(self.target), "ports": [str(p) for p in self.ports], "alias": self.alias,
                "annotation": self.annotation}


@dataclass
class Found:
    """What one object's annotations say: the suggestions, and the items that could not be read."""

    suggestions: list[Suggestion] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _q(text: object) -> str:
    return json.dumps(str(text), ensure_ascii=False)


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if len(items) > _MAX_ITEMS:
        raise UsageError(f"more than {_MAX_ITEMS} items")
    return [item for item in items if item]


def parse_k9s(value: str) -> list[tuple[str | None, PortSpec]]:
    """The ``(container, port)`` pairs of a k9s port-forwards annotation value (see the module docstring).

    ``container`` is None where the item names none.  Raises
    :class:`UsageError` for the first item that is not ``[CONTAINER::][LOCAL:]PORT``.
    """
    out: list[tuple[str | None, PortSpec]] = []
    for item in _items(value):
        container: str | None = None
        ports = item
        if "::" in item:
            container, _, ports = item.partition("::")
            if not _CONTAINER_RE.fullmatch(container):
                raise UsageError(f"{_q(item)}: container {_q(container)} is not a container name")
        if ports.startswith(":"):
            ports = ports[1:]  # k9s: no local port = the container port's number
        try:
            out.append((container, parse_port_spec(ports)))
        except UsageError as exc:
            raise UsageError(f"{_q(item)}: {exc.message}") from None
    return out


def parse_kftray(value: str) -> list[tuple[str, int, int | str]]:
    """The ``(alias, local port, port)`` triples of a ``kftray.app/configs`` value.

    ``port`` is a number (the pods' port, as kftray means it) or a Service
    port's name.  Raises :class:`UsageError` for the first item that is not
    ``ALIAS-LOCAL-PORT``.
    """
    out: list[tuple[str, int, int | str]] = []
    for item in _items(value):
        parts = item.split("-")
        if len(parts) != 3 or not parts[0]:
            raise UsageError(f"{_q(item)}: expected ALIAS-LOCAL-PORT (three parts joined by '-')")
        alias, local, port = parts
        try:
            spec = parse_port_spec(f"{local}:{port}")
        except UsageError as exc:
            raise UsageError(f"{_q(item)}: {exc.message}") from None
        if spec.local is None:
            raise UsageError(f"{_q(item)}: local port {_q(local)} is not a number 1-65535")
        out.append((alias, spec.local, spec.remote))
    return out


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def service_port_for(service: Mapping[str, Any], number: int,
                     resolved: Mapping[str, int] | None = None) -> int | None:
    """The port of ``service`` (a Service as the API returns it) that sends to the pods' port ``number``, or None.

    That is the TCP port whose ``targetPort`` is ``number``; or whose named
    targetPort resolves to it in ``resolved`` (service port name -> the
    number, as the Service's EndpointSlices list their ports); else one that
    has no targetPort and is ``number``; else one that is ``number``.  Pure.
    """
    ports = [_dict(p) for p in _dict(service.get("spec")).get("ports") or ()]
    tcp = [p for p in ports if p.get("protocol", "TCP") == "TCP" and _int(p.get("port")) is not None]
    for p in tcp:
        if _int(p.get("targetPort")) == number:
            return int(p["port"])
    for p in tcp:
        if isinstance(p.get("targetPort"), str) and (resolved or {}).get(str(p.get("name") or "")) == number:
            return int(p["port"])
    for p in tcp:
        if p.get("targetPort") is None and p["port"] == number:
            return number
    for p in tcp:
        if p["port"] == number:
            return number
    return None


def _each(parse: Any, value: str, where: str, found: Found) -> list[Any]:
    """``parse`` of each item of ``value`` that reads; the others are problems, one line each."""
    out: list[Any] = []
    try:
        items = _items(value)
    except UsageError as exc:
        found.problems.append(f"{where}: {exc.message}")
        return out
    for item in items:
        try:
            out.extend(parse(item))
        except UsageError as exc:
            found.problems.append(f"{where}: {exc.message}")
    return out


def needs_endpoints(service: Mapping[str, Any]) -> bool:
    """Whether :func:`suggestions` of this Service could use its EndpointSlices: it has a
    ``kftray.app/configs`` annotation and a named targetPort (whose number only its pods know). Pure."""
    if not isinstance(_dict(_dict(service.get("metadata")).get("annotations")).get(KFTRAY_CONFIGS), str):
        return False
    return any(isinstance(_dict(p).get("targetPort"), str) for p in _dict(service.get("spec")).get("ports") or ())


def resolved_ports(slices: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """From a LIST answer of EndpointSlices: Service name -> its port names -> the pods' port numbers.

    The EndpointSlice controller writes each Service port's name with the
    number its targetPort resolved to (``kubernetes.io/service-name`` labels
    the slice's Service); an unnamed port's name is ``""``.  TCP only; the
    first number seen wins.  Pure; never raises.
    """
    out: dict[str, dict[str, int]] = {}
    for item in (_dict(i) for i in slices.get("items") or ()):
        service = _dict(_dict(item.get("metadata")).get("labels")).get("kubernetes.io/service-name")
        if not isinstance(service, str):
            continue
        for port in (_dict(p) for p in item.get("ports") or ()):
            number = _int(port.get("port"))
            if number is not None and port.get("protocol", "TCP") == "TCP":
                out.setdefault(service, {}).setdefault(str(port.get("name") or ""), number)
    return out


def _kftray(name: str, service: Mapping[str, Any], annotations: Mapping[str, Any], found: Found,
            resolved: Mapping[str, int] | None) -> None:
    target = Target("Service", name)
    value = annotations.get(KFTRAY_CONFIGS)
    if isinstance(value, str):
        for alias, local, port in _each(parse_kftray, value, f"{target}: {KFTRAY_CONFIGS}", found):
            if isinstance(port, int):
                service_port = service_port_for(service, port, resolved)
                if service_port is None:
                    found.problems.append(f"{target}: {KFTRAY_CONFIGS}: {_q(f'{alias}-{local}-{port}')}: "
                                          f"no port of the Service sends to port {port}")
                    continue
                port = service_port
            spec = PortSpec(local, port)
            found.suggestions.append(Suggestion(target, (spec,), alias, KFTRAY_CONFIGS))
        return
    if str(annotations.get(KFTRAY_ENABLED, "")).lower() != "true":
        return
    for p in (_dict(p) for p in _dict(service.get("spec")).get("ports") or ()):
        port = _int(p.get("port"))
        if port is None or not 1 <= port <= 65535 or p.get("protocol", "TCP") != "TCP":
            continue
        local = _int(p.get("targetPort")) or port
        found.suggestions.append(Suggestion(target, (PortSpec(local if 1 <= local <= 65535 else port, port),),
                                            name, KFTRAY_ENABLED))


def _k9s(target: Target, annotations: Mapping[str, Any], found: Found, seen: set[tuple[str, str]]) -> None:
    for key in (K9S_AUTO_PORT_FORWARDS, K9S_PORT_FORWARDS):
        value = annotations.get(key)
        if not isinstance(value, str) or (key, value) in seen:
            continue
        seen.add((key, value))
        pairs = _each(parse_k9s, value, f"{target}: {key}", found)
        if not pairs:
            continue
        containers = list(dict.fromkeys(c for c, _ in pairs if c))
        alias = ",".join(containers) or None
        found.suggestions.append(Suggestion(target, tuple(dict.fromkeys(p for _, p in pairs)), alias, key))


def _controlled(obj: Mapping[str, Any]) -> bool:
    refs = _dict(obj.get("metadata")).get("ownerReferences") or ()
    return any(_dict(r).get("controller") is True for r in refs)


def suggestions(kind: str, obj: Mapping[str, Any], resolved: Mapping[str, int] | None = None) -> Found:
    """The forwards ``obj`` (one object of kind ``kind``, a Kind of :data:`tray.domain.targets.KINDS`)
    suggests through the k9s and kftray annotations (see the module docstring).

    Services: kftray's annotations (``resolved``: the Service's port names ->
    the pods' port numbers, from :func:`resolved_ports`, for named
    targetPorts).  Pods no controller owns: k9s's.
    Workloads: k9s's, on the pod template and on the workload.  Anything
    else, or an object without a valid name, suggests nothing.  Never raises.
    """
    if kind not in SHORT_NAMES:
        return Found()
    meta = _dict(obj.get("metadata"))
    name = meta.get("name")
    try:
        validate_name(name if isinstance(name, str) else "")
    except UsageError:
        return Found()
    found = Found()
    annotations = _dict(meta.get("annotations"))
    if kind == "Service":
        _kftray(name, obj, annotations, found, resolved)
        return found
    seen: set[tuple[str, str]] = set()
    if kind == "Pod":
        if not _controlled(obj):
            _k9s(Target("Pod", name), annotations, found, seen)
        return found
    if kind in _WORKLOADS:
        target = Target(kind, name)
        template = _dict(_dict(_dict(obj.get("spec")).get("template")).get("metadata")).get("annotations")
        _k9s(target, _dict(template), found, seen)
        _k9s(target, annotations, found, seen)
    return found


def suggestions_of(kind: str, items: Sequence[Mapping[str, Any]]) -> Found:
    """:func:`suggestions` of each object of a LIST answer's ``items`` (of ``kind``), in order. Never raises."""
    out = Found()
    for item in items:
        one = suggestions(kind, _dict(item))
        out.suggestions.extend(one.suggestions)
        out.problems.extend(one.problems)
    return out
