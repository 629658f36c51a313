"""The control API's server: HTTP + JSON on the engine's unix socket, and the dashboard on loopback.

One :class:`ApiServer` per engine, on its own thread (``tender-api``) with
its own asyncio loop, so a slow client never touches the engine's loop and
the engine's work never delays an answer.  The routes are docs/api.md's; the
same handlers serve two aiohttp applications:

* **the socket** (:mod:`tray.api.claim` binds it, 0600 in a 0700 directory):
  each connection's peer uid must be ours (``SO_PEERCRED``), else 403;
* **the dashboard**, bound to 127.0.0.1 on a free port only when first asked
  for (:meth:`ApiServer.dashboard_url`).  Everything it serves (the page,
  ``static/``, the API) lives under a random per-engine path prefix
  ``/d/RANDOM/``; anything else is 404.  Its link carries a one-time code
  (``?code=``, valid once and for :data:`CODE_LIFETIME` seconds), which
  ``GET /d/RANDOM/?code=`` trades for a cookie holding the engine's session
  key (HttpOnly, SameSite=Strict, ``Path=/d/RANDOM/``: browsers send cookies
  to every port of a host, so the path keeps it from the pods' ports the
  user opens).  Every other request needs that cookie, a ``Host`` naming
  that port on 127.0.0.1 or localhost (DNS rebinding), and an ``Origin``
  (when sent) of the page itself, nor a ``Sec-Fetch-Site: cross-site``
  (CSRF).  No CORS header is ever sent.  Refusals are 403 and change
  nothing.

Errors are translated in one place (:func:`_errors`): an
:class:`~tray.api.schema.ApiError` or a :class:`~tray.errors.UsageError`
becomes a 4xx with one sentence naming the field; anything else a request
hits inside the engine is logged and answered 503, and the engine goes on.
Blocking engine calls (a stop waits for its listener to close; a start may
read the kubeconfig and run an exec plugin) run in worker threads.

Events: the server subscribes to the engine once.  Each follower of
``GET /v1/events`` has its own queue.  The engine's events are gathered for
``LIST_SETTLE`` (50 ms) and sent in the engine's order, every ``status`` event
kept (every forward's final state arrives) and only the last ``list`` of the
batch, in its place (serialised once, for everyone: a burst of 200 starts
costs one list, not 200); ``stats`` events (the counters) are computed once a
second only while someone follows, and so are ``proxies`` events (the
cluster proxies, :mod:`tray.api.proxies`), sent only when they changed.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from tray import __version__
from tray.api.common import current_context as _current_context
from tray.api.common import json_response as _json
from tray.api.common import read_body as _body
from tray.api import schema
from tray.api import groups as api_groups
from tray.api.claim import peer_uid
from tray.api.groups import NO_GROUPS
from tray.api.schema import ApiError
from tray.errors import UsageError

log = logging.getLogger(__name__)

__all__ = ["ApiServer", "PING_INTERVAL", "STATS_INTERVAL"]

#: Seconds between two ``ping`` events to a follower with nothing else to read.
PING_INTERVAL = 15.0
#: The same for a follower that owns forwards (``stop_on_close``): how soon its going away is noticed.
OWNED_PING_INTERVAL = 2.0
#: Seconds between two ``stats`` events.
STATS_INTERVAL = 1.0
#: Seconds a follower may leave a write unread before it is disconnected.
STALL_LIMIT = 60.0
#: Queued events past which a follower's older ``list``/``stats`` events are dropped.
BACKLOG = 512
#: Seconds the engine's events are gathered before they are sent (a burst's lists become one).
LIST_SETTLE = 0.05
MAX_BODY = 64 * 1024
#: The ``proxies`` event when no cluster proxy runs (never sent to a new follower: it says nothing).
NO_PROXIES = b'{"event": "proxies", "proxies": []}\n'
COOKIE = "tender_session"
#: Seconds a dashboard link's one-time code may wait to be used.
CODE_LIFETIME = 120.0
#: Unused codes kept at most (the oldest are forgotten first).
MAX_CODES = 64

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _error(status: int, message: str, field: str | None = None) -> web.Response:
    return _json(ApiError(status, message, field).to_dict(), status)


class _Follower:
    """One client of ``GET /v1/events``: a queue of JSON lines the handler writes out."""

    def __init__(self) -> None:
        self.items: collections.deque[tuple[str, bytes]] = collections.deque()
        self.ready = asyncio.Event()

    def push(self, kind: str, line: bytes) -> None:
        if len(self.items) >= BACKLOG and kind in ("list", "stats", "proxies", "groups"):
            # A slow reader: the newest list/stats say all the older ones did.
            self.items = collections.deque(i for i in self.items if i[0] != kind)
        self.items.append((kind, line))
        self.ready.set()


class _Codes:
    """The dashboard links' one-time codes: each valid once, for :data:`CODE_LIFETIME` seconds.

    Thread-safe (:meth:`mint` runs on any thread, :meth:`redeem` on the API
    loop); ``clock`` gives seconds (``time.monotonic`` unless a test says).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def mint(self) -> str:
        """A new random code (URL-safe text), valid from now for ``CODE_LIFETIME`` s."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            now = self._clock()
            self._expiry = {c: t for c, t in self._expiry.items() if t > now}
            while len(self._expiry) >= MAX_CODES:
                del self._expiry[next(iter(self._expiry))]
            self._expiry[code] = now + CODE_LIFETIME
        return code

    def redeem(self, offered: str) -> bool:
        """Whether ``offered`` (any text) is a code not yet used nor expired; it is used up either way."""
        with self._lock:
            expiry = self._expiry.pop(offered, None)
            return expiry is not None and self._clock() < expiry


class ApiServer:
    """The engine's control API (docs/api.md), served from a thread of its own.

    ``manager``: the :class:`~tray.engine.manager.ForwardManager`; ``host``:
    ``"tray"`` or ``"daemon"`` (what ``GET /v1/engine`` says);
    ``profiles_path``: the profiles file the API reads and starts from;
    ``on_activate``: called (on the API thread; it must return quickly) when
    a second tray launch asks this one to show itself; ``on_dashboard``
    likewise when the dashboard's URL is handed out (the tray logs it).
    """

    def __init__(self, manager: Any, *, host: str, profiles_path: str | os.PathLike[str],
                 on_activate: Callable[[], None] | None = None) -> None:
        self.manager = manager
        self.host = host
        self.profiles_path = Path(profiles_path)
        self.on_activate = on_activate
        self.started_at = _now()
        self._session_key = secrets.token_urlsafe(32)  # the dashboard cookie's value
        self.prefix = f"/d/{secrets.token_urlsafe(12)}/"  # where the dashboard lives on its port
        self._codes = _Codes()
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []
        self._web_port: int | None = None
        self._web_lock: asyncio.Lock | None = None
        self._followers: set[_Follower] = set()
        self._batch: list[tuple[str, Any]] = []  # engine events not yet sent (API loop only)
        self._stats_task: asyncio.Task[None] | None = None
        self._last_stats: dict[str, tuple[Any, ...]] = {}
        self._profiles_cache: tuple[Any, ...] = ()
        self._proxies_line = NO_PROXIES  # the last proxies event sent
        self._groups_line = NO_GROUPS  # the last groups event sent (tray.api.groups)
        self._closed = False

    # ------------------------------------------------------------ life
    def start(self, listener: socket.socket | None, timeout: float = 10.0) -> None:
        """Serve the API on ``listener`` (a listening unix socket, or None: no socket) from a new thread.

        Returns once it is accepting (at most ``timeout`` seconds, then
        ``TimeoutError``).  Subscribes to the engine's events.
        """
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._start(listener))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="tender-api", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the control API did not start")
        if failure:
            raise failure[0]
        self.manager.subscribe(self._on_event)

    async def _start(self, listener: socket.socket | None) -> None:
        self._web_lock = asyncio.Lock()
        if listener is None:
            return
        app = self._app(self._socket_guard)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, listener).start()
        self._runners.append(runner)

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving (followers are disconnected) and end the thread.  Idempotent; blocks up to ``timeout`` s."""
        if self._closed or self._thread is None:
            self._closed = True
            return
        self._closed = True
        self.manager.unsubscribe(self._on_event)

        async def stop() -> None:
            for f in list(self._followers):
                f.push("end", b"")
            for runner in self._runners:
                await runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout)
        except Exception as exc:  # noqa: BLE001 - closing: log and go on
            log.debug("closing the API: %s", exc)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def dashboard_url(self, timeout: float = 10.0) -> str:
        """A new link to the dashboard, ``http://127.0.0.1:PORT/d/RANDOM/?code=CODE``, starting its
        loopback listener on first call.

        Each call mints a fresh code, good for one visit within
        :data:`CODE_LIFETIME` seconds.  Thread-safe, but not from the API
        thread; blocks until the listener is bound (milliseconds;
        ``TimeoutError`` after ``timeout`` s).
        """
        port = asyncio.run_coroutine_threadsafe(self._ensure_web(), self._loop).result(timeout)
        return self._link(port)

    def _link(self, port: int) -> str:
        return f"http://127.0.0.1:{port}{self.prefix}?code={self._codes.mint()}"

    async def _ensure_web(self) -> int:
        assert self._web_lock is not None
        async with self._web_lock:
            if self._web_port is None:
                app = self._app(self._web_guard, page=True)
                runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", 0, reuse_address=True)
                await site.start()
                self._runners.append(runner)
                server = site._server  # the bound port is known only from the server's socket
                assert server is not None
                self._web_port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                log.info("dashboard listening on 127.0.0.1:%s", self._web_port)
            return self._web_port

    # ------------------------------------------------------------ the apps
    def _app(self, guard: Any, *, page: bool = False) -> web.Application:
        app = web.Application(middlewares=[guard, _errors], client_max_size=MAX_BODY)
        r = app.router
        base = self.prefix if page else "/"  # the dashboard's routes are all under its prefix
        r.add_get(f"{base}v1/engine", self._engine)
        r.add_get(f"{base}v1/forwards", self._forwards)
        r.add_post(f"{base}v1/forwards", self._start_forwards)
        r.add_post(f"{base}v1/forwards/stop", self._stop_many)
        r.add_get(f"{base}v1/forwards/{{id}}", self._forward)
        r.add_delete(f"{base}v1/forwards/{{id}}", self._stop_one)
        r.add_post(f"{base}v1/forwards/{{id}}/stop", self._stop_one)
        r.add_post(f"{base}v1/forwards/{{id}}/retry", self._retry_one)
        r.add_get(f"{base}v1/forwards/{{id}}/logs", self._logs)
        r.add_get(f"{base}v1/events", self._events)
        r.add_get(f"{base}v1/profiles", self._profiles)
        r.add_post(f"{base}v1/profiles/start", self._profiles_start)
        r.add_post(f"{base}v1/profiles/stop", self._profiles_stop)
        r.add_get(f"{base}v1/contexts", self._contexts)
        r.add_get(f"{base}v1/search", self._search)
        r.add_get(f"{base}v1/contexts/{{context}}/namespaces/{{namespace}}/suggestions", self._suggestions)
        r.add_post(f"{base}v1/activate", self._activate)
        r.add_get(f"{base}v1/proxies", self._proxies)
        r.add_post(f"{base}v1/proxies", self._start_proxy)
        r.add_delete(f"{base}v1/proxies/{{context}}", self._stop_proxy)
        api_groups.add_routes(r, base, self)  # /v1/groups: namespace groups
        if page:
            from tray.api import page as page_module

            r.add_get(base, self._page)
            r.add_static(f"{base}static/", Path(page_module.__file__).parent / "static", show_index=False)
        else:
            r.add_post("/v1/dashboard", self._dashboard)
        return app

    @web.middleware
    async def _socket_guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and uid != os.getuid():
            log.warning("refused a control connection from uid %s", uid)
            return _error(403, f"this engine belongs to uid {os.getuid()}; uid {uid} may not use it")
        return await handler(request)

    @web.middleware
    async def _web_guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        port = self._web_port
        allowed = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if request.headers.get("Host", "") not in allowed:
            return _error(403, "wrong Host header: open the dashboard at 127.0.0.1 (tender dashboard)")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in {f"http://{h}" for h in allowed}:
            return _error(403, "requests from other sites are refused (Origin)")
        if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return _error(403, "requests from other sites are refused (Sec-Fetch-Site)")
        if not request.path.startswith(self.prefix):
            return _error(404, "no such page: open the dashboard from the tray or with 'tender dashboard'")
        code = request.query.get("code")
        if code is not None and request.method == "GET" and request.path == self.prefix:
            if not self._codes.redeem(code):
                return _error(403, "this dashboard link was already used or is more than "
                                   f"{CODE_LIFETIME:.0f} s old: open the dashboard again from the tray "
                                   "or with 'tender dashboard'")
            # Drop the code from the address bar; the cookie goes only to this prefix (not to the pods'
            # ports on 127.0.0.1, which browsers would otherwise send it to).
            response = web.Response(status=303, headers={"Location": self.prefix, "Cache-Control": "no-store",
                                                         "Referrer-Policy": "no-referrer"})
            response.set_cookie(COOKIE, self._session_key, httponly=True, samesite="Strict", path=self.prefix)
            return response
        offered = request.cookies.get(COOKIE, "")
        if not offered or not self._is_session_key(offered):
            return _error(403, "no dashboard session: open the dashboard from the tray or with 'tender dashboard'")
        response = await handler(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    def _is_session_key(self, offered: str) -> bool:
        """Whether ``offered`` is the dashboard cookie's value (constant time; any text, non-ASCII included)."""
        return hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), self._session_key.encode())

    # ------------------------------------------------------------ handlers
    async def _engine(self, request: web.Request) -> web.Response:
        return _json({"version": __version__, "api": "v1", "pid": os.getpid(), "host": self.host,
                      "uid": os.getuid() if hasattr(os, "getuid") else None,
                      "kubeconfig": [os.path.abspath(os.path.expanduser(p))
                                     for p in self.manager.kubeconfig.split(os.pathsep) if p],
                      "profiles": str(self.profiles_path), "started_at": self.started_at,
                      "forwards": len(self.manager.list())})

    async def _forwards(self, request: web.Request) -> web.Response:
        return _json({"forwards": [schema.forward_dict(s) for s in self.manager.list()]})

    def _info(self, request: web.Request) -> Any:
        session_id = request.match_info["id"]
        try:
            return self.manager.get(session_id)
        except UsageError:
            raise ApiError(404, f"no forward with id {session_id}", "id") from None

    async def _forward(self, request: web.Request) -> web.Response:
        return _json(schema.forward_dict(self._info(request)))

    async def _start_forwards(self, request: web.Request) -> web.Response:
        body = await _body(request)
        target, specs, context, namespace, address = schema.parse_forward_request(body)
        balance = schema.parse_balance(body, target)
        relay_image = schema.parse_relay_image(body)
        from tray.domain.spec import ForwardSpec
        from tray.profiles.run import local_port_of

        def start() -> list[str]:
            ctx = context or _current_context(self.manager)
            if context is not None and context not in {c.id for c in self.manager.clusters()}:
                known = ", ".join(c.id for c in self.manager.clusters()) or "none"
                raise ApiError(400, f'context "{context}" not found in the kubeconfig (contexts: {known})',
                               "context")
            self.manager.preflight(ctx)
            ids: list[str] = []
            try:
                for i, (text, spec) in enumerate(specs):
                    try:
                        ids.append(self.manager.start(ForwardSpec(ctx, namespace, target, spec.remote,
                                                                  local_port=local_port_of(spec),
                                                                  address=address, balance=balance,
                                                                  protocol=spec.protocol,
                                                                  relay_image=relay_image)))
                    except UsageError as exc:
                        raise _conflict_or_bad(exc, f"ports[{i}]") from None
            except BaseException:
                for i in ids:  # all or nothing, as kubectl: a half-started request is undone
                    self.manager.stop(i)
                raise
            return ids

        ids = await asyncio.to_thread(start)
        return _json({"forwards": [schema.forward_dict(self.manager.get(i)) for i in ids]}, 201)

    async def _stop_one(self, request: web.Request) -> web.Response:
        info = self._info(request)
        try:
            await asyncio.to_thread(self.manager.stop, info.id)
        except UsageError:  # stopped meanwhile by another request
            raise ApiError(404, f"no forward with id {info.id}", "id") from None
        return _json({"stopped": [info.id]})

    async def _retry_one(self, request: web.Request) -> web.Response:
        info = self._info(request)
        if info.status != "error":
            return _json({"retried": []})
        await asyncio.to_thread(self.manager.retry, info.id)
        return _json({"retried": [info.id]})

    async def _stop_many(self, request: web.Request) -> web.Response:
        sel = schema.parse_selector(await _body(request), ("ids", "all", "context", "profile"))
        infos = self.manager.list()
        known = {s.id for s in infos}
        for i in sel["ids"]:
            if i not in known:
                raise ApiError(404, f"no forward with id {i}", "ids")
        chosen = [s.id for s in infos if sel["all"] or s.id in sel["ids"]
                  or (sel["context"] and s.cluster_id == sel["context"])
                  or (sel["profile"] and s.profile == sel["profile"])]

        def stop_all() -> list[str]:
            done = []
            for i in chosen:
                try:
                    self.manager.stop(i)
                    done.append(i)
                except UsageError:
                    pass  # stopped meanwhile
            return done

        return _json({"stopped": await asyncio.to_thread(stop_all)})

    async def _logs(self, request: web.Request) -> web.Response:
        info = self._info(request)
        logs = getattr(self.manager, "logs", None)
        lines = [line.to_dict() for line in logs(info.id)] if logs is not None else []
        return _json({"lines": lines})

    async def _contexts(self, request: web.Request) -> web.Response:
        clusters = await asyncio.to_thread(self.manager.clusters)
        return _json({"contexts": [{"name": c.id, "cluster": c.cluster_name, "namespace": c.namespace,
                                    "current": c.current} for c in clusters]})

    async def _search(self, request: web.Request) -> web.Response:
        text = request.query.get("q", "")
        if not text.strip():
            raise ApiError(400, "q is required: the text to search for", "q")
        if len(text) > 200:
            raise ApiError(400, "q is longer than 200 characters", "q")
        context = request.query.get("context") or None
        from tray.api.search import search

        return _json(await asyncio.to_thread(search, self.manager, text, context))

    async def _suggestions(self, request: web.Request) -> web.Response:
        """What the k9s/kftray annotations in a namespace suggest (:meth:`tray.engine.browse.Browser.suggestions`)."""
        context = request.match_info["context"]
        namespace = schema.check_namespace(request.match_info["namespace"])
        from tray.api.search import DEFAULT_TIMEOUT, describe
        from tray.engine.browse import Browser

        def look() -> dict[str, Any]:
            known = [c.id for c in self.manager.clusters()]
            if context not in known:
                names = ", ".join(known) or "none"
                raise ApiError(404, f"no context {context!r} in the kubeconfig (contexts: {names})", "context")
            suggested = Browser(self.manager).suggestions(context, namespace, DEFAULT_TIMEOUT)
            return schema.suggestions_dict(context, namespace, suggested, lambda exc: describe(exc, DEFAULT_TIMEOUT))

        return _json(await asyncio.to_thread(look))

    async def _activate(self, request: web.Request) -> web.Response:
        if self.on_activate is not None:
            try:
                self.on_activate()
            except Exception:
                log.exception("on_activate failed")
        return _json({"host": self.host})

    async def _dashboard(self, request: web.Request) -> web.Response:
        port = await self._ensure_web()
        return _json({"url": self._link(port)})

    async def _page(self, request: web.Request) -> web.Response:
        from tray.api.page import render_page

        engine = json.loads((await self._engine(request)).text)
        profiles = await asyncio.to_thread(self._profiles_data)
        try:
            contexts = [{"name": c.id, "current": c.current} for c in await asyncio.to_thread(self.manager.clusters)]
        except UsageError:  # a broken kubeconfig: the page says what it can
            contexts = []
        html = render_page(engine, [schema.forward_dict(s) for s in self.manager.list()], profiles,
                           contexts, await self._proxy_list(),
                           [api_groups.group_dict(g) for g in api_groups.groups_of(self.manager)])
        return web.Response(text=html, content_type="text/html", headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"})

    # ------------------------------------------------------------ cluster proxies
    async def _proxy_list(self) -> list[dict[str, Any]]:
        from tray.api.proxies import proxy_dict

        proxies = getattr(self.manager, "proxies", None)  # an engine without them has none
        return [proxy_dict(p) for p in await asyncio.to_thread(proxies)] if proxies is not None else []

    async def _proxies(self, request: web.Request) -> web.Response:
        return _json({"proxies": await self._proxy_list()})

    async def _start_proxy(self, request: web.Request) -> web.Response:
        from tray.api import proxies

        context, listen = proxies.parse_request(await _body(request))

        def start() -> Any:
            ctx = context or _current_context(self.manager)
            known = [c.id for c in self.manager.clusters()]
            if ctx not in known:
                raise ApiError(400, f'context "{ctx}" not found in the kubeconfig (contexts: '
                                    f'{", ".join(known) or "none"})', "context")
            return proxies.start_proxy(self.manager, ctx, listen)

        try:
            info = await asyncio.to_thread(start)
        except proxies.ProxyConflict as exc:
            raise ApiError(409, exc.message, exc.field) from None
        await self._send_proxies()
        return _json(proxies.proxy_dict(info), 201)

    async def _stop_proxy(self, request: web.Request) -> web.Response:
        from tray.api import proxies

        context = request.match_info["context"]
        if not await asyncio.to_thread(proxies.stop_proxy, self.manager, context):
            raise ApiError(404, f"context {context} has no cluster proxy", "context")
        await self._send_proxies()
        return _json({"stopped": [context]})

    async def _send_proxies(self) -> None:
        """Send a ``proxies`` event to every follower if the proxies (or their counters) changed since the last."""
        if not self._followers:
            return
        line = (json.dumps({"event": "proxies", "proxies": await self._proxy_list()}) + "\n").encode()
        if line != self._proxies_line:
            self._proxies_line = line
            self._fan_out("proxies", line)

    async def _send_groups(self) -> None:
        """Send a ``groups`` event to every follower if the namespace groups changed since the last one sent."""
        if not self._followers:
            return
        line = api_groups.groups_line(self.manager)
        if line != self._groups_line:
            self._groups_line = line
            self._fan_out("groups", line)

    # ------------------------------------------------------------ profiles
    def _load_profiles(self) -> tuple[Any, list[UsageError], str | None]:
        from tray.profiles import check_profiles, load_profiles

        try:
            pf = load_profiles(self.profiles_path, missing_ok=True)
        except UsageError as exc:
            problems = check_profiles(self.profiles_path, missing_ok=True) or [exc]
            return self._profiles_cache, problems, str(exc)
        self._profiles_cache = pf.profiles
        return pf.profiles, [], None

    def _profiles_data(self) -> dict[str, Any]:
        profiles, problems, error = self._load_profiles()
        counts = collections.Counter(s.profile for s in self.manager.list() if s.profile)
        return {"path": str(self.profiles_path), "error": error,
                "problems": [{"line": p.line, "field": p.field, "message": str(p)} for p in problems],
                "profiles": [schema.profile_dict(p, counts.get(p.name, 0)) for p in profiles]}

    async def _profiles(self, request: web.Request) -> web.Response:
        return _json(await asyncio.to_thread(self._profiles_data))

    def _chosen_profiles(self, sel: dict[str, Any]) -> list[Any]:
        profiles, _problems, error = self._load_profiles()
        if error and not profiles:
            raise ApiError(409, f"the profiles file cannot be used: {error}", "profiles")
        by_name = {p.name: p for p in profiles}
        chosen = list(profiles) if sel["all"] else []
        for name in sel["names"]:
            if name not in by_name:
                raise ApiError(404, f"no profile named {name!r} (profiles: {', '.join(by_name) or 'none'})", "names")
            if by_name[name] not in chosen:
                chosen.append(by_name[name])
        for group in sel["groups"]:
            members = [p for p in profiles if p.group == group]
            if not members:
                raise ApiError(404, f"no profiles in group {group!r}", "groups")
            chosen.extend(p for p in members if p not in chosen)
        return chosen

    async def _profiles_start(self, request: web.Request) -> web.Response:
        sel = schema.parse_selector(await _body(request), ("names", "groups", "all"))
        from tray.profiles.run import start_profiles

        def start() -> tuple[list[str], list[dict[str, str]]]:
            started, failed = start_profiles(self.manager, self._chosen_profiles(sel),
                                             lambda: _current_context(self.manager))
            return started, [{"profile": p.name, "error": str(exc)} for p, exc in failed]

        started, failed = await asyncio.to_thread(start)
        return _json({"started": [schema.forward_dict(self.manager.get(i)) for i in started], "failed": failed})

    async def _profiles_stop(self, request: web.Request) -> web.Response:
        sel = schema.parse_selector(await _body(request), ("names", "groups", "all"))

        def stop() -> list[str]:
            from tray.profiles.run import stop_profile

            names = {p.name for p in self._chosen_profiles(sel)}
            if sel["all"]:  # also the forwards of profiles no longer in the file
                names |= {s.profile for s in self.manager.list() if s.profile}
                names |= {g.profile for g in api_groups.groups_of(self.manager) if g.profile}
            return [i for name in sorted(names) for i in stop_profile(self.manager, name)]

        return _json({"stopped": await asyncio.to_thread(stop)})

    # ------------------------------------------------------------ events
    def _on_event(self, event: Any) -> None:
        """The engine's subscriber (engine thread): hand over to the API loop, in the engine's order."""
        if not self._followers or self._closed:
            return
        if hasattr(event, "sessions"):  # a ListEvent: serialised at the flush, only if it is a burst's last
            self._loop.call_soon_threadsafe(self._enqueue, "list", event)
            return
        data = schema.event_dict(event)
        self._loop.call_soon_threadsafe(self._enqueue, data["event"], (json.dumps(data) + "\n").encode())

    def _enqueue(self, kind: str, item: Any) -> None:
        """API loop: add one event to the batch, in the order the engine sent them (call_soon_threadsafe
        keeps it); the first of a batch schedules its flush LIST_SETTLE later."""
        if not self._batch:
            self._loop.call_later(LIST_SETTLE, self._flush_batch)
        self._batch.append((kind, item))

    def _flush_batch(self) -> None:
        """Send a batch in order, with only its last ``list``, which stays where it was among the others.

        Every other event is sent.  So each client sees every status event, and a list is
        never older than a status event sent before it, nor leaves out a forward before that
        forward's last status (both seen in the tests: a list built later than its place
        dropped forwards whose 'stopped' came after it; a list sent later than its place
        showed 'starting' after 'error').  Starting 200 forwards makes 200 lists of up to
        200 forwards: a burst serialises one.
        """
        batch, self._batch = self._batch, []
        last = max((i for i, (kind, _) in enumerate(batch) if kind == "list"), default=-1)
        if last >= 0 and hasattr(self.manager, "proxies") and self._loop.is_running():
            self._loop.create_task(self._send_proxies())  # the engine lists on a proxy's start and stop too
            self._loop.create_task(self._send_groups())  # and on a group's members coming and going
        for i, (kind, item) in enumerate(batch):
            if kind == "list":
                if i != last:
                    continue
                item = (json.dumps(schema.event_dict(item)) + "\n").encode()
            self._fan_out(kind, item)

    def _fan_out(self, kind: str, line: bytes) -> None:
        for f in self._followers:
            f.push(kind, line)

    async def _stats_loop(self) -> None:
        while self._followers:
            await asyncio.sleep(STATS_INTERVAL)
            moved = []
            seen = set()
            for info in self.manager.list():
                entry = schema.stats_dict(info)
                key = tuple(entry.values())
                seen.add(info.id)
                if self._last_stats.get(info.id) != key:
                    self._last_stats[info.id] = key
                    moved.append(entry)
            for gone in set(self._last_stats) - seen:
                del self._last_stats[gone]
            if moved:
                self._fan_out("stats", (json.dumps({"event": "stats", "forwards": moved}) + "\n").encode())
            await self._send_proxies()  # started or stopped elsewhere (the tray, the CLI), counters
            await self._send_groups()  # a group's status moves without a list (starting, active, error)
        self._stats_task = None

    async def _events(self, request: web.Request) -> web.StreamResponse:
        sse = "text/event-stream" in request.headers.get("Accept", "")
        # ?stop_on_close=ID,ID: a joined `tender forward` owns those forwards; when its stream ends
        # (Ctrl-C, a closed terminal's SIGHUP, SIGKILL) they stop, as an in-process forward would.
        owned = [i for i in request.query.get("stop_on_close", "").split(",") if i]
        known = {s.id for s in self.manager.list()} | {g.id for g in api_groups.groups_of(self.manager)}
        for i in owned:
            if i not in known:
                raise ApiError(404, f"no forward with id {i}", "stop_on_close")
        interval = OWNED_PING_INTERVAL if owned else PING_INTERVAL
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream" if sse else "application/x-ndjson",
            "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        follower = _Follower()
        self._followers.add(follower)
        if self._stats_task is None:
            self._last_stats = {s.id: tuple(schema.stats_dict(s).values()) for s in self.manager.list()}
            self._stats_task = asyncio.get_running_loop().create_task(self._stats_loop())
        first = {"event": "list", "forwards": [schema.forward_dict(s) for s in self.manager.list()]}
        follower.push("list", (json.dumps(first) + "\n").encode())
        await self._send_proxies()
        if self._proxies_line != NO_PROXIES and follower.items[-1][0] != "proxies":
            follower.push("proxies", self._proxies_line)  # the proxies now, when there are any
        await self._send_groups()
        if self._groups_line != NO_GROUPS and follower.items[-1][0] != "groups":
            follower.push("groups", self._groups_line)  # the groups now, when there are any
        try:
            while True:
                try:
                    await asyncio.wait_for(follower.ready.wait(), interval)
                except asyncio.TimeoutError:
                    follower.push("ping", b'{"event": "ping"}\n')
                follower.ready.clear()
                items, follower.items = follower.items, collections.deque()
                if any(kind == "end" for kind, _ in items):
                    items = collections.deque(i for i in items if i[0] != "end")
                    await self._write(response, items, sse)
                    break
                await self._write(response, items, sse)
        except (ConnectionResetError, asyncio.TimeoutError, asyncio.CancelledError) as exc:
            log.debug("an event follower went away: %r", exc)
        finally:
            self._followers.discard(follower)
            if owned and not self._closed:
                log.info("the client that owned %d forward(s) went away: stopping them", len(owned))
                asyncio.get_running_loop().run_in_executor(None, self._stop_quietly, owned)
        return response

    def _stop_quietly(self, ids: list[str]) -> None:
        """Stop the forwards ``ids`` that are still there (a worker thread; never raises)."""
        for i in ids:
            try:
                self.manager.stop(i)
            except Exception as exc:  # noqa: BLE001 - gone meanwhile, or the engine is closing
                log.debug("stopping %s: %s", i, exc)

    @staticmethod
    async def _write(response: web.StreamResponse, items: Any, sse: bool) -> None:
        if not items:
            return
        if sse:
            data = b"".join(b"data: " + line.rstrip(b"\n") + b"\n\n" for _, line in items)
        else:
            data = b"".join(line for _, line in items)
        await asyncio.wait_for(response.write(data), STALL_LIMIT)


# ---------------------------------------------------------------- helpers
def _conflict_or_bad(exc: UsageError, field: str) -> ApiError:
    status = 409 if "already used" in exc.message else 400
    return ApiError(status, f"{field}: {exc.message}", field)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as one JSON sentence: 4xx for the request's fault, 503 for the engine's."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(exc.to_dict(), exc.status)
    except UsageError as exc:
        return _error(409 if "already used" in exc.message else 400, str(exc), exc.field)
    except RequestPayloadError as exc:  # e.g. a body not in its Content-Encoding; the connection is unusable
        response = _error(400, f"the body could not be read: {' '.join(str(exc).split())}")
        response.force_close()
        return response
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"the body is larger than {MAX_BODY} bytes")
    except web.HTTPMethodNotAllowed as exc:
        return _error(405, f"{request.method} is not allowed on {request.path} (allowed: "
                           f"{', '.join(sorted(exc.allowed_methods))})")
    except web.HTTPNotFound:
        return _error(404, f"no such path: {request.path} (see docs/api.md)")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason)
    except (TimeoutError, asyncio.TimeoutError):
        return _error(503, "the engine did not answer in time; try again")
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a fault inside the engine: logged, the engine goes on
        log.exception("API request %s %s failed", request.method, request.path)
        return _error(503, f"the engine could not do that: {type(exc).__name__}: {exc}")
