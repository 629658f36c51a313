"""Plain-data builders and fakes for the tray's unit tests (no display, no cluster)."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from typing import Any

from tray.domain.spec import ForwardSpec
from tray.domain.status import Status
from tray.errors import UsageError
from tray.kube.kubeconfig import ClusterInfo
from tray.engine.manager import ListEvent, StatusEvent
from tray.domain.portspec import parse_port_spec
from tray.profiles import Profile
from tray.engine.session import SessionInfo
from tray.domain.targets import parse_target

_ids = itertools.count(1)


def session(target: str = "svc/web", local: int = 8080, remote: str | int = 80, *, status: str = Status.ACTIVE,
            cluster: str = "tender-a", namespace: str = "shop", pod: str = "web-1", reason: str = "",
            profile: str | None = None, address: str = "127.0.0.1", container_port: int | None = None,
            id: str | None = None, protocol: str = "TCP", relay_pod: str = "",
            relay_upstream: str = "") -> SessionInfo:
    t = parse_target(target)
    return SessionInfo(
        id=id or f"s{next(_ids)}", cluster_id=cluster, cluster_name=cluster, namespace=namespace, pod_name=pod,
        container_port=container_port if container_port is not None else (remote if isinstance(remote, int) else 0),
        local_port=local, target_kind=t.kind, target_name=t.name, status=status, status_reason=reason,
        started_at="2026-01-01T00:00:00+00:00", address=address, remote_port=str(remote), profile=profile,
        attempts=0, connections=0, protocol=protocol, relay_pod=relay_pod, relay_upstream=relay_upstream,
    )


def profile(name: str, target: str = "svc/web", ports: tuple[str, ...] = ("8080:80",), *, context: str | None = "tender-a",
            namespace: str | None = "shop", group: str | None = None, autostart: bool = False,
            address: str = "127.0.0.1") -> Profile:
    return Profile(name=name, context=context, namespace=namespace, target=parse_target(target),
                   ports=tuple(parse_port_spec(p) for p in ports), address=address, autostart=autostart, group=group)


def cluster(name: str, current: bool = False) -> ClusterInfo:
    return ClusterInfo(id=name, cluster_name=name, user=f"{name}-admin", namespace="default", current=current)


class FakeManager:
    """The slice of ForwardManager the controller uses, in memory."""

    def __init__(self, clusters: list[ClusterInfo] | None = None, kubeconfig: str = "/nonexistent/kubeconfig") -> None:
        self.kubeconfig = kubeconfig
        self._clusters = clusters if clusters is not None else [cluster("tender-a", True), cluster("tender-b")]
        self.sessions: dict[str, SessionInfo] = {}
        self.calls: list[tuple] = []
        self.subscribers: list[Any] = []
        self.shut = False
        self.lock = threading.Lock()
        self.clusters_error: UsageError | None = None

    # engine API
    def clusters(self) -> list[ClusterInfo]:
        if self.clusters_error:
            raise self.clusters_error
        return list(self._clusters)

    def set_clusters(self, clusters: list[ClusterInfo]) -> None:
        self._clusters = clusters

    def subscribe(self, fn: Any) -> None:
        self.subscribers.append(fn)

    def unsubscribe(self, fn: Any) -> None:
        if fn in self.subscribers:
            self.subscribers.remove(fn)

    def list(self) -> list[SessionInfo]:
        with self.lock:
            return list(self.sessions.values())

    def get(self, sid: str) -> SessionInfo:
        return self.sessions[sid]

    def start(self, spec: ForwardSpec) -> str:
        cluster, namespace, kind, name = spec.cluster, spec.namespace, spec.target.kind, spec.target.name
        container_port, local_port, address, profile = spec.remote_port, spec.local_port, spec.address, spec.profile
        self.calls.append(("start", cluster, namespace, kind, name, container_port, local_port, address, profile))
        from tray.domain.targets import SHORT_NAMES

        s = session(f"{SHORT_NAMES[kind]}/{name}", local_port or 0, container_port, cluster=cluster,
                    namespace=namespace or "default", profile=profile, address=address, status=Status.STARTING)
        s = dataclasses.replace(s, protocol=spec.protocol, relay_image=spec.relay_image or "")
        with self.lock:
            self.sessions[s.id] = s
        self.emit(ListEvent(self.list()))
        return s.id

    def stop(self, sid: str) -> None:
        self.calls.append(("stop", sid))
        with self.lock:
            if self.sessions.pop(sid, None) is None:
                raise UsageError(f"no forward with id {sid}")
        self.emit(ListEvent(self.list()))

    def stop_cluster(self, cluster_id: str) -> list[str]:
        self.calls.append(("stop_cluster", cluster_id))
        ids = [s.id for s in self.list() if s.cluster_id == cluster_id]
        with self.lock:
            for i in ids:
                self.sessions.pop(i, None)
        return ids

    def retry(self, sid: str) -> None:
        self.calls.append(("retry", sid))

    def remove(self, sid: str) -> None:
        self.calls.append(("remove", sid))
        self.stop(sid)

    def api_for(self, cluster_id: str) -> Any:
        raise UsageError("no API in the fake")

    def run(self, coro: Any, timeout: float | None = None) -> Any:
        coro.close()
        raise UsageError("no engine loop in the fake")

    def shutdown(self) -> None:
        self.shut = True
        self.calls.append(("shutdown",))

    # test helpers
    def set_status(self, sid: str, status: str, reason: str = "", pod: str | None = None) -> None:
        from dataclasses import replace

        with self.lock:
            s = self.sessions[sid]
            s = replace(s, status=status, status_reason=reason, pod_name=pod if pod is not None else s.pod_name)
            self.sessions[sid] = s
        self.emit(StatusEvent(sid, status, s.local_port, s.pod_name, reason, s))

    def emit(self, event: Any) -> None:
        for fn in list(self.subscribers):
            fn(event)


class FakeView:
    def __init__(self) -> None:
        self.shown: list[tuple] = []
        self.copied: list[str] = []
        self.stopped = False
        self.cond = threading.Condition()

    def show(self, menu: Any, state: Any, count: int, tooltip: str) -> None:
        with self.cond:
            self.shown.append((menu, state, count, tooltip))
            self.cond.notify_all()

    @property
    def menu(self) -> Any:
        return self.shown[-1][0]

    def copy_text(self, text: str) -> None:
        self.copied.append(text)

    def stop(self) -> None:
        self.stopped = True


class FakeDialogs:
    def __init__(self, confirm: bool = True, port: tuple[int | str, int] | None = None) -> None:
        self.answer = confirm
        self.port = port
        self.asked: list[tuple] = []

    def confirm(self, title: str, text: str, ok: str, cancel: str = "Cancel") -> bool:
        self.asked.append(("confirm", title, text, ok, cancel))
        return self.answer

    def ask_port(self, request: Any) -> tuple[int | str, int] | None:
        self.asked.append(("port", request))
        return self.port


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.cond = threading.Condition()

    def send(self, title: str, body: str) -> None:
        with self.cond:
            self.sent.append((title, body))
            self.cond.notify_all()
