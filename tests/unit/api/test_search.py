"""The dashboard's search (tray/api/search.py) against a fake API server behind the real Browser."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import pytest

import tray.api.search as search_mod
from tray.api.search import search
from tray.errors import ForbiddenError, UsageError


@dataclass
class Ctx:
    id: str


def deployment(name: str, *ports: tuple[int, str | None]) -> dict:
    container = {"name": "app", "ports": [{"containerPort": p, **({"name": n} if n else {})} for p, n in ports]}
    return {"metadata": {"name": name}, "spec": {"replicas": 1, "template": {"spec": {"containers": [container]}}}}


def service(name: str, *ports: tuple[int, str | None]) -> dict:
    spec = {"ports": [{"port": p, **({"name": n} if n else {})} for p, n in ports]}
    return {"metadata": {"name": name}, "spec": spec}


def pod(name: str, *ports: tuple[int, str | None]) -> dict:
    container = {"name": "app", "ports": [{"containerPort": p, **({"name": n} if n else {})} for p, n in ports]}
    return {"metadata": {"name": name}, "spec": {"containers": [container]}, "status": {"phase": "Running"}}


class FakeApi:
    """LIST answers by path; records every GET; some paths hang or are forbidden."""

    def __init__(self, objects: dict[str, list[dict]], namespaces: list[str]) -> None:
        self.objects = objects
        self.namespaces = namespaces
        self.gets: list[str] = []
        self.hang: set[str] = set()
        self.forbidden: set[str] = set()
        self.lock = threading.Lock()

    async def get(self, path: str) -> dict:
        with self.lock:
            self.gets.append(path)
        if path in self.forbidden:
            raise ForbiddenError(f"cannot list {path}")
        if path in self.hang:
            await asyncio.sleep(60)
        if path == "/api/v1/namespaces":
            return {"items": [{"metadata": {"name": n}} for n in self.namespaces]}
        return {"items": self.objects.get(path, [])}


class FakeConn:
    def __init__(self, api: FakeApi, namespace: str = "default") -> None:
        self.api = api
        self.default_namespace = namespace

    async def ensure_auth(self) -> None:
        return None


class FakeManager:
    """What Browser and search use of the engine: clusters(), api_for(), run()."""

    def __init__(self, **apis: FakeApi) -> None:
        self.apis = apis

    def clusters(self) -> list[Ctx]:
        return [Ctx(name) for name in self.apis]

    def api_for(self, cluster: str) -> FakeConn:
        return FakeConn(self.apis[cluster])

    def run(self, coro, timeout=None):  # noqa: ANN001 -- the engine's run: a coroutine on a loop
        return asyncio.run(coro)


def demo_api() -> FakeApi:
    return FakeApi({
        "/api/v1/namespaces/demo/services": [service("web", (80, "http")), service("db", (5432, "pg"))],
        "/apis/apps/v1/namespaces/demo/deployments": [deployment("web", (8080, "http"))],
        "/api/v1/namespaces/demo/pods": [pod("web-6d4c-abcde", (8080, "http")), pod("db-0", (5432, "pg"))],
        "/apis/apps/v1/namespaces/demo/statefulsets": [deployment("db", (5432, "pg"))],
        "/api/v1/namespaces/web-team/services": [service("api", (9000, None))],
    }, ["default", "demo", "web-team"])


def targets(answer: dict) -> list[str]:
    return [f"{r['context']}/{r['namespace']}/{r['target']}" for r in answer["results"]]


def test_a_name_finds_services_and_workloads_first_then_pods_then_what_matches_elsewhere() -> None:
    answer = search(FakeManager(a=demo_api()), "web")
    assert targets(answer) == ["a/demo/svc/web", "a/demo/deploy/web", "a/demo/pod/web-6d4c-abcde",
                               "a/web-team/svc/api"]
    assert answer["errors"] == [] and answer["truncated"] is False
    first = answer["results"][0]
    assert first == {"context": "a", "namespace": "demo", "kind": "Service", "name": "web", "target": "svc/web",
                     "ports": [{"port": 80, "name": "http", "protocol": "TCP"}]}


def test_port_numbers_and_names_match_and_every_word_must() -> None:
    m = FakeManager(a=demo_api())
    assert targets(search(m, "5432")) == ["a/demo/svc/db", "a/demo/sts/db", "a/demo/pod/db-0"]
    assert targets(search(m, "PG")) == ["a/demo/svc/db", "a/demo/sts/db", "a/demo/pod/db-0"]
    assert targets(search(m, "deploy/web")) == ["a/demo/deploy/web"]
    assert targets(search(m, "demo deployment")) == ["a/demo/deploy/web"]
    assert targets(search(m, "web 9000")) == ["a/web-team/svc/api"]
    assert search(m, "nothing-like-this")["results"] == []


def test_empty_text_lists_everything_and_a_context_limits_it() -> None:
    m = FakeManager(a=demo_api(), b=FakeApi({"/api/v1/namespaces/x/services": [service("web", (80, None))]}, ["x"]))
    assert len(search(m, "")["results"]) == 8
    assert targets(search(m, "web", context="b")) == ["b/x/svc/web"]
    assert targets(search(m, "svc/web")) == ["a/demo/svc/web", "b/x/svc/web"]
    with pytest.raises(UsageError) as err:
        search(m, "web", context="nope")
    assert err.value.field == "context" and 'context "nope" not found' in str(err.value)


def test_a_listing_is_reused_for_30_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    api = demo_api()
    m = FakeManager(a=api)
    search(m, "w")
    listed = len(api.gets)
    assert listed == 1 + 3 * 8  # the namespaces, then one LIST per kind in each
    search(m, "we")
    search(m, "web")
    assert len(api.gets) == listed
    monkeypatch.setattr(search_mod, "CACHE_SECONDS", 0.0)
    time.sleep(0.01)
    search(m, "web")
    assert len(api.gets) == 2 * listed


def test_namespaces_forbidden_searches_the_contexts_own_and_says_so() -> None:
    api = demo_api()
    api.forbidden.add("/api/v1/namespaces")
    answer = search(FakeManager(a=api), "")
    assert answer["results"] == []  # "default" is empty
    assert answer["errors"] == [{"context": "a",
                                 "error": "cannot list namespaces here; searched the context's own (default)"}]


def test_a_refused_kind_is_named_and_the_others_still_answer() -> None:
    api = demo_api()
    api.forbidden.add("/apis/apps/v1/namespaces/demo/statefulsets")
    answer = search(FakeManager(a=api), "db")
    assert targets(answer) == ["a/demo/svc/db", "a/demo/pod/db-0"]
    assert [e["context"] for e in answer["errors"]] == ["a"]
    assert answer["errors"][0]["error"].startswith("StatefulSets not listed in demo: forbidden: cannot list")


def test_a_namespace_that_does_not_answer_is_named_and_asked_again_next_time() -> None:
    api = demo_api()
    api.hang.add("/api/v1/namespaces/web-team/services")
    m = FakeManager(a=api)
    began = time.monotonic()
    answer = search(m, "web", timeout=1.0)
    assert time.monotonic() - began < 3.0
    assert targets(answer) == ["a/demo/svc/web", "a/demo/deploy/web", "a/demo/pod/web-6d4c-abcde"]
    assert answer["errors"] == [{"context": "a", "error": "namespaces not searched (web-team): no answer within 1 s"}]
    api.hang.clear()
    again = search(m, "web")
    assert targets(again)[-1] == "a/web-team/svc/api" and again["errors"] == []


def test_a_broken_context_is_an_error_entry_and_the_others_answer() -> None:
    broken = demo_api()
    broken.forbidden.add("/api/v1/namespaces")

    class Manager(FakeManager):
        def api_for(self, cluster: str) -> FakeConn:
            if cluster == "bad":
                raise UsageError("no credentials")
            return super().api_for(cluster)

    answer = search(Manager(bad=broken, a=demo_api()), "svc/web")
    assert targets(answer) == ["a/demo/svc/web"]
    assert answer["errors"] == [{"context": "bad", "error": "cannot list namespaces: no credentials"}]


def test_at_most_200_results() -> None:
    api = FakeApi({"/api/v1/namespaces/n/services": [service(f"s{i:03}", (80, None)) for i in range(250)]}, ["n"])
    answer = search(FakeManager(a=api), "s")
    assert len(answer["results"]) == 200 and answer["truncated"] is True
    assert answer["results"][0]["name"] == "s000" and answer["results"][-1]["name"] == "s199"
