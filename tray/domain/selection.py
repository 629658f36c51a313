"""kubectl's pod-selection and port-translation rules, on plain API dicts.

Everything here takes Kubernetes objects as the REST API returns them (JSON
decoded to dicts, camelCase keys; items of a list response carry no
``kind``) and does no I/O.  The engine fetches; this module decides.

Pod selection
=============
``kubectl port-forward TYPE/NAME`` lists the pods matching the object's
selector, sorts them with ``sort.Reverse(podutils.ActivePods)`` and takes the
first.  :func:`rank_pods` reproduces that order, best first:

0. not terminating (no ``metadata.deletionTimestamp``) before terminating --
   *Tender's addition*; kubectl ignores deletion, but a pod that is going
   away is the worst possible choice for a forward that should last;
1. assigned to a node (``spec.nodeName`` set) before unassigned;
2. phase ``Running`` before ``Unknown`` before ``Pending`` (any other phase,
   e.g. ``Succeeded``/``Failed`` or none, ranks with ``Pending``, as in kubectl);
3. Ready before not ready;
4. among ready pods, ready for longer first (earlier ``lastTransitionTime``
   of the ``Ready`` condition); a ready pod without that time ranks last;
5. fewer restarts first (the highest ``restartCount`` over
   ``status.containerStatuses``);
6. older first (earlier ``metadata.creationTimestamp``); no timestamp last;
7. *Tender's addition*: by name, then namespace -- Go's ``sort.Sort`` is not
   stable, so kubectl's pick among equals is arbitrary; ours is repeatable.

kubectl then refuses a pod that is not Running.  Tender is stricter:
:func:`choose_pod` only returns a *usable* pod (Running, Ready, not
terminating), because a forward to a pod that is not ready fails or serves
errors, and the engine would rather wait for a good one.

Port translation
================
Same as kubectl: for a Service the user names a *service* port (number or
name), which maps to the pod through ``targetPort`` (a number, omitted =
same as ``port``, or a container-port name looked up in the chosen pod).
For pod-backed targets the user names a *container* port; numbers pass
through even if undeclared, names are looked up.  Ports declared only for
UDP/SCTP are refused, as kubectl does (port-forward is TCP only).

Deviations from kubectl, on purpose:

* kubectl skips ``targetPort`` for headless services (``clusterIP: None``)
  and forwards to the service port number as-is, even one the service does
  not declare.  Tender translates headless services like any other: the
  endpoints of a headless service use ``targetPort`` too, so that is where
  the service's traffic really goes.
* named container ports are also looked up in ``initContainers`` (after
  ``containers``), so ports of restartable init containers (sidecars) work.

Why one module of ~670 lines (a third of it this text): its one job is
kubectl's answer to "which pod, and which of its ports", and the selector,
the ranking, the reasons no pod qualifies and the port translation share
the same tolerant readers of API dicts (``_meta``, ``_spec``, ports) and
the same message formats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence, Set
from datetime import UTC, datetime
from typing import Any, Final

from tray.domain.targets import SHORT_NAMES
from tray.errors import TargetError

__all__ = [
    "selector_from_workload",
    "selector_from_service",
    "label_selector_string",
    "matches",
    "is_pod_ready",
    "is_pod_terminating",
    "is_pod_finished",
    "is_pod_usable",
    "rank_pods",
    "choose_pod",
    "rotation",
    "round_robin_pod",
    "sticky_pod",
    "why_no_pod",
    "is_finished_job",
    "find_service_port",
    "service_port_number",
    "container_port_for_service",
    "container_port_for_pod",
    "declared_ports",
]

JSON = Mapping[str, Any]

_OPERATORS: Final = {"In", "NotIn", "Exists", "DoesNotExist"}
_PHASE_RANK: Final = {"Running": 0, "Unknown": 1}  # everything else: 2, like Pending
_MAX_DETAIL: Final = 200

# --------------------------------------------------------------------------
# small accessors: API objects omit empty fields, so every level may be absent


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else []


def _meta(obj: JSON) -> Mapping[str, Any]:
    return _dict(obj.get("metadata"))


def _spec(obj: JSON) -> Mapping[str, Any]:
    return _dict(obj.get("spec"))


def _status(obj: JSON) -> Mapping[str, Any]:
    return _dict(obj.get("status"))


def _name(obj: JSON) -> str:
    return str(_meta(obj).get("name") or "?")


def _describe(obj: JSON, default_kind: str | None = None) -> str:
    """``deploy/web`` when the kind is known, else just the name."""
    kind = obj.get("kind") or default_kind
    short = SHORT_NAMES.get(kind) if isinstance(kind, str) else None
    if short is None and isinstance(kind, str) and kind:
        short = kind.lower()
    return f"{short}/{_name(obj)}" if short else _name(obj)


def _parse_time(value: Any) -> datetime | None:
    """RFC 3339 timestamp -> aware datetime; None when absent or unreadable.

    Unreadable counts as absent (kubectl's zero time) rather than raising:
    a bad timestamp should only cost a pod its rank, not break selection.
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _truncate(text: str, limit: int = _MAX_DETAIL) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------
# selectors


def _normalize_selector(raw: Any, owner: str | None) -> dict[str, Any]:
    """Validate a LabelSelector and return it as a fresh dict with both keys.

    Malformed selectors come from the cluster (or a buggy caller), not from
    the user, hence TargetError; ``owner`` (``deploy/web``) names the object.
    """

    def bad(problem: str) -> TargetError:
        return TargetError(f"malformed selector{f' of {owner}' if owner else ''}: {problem}")

    sel = _dict(raw)
    labels = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise bad("matchLabels must map strings to strings")
    if not isinstance(exprs, list):
        raise bad("matchExpressions must be a list")
    out_exprs: list[dict[str, Any]] = []
    for expr in exprs:
        expr = _dict(expr)
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if not isinstance(key, str) or not key:
            raise bad("a matchExpression has no key")
        if not isinstance(op, str) or op not in _OPERATORS:
            raise bad(f"unknown operator {op!r} for {key!r}; expected In, NotIn, Exists or DoesNotExist")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise bad(f"values of {key!r} must be strings")
        if op in ("In", "NotIn") and not values:
            raise bad(f"{key!r} {op} has no values")
        if op in ("Exists", "DoesNotExist") and values:
            raise bad(f"{key!r} {op} must not have values")
        out_exprs.append({"key": key, "operator": op, "values": list(values)})
    return {"matchLabels": dict(labels), "matchExpressions": out_exprs}


def selector_from_workload(obj: JSON) -> dict[str, Any]:
    """The pod selector of a workload (``spec.selector``), as kubectl reads it.

    Deployment, StatefulSet, DaemonSet, ReplicaSet and Job carry a
    LabelSelector (``matchLabels`` / ``matchExpressions``); a
    ReplicationController carries a plain label map (``{"app": "web"}``),
    which kubectl reads with ``labels.SelectorFromSet``
    (``polymorphichelpers.SelectorsForObject``).  The kind comes from
    ``obj["kind"]`` when present, else from the selector's shape (list
    items carry no kind): a map whose values are all strings is a label map,
    since a LabelSelector's values are a mapping and a list.

    Returns ``{"matchLabels": {...}, "matchExpressions": [...]}`` (both keys
    always present, copied).  An absent or empty selector is a TargetError:
    the API forbids it (a ReplicationController's defaults to its template's
    labels), and an empty selector would match every pod in the namespace --
    the last thing a forward should pick from.
    """
    owner = _describe(obj)
    raw = _spec(obj).get("selector")
    kind = obj.get("kind")
    flat = isinstance(raw, Mapping) and bool(raw) and all(isinstance(v, str) for v in raw.values())
    if kind == "ReplicationController" or (not kind and flat):
        raw = {"matchLabels": raw}
    sel = _normalize_selector(raw, owner)
    if not sel["matchLabels"] and not sel["matchExpressions"]:
        raise TargetError(f"{owner} has no pod selector")
    return sel


def selector_from_service(svc: JSON) -> dict[str, Any]:
    """The pod selector of a Service, in the same shape as for workloads.

    A Service without a selector has manually managed endpoints that need
    not be pods at all, so there is no pod to forward to -- kubectl refuses
    such services too.
    """
    selector = _spec(svc).get("selector")
    if not selector:
        raise TargetError(
            f"service {_name(svc)} has no selector, so it has no pods to forward to "
            "(kubectl cannot forward it either)"
        )
    return _normalize_selector({"matchLabels": selector}, f"service {_name(svc)}")


def _requirements(sel: JSON) -> list[tuple[str, str, list[str]]]:
    norm = _normalize_selector(sel, None)
    reqs: list[tuple[str, str, list[str]]] = [(k, "=", [v]) for k, v in norm["matchLabels"].items()]
    reqs += [(e["key"], e["operator"], e["values"]) for e in norm["matchExpressions"]]
    return reqs


def label_selector_string(sel: JSON) -> str:
    """Render a selector for the ``labelSelector`` query parameter.

    ``{"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier",
    "operator": "In", "values": ["b", "a"]}, ...]}`` ->
    ``app=web,tier in (a,b),!x,y``.  Like apimachinery, requirements are
    sorted by key and set values sorted, so equal selectors give equal
    strings (handy as a cache key).  An empty selector renders as ``""``,
    which the API reads as "everything".
    """
    parts: list[tuple[str, str]] = []
    for key, op, values in _requirements(sel):
        vals = ",".join(sorted(set(values)))
        if op == "=":
            text = f"{key}={values[0]}"
        elif op == "In":
            text = f"{key} in ({vals})"
        elif op == "NotIn":
            text = f"{key} notin ({vals})"
        elif op == "Exists":
            text = key
        else:  # DoesNotExist
            text = f"!{key}"
        parts.append((key, text))
    parts.sort(key=lambda p: p[0])  # stable: equal keys keep their order
    return ",".join(text for _, text in parts)


def matches(sel: JSON, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy the selector (Kubernetes semantics).

    Note ``NotIn`` and ``DoesNotExist`` match objects that lack the key.
    """
    labels = labels or {}
    for key, op, values in _requirements(sel):
        present = key in labels
        if op == "=":
            ok = present and labels[key] == values[0]
        elif op == "In":
            ok = present and labels[key] in values
        elif op == "NotIn":
            ok = not present or labels[key] not in values
        elif op == "Exists":
            ok = present
        else:
            ok = not present
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------
# pod state


def _ready_condition(pod: JSON) -> Mapping[str, Any] | None:
    for cond in map(_dict, _list(_status(pod).get("conditions"))):
        if cond.get("type") == "Ready":
            return cond
    return None


def is_pod_ready(pod: JSON) -> bool:
    """True if the pod's ``Ready`` condition is ``"True"``."""
    cond = _ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def is_pod_terminating(pod: JSON) -> bool:
    """True if the pod is being deleted (``metadata.deletionTimestamp`` set)."""
    return bool(_meta(pod).get("deletionTimestamp"))


def is_pod_finished(pod: JSON) -> bool:
    """True if the pod's containers have all stopped for good (phase ``Succeeded`` or ``Failed``)."""
    return _status(pod).get("phase") in ("Succeeded", "Failed")


def is_pod_usable(pod: JSON) -> bool:
    """Running, Ready and not terminating: a pod worth forwarding to."""
    return _status(pod).get("phase") == "Running" and is_pod_ready(pod) and not is_pod_terminating(pod)


def _ready_since(pod: JSON) -> datetime | None:
    cond = _ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return _parse_time(cond.get("lastTransitionTime"))


def _max_restarts(pod: JSON) -> int:
    counts = [_dict(cs).get("restartCount") for cs in _list(_status(pod).get("containerStatuses"))]
    return max((c for c in counts if isinstance(c, int)), default=0)


def _time_key(value: datetime | None) -> tuple[int, float]:
    """Earlier first, absent last."""
    return (1, 0.0) if value is None else (0, value.timestamp())


def _phase_rank(phase: Any) -> int:
    return _PHASE_RANK.get(phase, 2) if isinstance(phase, str) else 2


def _rank_key(pod: JSON) -> tuple[Any, ...]:
    ready = is_pod_ready(pod)
    return (
        is_pod_terminating(pod),
        not _spec(pod).get("nodeName"),
        _phase_rank(_status(pod).get("phase")),
        not ready,
        _time_key(_ready_since(pod)) if ready else (0, 0.0),
        _max_restarts(pod),
        _time_key(_parse_time(_meta(pod).get("creationTimestamp"))),
        _name(pod),
        str(_meta(pod).get("namespace") or ""),
    )


def rank_pods(pods: Iterable[JSON]) -> list[JSON]:
    """The pods, best candidate first (see the module docstring for the order).

    Returns a new list; the input is not modified.
    """
    return sorted(pods, key=_rank_key)


def choose_pod(pods: Iterable[JSON], *, exclude: Set[str] = frozenset()) -> JSON | None:
    """The best usable pod whose name is not in ``exclude``, or None.

    ``exclude`` lets the engine skip pods that just failed a connection
    attempt, so a reconnect tries a different replica first.
    """
    for pod in rank_pods(pods):
        if is_pod_usable(pod) and _name(pod) not in exclude:
            return pod
    return None


# --------------------------------------------------------------------------
# spreading connections over a Service's endpoints (tray.domain.balance)


def rotation(pods: Iterable[JSON], *, exclude: Set[str] = frozenset()) -> list[JSON]:
    """The usable pods (Running, Ready, not terminating) whose names are not in ``exclude``, by name.

    The order connections rotate through: by name, so a pod joining or
    leaving moves the others by at most one place.  Returns a new list.
    """
    return sorted((p for p in pods if is_pod_usable(p) and _name(p) not in exclude), key=_name)


def round_robin_pod(pods: Sequence[JSON], turn: int) -> JSON | None:
    """The pod for connection number ``turn`` (0, 1, 2, ...) of a :func:`rotation`; None when it is empty.

    With the same pods, ``n`` consecutive turns reach each of ``n`` pods once.
    """
    return pods[turn % len(pods)] if pods else None


def _weight(client: str, pod: JSON) -> bytes:
    return hashlib.sha256(f"{client}\0{_name(pod)}".encode()).digest()


def sticky_pod(pods: Sequence[JSON], client: str) -> JSON | None:
    """The pod of a :func:`rotation` that connections from ``client`` (an IP address) go to; None when empty.

    Rendezvous hashing (highest weight of client and pod name): the same
    client gets the same pod for as long as that pod is in the rotation,
    whichever other pods come and go; clients spread evenly over the pods.
    """
    return max(pods, key=lambda p: _weight(client, p)) if pods else None


def _waiting_reasons(pod: JSON) -> list[str]:
    """``"app: ImagePullBackOff"`` for each container that is waiting with a reason."""
    status = _status(pod)
    out = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in _list(status.get(key)):
            cs = _dict(cs)
            reason = _dict(_dict(cs.get("state")).get("waiting")).get("reason")
            if reason:
                out.append(f"{cs.get('name', '?')}: {reason}")
    return out


def _pod_problem(pod: JSON) -> str:
    """Why this one pod cannot be used, as a short sentence fragment."""
    name = _name(pod)
    if is_pod_terminating(pod):
        return f"pod {name} is terminating"
    status = _status(pod)
    phase = status.get("phase") or "Pending"
    if phase != "Running":
        details: list[str] = []
        if phase == "Pending":
            if not _spec(pod).get("nodeName"):
                for cond in _list(status.get("conditions")):
                    cond = _dict(cond)
                    if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                        text = ": ".join(str(p) for p in (cond.get("reason"), cond.get("message")) if p)
                        if text:
                            details.append(_truncate(text))
            details += _waiting_reasons(pod)
        else:
            text = ": ".join(str(p) for p in (status.get("reason"), status.get("message")) if p)
            if text:
                details.append(_truncate(text))
        suffix = f" ({', '.join(details)})" if details else ""
        return f"pod {name} is {phase}{suffix}"
    if is_pod_ready(pod):
        return f"pod {name} is ready"
    not_ready = []
    for cs in _list(status.get("containerStatuses")):
        cs = _dict(cs)
        if cs.get("ready") is True:
            continue
        label = str(cs.get("name", "?"))
        reason = _dict(_dict(cs.get("state")).get("waiting")).get("reason")
        not_ready.append(f"{label} ({reason})" if reason else label)
    if not_ready:
        return f"pod {name} is not ready (containers not ready: {', '.join(not_ready)})"
    cond = _ready_condition(pod) or {}
    text = ": ".join(str(p) for p in (cond.get("reason"), cond.get("message")) if p)
    return f"pod {name} is not ready" + (f" ({_truncate(text)})" if text else "")


def why_no_pod(pods: Sequence[JSON], target_desc: str, *, exclude: Set[str] = frozenset()) -> str:
    """A human explanation of why :func:`choose_pod` found nothing.

    ``target_desc`` is how the target is shown (``deploy/web``); ``pods``
    are the pods its selector matched.  With one pod the message is about
    that pod (``pod web-1 is not ready (containers not ready: app)``); with
    several it explains the best-ranked one and says how many there were.
    """
    pods = list(pods)
    n = len(pods)
    if n == 0:
        return f"no pods match {target_desc}"
    live = [p for p in pods if not is_pod_terminating(p)]
    if not live:
        if n == 1:
            return f"pod {_name(pods[0])} of {target_desc} is terminating"
        return f"all {n} pods of {target_desc} are terminating"
    usable = [p for p in rank_pods(live) if is_pod_usable(p)]
    if usable:
        remaining = [p for p in usable if _name(p) not in exclude]
        if remaining:  # not a failure at all; be truthful rather than invent one
            return f"pod {_name(remaining[0])} of {target_desc} is ready"
        if len(usable) == 1:
            return f"the only ready pod of {target_desc}, {_name(usable[0])}, was excluded after a failure"
        return f"all {len(usable)} ready pods of {target_desc} were excluded after failures"
    reason = _pod_problem(rank_pods(live)[0])
    if n == 1:
        return reason
    return f"{reason}; none of the {n} pods of {target_desc} is ready"


# --------------------------------------------------------------------------
# ports


def _protocol(port: Mapping[str, Any]) -> str:
    return str(port.get("protocol") or "TCP")


def _port_int(value: Any) -> int | None:
    """An int port from int-or-digit-string; None if it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _check_port_range(port: int, what: str) -> int:
    if not 1 <= port <= 65535:
        raise TargetError(f"{what} {port} is out of range 1-65535")
    return port


def _format_port(number: Any, name: Any, protocol: str) -> str:
    return f"{number}/{protocol}" + (f" ({name})" if name else "")


def _port_label(port: int | str) -> str:
    number = _port_int(port)
    return str(number) if number is not None else f'"{port}"'


def find_service_port(svc: JSON, port: int | str, protocol: str = "TCP") -> Mapping[str, Any]:
    """The ``spec.ports`` entry of ``svc`` named or numbered ``port`` for ``protocol`` (TCP: port-forward's).

    A number can appear twice (DNS: 53/TCP and 53/UDP); the entry of
    ``protocol`` wins.  Raises TargetError if there is none or it is not of
    ``protocol``, listing what the service does declare.  (UDP: Tender's
    relay forwards; kubectl has TCP only.)
    """
    desc = f"svc/{_name(svc)}"
    ports = [_dict(p) for p in _list(_spec(svc).get("ports"))]
    number = _port_int(port)
    if number is not None:
        found = [p for p in ports if _port_int(p.get("port")) == number]
    else:
        found = [p for p in ports if p.get("name") == port]
    if not found:
        if not ports:
            raise TargetError(f"{desc} declares no ports")
        listing = ", ".join(_format_port(p.get("port"), p.get("name"), _protocol(p)) for p in ports)
        raise TargetError(f"{desc} has no port {_port_label(port)}; its ports are {listing}")
    for p in found:
        if _protocol(p) == protocol:
            return p
    first = found[0]
    label = str(number) if number is not None else f'"{port}" ({first.get("port")})'
    if protocol != "TCP":
        raise TargetError(f"port {label} of {desc} is {_protocol(first)}, not {protocol}")
    raise TargetError(f"port {label} of {desc} is {_protocol(first)}; only TCP can be port-forwarded"
                      + (" (add /udp to forward it through a relay pod)" if _protocol(first) == "UDP" else ""))


def service_port_number(svc: JSON, port: int | str, protocol: str = "TCP") -> int:
    """The service port number for ``port`` (a number or a service port name).

    This is what a bare ``NAME`` port spec listens on locally for a Service
    target (kubectl's rule; see ``portspec``).
    """
    return _service_port_entry_number(svc, find_service_port(svc, port, protocol))


def _service_port_entry_number(svc: JSON, entry: Mapping[str, Any]) -> int:
    number = _port_int(entry.get("port"))
    if number is None:
        raise TargetError(f"svc/{_name(svc)} has a port without a number")
    return _check_port_range(number, f"port of svc/{_name(svc)}")


def _container_ports(pod_spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Declared container ports: ``containers`` first, then ``initContainers``."""
    out: list[Mapping[str, Any]] = []
    for key in ("containers", "initContainers"):
        for container in _list(pod_spec.get(key)):
            for p in _list(_dict(container).get("ports")):
                out.append(_dict(p))
    return out


def _named_container_port(pod: JSON, name: str, what: str, protocol: str = "TCP") -> int:
    """Resolve a container port name (of ``protocol``) in ``pod``; ``what`` frames errors."""
    ports = _container_ports(_spec(pod))
    found = [p for p in ports if p.get("name") == name]
    if not found:
        named = [p for p in ports if p.get("name")]
        listing = ", ".join(_format_port(p.get("containerPort"), p.get("name"), _protocol(p)) for p in named)
        tail = f"; its named ports are {listing}" if listing else "; it declares no named ports"
        raise TargetError(f'{what}pod {_name(pod)} has no port named "{name}"{tail}')
    for p in found:
        number = _port_int(p.get("containerPort"))
        if _protocol(p) == protocol and number is not None:
            return _check_port_range(number, f'port "{name}" of pod/{_name(pod)}')
    first = found[0]
    raise TargetError(
        f'{what}port "{name}" ({first.get("containerPort")}) of pod/{_name(pod)} is '
        + (f"{_protocol(first)}; only TCP can be port-forwarded"
           + (" (add /udp to forward it through a relay pod)" if _protocol(first) == "UDP" else "") if protocol == "TCP"
           else f"{_protocol(first)}, not {protocol}")
    )


def container_port_for_service(svc: JSON, pod: JSON, port: int | str, protocol: str = "TCP") -> int:
    """The pod's port that the Service's ``port`` (number or name) leads to.

    ``targetPort`` a number -> that number; omitted (or 0) -> the service
    port itself; a name -> the pod's TCP container port of that name
    (``containers``, then ``initContainers``).  Headless services are
    handled the same way (see the module docstring).
    """
    sp = find_service_port(svc, port, protocol)
    svc_number = _service_port_entry_number(svc, sp)
    target = sp.get("targetPort")
    if target is None or target == 0 or target == "":
        return svc_number
    number = _port_int(target)
    if number is not None:
        return _check_port_range(number, f"targetPort of svc/{_name(svc)} port {svc_number}")
    if not isinstance(target, str):
        raise TargetError(f"svc/{_name(svc)} port {svc_number} has a malformed targetPort {target!r}")
    return _named_container_port(
        pod, target, f'svc/{_name(svc)} port {svc_number} targets the named port "{target}", but ', protocol
    )


def container_port_for_pod(pod: JSON, port: int | str, protocol: str = "TCP") -> int:
    """The container port to forward to for a pod-backed target.

    A number passes through even if no container declares it (kubectl
    allows that; plenty of images listen on undeclared ports) unless it is
    declared only for UDP/SCTP.  A name must be declared.
    """
    number = _port_int(port)
    if number is None:
        if not isinstance(port, str) or not port:
            raise TargetError(f"invalid port {port!r}")
        return _named_container_port(pod, port, "", protocol)
    _check_port_range(number, "port")
    declared = [p for p in _container_ports(_spec(pod)) if _port_int(p.get("containerPort")) == number]
    if declared and not any(_protocol(p) == protocol for p in declared):
        raise TargetError(
            f"port {number} of pod/{_name(pod)} is declared as {_protocol(declared[0])} only; "
            + ("only TCP can be port-forwarded" + (" (add /udp to forward it through a relay pod)"
                                                   if _protocol(declared[0]) == "UDP" else "")
               if protocol == "TCP" else f"not {protocol}")
        )
    return number


def _looks_like_service(obj: JSON) -> bool:
    kind = obj.get("kind")
    if kind:
        return bool(kind == "Service")
    spec = _spec(obj)
    return (
        "containers" not in spec
        and "template" not in spec
        and ("ports" in spec or "selector" in spec or "clusterIP" in spec or "type" in spec)
    )


def is_finished_job(obj: JSON, *, finishing: bool = False) -> bool:
    """A Job whose ``Complete`` or ``Failed`` condition is True: it starts no
    more pods (the Job controller's terminal conditions), so a forward to it
    has nothing to come back to.

    ``finishing``: also a Job whose ``SuccessCriteriaMet`` or
    ``FailureTarget`` condition is True (Kubernetes 1.31+ sets them first,
    while the Job's last pods terminate): not worth offering as a new target,
    though a forward already using one of its pods may finish its work.
    """
    ended = ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget") if finishing else ("Complete", "Failed")
    return any(_dict(c).get("type") in ended and _dict(c).get("status") == "True"
               for c in _list(_status(obj).get("conditions")))


def controlled_by(obj: JSON, kind: str) -> bool:
    """Whether ``obj``'s controller (``metadata.ownerReferences[].controller``) is of ``kind``."""
    return any(_dict(ref).get("controller") is True and _dict(ref).get("kind") == kind
               for ref in _list(_dict(obj.get("metadata")).get("ownerReferences")))


def declared_ports(obj: JSON) -> list[tuple[int, str | None, str]]:
    """``(port, name, protocol)`` declared by a pod, a workload or a service.

    For a pod (or a workload's ``spec.template.spec``): the container ports
    of ``containers`` then ``initContainers``.  For a service: ``spec.ports``
    (the service port numbers, which is what the user types for a service).
    Protocol defaults to ``TCP``; exact duplicates are listed once.  Used to
    offer ports in the tray menu, so it never raises on odd input.

    The kind comes from ``obj["kind"]`` when present, otherwise from the
    shape of ``spec`` (list items carry no kind).
    """
    spec = _spec(obj)
    entries: list[tuple[Any, Any, str]]
    if _looks_like_service(obj):
        entries = [(p.get("port"), p.get("name"), _protocol(p)) for p in map(_dict, _list(spec.get("ports")))]
    else:
        pod_spec = spec if "containers" in spec else _spec(_dict(spec.get("template")))
        entries = [(p.get("containerPort"), p.get("name"), _protocol(p)) for p in _container_ports(pod_spec)]
    out: list[tuple[int, str | None, str]] = []
    for number, name, protocol in entries:
        n = _port_int(number)
        if n is None or not 1 <= n <= 65535:
            continue
        item = (n, name if isinstance(name, str) and name else None, protocol)
        if item not in out:
            out.append(item)
    return out
