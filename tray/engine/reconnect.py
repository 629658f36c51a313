"""What a forward does when its pod goes away: the one place of the reconnect rules.

A :class:`Reconnector` supervises one forward (:class:`Forward`, in practice
:class:`tray.engine.session.Session`).  It runs after every change of the
forward's caches (:class:`~tray.engine.podtracker.PodTracker`) and after a
connection dropped, and moves the forward between ``active``,
``reconnecting`` and ``error`` by the rules of :mod:`tray.engine.session`'s
docstring:

* :meth:`Reconnector.evaluate`: a watch event.  The pod in use deleted,
  terminating or unready → another ready pod for new connections
  (:meth:`Reconnector.switch_pod`), or ``reconnecting``; stale caches →
  ``reconnecting`` for every kind; a cache error → ``error`` (recoverable when
  the cluster is unreachable); the target gone → ``error`` for good.
* :meth:`Reconnector.retry_loop`: the design's backoff (1, 2, 4, 8, 16 s,
  then every 30 s; :mod:`tray.domain.backoff`), each attempt a resolution
  and a probe of the path; after :data:`~tray.domain.backoff.MAX_ATTEMPTS`
  ``error`` ("gave up after 5 attempts: …"), recoverable while the target
  exists.
* :meth:`Reconnector.on_drop`: a stream died → ``reconnecting`` while a probe
  checks the pod → ``active``, or the retry loop (a bare Pod: ``error``).
* :meth:`Reconnector.probe`: a 401/403 fails the forward at once, never retried.

A Service forward that spreads its connections (``balance`` round-robin or
sticky, :mod:`tray.domain.balance`) follows the same rules with its pod in
use as the rotation's anchor: kubectl's choice, shown as the forward's pod,
probed after a drop, and replaced by another ready endpoint when it goes.
So the forward is ``active`` while at least one endpoint is ready and
reconnects, as a pinned one does, when none is left; an endpoint that goes
away just leaves the rotation (:meth:`Reconnector.retain`: its tunnel
retires, its open connections finish or drop as they would).

Everything runs on the engine's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tray.domain import selection
from tray.domain.balance import PIN
from tray.domain.backoff import MAX_ATTEMPTS, Backoff
from tray.domain.status import Status
from tray.errors import ClusterUnreachable, ForbiddenError, TargetError, TenderError, Unauthorized, UsageError

if TYPE_CHECKING:
    from tray.domain.targets import Target
    from tray.engine.podtracker import PodTracker

log = logging.getLogger(__name__)

__all__ = ["Reconnector", "Forward", "PodDialer", "gave_up_reason", "DROP_GRACE"]

#: Seconds a dropped connection waits before its probe, so that the watch can
#: report a deleted pod first, if that is what happened.
DROP_GRACE = 0.2


class PodDialer(Protocol):
    """How a forward reaches its pod (:class:`tray.engine.dialer.Dialer`, or a test's fake)."""

    async def connect(self, pod: str, port: int) -> Any:
        """A link to pump one local connection through (``await link.pump(reader, writer, traffic)``
        adds the bytes it carries to ``traffic``, a :class:`~tray.engine.v4.Traffic`, and
        returns a result with ``error: str`` and ``dropped: bool``).  Raises
        :class:`~tray.errors.TenderError` (``NotFound``, ``ForbiddenError``,
        ``Unauthorized``, ...) when the pod cannot be reached."""
        ...

    async def check(self, pod: str, port: int) -> None:
        """Prove the path to ``pod``'s ``port``; raises like :meth:`connect` when it fails."""
        ...

    def connection_failed(self, *, dropped: bool, pod: str = "") -> None:
        """A connection to ``pod`` failed under its path: what shares the path must not be reused."""
        ...

    def retain(self, pods: Mapping[str, str | None]) -> None:
        """New connections go only to ``pods`` (names to uids): retire the paths to any other pod."""
        ...

    def pod_changed(self) -> None:
        """New connections go elsewhere: retire the tunnel and spares (open connections finish)."""
        ...

    def close(self) -> None:
        """Drop every tunnel and spare stream now (open connections are cut)."""
        ...


class Forward(Protocol):
    """What the reconnector reads and changes of its forward (a :class:`~tray.engine.session.Session`)."""

    #: What the forward forwards to.
    target: Target
    #: How it spreads connections (:mod:`tray.domain.balance`; never "auto").
    balance: str
    #: Its status and the reason shown with it.
    status: Status
    reason: str
    #: In ``error``: whether it comes back by itself.
    recoverable: bool
    #: A warning shown with an active forward (a port the pod does not declare).
    warning: str

    @property
    def listening(self) -> bool:
        """The local port is bound and accepting."""
        ...

    def set_status(self, status: Status, reason: str = "", *, pod_changed: bool = False) -> None:
        """Say ``status`` with ``reason`` (and tell the shells if anything changed)."""
        ...

    def changed(self) -> None:
        """Tell the shells the attempt count or the next retry changed."""
        ...

    def log_line(self, level: str, message: str) -> None:
        """Add a line ("info", "warning" or "error") to the forward's own log."""
        ...

    async def fail(self, reason: str, *, recoverable: bool = False, usage: bool = False) -> None:
        """Go to ``error``: recoverable keeps the watches and retries; otherwise released for good."""
        ...

    async def listen_again(self, pod: dict[str, Any]) -> None:
        """Bind the local port again after a recoverable error; raises ``UsageError`` when taken."""
        ...

    async def forbidden_reason(self, exc: ForbiddenError) -> str:
        """The 403's reason as the user reads it (who, what, where)."""
        ...

    def unauthorized_reason(self, exc: Unauthorized) -> str:
        """The 401's reason as the user reads it."""
        ...

    def track(self, task: asyncio.Task[None]) -> None:
        """Cancel ``task`` with the forward's connections when it stops."""
        ...


def gave_up_reason(why: str) -> str:
    """The reason of a forward in ``error`` after :data:`~tray.domain.backoff.MAX_ATTEMPTS` failed attempts."""
    return f"gave up after {MAX_ATTEMPTS} attempts: {why}"


class Reconnector:
    """The reconnect rules of one forward: supervision, backoff, retries, probes.

    ``forward`` is the session it moves between statuses, ``tracker`` its
    pods, ``dialer`` its path to them (only :meth:`PodDialer.check` and
    :meth:`PodDialer.pod_changed` are used here).  Create it on the loop.
    """

    def __init__(self, forward: Forward, tracker: PodTracker, dialer: PodDialer) -> None:
        self.forward = forward
        self.tracker = tracker
        self.dialer = dialer
        # Never exhausted: the forward itself says `error` after MAX_ATTEMPTS
        # and, while its target exists, goes on trying at the capped delay.
        self.backoff = Backoff(max_attempts=None)
        #: Epoch seconds of the next attempt while the retry loop waits; None otherwise.
        self.next_retry_at: float | None = None
        self._retry_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._probing = False
        self._stale_seen = False  # the caches were stale at the last evaluation
        self._cluster_wait = False  # reconnecting because of the cluster, not the pod
        self._logged_rotation: tuple[str, ...] = ()  # the rotation the forward's log last named

    @property
    def retrying(self) -> bool:
        """The retry loop is running (between attempts, or probing)."""
        return self._retry_task is not None

    def wake(self) -> None:
        """Have :meth:`supervise` evaluate again (a cache changed, or the forward failed).  Returns at once."""
        self._wake.set()

    def reset(self) -> None:
        """A fresh start (or Retry): no failed attempts, no memory of stale caches."""
        self.backoff.reset()

    @property
    def balanced(self) -> bool:
        """The forward spreads its connections over several pods (not ``pin``)."""
        return self.forward.balance != PIN

    def retain(self) -> None:
        """Keep the paths to the rotation's pods and the pod in use; retire the others (a balanced forward).

        A change of the rotation is a line in the forward's log ("pods in rotation: a, b, c"),
        from the first time it holds more than one pod (one pod is the "using pod" line).
        """
        t = self.tracker
        pods: dict[str, str | None] = {p["metadata"]["name"]: p["metadata"].get("uid") for p, _ in t.endpoints()}
        if t.rotation and t.rotation != self._logged_rotation and (len(t.rotation) > 1 or self._logged_rotation):
            self._logged_rotation = t.rotation
            more = f" and {len(t.rotation) - 10} more" if len(t.rotation) > 10 else ""
            self.forward.log_line("info", f"pods in rotation: {', '.join(t.rotation[:10])}{more}")
        if t.pod_name:
            pods[t.pod_name] = t.pod_uid
        self.dialer.retain(pods)

    # ----------------------------------------------------------- supervision
    def supervised(self) -> bool:
        """The forward is watched for changes: active, reconnecting, or a recoverable error."""
        f = self.forward
        return f.status in (Status.ACTIVE, Status.RECONNECTING) or (
            f.status == Status.ERROR and f.recoverable)

    async def supervise(self) -> None:
        """Evaluate after every wake-up until the forward is no longer supervised (blocks that long)."""
        while self.supervised():
            await self._wake.wait()
            self._wake.clear()
            await self.evaluate()

    async def evaluate(self) -> None:
        """React to a change in the watched objects (runs after every event)."""
        if not self.supervised():
            return
        f, t = self.forward, self.tracker
        err = t.cache_error()
        if err is not None:
            if isinstance(err, ClusterUnreachable):
                # The design's "cluster disconnected": error, but the watch goes
                # on and the forward comes back when the API server does.
                if not (f.status == Status.ERROR and f.reason == str(err)):
                    self.cancel_retry()
                    await f.fail(str(err), recoverable=True)
            else:
                await f.fail(str(err))
            return
        stale = t.stale_reason()
        if stale:
            # The API server is not answering (or the pod in use was not
            # found and the pods are being listed again): no connection can be
            # trusted to work, so the status must not say active.
            self._stale_seen = True
            if f.status == Status.ACTIVE:
                self.enter_reconnecting(stale, cluster=True)
            elif f.status == Status.RECONNECTING and f.reason != stale:
                f.set_status(Status.RECONNECTING, stale)
            return
        if self._stale_seen:
            # Back from not answering: the tunnel and spares may be half-open.
            self._stale_seen = False
            self.dialer.pod_changed()
        assert t.pods is not None
        if self.balanced:
            self.retain()  # pods that left the rotation take no new connection
        if t.target.kind == "Pod":  # the tracker's: a relay forward follows its relay pod
            name = t.target.name
            pod = t.bare_pod()
            if pod is None or pod["metadata"].get("uid") != t.pod_uid:
                await f.fail(f"pod {name} was deleted")
            elif selection.is_pod_terminating(pod):
                await f.fail(f"pod {name} is terminating")
            elif selection.is_pod_finished(pod):
                await f.fail(f"pod {name} has stopped ({pod['status']['phase']})")
            elif f.status == Status.ERROR or (f.status == Status.RECONNECTING and self._cluster_wait):
                await self.switch_pod()  # the cluster is back and so is the pod
            return
        if t.target_deleted():
            await f.fail(f"{t.target} was deleted")
            return
        if f.status == Status.ACTIVE and t.in_use_and_ready():
            degraded = t.degraded()
            if degraded and not f.reason:
                f.set_status(Status.ACTIVE, degraded)  # said once: the watch turned out forbidden
            return
        await self.switch_pod()

    async def switch_pod(self, *, probed: bool = False) -> None:
        """Move new connections to another ready pod, or go reconnecting.

        A pod whose path just failed a probe (the tracker's
        ``unreachable_uid``) still looks ready in the API; only a probe
        (``probed``) brings it back, so a watch event about anything else
        cannot make the forward claim it.
        """
        f, t = self.forward, self.tracker
        try:
            pod, port = t.resolve()
        except TargetError as exc:
            if f.status == Status.ERROR:
                if f.reason.endswith(str(exc)):
                    return
                f.set_status(Status.ERROR, gave_up_reason(str(exc)))
            else:
                self.enter_reconnecting(str(exc))
            return
        if not probed and t.unreachable_uid and pod["metadata"].get("uid") == t.unreachable_uid:
            return  # the retry loop's probe decides about this pod
        t.unreachable_uid = None
        was = f.status
        if was == Status.ERROR and not f.listening:
            try:
                # The port its clients know (or, never bound yet, kubectl's rule).
                await f.listen_again(pod)
            except UsageError as exc:
                await f.fail(f"cannot recover: {exc}")
                return
        changed = t.use(pod, port)
        name = t.pod_name
        self.backoff.reset()
        self.cancel_retry()
        f.recoverable = False
        self._cluster_wait = False
        if changed:
            if self.balanced:
                self.retain()  # the other pods of the rotation keep their paths
            else:
                self.dialer.pod_changed()  # spares and the tunnel lead to the old pod
            f.warning = t.port_warning(pod, port)
        if was == Status.ERROR:
            reason = f"recovered: pod {name} is ready"
        elif was == Status.RECONNECTING:
            reason = f"reconnected to pod {name}"
        else:
            reason = t.degraded()
        if changed:
            log.info("forward %s now uses pod %s", f.target, name)
        f.set_status(Status.ACTIVE, reason, pod_changed=changed)

    # ----------------------------------------------------------- retries
    def cancel_retry(self) -> None:
        """Stop the retry loop (unless it is the caller); returns at once."""
        if self._retry_task is not None and self._retry_task is not asyncio.current_task():
            self._retry_task.cancel()
        self._retry_task = None
        self.next_retry_at = None

    async def stop(self) -> None:
        """Cancel the retry loop and wait until it is gone (never raises; returns within a loop turn or two)."""
        # The backoff loop is a task of its own, not a child of the session's
        # task: without this, stopping (or retrying) a reconnecting forward
        # left it running, to wake later on a torn-down session (found by
        # test_faults: "Task was destroyed but it is pending").
        retry, self._retry_task = self._retry_task, None
        if retry is not None and retry is not asyncio.current_task():
            retry.cancel()
            await asyncio.wait([retry])

    def enter_reconnecting(self, why: str, *, cluster: bool = False) -> None:
        """Go ``reconnecting`` (saying ``why``) and start the backoff.  A bare Pod
        does not move to another pod, so it only waits here for the cluster (``cluster``)."""
        if not (self.forward.target.reconnects or cluster):
            return
        self._cluster_wait = cluster
        self.forward.set_status(Status.RECONNECTING, why)
        self._start_retry()

    def _start_retry(self) -> None:
        if self._retry_task is None:
            self._retry_task = asyncio.get_running_loop().create_task(self.retry_loop())

    async def retry_loop(self) -> None:
        """The design's backoff: 1, 2, 4, 8, 16 s, then every 30 s.

        After :data:`~tray.domain.backoff.MAX_ATTEMPTS` failed attempts the forward
        is ``error``.  While its target exists it stays watched and keeps
        trying at the capped delay (and at once when the watch shows a ready
        pod); a bare Pod, or a target that is gone, stays ``error``.  Runs
        until a probe works or the forward fails for good (or is cancelled).
        """
        f, t = self.forward, self.tracker
        while True:
            if self.backoff.attempts >= MAX_ATTEMPTS and f.status != Status.ERROR:
                why = gave_up_reason(f.reason)
                if not t.can_recover():
                    self._retry_task = None
                    await f.fail(why)
                    return
                await f.fail(why, recoverable=True)
            delay = self.backoff.next_delay()
            assert delay is not None  # never exhausted
            self.next_retry_at = time.time() + delay
            f.changed()  # attempt count and next retry changed
            await asyncio.sleep(delay)
            self.next_retry_at = None
            f.log_line("info", f"reconnect attempt {self.backoff.attempts}")
            try:
                pod, port = t.resolve()
            except TargetError as exc:
                if f.status == Status.ERROR:
                    if not t.can_recover():
                        self._retry_task = None
                        await f.fail(t.final_reason(f.reason))
                        return
                    f.set_status(Status.ERROR, gave_up_reason(str(exc)))
                else:
                    f.set_status(Status.RECONNECTING, str(exc))
                continue
            except TenderError as exc:  # the pods may no longer be listed (ForbiddenError): for good
                self._retry_task = None
                await f.fail(str(exc))
                return
            problem = await self.probe(pod["metadata"]["name"], port)
            if f.status == Status.ERROR and not f.recoverable:
                return  # the probe was refused (401/403): probe() failed the forward
            if problem:
                t.unreachable_uid = pod["metadata"].get("uid")
                if f.status == Status.ERROR:
                    f.set_status(Status.ERROR, gave_up_reason(problem))
                else:
                    f.set_status(Status.RECONNECTING, problem)
            else:
                self._retry_task = None
                t.pod_name = ""  # force the switch below to report the pod
                await self.switch_pod(probed=True)
                return

    async def probe(self, pod: str, port: int) -> str:
        """Prove the path to ``pod``'s container ``port`` (a fresh tunnel, or a v4 stream).

        Returns '' when it works, else why not.  Credentials refused (401,
        403) fail the forward at once (no retry loop) and return the reason.
        Blocks as long as the dialer's check (its own timeouts).
        """
        try:
            await self.dialer.check(pod, port)
        except (ForbiddenError, Unauthorized) as exc:
            # Refused credentials are not a reason to keep retrying (the
            # design's "no retry loop" for a 403; a 401 is the same).
            f = self.forward
            reason = (await f.forbidden_reason(exc) if isinstance(exc, ForbiddenError)
                      else f.unauthorized_reason(exc))
            await f.fail(reason)
            return reason
        except TenderError as exc:
            log.info("probe of %s/%s failed: %s", pod, port, exc)
            return f"cannot reach pod {pod}: {exc}"
        return ""

    def on_drop(self, why: str) -> None:
        """A stream died or could not open under the pod in use: say ``reconnecting`` and check the path.

        Returns at once; the check runs as a task of the forward's
        connections (:data:`DROP_GRACE` for the watch to speak first, then a probe).
        """
        f, t = self.forward, self.tracker
        if f.status != Status.ACTIVE or self._probing:
            return
        self._probing = True
        f.set_status(Status.RECONNECTING, f"{why}; reconnecting")

        async def check() -> None:
            try:
                # Let the watch report a deleted pod first, if that is what happened.
                await asyncio.sleep(DROP_GRACE)
                if f.status != Status.RECONNECTING:
                    return
                problem = await self.probe(t.pod_name, t.container_port)
                if f.status == Status.ERROR:
                    return  # refused (401/403): probe() failed the forward
                if not problem:
                    t.unreachable_uid = None
                    f.set_status(Status.ACTIVE, f"reconnected to pod {t.pod_name}")
                elif t.target.reconnects:
                    t.unreachable_uid = t.pod_uid
                    self._start_retry()
                else:
                    await f.fail(f"pod {t.pod_name} is not reachable")
            finally:
                self._probing = False

        f.track(asyncio.get_running_loop().create_task(check()))
