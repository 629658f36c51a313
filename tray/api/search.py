"""The dashboard's search: every context's pods, Services and workloads, and their ports.

``GET /v1/search?q=TEXT[&context=C]`` (docs/api.md) is answered by
:func:`search`, a blocking call the server runs on a worker thread.  It lists
what the tray's Clusters submenu lists (:class:`tray.engine.browse.Browser`:
only what a forward can target, with the ports each declares), in every
namespace of each context, several namespaces at a time, and keeps what
matches the text.

Typing sends one search per key, so a context's listing is kept for
:data:`CACHE_SECONDS` (per engine): the next keys search the same listing
instead of listing the cluster again.  Two searches of one context at once
share one listing (the second waits for the first's).  A namespace that did
not answer in time is not kept, so the next search asks it again.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tray.domain.targets import KINDS, SHORT_NAMES
from tray.engine.browse import Browser, Resource
from tray.errors import ForbiddenError, UsageError

__all__ = ["CACHE_SECONDS", "DEFAULT_TIMEOUT", "MAX_RESULTS", "matches", "search"]

#: Seconds a context's listing (its namespaces, each namespace's resources) is reused.
CACHE_SECONDS = 30.0
#: Seconds a search waits by default for the clusters' answers.
DEFAULT_TIMEOUT = 20.0
#: Results answered at most; ``truncated`` says when more matched.
MAX_RESULTS = 200
#: Namespaces of one context listed at once (each listing asks one LIST per kind at once).
PARALLEL_NAMESPACES = 4
#: Contexts searched at once.
PARALLEL_CONTEXTS = 8

#: The order of the kinds in the results: the targets that outlive a pod first.
KIND_ORDER: tuple[str, ...] = ("Service", "Deployment", "StatefulSet", "DaemonSet", "Pod", "ReplicaSet",
                               "ReplicationController", "Job")
assert sorted(KIND_ORDER) == sorted(KINDS)


def matches(terms: Iterable[str], context: str, namespace: str, kind: str, resource: Resource) -> int | None:
    """How well one resource matches the search terms: ``0`` (every term is in its name or
    target), ``1`` (every term is in ``context/namespace/kind/name`` or a port), or ``None``.

    ``terms`` are lower-case words (the search text split on white space; none matches
    everything).  A term is found when it is part of ``context/namespace/kind/name``
    (``kind`` as the Kind, ``Deployment``, any case), of the target as kubectl writes it
    (``deploy/web``), of a declared port's number or of its name.  Pure; never raises.
    """
    short = SHORT_NAMES.get(kind, kind.lower())
    name = resource.name.lower()
    target = f"{short}/{name}"
    path = f"{context}/{namespace}/{kind}/{resource.name}".lower()
    ports = [str(p) for p, _, _ in resource.ports] + [n.lower() for _, n, _ in resource.ports if n]
    best = 0
    for term in terms:
        if term in target:
            continue
        if term in path or any(term in p for p in ports):
            best = 1
            continue
        return None
    return best


def search(manager: Any, text: str, context: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Pods, Services and workloads of the engine's contexts that match ``text``.

    ``manager`` is the engine (:class:`~tray.engine.manager.ForwardManager`);
    ``text`` is split on white space and every word must be found (any case) in
    ``context/namespace/kind/name``, the target (``deploy/web``) or a declared
    port's number or name (see :func:`matches`); an empty text matches
    everything.  ``context`` limits the search to one kubeconfig context
    (default: every context).  Blocks up to ``timeout`` seconds (then answers
    with what came in; what did not is named in ``errors``), plus up to a
    second of clean-up; never call it on the engine's loop or a UI thread.

    Returns ``{"results": [RESULT, ...], "errors": [{"context", "error"}, ...],
    "truncated": bool}`` where RESULT is ``{"context", "namespace", "kind",
    "name", "target", "ports": [{"port", "name", "protocol"}, ...]}``
    (``kind`` is the Kind, ``Deployment``; ``target`` is kubectl's
    ``deploy/web``; ``name`` of a port is ``None`` when it has none), at most
    :data:`MAX_RESULTS`: those matching by name first, then by context order,
    namespace, kind (Services and workloads before pods) and name.  An error
    is one sentence: a context whose namespaces could not be listed, the
    namespaces that did not answer in time, kinds RBAC refuses.  Raises
    :class:`~tray.errors.UsageError` (``field="context"``) for a ``context``
    the kubeconfig does not have, or for a kubeconfig that cannot be read
    when ``context`` is given; without ``context`` that problem is an error
    entry (context ``None``).
    """
    terms = text.lower().split()
    deadline = time.monotonic() + max(0.0, timeout)
    try:
        known = [c.id for c in manager.clusters()]
    except UsageError as exc:
        if context is not None:
            raise
        return {"results": [], "errors": [{"context": None, "error": str(exc)}], "truncated": False}
    if context is not None:
        if context not in known:
            names = ", ".join(known) or "none"
            raise UsageError(f'context "{context}" not found in the kubeconfig (contexts: {names})',
                             field="context")
        contexts = [context]
    else:
        contexts = known
    cache = _cache_of(manager)
    found: list[tuple[tuple[Any, ...], dict]] = []
    errors: list[dict] = []
    if contexts:
        with ThreadPoolExecutor(max_workers=min(PARALLEL_CONTEXTS, len(contexts)),
                                thread_name_prefix="tender-search") as pool:
            listings = list(pool.map(lambda c: cache.listing(manager, c, deadline), contexts))
        for index, (ctx, (listing, problems)) in enumerate(zip(contexts, listings, strict=True)):
            errors += [{"context": ctx, "error": p} for p in problems]
            for namespace, kinds in listing.items():
                for kind, resources in kinds.items():
                    for resource in resources:
                        score = matches(terms, ctx, namespace, kind, resource)
                        if score is None:
                            continue
                        key = (score, index, namespace, KIND_ORDER.index(kind), resource.name)
                        found.append((key, _result(ctx, namespace, kind, resource)))
    found.sort(key=lambda item: item[0])
    return {"results": [r for _, r in found[:MAX_RESULTS]], "errors": errors,
            "truncated": len(found) > MAX_RESULTS}


def _result(context: str, namespace: str, kind: str, resource: Resource) -> dict:
    return {
        "context": context,
        "namespace": namespace,
        "kind": kind,
        "name": resource.name,
        "target": f"{SHORT_NAMES[kind]}/{resource.name}",
        "ports": [{"port": p, "name": n, "protocol": proto} for p, n, proto in resource.ports],
    }


def describe(exc: BaseException, timeout: float) -> str:
    """One sentence for what a listing raised."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:.0f} s"
    if isinstance(exc, ForbiddenError):
        return f"forbidden: {exc}"
    return str(exc) or type(exc).__name__


def names_list(names: list[str], most: int = 3) -> str:
    """'a, b, c and 2 more'."""
    head = ", ".join(names[:most])
    return head if len(names) <= most else f"{head} and {len(names) - most} more"


Listing = dict[str, dict[str, tuple[Resource, ...]]]


@dataclass
class _Context:
    """One context's cached listing; ``lock`` is held while it is being listed."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: (monotonic time listed, the namespaces, a note when only the context's own could be used)
    namespaces: tuple[float, tuple[str, ...], str | None] | None = None
    #: namespace -> (monotonic time listed, kind -> resources or what the kind's LIST raised)
    resources: dict[str, tuple[float, dict[str, tuple[Resource, ...] | Exception]]] = field(default_factory=dict)


class _Cache:
    """The listings of one engine's contexts (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[str, _Context] = {}

    def listing(self, manager: Any, context: str, deadline: float) -> tuple[Listing, list[str]]:
        """``context``'s resources by namespace and kind, and the problems met, as sentences.

        Reuses what was listed less than :data:`CACHE_SECONDS` ago; lists the
        rest until ``deadline`` (a :func:`time.monotonic` time).
        """
        with self._lock:
            entry = self._contexts.setdefault(context, _Context())
        wait = deadline - time.monotonic()
        if not entry.lock.acquire(timeout=max(0.0, wait)):
            return {}, [f"not searched: another search was still listing it after {max(0.0, wait):.0f} s"]
        try:
            return self._list(entry, Browser(manager), context, deadline)
        finally:
            entry.lock.release()

    def _list(self, entry: _Context, browser: Browser, context: str, deadline: float) -> tuple[Listing, list[str]]:
        problems: list[str] = []
        now = started = time.monotonic()
        if entry.namespaces is None or now - entry.namespaces[0] > CACHE_SECONDS:
            left = deadline - now
            note = None
            try:
                if left <= 0:
                    raise TimeoutError
                try:
                    names = browser.namespaces(context, left)
                except ForbiddenError:
                    own = browser.default_namespace(context)
                    names = (own,)
                    note = f"cannot list namespaces here; searched the context's own ({own})"
            except Exception as exc:
                return {}, [f"cannot list namespaces: {describe(exc, time.monotonic() - started)}"]
            entry.namespaces = (time.monotonic(), tuple(names), note)
            entry.resources = {ns: v for ns, v in entry.resources.items() if ns in names}
        _, names, note = entry.namespaces
        if note:
            problems.append(note)
        stale = [ns for ns in names
                 if ns not in entry.resources or time.monotonic() - entry.resources[ns][0] > CACHE_SECONDS]

        def one(namespace: str) -> tuple[str, dict[str, tuple[Resource, ...] | Exception] | BaseException]:
            left = deadline - time.monotonic()
            if left <= 0:
                return namespace, TimeoutError()
            try:
                return namespace, browser.resources(context, namespace, KINDS, left)
            except Exception as exc:
                return namespace, exc

        missed: list[str] = []
        reasons: list[str] = []
        if stale:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_NAMESPACES, len(stale)),
                                    thread_name_prefix="tender-search-ns") as pool:
                for namespace, got in pool.map(one, stale):
                    if isinstance(got, BaseException):
                        entry.resources.pop(namespace, None)
                        missed.append(namespace)
                        reason = describe(got, time.monotonic() - started)
                        if reason not in reasons:
                            reasons.append(reason)
                    else:
                        entry.resources[namespace] = (time.monotonic(), got)
        if missed:
            problems.append(f"namespaces not searched ({names_list(missed)}): {'; '.join(reasons)}")
        listing: Listing = {}
        refused: dict[str, tuple[list[str], Exception]] = {}
        for namespace in names:
            if namespace not in entry.resources:
                continue
            kinds = entry.resources[namespace][1]
            listing[namespace] = {}
            for kind, got in kinds.items():
                if isinstance(got, Exception):
                    refused.setdefault(kind, ([], got))[0].append(namespace)
                else:
                    listing[namespace][kind] = got
        for kind, (where, exc) in refused.items():
            problems.append(f"{kind}s not listed in {names_list(where)}: {describe(exc, 0)}")
        return listing, problems


_caches: weakref.WeakKeyDictionary[Any, _Cache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def _cache_of(manager: Any) -> _Cache:
    with _caches_lock:
        cache = _caches.get(manager)
        if cache is None:
            cache = _caches[manager] = _Cache()
        return cache
