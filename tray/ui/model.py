"""The menu model: plain data that the menu builders return and the tests read.

An :class:`Item` is what a person sees in the tray menu; its :class:`Action`
is what a click asks the controller to do, named by an :class:`ActionKind`
(the controller has one handler per kind, in an explicit table).  Nothing
here knows about pystray (``pystray_menu`` adapts the model), so the whole
menu is testable as data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any


class ActionKind(Enum):
    """Every verb a menu click can ask for; the value is its name in log lines.

    The arguments each one takes are those of the controller's handler
    (``Controller._do_<name>``), listed here.
    """

    # a forward (session id)
    STOP = "stop"  #: (session id,)
    RETRY = "retry"  #: (session id,)
    REMOVE = "remove"  #: (session id,)
    SAVE_PROFILE = "save-profile"  #: (session id,)
    OPEN_URL = "open-url"  #: (url,)
    COPY = "copy"  #: (text,)
    # the Clusters submenu
    SEARCH = "search"  #: (context,): ask for text, list the resources whose name contains it
    #: (context, namespace, kind, name, remote port or name, local port; 0: any free one; None: the number
    #: the remote port is, as ``tender forward TARGET http`` listens)
    FORWARD = "forward"
    CUSTOM_PORT = "custom-port"  #: (context, namespace, kind, name, ((port, name or None), ...))
    LOAD_NAMESPACE = "load-namespace"  #: (context, namespace)
    REFRESH_CLUSTER = "refresh-cluster"  #: (context,)
    STOP_CLUSTER = "stop-cluster"  #: (context,)
    TOGGLE_PROXY = "toggle-proxy"  #: (context,): start the context's cluster proxy, or stop it when it runs
    #: (context, namespace): forward every Service of the namespace, each on its own 127.x.y.z (a namespace
    #: group), or stop that when it runs
    NAMESPACE_GROUP = "namespace-group"
    # profiles
    PROFILE_START = "profile-start"  #: (profile name,)
    PROFILE_STOP = "profile-stop"  #: (profile name,)
    GROUP_START = "group-start"  #: (group name,)
    GROUP_STOP = "group-stop"  #: (group name,)
    EDIT_PROFILES = "edit-profiles"  #: ()
    # the dashboard (issue 13): the engine's page in the browser
    OPEN_DASHBOARD = "open-dashboard"  #: ()
    # settings and quitting
    TOGGLE_AUTOSTART = "toggle-autostart"  #: ()
    TOGGLE_NOTIFICATIONS = "toggle-notifications"  #: ()
    QUIT = "quit"  #: ()

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Action:
    """What a click does: a verb and its arguments (all hashable, comparable).

    Raises :class:`TypeError` if ``kind`` is not an :class:`ActionKind` (a
    string such as ``"stop"`` included), so an unknown verb cannot reach the
    controller.
    """

    kind: ActionKind
    args: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.kind, ActionKind):
            raise TypeError(f"an Action's kind is an ActionKind, not {self.kind!r}")


@dataclass(frozen=True)
class Item:
    label: str
    action: Action | None = None
    enabled: bool = True
    checked: bool | None = None  # None: not a check item
    children: tuple[Item, ...] = ()
    separator: bool = False

    def __post_init__(self) -> None:
        # pystray (and GTK) turn a submenu-less parent into a clickable item;
        # an item with an action and children would be ambiguous.
        if self.action is not None and self.children:
            raise ValueError(f"menu item {self.label!r} has both an action and children")

    @property
    def is_submenu(self) -> bool:
        return bool(self.children)

    def walk(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Item]]:
        """(path of labels, item) for every descendant, depth first."""
        for child in self.children:
            here = (*path, child.label)
            yield here, child
            yield from child.walk(here)

    def child(self, label: str) -> Item:
        for c in self.children:
            if c.label == label:
                return c
        raise KeyError(f"{label!r} not in {[c.label for c in self.children]}")


SEPARATOR = Item("", separator=True, enabled=False)


def note(label: str) -> Item:
    """A disabled line that only informs (a reason, an error, "Loading…")."""
    return Item(label, enabled=False)


def submenu(label: str, children: list[Item] | tuple[Item, ...], *, placeholder: str = "(none)") -> Item:
    """A submenu; an empty one gets a disabled placeholder so it stays a submenu."""
    items = tuple(children) or (note(placeholder),)
    return Item(label, children=items)


def root(children: list[Item]) -> Item:
    """The tray menu itself (label-less), its separators tidied (:func:`tidy`)."""
    return Item("", children=tuple(tidy(children)))


def tidy(items: list[Item]) -> list[Item]:
    """``items`` without leading, trailing or doubled separators (sections may be empty)."""
    out: list[Item] = []
    for item in items:
        if item.separator and (not out or out[-1].separator):
            continue
        out.append(item)
    while out and out[-1].separator:
        out.pop()
    return out
