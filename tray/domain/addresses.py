"""Local addresses a forward listens on (kubectl port-forward's ``--address``)."""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["AUTO_ADDRESS", "DEFAULT_ADDRESS", "LOCALHOST_ADDRESSES", "auto_address", "bind_addresses"]

#: kubectl port-forward's default ``--address``: IPv4 loopback only.
DEFAULT_ADDRESS: Final = "127.0.0.1"
#: What ``localhost`` binds to (kubectl binds both loopbacks for it).
LOCALHOST_ADDRESSES: Final = ("127.0.0.1", "::1")


def bind_addresses(address: str) -> list[str]:
    """The addresses to listen on for ``address``: both loopbacks for ``localhost``, else itself."""
    return list(LOCALHOST_ADDRESSES) if address == "localhost" else [address]


#: The ``address`` value that asks for a loopback address of the forward's own (:func:`auto_address`).
AUTO_ADDRESS: Final = "auto"


def auto_address(context: str, namespace: str, name: str) -> str:
    """A stable IPv4 loopback address of its own for one forward, ``127.A.B.C``.

    ``context``, ``namespace``, ``name``: the kubeconfig context, the
    namespace and the target's name (a Service's name for ``svc/web``).
    The same three give the same address on every machine and run, so a
    hosts-file line written once stays right.  ``A`` is 1-254 (never
    ``127.0.0.x``, where ``127.0.0.1`` lives), ``B`` 0-255, ``C`` 1-254:
    about 16 million addresses, derived from the SHA-256 of the three names.

    Linux routes all of ``127.0.0.0/8`` to the loopback interface, so these
    bind without root.  macOS configures only ``127.0.0.1``: each other
    address needs ``sudo ifconfig lo0 alias 127.A.B.C up`` once per boot.
    Pure; never raises.
    """
    digest = hashlib.sha256(f"{context}\0{namespace}\0{name}".encode()).digest()
    a = 1 + digest[0] % 254
    b = digest[1]
    c = 1 + digest[2] % 254
    return f"127.{a}.{b}.{c}"
