"""Namespace groups over the control API (issue 14): ``/v1/groups`` and the ``groups`` event.

A namespace group is every Service of one namespace forwarded on its real
ports, each on its own ``127.A.B.C``, and followed as Services come and go
(:class:`tray.engine.group.NamespaceGroup`; ``tender forward
--all-services``, a ``target: namespace/NS`` profile).  Its members are
ordinary forwards whose ``group`` is the group's id.  This module is what
the API adds on top of ``ForwardManager.start_group``/``groups``/``group``/``stop``:

* :func:`parse_group_request` checks a ``POST /v1/groups`` body (pure);
* :func:`group_dict` is a group as the API shows it (docs/api.md, "The group object");
* :func:`add_routes` adds the routes to one of the server's applications;
  the blocking engine calls run in worker threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tray.api.schema import ApiError, check_namespace
from tray.errors import UsageError

__all__ = ["GROUP_FIELDS", "NO_GROUPS", "add_routes", "group_dict", "groups_line", "groups_of", "parse_group_request"]

#: The fields of a group (docs/api.md, "The group object"), in that order.
GROUP_FIELDS = ("id", "context", "namespace", "selector", "balance", "profile", "status", "reason", "members",
                "skipped")
#: The ``groups`` event when no group runs (never sent to a new follower: it says nothing).
NO_GROUPS = b'{"event": "groups", "groups": []}\n'
_REQUEST_FIELDS = ("context", "namespace", "selector", "balance")


def group_dict(info: Any) -> dict[str, Any]:
    """A group as the API shows it, from a :class:`tray.engine.group.GroupInfo` (a new dict).

    ``members`` are forward ids (each a forward of ``GET /v1/forwards`` whose
    ``group`` is ``id``); ``skipped`` one sentence per Service or port left out.
    """
    return {"id": info.id, "context": info.cluster_id, "namespace": info.namespace, "selector": info.selector,
            "balance": getattr(info, "balance", "auto"), "profile": info.profile, "status": info.status,
            "reason": info.reason, "members": list(info.members), "skipped": list(info.skipped)}


def parse_group_request(body: Any) -> tuple[str | None, str, str, str]:
    """Check a ``POST /v1/groups`` body; returns ``(context or None, namespace, selector, balance)``.

    ``namespace`` is required; ``selector`` (kubectl's label selector on the
    Services' labels) defaults to "" (every Service), ``balance`` to
    ``auto``.  Raises :class:`ApiError` (400) naming the first bad field;
    a selector that cannot be read gets the selector parser's sentence.
    Pure.
    """
    from tray.domain.balance import balance_problem
    from tray.domain.servicegroup import parse_label_selector

    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - set(_REQUEST_FIELDS))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (fields: {', '.join(_REQUEST_FIELDS)})", unknown[0])
    values: dict[str, str | None] = {}
    for key in _REQUEST_FIELDS:
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise ApiError(400, f"{key} must be a string", key)
        values[key] = value
    namespace = values["namespace"]
    if not namespace:
        raise ApiError(400, "namespace is required: the namespace whose Services to forward", "namespace")
    check_namespace(namespace)
    context = values["context"] or None
    selector = values["selector"] or ""
    try:
        parse_label_selector(selector)
    except UsageError as exc:
        raise ApiError(400, f"selector: {exc.message}", "selector") from None
    balance = values["balance"] or "auto"
    problem = balance_problem("Service", balance)
    if problem:
        raise ApiError(400, f"balance: {problem}", "balance")
    return context, namespace, selector, balance


def groups_of(manager: Any) -> list[Any]:
    """The engine's groups (:class:`~tray.engine.group.GroupInfo`), [] for an engine without groups; never blocks."""
    groups = getattr(manager, "groups", None)  # an engine without groups has none
    return list(groups()) if groups is not None else []


def groups_line(manager: Any) -> bytes:
    """The ``groups`` event now, one JSON line: ``{"event": "groups", "groups": [GROUP, ...]}``.  Never blocks
    on the engine (a copy under its lock)."""
    return (json.dumps({"event": "groups", "groups": [group_dict(g) for g in groups_of(manager)]}) + "\n").encode()


def _one(manager: Any, group_id: str) -> Any:
    try:
        return manager.group(group_id)
    except UsageError:
        raise ApiError(404, f"no group with id {group_id}", "id") from None


def add_routes(router: Any, base: str, server: Any) -> None:
    """Add ``GET``/``POST {base}v1/groups`` and ``GET``/``DELETE {base}v1/groups/{id}`` to ``router``.

    ``server``: the :class:`tray.api.server.ApiServer` (its ``manager``, and
    ``_send_groups`` to tell followers at once).
    """
    from aiohttp import web

    from tray.api.common import current_context as _current_context
    from tray.api.common import json_response as _json

    manager = server.manager

    async def listed(request: web.Request) -> web.Response:
        return _json({"groups": [group_dict(g) for g in groups_of(manager)]})

    async def one(request: web.Request) -> web.Response:
        return _json(group_dict(_one(manager, request.match_info["id"])))

    async def start(request: web.Request) -> web.Response:
        from tray.api.common import read_body as _body
        from tray.domain.servicegroup import NamespaceSpec

        context, namespace, selector, balance = parse_group_request(await _body(request))

        def run() -> Any:
            known = [c.id for c in manager.clusters()]
            if context is not None and context not in known:
                raise ApiError(400, f'context "{context}" not found in the kubeconfig (contexts: '
                                    f'{", ".join(known) or "none"})', "context")
            ctx = context or _current_context(manager)
            manager.preflight(ctx)
            return manager.group(manager.start_group(NamespaceSpec(ctx, namespace, selector, balance=balance)))

        info = await asyncio.to_thread(run)
        await server._send_groups()
        return _json(group_dict(info), 201)

    async def stop(request: web.Request) -> web.Response:
        info = _one(manager, request.match_info["id"])
        try:
            await asyncio.to_thread(manager.stop, info.id)
        except UsageError:  # stopped meanwhile by another request
            raise ApiError(404, f"no group with id {info.id}", "id") from None
        await server._send_groups()
        return _json({"stopped": [info.id], "members": list(info.members)})

    router.add_get(f"{base}v1/groups", listed)
    router.add_post(f"{base}v1/groups", start)
    router.add_get(f"{base}v1/groups/{{id}}", one)
    router.add_delete(f"{base}v1/groups/{{id}}", stop)
