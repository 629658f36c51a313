"""A small asyncio client for the few Kubernetes API calls Tender makes.

GET an object, LIST a collection and WATCH it, and open port-forward
WebSockets (see :mod:`tray.kube.websocket`).  It speaks plain JSON over httpx, with
the credentials and TLS settings of :class:`tray.kube.kubeconfig.ClusterAuth`.

Errors are precise, because the menu and the CLI show them to the user:

* the API server cannot be reached → :class:`ClusterUnreachable`;
* 403 → :class:`ForbiddenError` carrying the server's own message, which
  names the user, the verb, the resource and the namespace;
* 404 → :class:`NotFound`; other statuses → :class:`ApiError`.

A 401 reloads the credentials once (from a worker thread: exec plugins may
be slow) and repeats the request, as kubectl does after a token expires.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tray.errors import (
    ApiError,
    ClusterUnreachable,
    ForbiddenError,
    Gone,
    NotFound,
    TenderError,
    TLSVerificationError,
    Unauthorized,
)
from tray.kube.kubeconfig import ClusterAuth

log = logging.getLogger(__name__)

__all__ = ["ApiError", "NotFound", "Gone", "Unauthorized", "KubeAPI", "status_message"]

# After the credentials are reloaded (a new TLS context, so a new client), the
# old client is closed this much later: past its 30 s read timeout, so the
# requests still running on it finish first.
RETIRE_AFTER = 45.0

# A watch with no traffic for this long is presumed dead (a laptop that slept,
# a NAT that forgot us).  The server sends bookmarks about once a minute.
WATCH_IDLE_TIMEOUT = 90.0


def status_message(status: int, body: bytes | bytearray | str) -> str:
    """The human message of a Kubernetes Status body, else a short summary."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    except (ValueError, TypeError):
        pass
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
    text = " ".join(text.split())[:200]
    return f"HTTP {status}" + (f": {text}" if text else "")


def error_for(status: int, body: bytes | bytearray | str) -> TenderError:
    message = status_message(status, body)
    if status == 403:
        return ForbiddenError(message)
    if status == 404:
        return NotFound(status, message)
    if status == 410:
        return Gone(status, message)
    if status == 401:
        # The server's own message is just "Unauthorized": say what it means.
        detail = "" if message in ("Unauthorized", "HTTP 401") else f" ({message})"
        return Unauthorized(status, f"Unauthorized (HTTP 401): the API server rejected the credentials{detail}")
    return ApiError(status, message)


def _tls_refusal(exc: BaseException) -> BaseException | None:
    """The certificate check that failed under ``exc``, if that is what failed."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e):
            return e
        e = e.__cause__ or e.__context__
    return None


def unreachable(exc: BaseException) -> TenderError:
    """The error for a request that got no answer from the API server.

    :class:`ClusterUnreachable` (transient: forwards come back by themselves
    when it answers), except a failed certificate check, which no waiting
    mends (the kubeconfig's certificate-authority or tls-server-name is wrong,
    or it is another server): :class:`TLSVerificationError`.
    """
    refusal = _tls_refusal(exc)
    if refusal is not None:
        reason = " ".join((str(refusal) or type(refusal).__name__).split())[:200]
        return TLSVerificationError(f"cannot verify the API server's certificate: {reason} (check the "
                                    "kubeconfig's certificate-authority and tls-server-name)")
    reason = str(exc) or type(exc).__name__
    return ClusterUnreachable(f"cluster unreachable: {' '.join(reason.split())[:200]}")


# Errors of a pooled connection that is gone (the API server restarted and
# closed it, a reset): the request never reached a server that is there now.
_STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class KubeAPI:
    """One cluster's API server (one httpx connection pool, shared)."""

    def __init__(self, auth: ClusterAuth) -> None:
        self.auth = auth
        self._client: httpx.AsyncClient | None = None
        self._client_ssl: object = None
        self._retired: set[httpx.AsyncClient] = set()
        self._reauth_lock = asyncio.Lock()
        self._fresh = False
        self._client_born = 0.0
        #: Loop time (s) the API server last answered anything (a response, a
        #: watch line); :mod:`tray.kube.health` probes when it has been quiet.
        self.last_heard = 0.0

    def _new_client(self, ctx: ssl.SSLContext | None, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.auth.server,
            verify=ctx if ctx is not None else True,
            proxy=self.auth.proxy,
            timeout=httpx.Timeout(15.0, read=30.0),
            # HTTP/1.1, not HTTP/2: the API server answers a rejected token
            # over HTTP/2 with a GOAWAY that httpcore turns into an error,
            # hiding the 401 that makes Tender reload the kubeconfig.
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
            trust_env=self.auth.proxy is None,
            **kwargs,
        )

    def _http(self) -> httpx.AsyncClient:
        headers, ctx = self.auth.snapshot()
        if self._client is None or self._client_ssl is not ctx or self._fresh:
            self._fresh = False
            old = self._client
            self._client = self._new_client(ctx)
            self._client_ssl = ctx
            self._client_born = asyncio.get_running_loop().time()
            if old is not None:
                # Not closed at once: that cut every request in flight on it.
                # A forward starting while another request got a 401 (and so
                # reloaded the credentials) failed with "cluster unreachable:
                # ReadError" (found by test_faults' token revocation).
                self._retired.add(old)
                loop = asyncio.get_running_loop()
                loop.call_later(RETIRE_AFTER, lambda: loop.create_task(self._close_retired(old)))
        self._client.headers.clear()
        self._client.headers.update(headers)
        self._client.headers["Accept"] = "application/json"
        self._client.headers["User-Agent"] = "tender/0.1"
        return self._client

    def reset_connections(self, *, force: bool = False) -> None:
        """Use new connections from now on (the pooled ones may be dead:
        half-open after a network change).  Requests running on the old ones
        finish or time out there; the old pool is closed later.  Asked again
        within a second of the last replacement, it does nothing."""
        loop = asyncio.get_running_loop()
        if force or loop.time() - self._client_born >= 1.0:
            self._fresh = True

    def _heard(self) -> None:
        self.last_heard = asyncio.get_running_loop().time()

    def _extensions(self) -> dict[str, Any]:
        return {"sni_hostname": self.auth.tls_server_name} if self.auth.tls_server_name else {}

    async def reauthenticate(self) -> None:
        """Reload credentials from the kubeconfig (blocking work off the loop)."""
        async with self._reauth_lock:
            await asyncio.to_thread(self.auth.refresh, full=True)

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One JSON request; a 401 reloads the credentials and tries once more."""
        for attempt in (1, 2):
            try:
                resp = await self._http().request(method, path, extensions=self._extensions(), **kwargs)
            except _STALE_CONNECTION as exc:
                # The pooled connection was closed under us (the server
                # restarted) or broke: once more on a new one.
                if attempt == 2:
                    raise unreachable(exc) from None
                self.reset_connections(force=True)
                continue
            except httpx.TransportError as exc:
                raise unreachable(exc) from None
            self._heard()
            if resp.status_code == 401 and attempt == 1:
                await self.reauthenticate()
                continue
            if resp.status_code >= 400:
                raise error_for(resp.status_code, resp.content)
            return resp.json()
        raise AssertionError("unreachable")

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._request("GET", path, params=params)

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", path, json=body)

    async def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """DELETE ``path`` (with ``body``, say DeleteOptions); the API's answer.  Raises as :meth:`get`."""
        return await self._request("DELETE", path, json=body) if body else await self._request("DELETE", path)

    async def ping(self, timeout: float) -> None:
        """GET /version within ``timeout`` seconds (allowed for any user by
        the default RBAC, system:public-info-viewer); raises
        :class:`ClusterUnreachable` when there is no answer in time."""
        headers, ctx = self.auth.snapshot()
        try:
            # A connection of its own, opened and closed here (whatever ends
            # the call): it proves a new connection reaches the server now,
            # and leaves nothing in the shared pool.  httpx's own timeouts
            # (connect, write, read: each ``timeout``).
            async with self._new_client(ctx, headers={"User-Agent": "tender/0.1"}) as client:
                resp = await client.get("/version", timeout=timeout, extensions=self._extensions())
        except httpx.TimeoutException:
            raise ClusterUnreachable(f"cluster unreachable: no reply from the API server in {timeout:.0f} s") from None
        except httpx.TransportError as exc:
            raise unreachable(exc) from None
        self._heard()
        del resp  # read whole by get(); its status does not matter: it answered

    async def whoami(self) -> str:
        """The user name the API server sees for these credentials."""
        review = await self.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        return str(review.get("status", {}).get("userInfo", {}).get("username", ""))

    async def watch(
        self, path: str, resource_version: str, params: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events ({"type", "object"}) until the server ends the watch."""
        query = dict(params or {})
        query.update(watch="1", resourceVersion=resource_version, allowWatchBookmarks="true")
        timeout = httpx.Timeout(15.0, read=WATCH_IDLE_TIMEOUT)
        for attempt in (1, 2):
            try:
                async with self._http().stream(
                    "GET", path, params=query, timeout=timeout, extensions=self._extensions()
                ) as resp:
                    if resp.status_code == 401 and attempt == 1:
                        await resp.aread()
                        await self.reauthenticate()
                        continue
                    if resp.status_code >= 400:
                        raise error_for(resp.status_code, await resp.aread())
                    self._heard()
                    async for line in resp.aiter_lines():
                        self._heard()
                        if not line:
                            continue
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            obj = event.get("object") or {}
                            raise error_for(int(obj.get("code") or 500), json.dumps(obj))
                        yield event
                    return
            except httpx.ConnectError as exc:
                raise unreachable(exc) from None
            except httpx.TransportError as exc:
                # A read timeout or a dropped stream: the caller re-watches.
                raise ApiError(0, f"watch interrupted: {type(exc).__name__}") from None

    async def _close_retired(self, client: httpx.AsyncClient) -> None:
        if client in self._retired:
            self._retired.discard(client)
            await client.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        for client in list(self._retired):
            await self._close_retired(client)
