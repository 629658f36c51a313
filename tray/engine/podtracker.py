"""Which pod a forward uses: its watched caches and kubectl's selection on them.

A :class:`PodTracker` holds one forward's view of the cluster: the shared
cache of the namespace's pods and, for a workload or Service, the cache of
the target itself (both from :mod:`tray.kube.watches`, or anything shaped
like them: :class:`CacheSource`, :class:`PodCache`).  On that plain data it
answers the forward's questions:

* which pod and container port to use now (:meth:`PodTracker.resolve`): the
  pods the target selects, those that serve the requested port, then
  kubectl's choice among them -- the rules themselves live in
  :mod:`tray.domain.selection`;
* whether the port as typed exists on the target at all
  (:meth:`PodTracker.check_ports`, a usage error);
* whether what the caches say can be trusted (stale: the API server is not
  answering; an error: forbidden or unreachable), and whether a forward in
  ``error`` may still come back by itself (:meth:`PodTracker.can_recover`);
* the ready endpoints a Service forward spreads its connections over
  (:meth:`PodTracker.endpoints`, kept until a cache changes; :attr:`PodTracker.rotation`
  names them for snapshots taken on other threads);
* the pod in use (:attr:`PodTracker.pod_name`, ``pod_uid``,
  ``container_port``) and the pod whose path failed the last probe
  (:attr:`PodTracker.unreachable_uid`), which only a probe may bring back.

It decides nothing about statuses or retries: that is
:mod:`tray.engine.reconnect`.  Every method runs on the engine's event loop
and returns at once, except :meth:`PodTracker.open` and :meth:`PodTracker.close`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from tray.domain import selection
from tray.domain.targets import KIND_PLURAL, Target
from tray.errors import ClusterUnreachable, ForbiddenError, PortUsageError, TargetError, TenderError

if TYPE_CHECKING:
    import asyncio

    from tray.kube.conn import ClusterConn

__all__ = ["PodTracker", "PodCache", "CacheSource", "SYNC_TIMEOUT"]

#: Seconds the first LIST of a namespace may take before the start fails.
SYNC_TIMEOUT = 20.0


class PodCache(Protocol):
    """The live objects of one resource in one namespace, as a forward reads them.

    :class:`tray.kube.watches.ResourceCache` is the real one; a test passes
    plain dicts shaped like the API's objects.
    """

    #: The objects by name, each a dict as the API server returns it.
    objects: dict[str, dict[str, Any]]
    #: Set once the first LIST is in.
    synced: asyncio.Event
    #: Set while the cache cannot reach the server (forbidden, unreachable); None when healthy.
    error: TenderError | None
    #: True while what the cache holds may be out of date; ``stale_reason`` says why.
    stale: bool
    stale_reason: str
    #: Why the cache polls instead of watching ("" when it watches).
    degraded: str
    #: The API server's refusal to LIST, while the cache holds only GETs of named objects.
    list_forbidden: ForbiddenError | None

    def subscribe(self, fn: Callable[[Any], None]) -> None:
        """Call ``fn(cache)`` on the loop after every change (objects, ``error``, ``stale``)."""
        ...

    def unsubscribe(self, fn: Callable[[Any], None]) -> None:
        """Stop calling ``fn`` (no error if it was not subscribed)."""
        ...

    def want(self, name: str) -> None:
        """Name an object the forward needs (fetched by GET where LIST is forbidden); counted."""
        ...

    def unwant(self, name: str) -> None:
        """Undo one :meth:`want`."""
        ...

    def resync(self, reason: str = "", *, mark_stale: bool = True) -> None:
        """List again now, stale (saying ``reason``) until the LIST is back; returns at once."""
        ...

    async def wait_synced(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the first LIST; raise the cache's error
        (or :class:`~tray.errors.ClusterUnreachable` on timeout)."""
        ...


class CacheSource(Protocol):
    """Where a forward gets its caches: :class:`tray.kube.watches.WatchRegistry`, or a test's fake."""

    def acquire(self, cluster: str, api: Any, prefix: str, namespace: str, plural: str) -> PodCache:
        """The shared cache of ``plural`` (``pods``, ``deployments``, ...) under ``/{prefix}/namespaces/{namespace}``
        of context ``cluster``, started if new; counted until :meth:`release`.  Returns at once."""
        ...

    async def release(self, cluster: str, cache: Any) -> None:
        """Give back one :meth:`acquire` of ``cache``; the last one stops its watch."""
        ...


class PodTracker:
    """One forward's pods: its caches, the pod it uses, and kubectl's choice of the next one.

    ``conn``: the forward's cluster (its ``id`` and ``api`` name the caches);
    ``caches``: where to acquire them; ``namespace``, ``target``,
    ``remote_port`` (a number or a port name, as typed) as the forward has
    them; ``on_change()`` is called (on the loop) after every change in a
    cache, including its health (stale, error).
    """

    def __init__(self, *, conn: ClusterConn, caches: CacheSource, namespace: str, target: Target,
                 remote_port: int | str, on_change: Callable[[], None], protocol: str = "TCP") -> None:
        #: ``TCP`` (port-forward's) or ``UDP`` (a relay forward to the target's pods): which declared ports count.
        self.protocol = protocol
        self.conn = conn
        self.caches = caches
        self.namespace = namespace
        self.target = target
        self.remote_port = remote_port
        self._on_change = on_change
        #: The cache of the namespace's pods, and of the target (None for a bare Pod);
        #: None before :meth:`open` and after :meth:`close`.
        self.pods: PodCache | None = None
        self.owner: PodCache | None = None
        #: The pod in use ("" before the first), its uid, and the container port it serves.
        self.pod_name = ""
        self.pod_uid: str | None = None
        self.container_port = remote_port if isinstance(remote_port, int) else 0
        #: The uid of the pod whose path failed the last probe (None when none):
        #: it still looks ready in the API, so only a probe may bring it back.
        self.unreachable_uid: str | None = None
        #: The names of the last :meth:`endpoints` (read by snapshots on any thread).
        self.rotation: tuple[str, ...] = ()
        self._endpoints: list[tuple[dict[str, Any], int]] | None = None  # None: a cache changed since

    # ----------------------------------------------------------- caches
    def _notify(self, cache: Any) -> None:
        self._endpoints = None
        self._on_change()

    async def open(self, timeout: float = SYNC_TIMEOUT) -> None:
        """Acquire the pods' cache (and the target's) and wait for their first LIST.

        Blocks up to ``timeout`` seconds for each cache.  Raises the cache's
        error (:class:`~tray.errors.ForbiddenError`, :class:`~tray.errors.ClusterUnreachable`,
        ...) or ``ClusterUnreachable`` when a LIST takes longer; :attr:`pods`
        is set before the first wait, so the caller can tell "acquired, no
        answer yet" from "never acquired".
        """
        prefix, plural = KIND_PLURAL["Pod"]
        self.pods = self.caches.acquire(self.conn.id, self.conn.api, prefix, self.namespace, plural)
        self.pods.subscribe(self._notify)
        if self.target.kind == "Pod":
            self.pods.want(self.target.name)  # a GET of it serves where LIST is forbidden
        else:
            prefix, plural = KIND_PLURAL[self.target.kind]
            self.owner = self.caches.acquire(self.conn.id, self.conn.api, prefix, self.namespace, plural)
            self.owner.subscribe(self._notify)
            self.owner.want(self.target.name)
            await self.owner.wait_synced(timeout)
        await self.pods.wait_synced(timeout)

    async def close(self) -> None:
        """Unsubscribe and release both caches (a watch nobody uses stops); returns when released."""
        for cache in (self.pods, self.owner):
            if cache is not None:
                cache.unsubscribe(self._notify)
                if cache is self.owner or self.target.kind == "Pod":
                    cache.unwant(self.target.name)
                await self.caches.release(self.conn.id, cache)
        self.pods = self.owner = None
        self._endpoints, self.rotation = None, ()

    def _caches(self) -> list[PodCache]:
        return [c for c in (self.owner, self.pods) if c is not None]

    def stale_reason(self) -> str:
        """Why the watched objects may be out of date ("" when they are not)."""
        return next((c.stale_reason for c in self._caches() if c.stale), "")

    def cache_error(self) -> TenderError | None:
        """The first cache's error (forbidden, unreachable, ...); None when both are healthy."""
        for cache in (self.owner, self.pods):
            if cache is not None and cache.error is not None:
                return cache.error
        return None

    def cluster_trouble(self) -> bool:
        """The API server is not answering, or cannot be reached."""
        return bool(self.stale_reason()) or isinstance(self.cache_error(), ClusterUnreachable)

    def degraded(self) -> str:
        """Why the forward's watches poll instead of watching ("" when they watch)."""
        return "; ".join(c.degraded for c in self._caches() if c.degraded)

    def resync_pods(self, reason: str) -> None:
        """List the pods again now (a dial said the pod in use is gone); the cache is stale until then."""
        if self.pods is not None:
            self.pods.resync(reason)

    # ----------------------------------------------------------- the target
    def owner_object(self) -> dict[str, Any] | None:
        """The target's object (a Service, Deployment, ...) as cached; None for a bare Pod or when gone."""
        if self.owner is None:
            return None
        return self.owner.objects.get(self.target.name)

    def bare_pod(self) -> dict[str, Any] | None:
        """A bare Pod target's pod object as cached; None when it is gone (or the target is not a Pod)."""
        if self.target.kind != "Pod" or self.pods is None:
            return None
        return self.pods.objects.get(self.target.name)

    def can_recover(self) -> bool:
        """Whether an errored forward may come back by itself: its target
        (not a bare Pod) still exists in a healthy, synced cache."""
        if self.cluster_trouble():
            return True  # the API server's trouble, not the target's: it may be all there
        if not self.target.reconnects or self.owner is None or self.pods is None:
            return False
        if self.cache_error() is not None or not self.owner.synced.is_set():
            return False
        owner = self.owner_object()
        return owner is not None and not (self.target.kind == "Job" and selection.is_finished_job(owner))

    def target_deleted(self) -> bool:
        """The target's cache is synced and no longer holds it (a bare Pod: never True here)."""
        return self.owner is not None and self.owner.synced.is_set() and self.owner_object() is None

    def final_reason(self, reason: str) -> str:
        """Why an errored forward (now saying ``reason``) can no longer come back by itself."""
        owner = self.owner_object()
        if self.target_deleted():
            return f"{self.target} was deleted"
        if owner is not None and self.target.kind == "Job" and selection.is_finished_job(owner):
            return f"{self.target} has finished; {reason}"
        return reason

    def check_ports(self) -> None:
        """The requested port must exist on the target as typed (kubectl fails
        the same way, before forwarding): an unknown Service port, an unknown
        port name or a UDP-only port raise :class:`~tray.errors.PortUsageError`.

        For workloads the pod template says it; for a bare Pod, the pod.
        """
        owner = self.owner_object()
        try:
            if self.target.kind == "Service" and owner is not None:
                selection.find_service_port(owner, self.remote_port, self.protocol)
            elif self.target.kind == "Pod":
                pod = self.bare_pod()
                if pod is not None:
                    selection.container_port_for_pod(pod, self.remote_port, self.protocol)
            elif owner is not None:
                template = {"metadata": {"name": f"{self.target}"},
                            "spec": (owner.get("spec", {}).get("template") or {}).get("spec") or {}}
                if template["spec"].get("containers"):
                    selection.container_port_for_pod(template, self.remote_port, self.protocol)
        except TargetError as exc:
            # The template stands in for a pod: name the workload the user typed.
            raise PortUsageError(str(exc).replace(f"pod {self.target}", str(self.target))) from None

    # ----------------------------------------------------------- the pod
    def _candidate_pods(self) -> list[dict[str, Any]]:
        assert self.pods is not None
        if self.target.kind == "Pod":
            pod = self.pods.objects.get(self.target.name)
            return [pod] if pod else []
        owner = self.owner_object()
        if owner is None:
            raise TargetError(f"{self.target} not found in namespace {self.namespace}")
        if self.pods.list_forbidden is not None:
            # Only named pods could be fetched: a selector needs a LIST
            # (kubectl's port-forward to a workload or Service needs it too).
            raise self.pods.list_forbidden
        if self.target.kind == "Service":
            sel = selection.selector_from_service(owner)
        else:
            sel = selection.selector_from_workload(owner)
        return [p for p in self.pods.objects.values()
                if selection.matches(sel, p.get("metadata", {}).get("labels"))]

    def _serving(self, pods: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
        """The pods that serve the requested port, and why the others do not.

        A Service's port is served by the endpoints whose pods resolve its
        targetPort (a named targetPort may exist on only some of the
        Service's pods: the EndpointSlice controller's rule, podutil.FindPort);
        other targets' pods all serve it.
        """
        owner = self.owner_object()
        if self.target.kind != "Service" or owner is None:
            return pods, []
        serving, why = [], []
        for pod in pods:
            try:
                selection.container_port_for_service(owner, pod, self.remote_port, self.protocol)
            except TargetError as exc:
                why.append(str(exc))
            else:
                serving.append(pod)
        return serving, why

    def _container_port(self, pod: dict[str, Any]) -> int:
        owner = self.owner_object()
        if self.target.kind == "Service" and owner is not None:
            return selection.container_port_for_service(owner, pod, self.remote_port, self.protocol)
        return selection.container_port_for_pod(pod, self.remote_port, self.protocol)

    def resolve(self) -> tuple[dict[str, Any], int]:
        """The pod (its API object) and the container port to use now.

        Raises :class:`~tray.errors.TargetError` saying why there is none
        (the caches are stale, the target is gone, no pod is ready, no pod
        serves the port), or the pods' cache's ``ForbiddenError`` when only
        named pods may be fetched.  Call after :meth:`open`.
        """
        stale = self.stale_reason()
        if stale:
            raise TargetError(stale)  # what the caches say may be gone already
        pods = self._candidate_pods()
        if self.target.kind == "Pod" and not pods:
            raise TargetError(f"pod {self.target.name} not found in namespace {self.namespace}")
        serving, why = self._serving(pods)
        if pods and not serving:
            raise TargetError(f"no pod of {self.target} serves port {self.remote_port}: {why[0]}")
        pod = selection.choose_pod(serving)
        if pod is None:
            raise TargetError(selection.why_no_pod(serving, str(self.target)))
        return pod, self._container_port(pod)

    def endpoints(self) -> list[tuple[dict[str, Any], int]]:
        """The ready endpoints, in rotation order: (pod, container port) of every usable pod that serves the port.

        The pods :meth:`resolve` chooses among (ready, not terminating, the
        port resolved per pod: a named targetPort may differ), ordered by
        :func:`~tray.domain.selection.rotation`; the pod whose path failed the
        last probe is left out.  Empty while the caches are stale or in error,
        or the target is gone.  Computed once per change of the caches; sets
        :attr:`rotation`.  Returns at once; never raises.
        """
        if self._endpoints is None:
            found: list[tuple[dict[str, Any], int]] = []
            if self.pods is not None and not self.stale_reason() and self.cache_error() is None:
                try:
                    serving, _ = self._serving(self._candidate_pods())
                except TenderError:
                    serving = []
                for pod in selection.rotation(serving):
                    try:
                        found.append((pod, self._container_port(pod)))
                    except TargetError:
                        pass
            self._endpoints = found
        eps = [e for e in self._endpoints
               if not self.unreachable_uid or e[0]["metadata"].get("uid") != self.unreachable_uid]
        self.rotation = tuple(p["metadata"]["name"] for p, _ in eps)
        return eps

    def use(self, pod: dict[str, Any], port: int) -> bool:
        """Make ``pod`` (an API object) and container ``port`` the ones in use; True if the pod changed."""
        name, uid = pod["metadata"]["name"], pod["metadata"].get("uid")
        changed = name != self.pod_name or uid != self.pod_uid
        self.pod_name, self.container_port, self.pod_uid = name, port, uid
        return changed

    def in_use_and_ready(self) -> bool:
        """The pod in use is still in the cache, the same pod (uid), ready and not terminating."""
        if self.pods is None:
            return False
        current = self.pods.objects.get(self.pod_name)
        return (current is not None and selection.is_pod_usable(current)
                and current["metadata"].get("uid") == self.pod_uid)

    def default_local_port(self, pod: dict[str, Any]) -> int:
        """kubectl's local port when none is given: the remote port at the target's level
        (a Service's port number; a pod's container port)."""
        owner = self.owner_object()
        if self.target.kind == "Service" and owner is not None:
            return selection.service_port_number(owner, self.remote_port, self.protocol)
        return selection.container_port_for_pod(pod, self.remote_port, self.protocol)

    @staticmethod
    def port_warning(pod: dict[str, Any], port: int) -> str:
        """A warning when the pod's containers do not declare ``port`` ("" when they do).

        kubectl forwards anyway; the connections are then likely refused.
        """
        declared = [(n, name, proto) for n, name, proto in selection.declared_ports(pod)]
        if any(n == port for n, _, _ in declared):
            return ""
        listing = ", ".join(f"{name + ' ' if name else ''}{n}/{proto}" for n, name, proto in declared)
        return (f"pod {pod['metadata']['name']} declares no port {port}"
                f" (declares: {listing or 'none'})")
