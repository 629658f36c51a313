"""What the Clusters submenu knows about each cluster: namespaces and resources.

Lists are loaded in the background (``loader``) and kept here as immutable
snapshots, so the menu builder reads plain data.  Each list is in one of
three states: :class:`Loading`, :class:`Failed` or :class:`Ready`; a
namespace whose resources were never asked for has no entry at all (the
menu then offers "Load resources").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

from tray.engine.browse import Resource

__all__ = ["KIND_SECTIONS", "ClusterTree", "Failed", "LoadState", "Loading", "Ready", "Resource", "ResourceStore"]

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
class ClusterTree:
    namespaces: LoadState = field(default_factory=Loading)
    #: Why the list is partial, e.g. "cannot list namespaces: showing the context's".
    namespaces_note: str | None = None
    #: (namespace, kind) -> the list of that kind in that namespace.
    resources: Mapping[tuple[str, str], LoadState] = field(default_factory=dict)

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

    def forget(self, cluster: str) -> None:
        with self._lock:
            self._trees.pop(cluster, None)
        self._on_change()
