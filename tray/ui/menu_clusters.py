"""The Clusters submenu: context → namespace → resource → port (pure).

Inside a namespace the kinds are section headings (a disabled line per kind,
separators between them), not a submenu per kind.  The system namespaces
(:func:`tray.ui.resources.is_system_namespace`) are folded into a "System
namespaces" submenu at the end of the context, where each namespace is a
heading with its resources under it; one that holds a forward stays in the
main list.  "Search…" asks for text and shows the resources whose name
contains it, across the context's namespaces, in a "Results for “text”"
submenu at the top of the context.

A namespace whose k9s or kftray annotations suggest forwards
(:mod:`tray.domain.annotations`) lists them first, under "Suggested by
annotations": one entry per port, which starts that forward as suggested.

Each namespace starts with "Forward every Service (own addresses)": every
Service of it on its real ports, each on a loopback address of its own,
followed as Services come and go (a namespace group); while that runs,
"Stop forwarding every Service" instead.

Each context ends with its cluster proxy's check item ("Cluster proxy
(SOCKS5/HTTP)", or "Cluster proxy on 127.0.0.1:1080" while it runs; a click
starts or stops it), Refresh and "Stop all in this cluster".

Every path is at most :data:`MAX_DEPTH` submenus deep from the tray menu:
Clusters → context → namespace (or System namespaces, or the results) →
resource → its port entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tray.domain.annotations import Suggestion
from tray.domain.portspec import PortSpec
from tray.domain.status import Status
from tray.engine.browse import SUGGESTION_ORDER
from tray.kube.kubeconfig import ClusterInfo
from tray.ui import labels
from tray.ui.model import SEPARATOR, Action, ActionKind, Item, note, submenu, tidy
from tray.ui.resources import (KIND_SECTIONS, ClusterTree, Failed, Hit, LoadState, Loading, Ready, Resource,
                               Search, is_system_namespace)

#: Longer lists are cut (a menu of 3,000 pods helps nobody; `tender forward` does).
MAX_RESOURCES = 100
#: Submenus opened from the tray menu to reach the deepest item.
MAX_DEPTH = 4
LOADING = f"Loading{labels.ELLIPSIS}"
SEARCHING = f"Searching{labels.ELLIPSIS}"
SEARCH = f"Search{labels.ELLIPSIS}"
SYSTEM = "System namespaces"
PROXY_OFF = "Cluster proxy (SOCKS5/HTTP)"
SUGGESTED = "Suggested by annotations"
GROUP_START = "Forward every Service (own addresses)"
GROUP_STOP = "Stop forwarding every Service"
KIND_TITLES = dict(KIND_SECTIONS)


def clusters_menu(
    clusters: Sequence[ClusterInfo],
    trees: Mapping[str, ClusterTree],
    sessions: Sequence[labels.SessionLike],
    *,
    kubeconfig_error: str | None = None,
    privileged_below: int = 0,
    proxies: Mapping[str, str] | None = None,
    groups: Mapping[tuple[str, str], int] | None = None,
) -> Item:
    """The Clusters submenu: a submenu per context of ``clusters`` (``trees``: what was loaded of each;
    ``sessions``: the forwards; ``proxies``: context -> where its cluster proxy listens; ``groups``:
    (context, namespace) -> the member forwards of the namespace group running there)."""
    items: list[Item] = []
    if kubeconfig_error:
        items.append(note(f"⚠ {labels.shorten(kubeconfig_error, 100)}"))
    elif not clusters:
        items.append(note("No contexts in the kubeconfig"))
    for c in clusters:
        items.append(_cluster(c, trees.get(c.id, ClusterTree()), sessions, privileged_below,
                              (proxies or {}).get(c.id), groups or {}))
    return submenu("Clusters", items)


def results_label(text: str) -> str:
    """'Results for “web”'."""
    return f"Results for “{labels.shorten(text, 40)}”"


class _Context:
    """What every item of one context needs: its name, the forwards, the local ports in use."""

    def __init__(self, cluster: str, sessions: Sequence[labels.SessionLike], privileged_below: int,
                 groups: Mapping[tuple[str, str], int] | None = None) -> None:
        self.cluster = cluster
        #: The namespaces of this context forwarded as a whole -> their member forwards.
        self.groups = {ns: n for (c, ns), n in (groups or {}).items() if c == cluster}
        self.mine = [s for s in sessions if s.cluster_id == cluster]
        self.used = {s.local_port for s in sessions if s.status in labels.RUNNING and s.local_port}
        self.privileged_below = privileged_below


def proxy_item(context: str, listen: str | None) -> Item:
    """The context's cluster proxy as a check item: checked, with its address, while it runs."""
    label = f"Cluster proxy on {listen}" if listen else PROXY_OFF
    return Item(label, Action(ActionKind.TOGGLE_PROXY, (context,)), checked=bool(listen))


def _cluster(c: ClusterInfo, tree: ClusterTree, sessions: Sequence[labels.SessionLike], privileged_below: int,
             proxy: str | None = None, groups: Mapping[tuple[str, str], int] | None = None) -> Item:
    ctx = _Context(c.id, sessions, privileged_below, groups)
    ns_state = tree.namespaces
    label = c.id + (" (current)" if c.current else "")
    children: list[Item] = []
    if tree.search is not None:
        children.append(_results(ctx, tree.search))
    if isinstance(ns_state, Loading):
        children.append(note(LOADING))
    elif isinstance(ns_state, Failed):
        if ns_state.message.startswith("cluster unreachable"):
            label += " — unreachable"
        children.append(note(f"⚠ {labels.shorten(ns_state.message, 100)}"))
    else:
        children.append(Item(SEARCH, Action(ActionKind.SEARCH, (c.id,))))
        children.append(SEPARATOR)
        if tree.namespaces_note:
            children.append(note(tree.namespaces_note))
        busy = {s.namespace for s in ctx.mine}
        system = [ns for ns in ns_state.value if is_system_namespace(ns) and ns not in busy]
        for ns in ns_state.value:
            if ns not in system:
                children.append(_namespace(ctx, ns, tree))
        if system:
            children.append(_system(ctx, system, tree))
    running = [s for s in ctx.mine if s.status in labels.RUNNING + (Status.ERROR,)]
    children += [
        SEPARATOR,
        proxy_item(c.id, proxy),
        SEPARATOR,
        Item("Refresh", Action(ActionKind.REFRESH_CLUSTER, (c.id,))),
        Item(f"Stop all in this cluster ({len(running)})" if running else "Stop all in this cluster",
             Action(ActionKind.STOP_CLUSTER, (c.id,)) if running else None, enabled=bool(running)),
    ]
    return submenu(label, children)


def _namespace_label(ctx: _Context, ns: str) -> str:
    count = sum(1 for s in ctx.mine if s.namespace == ns)
    return f"{ns} ({labels.plural(count, 'forward')})" if count else ns


def _namespace(ctx: _Context, ns: str, tree: ClusterTree) -> Item:
    body = _namespace_body(ctx, ns, tree) or [note("No pods, services or workloads")]
    return submenu(_namespace_label(ctx, ns), [group_item(ctx.cluster, ns, ctx.groups.get(ns)), SEPARATOR, *body])


def group_item(context: str, namespace: str, members: int | None) -> Item:
    """The namespace's "Forward every Service (own addresses)", or, while its group runs (``members``:
    its forwards now, None when none runs), "Stop forwarding every Service (N forwards)"."""
    action = Action(ActionKind.NAMESPACE_GROUP, (context, namespace))
    if members is None:
        return Item(GROUP_START, action)
    return Item(f"{GROUP_STOP} ({labels.plural(members, 'forward')})", action)


def _namespace_body(ctx: _Context, ns: str, tree: ClusterTree, heading: str = "") -> list[Item]:
    """A namespace's resources under a heading per kind (``heading`` + 'Pods'); empty kinds left out."""
    if not tree.namespace_requested(ns):
        return [Item(f"Load resources{labels.ELLIPSIS}", Action(ActionKind.LOAD_NAMESPACE, (ctx.cluster, ns)))]
    states = [(kind, tree.resources.get((ns, kind), Loading())) for kind, _ in KIND_SECTIONS]
    if all(isinstance(state, Loading) for _, state in states):
        return [note(LOADING)]
    items: list[Item] = _suggested(ctx, ns, states, heading)
    for kind, state in states:
        if isinstance(state, Ready) and not state.value:
            continue  # an empty kind is clutter: leave it out
        items += [SEPARATOR, note(heading + KIND_TITLES[kind]), *_resources(ctx, ns, kind, state)]
    return tidy(items)


def _suggested(ctx: _Context, ns: str, states: Sequence[tuple[str, LoadState]], heading: str = "") -> list[Item]:
    """The namespace's annotation suggestions (of the kinds loaded so far), Services first: a heading, then
    'svc/web  18080 → 80  (alias)' per port, or 'Forwarding …' when a forward of it runs; none: []."""
    loaded = dict(states)
    items: list[Item] = []
    for kind in SUGGESTION_ORDER:
        state = loaded.get(kind)
        if not isinstance(state, Ready):
            continue
        for resource in state.value[:MAX_RESOURCES]:
            for suggestion in resource.suggested:
                for spec in suggestion.ports:
                    items.append(_suggested_port(ctx, ns, suggestion, spec))
    if not items:
        return []
    return [SEPARATOR, note(heading + SUGGESTED), *items[:MAX_RESOURCES]]


def _suggested_port(ctx: _Context, ns: str, suggestion: Suggestion, spec: PortSpec) -> Item:
    target = suggestion.target
    existing = next((s for s in ctx.mine if s.status in labels.RUNNING + (Status.ERROR,) and s.namespace == ns
                     and s.target_kind == target.kind and s.target_name == target.name
                     and str(s.remote_port) == str(spec.remote)
                     and (spec.local is None or s.local_port == spec.local)), None)
    alias = f"  ({suggestion.alias})" if suggestion.alias else ""
    if existing is not None:
        state = "" if existing.status == Status.ACTIVE else f" ({existing.status})"
        return note(f"{target}  Forwarding {spec.remote} on {labels.local_address(existing)}{state}{alias}")
    label = f"{target}  {labels.spec_ports_text(spec)}{alias}"
    local: int | None = spec.local if spec.local is not None else (None if spec.local_same_as_remote else 0)
    if local and local < ctx.privileged_below:
        local, label = 0, f"{label} on a free local port"
    elif local and local in ctx.used:
        local, label = 0, f"{label} on a free local port ({spec.local} is in use)"
    return Item(label, Action(ActionKind.FORWARD, (ctx.cluster, ns, target.kind, target.name, spec.remote, local)))


def _system(ctx: _Context, namespaces: Sequence[str], tree: ClusterTree) -> Item:
    """The system namespaces in one submenu: their resources under 'kube-system · Pods' headings.

    A namespace not loaded (or loading, or empty) is a heading with its
    name and "Load resources…" (or "Loading…", or a placeholder) under it.
    """
    items: list[Item] = []
    for ns in namespaces:
        body = _namespace_body(ctx, ns, tree, heading=f"{ns} {labels.DOT} ")
        if not body or body[0].enabled or body[0].label == LOADING:
            body = [note(ns), *(body or [note("No pods, services or workloads")])]
        items += [SEPARATOR, *body]
    return submenu(SYSTEM, tidy(items))


def _results(ctx: _Context, search: Search) -> Item:
    """The hits of the context's last search, a heading per kind, each resource named with its namespace."""
    label = results_label(search.text)
    state = search.hits
    if isinstance(state, Loading):
        return submenu(label, [note(SEARCHING)])
    if isinstance(state, Failed):
        return submenu(label, [note(f"⚠ {labels.shorten(state.message, 100)}")])
    assert isinstance(state, Ready)
    hits: Sequence[Hit] = state.value
    items: list[Item] = [note(labels.shorten(search.note, 100))] if search.note else []
    if not hits:
        items.append(note(f"No pods, services or workloads named like “{labels.shorten(search.text, 40)}”"))
    shown = hits[:MAX_RESOURCES]
    for kind, title in KIND_SECTIONS:
        of_kind = [h for h in shown if h.kind == kind]
        if of_kind:
            items += [SEPARATOR, note(title),
                      *(_resource(ctx, h.namespace, kind, h.resource, f"{h.resource.name}  ({h.namespace})")
                        for h in of_kind)]
    if len(hits) > MAX_RESOURCES:
        items.append(note(f"{labels.ELLIPSIS} and {len(hits) - MAX_RESOURCES} more (search for more of the name)"))
    return submenu(label, tidy(items))


def _resources(ctx: _Context, ns: str, kind: str, state: LoadState) -> list[Item]:
    if isinstance(state, Loading):
        return [note(LOADING)]
    if isinstance(state, Failed):
        return [note(f"⚠ {labels.shorten(state.message, 100)}")]
    assert isinstance(state, Ready)
    resources: Sequence[Resource] = state.value
    items = [_resource(ctx, ns, kind, r) for r in resources[:MAX_RESOURCES]]
    if len(resources) > MAX_RESOURCES:
        items.append(note(f"{labels.ELLIPSIS} and {len(resources) - MAX_RESOURCES} more "
                          "(Search… or `tender forward` for those)"))
    return items


def _resource(ctx: _Context, ns: str, kind: str, r: Resource, label: str | None = None) -> Item:
    items: list[Item] = []
    offered = [(port, name, "TCP") for port, name in r.tcp_ports] + [(port, name, "UDP") for port, name in r.udp_ports]
    for port, name, protocol in offered:
        existing = next((s for s in ctx.mine if s.status in labels.RUNNING + (Status.ERROR,) and s.namespace == ns
                         and s.target_kind == kind and s.target_name == r.name
                         and getattr(s, "protocol", "TCP") == protocol
                         and str(s.remote_port) in (str(port), name)), None)
        shown = f"{port}/udp" if protocol == "UDP" else str(port)
        if existing is not None:
            state = "" if existing.status == Status.ACTIVE else f" ({existing.status})"
            items.append(note(f"Forwarding {shown} on {labels.local_address(existing)}{state}"))
            continue
        entry = labels.port_entry_label(port, name, protocol)
        local = port
        if port < ctx.privileged_below:
            local, entry = 0, f"{entry} on a free local port"
        elif port in ctx.used:
            local, entry = 0, f"{entry} on a free local port ({port} is in use)"
        # By name when it has one, as a person would type it: the entry then reads "8080 → http",
        # and the name tells the menu it speaks HTTP.  A UDP port goes through a relay pod.
        args: tuple[Any, ...] = (ctx.cluster, ns, kind, r.name, name or port, local)
        items.append(Item(entry, Action(ActionKind.FORWARD, args + (("UDP",) if protocol == "UDP" else ()))))
    if items:
        items.append(SEPARATOR)
    ports = tuple((p, n) for p, n in r.tcp_ports)
    items.append(Item(f"Custom port{labels.ELLIPSIS}",
                      Action(ActionKind.CUSTOM_PORT, (ctx.cluster, ns, kind, r.name, ports))))
    return submenu(label or r.name, items)
