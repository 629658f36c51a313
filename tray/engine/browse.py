"""Browse a cluster: its namespaces, the resources a forward can target, their declared ports.

The tray's Clusters submenu (and any other shell) asks here instead of
building REST paths: :class:`Browser` wraps a :class:`~tray.engine.manager.ForwardManager`
and runs each request on the engine's loop, so its calls are plain blocking
functions meant for worker threads (never a UI thread, never the engine's
loop).  Each call blocks at most its ``timeout`` (seconds), credentials
included (an exec plugin may be slow), and then raises :class:`TimeoutError`.

Only the kinds ``kubectl port-forward`` can target are listed
(:data:`tray.domain.targets.KINDS`), each with the ports it declares
(:func:`tray.domain.selection.declared_ports`) and the forwards its k9s and
kftray annotations suggest (:mod:`tray.domain.annotations`;
:meth:`Browser.suggestions` gathers a namespace's), and only those that have, or
may soon have, a pod to forward to: finished or terminating pods, finished
Jobs, ReplicaSets or ReplicationControllers scaled to zero, and the
ReplicaSets of Deployments (the Deployment is the target that outlives a
rollout) are left out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tray.domain.annotations import Suggestion, needs_endpoints, resolved_ports, suggestions
from tray.domain.selection import (controlled_by, declared_ports, is_finished_job, is_pod_finished,
                                   is_pod_terminating)
from tray.domain.targets import KIND_PLURAL, KINDS

__all__ = ["DEFAULT_TIMEOUT", "Browser", "Resource", "Suggested", "forwardable"]

#: Seconds a call waits by default.
DEFAULT_TIMEOUT = 20.0


@dataclass(frozen=True)
class Resource:
    """A pod, service or workload that a forward can target.

    ``ports`` are the ports it declares as ``(port, name, protocol)``: a
    pod's (or a workload's pod template's) container ports, a service's
    service ports; ``name`` is ``None`` when the port has none, ``protocol``
    is ``"TCP"``, ``"UDP"`` or ``"SCTP"``.  ``suggested``: the forwards its
    k9s or kftray annotations suggest; ``problems``: the annotation items that
    could not be read, one sentence each (:func:`tray.domain.annotations.suggestions`).
    """

    name: str
    ports: tuple[tuple[int, str | None, str], ...] = ()
    suggested: tuple[Suggestion, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def tcp_ports(self) -> tuple[tuple[int, str | None], ...]:
        """The TCP ports as ``(port, name)``: the ones a forward can carry."""
        return tuple((p, n) for p, n, proto in self.ports if proto == "TCP")

    @property
    def udp_ports(self) -> tuple[tuple[int, str | None], ...]:
        """The UDP ports as ``(port, name)``: forwarded through a relay pod (:mod:`tray.engine.relay`)."""
        return tuple((p, n) for p, n, proto in self.ports if proto == "UDP")


def forwardable(kind: str, item: Mapping[str, Any]) -> bool:
    """Whether one object of a LIST answer (of ``kind``) is worth offering as a target.

    False for a pod that finished (``Succeeded``/``Failed``) or is being
    deleted, a Job that completed, failed or is finishing, a ReplicaSet or
    ReplicationController scaled to zero, and a ReplicaSet a Deployment
    controls (the Deployment is listed: it is the target that survives the
    next rollout, as the ReplicaSet does not); true for everything else.
    """
    if kind == "Pod":
        return not (is_pod_terminating(item) or is_pod_finished(item))
    if kind == "Job":
        return not is_finished_job(item, finishing=True)
    if kind == "ReplicaSet" and controlled_by(item, "Deployment"):
        return False
    if kind in ("ReplicaSet", "ReplicationController"):
        return (item.get("spec") or {}).get("replicas", 1) != 0
    return True


def resources_of(kind: str, answer: Mapping[str, Any],
                 resolved: Mapping[str, Mapping[str, int]] | None = None) -> tuple[Resource, ...]:
    """The forwardable objects of a LIST answer (``{"items": [...]}``) of ``kind``, sorted by name.

    ``resolved``: for Services, name -> port name -> the pods' port number
    (:func:`tray.domain.annotations.resolved_ports` of the namespace's
    EndpointSlices), for the kftray annotations that name a named targetPort's number.
    """
    out = []
    for item in answer.get("items") or []:
        if not forwardable(kind, item):
            continue
        name = str((item.get("metadata") or {}).get("name", ""))
        found = suggestions(kind, item, (resolved or {}).get(name))
        out.append(Resource(name, tuple(declared_ports(dict(item, kind=kind))), tuple(found.suggestions),
                            tuple(found.problems)))
    return tuple(sorted(out, key=lambda r: r.name))


@dataclass(frozen=True)
class Suggested:
    """What a namespace's annotations suggest (:meth:`Browser.suggestions`).

    ``suggestions``: Services first, then workloads, then pods, each kind by
    name.  ``problems``: annotation items that could not be read, one
    sentence each.  ``errors``: kind -> what its LIST raised (RBAC, say):
    those kinds were not looked at.
    """

    suggestions: tuple[Suggestion, ...] = ()
    problems: tuple[str, ...] = ()
    errors: Mapping[str, Exception] = field(default_factory=dict)

    @classmethod
    def of(cls, listing: Mapping[str, tuple[Resource, ...] | Exception]) -> Suggested:
        """Gather them from a namespace's :meth:`Browser.resources` answer (kind -> resources or error). Pure."""
        found: list[Suggestion] = []
        problems: list[str] = []
        errors: dict[str, Exception] = {}
        for kind in SUGGESTION_ORDER:
            got = listing.get(kind, ())
            if isinstance(got, Exception):
                errors[kind] = got
                continue
            for resource in got:
                found.extend(resource.suggested)
                problems.extend(resource.problems)
        return cls(tuple(found), tuple(problems), errors)


#: The order of the kinds in :class:`Suggested`: the targets that outlive a pod first.
SUGGESTION_ORDER: tuple[str, ...] = ("Service", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet",
                                     "ReplicationController", "Job", "Pod")
assert sorted(SUGGESTION_ORDER) == sorted(KINDS)


class Browser:
    """Blocking lists of one kubeconfig's clusters, for worker threads.

    ``manager`` is the :class:`~tray.engine.manager.ForwardManager` whose loop
    and credentials are used (only its public ``api_for`` and ``run`` are
    called).  ``timeout`` is the default wait of each call, in seconds.
    Thread-safe: any number of threads may call at once.
    """

    def __init__(self, manager: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.manager = manager
        self.timeout = timeout

    def default_namespace(self, cluster: str) -> str:
        """The namespace the context names (``default`` when it names none).

        Reads the kubeconfig (milliseconds); does not contact the cluster.
        Raises :class:`~tray.errors.UsageError` if the kubeconfig has no
        context ``cluster``.
        """
        return str(self.manager.api_for(cluster).default_namespace)

    def namespaces(self, cluster: str, timeout: float | None = None) -> tuple[str, ...]:
        """The names of the cluster's namespaces, sorted.

        ``cluster`` is a kubeconfig context name.  Blocks up to ``timeout``
        seconds (default: the browser's).  Raises
        :class:`~tray.errors.ForbiddenError` if these credentials may not
        list namespaces (namespace-scoped users: :meth:`default_namespace` is
        still usable), :class:`~tray.errors.ClusterUnreachable`,
        :class:`~tray.errors.UsageError` (no such context, broken
        credentials), another :class:`~tray.errors.TenderError` for other API
        errors, and :class:`TimeoutError` when the wait runs out.
        """
        conn = self.manager.api_for(cluster)

        async def fetch() -> dict[str, Any]:
            await conn.ensure_auth()
            return await conn.api.get("/api/v1/namespaces")

        data = self._run(fetch(), timeout)
        names = {str((i.get("metadata") or {}).get("name", "")) for i in data.get("items") or []}
        return tuple(sorted(names))

    def resources(self, cluster: str, namespace: str, kinds: Iterable[str] = KINDS,
                  timeout: float | None = None) -> dict[str, tuple[Resource, ...] | Exception]:
        """The forwardable resources of ``namespace``, for each of ``kinds``, all asked at once.

        ``kinds`` are Kind names of :data:`tray.domain.targets.KINDS`
        (``"Pod"``, ``"Service"``, ``"Deployment"``, ...; an unknown one
        raises :class:`KeyError` before anything is sent).  Returns a dict in
        the order of ``kinds``: kind -> the resources sorted by name (see
        :func:`forwardable`), or the exception that kind's LIST raised (a
        :class:`~tray.errors.ForbiddenError` when RBAC refuses that kind,
        another :class:`~tray.errors.TenderError`), so one refused kind does
        not hide the others.  Blocks up to ``timeout`` seconds (default: the
        browser's).  Raises, for the whole call: :class:`TimeoutError` when
        the wait runs out, :class:`~tray.errors.UsageError` (no such context,
        broken credentials) and whatever loading the credentials raised.
        """
        kinds = list(dict.fromkeys(kinds))
        paths = []
        for kind in kinds:
            prefix, plural = KIND_PLURAL[kind]
            paths.append(f"/{prefix}/namespaces/{namespace}/{plural}")
        conn = self.manager.api_for(cluster)

        async def fetch() -> list[Any]:
            await conn.ensure_auth()
            return await asyncio.gather(*(conn.api.get(p) for p in paths), return_exceptions=True)

        started = time.monotonic()
        answers = self._run(fetch(), timeout)
        out: dict[str, tuple[Resource, ...] | Exception] = {}
        for kind, answer in zip(kinds, answers, strict=True):
            if isinstance(answer, Exception):
                out[kind] = answer
            elif isinstance(answer, BaseException):
                raise answer  # cancelled: not a per-kind answer
            else:
                resolved = None
                if kind == "Service" and any(needs_endpoints(i) for i in answer.get("items") or ()):
                    left = (self.timeout if timeout is None else timeout) - (time.monotonic() - started)
                    resolved = self._endpoint_ports(conn, namespace, left)
                out[kind] = resources_of(kind, answer, resolved)
        return out

    def _endpoint_ports(self, conn: Any, namespace: str, timeout: float) -> dict[str, dict[str, int]] | None:
        """The namespace's EndpointSlices' ports (:func:`~tray.domain.annotations.resolved_ports`); None if
        they could not be listed within ``timeout`` seconds (RBAC, say: named targetPorts then stay unmatched)."""
        if timeout <= 0:
            return None
        try:
            answer = self._run(conn.api.get(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"),
                               timeout)
        except Exception:  # noqa: BLE001 -- optional: the suggestions say which numbers matched no port
            return None
        return resolved_ports(answer)

    def suggestions(self, cluster: str, namespace: str, timeout: float | None = None) -> Suggested:
        """The forwards the k9s and kftray annotations in ``namespace`` suggest (see :class:`Suggested`).

        One :meth:`resources` call (a LIST per kind, all at once): blocks up to
        ``timeout`` seconds and raises what it raises for the whole call; a
        kind whose LIST failed is in ``errors``.
        """
        return Suggested.of(self.resources(cluster, namespace, KINDS, timeout))

    def _run(self, coro: Any, timeout: float | None) -> Any:
        """Run ``coro`` on the engine's loop; cancel it there if ``timeout`` runs out."""
        limit = self.timeout if timeout is None else timeout
        # The coroutine is cancelled on the loop when the time is up (rather
        # than left running after we stopped waiting); the outer wait is a
        # backstop in case the loop itself is stuck.
        return self.manager.run(asyncio.wait_for(coro, limit), limit + 1.0)
