"""What one forward is: :class:`ForwardSpec`, the description every shell hands the engine.

The CLI (``tender forward``, ``tender run``), the tray (a menu click, a
profile) and tests all say what to forward the same way; the engine
(:meth:`tray.engine.manager.ForwardManager.start`) checks it and supervises it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tray.domain.addresses import DEFAULT_ADDRESS
from tray.domain.portspec import PortSpec, parse_port_spec
from tray.domain.targets import Target, parse_target, split_target_port
from tray.errors import UsageError

__all__ = ["ForwardSpec", "parse_target_and_ports"]


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
    ``protocol``: ``TCP`` or ``UDP``; UDP, ``host/``/``ip/`` targets and
    Services without pods go through a relay pod (:mod:`tray.engine.relay`)
    running ``relay_image`` (None: the settings' or the default,
    :data:`tray.domain.relaypod.DEFAULT_IMAGE`).
    """

    cluster: str
    namespace: str | None
    target: Target
    remote_port: int | str
    local_port: int | None = None
    address: str = DEFAULT_ADDRESS
    profile: str | None = None
    balance: str = "auto"
    protocol: str = "TCP"
    relay_image: str | None = None


def parse_target_and_ports(target_text: str, port_texts: list[str]) -> tuple[Target, list[PortSpec]]:
    """A target and its port specs as typed: ``("svc/web", ["8080:80"])``, ``("host/db.internal:5432", [])``.

    ``host/NAME:PORT`` and ``ip/ADDRESS:PORT`` carry their port: with no
    port spec it is the spec (local = remote), with specs it must agree with
    each spec's remote port.  Other targets need at least one spec.  Raises
    :class:`UsageError` whose ``field`` is ``"TARGET"`` or ``"port N"`` (the
    spec's index, 0-based) with the parsers' one-line message.  Pure.
    """
    try:
        bare, port = split_target_port(target_text)
        target = parse_target(bare)
    except UsageError as exc:
        raise UsageError(exc.message, field="TARGET") from None
    specs = []
    for i, text in enumerate(port_texts):
        try:
            spec = parse_port_spec(text)
        except UsageError as exc:
            raise UsageError(exc.message, field=f"port {i}") from None
        if port is not None and spec.remote != port:
            raise UsageError(f"port spec {text!r} names remote port {spec.remote}, but the target "
                             f"{target_text!r} says {port}", field=f"port {i}")
        specs.append(spec)
    if not specs and port is not None:
        specs.append(PortSpec(port, port))
    if not specs:
        example = f"{target}:5432" if target.relayed else f"{target} 8080:80"
        raise UsageError(f"no port to forward: give {target_text!r} a port spec ([LOCAL:]REMOTE) or, for a host or "
                         f"IP target, its port after ':' (e.g. {example})", field="TARGET")
    if target.relayed and any(isinstance(s.remote, str) for s in specs):
        raise UsageError(f"{target} has no named ports: give the port as a number", field="port 0")
    return target, specs
