"""The D-Bus session bus, with deadlines: where it is, connecting, calling.

dbus-fast (pure Python on asyncio) has no timeout of its own: a bus daemon
that accepts and never answers, or a peer that never replies, would hang
the caller.  Everything here has a deadline and fails with one exception,
:class:`BusUnavailable`, whose message is one line for the user.  And a
connection made here survives a bus daemon that is slow to read (dbus-fast
alone closes it when the socket buffer is full: :class:`_FullIsNotFatal`).

dbus-fast finds the session bus only through ``DBUS_SESSION_BUS_ADDRESS``;
systemd sessions also put it at ``$XDG_RUNTIME_DIR/bus`` without always
exporting the variable (a login-time launcher, ``env -i``), so that socket is
the fallback (as libdbus and GDBus do).
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tray.errors import TenderError

if TYPE_CHECKING:  # dbus-fast is a Linux-only dependency: imported when a bus is used
    from dbus_fast.aio import MessageBus

#: How long connecting (socket, authentication, Hello) and a call may take by default, seconds.
DEFAULT_TIMEOUT = 2.0

DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"


class BusUnavailable(TenderError):
    """The session bus, or the peer called on it, did not serve the request.

    ``str(err)`` is one line.  ``error_name`` is the D-Bus error the peer
    answered (``org.freedesktop.DBus.Error.ServiceUnknown``...), or None when
    there was no answer (no bus, a timeout, the connection closed).
    """

    def __init__(self, message: str, error_name: str | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.error_name = error_name


class BusClosed(BusUnavailable):
    """The session bus connection closed under a request (the session is ending: the bus daemon went away).

    Not "no tray host": the tray ends, as when the connection closes later.
    """


def session_bus_address(env: Mapping[str, str] | None = None) -> str:
    """The session bus's address: ``DBUS_SESSION_BUS_ADDRESS``, else ``unix:path=$XDG_RUNTIME_DIR/bus``.

    Does not block.  Raises :class:`BusUnavailable` if neither is there.
    """
    env = os.environ if env is None else env
    address = env.get("DBUS_SESSION_BUS_ADDRESS", "").strip()
    if address:
        return address
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime:
        path = os.path.join(runtime, "bus")
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return f"unix:path={path}"
        except OSError:
            pass
    raise BusUnavailable("no session bus (DBUS_SESSION_BUS_ADDRESS is not set and there is no $XDG_RUNTIME_DIR/bus)")


async def connect(address: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> MessageBus:
    """A connected bus at ``address`` (default: :func:`session_bus_address`), within ``timeout`` seconds.

    Must run on the event loop that will serve the connection.  Raises
    :class:`BusUnavailable` if there is no bus, it refuses us, or it does not
    finish the handshake in time (nothing is left open then).
    """
    from dbus_fast.aio import MessageBus

    address = address or session_bus_address()
    try:
        bus = MessageBus(bus_address=address)
    except Exception as exc:  # an address dbus-fast cannot use ("autolaunch:", a typo)
        raise BusUnavailable(f"cannot use the session bus address {address!r}: {_one_line(exc)}") from None
    try:
        await asyncio.wait_for(bus.connect(), timeout)
        _survive_a_full_socket(bus)
        return bus
    except asyncio.CancelledError:
        _drop(bus)
        raise
    except asyncio.TimeoutError:
        _drop(bus)
        raise BusUnavailable(f"the session bus did not answer within {timeout:g} s ({address})") from None
    except Exception as exc:  # OSError (no socket, refused), EOFError, dbus-fast's AuthError...
        _drop(bus)
        raise BusUnavailable(f"cannot connect to the session bus ({address}): {_one_line(exc)}") from None


async def call(bus: MessageBus, destination: str, path: str, interface: str, member: str, signature: str = "",
               body: Sequence[Any] = (), *, timeout: float = DEFAULT_TIMEOUT, auto_start: bool = True) -> list[Any]:
    """Call a method and return its reply's arguments (a list), within ``timeout`` seconds.

    ``auto_start=False`` asks the bus not to start an activatable service for
    this call (a missing service answers ServiceUnknown at once).  Raises
    :class:`BusUnavailable` for an error reply (its ``error_name`` set), a
    timeout, or a closed connection.
    """
    from dbus_fast import Message, MessageFlag, MessageType

    msg = Message(destination=destination, path=path, interface=interface, member=member, signature=signature,
                  body=list(body), flags=MessageFlag.NONE if auto_start else MessageFlag.NO_AUTOSTART)
    try:
        reply = await asyncio.wait_for(bus.call(msg), timeout)
    except asyncio.TimeoutError:
        raise BusUnavailable(f"{destination} did not answer {member} within {timeout:g} s") from None
    except Exception as exc:  # the connection closed under us
        raise BusUnavailable(f"{member} on {destination} failed: {_one_line(exc)}") from None
    if reply is None:
        return []
    if reply.message_type == MessageType.ERROR:
        text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else reply.error_name
        raise BusUnavailable(f"{destination} answered {member} with {reply.error_name}: {text}", reply.error_name)
    return list(reply.body)


async def get_property(bus: MessageBus, destination: str, path: str, interface: str, name: str, *,
                       timeout: float = DEFAULT_TIMEOUT, auto_start: bool = True) -> Any:
    """One property's value (the Variant unpacked); raises :class:`BusUnavailable` as :func:`call`."""
    (value,) = await call(bus, destination, path, "org.freedesktop.DBus.Properties", "Get", "ss", (interface, name),
                          timeout=timeout, auto_start=auto_start)
    return value.value


async def add_match(bus: MessageBus, rule: str, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Ask the bus daemon to route the signals matching ``rule`` to us; raises :class:`BusUnavailable`."""
    await call(bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, "AddMatch", "s", (rule,), timeout=timeout)


async def name_has_owner(bus: MessageBus, name: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """Whether some connection owns ``name`` now (no activation); raises :class:`BusUnavailable`."""
    (owned,) = await call(bus, DBUS_NAME, DBUS_PATH, DBUS_NAME, "NameHasOwner", "s", (name,), timeout=timeout)
    return bool(owned)


class _FullIsNotFatal:
    """The connection's socket as dbus-fast's writer sees it, where a full send buffer is a write of 0 bytes.

    dbus-fast (5.2, and dbus-next before it: python-dbus-next issue 153)
    takes the ``BlockingIOError`` of a non-blocking ``send`` on a full socket
    for a broken connection and closes it -- the tray icon vanished when the
    bus daemon was slow to read (a busy machine, a large menu or icon sent
    at once).  Reporting 0 bytes written instead makes the writer do what it
    does after a partial write: wait until the socket is writable, then go on.
    Only ``send`` is wrapped (no file descriptors are passed on this connection).
    """

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def send(self, data: Any, *flags: int) -> int:
        try:
            return int(self._sock.send(data, *flags))
        except (BlockingIOError, InterruptedError):
            return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _survive_a_full_socket(bus: MessageBus) -> None:
    writer = getattr(bus, "_writer", None)
    if writer is not None and hasattr(writer, "sock") and not isinstance(writer.sock, _FullIsNotFatal):
        writer.sock = _FullIsNotFatal(writer.sock)


def _drop(bus: MessageBus) -> None:
    try:
        bus.disconnect()
    except Exception:  # never connected: nothing to close
        pass


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
