"""The menu model as ``com.canonical.dbusmenu`` sees it: ids, properties, layouts, changes.

Pure data, no D-Bus and no I/O: :mod:`tray.ui.sni` serves what this module
computes.  The dbusmenu protocol (version 3, the one libdbusmenu, Qt and
xfce4-panel speak) names every menu item by an ``int32`` id, ``0`` being the
root; a client asks for the tree with ``GetLayout`` and is told of changes by
two signals:

* ``ItemsPropertiesUpdated``: these ids' properties changed (a label, a check
  mark, enabled), the tree's shape did not;
* ``LayoutUpdated(revision, parent)``: the children under ``parent`` changed
  (items added, removed or reordered); the client asks for that subtree again.

So that a label change is a property update and an open submenu survives a
refresh, an item keeps its id from one menu to the next.  Among the children
of one (kept) parent, a new item takes the id of the old item that is the
same, tried in this order: same label and action; same action (a click target
whose label changed); a submenu with clicks in common (a forward's row whose
status changed: its Stop and Copy still name that forward); then the next
unmatched old item of the same kind (note, submenu, separator) in order.
Anything else gets a fresh id; ids are never reused for another item.

Properties (the spec's names and types; :data:`PROPERTY_SIGNATURES`):
``label`` (``_`` is the mnemonic marker, so a literal ``_`` is written
``__``), ``enabled``, ``visible``, ``type`` (``"separator"``),
``toggle-type`` (``"checkmark"``) with ``toggle-state`` (0 or 1), and
``children-display`` (``"submenu"``) on items that have children.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tray.ui.model import Action, Item

ROOT_ID = 0

#: The D-Bus type of every property this module sets.
PROPERTY_SIGNATURES: dict[str, str] = {
    "label": "s", "enabled": "b", "visible": "b", "type": "s", "toggle-type": "s", "toggle-state": "i",
    "children-display": "s",
}

#: A layout node as GetLayout returns it, in plain Python: (id, {property: value}, [child nodes]).
LayoutNode = tuple[int, dict[str, Any], list[Any]]


class UnknownItem(LookupError):
    """An id that names no item of the current menu (a client's stale id, a typo)."""

    def __init__(self, item_id: int) -> None:
        super().__init__(f"id {item_id} does not refer to a menu item")
        self.item_id = item_id


def escape_label(label: str) -> str:
    """``label`` as dbusmenu shows it literally: ``_`` marks a mnemonic, so ``_`` becomes ``__``."""
    return label.replace("_", "__")


def properties_of(item: Item) -> dict[str, Any]:
    """The dbusmenu properties of one item (its children not included)."""
    if item.separator:
        return {"type": "separator", "visible": True}
    props: dict[str, Any] = {"label": escape_label(item.label), "enabled": bool(item.enabled), "visible": True}
    if item.checked is not None:
        props["toggle-type"] = "checkmark"
        props["toggle-state"] = 1 if item.checked else 0
    if item.children:
        props["children-display"] = "submenu"
    return props


@dataclass(frozen=True)
class Node:
    """One item of a :class:`Layout`: its id, properties, children's ids and what a click does."""

    id: int
    properties: Mapping[str, Any]
    children: tuple[int, ...]
    action: Action | None
    label: str
    kind: str  # "separator", "submenu", "item" (clickable or a note)
    clicks: frozenset[Action] = field(default=frozenset())  # the actions anywhere below (submenus)


class Layout:
    """A menu as dbusmenu items: an immutable id → :class:`Node` table and the next free id.

    Build one with :func:`build`; every query answers from memory at once.
    """

    def __init__(self, nodes: Mapping[int, Node], parents: Mapping[int, int], next_id: int) -> None:
        self.nodes = dict(nodes)
        self.parents = dict(parents)
        self.next_id = next_id

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.nodes

    def node(self, item_id: int) -> Node:
        """The node with this id; raises :class:`UnknownItem` if there is none."""
        try:
            return self.nodes[item_id]
        except KeyError:
            raise UnknownItem(item_id) from None

    def get_layout(self, parent_id: int, depth: int, names: Sequence[str] = ()) -> LayoutNode:
        """``GetLayout``'s tree: the node ``parent_id`` with ``depth`` levels of children.

        ``depth`` -1 means all levels, 0 the node alone (no children), n that
        many levels.  ``names`` limits the properties given (empty: all).
        Raises :class:`UnknownItem` for an unknown ``parent_id``.
        """
        node = self.node(parent_id)
        children: list[Any] = []
        if depth != 0:
            children = [self.get_layout(c, depth - 1 if depth > 0 else -1, names) for c in node.children]
        return node.id, _pick(node.properties, names), children

    def group_properties(self, ids: Iterable[int], names: Sequence[str] = ()) -> list[tuple[int, dict[str, Any]]]:
        """``GetGroupProperties``: (id, properties) for each known id (unknown ones are left out; no ids: all)."""
        wanted = list(ids) or sorted(self.nodes)
        return [(i, _pick(self.nodes[i].properties, names)) for i in wanted if i in self.nodes]

    def property(self, item_id: int, name: str) -> Any:
        """``GetProperty``; raises :class:`UnknownItem` for an unknown id, :class:`KeyError` for an unset property."""
        props = self.node(item_id).properties
        if name not in props:
            raise KeyError(f"menu item {item_id} has no property {name!r}")
        return props[name]

    def click(self, item_id: int) -> Action | None:
        """What clicking ``item_id`` does: its action, or None (a note, a submenu, a disabled item).

        Raises :class:`UnknownItem` for an unknown id.
        """
        node = self.node(item_id)
        return node.action if node.properties.get("enabled", True) else None

    def ancestors(self, item_id: int) -> list[int]:
        """``item_id``'s parent, grandparent, ..., the root (empty for the root)."""
        out = []
        while item_id in self.parents:
            item_id = self.parents[item_id]
            out.append(item_id)
        return out


def _pick(props: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if not names or k in names}


def _kind(item: Item) -> str:
    return "separator" if item.separator else "submenu" if item.children else "item"


def _clicks(item: Item) -> frozenset[Action]:
    return frozenset(i.action for _, i in item.walk() if i.action is not None)


def build(root: Item, previous: Layout | None = None) -> Layout:
    """The layout of the menu ``root``, keeping ``previous``'s ids for the items that stayed (see module doc)."""
    nodes: dict[int, Node] = {}
    parents: dict[int, int] = {}
    next_id = max(previous.next_id if previous else 1, 1)

    def fresh() -> int:
        nonlocal next_id
        next_id += 1
        return next_id - 1

    def add(item: Item, item_id: int, old: Node | None) -> None:
        old_children = [previous.nodes[c] for c in old.children] if (previous and old) else []
        ids = _match(item.children, old_children)
        child_ids = []
        for child, matched in zip(item.children, ids):
            child_id = matched.id if matched is not None else fresh()
            parents[child_id] = item_id
            child_ids.append(child_id)
            add(child, child_id, matched)
        props = {"children-display": "submenu"} if item_id == ROOT_ID else properties_of(item)
        nodes[item_id] = Node(item_id, props, tuple(child_ids), item.action, item.label, _kind(item),
                              _clicks(item) if item.children else frozenset())

    add(root, ROOT_ID, previous.nodes.get(ROOT_ID) if previous else None)
    return Layout(nodes, parents, next_id)


def _match(items: Sequence[Item], old: Sequence[Node]) -> list[Node | None]:
    """For each new child, the old sibling it continues, or None (module doc: the order of the rules)."""
    out: list[Node | None] = [None] * len(items)
    free = list(old)

    def take(i: int, test: Any) -> None:
        for node in free:
            if test(node):
                out[i] = node
                free.remove(node)
                return

    kinds = [_kind(item) for item in items]
    for i, item in enumerate(items):  # 1. same label and action (and kind)
        take(i, lambda n, item=item, k=kinds[i]: n.kind == k and n.label == item.label and n.action == item.action)
    for i, item in enumerate(items):  # 2. same action
        if out[i] is None and item.action is not None:
            take(i, lambda n, a=item.action: n.action == a)
    for i, item in enumerate(items):  # 3. a submenu with clicks in common, the most shared first
        if out[i] is None and kinds[i] == "submenu":
            clicks = _clicks(item)
            best = max((n for n in free if n.kind == "submenu" and n.clicks & clicks),
                       key=lambda n: len(n.clicks & clicks), default=None)
            if best is not None:
                out[i] = best
                free.remove(best)
    for i, item in enumerate(items):  # 4. the next of the same kind that has no action to tell it apart
        if out[i] is None and item.action is None:
            take(i, lambda n, k=kinds[i]: n.kind == k and n.action is None)
    return out


@dataclass(frozen=True)
class Changes:
    """What a client must be told when the menu goes from one layout to the next.

    ``properties``: (id, {property: new value}) for kept items whose
    properties changed -- ``ItemsPropertiesUpdated``'s first argument;
    ``removed``: (id, [property names no longer set]) -- its second;
    ``layout_parent``: the id of the smallest subtree whose shape changed
    (``LayoutUpdated``'s second argument), None if the shape did not change.
    """

    properties: tuple[tuple[int, dict[str, Any]], ...] = ()
    removed: tuple[tuple[int, tuple[str, ...]], ...] = ()
    layout_parent: int | None = None

    def __bool__(self) -> bool:
        return bool(self.properties or self.removed or self.layout_parent is not None)


def diff(old: Layout, new: Layout) -> Changes:
    """The :class:`Changes` from ``old`` to ``new`` (``new`` built with ``previous=old``)."""
    properties = []
    removed = []
    reshaped = []
    for item_id, node in sorted(new.nodes.items()):
        before = old.nodes.get(item_id)
        if before is None:
            continue  # its parent's children changed: covered by the layout update
        changed = {k: v for k, v in node.properties.items() if not _same(before.properties, k, v)}
        if changed:
            properties.append((item_id, changed))
        gone = tuple(k for k in before.properties if k not in node.properties)
        if gone:
            removed.append((item_id, gone))
        if node.children != before.children:
            reshaped.append(item_id)
    return Changes(tuple(properties), tuple(removed), _common_ancestor(new, reshaped))


def _same(props: Mapping[str, Any], name: str, value: Any) -> bool:
    return name in props and type(props[name]) is type(value) and props[name] == value


def _common_ancestor(layout: Layout, ids: Sequence[int]) -> int | None:
    if not ids:
        return None
    common = [ids[0], *layout.ancestors(ids[0])][::-1]  # root first
    for item_id in ids[1:]:
        path = [item_id, *layout.ancestors(item_id)][::-1]
        n = 0
        while n < min(len(common), len(path)) and common[n] == path[n]:
            n += 1
        common = common[:n]
    return common[-1] if common else ROOT_ID
