"""A namespace group on plain data: the Services' watch changes, the members it starts and stops follow."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.engine.session_fakes import NS, FakeCaches, FakeConn
from tray.domain.addresses import auto_address
from tray.domain.servicegroup import NamespaceSpec, parse_label_selector
from tray.engine.group import NamespaceGroup
from tray.engine.session import SessionInfo
from tray.errors import ForbiddenError, UsageError


def svc(name: str, *ports: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "labels": labels or {}},
            "spec": {"selector": {"app": name}, "ports": [{"port": p, "protocol": "TCP"} for p in ports]}}


class Manager:
    """What the group asks of the ForwardManager: start a member, stop one."""

    def __init__(self) -> None:
        self.running: dict[str, Any] = {}  # id -> ForwardSpec
        self.n = 0
        self.taken: set[tuple[str, int]] = set()

    def _start_member(self, spec: Any, group: Any) -> str:
        if (spec.address, spec.local_port) in self.taken:
            raise UsageError(f"local port {spec.local_port} is already used")
        self.n += 1
        sid = f"s{self.n}"
        self.running[sid] = spec
        return sid

    def stop(self, sid: str) -> None:
        if sid not in self.running:
            raise UsageError(f"no forward with id {sid}")
        del self.running[sid]

    async def _stop_member(self, sid: str) -> None:
        self.running.pop(sid, None)

    def forwards(self) -> list[tuple[str, int, str, int]]:
        return sorted((s.target.name, s.remote_port, s.address, s.local_port) for s in self.running.values())


def make(selector: str = "") -> tuple[NamespaceGroup, Manager, FakeCaches]:
    manager, caches = Manager(), FakeCaches()
    group = NamespaceGroup(manager=manager, conn=FakeConn(), watches=caches,  # type: ignore[arg-type]
                           spec=NamespaceSpec("kind-test", NS, selector, balance="sticky"), namespace=NS,
                           selector=parse_label_selector(selector))
    return group, manager, caches


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_members_follow_services_created_and_deleted():
    async def go() -> None:
        group, manager, caches = make()
        cache = caches["services"]
        cache.objects = {"web": svc("web", 80, 8080), "db": svc("db", 5432)}
        await group.start()
        web, db = auto_address("kind-test", NS, "web"), auto_address("kind-test", NS, "db")
        assert manager.forwards() == [("db", 5432, db, 5432), ("web", 80, web, 80), ("web", 8080, web, 8080)]
        assert group.info().status == "active" and len(group.info().members) == 3
        assert {s.balance for s in manager.running.values()} == {"sticky"}
        cache.put(svc("cache", 6379))
        assert ("cache", 6379, auto_address("kind-test", NS, "cache"), 6379) in manager.forwards()
        cache.delete("web")
        assert [f[0] for f in manager.forwards()] == ["cache", "db"]
        cache.put(svc("db", 5433))  # a port changed: one stop, one start
        assert ("db", 5433, db, 5433) in manager.forwards() and ("db", 5432, db, 5432) not in manager.forwards()
        await group.stop()
        assert manager.running == {} and caches.held() == 0 and cache.subscribers == 0

    run(go())


def test_nothing_stops_while_the_watch_is_stale_or_failing():
    async def go() -> None:
        group, manager, caches = make()
        cache = caches["services"]
        cache.objects = {"web": svc("web", 8080)}
        await group.start()
        cache.go_stale("the API server is not answering")
        cache.delete("web")
        assert len(manager.running) == 1
        cache.fail(ForbiddenError('services is forbidden: cannot list resource "services"'))
        assert len(manager.running) == 1
        assert group.info().status == "error" and "forbidden" in group.info().reason
        cache.fail(None)
        cache.list_forbidden = ForbiddenError('services is forbidden: cannot list resource "services"')
        cache.fresh()
        assert len(manager.running) == 1 and "cannot list" in group.info().reason
        cache.list_forbidden = None
        cache.fresh()
        assert manager.running == {} and group.info().status == "active"
        assert group.info().reason == "no Services to forward"

    run(go())


def test_selector_skips_and_a_taken_port():
    async def go() -> None:
        group, manager, caches = make("tier=front")
        cache = caches["services"]
        manager.taken.add((auto_address("kind-test", NS, "b"), 8080))
        cache.objects = {"a": svc("a", 8080, labels={"tier": "front"}), "b": svc("b", 8080, labels={"tier": "front"}),
                         "c": svc("c", 8080), "x": {"metadata": {"name": "x", "labels": {"tier": "front"}},
                                                    "spec": {"type": "ExternalName", "externalName": "example.com"}}}
        await group.start()
        assert [f[0] for f in manager.forwards()] == ["a"]  # b's port is taken; c not selected
        assert group.info().skipped == ("svc/x: skipped (an ExternalName Service has no pods)",)
        sid = next(iter(manager.running))
        manager.stop(sid)  # the user stopped a member: it is not started again, and its Service's end is quiet
        cache.delete("a")
        assert manager.running == {}

    run(go())


def test_a_member_that_cannot_bind_a_privileged_port_says_what_to_do():
    async def go() -> None:
        group, manager, caches = make()
        group._unprivileged_start = 1024
        caches["services"].objects = {"web": svc("web", 80)}
        await group.start()
        sid = next(iter(manager.running))
        info = SessionInfo(id=sid, cluster_id="kind-test", cluster_name="kind-test", namespace=NS, pod_name="",
                           container_port=0, local_port=80, target_kind="Service", target_name="web",
                           status="error", status_reason="cannot listen on 127.9.9.9:80: Permission denied",
                           started_at="", address="127.9.9.9", remote_port="80", profile=None, attempts=0,
                           connections=0)
        shown = group.annotate(info)
        assert shown.group == group.id
        assert shown.status_reason.startswith("cannot listen on 127.9.9.9:80: Permission denied: port 80 is below")
        assert "sysctl -w net.ipv4.ip_unprivileged_port_start=80" in shown.status_reason
        other = group.annotate(SessionInfo(**{**info.__dict__, "status_reason": "no ready pod"}))
        assert other.status_reason == "no ready pod"

    run(go())
