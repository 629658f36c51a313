"""What one forward is: :class:`ForwardSpec`, the description every shell hands the engine.

The CLI (``tender forward``, ``tender run``), the tray (a menu click, a
profile) and tests all say what to forward the same way; the engine
(:meth:`tray.engine.manager.ForwardManager.start`) checks it and supervises it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tray.domain.addresses import DEFAULT_ADDRESS
from tray.domain.targets import Target

__all__ = ["ForwardSpec"]


@dataclass(frozen=True)
class ForwardSpec:
    """One forward as the user asked for it (not yet checked against a cluster).

    ``cluster``: the kubeconfig context's name.  ``namespace``: None means the
    context's default namespace (kubectl's rule).  ``target``: what to
    forward to (a Pod, Service, Deployment, ...).  ``remote_port``: as kubectl
    reads it: a Service port (number or name) for a Service, a container port
    (number or name) otherwise.  ``local_port``: None means the same number as
    the remote port, 0 means any free port.  ``address``: the local address to
    listen on (``localhost`` means both loopbacks).  ``profile``: the name of
    the profile it came from, if any.  ``balance``: how new connections
    spread over a Service's ready pods (``round-robin``, ``pin``, ``sticky``;
    ``auto``: round-robin for a Service, pin otherwise; :mod:`tray.domain.balance`).
    """

    cluster: str
    namespace: str | None
    target: Target
    remote_port: int | str
    local_port: int | None = None
    address: str = DEFAULT_ADDRESS
    profile: str | None = None
    balance: str = "auto"
