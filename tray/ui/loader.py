"""Loads the Clusters submenu's lists in the background, through the engine.

Every call runs on a worker thread and goes to the engine's loop with
``manager.run`` (never from the UI thread).  A cluster's namespaces load
when the app starts and when its context appears; then the resources of a
few namespaces are fetched ahead (the context's own, those with forwards or
profiles, then alphabetically) so the usual ones are ready when the menu
opens.  pystray tells us nothing when a submenu opens, so any other
namespace offers "Load resources…" instead of loading a whole cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from tray.errors import ForbiddenError
from tray.domain.targets import KIND_PLURAL
from tray.ui.labels import shorten
from tray.ui.resources import KIND_SECTIONS, Failed, Loading, Ready, Resource, ResourceStore

log = logging.getLogger(__name__)

#: Namespaces whose resources are fetched without being asked, per cluster.
AUTO_NAMESPACES = 10
TIMEOUT = 20.0


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:.0f} s"
    if isinstance(exc, ForbiddenError):
        return f"forbidden: {exc}"
    return shorten(str(exc) or type(exc).__name__, 200)


def priority(names: Iterable[str], first: Iterable[str]) -> list[str]:
    """``first`` (in order, if present) then the rest alphabetically."""
    names = sorted(set(names))
    head = [n for n in dict.fromkeys(first) if n in names]
    return head + [n for n in names if n not in head]


def parse_resources(kind: str, data: dict[str, Any]) -> tuple[Resource, ...]:
    from tray.domain.selection import declared_ports

    out = []
    for item in data.get("items") or []:
        meta = item.get("metadata") or {}
        if kind == "Pod" and (meta.get("deletionTimestamp")
                              or (item.get("status") or {}).get("phase") in ("Succeeded", "Failed")):
            continue  # finished or going away: nothing to forward to
        obj = dict(item, kind=kind)
        out.append(Resource(str(meta.get("name", "")), tuple(declared_ports(obj))))
    return tuple(sorted(out, key=lambda r: r.name))


class ResourceLoader:
    def __init__(self, manager: Any, store: ResourceStore, submit: Callable[[Callable[[], None]], Any],
                 auto: int = AUTO_NAMESPACES) -> None:
        self.manager = manager
        self.store = store
        self.submit = submit
        self.auto = auto

    def load_cluster(self, cluster: str, prefer: Iterable[str] = ()) -> None:
        """(Re)load the namespaces; also reloads the namespaces already shown."""
        shown = sorted({ns for ns, _ in self.store.get(cluster).resources})
        self.store.set_namespaces(cluster, Loading())
        prefer = list(prefer)
        self.submit(lambda: self._namespaces(cluster, prefer, shown))

    def load_namespace(self, cluster: str, namespace: str) -> None:
        self.store.set_resources(cluster, namespace, {kind: Loading() for kind, _ in KIND_SECTIONS})
        self.submit(lambda: self._resources(cluster, namespace))

    def _namespaces(self, cluster: str, prefer: list[str], shown: list[str]) -> None:
        note = None
        try:
            conn = self.manager.api_for(cluster)
            self.manager.run(conn.ensure_auth(), TIMEOUT)
            try:
                data = self.manager.run(conn.api.get("/api/v1/namespaces"), TIMEOUT)
                names = [str((i.get("metadata") or {}).get("name", "")) for i in data.get("items") or []]
            except ForbiddenError:
                # Namespace-scoped credentials: the context's namespace is still usable.
                names = [conn.default_namespace]
                note = "Cannot list namespaces here; showing the context's"
        except Exception as exc:
            log.info("cannot list namespaces of %s: %s", cluster, describe(exc))
            self.store.set_namespaces(cluster, Failed(describe(exc)))
            return
        default = conn.default_namespace
        self.store.set_namespaces(cluster, Ready(tuple(sorted(set(names)))), note)
        ahead = priority(names, [*shown, default, *prefer])
        for ns in ahead[: max(self.auto, len(shown))]:
            self.load_namespace(cluster, ns)

    def _resources(self, cluster: str, namespace: str) -> None:
        try:
            conn = self.manager.api_for(cluster)
            self.manager.run(conn.ensure_auth(), TIMEOUT)

            async def fetch_all() -> list[Any]:
                paths = []
                for kind, _ in KIND_SECTIONS:
                    prefix, plural = KIND_PLURAL[kind]
                    paths.append(f"/{prefix}/namespaces/{namespace}/{plural}")
                return await asyncio.gather(*(conn.api.get(p) for p in paths), return_exceptions=True)

            results = self.manager.run(fetch_all(), TIMEOUT)
        except Exception as exc:
            failed = Failed(describe(exc))
            self.store.set_resources(cluster, namespace, {kind: failed for kind, _ in KIND_SECTIONS})
            return
        states = {}
        for (kind, _), result in zip(KIND_SECTIONS, results, strict=True):
            if isinstance(result, BaseException):
                states[kind] = Failed(describe(result))
            else:
                states[kind] = Ready(parse_resources(kind, result))
        self.store.set_resources(cluster, namespace, states)
