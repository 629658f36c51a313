"""Shared list+watch caches: one watch per (cluster, namespace, resource).

However many forwards target the same namespace, Tender keeps exactly one
watch of its pods (and one of its Services, Deployments, ...).  In steady
state nothing polls: the cache is a LIST followed by a WATCH that resumes
from the last resourceVersion (bookmarks keep it fresh), and relists only
when the server says the version is gone (410).

A watch is proven alive by its end: the server closes each one after
:data:`WATCH_SECONDS` and the cache watches again from where it was; a watch
still open :data:`WATCH_GRACE` s after that is dead (a half-open connection
after sleep or a network change says nothing), and the cache lists again on
a new connection.

Degraded modes (the credentials may not watch or list; kubectl itself needs
only ``get`` for a pod and ``list`` for a workload's pods):

* WATCH forbidden: LIST every :data:`POLL_INTERVAL` s (with jitter), said
  once in :attr:`ResourceCache.degraded` and the log;
* LIST forbidden too: GET each object a forward names (:meth:`ResourceCache.want`)
  every :data:`POLL_INTERVAL` s;
* GET forbidden as well (or nothing named): the cache's error is the API
  server's 403, which names the missing verb.

A cache can be marked stale (:meth:`ResourceCache.resync`): when the API
server was found not answering, after the process was frozen, or when a
dial says the pod in use does not exist.  It then lists again at once, and
until that LIST is back :attr:`ResourceCache.stale` is True, so no forward
trusts what it may have missed.

Subscribers are plain callables ``fn(cache)`` run on the engine loop after
every change, and after the cache's health changes (``cache.error``,
``cache.stale``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from tray.errors import ClusterUnreachable, ForbiddenError, TenderError, TLSVerificationError, WatchStalled
from tray.kube.health import ClusterHealth, HealthChange
from tray.kube.kubeapi import ApiError, Gone, KubeAPI, NotFound, Unauthorized

log = logging.getLogger(__name__)

__all__ = ["ResourceCache", "WatchRegistry", "WatchStalled", "POLL_INTERVAL", "WATCH_SECONDS", "WATCH_GRACE"]

Listener = Callable[["ResourceCache"], None]

#: The server ends each watch after this many seconds; the cache watches again
#: from where it was (no LIST).  What bounds the life of a dead watch.
WATCH_SECONDS = 30.0
#: A watch still open this long after WATCH_SECONDS is presumed dead.
WATCH_GRACE = 10.0
#: Seconds between two LISTs (or GETs) of a cache that may not watch.
POLL_INTERVAL = 5.0
#: Each poll waits POLL_INTERVAL * (1 ± POLL_JITTER), so many caches spread out.
POLL_JITTER = 0.2


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
        # True from resync() (or while the API server is not answering) until
        # the next LIST (or GETs) is back; stale_reason says why, for the user.
        self.stale = False
        self.stale_reason = ""
        # Called when a request of this cache could not reach the API server.
        self.on_unreachable: Callable[[], None] | None = None
        # Why the cache polls instead of watching ("" when it watches).
        self.degraded = ""
        # The API server's refusal to LIST, while the cache holds only GETs of
        # named objects (a forward that needs a selector's pods cannot work).
        self.list_forbidden: ForbiddenError | None = None
        self._relisting = False  # resync() restarted the task; its LIST is not back yet
        self._wanted: dict[str, int] = {}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self.refs = 0

    def subscribe(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def unsubscribe(self, fn: Listener) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def want(self, name: str) -> None:
        """Name an object a forward needs (fetched by GET when LIST is forbidden)."""
        self._wanted[name] = self._wanted.get(name, 0) + 1

    def unwant(self, name: str) -> None:
        n = self._wanted.get(name, 0) - 1
        if n <= 0:
            self._wanted.pop(name, None)
        else:
            self._wanted[name] = n

    def resync(self, reason: str = "", *, mark_stale: bool = True) -> None:
        """List again now: what the watch said may be out of date.

        ``reason`` (a sentence for the user) says why; with ``mark_stale``
        the cache is stale until the LIST is back (subscribers are told).
        Restarts the cache's task, which drops a watch that may be stuck on
        a dead connection.  Returns at once.
        """
        if self._task is None:
            return
        if mark_stale:
            self.mark_stale(reason or f"listing {self.plural} again")
        if self._relisting:
            return  # a new LIST is under way: restarting it would only delay it
        self._relisting = True
        self.api.reset_connections()  # the watch's connection is the suspect
        self._task.cancel()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"watch {self.path}")

    def mark_stale(self, reason: str) -> None:
        """Say the cache may be out of date (the API server is not answering)."""
        if not self.stale or self.stale_reason != reason:
            self.stale, self.stale_reason = True, reason
            self._notify()

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
                try:
                    rv = await self._list()
                except _GetOnly:
                    await self._poll()  # never returns; raises what ends the polling
                delay = 0.5
                if self.degraded:
                    await self._poll()
                while True:
                    try:
                        rv = await self._watch_once(rv)
                    except ForbiddenError as exc:
                        self._degrade(f"cannot watch {self.plural} in namespace {self.namespace} ({exc})")
                        await self._poll()
            except asyncio.CancelledError:
                raise
            except Gone:
                continue  # relist at once
            except WatchStalled as exc:
                log.info("%s; listing again", exc)
                self.api.reset_connections()
                continue
            except ClusterUnreachable as exc:
                self._relisting = False  # the next resync may restart it
                self._set_error(exc)
                if self.on_unreachable is not None:
                    self.on_unreachable()
            except (ForbiddenError, Unauthorized, TLSVerificationError) as exc:
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

    async def _list(self) -> str:
        """LIST (or, where LIST is forbidden, GET the wanted objects) into the
        cache; returns the resourceVersion to watch from ("" after GETs)."""
        try:
            listing = await self.api.get(self.path)
        except ForbiddenError as exc:
            if not self._wanted:
                raise
            self.list_forbidden = exc
            self._degrade(f"cannot list {self.plural} in namespace {self.namespace} ({exc})")
            objects = {}
            for name in list(self._wanted):
                try:
                    objects[name] = await self.api.get(f"{self.path}/{name}")
                except NotFound:
                    pass
            self._replace(objects)
            raise _GetOnly() from None
        self.list_forbidden = None
        self._replace({o["metadata"]["name"]: o for o in listing.get("items", [])})
        return str(listing["metadata"]["resourceVersion"])

    def _replace(self, objects: dict[str, dict[str, Any]]) -> None:
        changed = objects != self.objects or self.error is not None or self.stale or not self.synced.is_set()
        self.objects = objects
        self.error = None
        self.stale, self.stale_reason = False, ""
        self._relisting = False
        self.synced.set()
        if changed:
            self._notify()

    def _degrade(self, why: str) -> None:
        if not self.degraded:
            self.degraded = f"{why}; checking every {POLL_INTERVAL:.0f} s instead"
            log.warning("%s", self.degraded)
            self._notify()

    async def _poll(self) -> None:
        """The degraded mode: LIST (or GET) every POLL_INTERVAL s, for good."""
        while True:
            await asyncio.sleep(POLL_INTERVAL * random.uniform(1 - POLL_JITTER, 1 + POLL_JITTER))
            try:
                await self._list()
            except _GetOnly:
                pass

    def _set_error(self, exc: TenderError) -> None:
        self.error = exc
        self._notify()

    async def _watch_once(self, rv: str) -> str:
        """One WATCH from ``rv``; returns the last resourceVersion seen.

        The server ends the watch after :data:`WATCH_SECONDS`; one that has
        not ended :data:`WATCH_GRACE` s later is presumed dead (its
        connection half-open: bytes vanish, no FIN) and the cache lists again
        (:class:`WatchStalled`), so a dead watch is found within
        WATCH_SECONDS + WATCH_GRACE s however quiet the namespace is.
        """
        try:
            async with asyncio.timeout(WATCH_SECONDS + WATCH_GRACE):
                return await self._follow(rv)
        except TimeoutError:
            raise WatchStalled(f"watch of {self.path} did not end in {WATCH_SECONDS + WATCH_GRACE:.0f} s") from None

    async def _follow(self, rv: str) -> str:
        async for event in self.api.watch(self.path, rv, {"timeoutSeconds": str(int(WATCH_SECONDS))}):
            obj = event["object"]
            rv = obj.get("metadata", {}).get("resourceVersion", rv)
            kind = event["type"]
            if kind == "BOOKMARK":
                continue
            if self.stale:
                continue  # a resync is under way; its LIST will have this
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self.objects.pop(name, None)
            else:
                self.objects[name] = obj
            self._notify()
        return rv


class WatchRegistry:
    """Reference-counted caches, so a watch lives exactly as long as it is used.

    While a cluster has caches, a :class:`~tray.kube.health.ClusterHealth`
    watches its API server: not answering marks the cluster's caches stale;
    answering again (or waking from a freeze) lists them all again.
    """

    def __init__(self) -> None:
        self._caches: dict[tuple[str, str, str], ResourceCache] = {}
        self._health: dict[str, ClusterHealth] = {}

    def acquire(self, cluster: str, api: KubeAPI, prefix: str, namespace: str, plural: str) -> ResourceCache:
        key = (cluster, namespace, plural)
        cache = self._caches.get(key)
        if cache is None or cache.api is not api:
            cache = ResourceCache(api, prefix, namespace, plural)
            self._caches[key] = cache
            health = self._health_of(cluster, api)
            cache.on_unreachable = health.check_soon
            if not health.answering:
                cache.mark_stale(health.reason)
            cache.start()
        cache.refs += 1
        return cache

    def _health_of(self, cluster: str, api: KubeAPI) -> ClusterHealth:
        health = self._health.get(cluster)
        if health is None or health.api is not api:
            old = health

            def on_change(change: HealthChange, reason: str) -> None:
                for (c, _, _), cache in list(self._caches.items()):
                    if c != cluster or cache.api is not api:
                        continue
                    if change == HealthChange.DOWN:
                        cache.mark_stale(reason)
                    else:  # answering again, or awake after a freeze: what did we miss?
                        cache.resync(mark_stale=change == HealthChange.UP)

            health = ClusterHealth(api, on_change)
            self._health[cluster] = health
            health.start()
            if old is not None:
                asyncio.get_running_loop().create_task(old.stop())
        return health

    async def release(self, cluster: str, cache: ResourceCache) -> None:
        cache.refs -= 1
        if cache.refs <= 0:
            key = (cluster, cache.namespace, cache.plural)
            if self._caches.get(key) is cache:
                del self._caches[key]
            await cache.stop()
            if not any(k[0] == cluster for k in self._caches):
                health = self._health.pop(cluster, None)
                if health is not None:
                    await health.stop()

    def active(self) -> list[tuple[str, str, str]]:
        return sorted(self._caches)

    async def close_cluster(self, cluster: str) -> None:
        for key in [k for k in self._caches if k[0] == cluster]:
            cache = self._caches.pop(key)
            await cache.stop()
        health = self._health.pop(cluster, None)
        if health is not None:
            await health.stop()


class _GetOnly(Exception):
    """Internal: the cache was filled by GETs (LIST is forbidden); poll, do not watch."""
