"""The JSON of the control API, in one place (docs/api.md says what each field means).

The API, its event stream and ``tender forward -o json`` print the same
objects, made here from the engine's snapshots.  Requests are checked here
too: each problem is an :class:`ApiError` whose one sentence names the field,
raised before anything reaches the engine.  Pure functions of plain data.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from tray.errors import UsageError
from tray.profiles.model import NAMESPACE_PATTERN

__all__ = ["ApiError", "forward_dict", "event_dict", "stats_dict", "parse_forward_request",
           "parse_selector", "profile_dict", "STATS_FIELDS", "check_address", "check_namespace",
           "suggestions_dict"]

#: The counters a ``stats`` event carries for each forward that moved.
STATS_FIELDS = ("connections", "connections_total", "bytes_in", "bytes_out", "last_connection_error",
                "last_connection_error_at")

#: The fields of a forward (docs/api.md, "The forward object"), in that order.
FORWARD_FIELDS = ("session_id", "name", "profile", "cluster_id", "cluster_name", "namespace", "target",
                  "target_kind", "target_name", "remote_port", "container_port", "local_port", "address",
                  "status", "status_reason", "pod_name", "started_at", "attempts", "next_retry_at",
                  "recoverable", "usage_error", "warning", "group", "balance", "pods", "protocol", "relay_pod",
                  "relay_upstream", *STATS_FIELDS)

_DEFAULTS: dict[str, Any] = {"protocol": "TCP", "relay_pod": "", "relay_upstream": "", "connections": 0, "connections_total": 0, "bytes_in": 0, "bytes_out": 0,
                             "last_connection_error": "", "last_connection_error_at": ""}


class ApiError(Exception):
    """A request the API refuses: ``status`` (an HTTP 4xx), one sentence, and the field at fault (or None)."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        """The error's JSON body: ``{"error": sentence, "field": field-or-null}``."""
        return {"error": self.message, "field": self.field}


def forward_dict(info: Any) -> dict[str, Any]:
    """A forward as the API shows it, from a :class:`tray.engine.session.SessionInfo` (a new dict)."""
    d = info.to_dict()
    d["target"] = info.target
    d["name"] = info.profile or info.target
    return {k: d.get(k, _DEFAULTS.get(k)) for k in FORWARD_FIELDS}


def stats_dict(info: Any) -> dict[str, Any]:
    """A forward's counters (a ``stats`` event's entry)."""
    return {"session_id": info.id, **{k: getattr(info, k, _DEFAULTS[k]) for k in STATS_FIELDS}}


def event_dict(event: Any) -> dict[str, Any]:
    """One engine event (``StatusEvent``, ``ListEvent``, ``ConnectionEvent``) as a JSON object.

    ``{"event": "status", FORWARD...}``, ``{"event": "list", "forwards": [...]}``
    or ``{"event": "connection-error", ...}`` (docs/api.md, ``GET /v1/events``).
    Told apart by their fields, so this module need not import the engine.
    """
    if hasattr(event, "sessions"):
        return {"event": "list", "forwards": [forward_dict(s) for s in event.sessions]}
    s = event.session
    if hasattr(event, "suppressed"):
        return {"event": "connection-error", "session_id": event.session_id, "pod_name": event.pod_name,
                "port": event.port, "error": event.error, "suppressed": event.suppressed,
                "cluster_id": s.cluster_id, "namespace": s.namespace, "target_kind": s.target_kind,
                "target_name": s.target_name, "local_port": s.local_port, "address": s.address,
                "profile": s.profile}
    return {"event": "status", **forward_dict(s)}


def check_address(address: str, field: str = "address") -> bool:
    """Check a local address to listen on; True when it is not a loopback address (the caller warns).

    ``localhost``, ``auto`` (the forward's own loopback address) and IP
    addresses are accepted; raises :class:`UsageError` (naming ``field``)
    for anything else.
    """
    if address in ("localhost", "auto"):
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"{address!r} is not an IP address, 'localhost' or 'auto'", field=field) from None
    return not ip.is_loopback


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError(400, f"{key} is required", key)
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{key} must be a non-empty string", key)
    return value


def parse_forward_request(body: Any) -> tuple[Any, list[tuple[str, Any]], str | None, str | None, str]:
    """Check a ``POST /v1/forwards`` body.

    Returns ``(target, [(port text, PortSpec), ...], context or None,
    namespace or None, address)``.  Raises :class:`ApiError` (400) naming
    the first bad field (a namespace must be a namespace name, as in a
    profile).
    """
    from tray.domain.portspec import parse_port_spec
    from tray.domain.targets import parse_target, split_target_port

    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - {"target", "ports", "context", "namespace", "address", "balance", "relay_image"})
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (fields: target, ports, context, namespace, address, "
                            "balance, relay_image)", unknown[0])
    target_text = _text(body, "target", required=True)
    try:
        bare, carried = split_target_port(target_text)
        target = parse_target(bare)
    except UsageError as exc:
        raise ApiError(400, f"target: {exc.message}", "target") from None
    ports = body.get("ports")
    if ports is None and carried is not None:
        ports = [str(carried)]
    if ports is None:
        raise ApiError(400, "ports is required (a list such as [\"8080:80\"])", "ports")
    if not isinstance(ports, list) or not ports:
        raise ApiError(400, "ports must be a non-empty list such as [\"8080:80\"]", "ports")
    if len(ports) > 100:
        raise ApiError(400, "ports has more than 100 entries", "ports")
    specs = []
    for i, item in enumerate(ports):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ApiError(400, f"ports[{i}] must be a string such as \"8080:80\" or a number", f"ports[{i}]")
        text = str(item)
        try:
            spec = parse_port_spec(text)
        except UsageError as exc:
            raise ApiError(400, f"ports[{i}]: {exc.message}", f"ports[{i}]") from None
        if carried is not None and spec.remote != carried:
            raise ApiError(400, f"ports[{i}]: remote port {spec.remote} differs from the target's {carried}",
                           f"ports[{i}]")
        if target.relayed and isinstance(spec.remote, str):
            raise ApiError(400, f"ports[{i}]: {target} has no named ports: give the port as a number",
                           f"ports[{i}]")
        specs.append((text, spec))
    context = _text(body, "context")
    namespace = _text(body, "namespace")
    if namespace is not None and not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise ApiError(400, f"namespace {namespace!r} is not a namespace name: 1-63 lowercase letters, digits "
                            "and '-', starting and ending with a letter or digit", "namespace")
    address = _text(body, "address") or "127.0.0.1"
    try:
        check_address(address)
    except UsageError as exc:
        raise ApiError(400, f"address: {exc.message}", "address") from None
    return target, specs, context, namespace, address


def parse_balance(body: dict[str, Any], target: Any) -> str:
    """A ``POST /v1/forwards`` body's ``balance`` (round-robin, pin, sticky; "auto" when absent) for ``target``.

    Raises :class:`ApiError` (400, field ``balance``) for another value, or
    a spreading mode for a target that is not a Service.
    """
    from tray.domain.balance import balance_problem

    balance = _text(body, "balance") or "auto"
    problem = balance_problem(target.kind, balance)
    if problem:
        raise ApiError(400, f"balance: {problem}", "balance")
    return balance


def parse_selector(body: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    """Check a selector body (``ids``/``names``/``groups`` lists, ``all``, ``context``, ``profile``).

    ``keys``: the keys this endpoint takes.  Returns the body's values (lists
    default to [], ``all`` to False).  Raises :class:`ApiError` (400) for an
    unknown key, a wrong type, or a selector that selects nothing.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - set(keys))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (fields: {', '.join(keys)})", unknown[0])
    out: dict[str, Any] = {}
    for key in keys:
        value = body.get(key)
        if key in ("ids", "names", "groups"):
            value = [] if value is None else value
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ApiError(400, f"{key} must be a list of non-empty strings", key)
        elif key == "all":
            value = False if value is None else value
            if not isinstance(value, bool):
                raise ApiError(400, "all must be true or false", "all")
        elif value is not None and (not isinstance(value, str) or not value):
            raise ApiError(400, f"{key} must be a non-empty string", key)
        out[key] = value
    if not any(out.values()):
        raise ApiError(400, f"select something: {', '.join(keys)}")
    return out


def profile_dict(profile: Any, running: int) -> dict[str, Any]:
    """A profile as ``GET /v1/profiles`` lists it (``running``: its forwards now)."""
    return {"name": profile.name, "group": profile.group, "context": profile.context,
            "namespace": profile.namespace, "target": str(profile.target),
            "ports": [str(p) for p in profile.ports], "address": profile.address,
            "autostart": profile.autostart, "line": profile.line, "running": running}


def check_namespace(namespace: str, field: str = "namespace") -> str:
    """``namespace`` if it is a namespace name (as in a profile); else :class:`ApiError` (400) naming ``field``."""
    if not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise ApiError(400, f"namespace {namespace!r} is not a namespace name: 1-63 lowercase letters, digits "
                            "and '-', starting and ending with a letter or digit", field)
    return namespace


def suggestions_dict(context: str, namespace: str, suggested: Any, describe: Any = str) -> dict[str, Any]:
    """``GET /v1/contexts/C/namespaces/NS/suggestions``'s answer, from a :class:`tray.engine.browse.Suggested`.

    ``{"context", "namespace", "suggestions": [{"target", "kind", "name", "ports", "alias", "annotation"}],
    "problems": [sentence], "errors": [{"kind", "error"}]}``; ``describe`` makes a kind's exception a
    sentence.  A new dict.
    """
    items = []
    for s in suggested.suggestions:
        item = s.to_dict()
        items.append({"target": item["target"], "kind": s.target.kind, "name": s.target.name,
                      "ports": item["ports"], "alias": item["alias"], "annotation": item["annotation"]})
    return {"context": context, "namespace": namespace, "suggestions": items,
            "problems": list(suggested.problems),
            "errors": [{"kind": kind, "error": describe(exc)} for kind, exc in suggested.errors.items()]}


def parse_relay_image(body: dict[str, Any]) -> str | None:
    """``relay_image`` of a ``POST /v1/forwards`` body: an image reference, or None (the default).

    Raises :class:`ApiError` (400) for anything but a non-empty string without whitespace.
    """
    image = body.get("relay_image")
    if image is None:
        return None
    if not isinstance(image, str) or not image or any(c.isspace() for c in image) or len(image) > 512:
        raise ApiError(400, "relay_image must be an image reference such as \"python:3.13-alpine\"",
                       "relay_image")
    return image
