"""A blocking D-Bus client for tests, on dbus-fast (no PyGObject).

dbus-fast is asyncio-only; the tests are plain blocking code.  One event loop
runs on a daemon thread for the whole test process (:func:`loop`) and every
:class:`Bus` call is a coroutine submitted to it and waited for, with a
timeout.  Messages are built by hand (no introspection), so a call says its
signature: ``bus.call(dest, path, iface, "GetLayout", "iias", [0, -1, []])``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()

DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
PROPERTIES = "org.freedesktop.DBus.Properties"


def loop() -> asyncio.AbstractEventLoop:
    """The harness's event loop (started on first use on a daemon thread; never stopped)."""
    global _loop
    with _lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="harness-dbus", daemon=True).start()
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
    """Run ``coro`` on the harness loop; block until it is done (at most ``timeout`` s).

    Raises what the coroutine raises, or ``TimeoutError``.
    """
    return asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), loop()).result(timeout + 1)


async def connect(address: str) -> MessageBus:
    """A connected dbus-fast bus (must be made on the loop it will run on)."""
    return await MessageBus(bus_address=address).connect()


class BusError(AssertionError):
    """A D-Bus call answered with an error (``name``: the D-Bus error name)."""

    def __init__(self, name: str, text: str) -> None:
        super().__init__(f"{name}: {text}")
        self.name = name


class Bus:
    """One connection to the bus at ``address`` (a D-Bus address string).

    Blocks for at most ``timeout`` s while connecting; raises ``TimeoutError``
    or ``OSError`` if the bus cannot be reached.
    """

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.bus: MessageBus = run(connect(address), timeout)

    @property
    def unique_name(self) -> str:
        return self.bus.unique_name

    def close(self) -> None:
        """Disconnect (never raises)."""
        try:
            loop().call_soon_threadsafe(self.bus.disconnect)
        except RuntimeError:
            pass

    def call(self, dest: str, path: str, iface: str, member: str, signature: str = "", body: list | None = None,
             timeout: float = 10.0) -> list:
        """Call a method; return the reply's body (a list, one element per out-argument).

        Blocks until the answer (at most ``timeout`` s).  Raises :class:`BusError`
        for an error reply, ``TimeoutError`` for no answer.
        """
        msg = Message(destination=dest, path=path, interface=iface, member=member, signature=signature,
                      body=body or [])
        reply = run(self.bus.call(msg), timeout)
        if reply.message_type == MessageType.ERROR:
            raise BusError(reply.error_name or "error", str(reply.body[0]) if reply.body else "")
        return reply.body

    def get_property(self, dest: str, path: str, iface: str, name: str, timeout: float = 10.0) -> Any:
        """A property's value, unwrapped from its Variant (raises like :meth:`call`)."""
        [value] = self.call(dest, path, PROPERTIES, "Get", "ss", [iface, name], timeout)
        return value.value if isinstance(value, Variant) else value

    def get_all(self, dest: str, path: str, iface: str, timeout: float = 10.0) -> dict[str, Any]:
        """All properties of ``iface``, unwrapped: {name: value}."""
        [values] = self.call(dest, path, PROPERTIES, "GetAll", "s", [iface], timeout)
        return {k: v.value for k, v in values.items()}

    def name_owner(self, name: str) -> str | None:
        """The unique name owning ``name`` now, or None (never activates a service)."""
        try:
            return self.call(*DBUS, "GetNameOwner", "s", [name])[0]
        except BusError:
            return None

    def pid_of(self, name: str) -> int:
        """The process id behind a bus name, or -1 if nobody owns it."""
        try:
            return self.call(*DBUS, "GetConnectionUnixProcessID", "s", [name])[0]
        except BusError:
            return -1


__all__ = ["Bus", "BusError", "DBusError", "loop", "run"]
