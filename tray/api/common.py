"""What every handler of the control API shares: JSON answers, JSON bodies, the current context.

Kept apart from :mod:`tray.api.server` so that route modules
(:mod:`tray.api.groups`) use them without importing the server.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from aiohttp import web

from tray.api.schema import ApiError

__all__ = ["current_context", "json_response", "read_body"]


def json_response(data: Any, status: int = 200) -> web.Response:
    """``data`` as a JSON answer (``Cache-Control: no-store``) with HTTP ``status``."""
    return web.Response(text=json.dumps(data, sort_keys=False) + "\n", status=status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


async def read_body(request: web.Request) -> Any:
    """The request's JSON body (``{}`` when empty); awaits the body.

    Raises :class:`ApiError` 415 for another Content-Type, 400 for text that is not JSON.
    ``application/x-www-form-urlencoded`` (what ``curl -d`` sends) is read as
    JSON on the unix socket only: on the dashboard's TCP port it is the type
    a cross-site form may send without a CORS preflight, so it stays a 415.
    """
    if not request.body_exists:
        return {}
    ctype = request.content_type
    if ctype == "application/x-www-form-urlencoded" and _over_unix_socket(request):
        ctype = "application/json"  # what `curl -d` sends; no browser reaches the socket (see the module)
    if ctype not in ("application/json", "text/plain", ""):
        raise ApiError(415, f"send JSON (Content-Type: application/json), not {ctype}")
    raw = await request.read()  # RequestPayloadError: see _errors
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "the body is not valid JSON: nested too deeply") from None


def _over_unix_socket(request: web.Request) -> bool:
    """Whether the request came over the control API's unix socket (not the dashboard's TCP port)."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    return sock is not None and sock.family == getattr(socket, "AF_UNIX", None)


def current_context(manager: Any) -> str:
    """The kubeconfig's current context (reads the kubeconfig; blocks for that).

    Raises :class:`ApiError` 400 naming ``context`` when the kubeconfig has none.
    """
    clusters = manager.clusters()
    current = [c.id for c in clusters if c.current]
    if not current:
        from tray.kube.kubeconfig import load_kubeconfig, no_context_message

        raise ApiError(400, no_context_message(load_kubeconfig(manager.kubeconfig)), "context")
    return current[0]
