"""Reads and clicks a tray icon's menu over D-Bus, as a desktop panel does (dbus-fast, no gi).

The panel's StatusNotifierWatcher lists registered items in
``RegisteredStatusNotifierItems`` (``"BUSNAME/PATH"`` or just ``"BUSNAME"``,
meaning path ``/StatusNotifierItem``).  An item's ``Menu`` property names a
``com.canonical.dbusmenu`` object: ``GetLayout(0, -1, [])`` gives the tree
(id, properties, children) and ``Event(id, "clicked", …)`` activates an
item.  Labels are matched exactly as the user sees them (mnemonic
underscores removed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dbus_fast import Variant

from tests.ui.harness.bus import Bus, BusError

WATCHER = ("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher")
ITEM = "org.kde.StatusNotifierItem"
MENU = "com.canonical.dbusmenu"
Step = str | Callable[[str], bool]


@dataclass
class Node:
    id: int
    label: str
    enabled: bool
    visible: bool
    toggle_state: int  # -1 no check mark, 0 unchecked, 1 checked
    type: str  # "standard" or "separator"
    children: list["Node"] = field(default_factory=list)

    def walk(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], "Node"]]:
        for child in self.children:
            here = (*path, child.label)
            yield here, child
            yield from child.walk(here)

    def child(self, label: str) -> "Node | None":
        for c in self.children:
            if c.label == label:
                return c
        return None

    def labels(self) -> list[str]:
        return [c.label for c in self.children if c.type != "separator" and c.visible]

    def text(self) -> str:
        """The tree as indented lines (for assertion messages)."""
        return "\n".join("  " * (len(p) - 1) + p[-1] for p, n in self.walk() if n.type != "separator")


def _unwrap(value: object) -> object:
    return value.value if isinstance(value, Variant) else value


def _node(value: list) -> Node:
    ident, props, children = value
    props = {k: _unwrap(v) for k, v in props.items()}
    label = str(props.get("label", ""))
    # dbusmenu labels use "_" as the mnemonic marker; "__" is a literal "_".
    label = label.replace("__", "\0").replace("_", "").replace("\0", "_")
    return Node(
        id=ident, label=label, enabled=bool(props.get("enabled", True)), visible=bool(props.get("visible", True)),
        toggle_state=int(props.get("toggle-state", -1)) if props.get("toggle-type") else -1,
        type=str(props.get("type", "standard")), children=[_node(_unwrap(c)) for c in children],
    )


class TrayMenu:
    """The menu of one StatusNotifierItem on the bus at ``bus_address``.

    :meth:`wait_item` finds the item (of a given process); the other methods
    then read and click its menu.  Every call blocks for at most its timeout.
    """

    def __init__(self, bus_address: str) -> None:
        self.bus = Bus(bus_address)
        self.service = ""
        self.item_path = ""
        self.menu_path = ""

    def close(self) -> None:
        self.bus.close()

    # ------------------------------------------------------------ the item
    def registered_items(self) -> list[str]:
        """The watcher's RegisteredStatusNotifierItems ([] when no watcher runs)."""
        try:
            return list(self.bus.get_property(*WATCHER, "RegisteredStatusNotifierItems", timeout=5))
        except (BusError, TimeoutError):
            return []

    def items_of(self, pid: int | None) -> list[tuple[str, str]]:
        """The registered items (bus name, object path) of process ``pid`` (None: all)."""
        found = []
        for entry in self.registered_items():
            name, slash, path = entry.partition("/")
            path = "/" + path if slash else "/StatusNotifierItem"
            if pid is None or self.bus.pid_of(name) == pid:
                found.append((name, path))
        return found

    def wait_item(self, pid: int | None = None, timeout: float = 30.0) -> float:
        """Wait until an item (of process ``pid``) is registered with the watcher; find its menu.

        Returns the seconds waited.  Raises AssertionError after ``timeout`` s.
        """
        start = time.monotonic()
        while True:
            items = self.items_of(pid)
            if items:
                self.service, self.item_path = items[0]
                try:
                    self.menu_path = self.item_property("Menu")
                    return time.monotonic() - start
                except (BusError, TimeoutError):
                    pass  # registered but not answering yet
            if time.monotonic() - start > timeout:
                raise AssertionError(f"no tray item{f' of pid {pid}' if pid else ''} registered with the "
                                     f"StatusNotifierWatcher after {timeout}s (registered: {self.registered_items()})")
            time.sleep(0.05)

    def is_registered(self, pid: int | None = None) -> bool:
        return bool(self.items_of(pid))

    def item_property(self, name: str):  # noqa: ANN201
        """A property of the item (``org.kde.StatusNotifierItem``), unwrapped."""
        return self.bus.get_property(self.service, self.item_path, ITEM, name)

    def item_properties(self) -> dict:
        """All the item's properties, unwrapped."""
        return self.bus.get_all(self.service, self.item_path, ITEM)

    # ------------------------------------------------------------ the menu
    def layout(self) -> Node:
        """The whole menu tree now (one GetLayout call)."""
        _rev, root = self.bus.call(self.service, self.menu_path, MENU, "GetLayout", "iias", [0, -1, []])
        return _node(root)

    def find(self, *path: Step, root: Node | None = None) -> Node | None:
        """The visible item at a path of labels (or predicates on labels), or None."""
        node = root or self.layout()
        for step in path:
            match = None
            for c in node.children:
                if c.type == "separator" or not c.visible:
                    continue
                if step(c.label) if callable(step) else c.label == step:
                    match = c
                    break
            if match is None:
                return None
            node = match
        return node

    def wait_for(self, *path: Step, timeout: float = 20.0, where: Callable[[Node], bool] | None = None) -> Node:
        """Poll until the item at ``path`` exists (and satisfies ``where``); return it.

        Raises AssertionError with the last menu seen after ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                last = self.layout()
                node = self.find(*path, root=last)
            except (BusError, TimeoutError):
                node = None  # the menu is being replaced: ask again
            if node is not None and (where is None or where(node)):
                return node
            if time.monotonic() > deadline:
                shown = last.text() if last else "(none)"
                raise AssertionError(f"menu item {path!r} not found (or not as wanted) after {timeout}s; "
                                     f"menu:\n{shown}")
            time.sleep(0.1)

    def click(self, node: Node) -> None:
        """Send Event(id, "clicked") as a panel does when the user clicks the item."""
        assert node.enabled, f"menu item {node.label!r} is disabled"
        self.bus.call(self.service, self.menu_path, MENU, "Event", "isvu",
                      [node.id, "clicked", Variant("i", 0), int(time.time())])

    def click_path(self, *path: Step, timeout: float = 20.0) -> Node:
        """Find the enabled item at ``path`` and click it; if the app rebuilt its menu in between, find it again."""
        deadline = time.monotonic() + timeout
        while True:
            node = self.wait_for(*path, timeout=max(1.0, deadline - time.monotonic()), where=lambda n: n.enabled)
            try:
                self.click(node)
                return node
            except BusError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
