"""What a host name or address means inside the cluster, as a pod's DNS would answer it.

The rules are those of the Kubernetes DNS-Based Service Discovery
specification (github.com/kubernetes/dns, ``docs/specification.md``, schema
1.1.0), applied to the API's objects instead of DNS records:

* 2.3.1, a Service with a cluster IP: ``<service>.<ns>.svc.<zone>`` names
  the Service (its cluster IP, behind which kube-proxy translates the port
  to a ready endpoint's ``targetPort``);
* 2.4.1, a headless Service (``clusterIP: None``): the same name stands for
  the ready endpoints' own addresses (the client connects to the port it
  asked for, untranslated), and ``<hostname>.<service>.<ns>.svc.<zone>``
  for the one endpoint of that *hostname* -- a pod whose ``spec.hostname``
  is that label and whose ``spec.subdomain`` is the Service's name (a
  StatefulSet sets both: ``db-0.db``);
* comparisons are case-insensitive, and a trailing dot (an absolute name)
  changes nothing.

Like a pod's resolver with the default search path (``<ns>.svc.<zone>``,
``svc.<zone>``, ``<zone>``), shorter names are tried against the client's
namespace: ``svc`` (the client's default namespace: the context's), ``svc.ns``,
``svc.ns.svc``, and for a pod ``host.svc.ns`` and ``host.svc.ns.svc``.

``<zone>``, the cluster domain, is :data:`CLUSTER_DOMAIN` (``cluster.local``),
a constant: the API does not say what a cluster's kubelets were configured
with, and almost every cluster keeps the default.

An IP literal (IPv4, IPv6) names whatever has that address: a Service's
cluster IP or a pod's IP (:func:`find_by_ip`).  Anything else
(``example.com``, a label that is not a DNS label) is not a cluster name.

Plain data in, plain data out: no I/O.  :func:`parse_host` classifies a
name; :func:`service_pods`, :func:`pod_for_hostname` and :func:`find_by_ip`
apply it to objects as the API returns them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tray.domain import selection
from tray.errors import TargetError

__all__ = [
    "CLUSTER_DOMAIN",
    "ServiceName",
    "PodName",
    "AddressName",
    "ClusterName",
    "UnknownName",
    "parse_host",
    "is_headless",
    "service_pods",
    "pod_for_hostname",
    "find_by_ip",
]

#: The cluster domain (``<zone>``) the names end with.  A constant: see the module docstring.
CLUSTER_DOMAIN = "cluster.local"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1123 label, as Kubernetes names use

JSON = Mapping[str, Any]


class UnknownName(TargetError):
    """The host is not a name of this cluster, or names nothing that exists (a one-line reason)."""


@dataclass(frozen=True)
class ServiceName:
    """``service`` in ``namespace``."""

    namespace: str
    service: str


@dataclass(frozen=True)
class PodName:
    """The endpoint of hostname ``hostname`` of the headless ``service`` in ``namespace``."""

    namespace: str
    service: str
    hostname: str


@dataclass(frozen=True)
class AddressName:
    """An IP literal, in its canonical text form (``10.0.0.1``, ``fd00::1``)."""

    ip: str


ClusterName = ServiceName | PodName | AddressName


def parse_host(host: str, default_namespace: str) -> ClusterName:
    """What ``host`` names, for a client whose namespace is ``default_namespace``.

    ``host``: a name as a client sent it (any case, an optional trailing
    dot) or an IP literal (IPv6 without brackets).  Accepted names, with
    ``<zone>`` = :data:`CLUSTER_DOMAIN`::

        svc                                 ServiceName(default_namespace, svc)
        svc.ns | svc.ns.svc | svc.ns.svc.<zone>                  ServiceName(ns, svc)
        host.svc.ns | host.svc.ns.svc | host.svc.ns.svc.<zone>   PodName(ns, svc, host)

    Returns a :class:`ServiceName`, :class:`PodName` or :class:`AddressName`;
    never does I/O.  Raises :class:`UnknownName` (one line) for an empty
    name, a label that is not an RFC 1123 label, or any other shape
    (``a.b.c.d``: not a cluster name).
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return AddressName(str(ipaddress.ip_address(text)))
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text
    if not name:
        raise UnknownName("empty host name")
    labels = name.split(".")
    zone = CLUSTER_DOMAIN.split(".")
    if len(labels) > len(zone) + 1 and labels[-len(zone):] == zone and labels[-len(zone) - 1] == "svc":
        labels = labels[:-len(zone) - 1]
    elif len(labels) in (3, 4) and labels[-1] == "svc":
        labels = labels[:-1]
    bad = next((label for label in labels if not _LABEL.match(label)), None)
    if bad is not None:
        raise UnknownName(f"{host!r} is not a cluster name ({bad!r} is not a DNS label)")
    if len(labels) == 1:
        if not default_namespace:
            raise UnknownName(f"{host!r}: no namespace given and the context names none")
        return ServiceName(default_namespace, labels[0])
    if len(labels) == 2:
        return ServiceName(labels[1], labels[0])
    if len(labels) == 3:
        return PodName(labels[2], labels[1], labels[0])
    raise UnknownName(f"{host!r} is not a cluster name (try svc.namespace or svc.namespace.svc.{CLUSTER_DOMAIN})")


def _spec(obj: JSON) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _name(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def is_headless(svc: JSON) -> bool:
    """Whether ``svc`` has no cluster IP (``spec.clusterIP: None``)."""
    return _spec(svc).get("clusterIP") == "None"


def service_pods(svc: JSON, pods: Iterable[JSON]) -> list[JSON]:
    """The pods ``svc``'s selector matches, sorted by name (any readiness).

    Raises :class:`~tray.errors.TargetError` for a Service without a
    selector (its endpoints are managed by hand and need not be pods).
    """
    selector = selection.selector_from_service(svc)
    matched = [p for p in pods if selection.matches(selector, (p.get("metadata") or {}).get("labels"))]
    return sorted(matched, key=_name)


def pod_for_hostname(svc: JSON, pods: Iterable[JSON], hostname: str) -> JSON | None:
    """The pod of ``svc`` whose DNS hostname under it is ``hostname``, or None.

    As the specification's endpoint *hostname* (2.1) and the endpoints
    controller decide it: the pod must be selected by ``svc``, its
    ``spec.subdomain`` must be the Service's name, and its
    ``spec.hostname`` must be ``hostname`` (case-insensitive).  A
    StatefulSet's pods carry both fields; a pod with a subdomain but no
    hostname answers to its own name, as its kernel hostname is then the
    pod's name.  ``svc`` need not be headless (the DNS records exist only
    for headless Services; the proxy is lenient).  Raises what
    :func:`service_pods` raises.
    """
    want = hostname.lower()
    for pod in service_pods(svc, pods):
        spec = _spec(pod)
        if str(spec.get("subdomain") or "").lower() != _name(svc).lower():
            continue
        if str(spec.get("hostname") or _name(pod)).lower() == want:
            return pod
    return None


def _ips(values: Iterable[Any], single: Any) -> set[str]:
    out = set()
    for v in [single, *values]:
        text = v.get("ip") if isinstance(v, Mapping) else v
        if not text or text == "None":
            continue
        try:
            out.add(str(ipaddress.ip_address(str(text))))
        except ValueError:
            pass
    return out


def find_by_ip(ip: str, services: Iterable[JSON], pods: Iterable[JSON]) -> tuple[str, JSON] | None:
    """What has address ``ip``: ``("service", svc)`` by ``spec.clusterIP(s)``, else ``("pod", pod)``.

    Pods match by ``status.podIP(s)``; a pod that has finished
    (Succeeded/Failed: its IP may already be another pod's) is skipped, and a
    running one wins over others of the same address.  ``ip`` in any text
    form.  Returns None when nothing has it; never raises for odd objects.
    """
    try:
        want = str(ipaddress.ip_address(ip))
    except ValueError:
        return None
    for svc in services:
        spec = _spec(svc)
        if want in _ips(spec.get("clusterIPs") or [], spec.get("clusterIP")):
            return ("service", svc)
    found = None
    for pod in pods:
        status = pod.get("status") or {}
        if selection.is_pod_finished(pod):
            continue
        if want in _ips(status.get("podIPs") or [], status.get("podIP")):
            if status.get("phase") == "Running":
                return ("pod", pod)
            found = found or ("pod", pod)
    return found
