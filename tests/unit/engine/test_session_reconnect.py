"""The reconnect rules of :mod:`tray.engine.session`'s docstring, on plain data, in milliseconds.

Each test starts a real :class:`~tray.engine.session.Session` listening on
127.0.0.1, with a fake dialer and fake caches (:mod:`tests.unit.engine.session_fakes`),
changes the cluster as a watch would say it, and asserts what a user sees:
the status, its reason, and whether the local port answers.  The design's
backoff (1, 2, 4, 8, 16 s, then 30 s) runs a thousand times faster.  The
same rules on a real API server are the integration tests'
(test_engine_reconnect.py, test_never_give_up.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tray.domain import backoff
from tray.domain.status import Status
from tray.domain.targets import Target
from tray.engine import reconnect
from tray.errors import ClusterUnreachable, ForbiddenError, NotFound, Unauthorized

from .session_fakes import FakeDialer, Forward, deployment, job, pod, run, service

WEB = Target("Deployment", "web")
SCALE = 1000  # the backoff runs this many times faster


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The design's delays, scaled down; returns the delays the retry loop asked for, in design seconds."""
    monkeypatch.setattr(backoff, "DELAYS", tuple(d / SCALE for d in backoff.DELAYS))
    monkeypatch.setattr(backoff, "MAX_DELAY", backoff.MAX_DELAY / SCALE)
    monkeypatch.setattr(reconnect, "DROP_GRACE", 0.005)
    asked: list[float] = []
    real = backoff.Backoff.next_delay

    def next_delay(self: backoff.Backoff) -> float | None:
        delay = real(self)
        asked.append(round(delay * SCALE, 3) if delay is not None else -1)
        return delay

    monkeypatch.setattr(backoff.Backoff, "next_delay", next_delay)
    return asked


async def web_forward(*pods: dict[str, Any], dialer: FakeDialer | None = None) -> Forward:
    """deploy/web with these pods, started and active."""
    fwd = Forward(WEB, dialer=dialer)
    fwd.caches["deployments"].objects["web"] = deployment()
    for p in pods:
        fwd.pods.objects[p["metadata"]["name"]] = p
    fwd.session.start()
    await fwd.status(Status.ACTIVE)
    return fwd


# ---------------------------------------------------------------- the pod in use goes away
@pytest.mark.parametrize("change", ["deleted", "terminating", "unready"])
def test_new_connections_move_to_another_ready_pod(change: str) -> None:
    """The current pod deleted, terminating or unready: new connections go to another ready pod
    at once, the forward never leaves ``active``, and a connection open on the old pod finishes there."""
    async def test() -> None:
        fwd = await web_forward(pod("web-a", ready_since="2026-01-01T00:00:00Z"),
                                pod("web-b", ready_since="2026-01-01T00:05:00Z"))
        assert fwd.info.pod_name == "web-a"  # ready for longer: kubectl's choice
        port = fwd.info.local_port
        assert await fwd.request() == "web-a:hello"
        # A connection open on web-a: it finishes there.
        held_reader, held_writer = await asyncio.open_connection("127.0.0.1", port)
        await fwd.until(lambda i: i.connections == 1, "the open connection dialed")
        statuses: list[str] = []
        fwd.session._on_change = lambda s, changed: statuses.append(s.status)  # type: ignore[method-assign]
        if change == "deleted":
            fwd.pods.delete("web-a")
        elif change == "terminating":
            fwd.pods.put(pod("web-a", terminating=True))
        else:
            fwd.pods.put(pod("web-a", ready=False))
        info = await fwd.until(lambda i: i.pod_name == "web-b", "moved to web-b")
        assert info.status == Status.ACTIVE and info.status_reason == ""
        assert set(statuses) == {Status.ACTIVE}  # never reconnecting
        assert info.local_port == port
        assert await fwd.request() == "web-b:hello"
        assert fwd.dialer.pod_changes >= 1  # the tunnel to web-a takes no new connection
        held_writer.write(b"late")
        assert await held_reader.read(100) == b"web-a:late"
        held_writer.close()
        await fwd.stop()
    run(test)


def test_a_statefulset_pod_made_again_under_its_name_is_another_pod() -> None:
    """A StatefulSet's rollout makes web-0 again (same name, new uid) and the watch missed the
    deletion (a relist shows only the new one): the forward takes the new pod's port ("http" is
    now 9090) and a fresh tunnel, so the next connection is answered, on the new port."""
    async def test() -> None:
        fwd = Forward(Target("StatefulSet", "web"), "http")
        fwd.caches["statefulsets"].objects["web"] = deployment()
        fwd.pods.objects["web-0"] = pod("web-0", uid="uid-old")
        fwd.session.start()
        info = await fwd.status(Status.ACTIVE)
        assert (info.pod_name, info.container_port) == ("web-0", 8080)
        assert await fwd.request() == "web-0:hello"
        fwd.dialer.half_open = True  # the tunnel led to the old pod: dead
        fwd.pods.put(pod("web-0", uid="uid-new", ports=((9090, "http"),)))
        info = await fwd.until(lambda i: i.container_port == 9090, "the new pod's port")
        assert info.status == Status.ACTIVE and info.pod_name == "web-0"
        assert await fwd.request() == "web-0:hello"
        assert fwd.dialer.dials[-1] == ("web-0", 9090)
        assert fwd.info.status == Status.ACTIVE
        await fwd.stop()
    run(test)


# ---------------------------------------------------------------- no ready pod: the backoff
def test_no_ready_pod_reconnects_on_the_backoff_then_errors_recoverable(fast_backoff: list[float]) -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        port = fwd.info.local_port
        fwd.pods.put(pod("web-a", ready=False))
        info = await fwd.status(Status.RECONNECTING)
        assert "web-a" in info.status_reason and "not ready" in info.status_reason, info.status_reason
        assert info.next_retry_at != ""
        info = await fwd.status(Status.ERROR)
        assert fast_backoff[:5] == [1, 2, 4, 8, 16]
        assert info.status_reason.startswith("gave up after 5 attempts: "), info.status_reason
        assert "not ready" in info.status_reason
        assert info.recoverable and not info.usage_error
        assert await fwd.request(port) == "refused"  # the port is closed in error
        # It keeps trying, at the capped delay.
        await fwd.until(lambda i: len(fast_backoff) >= 8, "three more attempts")
        assert fast_backoff[5:8] == [30, 30, 30]
        assert fwd.info.status == Status.ERROR and fwd.info.next_retry_at != ""
        # A ready pod: active by itself, on the same local port.
        fwd.pods.put(pod("web-c"))
        info = await fwd.status(Status.ACTIVE)
        assert info.status_reason == "recovered: pod web-c is ready"
        assert info.local_port == port and info.attempts == 0 and not info.recoverable
        assert await fwd.request(port) == "web-c:hello"
        await fwd.stop()
    run(test)


def test_error_after_exactly_five_failed_attempts(fast_backoff: list[float]) -> None:
    """Attempts 1..5 wait 1, 2, 4, 8, 16 s while ``reconnecting``; the 5th failing makes it
    ``error`` at once, saying 5 attempts (no 6th attempt first)."""
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        seen: list[tuple[str, int, int]] = []  # (status, attempts, delays asked) at each change

        def changed(s: Any, pod_changed: bool) -> None:
            seen.append((s.status, s.info().attempts, len(fast_backoff)))

        fwd.session._on_change = changed  # type: ignore[method-assign]
        fwd.pods.put(pod("web-a", ready=False))
        info = await fwd.status(Status.ERROR)
        assert info.recoverable
        assert info.status_reason.startswith("gave up after 5 attempts: "), info.status_reason
        first_error = next(i for i, (status, _, _) in enumerate(seen) if status == Status.ERROR)
        before, (_, attempts, asked) = seen[:first_error], seen[first_error]
        # The shells hear `error` with 5 attempts, right after the 5th, before a 6th delay.
        assert (attempts, asked) == (5, 5), seen
        assert {status for status, _, _ in before} == {Status.RECONNECTING}, seen
        assert (Status.RECONNECTING, 5, 5) in before  # waiting for attempt 5, still reconnecting
        assert fast_backoff[:5] == [1, 2, 4, 8, 16]
        await fwd.stop()
    run(test)


def test_reconnecting_back_to_active_when_a_pod_turns_ready() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.pods.delete("web-a")
        info = await fwd.status(Status.RECONNECTING)
        assert info.status_reason == "no pods match deploy/web"
        fwd.pods.put(pod("web-b"))
        info = await fwd.status(Status.ACTIVE)
        assert info.status_reason == "reconnected to pod web-b" and info.attempts == 0
        assert await fwd.request() == "web-b:hello"
        await fwd.stop()
    run(test)


def test_start_without_a_ready_pod_is_a_recoverable_error() -> None:
    async def test() -> None:
        fwd = Forward(WEB)
        fwd.caches["deployments"].objects["web"] = deployment()
        fwd.pods.objects["web-a"] = pod("web-a", ready=False)
        fwd.session.start()
        info = await fwd.status(Status.ERROR)
        assert info.recoverable and "web-a" in info.status_reason and "not ready" in info.status_reason
        fwd.pods.put(pod("web-a"))
        info = await fwd.status(Status.ACTIVE)
        assert info.status_reason == "recovered: pod web-a is ready"
        assert await fwd.request() == "web-a:hello"
        await fwd.stop()
    run(test)


# ---------------------------------------------------------------- gone for good
def test_target_deleted_is_an_error_for_good(fast_backoff: list[float]) -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        port = fwd.info.local_port
        fwd.caches["deployments"].delete("web")
        info = await fwd.status(Status.ERROR)
        assert info.status_reason == "deploy/web was deleted"
        assert not info.recoverable and info.next_retry_at == ""
        assert await fwd.request(port) == "refused"
        assert fwd.caches.held() == 0  # the watches are released
        fwd.pods.put(pod("web-b"))  # nobody listens any more
        await fwd.stays(Status.ERROR, 0.05)
        assert fast_backoff == []
        await fwd.stop()
    run(test)


def test_target_deleted_while_recoverable_is_an_error_for_good() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.pods.delete("web-a")
        await fwd.until(lambda i: i.status == Status.ERROR and i.recoverable, "a recoverable error")
        fwd.caches["deployments"].delete("web")
        info = await fwd.until(lambda i: not i.recoverable, "an error for good")
        assert info.status == Status.ERROR and info.status_reason == "deploy/web was deleted"
        assert fwd.caches.held() == 0
        await fwd.stop()
    run(test)


def test_finished_job_is_an_error_for_good() -> None:
    async def test() -> None:
        fwd = Forward(Target("Job", "batch"))
        fwd.caches["jobs"].objects["batch"] = job("batch")
        fwd.pods.objects["batch-x"] = pod("batch-x")
        fwd.session.start()
        await fwd.status(Status.ACTIVE)
        fwd.caches["jobs"].objects["batch"] = job("batch", finished=True)
        fwd.pods.put(pod("batch-x", phase="Succeeded", ready=False))
        info = await fwd.until(lambda i: i.status == Status.ERROR, "error")
        assert not info.recoverable, info
        assert info.status_reason.startswith("gave up after 5 attempts: "), info.status_reason
        assert await fwd.request() == "refused"
        assert fwd.caches.held() == 0
        await fwd.stop()
    run(test)


@pytest.mark.parametrize(("change", "reason"), [
    ("deleted", "pod db was deleted"),
    ("terminating", "pod db is terminating"),
    ("succeeded", "pod db has stopped (Succeeded)"),
    ("recreated", "pod db was deleted"),  # same name, another pod
])
def test_bare_pod_gone_is_an_error_for_good(change: str, reason: str, fast_backoff: list[float]) -> None:
    """A forward to a pod does not move to another pod."""
    async def test() -> None:
        fwd = Forward(Target("Pod", "db"))
        fwd.pods.objects["db"] = pod("db", labels={})
        fwd.session.start()
        port = (await fwd.status(Status.ACTIVE)).local_port
        assert await fwd.request() == "db:hello"
        if change == "deleted":
            fwd.pods.delete("db")
        elif change == "terminating":
            fwd.pods.put(pod("db", labels={}, terminating=True))
        elif change == "succeeded":
            fwd.pods.put(pod("db", labels={}, phase="Succeeded"))
        else:
            fwd.pods.put(pod("db", labels={}, uid="another"))
        info = await fwd.status(Status.ERROR)
        assert info.status_reason == reason and not info.recoverable
        assert await fwd.request(port) == "refused"
        assert fwd.caches.held() == 0 and fast_backoff == []
        await fwd.stop()
    run(test)


# ---------------------------------------------------------------- drops and probes
def test_drop_reconnects_while_the_probe_checks_then_active() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        seen: list[tuple[str, str]] = []
        fwd.session._on_change = lambda s, c: seen.append((s.status, s.reason))  # type: ignore[method-assign]
        fwd.dialer.drop_next = True
        assert await fwd.request() == "web-a:hello"
        info = await fwd.until(lambda i: i.status_reason == "reconnected to pod web-a", "reconnected")
        assert info.status == Status.ACTIVE
        assert (Status.RECONNECTING, "connection to pod web-a lost; reconnecting") in seen
        assert fwd.dialer.checks == [("web-a", 8080)]  # the probe
        assert fwd.dialer.failed == [True]  # the dropped path is not reused
        assert await fwd.request() == "web-a:hello"
        await fwd.stop()
    run(test)


def test_a_pod_whose_probe_failed_comes_back_only_by_a_probe(fast_backoff: list[float]) -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.dialer.unreachable.add("web-a")
        assert await fwd.request() == ""  # the dial fails: the connection is closed
        # Said at once ("...; reconnecting"), then by the retry loop after its probe failed.
        info = await fwd.until(lambda i: i.status_reason == "cannot reach pod web-a: dial tcp: i/o timeout",
                               "the probe's failure")
        assert info.status == Status.RECONNECTING
        # The API still says web-a is ready; a watch event must not make the forward claim it.
        fwd.pods.put(pod("web-z", ready=False))
        fwd.caches["deployments"].put(deployment())
        await fwd.stays(Status.RECONNECTING, 0.005)
        # The path works again: the next attempt's probe brings it back.
        checks = len(fwd.dialer.checks)
        fwd.dialer.unreachable.clear()
        info = await fwd.status(Status.ACTIVE)
        assert info.status_reason == "reconnected to pod web-a"
        assert len(fwd.dialer.checks) > checks  # by a probe
        assert await fwd.request() == "web-a:hello"
        await fwd.stop()
    run(test)


def test_unreachable_pod_is_left_for_another_ready_one() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.dialer.unreachable.add("web-a")
        await fwd.request()
        await fwd.until(lambda i: i.status_reason == "cannot reach pod web-a: dial tcp: i/o timeout",
                        "the probe's failure")
        fwd.pods.put(pod("web-b", ready_since="2026-01-01T00:00:00Z"))
        fwd.pods.put(pod("web-a", ready_since="2026-01-02T00:00:00Z"))  # web-b is the better one now
        info = await fwd.until(lambda i: i.pod_name == "web-b", "web-b")
        assert info.status == Status.ACTIVE
        assert await fwd.request() == "web-b:hello"
        await fwd.stop()
    run(test)


def test_bare_pod_unreachable_after_a_drop_is_an_error() -> None:
    async def test() -> None:
        fwd = Forward(Target("Pod", "db"))
        fwd.pods.objects["db"] = pod("db", labels={})
        fwd.session.start()
        await fwd.status(Status.ACTIVE)
        fwd.dialer.unreachable.add("db")
        await fwd.request()
        info = await fwd.status(Status.ERROR)
        assert info.status_reason == "pod db is not reachable" and not info.recoverable
        await fwd.stop()
    run(test)


def test_a_pod_deleted_as_its_connection_drops_is_left_without_a_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dial fails because the pod is gone, and the watch says so a moment later: within
    :data:`~tray.engine.reconnect.DROP_GRACE` the watch speaks first, so the forward moves to
    another pod without probing the dead one."""
    monkeypatch.setattr(reconnect, "DROP_GRACE", 0.5)

    async def test() -> None:
        fwd = await web_forward(pod("web-a", ready_since="2026-01-01T00:00:00Z"),
                                pod("web-b", ready_since="2026-01-01T00:05:00Z"))
        fwd.dialer.unreachable.add("web-a")
        assert await fwd.request() == ""
        await fwd.until(lambda i: i.status_reason.endswith("i/o timeout; reconnecting"), "the drop")
        fwd.pods.delete("web-a")
        info = await fwd.until(lambda i: i.pod_name == "web-b", "moved to web-b")
        assert info.status == Status.ACTIVE and info.status_reason == "reconnected to pod web-b"
        assert fwd.dialer.checks == []  # the dead pod was not probed
        assert await fwd.request() == "web-b:hello"
        await fwd.stop()
    run(test)


def test_a_pod_whose_drop_probe_failed_is_not_claimed_by_a_watch_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a drop, the probe of the pod in use fails: until the retry loop's own probe, a
    watch event about anything else must not make the forward claim that pod again."""
    monkeypatch.setattr(backoff, "DELAYS", (0.3,) * 5)  # the retry loop's first probe comes late

    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.dialer.unreachable.add("web-a")
        assert await fwd.request() == ""
        await fwd.until(lambda i: len(fwd.dialer.checks) == 1, "the drop's probe")
        # The API still says web-a is ready; another pod changes.
        fwd.pods.put(pod("web-z", ready=False))
        info = await fwd.stays(Status.RECONNECTING, 0.05)
        assert info.status_reason == "cannot reach pod web-a: dial tcp: i/o timeout; reconnecting"
        assert len(fwd.dialer.checks) == 1
        fwd.dialer.unreachable.clear()
        info = await fwd.status(Status.ACTIVE)  # by the retry loop's probe
        assert info.status_reason == "reconnected to pod web-a" and len(fwd.dialer.checks) == 2
        assert await fwd.request() == "web-a:hello"
        await fwd.stop()
    run(test)


# ---------------------------------------------------------------- the API server
@pytest.mark.parametrize("target", [WEB, Target("Service", "web"), Target("Pod", "web-a")])
def test_stale_caches_reconnect_for_every_kind(target: Target) -> None:
    """The API server not answering: ``reconnecting`` (bare Pods included), the port still
    listening; answering again: ``active`` on the same port."""
    async def test() -> None:
        fwd = Forward(target, 80 if target.kind == "Service" else 8080)
        fwd.caches["deployments"].objects["web"] = deployment()
        fwd.caches["services"].objects["web"] = service()
        fwd.pods.objects["web-a"] = pod("web-a")
        fwd.session.start()
        port = (await fwd.status(Status.ACTIVE)).local_port
        fwd.pods.go_stale("cluster not answering: no answer in 5s")
        info = await fwd.status(Status.RECONNECTING)
        assert info.status_reason == "cluster not answering: no answer in 5s"
        assert await fwd.request() == "web-a:hello"  # still listening: open connections try the pod
        fwd.pods.fresh()
        info = await fwd.status(Status.ACTIVE)
        assert info.status_reason == "reconnected to pod web-a" and info.local_port == port
        assert await fwd.request() == "web-a:hello"
        await fwd.stop()
    run(test)


def test_a_dial_told_the_pod_is_gone_lists_the_pods_again() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.dialer.connect_error = NotFound(404, 'pods "web-a" not found')
        await fwd.request()
        info = await fwd.status(Status.RECONNECTING)
        assert info.status_reason == "pod web-a not found; listing pods again"
        assert fwd.pods.resyncs == ["pod web-a not found; listing pods again"]
        fwd.dialer.connect_error = None
        fwd.pods.objects.pop("web-a")
        fwd.pods.objects["web-b"] = pod("web-b")
        fwd.pods.fresh()  # the LIST is back
        info = await fwd.status(Status.ACTIVE)
        assert info.pod_name == "web-b" and await fwd.request() == "web-b:hello"
        await fwd.stop()
    run(test)


def test_a_dial_to_a_pod_the_watch_already_said_is_gone_does_not_list_again() -> None:
    """Scaled to 0: every local connection dialled the gone pod, and each NotFound listed the namespace's
    pods again, ~30 LISTs a second, and every other forward of the namespace flapped to reconnecting."""
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.pods.delete("web-a")
        info = await fwd.status(Status.RECONNECTING)
        assert info.status_reason == "no pods match deploy/web"
        fwd.dialer.connect_error = NotFound(404, 'pods "web-a" not found')
        for _ in range(3):
            assert await fwd.request() == ""
        assert fwd.pods.resyncs == [] and not fwd.pods.stale
        assert fwd.session.info().status_reason == "no pods match deploy/web"
        await fwd.stop()
    run(test)


def test_forbidden_is_an_error_without_retry(fast_backoff: list[float]) -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.dialer.connect_error = ForbiddenError('pods "web-a" is forbidden: ')
        assert await fwd.request() == ""
        info = await fwd.status(Status.ERROR)
        assert info.status_reason == (
            'forbidden: User "alice" cannot create pods/portforward in namespace "shop" '
            '(context kind-test; the API server said: pods "web-a" is forbidden:)')
        assert not info.recoverable and info.attempts == 0
        assert await fwd.request(info.local_port) == "refused"
        await fwd.stays(Status.ERROR, 0.05)
        assert fast_backoff == [] and fwd.dialer.checks == []
        await fwd.stop()
    run(test)


def test_forbidden_names_the_verb_the_server_refused(fast_backoff: list[float]) -> None:
    # Credentials that may `create` but not `get`, on a GET path (the WebSocket or v4 after the
    # upgrade was refused by a proxy): the server's message names `get`, so must ours.
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.dialer.connect_error = ForbiddenError(
            'pods "web-a" is forbidden: User "alice" cannot get resource "pods/portforward" in API group ""')
        assert await fwd.request() == ""
        info = await fwd.status(Status.ERROR)
        assert info.status_reason.startswith('forbidden: User "alice" cannot get pods/portforward in namespace "shop"')
        await fwd.stop()
    run(test)


def test_forbidden_probe_stops_the_retries(fast_backoff: list[float]) -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.dialer.check_error = Unauthorized(401, "Unauthorized")
        fwd.dialer.drop_next = True
        await fwd.request()
        info = await fwd.status(Status.ERROR)
        assert info.status_reason == "Unauthorized (context kind-test); fix the kubeconfig's credentials, then Retry"
        assert not info.recoverable
        await fwd.stays(Status.ERROR, 0.05)
        assert fast_backoff == []
        await fwd.stop()
    run(test)


def test_back_from_not_answering_new_connections_take_a_fresh_tunnel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tunnel may be half-open after the API server stopped answering: once it answers
    again, the first new connection goes over a fresh tunnel and is answered."""
    monkeypatch.setattr(backoff, "DELAYS", (1.0,) * 5)  # reconnecting throughout, never error

    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        assert await fwd.request() == "web-a:hello"
        fwd.pods.go_stale("cluster not answering: no answer in 5s")
        await fwd.status(Status.RECONNECTING)
        fwd.dialer.half_open = True  # the outage left the tunnel dead without knowing it
        fwd.pods.fresh()
        info = await fwd.status(Status.ACTIVE)
        assert info.status_reason == "reconnected to pod web-a"
        assert await fwd.request() == "web-a:hello"
        assert fwd.info.status == Status.ACTIVE
        await fwd.stop()
    run(test)


def test_retries_while_not_answering_never_pick_a_pod_from_stale_caches() -> None:
    """The retry loop runs while the caches are stale: what they hold may be gone, so no
    attempt picks (or probes) a pod from them; the reason stays the cluster's."""
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        fwd.pods.go_stale("cluster not answering: no answer in 5s")
        await fwd.status(Status.RECONNECTING)
        info = await fwd.until(lambda i: i.attempts >= 3 or i.status == Status.ACTIVE, "three attempts")
        assert info.status != Status.ACTIVE, f"active from stale caches: {info.status_reason!r}"
        assert info.status_reason.endswith("cluster not answering: no answer in 5s"), info.status_reason
        assert fwd.dialer.checks == []
        fwd.pods.fresh()
        await fwd.status(Status.ACTIVE)
        assert await fwd.request() == "web-a:hello"
        await fwd.stop()
    run(test)


def test_pods_only_fetched_by_name_is_an_error_for_a_service(fast_backoff: list[float]) -> None:
    """LIST of pods forbidden (the cache holds only pods fetched by name, here web-a for
    another forward): a Service needs its pods listed, so its forward is an error naming
    the verb it lacks, for good, and never uses web-a (test_rbac_shapes.py on a real cluster)."""
    async def test() -> None:
        fwd = Forward(Target("Service", "web"), 80)
        fwd.caches["services"].objects["web"] = service()
        fwd.pods.objects["web-a"] = pod("web-a")
        fwd.pods.list_forbidden = ForbiddenError(
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
            'in the namespace "shop"')
        fwd.pods.degraded = f"cannot list pods in namespace shop ({fwd.pods.list_forbidden})"
        fwd.session.start()
        info = await fwd.status(Status.ERROR)
        assert 'cannot list resource "pods"' in info.status_reason, info.status_reason
        assert not info.recoverable and not info.usage_error
        assert await fwd.request(info.local_port) == "refused"
        await fwd.stays(Status.ERROR, 0.02)
        assert fwd.dialer.dials == [] and fwd.dialer.checks == [] and fast_backoff == []
        await fwd.stop()
    run(test)


def test_pods_list_forbidden_while_reconnecting_is_an_error(fast_backoff: list[float]) -> None:
    """The pods LIST turns forbidden (an RBAC change) while the forward waits for a ready pod,
    seen first by a retry: the forward is an error naming the verb it lacks, its port closed;
    the retry loop does not die leaving it 'reconnecting' for ever."""
    async def test() -> None:
        fwd = Forward(Target("Service", "web"), 80)
        fwd.caches["services"].objects["web"] = service()
        fwd.pods.objects["web-a"] = pod("web-a")
        fwd.session.start()
        await fwd.status(Status.ACTIVE)
        fwd.pods.put(pod("web-a", ready=False))
        await fwd.status(Status.RECONNECTING)
        fwd.pods.list_forbidden = ForbiddenError(
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
            'in the namespace "shop"')  # no watch event: the next retry finds out
        info = await fwd.status(Status.ERROR)
        assert 'cannot list resource "pods"' in info.status_reason, info.status_reason
        assert not info.recoverable
        assert await fwd.request(info.local_port) == "refused"
        await fwd.stop()
    run(test)


def test_access_review_denied_at_start() -> None:
    async def test() -> None:
        fwd = Forward(WEB)
        fwd.conn.allowed = False
        fwd.session.start()
        info = await fwd.status(Status.ERROR)
        assert info.status_reason.startswith('forbidden: User "alice" cannot create pods/portforward')
        assert not info.recoverable and fwd.caches.held() == 0
        await fwd.stop()
    run(test)


def test_unreachable_cluster_is_a_recoverable_error() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        port = fwd.info.local_port
        fwd.pods.fail(ClusterUnreachable("cluster unreachable: connect: network is unreachable"))
        info = await fwd.status(Status.ERROR)
        assert info.status_reason == "cluster unreachable: connect: network is unreachable"
        assert info.recoverable
        assert await fwd.request(port) == "refused"
        fwd.pods.fail(None)
        info = await fwd.status(Status.ACTIVE)
        assert info.status_reason == "recovered: pod web-a is ready" and info.local_port == port
        assert await fwd.request(port) == "web-a:hello"
        await fwd.stop()
    run(test)


def test_unreachable_at_start_is_a_recoverable_error() -> None:
    async def test() -> None:
        fwd = Forward(WEB)
        fwd.caches["deployments"].objects["web"] = deployment()
        fwd.pods.objects["web-a"] = pod("web-a")
        fwd.pods.error = ClusterUnreachable("cluster unreachable: no answer listing pods in 20s")
        fwd.session.start()
        info = await fwd.status(Status.ERROR)
        assert info.recoverable and info.status_reason.startswith("cluster unreachable")
        fwd.pods.fail(None)
        await fwd.status(Status.ACTIVE)
        assert await fwd.request() == "web-a:hello"
        await fwd.stop()
    run(test)


# ---------------------------------------------------------------- the port as typed
@pytest.mark.parametrize(("target", "remote", "reason"), [
    (Target("Service", "web"), 9999, "svc/web has no port 9999; its ports are 80/TCP (web)"),
    (WEB, "grpc", 'deploy/web has no port named "grpc"; its named ports are 8080/TCP (http)'),
    (Target("Pod", "web-a"), "grpc", 'pod web-a has no port named "grpc"; its named ports are 8080/TCP (http)'),
])
def test_port_missing_on_the_target_is_a_usage_error_never_retried(
        target: Target, remote: int | str, reason: str, fast_backoff: list[float]) -> None:
    async def test() -> None:
        fwd = Forward(target, remote)
        fwd.caches["deployments"].objects["web"] = deployment()
        fwd.caches["services"].objects["web"] = service()
        fwd.pods.objects["web-a"] = pod("web-a")
        fwd.session.start()
        info = await fwd.status(Status.ERROR)
        assert info.status_reason.startswith(reason), info.status_reason
        assert info.usage_error and not info.recoverable
        assert fwd.caches.held() == 0
        fwd.pods.put(pod("web-b"))
        await fwd.stays(Status.ERROR, 0.05)
        assert fast_backoff == [] and fwd.dialer.dials == [] and fwd.dialer.checks == []
        await fwd.stop()
    run(test)


def test_service_whose_pods_do_not_declare_its_named_target_port() -> None:
    """svc/web targets the port named "http", and its only ready pod declares no such name:
    a recoverable error saying which pod lacks what, active once a pod declares it."""
    async def test() -> None:
        fwd = Forward(Target("Service", "web"), 80)
        fwd.caches["services"].objects["web"] = service()
        fwd.pods.objects["web-a"] = pod("web-a", ports=((9000, "metrics"),))
        fwd.session.start()
        info = await fwd.status(Status.ERROR)
        assert info.status_reason.startswith('no pod of svc/web serves port 80: svc/web port 80 targets '
                                             'the named port "http", but '), info.status_reason
        assert "web-a" in info.status_reason and info.recoverable and not info.usage_error
        fwd.pods.put(pod("web-b"))
        info = await fwd.status(Status.ACTIVE)
        assert info.pod_name == "web-b" and info.container_port == 8080
        assert await fwd.request() == "web-b:hello"
        await fwd.stop()
    run(test)


def test_stop_cuts_everything_and_releases_the_watches() -> None:
    async def test() -> None:
        fwd = await web_forward(pod("web-a"))
        port = fwd.info.local_port
        await fwd.stop()
        assert fwd.info.status == Status.STOPPED
        assert fwd.dialer.closes == 1 and fwd.caches.held() == 0
        assert fwd.pods.subscribers == 0 and fwd.caches["deployments"].wanted == {"web": 0}
        assert await fwd.request(port) == "refused"
    run(test)
