"""The relay program's server: what a relay pod runs, after :mod:`tray.wire.relay`'s text.

Tender never runs this in its own process (the unit tests run the program as
a process, as the test cluster's kubelet does).  :func:`tray.engine.relay.relay_source`
joins :mod:`tray.wire.relay` (the wire format) and this module into one
program text for ``python3 -c``; so it uses the standard library only, runs
on Python >= 3.8, and takes the wire format's names from the text before it
(the import below serves type checkers and the tests).

Behaviour: see :mod:`tray.wire.relay` (the request line, ``ok``/``error``,
raw TCP, length-prefixed UDP, ``hold``; exit after ``--exit-idle`` seconds
without a connection).  Each failed upstream is one line on stdout, which
``kubectl logs`` shows.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from typing import Any, Callable

try:  # in the relay pod these names are defined by the wire format's text, joined before this one
    from tray.wire.relay import (DatagramDecoder, RelayProtocolError, encode_datagram, encode_reply,
                                 parse_request)
except ImportError:
    pass

__all__ = ["main", "read_datagrams"]

def _log(message: str) -> None:
    print(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message, flush=True)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return "name not resolved"
    errno = getattr(exc, "errno", None)
    if errno:
        return os.strerror(errno)  # asyncio's "Connect call failed (...)" hides it
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


async def read_datagrams(reader: asyncio.StreamReader, idle: float, last: Callable[[], float],
                         touch: Callable[[], None], deliver: Callable[[bytes], Any]) -> None:
    """Hand each framed datagram ``reader`` brings to ``deliver`` until EOF or ``idle`` seconds of quiet.

    ``last()``: the monotonic time of the flow's last datagram either way
    (``touch()`` marks one from ``reader``).  Both ends of a UDP flow run
    this: the relay towards its upstream socket, Tender towards the local
    client (:class:`tray.engine.relay.UdpListener`).  Returns when the
    flow ends; raises what ``reader`` raises.
    """
    decoder = DatagramDecoder()
    while True:
        left = idle - (time.monotonic() - last())
        if left <= 0:
            return
        try:
            data = await asyncio.wait_for(reader.read(65536), left)
        except asyncio.TimeoutError:
            continue
        if not data:
            return
        touch()
        for datagram in decoder.feed(data):
            deliver(datagram)


class _UpstreamDatagrams(asyncio.DatagramProtocol):
    def __init__(self, writer: asyncio.StreamWriter, touch: object) -> None:
        self.writer, self.touch = writer, touch

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.touch()  # type: ignore[operator]
        if not self.writer.is_closing():
            self.writer.write(encode_datagram(data))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        pass


class _Relay:
    def __init__(self, exit_idle: float, udp_idle: float, connect_timeout: float) -> None:
        self.exit_idle, self.udp_idle, self.connect_timeout = exit_idle, udp_idle, connect_timeout
        self.open = 0
        self.quiet_since = time.monotonic()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), 30)
                kind, host, port = parse_request(line)
            except (RelayProtocolError, asyncio.TimeoutError, ValueError, ConnectionError) as exc:
                writer.write(encode_reply(f"bad request: {_reason(exc)}"))
                return
            if kind == "hold":
                writer.write(encode_reply())
                while await reader.read(4096):
                    pass
            elif kind == "tcp":
                await self._tcp(reader, writer, host, port)
            else:
                await self._udp(reader, writer, host, port)
        except (ConnectionError, OSError):
            pass
        finally:
            self.open -= 1
            self.quiet_since = time.monotonic()
            try:
                writer.close()
            except Exception:
                pass

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                          self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            _log(f"tcp {host}:{port}: {_reason(exc)}")
            writer.write(encode_reply(f"cannot connect to {host}:{port}: {_reason(exc)}"))
            return
        writer.write(encode_reply())

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while True:
                    data = await src.read(65536)
                    if not data:
                        if dst.can_write_eof():
                            dst.write_eof()
                        return
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                dst.close()

        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            up_writer.close()

    async def _udp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        last = [time.monotonic()]

        def touch() -> None:
            last[0] = time.monotonic()

        try:
            transport, _ = await asyncio.wait_for(loop.create_datagram_endpoint(
                lambda: _UpstreamDatagrams(writer, touch), remote_addr=(host, port)), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            _log(f"udp {host}:{port}: {_reason(exc)}")
            writer.write(encode_reply(f"cannot reach {host}:{port} over UDP: {_reason(exc)}"))
            return
        writer.write(encode_reply())
        try:
            await read_datagrams(reader, self.udp_idle, lambda: last[0], touch, transport.sendto)
        finally:
            transport.close()

    async def watchdog(self) -> None:
        while True:
            await asyncio.sleep(1)
            if self.open == 0 and time.monotonic() - self.quiet_since >= self.exit_idle:
                _log(f"no connection for {self.exit_idle:g} s: exiting")
                return


async def _serve(listen: str, relay: _Relay) -> None:
    host, _, port = listen.rpartition(":")
    server = await asyncio.start_server(relay.handle, host.strip("[]") or "127.0.0.1", int(port))
    bound = server.sockets[0].getsockname()
    _log(f"tender relay listening on {bound[0]}:{bound[1]}")
    async with server:
        await relay.watchdog()


def main(argv: list[str] | None = None) -> int:
    """Run the relay: ``[--listen 127.0.0.1:8400] [--exit-idle S] [--udp-idle S] [--connect-timeout S]``.

    Blocks until the relay has been without connections for ``--exit-idle``
    seconds (default 60) or SIGTERM; returns the exit status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    opts = {"--listen": "127.0.0.1:8400", "--exit-idle": "60", "--udp-idle": "60", "--connect-timeout": "10"}
    while args:
        flag = args.pop(0)
        if flag not in opts or not args:
            print(f"usage: relay [--listen HOST:PORT] [--exit-idle S] [--udp-idle S] [--connect-timeout S]"
                  f" (bad argument {flag!r})", file=sys.stderr)
            return 2
        opts[flag] = args.pop(0)
    relay = _Relay(float(opts["--exit-idle"]), float(opts["--udp-idle"]), float(opts["--connect-timeout"]))
    try:
        asyncio.run(_serve(opts["--listen"], relay))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.exit(main())
