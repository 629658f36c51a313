"""What the Clusters submenu knows about each cluster: namespaces, resources, search results.

Lists are loaded in the background (``loader``) and kept here as immutable
snapshots, so the menu builder reads plain data.  Each list is in one of
three states: :class:`Loading`, :class:`Failed` or :class:`Ready`; a
namespace whose resources were never asked for has no entry at all (the
menu then offers "Load resources").  A cluster's last search (its text and
its hits across the namespaces) is a :class:`Search`.

System namespaces (:func:`is_system_namespace`) are folded into a submenu
of their own at the end of a context, and not loaded ahead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from tray.engine.browse import Resource

__all__ = ["KIND_SECTIONS", "SYSTEM_NAMESPACES", "ClusterTree", "Failed", "Hit", "LoadState", "Loading", "Ready",
           "Resource", "ResourceStore", "Search", "is_system_namespace"]

T = TypeVar("T")

#: (kind, menu label), in menu order: every kind a forward can target (``tray.domain.targets.KINDS``).
KIND_SECTIONS: tuple[tuple[str, str], ...] = (
    ("Pod", "Pods"),
    ("Service", "Services"),
    ("Deployment", "Deployments"),
    ("StatefulSet", "StatefulSets"),
    ("DaemonSet", "DaemonSets"),
    ("ReplicaSet", "ReplicaSets"),
    ("ReplicationController", "ReplicationControllers"),
    ("Job", "Jobs"),
)


#: Namespaces Kubernetes itself makes; with every name starting ``kube-`` or ``openshift-`` (and
#: ``openshift`` itself) they are the system namespaces: the cluster's machinery, rarely a target.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
SYSTEM_PREFIXES = ("kube-", "openshift-")


def is_system_namespace(name: str) -> bool:
    """True for kube-system, kube-public, kube-node-lease, ``kube-*``, ``openshift`` and ``openshift-*``."""
    return name in SYSTEM_NAMESPACES or name == "openshift" or name.startswith(SYSTEM_PREFIXES)


@dataclass(frozen=True)
class Loading:
    pass


@dataclass(frozen=True)
class Failed:
    message: str


@dataclass(frozen=True)
class Ready(Generic[T]):
    value: T


LoadState = Loading | Failed | Ready[Any]


@dataclass(frozen=True)
class Hit:
    """One search result: a resource of ``kind`` in ``namespace``."""

    namespace: str
    kind: str
    resource: Resource


@dataclass(frozen=True)
class Search:
    """A cluster's last search: what was typed, and its hits (``Ready(tuple[Hit, ...])``).

    ``note`` says why the hits may be incomplete (namespaces that could not
    be searched), or is ``None``.
    """

    text: str
    hits: LoadState = field(default_factory=Loading)
    note: str | None = None


@dataclass(frozen=True)
class ClusterTree:
    namespaces: LoadState = field(default_factory=Loading)
    #: Why the list is partial, e.g. "cannot list namespaces: showing the context's".
    namespaces_note: str | None = None
    #: (namespace, kind) -> the list of that kind in that namespace.
    resources: Mapping[tuple[str, str], LoadState] = field(default_factory=dict)
    #: The last search in this cluster ("Results for …" at the top of its submenu), if any.
    search: Search | None = None

    def namespace_requested(self, namespace: str) -> bool:
        return any((namespace, kind) in self.resources for kind, _ in KIND_SECTIONS)


class ResourceStore:
    """Thread-safe holder of every cluster's tree; calls ``on_change`` after each update."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._lock = threading.Lock()
        self._trees: dict[str, ClusterTree] = {}
        self._on_change = on_change

    def snapshot(self) -> dict[str, ClusterTree]:
        with self._lock:
            return dict(self._trees)

    def get(self, cluster: str) -> ClusterTree:
        with self._lock:
            return self._trees.get(cluster, ClusterTree())

    def set_namespaces(self, cluster: str, state: LoadState, note: str | None = None) -> None:
        with self._lock:
            tree = self._trees.get(cluster, ClusterTree())
            self._trees[cluster] = replace(tree, namespaces=state, namespaces_note=note)
        self._on_change()

    def set_resources(self, cluster: str, namespace: str, states: Mapping[str, LoadState]) -> None:
        with self._lock:
            tree = self._trees.get(cluster, ClusterTree())
            resources = dict(tree.resources)
            for kind, state in states.items():
                resources[(namespace, kind)] = state
            self._trees[cluster] = replace(tree, resources=resources)
        self._on_change()

    def set_search(self, cluster: str, search: Search | None, *, replacing: str | None = None) -> bool:
        """Replace the cluster's search (``None``: no results shown); True if it was replaced.

        With ``replacing``, only a search for that very text is replaced (a
        slow search that finishes after a newer one was asked for is dropped).
        """
        with self._lock:
            tree = self._trees.get(cluster, ClusterTree())
            if replacing is not None and (tree.search is None or tree.search.text != replacing):
                return False
            self._trees[cluster] = replace(tree, search=search)
        self._on_change()
        return True

    def forget(self, cluster: str) -> None:
        with self._lock:
            self._trees.pop(cluster, None)
        self._on_change()
