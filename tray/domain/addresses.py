"""Local addresses a forward listens on (kubectl port-forward's ``--address``)."""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_ADDRESS", "LOCALHOST_ADDRESSES", "bind_addresses"]

#: kubectl port-forward's default ``--address``: IPv4 loopback only.
DEFAULT_ADDRESS: Final = "127.0.0.1"
#: What ``localhost`` binds to (kubectl binds both loopbacks for it).
LOCALHOST_ADDRESSES: Final = ("127.0.0.1", "::1")


def bind_addresses(address: str) -> list[str]:
    """The addresses to listen on for ``address``: both loopbacks for ``localhost``, else itself."""
    return list(LOCALHOST_ADDRESSES) if address == "localhost" else [address]
