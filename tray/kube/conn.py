"""One kubeconfig context as the engine uses it: its credentials and its API client.

:class:`ClusterConn` is created by :class:`tray.engine.manager.ForwardManager`
(one per context in use) and shared by every forward on that context.  It
loads the credentials lazily, off the event loop, and answers whether they
may create ``pods/portforward`` in a namespace.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tray.errors import TenderError
from tray.kube.kubeapi import KubeAPI
from tray.kube.kubeconfig import ClusterAuth, ClusterInfo

__all__ = ["ClusterConn"]


class ClusterConn:
    """One kubeconfig context: its credentials and its API client (lazy).

    ``info`` is the context as :func:`tray.kube.kubeconfig.list_clusters`
    lists it; ``kubeconfig`` the path list (``os.pathsep``-separated) it came
    from.  Construction reads no file and makes no call: the credentials are
    loaded by :meth:`ensure_auth` (or ``auth.refresh`` then
    :meth:`mark_loaded`).  Attributes: ``id`` (the context name),
    ``cluster_name``, ``default_namespace``, ``auth``
    (:class:`~tray.kube.kubeconfig.ClusterAuth`), ``api``
    (:class:`~tray.kube.kubeapi.KubeAPI`).  Use it on one event loop.
    """

    def __init__(self, info: ClusterInfo, kubeconfig: str) -> None:
        self.id = info.id
        self.cluster_name = info.cluster_name
        self.default_namespace = info.namespace
        self.auth = ClusterAuth(context=info.id, kubeconfig=kubeconfig)
        self.api = KubeAPI(self.auth)
        self._loaded = False
        self._lock = asyncio.Lock()
        self._may_forward: dict[str, bool] = {}
        self._may_forward_creds: tuple[Any, Any] | None = None
        self._asking: dict[tuple[str, Any], asyncio.Future[bool | None]] = {}  # questions in flight

    def mark_loaded(self) -> None:
        """Record that the credentials were loaded by the caller (``auth.refresh(full=True)``); never blocks."""
        self._loaded = True

    async def ensure_auth(self) -> None:
        """Load credentials once, off the loop (an exec plugin may be slow).

        Later calls return at once.  The first waits for the kubeconfig to be
        read and any exec plugin to run (seconds at worst); concurrent callers
        wait for the same load.  Raises what ``ClusterAuth.refresh`` raises
        (:class:`~tray.errors.UsageError` for a broken kubeconfig or plugin).
        """
        if self._loaded:
            return
        async with self._lock:
            if not self._loaded:
                await asyncio.to_thread(self.auth.refresh, full=True)
                self._loaded = True

    async def may_forward(self, namespace: str) -> bool:
        """Whether these credentials may create pods/portforward in the namespace.

        Asked once per namespace (a SelfSubjectAccessReview; callers asking
        while it is in flight wait for the same answer), so a forward
        that RBAC will refuse fails at start, as kubectl's does, instead of at
        its first connection.  If the question itself cannot be asked, the
        answer is yes: the first connection will tell.  Awaits one API call
        (bounded by the client's 30 s timeout) the first time per namespace
        and credentials; never raises a :class:`~tray.errors.TenderError`.
        """
        # Only a "yes" is kept, and only for the credentials that got it: a
        # kept "no" outlived the fix (RBAC granted, or the kubeconfig's token
        # replaced and reloaded), so Retry said "forbidden" until a restart;
        # a kept "yes" outlived a reload to weaker credentials (found by
        # test_faults' credential changes).  A revoked "yes" still shows at
        # the first connection (403).
        headers, ctx = self.auth.snapshot()
        creds = (headers.get("Authorization"), ctx)
        if creds != self._may_forward_creds:
            self._may_forward.clear()
            self._may_forward_creds = creds
        if namespace in self._may_forward:
            return self._may_forward[namespace]
        # Forwards starting together (200 profiles at start-up) share one
        # question per namespace and credentials, and its answer.
        key = (namespace, creds)
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self._review(namespace))
            asking.add_done_callback(lambda _: self._asking.pop(key, None))
        allowed = await asyncio.shield(asking)
        if allowed is True and self._may_forward_creds == creds:
            self._may_forward[namespace] = True
        return allowed is not False

    async def _review(self, namespace: str) -> bool | None:
        """One SelfSubjectAccessReview: True (allowed), False (denied), None (could not ask)."""
        review = {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": namespace, "verb": "create",
                                            "resource": "pods", "subresource": "portforward"}},
        }
        try:
            answer = await self.api.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
        except TenderError:
            return None
        return bool(answer.get("status", {}).get("allowed"))
