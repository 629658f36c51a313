"""Starting a profile's forwards on an engine: one rule for the tray, ``tender run``, the API and the daemon.

A profile starts one forward per port, tagged with the profile's name; a port
already forwarded for that profile is left as it is, so starting a profile
twice (or Retry after a partial start) starts only what is missing.
"""

from __future__ import annotations

from typing import Any

from tray.domain.spec import ForwardSpec
from tray.errors import UsageError
from tray.profiles.model import Profile

__all__ = ["start_profile", "local_port_of"]


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
    profile names none.  Ports already forwarded for the profile are skipped.
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
    running = {str(s.remote_port) for s in manager.list() if s.profile == profile.name}
    ids = []
    for spec in profile.ports:
        if str(spec.remote) in running:
            continue
        ids.append(manager.start(ForwardSpec(context, profile.namespace, profile.target, spec.remote,
                                             local_port=local_port_of(spec), address=profile.address,
                                             profile=profile.name)))
    return ids
