"""``address: auto``: where a forward asked to listen on "an address of its own" really listens.

:func:`tray.domain.addresses.auto_address` derives the address from the
context, the namespace and the target's name; this module turns a spec's
``auto`` into that address when the forward starts
(:meth:`tray.engine.manager.ForwardManager.start`), and on macOS, where only
``127.0.0.1`` is configured on ``lo0``, refuses an address that has no alias
yet with the one command that adds it.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys

from tray.domain.addresses import AUTO_ADDRESS, LOCALHOST_ADDRESSES, auto_address
from tray.errors import UsageError

__all__ = ["resolve_address", "macos_alias_message", "loopback_configured", "listeners_clash"]


def macos_alias_message(address: str) -> str:
    """The one line shown when ``address`` (``127.A.B.C``) is not configured on macOS's ``lo0``.

    Names the command that configures it (``sudo ifconfig lo0 alias
    ADDRESS up``; it lasts until the next reboot).  Pure.
    """
    return (f"address auto: {address} is not configured on this Mac (macOS has only 127.0.0.1 on lo0); "
            f"add it once per boot with: sudo ifconfig lo0 alias {address} up")


def loopback_configured(address: str) -> bool:
    """Whether this machine can listen on the IPv4 ``address`` (binds a socket to port 0, then closes it).

    False only when the system says the address is not one of its own
    (``EADDRNOTAVAIL``); any other failure is left to the listener, which
    reports it.  Blocks for a system call (microseconds).
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((address, 0))
    except OSError as exc:
        return exc.errno != errno.EADDRNOTAVAIL
    finally:
        s.close()
    return True


def resolve_address(address: str, context: str, namespace: str, name: str, *, platform: str = sys.platform) -> str:
    """The address a forward listens on: ``address`` itself, or for ``auto`` the forward's own ``127.A.B.C``.

    ``context``: the kubeconfig context's name; ``namespace``: the concrete
    namespace (the context's default already filled in); ``name``: the
    target's name (``web`` for ``svc/web``).  On macOS (``platform``
    ``darwin``) an auto address that is not configured raises
    :class:`UsageError` (``field`` ``address``) with
    :func:`macos_alias_message`.  Blocks only for that check (microseconds).
    """
    if address != AUTO_ADDRESS:
        return address
    concrete = auto_address(context, namespace, name)
    if platform == "darwin" and not loopback_configured(concrete):
        raise UsageError(macos_alias_message(concrete), field="address")
    return concrete


def listeners_clash(a: str, b: str) -> bool:
    """Whether two forwards of one engine on the same local port, on addresses ``a`` and ``b``, clash.

    The same address clashes, and ``localhost`` (``127.0.0.1`` and ``::1``)
    with any other but a loopback address of its own (``address: auto``'s
    ``127.A.B.C``): the engine refuses those at start.  Anything else is left
    to the listener (a wildcard's clash shows as the forward's error).  Pure.
    """
    if a == b:
        return True
    if "localhost" in (a, b):
        other = b if a == "localhost" else a
        return not _own_loopback(other)
    return False


def _own_loopback(address: str) -> bool:
    """A loopback address other than 127.0.0.1 and ::1 (so apart from ``localhost``'s two)."""
    try:
        return ipaddress.ip_address(address).is_loopback and address not in LOCALHOST_ADDRESSES
    except ValueError:
        return False
