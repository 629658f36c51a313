"""The Clusters submenu: context → namespace → kind → resource → port (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tray.domain.status import Status
from tray.kube.kubeconfig import ClusterInfo
from tray.ui import labels
from tray.ui.model import SEPARATOR, Action, ActionKind, Item, note, submenu
from tray.ui.resources import KIND_SECTIONS, ClusterTree, Failed, Loading, Ready, Resource

#: Longer lists are cut (a menu of 3,000 pods helps nobody; `tender forward` does).
MAX_RESOURCES = 100
LOADING = f"Loading{labels.ELLIPSIS}"


def clusters_menu(
    clusters: Sequence[ClusterInfo],
    trees: Mapping[str, ClusterTree],
    sessions: Sequence[labels.SessionLike],
    *,
    kubeconfig_error: str | None = None,
    privileged_below: int = 0,
) -> Item:
    items: list[Item] = []
    if kubeconfig_error:
        items.append(note(f"⚠ {labels.shorten(kubeconfig_error, 100)}"))
    elif not clusters:
        items.append(note("No contexts in the kubeconfig"))
    for c in clusters:
        items.append(_cluster(c, trees.get(c.id, ClusterTree()), sessions, privileged_below))
    return submenu("Clusters", items)


def _cluster(c: ClusterInfo, tree: ClusterTree, sessions: Sequence[labels.SessionLike], privileged_below: int) -> Item:
    ns_state = tree.namespaces
    label = c.id + (" (current)" if c.current else "")
    children: list[Item] = []
    if isinstance(ns_state, Loading):
        children.append(note(LOADING))
    elif isinstance(ns_state, Failed):
        if ns_state.message.startswith("cluster unreachable"):
            label += " — unreachable"
        children.append(note(f"⚠ {labels.shorten(ns_state.message, 100)}"))
    else:
        if tree.namespaces_note:
            children.append(note(tree.namespaces_note))
        mine = [s for s in sessions if s.cluster_id == c.id]
        for ns in ns_state.value:
            children.append(_namespace(c.id, ns, tree, mine, sessions, privileged_below))
    running = [s for s in sessions if s.cluster_id == c.id and s.status in labels.RUNNING + (Status.ERROR,)]
    children += [
        SEPARATOR,
        Item("Refresh", Action(ActionKind.REFRESH_CLUSTER, (c.id,))),
        Item(f"Stop all in this cluster ({len(running)})" if running else "Stop all in this cluster",
             Action(ActionKind.STOP_CLUSTER, (c.id,)) if running else None, enabled=bool(running)),
    ]
    return submenu(label, children)


def _namespace(cluster: str, ns: str, tree: ClusterTree, mine: Sequence[labels.SessionLike],
               everyone: Sequence[labels.SessionLike], privileged_below: int) -> Item:
    count = sum(1 for s in mine if s.namespace == ns)
    label = f"{ns} ({labels.plural(count, 'forward')})" if count else ns
    if not tree.namespace_requested(ns):
        return submenu(label, [Item(f"Load resources{labels.ELLIPSIS}", Action(ActionKind.LOAD_NAMESPACE, (cluster, ns)))])
    states = [(kind, title, tree.resources.get((ns, kind), Loading())) for kind, title in KIND_SECTIONS]
    if all(isinstance(state, Loading) for _, _, state in states):
        return submenu(label, [note(LOADING)])
    kinds = []
    for kind, title, state in states:
        if isinstance(state, Ready) and not state.value:
            continue  # an empty kind is clutter: leave it out
        kinds.append(submenu(title, _resources(cluster, ns, kind, state, mine, everyone, privileged_below)))
    return submenu(label, kinds, placeholder="No pods, services or workloads")


def _resources(cluster: str, ns: str, kind: str, state: object, mine: Sequence[labels.SessionLike],
               everyone: Sequence[labels.SessionLike], privileged_below: int) -> list[Item]:
    if isinstance(state, Loading):
        return [note(LOADING)]
    if isinstance(state, Failed):
        return [note(f"⚠ {labels.shorten(state.message, 100)}")]
    assert isinstance(state, Ready)
    resources: Sequence[Resource] = state.value
    items = [_resource(cluster, ns, kind, r, mine, everyone, privileged_below) for r in resources[:MAX_RESOURCES]]
    if len(resources) > MAX_RESOURCES:
        items.append(note(f"{labels.ELLIPSIS} and {len(resources) - MAX_RESOURCES} more "
                          "(use `tender forward` for those)"))
    return items


def _resource(cluster: str, ns: str, kind: str, r: Resource, mine: Sequence[labels.SessionLike],
              everyone: Sequence[labels.SessionLike], privileged_below: int) -> Item:
    used = {s.local_port for s in everyone if s.status in labels.RUNNING and s.local_port}
    items: list[Item] = []
    for port, name in r.tcp_ports:
        existing = next((s for s in mine if s.status in labels.RUNNING + (Status.ERROR,) and s.namespace == ns
                         and s.target_kind == kind and s.target_name == r.name
                         and str(s.remote_port) in (str(port), name)), None)
        if existing is not None:
            items.append(note(f"Forwarding {port} on {labels.local_address(existing)}"))
            continue
        label = labels.port_entry_label(port, name)
        local = port
        if port < privileged_below:
            local, label = 0, f"{label} on a free local port"
        elif port in used:
            local, label = 0, f"{label} on a free local port ({port} is in use)"
        # By name when it has one, as a person would type it: the entry then reads "8080 → http",
        # and the name tells the menu it speaks HTTP.
        items.append(Item(label, Action(ActionKind.FORWARD, (cluster, ns, kind, r.name, name or port, local))))
    if items:
        items.append(SEPARATOR)
    ports = tuple((p, n) for p, n in r.tcp_ports)
    items.append(Item(f"Custom port{labels.ELLIPSIS}", Action(ActionKind.CUSTOM_PORT, (cluster, ns, kind, r.name, ports))))
    return submenu(r.name, items)
