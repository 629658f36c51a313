"""Loads the Clusters submenu's lists in the background, through the engine's browse API.

Every call runs on a worker thread (never the UI thread) and asks a
:class:`tray.engine.browse.Browser`, which blocks up to its timeout.  A
cluster's namespaces load when the app starts and when its context appears;
then the resources of a few namespaces are fetched ahead (the context's own,
those with forwards or profiles, then alphabetically; system namespaces only
when one of those) so the usual ones are ready when the menu opens.  The
menu is not told when a submenu opens, so any other namespace offers "Load
resources…" instead of loading a whole cluster.  A search lists every
namespace's resources (a few namespaces at a time) and keeps those whose
name contains the text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tray.engine.browse import Browser
from tray.errors import ForbiddenError
from tray.ui.labels import shorten
from tray.ui.resources import (KIND_SECTIONS, Failed, Hit, Loading, Ready, ResourceStore, Search,
                               is_system_namespace)

log = logging.getLogger(__name__)

#: Namespaces whose resources are fetched without being asked, per cluster.
AUTO_NAMESPACES = 10
TIMEOUT = 20.0
#: A search gives up on the namespaces not searched after this many seconds (and says so).
SEARCH_TIMEOUT = 60.0
#: Namespaces listed at once by a search.
SEARCH_PARALLEL = 4


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:.0f} s"
    if isinstance(exc, ForbiddenError):
        return f"forbidden: {exc}"
    return shorten(str(exc) or type(exc).__name__, 200)


def labels_list(names: list[str], most: int = 3) -> str:
    """'a, b, c and 2 more'."""
    head = ", ".join(names[:most])
    return head if len(names) <= most else f"{head} and {len(names) - most} more"


def priority(names: Iterable[str], first: Iterable[str]) -> list[str]:
    """``first`` (in order, if present) then the rest alphabetically."""
    names = sorted(set(names))
    head = [n for n in dict.fromkeys(first) if n in names]
    return head + [n for n in names if n not in head]


class ResourceLoader:
    """Fills ``store`` from ``browser``, each load on a worker that ``submit`` starts.

    ``submit`` takes a no-argument callable and runs it on another thread
    (a thread pool's ``submit``); ``auto`` is how many namespaces per cluster
    are loaded ahead.  The ``load_*`` methods return at once.
    """

    def __init__(self, browser: Browser, store: ResourceStore, submit: Callable[[Callable[[], None]], Any],
                 auto: int = AUTO_NAMESPACES) -> None:
        self.browser = browser
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

    def search(self, cluster: str, text: str) -> None:
        """Find the resources whose name contains ``text`` (any case) in every namespace of ``cluster``.

        Returns at once: the store's search for ``cluster`` is ``Loading``
        until the lists are in (at most about :data:`SEARCH_TIMEOUT`
        seconds), then ``Ready`` with the hits sorted by kind, namespace
        and name; namespaces that failed or were not reached are named in
        the search's note.  A newer search replaces this one.
        """
        text = text.strip()
        self.store.set_search(cluster, Search(text, Loading()))
        self.submit(lambda: self._search(cluster, text))

    def _search(self, cluster: str, text: str) -> None:
        note = None
        try:
            try:
                namespaces = list(self.browser.namespaces(cluster, TIMEOUT))
            except ForbiddenError:
                namespaces = [self.browser.default_namespace(cluster)]
                note = "Cannot list namespaces here; searched the context's"
        except Exception as exc:
            log.info("cannot search %s: %s", cluster, describe(exc))
            self.store.set_search(cluster, Search(text, Failed(describe(exc))), replacing=text)
            return
        needle = text.lower()
        kinds = [kind for kind, _ in KIND_SECTIONS]
        deadline = time.monotonic() + SEARCH_TIMEOUT
        order = {kind: i for i, kind in enumerate(kinds)}

        def one(ns: str) -> tuple[str, list[Hit] | BaseException, bool]:
            """(namespace, its hits or what failed, whether some kinds were refused)."""
            left = deadline - time.monotonic()
            if left <= 0:
                return ns, TimeoutError(), False
            try:
                results = self.browser.resources(cluster, ns, kinds, min(TIMEOUT, left))
            except Exception as exc:
                return ns, exc, False
            hits = [Hit(ns, kind, r) for kind, result in results.items() if not isinstance(result, BaseException)
                    for r in result if needle in r.name.lower()]
            return ns, hits, any(isinstance(result, BaseException) for result in results.values())

        hits: list[Hit] = []
        missed: list[str] = []
        partly: list[str] = []
        with ThreadPoolExecutor(max_workers=SEARCH_PARALLEL, thread_name_prefix="tender-search") as pool:
            for ns, found, refused in pool.map(one, namespaces):
                if isinstance(found, BaseException):
                    missed.append(ns)
                else:
                    hits += found
                    if refused:
                        partly.append(ns)
        notes = [note] if note else []
        if missed:
            notes.append(f"Not searched ({labels_list(missed)}): no answer or refused")
        if partly:
            notes.append(f"Some kinds refused in {labels_list(partly)}")
        note = "; ".join(notes) or None
        hits.sort(key=lambda h: (order[h.kind], h.namespace, h.resource.name))
        self.store.set_search(cluster, Search(text, Ready(tuple(hits)), note), replacing=text)

    def _namespaces(self, cluster: str, prefer: list[str], shown: list[str]) -> None:
        note = None
        try:
            try:
                names = list(self.browser.namespaces(cluster, TIMEOUT))
            except ForbiddenError:
                # Namespace-scoped credentials: the context's namespace is still usable.
                names = [self.browser.default_namespace(cluster)]
                note = "Cannot list namespaces here; showing the context's"
            default = self.browser.default_namespace(cluster)
        except Exception as exc:
            log.info("cannot list namespaces of %s: %s", cluster, describe(exc))
            self.store.set_namespaces(cluster, Failed(describe(exc)))
            return
        self.store.set_namespaces(cluster, Ready(tuple(sorted(set(names)))), note)
        wanted = [*shown, default, *prefer]
        ahead = [ns for ns in priority(names, wanted) if ns in wanted or not is_system_namespace(ns)]
        for ns in ahead[: max(self.auto, len(shown))]:
            self.load_namespace(cluster, ns)

    def _resources(self, cluster: str, namespace: str) -> None:
        try:
            results = self.browser.resources(cluster, namespace, [kind for kind, _ in KIND_SECTIONS], TIMEOUT)
        except Exception as exc:
            failed = Failed(describe(exc))
            self.store.set_resources(cluster, namespace, {kind: failed for kind, _ in KIND_SECTIONS})
            return
        states = {}
        for kind, result in results.items():
            states[kind] = Failed(describe(result)) if isinstance(result, BaseException) else Ready(result)
        self.store.set_resources(cluster, namespace, states)
