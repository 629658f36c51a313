"""A namespace's every Service, followed: :class:`NamespaceGroup`.

A group watches the Services of one namespace (the engine's shared watch,
:class:`tray.kube.watches.WatchRegistry`) and keeps one member forward per
Service port the plan makes (:func:`tray.domain.servicegroup.plan`): a
normal forward started through the manager, so it shows in ``list()``, the
control API and the tray, tagged with the group's id
(:attr:`~tray.engine.session.SessionInfo.group`).  Each member listens on its
Service's own loopback address (:func:`tray.domain.addresses.auto_address`)
on the Service's port, and forwards to that Service port (the forward
translates it to the container port, kubectl's rule).

When the Services change, the group starts the members of new Services (and
new ports) and stops those of deleted ones; what it skips (ExternalName,
no ports, no selector, UDP) is logged once per Service.  While the watch is
stale or failing (the API server not answering, RBAC refusing) the members
are left as they are: nothing is stopped on data that may be out of date.

A member that cannot listen because its port is privileged (below
``net.ipv4.ip_unprivileged_port_start`` and the engine is not root) goes to
``error`` like any forward that cannot listen; its reason then says what to
do (:func:`tray.domain.servicegroup.privileged_hint`).  The group does not
move it to another port: its address and port are what a hosts-file line
and the user's config name.

Everything here runs on the engine loop; the manager owns the groups
(``ForwardManager.start_group``, ``stop``).
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tray.domain.servicegroup import Member, NamespaceSpec, diff, plan, privileged_hint
from tray.domain.spec import ForwardSpec
from tray.domain.status import Status
from tray.domain.targets import KIND_PLURAL, Target
from tray.errors import TenderError, UsageError

if TYPE_CHECKING:
    from tray.engine.session import SessionInfo
    from tray.kube.conn import ClusterConn

log = logging.getLogger(__name__)

__all__ = ["NamespaceGroup", "GroupInfo", "unprivileged_port_start"]

_SYSCTL = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


def unprivileged_port_start() -> int:
    """The lowest port a process without privileges may listen on: 0 for root, else Linux's
    ``net.ipv4.ip_unprivileged_port_start`` (1024 where it cannot be read, as on macOS).  Reads one small file."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return 0
    try:
        with open(_SYSCTL) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


@dataclass(frozen=True)
class GroupInfo:
    """A snapshot of a group, as the shells show it.

    ``status``: ``starting`` until the first list of Services is in,
    ``active`` while it follows them, ``error`` while the watch fails
    (``reason`` says why; the members are kept).  ``members``: the member
    forwards' ids, by Service then port.  ``skipped``: one line per Service
    (or port) left out, and why.  ``balance``: the members' (``auto``: a
    Service's round robin).
    """

    id: str
    cluster_id: str
    namespace: str
    selector: str
    profile: str | None
    status: str
    reason: str
    members: tuple[str, ...]
    skipped: tuple[str, ...]
    balance: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data; ``id`` is named ``group_id``."""
        return {"group_id": self.id, "cluster_id": self.cluster_id, "namespace": self.namespace,
                "selector": self.selector, "profile": self.profile, "status": self.status,
                "reason": self.reason, "members": list(self.members), "skipped": list(self.skipped),
                "balance": self.balance}


class NamespaceGroup:
    """The member forwards of one namespace's Services, kept in step with its watch.

    ``manager``: the :class:`~tray.engine.manager.ForwardManager` that owns
    it (members start and stop through it); ``conn``: the context's cluster;
    ``watches``: the engine's shared watches; ``spec``: what was asked for;
    ``namespace``: ``spec.namespace`` or the context's default;
    ``selector``: the parsed label selector
    (:func:`~tray.domain.servicegroup.parse_label_selector`).  Making one
    does nothing; :meth:`start` and :meth:`stop` run on the engine loop.
    """

    def __init__(self, *, manager: Any, conn: ClusterConn, watches: Any, spec: NamespaceSpec,
                 namespace: str, selector: dict[str, Any]) -> None:
        self.id = str(uuid.uuid4())
        self.manager = manager
        self.conn = conn
        self.watches = watches
        self.spec = spec
        self.namespace = namespace
        self.selector = selector
        self.status = Status.STARTING
        self.reason = ""
        #: Member key (Service, port) -> the member forward's id.
        self.members: dict[tuple[str, int], str] = {}
        self.skipped: list[str] = []
        self._hints: dict[str, str] = {}  # member id -> what to do if it cannot listen
        self._logged: set[str] = set()
        self._cache: Any = None
        self._closed = False
        self._unprivileged_start = unprivileged_port_start()

    # ------------------------------------------------------------ life
    async def start(self) -> None:
        """Load the context's credentials (an exec plugin may run), then acquire the namespace's Services
        watch and follow it; does not wait for the LIST.  Credentials that cannot be loaded are the
        group's ``error``, never raised."""
        try:
            await self.conn.ensure_auth()
        except TenderError as exc:
            self._set(Status.ERROR, str(exc))
            return
        if self._closed:
            return
        prefix, plural = KIND_PLURAL["Service"]
        self._cache = self.watches.acquire(self.conn.id, self.conn.api, prefix, self.namespace, plural)
        self._cache.subscribe(self._on_change)
        log.info("following the Services of %s/%s%s", self.conn.id, self.namespace,
                 f" matching {self.spec.selector!r}" if self.spec.selector else "")
        self._apply()

    async def stop(self) -> None:
        """Stop following, and stop every member as ``ForwardManager.stop`` does; returns when they are stopped."""
        self._closed = True
        if self._cache is not None:
            self._cache.unsubscribe(self._on_change)
            cache, self._cache = self._cache, None
            await self.watches.release(self.conn.id, cache)
        ids = list(self.members.values())
        self.members.clear()
        for sid in ids:
            await self.manager._stop_member(sid)
        self.status = Status.STOPPED

    # ------------------------------------------------------------ following
    def _on_change(self, cache: Any) -> None:
        self._apply()

    def _set(self, status: Status, reason: str) -> None:
        if (status, reason) != (self.status, self.reason):
            self.status, self.reason = status, reason
            if status == Status.ERROR:
                log.warning("Services of %s/%s: %s", self.conn.id, self.namespace, reason)

    def _apply(self) -> None:
        cache = self._cache
        if self._closed or cache is None:
            return
        if cache.error is not None or cache.list_forbidden is not None:
            # Where only GETs of named Services are allowed the cache holds just those: a group
            # needs to list them, and says so (the members are kept: the error may pass).
            self._set(Status.ERROR, str(cache.error or cache.list_forbidden))
            return
        if not cache.synced.is_set() or cache.stale:
            return  # nothing is stopped on data that may be out of date
        wanted, skipped = plan(cache.objects.values(), context=self.conn.id, namespace=self.namespace,
                               selector=self.selector)
        self.skipped = [str(s) for s in skipped]
        for line in self.skipped:
            if line not in self._logged:
                self._logged.add(line)
                log.info("%s/%s: %s", self.conn.id, self.namespace, line)
        start, stop = diff(set(self.members), wanted)
        for key in stop:
            sid = self.members.pop(key)
            self._hints.pop(sid, None)
            log.info("%s/%s: svc/%s port %d is gone; stopping its forward", self.conn.id, self.namespace, *key)
            try:
                self.manager.stop(sid)  # on the engine thread: scheduled
            except UsageError:
                pass  # the user stopped that member already
        for member in start:
            self._start_member(member)
        self._set(Status.ACTIVE, "" if wanted or self.members else "no Services to forward")

    def _start_member(self, member: Member) -> None:
        spec = ForwardSpec(self.conn.id, self.namespace, Target("Service", member.service), member.port,
                           local_port=member.port, address=member.address, profile=self.spec.profile,
                           balance=self.spec.balance)
        try:
            sid = self.manager._start_member(spec, self)
        except TenderError as exc:  # a local port another forward of the engine holds there
            line = f"svc/{member.service} port {member.port}: not forwarded ({exc})"
            if line not in self._logged:
                self._logged.add(line)
                log.warning("%s/%s: %s", self.conn.id, self.namespace, line)
            return
        self.members[member.key] = sid
        hint = privileged_hint(member.port, self._unprivileged_start)
        if hint:
            self._hints[sid] = hint

    # ------------------------------------------------------------ views
    def annotate(self, info: SessionInfo) -> SessionInfo:
        """A member's snapshot with the group's id, and what to do when its privileged port cannot be bound."""
        hint = self._hints.get(info.id)
        if hint and info.status == Status.ERROR and info.status_reason.startswith("cannot listen on"):
            return replace(info, group=self.id, status_reason=f"{info.status_reason}: {hint}")
        return replace(info, group=self.id)

    def info(self) -> GroupInfo:
        """A snapshot of the group; returns at once."""
        return GroupInfo(self.id, self.conn.id, self.namespace, self.spec.selector, self.spec.profile,
                         str(self.status), self.reason,
                         tuple(self.members[k] for k in sorted(self.members)), tuple(self.skipped),
                         self.spec.balance)
