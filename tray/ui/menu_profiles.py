"""The Profiles submenu: check items grouped by ``group`` (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from types import MappingProxyType

from tray.domain.status import Status
from tray.profiles import Profile
from tray.ui import labels
from tray.ui.model import SEPARATOR, Action, ActionKind, Item, note, submenu

#: No profile failed to start.
NO_FAILURES: Mapping[str, str] = MappingProxyType({})


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


def is_running(p: Profile, sessions: Sequence[labels.SessionLike], current_context: str | None,
               grouped: Set[str] = frozenset()) -> bool:
    """True while the profile has a forward (running or in error), or its namespace group runs (``grouped``:
    the profiles whose group runs, members or not): the menu then offers to stop it."""
    return p.name in grouped or bool(profile_sessions(p, sessions, current_context))


def profile_status(p: Profile, sessions: Sequence[labels.SessionLike], current_context: str | None,
                   failures: Mapping[str, str] = NO_FAILURES, grouped: Set[str] = frozenset()) -> str:
    """``error`` (a forward of it failed, or it could not start), ``running`` (its namespace group too,
    before it has members) or ``stopped``."""
    mine = profile_sessions(p, sessions, current_context)
    if p.name in failures or any(s.status == Status.ERROR for s in mine):
        return Status.ERROR
    return "running" if p.name in grouped or any(s.status in labels.RUNNING for s in mine) else "stopped"


def profile_label(p: Profile, current_context: str | None) -> str:
    """'shop-web  (svc/web 8080 → 80 · tender-a/shop)'."""
    ports = ", ".join(labels.spec_ports_text(spec) for spec in p.ports)
    where = f"{p.context or current_context or 'current context'}/{p.namespace or 'default namespace'}"
    return f"{p.name}  ({p.target} {ports} {labels.DOT} {where})"


def _profile_item(p: Profile, sessions: Sequence[labels.SessionLike], current: str | None,
                  failures: Mapping[str, str], grouped: Set[str] = frozenset()) -> Item:
    running = is_running(p, sessions, current, grouped)
    action = Action(ActionKind.PROFILE_STOP if running else ActionKind.PROFILE_START, (p.name,))
    label = profile_label(p, current)
    if profile_status(p, sessions, current, failures, grouped) == Status.ERROR:
        label += f"  {Status.ERROR}"
    return Item(label, action, checked=running)


def profiles_menu(
    profiles: Sequence[Profile],
    sessions: Sequence[labels.SessionLike],
    *,
    current_context: str | None,
    error: str | None = None,
    failures: Mapping[str, str] = NO_FAILURES,
    grouped: Set[str] = frozenset(),
) -> Item:
    """The Profiles submenu: loose profiles, then a submenu per group.

    A group's label counts its profiles truthfully: '(1 of 3 running, 1
    error)' -- a profile in error (``failures``: could not start; or a
    forward of it failed) is never counted as running.
    """
    items: list[Item] = []
    groups: dict[str | None, list[Profile]] = {}
    for p in profiles:
        groups.setdefault(p.group, []).append(p)
    for p in groups.pop(None, []):
        items.append(_profile_item(p, sessions, current_context, failures, grouped))
    if items and groups:
        items.append(SEPARATOR)
    for group, members in groups.items():
        states = [profile_status(p, sessions, current_context, failures, grouped) for p in members]
        running = states.count("running")
        errors = states.count(Status.ERROR)
        count = f"{running} of {len(members)} running" + (f", {labels.plural(errors, 'error')}" if errors else "")
        children = [
            Item("Start all", Action(ActionKind.GROUP_START, (group,)), enabled=running < len(members)),
            Item("Stop all", Action(ActionKind.GROUP_STOP, (group,)), enabled=states.count("stopped") < len(members)),
            SEPARATOR,
            *(_profile_item(p, sessions, current_context, failures, grouped) for p in members),
        ]
        items.append(submenu(f"{group} ({count})", children))
    if not profiles:
        items.append(note("No profiles yet"))
    items.append(SEPARATOR)
    if error:
        items.append(note(f"⚠ {labels.shorten(error, 110)}"))
    items.append(Item(f"Edit profiles{labels.ELLIPSIS}", Action(ActionKind.EDIT_PROFILES)))
    return submenu("Profiles", items)
