"""Reads and clicks a tray icon's menu over D-Bus, as a desktop panel does.

libayatana-appindicator exports the icon as a StatusNotifierItem whose
``Menu`` property names a ``com.canonical.dbusmenu`` object: ``GetLayout``
gives the tree (id, properties, children) and ``Event(id, "clicked", …)``
activates an item.  Labels are matched exactly as the user sees them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402


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
        return [c.label for c in self.children if c.type != "separator"]


def _node(value: tuple) -> Node:
    ident, props, children = value
    label = props.get("label", "")
    # dbusmenu labels use "_" as the mnemonic marker; "__" is a literal "_".
    label = label.replace("__", "\0").replace("_", "").replace("\0", "_")
    return Node(
        id=ident, label=label, enabled=props.get("enabled", True), visible=props.get("visible", True),
        toggle_state=props.get("toggle-state", -1) if props.get("toggle-type") else -1,
        type=props.get("type", "standard"), children=[_node(c) for c in children],
    )


class TrayMenu:
    def __init__(self, bus_address: str) -> None:
        self.conn = Gio.DBusConnection.new_for_address_sync(
            bus_address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        self.service = ""
        self.menu_path = ""

    def _call(self, dest: str, path: str, iface: str, method: str, params: GLib.Variant | None,
              reply: str | None) -> tuple:
        result = self.conn.call_sync(dest, path, iface, method, params,
                                     GLib.VariantType(reply) if reply else None, Gio.DBusCallFlags.NONE, 10000, None)
        return result.unpack() if result is not None else ()

    def _prop(self, dest: str, path: str, iface: str, name: str):  # noqa: ANN202
        return self._call(dest, path, "org.freedesktop.DBus.Properties", "Get",
                          GLib.Variant("(ss)", (iface, name)), "(v)")[0]

    def _pid_of(self, name: str) -> int:
        try:
            return self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                              "GetConnectionUnixProcessID", GLib.Variant("(s)", (name,)), "(u)")[0]
        except GLib.Error:
            return -1

    def wait_item(self, pid: int | None = None, timeout: float = 30.0) -> None:
        """Wait until an item (of process ``pid``) registered with the watcher; find its menu."""
        deadline = time.time() + timeout
        while True:
            items = self._prop("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher",
                               "org.kde.StatusNotifierWatcher", "RegisteredStatusNotifierItems")
            items = [i for i in items if pid is None or self._pid_of(i.partition("/")[0]) == pid]
            if items:
                name, _, path = items[0].partition("/")
                self.service, item_path = name, "/" + path
                self.menu_path = self._prop(self.service, item_path, "org.kde.StatusNotifierItem", "Menu")
                self.item_path = item_path
                return
            if time.time() > deadline:
                raise AssertionError("no tray item registered with the StatusNotifierWatcher")
            time.sleep(0.1)

    def item_property(self, name: str):  # noqa: ANN201
        return self._prop(self.service, self.item_path, "org.kde.StatusNotifierItem", name)

    def layout(self) -> Node:
        _rev, root = self._call(self.service, self.menu_path, "com.canonical.dbusmenu", "GetLayout",
                                GLib.Variant("(iias)", (0, -1, [])), "(u(ia{sv}av))")
        return _node(root)

    def find(self, *path: str | Callable[[str], bool], root: Node | None = None) -> Node | None:
        """The item at a path of labels (or predicates on labels), or None."""
        node = root or self.layout()
        for step in path:
            match = None
            for c in node.children:
                if c.type == "separator" or not c.visible:
                    continue
                if (step(c.label) if callable(step) else c.label == step):
                    match = c
                    break
            if match is None:
                return None
            node = match
        return node

    def wait_for(self, *path: str | Callable[[str], bool], timeout: float = 20.0,
                 where: Callable[[Node], bool] | None = None) -> Node:
        deadline = time.time() + timeout
        last = None
        while True:
            try:
                last = self.layout()
                node = self.find(*path, root=last)
            except GLib.Error:
                node = None  # the menu is being replaced: ask again
            if node is not None and (where is None or where(node)):
                return node
            if time.time() > deadline:
                shown = "\n".join("  " * (len(p) - 1) + p[-1] for p, _ in last.walk()) if last else "(none)"
                raise AssertionError(f"menu item {path!r} not found (or not as wanted) after {timeout}s; "
                                     f"menu:\n{shown}")
            time.sleep(0.1)

    def click(self, node: Node) -> None:
        assert node.enabled, f"menu item {node.label!r} is disabled"
        self._call(self.service, self.menu_path, "com.canonical.dbusmenu", "Event",
                   GLib.Variant("(isvu)", (node.id, "clicked", GLib.Variant("i", 0), int(time.time()))), None)

    def click_path(self, *path: str | Callable[[str], bool], timeout: float = 20.0) -> Node:
        """Find the item and click it; if the app rebuilt its menu in between, find it again."""
        deadline = time.time() + timeout
        while True:
            node = self.wait_for(*path, timeout=max(1.0, deadline - time.time()), where=lambda n: n.enabled)
            try:
                self.click(node)
                return node
            except GLib.Error as exc:
                if "does not refer to a menu item" not in str(exc) or time.time() > deadline:
                    raise
                time.sleep(0.05)
