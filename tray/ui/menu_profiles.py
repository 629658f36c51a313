"""The Profiles submenu: check items grouped by ``group`` (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from tray.domain.status import Status
from tray.profiles import Profile
from tray.ui import labels
from tray.ui.model import SEPARATOR, Action, ActionKind, Item, note, submenu


def profile_sessions(p: Profile, sessions: Sequence[labels.SessionLike],
                     current_context: str | None) -> list[labels.SessionLike]:
    """The forwards that belong to a profile: started from it, or saved as it."""
    context = p.context or current_context
    remotes = {str(spec.remote) for spec in p.ports}
    out = []
    for s in sessions:
        if s.status == Status.STOPPED:
            continue
        if s.profile == p.name:
            out.append(s)
        elif (s.profile is None and s.cluster_id == context and s.target == str(p.target)
              and (p.namespace is None or s.namespace == p.namespace) and str(s.remote_port) in remotes):
            out.append(s)
    return out


def is_running(p: Profile, sessions: Sequence[labels.SessionLike], current_context: str | None) -> bool:
    return bool(profile_sessions(p, sessions, current_context))


def profile_label(p: Profile, current_context: str | None) -> str:
    ports = " ".join(str(spec) for spec in p.ports)
    where = f"{p.context or current_context or 'current context'}/{p.namespace or 'default namespace'}"
    return f"{p.name}  ({p.target} {ports} {labels.DOT} {where})"


def _profile_item(p: Profile, sessions: Sequence[labels.SessionLike], current: str | None) -> Item:
    running = is_running(p, sessions, current)
    action = Action(ActionKind.PROFILE_STOP if running else ActionKind.PROFILE_START, (p.name,))
    return Item(profile_label(p, current), action, checked=running)


def profiles_menu(
    profiles: Sequence[Profile],
    sessions: Sequence[labels.SessionLike],
    *,
    current_context: str | None,
    error: str | None = None,
) -> Item:
    items: list[Item] = []
    groups: dict[str | None, list[Profile]] = {}
    for p in profiles:
        groups.setdefault(p.group, []).append(p)
    for p in groups.pop(None, []):
        items.append(_profile_item(p, sessions, current_context))
    if items and groups:
        items.append(SEPARATOR)
    for group, members in groups.items():
        running = sum(1 for p in members if is_running(p, sessions, current_context))
        children = [
            Item("Start all", Action(ActionKind.GROUP_START, (group,)), enabled=running < len(members)),
            Item("Stop all", Action(ActionKind.GROUP_STOP, (group,)), enabled=running > 0),
            SEPARATOR,
            *(_profile_item(p, sessions, current_context) for p in members),
        ]
        items.append(submenu(f"{group} ({running} of {len(members)} running)", children))
    if not profiles:
        items.append(note("No profiles yet"))
    items.append(SEPARATOR)
    if error:
        items.append(note(f"⚠ {labels.shorten(error, 110)}"))
    items.append(Item(f"Edit profiles{labels.ELLIPSIS}", Action(ActionKind.EDIT_PROFILES)))
    return submenu("Profiles", items)
