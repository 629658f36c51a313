"""The whole tray menu as a pure function of the app's state.

From the top: a line counting the forwards by status (also the tooltip);
a row per profile that could not start (in error, with its reason and
Retry); a row per forward -- under a heading per cluster when they are in
several clusters, in a submenu per cluster when there are many; then
Profiles, Clusters, the settings, "Open dashboard…" (when the engine serves
one) and Quit.

``build_menu(MenuState) -> Item`` has no side effects and reads no clock, so
the tests check labels, grouping and which actions exist per status on
plain data.  The controller builds a :class:`MenuState` snapshot and hands
the result to the view.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tray.domain.status import Status
from tray.kube.kubeconfig import ClusterInfo
from tray.profiles import Profile
from tray.ui import labels
from tray.ui.icon import IconState, state_of
from tray.ui.menu_clusters import clusters_menu
from tray.ui.menu_profiles import profile_sessions, profiles_menu
from tray.ui.model import SEPARATOR, Action, ActionKind, Item, note, root, submenu
from tray.ui.resources import ClusterTree

#: More forwards than this go into one submenu per cluster instead of the top level.
MAX_TOP_LEVEL_FORWARDS = 12


@dataclass(frozen=True)
class MenuState:
    sessions: Sequence[labels.SessionLike] = ()
    profiles: Sequence[Profile] = ()
    profiles_error: str | None = None
    clusters: Sequence[ClusterInfo] = ()
    kubeconfig_error: str | None = None
    trees: Mapping[str, ClusterTree] = field(default_factory=dict)
    notifications: bool = True
    start_at_login: bool = False
    privileged_below: int = 0
    #: Profiles that could not start, with why (profile name -> reason), until they start or stop.
    profile_failures: Mapping[str, str] = field(default_factory=dict)
    #: Whether the engine serves a dashboard (the tray's control API): "Open dashboard…" is offered.
    dashboard: bool = False
    #: The cluster proxies running (context -> where it listens, "127.0.0.1:1080").
    proxies: Mapping[str, str] = field(default_factory=dict)
    #: The namespace groups running ((context, namespace) -> their member forwards now).
    groups: Mapping[tuple[str, str], int] = field(default_factory=dict)
    #: The profiles whose namespace group runs (with members or not yet).
    grouped_profiles: frozenset[str] = frozenset()

    @property
    def current_context(self) -> str | None:
        return next((c.id for c in self.clusters if c.current), None)


def build_menu(state: MenuState) -> Item:
    """The whole menu for ``state`` (pure: the same state gives an equal menu)."""
    sessions = list(state.sessions)
    current = state.current_context
    saved = {id(s) for p in state.profiles for s in profile_sessions(p, sessions, current)}
    return root([
        note(status_text(state)),
        SEPARATOR,
        *_failures(state),
        *_forwards(sessions, saved),
        SEPARATOR,
        profiles_menu(state.profiles, sessions, current_context=current, error=state.profiles_error,
                      failures=state.profile_failures, grouped=state.grouped_profiles),
        clusters_menu(state.clusters, state.trees, sessions, kubeconfig_error=state.kubeconfig_error,
                      privileged_below=state.privileged_below, proxies=state.proxies, groups=state.groups),
        SEPARATOR,
        Item("Start at login", Action(ActionKind.TOGGLE_AUTOSTART), checked=state.start_at_login),
        Item("Notifications", Action(ActionKind.TOGGLE_NOTIFICATIONS), checked=state.notifications),
        SEPARATOR,
        *([Item(f"Open dashboard{labels.ELLIPSIS}", Action(ActionKind.OPEN_DASHBOARD))] if state.dashboard else []),
        Item("Quit", Action(ActionKind.QUIT)),
    ])


def status_text(state: MenuState) -> str:
    """The menu's first line, also the tooltip's: every forward and failed profile counted."""
    return labels.status_line((s.status for s in state.sessions), len(state.profile_failures))


def icon_of(state: MenuState) -> tuple[IconState, int]:
    """(icon state, badge count) for ``state``: a profile that could not start counts as a forward in error."""
    statuses = [s.status for s in state.sessions] + [Status.ERROR] * len(state.profile_failures)
    return state_of(statuses)


def _failures(state: MenuState) -> list[Item]:
    """One row per profile that could not start: in error, its reason, Retry."""
    items = []
    profiles = {p.name: p for p in state.profiles}
    for name, reason in state.profile_failures.items():
        p = profiles.get(name)
        if p is None:  # no longer in the file: named all the same
            what = "profile"
        else:
            where = f"{p.context or state.current_context or 'current context'}/{p.namespace or 'default namespace'}"
            what = f"{p.target}  {', '.join(labels.spec_ports_text(spec) for spec in p.ports)}  {where}"
        children = [
            *(note(line) for line in labels.reason_lines(reason)),
            SEPARATOR,
            Item("Retry", Action(ActionKind.PROFILE_START, (name,))),
            Item(f"Edit profiles{labels.ELLIPSIS}", Action(ActionKind.EDIT_PROFILES)),
        ]
        items.append(submenu(f"{name}  {what}  {Status.ERROR}", children))
    return items


def _forwards(sessions: list[labels.SessionLike], saved: set[int]) -> list[Item]:
    """The forwards' rows; under a heading per cluster when they are in several clusters.

    Up to :data:`MAX_TOP_LEVEL_FORWARDS` rows stay at the top level (one
    heading -- a disabled line -- per cluster); more go into one submenu
    per cluster.  Headings and submenus count their forwards by status
    (:func:`labels.group_counts`).
    """
    by_cluster: dict[str, list[labels.SessionLike]] = {}
    for s in sessions:
        by_cluster.setdefault(s.cluster_id, []).append(s)
    if len(by_cluster) <= 1 and len(sessions) <= MAX_TOP_LEVEL_FORWARDS:
        return [session_item(s, id(s) in saved) for s in sessions]
    if len(sessions) <= MAX_TOP_LEVEL_FORWARDS:
        items: list[Item] = []
        for cluster, group in by_cluster.items():
            items += [SEPARATOR, note(cluster_heading(cluster, group)),
                      *(session_item(s, id(s) in saved, cluster=False) for s in group)]
        return items
    return [submenu(cluster_heading(cluster, group), [session_item(s, id(s) in saved, cluster=False) for s in group])
            for cluster, group in by_cluster.items()]


def cluster_heading(cluster: str, group: Sequence[labels.SessionLike]) -> str:
    """'tender-a: 2 of 3 active, 1 error'."""
    return f"{cluster}: {labels.group_counts(s.status for s in group)}"


def session_item(s: labels.SessionLike, saved: bool = False, cluster: bool = True) -> Item:
    """One forward's submenu: what it is doing and what can be done to it.

    What it is doing: the reason of an error, the pod (a relay forward's
    relay pod and where it connects, in any status), the profile, and once
    a connection has been made the counters ("2 connections open · 15
    total", "↓ 1.2 MB  ↑ 30 kB") and the last failed connection.

    ``saved``: a profile already describes it (no "Save as profile…");
    ``cluster`` False: the row is under its cluster's heading, so its label
    names only the namespace.
    """
    items: list[Item] = []
    running = s.status in labels.RUNNING
    if s.status in (Status.ERROR, Status.RECONNECTING) and s.status_reason:
        items.extend(note(line) for line in labels.reason_lines(s.status_reason))
    pods = tuple(getattr(s, "pods", ()) or ())
    if labels.relay_text(s):  # Tender's own pod in the namespace, whatever the status: the user may look for it
        items.append(note(labels.relay_text(s)))
    elif len(pods) > 1 and s.status == Status.ACTIVE:  # a Service's connections spread over its ready pods
        shown = ", ".join(pods[:3]) + (f" and {len(pods) - 3} more" if len(pods) > 3 else "")
        items.append(note(f"Pods {shown} ({getattr(s, 'balance', 'round-robin')})"))
    elif s.pod_name and s.status == Status.ACTIVE:
        items.append(note(f"Pod {s.pod_name}"))
    if s.profile:
        items.append(note(f"Profile {s.profile}"))
    if s.connections_total:
        items.append(note(labels.connections_text(s)))
        items.append(note(labels.traffic_text(s)))
    if s.last_connection_error:
        items.append(note(labels.last_error_text(s)))
    if items:
        items.append(SEPARATOR)
    if running and s.local_port and labels.session_is_http(s):
        items.append(Item("Open in browser", Action(ActionKind.OPEN_URL, (labels.browser_url(s),))))
    if running and s.local_port:
        items.append(Item("Copy address", Action(ActionKind.COPY, (labels.local_address(s),))))
    if running:
        items.append(Item("Stop", Action(ActionKind.STOP, (s.id,))))
    if s.status == Status.ERROR:
        items.append(Item("Retry", Action(ActionKind.RETRY, (s.id,))))
        items.append(Item("Remove", Action(ActionKind.REMOVE, (s.id,))))
    if not s.profile and not saved:
        items.append(Item(f"Save as profile{labels.ELLIPSIS}", Action(ActionKind.SAVE_PROFILE, (s.id,))))
    return submenu(labels.session_label(s, cluster), items)
