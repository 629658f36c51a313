"""The adapter from the menu model to pystray objects (pystray's dummy backend: no display)."""

from __future__ import annotations

import os

import pytest

from tests.ui.fakes import session
from tray.ui.menu import MenuState, build_menu
from tray.ui.model import Action, ActionKind


@pytest.fixture(scope="module")
def pystray_module():  # noqa: ANN201
    old = os.environ.get("PYSTRAY_BACKEND")
    os.environ["PYSTRAY_BACKEND"] = "dummy"  # read when pystray is first imported
    import pystray

    yield pystray
    if old is None:
        os.environ.pop("PYSTRAY_BACKEND", None)


def test_model_becomes_pystray_items_and_clicks_dispatch(pystray_module) -> None:  # noqa: ANN001
    from tray.ui.pystray_menu import to_pystray

    s = session("svc/web", 8080, 80, id="abc")
    model = build_menu(MenuState(sessions=[s], notifications=True))
    clicked: list[Action] = []
    menu = to_pystray(model, clicked.append)
    items = list(menu.items)
    texts = [i.text for i in items if i is not pystray_module.Menu.SEPARATOR]
    assert texts[0] == "1 active"
    status = items[0]
    assert not status.enabled
    entry = next(i for i in items if i.text == "svc/web  8080 → 80  tender-a/shop  active")
    stop = next(i for i in entry.submenu.items if getattr(i, "text", "") == "Stop")
    stop(None)  # what pystray does on a click
    assert clicked == [Action(ActionKind.STOP, ("abc",))]
    notifications = next(i for i in items if getattr(i, "text", "") == "Notifications")
    assert notifications.checked is True
    assert next(i for i in items if getattr(i, "text", "") == "Start at login").checked is False
