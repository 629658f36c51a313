"""The menu model as dbusmenu items: ids that last, the spec's properties, GetLayout, and what changed."""

from __future__ import annotations

import pytest

from tray.ui import dbusmenu
from tray.ui.dbusmenu import ROOT_ID, UnknownItem, build, diff
from tray.ui.model import SEPARATOR, Action, ActionKind, Item, note, root, submenu

STOP_A = Action(ActionKind.STOP, ("a",))
COPY_A = Action(ActionKind.COPY, ("localhost:8080",))
STOP_B = Action(ActionKind.STOP, ("b",))
QUIT = Action(ActionKind.QUIT)
NOTIFY = Action(ActionKind.TOGGLE_NOTIFICATIONS)


def menu(status: str = "1 active", row_a: str = "web 8080 active", *, b: bool = False, notifications: bool = True,
         stop_enabled: bool = True) -> Item:
    rows = [submenu(row_a, [note("Pod web-1"), Item("Copy address", COPY_A),
                            Item("Stop", STOP_A, enabled=stop_enabled)])]
    if b:
        rows.append(submenu("db 5432 active", [Item("Stop", STOP_B)]))
    return root([note(status), *rows, SEPARATOR, Item("Notifications", NOTIFY, checked=notifications),
                 Item("Quit", QUIT)])


def labels(layout: dbusmenu.Layout, node: dbusmenu.LayoutNode | None = None, depth: int = 0) -> list[str]:
    node = node or layout.get_layout(ROOT_ID, -1)
    out = []
    for child in node[2]:
        props = child[1]
        out.append("  " * depth + ("---" if props.get("type") == "separator" else props["label"]))
        out.extend(labels(layout, child, depth + 1))
    return out


def id_of(layout: dbusmenu.Layout, *path: str) -> int:
    node = layout.get_layout(ROOT_ID, -1)
    for label in path:
        node = next(c for c in node[2] if c[1].get("label") == label)
    return node[0]


def test_the_layout_shows_the_menu_with_the_specs_properties() -> None:
    layout = build(menu())
    assert labels(layout) == ["1 active", "web 8080 active", "  Pod web-1", "  Copy address", "  Stop", "---",
                              "Notifications", "Quit"]
    item_id, props, children = layout.get_layout(ROOT_ID, -1)
    assert item_id == 0 and props == {"children-display": "submenu"}
    status, row, sep, notifications, quit_ = children
    assert status[1] == {"label": "1 active", "enabled": False, "visible": True}
    assert row[1]["children-display"] == "submenu" and row[1]["enabled"] is True
    assert sep[1]["type"] == "separator" and "label" not in sep[1]
    assert notifications[1]["toggle-type"] == "checkmark" and notifications[1]["toggle-state"] == 1
    assert "toggle-type" not in quit_[1] and "children-display" not in quit_[1]
    assert len({n[0] for n in children}) == 5 and ROOT_ID not in {n[0] for n in children}


def test_an_underscore_is_shown_literally_not_as_a_mnemonic() -> None:
    layout = build(root([Item("my_service 8080", QUIT)]))
    assert layout.get_layout(ROOT_ID, -1)[2][0][1]["label"] == "my__service 8080"


def test_get_layout_depth_and_property_names() -> None:
    layout = build(menu())
    row = id_of(layout, "web 8080 active")
    assert layout.get_layout(ROOT_ID, 0)[2] == []
    one = layout.get_layout(ROOT_ID, 1)
    assert [c[2] for c in one[2]] == [[]] * 5  # children's children not given
    sub = layout.get_layout(row, -1)
    assert sub[0] == row and [c[1]["label"] for c in sub[2]] == ["Pod web-1", "Copy address", "Stop"]
    only = layout.get_layout(row, 1, ["label"])
    assert only[1] == {"label": "web 8080 active"} and all(set(c[1]) == {"label"} for c in only[2])
    with pytest.raises(UnknownItem, match="does not refer to a menu item"):
        layout.get_layout(999, -1)


def test_group_properties_property_and_click() -> None:
    layout = build(menu())
    stop, quit_ = id_of(layout, "web 8080 active", "Stop"), id_of(layout, "Quit")
    assert layout.group_properties([stop, 999, quit_], ["label"]) == [(stop, {"label": "Stop"}),
                                                                      (quit_, {"label": "Quit"})]
    assert layout.property(stop, "enabled") is True
    with pytest.raises(KeyError):
        layout.property(stop, "toggle-state")
    assert layout.click(stop) == STOP_A and layout.click(quit_) == QUIT
    assert layout.click(id_of(layout, "1 active")) is None  # a note
    assert layout.click(id_of(layout, "web 8080 active")) is None  # a submenu
    disabled = build(menu(stop_enabled=False))
    assert disabled.click(id_of(disabled, "web 8080 active", "Stop")) is None
    with pytest.raises(UnknownItem):
        layout.click(12345)


def test_a_label_change_keeps_the_ids_and_is_a_property_update() -> None:
    old = build(menu())
    new = build(menu(status="1 reconnecting", row_a="web 8080 reconnecting"), old)
    assert id_of(new, "1 reconnecting") == id_of(old, "1 active")
    assert id_of(new, "web 8080 reconnecting", "Stop") == id_of(old, "web 8080 active", "Stop")
    changes = diff(old, new)
    assert changes.layout_parent is None and changes.removed == ()
    assert dict(changes.properties) == {id_of(new, "1 reconnecting"): {"label": "1 reconnecting"},
                                        id_of(new, "web 8080 reconnecting"): {"label": "web 8080 reconnecting"}}


def test_a_check_mark_and_enabled_are_property_updates() -> None:
    old = build(menu())
    new = build(menu(notifications=False, stop_enabled=False), old)
    changes = diff(old, new)
    assert changes.layout_parent is None
    assert dict(changes.properties) == {id_of(new, "Notifications"): {"toggle-state": 0},
                                        id_of(new, "web 8080 active", "Stop"): {"enabled": False}}


def test_the_same_menu_changes_nothing() -> None:
    old = build(menu())
    assert not diff(old, build(menu(), old))


def test_a_new_item_is_a_layout_update_of_its_parent_with_a_fresh_id() -> None:
    old = build(menu())
    new = build(menu(b=True), old)
    changes = diff(old, new)
    assert changes.layout_parent == ROOT_ID and not changes.properties
    added = id_of(new, "db 5432 active")
    assert added not in old and id_of(new, "db 5432 active", "Stop") not in old
    assert id_of(new, "Quit") == id_of(old, "Quit")


def test_a_change_inside_a_submenu_names_that_submenu() -> None:
    old = build(menu())
    changed = root([note("1 active"),
                    submenu("web 8080 active", [note("Pod web-1"), Item("Copy address", COPY_A)]),  # Stop gone
                    SEPARATOR, Item("Notifications", NOTIFY, checked=True), Item("Quit", QUIT)])
    new = build(changed, old)
    assert diff(old, new).layout_parent == id_of(new, "web 8080 active")


def test_a_removed_item_id_is_never_given_to_another() -> None:
    first = build(menu(b=True))
    gone = id_of(first, "db 5432 active")
    second = build(menu(), first)
    third = build(root([submenu("cache 6379 active", [Item("Stop", Action(ActionKind.STOP, ("c",)))])]), second)
    ids = {n for n in third.nodes}
    assert gone not in second and gone not in ids


def test_rows_keep_their_ids_when_one_is_removed_and_the_other_relabelled() -> None:
    old = build(menu(b=True))
    b_row, b_stop = id_of(old, "db 5432 active"), id_of(old, "db 5432 active", "Stop")
    new_menu = root([note("1 error"), submenu("db 5432 error", [Item("Stop", STOP_B)]), SEPARATOR, Item("Quit", QUIT)])
    new = build(new_menu, old)
    assert id_of(new, "db 5432 error") == b_row  # matched by its clicks, not by position
    assert id_of(new, "db 5432 error", "Stop") == b_stop
    changes = diff(old, new)
    assert changes.layout_parent == ROOT_ID
    assert (b_row, {"label": "db 5432 error"}) in changes.properties


def test_a_property_no_longer_set_is_reported_removed() -> None:
    old = build(root([Item("Notifications", NOTIFY, checked=True)]))
    new = build(root([Item("Notifications", NOTIFY)]), old)
    changes = diff(old, new)
    assert changes.removed == ((id_of(new, "Notifications"), ("toggle-type", "toggle-state")),)
    assert changes.layout_parent is None


def test_a_clickable_item_keeps_its_id_when_its_label_changes_and_its_neighbours_move() -> None:
    old = build(root([Item("Start at login", Action(ActionKind.TOGGLE_AUTOSTART)), Item("Quit", QUIT)]))
    new = build(root([note("2 active"), Item("Start at login (on)", Action(ActionKind.TOGGLE_AUTOSTART)),
                      Item("Quit", QUIT)]), old)
    assert id_of(new, "Start at login (on)") == id_of(old, "Start at login")
    assert id_of(new, "Quit") == id_of(old, "Quit")
    assert id_of(new, "2 active") not in old
    changes = diff(old, new)
    assert changes.layout_parent == ROOT_ID
    assert changes.properties == ((id_of(new, "Start at login (on)"), {"label": "Start at login (on)"}),)


def test_a_note_that_becomes_a_submenu_gets_a_new_id() -> None:
    old = build(root([note("Clusters")]))
    new = build(root([submenu("Clusters", [note("none")])]), old)
    assert id_of(new, "Clusters") != id_of(old, "Clusters")
    assert diff(old, new).layout_parent == ROOT_ID
