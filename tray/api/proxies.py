"""Cluster proxies (issue 14) as the control API and the tray start them: where one listens, the JSON.

The engine runs one SOCKS5 + HTTP proxy per context
(:meth:`tray.engine.manager.ForwardManager.start_proxy`); this module is
what its shells share on top of that:

* :func:`parse_listen` checks a ``listen`` address (``"127.0.0.1:1080"``,
  ``"[::1]:1080"``, ``"localhost:1080"``, or a bare port ``"1080"``, meaning
  ``127.0.0.1``) -- pure;
* :func:`start_proxy` starts a context's proxy on that address, or, without
  one, on the first free port of :data:`DEFAULT_PORTS` on ``127.0.0.1``
  (1080 is SOCKS's registered port, so ``curl --socks5-hostname
  127.0.0.1:1080`` works as typed for the first context; a second context
  gets 1081, and so on).  A context that already has a proxy, or an address
  something else listens on, is a :class:`ProxyConflict`;
* :func:`proxy_dict` is a proxy as the API shows it (docs/api.md, "The proxy
  object"), with the two URLs a client is configured with.

The functions that bind or start block (see each); call them from a worker
thread, never from the tray's UI thread nor an event loop.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from tray.errors import UsageError

__all__ = ["DEFAULT_PORTS", "ProxyConflict", "client_address", "format_listen", "parse_listen", "parse_request",
           "bind_problem", "port_is_free", "proxy_dict", "start_proxy", "stop_proxy", "usage_hints"]

#: The ports a proxy started without a ``listen`` address tries, in order, on 127.0.0.1.
DEFAULT_PORTS = range(1080, 1100)
DEFAULT_HOST = "127.0.0.1"


class ProxyConflict(UsageError):
    """The proxy cannot start because of something already running: the context has a proxy, or
    the address is taken (the API answers ``409``; ``field`` is ``context`` or ``listen``)."""


def parse_listen(text: Any, field: str = "listen") -> tuple[str, int]:
    """``(host, port)`` of a listen address; raises :class:`UsageError` naming ``field`` for a bad one.

    Accepted: ``HOST:PORT`` with HOST an IPv4 address or ``localhost``,
    ``[IPV6]:PORT``, or ``PORT`` alone (on 127.0.0.1; a JSON number too:
    ``1080``); PORT 1-65535.  The
    host comes back without brackets (``"::1"``).  Pure.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)  # a JSON number: the port alone
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"{field} must be an address such as \"127.0.0.1:1080\"", field=field)
    text = text.strip()
    if text.isdigit():
        host, port_text = DEFAULT_HOST, text
    elif text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1:close + 2] != ":":
            raise UsageError(f"{field} {text!r}: write an IPv6 address as [ADDRESS]:PORT, e.g. \"[::1]:1080\"",
                             field=field)
        host, port_text = text[1:close], text[close + 2:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise UsageError(f"{field} {text!r} has no port: write HOST:PORT, e.g. \"127.0.0.1:1080\"", field=field)
        if not host:
            raise UsageError(f"{field} {text!r} has no host: write HOST:PORT, e.g. \"127.0.0.1{text}\", or the "
                             "port alone", field=field)
        if ":" in host:
            raise UsageError(f"{field} {text!r}: write an IPv6 address as [ADDRESS]:PORT, e.g. \"[::1]:1080\"",
                             field=field)
    if host != "localhost":
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise UsageError(f"{field} {text!r}: {host!r} is not an IP address or 'localhost'", field=field) from None
        if text.startswith("[") != (ip.version == 6):
            raise UsageError(f"{field} {text!r}: write an IPv6 address as [ADDRESS]:PORT, e.g. \"[::1]:1080\"",
                             field=field)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise UsageError(f"{field} {text!r}: the port must be a number 1-65535", field=field)
    return host, int(port_text)


def parse_request(body: Any) -> tuple[str | None, str | None]:
    """Check a ``POST /v1/proxies`` body: ``{"context": C, "listen": "127.0.0.1:1080"}``, both optional.

    Returns ``(context or None, listen as HOST:PORT or None)``.  Raises
    :class:`~tray.api.schema.ApiError` (400) naming the first bad field.  Pure.
    """
    from tray.api.schema import ApiError

    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(body) - {"context", "listen"})
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (fields: context, listen)", unknown[0])
    context = body.get("context")
    if context is not None and (not isinstance(context, str) or not context):
        raise ApiError(400, "context must be a non-empty string", "context")
    listen = body.get("listen")
    if listen is not None:
        try:
            listen = format_listen(*parse_listen(listen))
        except UsageError as exc:
            raise ApiError(400, exc.message, "listen") from None
    return context, listen


def format_listen(host: str, port: int) -> str:
    """``"127.0.0.1:1080"``, ``"[::1]:1080"``: the form the engine and the API write."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_address(listen: str) -> str:
    """Where a client on this machine connects to a proxy listening on ``listen``.

    The same ``HOST:PORT`` text, but an any-address or ``localhost`` is
    reached at 127.0.0.1 (``[::1]`` for ``[::]``).  Text that does not parse
    is returned as it is.  Pure.
    """
    try:
        host, port = parse_listen(listen)
    except UsageError:
        return listen
    host = {"0.0.0.0": DEFAULT_HOST, "localhost": DEFAULT_HOST, "::": "::1"}.get(host, host)
    return format_listen(host, port)


def usage_hints(listen: str) -> dict[str, str]:
    """How a client uses the proxy at ``listen`` (pure): ``socks5_url`` (``socks5h://…``, names resolved
    by the proxy), ``http_url`` (``http://…``, for ``HTTPS_PROXY``/``HTTP_PROXY``) and ``curl``, a
    command that reaches a Service through it (``svc.ns`` stands for the Service and namespace)."""
    where = client_address(listen)
    return {"socks5_url": f"socks5h://{where}", "http_url": f"http://{where}",
            "curl": f"curl --socks5-hostname {where} http://svc.ns/"}


def proxy_dict(info: Any) -> dict[str, Any]:
    """A proxy as the API shows it, from a :class:`tray.engine.proxy.ProxyInfo` (a new dict):
    ``context``, ``listen``, ``connections``, ``connections_total``, ``last_error``, ``warning`` (one
    line when it listens on an any-address, where other machines can use it; else ``""``) and
    :func:`usage_hints`'s ``socks5_url``, ``http_url`` and ``curl``."""
    return {"context": info.context, "listen": info.listen, "connections": getattr(info, "connections", 0),
            "connections_total": getattr(info, "connections_total", 0),
            "last_error": getattr(info, "last_error", "") or "", "warning": getattr(info, "warning", "") or "",
            **usage_hints(info.listen)}


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on now (a bind and close, with SO_REUSEADDR as the
    engine's listeners; a port left in TIME_WAIT counts as free).  Blocks for microseconds.

    A hint, not a reservation: something may take the port before the engine binds it.
    """
    return bind_problem(host, port) is None


def bind_problem(host: str, port: int) -> Any:
    """Why ``host:port`` cannot be listened on now, as :func:`port_is_free` tries it: a
    :class:`tray.engine.proxy.ListenError` (in use, a privileged port, not this machine's), or
    None when it can.  Blocks for microseconds."""
    from tray.engine.proxy import _listen_error

    target = DEFAULT_HOST if host == "localhost" else host
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((target, port))
            sock.listen(1)
    except OSError as exc:
        return _listen_error(exc, target, port)
    return None


def _in_use(exc: UsageError) -> bool:
    text = exc.message.lower()
    return "in use" in text or "already used" in text or "address already" in text


def _engine_start(manager: Any, context: str, address: str) -> Any:
    """``manager.start_proxy``, its address errors named ``listen`` (the engine names the CLI's ``--listen``)."""
    try:
        return manager.start_proxy(context, address)
    except ProxyConflict:
        raise
    except UsageError as exc:
        if _in_use(exc):
            raise ProxyConflict(exc.message, field="listen") from None
        if exc.field == "--listen":
            raise UsageError(exc.message, field="listen") from None
        raise


def start_proxy(manager: Any, context: str, listen: str | None = None) -> Any:
    """Start ``context``'s cluster proxy on ``listen`` (see :func:`parse_listen`), or on the first
    free port of :data:`DEFAULT_PORTS` on 127.0.0.1 when ``listen`` is None; returns its ProxyInfo.

    ``manager``: the :class:`~tray.engine.manager.ForwardManager`.  Raises
    :class:`ProxyConflict` when the context already has a proxy, the address
    is taken ("local port N is already in use on HOST"), or (without
    ``listen``) every default port is; a :class:`UsageError` naming
    ``listen`` for a bad address or a privileged port (with the sysctl that
    allows it); and what
    ``manager.start_proxy`` raises (a :class:`UsageError` naming ``context``
    for a context the kubeconfig lacks).  Blocks for the kubeconfig read and
    the proxy's start (milliseconds; the engine's limit is 30 s).
    """
    for running in manager.proxies():
        if running.context == context:
            raise ProxyConflict(f"context {context} already has a cluster proxy, on {running.listen}",
                                field="context")
    if listen is not None:
        host, port = parse_listen(listen)
        address = format_listen(host, port)
        problem = bind_problem(host, port)
        if problem is not None and _in_use(problem):
            raise ProxyConflict(f"{problem.message}; choose another listen address", field="listen")
        if problem is not None:
            raise UsageError(problem.message, field="listen")
        return _engine_start(manager, context, address)
    for port in DEFAULT_PORTS:
        if not port_is_free(DEFAULT_HOST, port):
            continue
        try:
            return _engine_start(manager, context, format_listen(DEFAULT_HOST, port))
        except ProxyConflict as exc:
            if exc.field != "listen":
                raise
            # taken meanwhile: the next one
    raise ProxyConflict(f"every port of {DEFAULT_HOST}:{DEFAULT_PORTS[0]}-{DEFAULT_PORTS[-1]} is in use; "
                        "choose a listen address", field="listen")


def stop_proxy(manager: Any, context: str) -> bool:
    """Stop ``context``'s cluster proxy; False when it has none (nothing is done).

    Its listener closes and its connections are cut; blocks until then
    (milliseconds; the engine's limit is 30 s).
    """
    if not any(p.context == context for p in manager.proxies()):
        return False
    manager.stop_proxy(context)
    return True
