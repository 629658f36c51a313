"""Helpers for the engine's integration tests: what a user of a forward sees.

* :func:`wait_status` polls ``manager.get(id)`` until the session has one of
  the wanted statuses (never sleep-and-hope); it fails at once, with the
  reason, if the session lands in ``error`` while something else is awaited.
* :func:`http_get` / :func:`hostname` talk HTTP through a local port on a
  fresh TCP connection each time, as curl would.
* :class:`EventLog` records the manager's events for assertions on the
  sequence of statuses a session went through.
* Manifest builders for the pods and workloads the tests use.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from tray.engine.manager import ForwardManager, ListEvent, StatusEvent
from tray.engine.session import SessionInfo

AGNHOST = "registry.k8s.io/e2e-test-images/agnhost:2.53"


# ------------------------------------------------------------------ waiting
def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_status(manager: ForwardManager, session_id: str, *statuses: str, timeout: float = 20.0,
                allow_error: bool = False) -> SessionInfo:
    """Wait until the session's status is one of ``statuses``; return its info.

    Unless ``error`` is awaited (or ``allow_error``), a session that goes to
    ``error`` fails the wait at once with its reason.
    """
    wanted = set(statuses)
    deadline = time.monotonic() + timeout
    info = manager.get(session_id)
    while info.status not in wanted:
        if info.status == "error" and not allow_error:
            raise AssertionError(f"session went to error while waiting for {sorted(wanted)}: "
                                 f"{info.status_reason!r} ({info.target} pod {info.pod_name!r})")
        if time.monotonic() >= deadline:
            raise AssertionError(f"session still {info.status!r} ({info.status_reason!r}) after "
                                 f"{timeout:.0f}s waiting for {sorted(wanted)}")
        time.sleep(0.05)
        info = manager.get(session_id)
    return info


def assert_stays(manager: ForwardManager, session_id: str, status: str, seconds: float) -> None:
    """Assert the session keeps ``status`` for ``seconds`` (checked continuously):
    e.g. that an error is final, with no retry loop behind it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        info = manager.get(session_id)
        assert info.status == status, f"status changed to {info.status} ({info.status_reason!r})"
        time.sleep(0.05)


# ------------------------------------------------------------------ talking
def http_request(port: int, path: str, *, method: str = "GET", body: Any = None, timeout: float = 10.0,
                 host: str = "127.0.0.1", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One HTTP request on a new connection to the local port; (status, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_get(port: int, path: str, timeout: float = 10.0) -> str:
    status, body = http_request(port, path, timeout=timeout)
    assert status == 200, f"GET {path} through :{port} answered {status}: {body[:200]!r}"
    return body.decode()


def hostname(port: int, timeout: float = 10.0) -> str:
    """The pod name, as netexec's /hostname answers it through the forward."""
    return http_get(port, "/hostname", timeout)


def wait_hostname(port: int, expected: str | Iterable[str], timeout: float = 20.0) -> str:
    """Poll /hostname until it answers one of ``expected`` (errors retried)."""
    want = {expected} if isinstance(expected, str) else set(expected)
    last: list[str] = []

    def check() -> str | None:
        try:
            name = hostname(port, timeout=5)
        except (OSError, AssertionError, http.client.HTTPException) as exc:
            last[:] = [f"{type(exc).__name__}: {exc}"]
            return None
        last[:] = [name]
        return name if name in want else None

    try:
        return wait_for(check, timeout, f"/hostname on :{port} to answer one of {sorted(want)}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {last[0] if last else None!r}") from None


def port_refuses(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on the local port any more."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ events
class EventLog:
    """Collects the manager's events (the subscriber runs on the engine thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[StatusEvent | ListEvent] = []

    def __call__(self, event: StatusEvent | ListEvent) -> None:
        with self._lock:
            self.events.append(event)

    def status_events(self, session_id: str) -> list[StatusEvent]:
        with self._lock:
            return [e for e in self.events if isinstance(e, StatusEvent) and e.session_id == session_id]

    def statuses(self, session_id: str) -> list[str]:
        """The session's statuses in order, consecutive repeats collapsed."""
        out: list[str] = []
        for e in self.status_events(session_id):
            if not out or out[-1] != e.status:
                out.append(e.status)
        return out

    def mark(self) -> int:
        with self._lock:
            return len(self.events)

    def since(self, mark: int, session_id: str) -> list[StatusEvent]:
        with self._lock:
            return [e for e in self.events[mark:] if isinstance(e, StatusEvent) and e.session_id == session_id]


def collapse(seq: Iterable[str]) -> list[str]:
    out: list[str] = []
    for s in seq:
        if not out or out[-1] != s:
            out.append(s)
    return out


# ------------------------------------------------------------------ manifests
def _args(args: str) -> str:
    return ", ".join(f'"{a}"' for a in args.split())


def pod_manifest(name: str, *, args: str = "netexec --http-port=8080", port: int = 8080,
                 port_name: str = "http", labels: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None, grace: int = 2) -> str:
    labels = labels or {"app": name}
    lab = ", ".join(f"{k}: {v}" for k, v in labels.items())
    ann = ", ".join(f'"{k}": "{v}"' for k, v in (annotations or {}).items())
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{{lab}}}, annotations: {{{ann}}}}}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
    - name: app
      image: {AGNHOST}
      args: [{_args(args)}]
      ports: [{{name: {port_name}, containerPort: {port}}}]
"""


def service_manifest(name: str, selector: dict[str, str], ports: str) -> str:
    sel = ", ".join(f"{k}: {v}" for k, v in selector.items())
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{{sel}}}
  ports: {ports}
"""


# For clusterlib.deployment_manifest(extra_pod_spec=...): continues the
# container's mapping (10 spaces deep).
READINESS_PROBE = "          readinessProbe: {httpGet: {path: /healthz, port: http}, periodSeconds: 1}"
