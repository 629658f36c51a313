"""Starting a profile's forwards on an engine: one rule for the tray, ``tender run``, the API and the daemon.

A profile starts one forward per port, tagged with the profile's name; a port
already forwarded for that profile is left as it is, so starting a profile
twice (or Retry after a partial start) starts only what is missing.  A
``target: namespace/NS`` profile starts a namespace group instead
(``ForwardManager.start_group``: every Service of NS, followed), tagged the
same way; its member forwards start as the Services are listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tray.domain.spec import ForwardSpec
from tray.errors import UsageError
from tray.profiles.model import Profile

__all__ = ["start_profile", "start_profiles", "stop_profile", "local_port_of"]


def local_port_of(spec: Any) -> int | None:
    """The engine's ``local_port`` for a :class:`~tray.domain.portspec.PortSpec`.

    The typed local port; None for the bare-name form (listen on the number
    the name resolves to, kubectl's rule); 0 for "any free port".
    """
    if spec.local is not None:
        return int(spec.local)
    return None if spec.local_same_as_remote else 0


def start_profile(manager: Any, profile: Profile, current_context: str | None) -> list[str]:
    """Start ``profile``'s forwards on ``manager`` (a ForwardManager); returns the new session ids.

    ``current_context``: the kubeconfig's current context, used when the
    profile names none.  Ports already forwarded for the profile (same remote
    port and protocol) are skipped.  Each forward carries its port's protocol
    and the profile's relay image (its own, else the file's; None: the default).
    A ``namespace/NS`` profile starts its group (unless one runs for it) and
    returns no ids: its members start once the Services are listed.
    Raises :class:`UsageError` when there is no context to use, or what
    ``manager.start`` raises (an unknown context, a local port taken); the
    forwards started before the failing port keep running.  Blocks for the
    engine's lock and a kubeconfig read (milliseconds).
    """
    context = profile.context or current_context
    if context is None:
        from tray.kube.kubeconfig import load_kubeconfig, no_context_message

        raise UsageError(f"profile {profile.name}: "
                         + no_context_message(load_kubeconfig(manager.kubeconfig), "set context: NAME"))
    if profile.is_namespace:
        from tray.domain.servicegroup import NamespaceSpec

        if not any(g.profile == profile.name for g in manager.groups()):
            manager.start_group(NamespaceSpec(context, profile.namespace, profile.selector or "",
                                              profile=profile.name, balance=getattr(profile, "balance", "auto")))
        return []
    running = {(str(s.remote_port), getattr(s, "protocol", "TCP"))
               for s in manager.list() if s.profile == profile.name}
    ids = []
    for spec in profile.ports:
        if (str(spec.remote), spec.protocol) in running:
            continue
        ids.append(manager.start(ForwardSpec(context, profile.namespace, profile.target, spec.remote,
                                             local_port=local_port_of(spec), address=profile.address,
                                             profile=profile.name, balance=profile.balance,
                                             protocol=spec.protocol, relay_image=profile.effective_relay_image)))
    return ids


def start_profiles(manager: Any, profiles: Iterable[Profile],
                   current_context: Callable[[], str | None]) -> tuple[list[str], list[tuple[Profile, UsageError]]]:
    """Start several profiles (:func:`start_profile` each); one that cannot start does not stop the others.

    ``current_context()`` gives the kubeconfig's current context; it is asked
    only when a profile names none (and again while it answers None).  What
    it raises propagates.  Returns the new session ids and, for each profile
    that could not start, the profile and its :class:`UsageError`.  Blocks as
    :func:`start_profile` does, once per profile.
    """
    started: list[str] = []
    failed: list[tuple[Profile, UsageError]] = []
    current = None
    for p in profiles:
        try:
            if p.context is None and current is None:
                current = current_context()
            started += start_profile(manager, p, p.context or current)
        except UsageError as exc:
            failed.append((p, exc))
    return started, failed


def stop_profile(manager: Any, name: str) -> list[str]:
    """Stop every forward tagged with profile ``name`` and its namespace group, if any; returns what stopped.

    One rule for the tray's and the API's profile stop: a ``namespace/NS``
    profile's group is stopped by its own id (``ForwardManager.stop``), so
    one whose Services are not listed yet (no member forward) stops too and
    does not start members later.  Returns the ids stopped: the groups' and
    the profile's other forwards', then the stopped groups' members.
    Forwards stopped meanwhile from elsewhere are skipped.  Blocks as ``manager.stop`` does
    (milliseconds per forward; never on the cluster).
    """
    groups = [g for g in getattr(manager, "groups", list)() if g.profile == name]
    grouped = {g.id for g in groups}
    singles = [s.id for s in manager.list() if s.profile == name and getattr(s, "group", None) not in grouped]
    stopped: list[str] = []
    members: list[str] = []
    for i in [g.id for g in groups] + singles:
        try:
            manager.stop(i)
        except UsageError:
            continue  # stopped meanwhile
        stopped.append(i)
        members += [m for g in groups if g.id == i for m in g.members]
    return stopped + members
