"""The benchmark's own view of the clusters: API metrics and a pod watch.

Talks to each test cluster's API server directly (admin token, CA and port
from ``D/<letter>/state.json``), never through the code under test.

* :func:`scrape` reads ``/metrics``: ``apiserver_request_total`` (counters by
  verb, resource, scope, subresource, code) and
  ``apiserver_longrunning_requests`` (gauges: open WATCH and CONNECT
  requests by resource and scope).
* :class:`PodWatch` keeps a watch on one namespace's pods and stamps every
  event with ``time.monotonic()`` on arrival, so "the new pod turned Ready"
  is known to the millisecond (the Ready condition's lastTransitionTime has
  whole seconds only).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import time
from typing import Any

from tests.clusterlib import Cluster

_SAMPLE = re.compile(r'^(\w+)\{(.*)\} (\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
WANTED = ("apiserver_request_total{", "apiserver_longrunning_requests{")


class Api:
    """Minimal HTTPS client for one test cluster's API server."""

    def __init__(self, cluster: Cluster) -> None:
        state = cluster.state
        self.port = int(state["api_port"])
        self.token = state["admin_token"]
        self.ctx = ssl.create_default_context(cafile=state["ca_file"])
        self.ctx.check_hostname = False  # the serving cert names 127.0.0.1 / localhost; the CA is pinned

    def _conn(self, timeout: float) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=timeout)

    def get(self, path: str, timeout: float = 30.0) -> bytes:
        conn = self._conn(timeout)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {resp.status}: {body[:200]!r}")
            return body
        finally:
            conn.close()

    def get_json(self, path: str) -> Any:
        return json.loads(self.get(path))


def scrape(api: Api) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The two metric families Tender is judged by: name -> [(labels, value)]."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {"apiserver_request_total": [],
                                                          "apiserver_longrunning_requests": []}
    for line in api.get("/metrics").decode().splitlines():
        if not line.startswith(WANTED):
            continue
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1)].append((dict(_LABEL.findall(m.group(2))), float(m.group(3))))
    return out


def _key(labels: dict[str, str], fields: tuple[str, ...]) -> str:
    return "/".join(labels.get(f, "") or "-" for f in fields)


def request_deltas(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """apiserver_request_total increments, by verb/resource/scope/subresource (codes summed)."""
    fields = ("verb", "resource", "scope", "subresource")

    def totals(snap: dict[str, Any]) -> dict[str, float]:
        acc: dict[str, float] = {}
        for labels, value in snap["apiserver_request_total"]:
            k = _key(labels, fields)
            acc[k] = acc.get(k, 0.0) + value
        return acc

    a, b = totals(before), totals(after)
    return {k: int(b[k] - a.get(k, 0.0)) for k in sorted(b) if b[k] - a.get(k, 0.0) > 0}


def longrunning(snap: dict[str, Any]) -> dict[str, int]:
    """Open long-running requests now, by verb/resource/scope/subresource."""
    fields = ("verb", "resource", "scope", "subresource")
    acc: dict[str, int] = {}
    for labels, value in snap["apiserver_longrunning_requests"]:
        k = _key(labels, fields)
        acc[k] = acc.get(k, 0) + int(value)
    return acc


def gauge_deltas(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    a, b = longrunning(before), longrunning(after)
    keys = set(a) | set(b)
    return {k: b.get(k, 0) - a.get(k, 0) for k in sorted(keys) if b.get(k, 0) != a.get(k, 0)}


def pod_ready(pod: dict[str, Any]) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


class PodWatch:
    """Watches one namespace's pods; records when each pod was first seen Ready."""

    def __init__(self, api: Api, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.ready_at: dict[str, float] = {}  # pod -> arrival of the first Ready=True event
        self.deleted_at: dict[str, float] = {}  # pod -> arrival of DELETED
        self.terminating_at: dict[str, float] = {}
        self.labels: dict[str, dict[str, str]] = {}
        self.events: list[tuple[float, str, str, bool]] = []
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None
        self._thread = threading.Thread(target=self._run, name=f"podwatch {namespace}", daemon=True)
        self.error: str | None = None

    def start(self, timeout: float = 15.0) -> "PodWatch":
        self._thread.start()
        if not self._synced.wait(timeout):
            raise RuntimeError(f"pod watch of {self.namespace} did not start: {self.error}")
        return self

    def _record(self, t: float, kind: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        self.labels[name] = pod["metadata"].get("labels") or {}
        ready = pod_ready(pod)
        self.events.append((t, kind, name, ready))
        if kind == "DELETED":
            self.deleted_at.setdefault(name, t)
        elif pod["metadata"].get("deletionTimestamp"):
            self.terminating_at.setdefault(name, t)
        elif ready:
            self.ready_at.setdefault(name, t)

    def _run(self) -> None:
        base = f"/api/v1/namespaces/{self.namespace}/pods"
        try:
            listing = self.api.get_json(base)
            t = time.monotonic()
            for pod in listing.get("items", []):
                self._record(t, "LISTED", pod)
            rv = listing["metadata"]["resourceVersion"]
            while not self._stop.is_set():
                self._conn = conn = self.api._conn(timeout=5)
                path = f"{base}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=600"
                conn.request("GET", path, headers={"Authorization": f"Bearer {self.api.token}"})
                resp = conn.getresponse()
                if resp.status != 200:
                    raise RuntimeError(f"watch: HTTP {resp.status}")
                # No read timeout (a timed-out socket file cannot be read
                # again); stop() shuts the socket down instead.
                conn.sock.settimeout(None)
                self._synced.set()
                while not self._stop.is_set():
                    line = resp.readline()
                    if not line:
                        break
                    t = time.monotonic()
                    ev = json.loads(line)
                    obj = ev.get("object", {})
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if ev.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._record(t, ev["type"], obj)
                    elif ev.get("type") == "ERROR":
                        raise RuntimeError(f"watch error: {obj.get('message')}")
                conn.close()
        except Exception as exc:  # reported by the scenario that needs the watch
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"
            self._synced.set()

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
