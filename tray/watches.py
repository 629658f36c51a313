"""Shared list+watch caches: one watch per (cluster, namespace, resource).

However many forwards target the same namespace, Tender keeps exactly one
watch of its pods (and one of its Services, Deployments, ...).  In steady
state nothing polls: the cache is a LIST followed by a WATCH that resumes
from the last resourceVersion (bookmarks keep it fresh), and relists only
when the server says the version is gone (410).

Subscribers are plain callables ``fn(cache)`` run on the engine loop after
every change, and after the cache's health changes (``cache.error``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from tray.errors import ClusterUnreachable, ForbiddenError, TenderError
from tray.kubeapi import ApiError, Gone, KubeAPI, Unauthorized

log = logging.getLogger(__name__)

__all__ = ["ResourceCache", "WatchRegistry"]

Listener = Callable[["ResourceCache"], None]


class ResourceCache:
    """The live objects of one resource in one namespace of one cluster."""

    def __init__(self, api: KubeAPI, prefix: str, namespace: str, plural: str) -> None:
        self.api = api
        self.path = f"/{prefix}/namespaces/{namespace}/{plural}"
        self.namespace = namespace
        self.plural = plural
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        # Set while the cache cannot reach the server; None when healthy.
        self.error: TenderError | None = None
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self.refs = 0

    def subscribe(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def unsubscribe(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _notify(self) -> None:
        for fn in list(self._listeners):
            try:
                fn(self)
            except Exception:  # a listener's bug must not kill the watch
                log.exception("watch listener failed")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"watch {self.path}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait_synced(self, timeout: float) -> None:
        """Wait for the first LIST; raise the cache's error if it has one."""
        if self.synced.is_set():
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.synced.is_set():
            if self.error is not None:
                raise self.error
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise ClusterUnreachable(f"cluster unreachable: no answer listing {self.plural} in {timeout:.0f}s")
            try:
                await asyncio.wait_for(self.synced.wait(), min(remaining, 0.25))
            except TimeoutError:
                pass

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                listing = await self.api.get(self.path)
                self.objects = {o["metadata"]["name"]: o for o in listing.get("items", [])}
                rv = listing["metadata"]["resourceVersion"]
                self.error = None
                self.synced.set()
                self._notify()
                delay = 0.5
                while True:
                    rv = await self._watch_once(rv)
            except asyncio.CancelledError:
                raise
            except Gone:
                continue  # relist at once
            except (ClusterUnreachable, ForbiddenError, Unauthorized) as exc:
                # Unauthorized too: before, a rejected token was logged at
                # debug level and retried forever, so a forward being started
                # waited 20 s and then blamed an unreachable cluster.
                self._set_error(exc)
            except ApiError as exc:
                log.debug("watch %s: %s", self.path, exc)
            except Exception as exc:  # never let a watch die silently
                log.warning("watch %s failed: %s", self.path, exc)
                self._set_error(TenderError(str(exc)))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _set_error(self, exc: TenderError) -> None:
        self.error = exc
        self._notify()

    async def _watch_once(self, rv: str) -> str:
        async for event in self.api.watch(self.path, rv, {"timeoutSeconds": "300"}):
            obj = event["object"]
            rv = obj.get("metadata", {}).get("resourceVersion", rv)
            kind = event["type"]
            if kind == "BOOKMARK":
                continue
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self.objects.pop(name, None)
            else:
                self.objects[name] = obj
            self._notify()
        return rv


class WatchRegistry:
    """Reference-counted caches, so a watch lives exactly as long as it is used."""

    def __init__(self) -> None:
        self._caches: dict[tuple[str, str, str], ResourceCache] = {}

    def acquire(self, cluster: str, api: KubeAPI, prefix: str, namespace: str, plural: str) -> ResourceCache:
        key = (cluster, namespace, plural)
        cache = self._caches.get(key)
        if cache is None or cache.api is not api:
            cache = ResourceCache(api, prefix, namespace, plural)
            self._caches[key] = cache
            cache.start()
        cache.refs += 1
        return cache

    async def release(self, cluster: str, cache: ResourceCache) -> None:
        cache.refs -= 1
        if cache.refs <= 0:
            key = (cluster, cache.namespace, cache.plural)
            if self._caches.get(key) is cache:
                del self._caches[key]
            await cache.stop()

    def active(self) -> list[tuple[str, str, str]]:
        return sorted(self._caches)

    async def close_cluster(self, cluster: str) -> None:
        for key in [k for k in self._caches if k[0] == cluster]:
            cache = self._caches.pop(key)
            await cache.stop()
