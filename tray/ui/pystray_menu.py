"""The thin adapter from the menu model (``model.Item``) to pystray's Menu/MenuItem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pystray

from tray.ui.model import Action, Item

Dispatch = Callable[[Action], None]


def to_pystray(root: Item, dispatch: Dispatch) -> pystray.Menu:
    return pystray.Menu(*(_item(c, dispatch) for c in root.children))


def _item(item: Item, dispatch: Dispatch) -> Any:
    if item.separator:
        return pystray.Menu.SEPARATOR
    if item.children:
        return pystray.MenuItem(item.label, pystray.Menu(*(_item(c, dispatch) for c in item.children)),
                                enabled=item.enabled)
    action = item.action

    def clicked(icon: Any, menu_item: Any) -> None:  # on the UI thread: hand off only
        if action is not None:
            dispatch(action)

    checked = None
    if item.checked is not None:
        value = item.checked

        def checked(menu_item: Any) -> bool:
            return value

    return pystray.MenuItem(item.label, clicked, checked=checked, enabled=item.enabled and action is not None)
