"""The soak's loopback TCP relay to the API server, whose open flows it can freeze.

:class:`FreezableRelay` listens on ``127.0.0.1`` (a free port) and relays each
accepted connection to ``upstream`` (the API server's ``host:port``), byte for
byte (TLS passes through untouched: the server's certificate names
``127.0.0.1``).  The daemon's kubeconfig copy points ``server:`` here.

:meth:`FreezableRelay.freeze` stops relaying on every flow open at that
moment, what a suspended laptop, a NAT timeout or a dead VPN does to a TCP
flow: both sockets stay open and are never closed by the relay while frozen;
what either side sends is read and dropped (so the sender never learns
anything: no FIN, no RST, no error), and an end-of-stream from the API
server is not passed on.  Only Tender closing its side ends a frozen flow
(the time is recorded: that is Tender noticing).  New flows opened during a
freeze pass normally (the network is back for new connections, as after a
VPN reconnect).  :meth:`FreezableRelay.thaw` ends the freeze: the frozen
flows still open are closed (both ends see the connection end; their
dropped bytes are lost, as a NAT that forgot them would answer with a
reset) and counted.

Threads: one acceptor, two pumps per flow; every call returns at once.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

__all__ = ["FreezableRelay", "Flow"]


@dataclass
class Flow:
    """One relayed TCP connection: the client's (Tender's) socket and the upstream socket."""

    n: int
    client: socket.socket
    upstream: socket.socket
    opened: float  # time.monotonic()
    frozen_at: float | None = None
    closed_at: float | None = None
    closed_by: str = ""  # "tender", "server", "relay" (thaw or stop)
    dropped_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self, by: str) -> None:
        with self.lock:
            if self.closed_at is not None:
                return
            self.closed_at, self.closed_by = time.monotonic(), by
        for s in (self.client, self.upstream):
            try:  # shutdown first: a close alone does not end a socket another thread is blocked reading
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class FreezableRelay:
    """A relay from ``127.0.0.1:<port>`` to ``upstream`` (``(host, port)``); see the module docstring."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._flows: list[Flow] = []
        self._lock = threading.Lock()
        self._n = 0
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True, name="relay accept").start()

    # ------------------------------------------------------------ public
    def open_flows(self) -> list[Flow]:
        """The flows not closed yet."""
        with self._lock:
            return [f for f in self._flows if f.closed_at is None]

    def freeze(self) -> list[Flow]:
        """Freeze every flow open now; returns them.  Returns at once."""
        now = time.monotonic()
        frozen = []
        with self._lock:
            for f in self._flows:
                if f.closed_at is None and f.frozen_at is None:
                    f.frozen_at = now
                    frozen.append(f)
        return frozen

    def thaw(self, flows: list[Flow]) -> int:
        """End a freeze: close those of ``flows`` still open; returns how many that was."""
        n = 0
        for f in flows:
            if f.closed_at is None:
                f.close("relay")
                n += 1
        return n

    def stop(self) -> None:
        """Close the listener and every flow."""
        self._stopped = True
        try:
            self._server.close()
        except OSError:
            pass
        with self._lock:
            flows = list(self._flows)
        for f in flows:
            f.close("relay")

    # ------------------------------------------------------------ inside
    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._n += 1
                flow = Flow(self._n, client, upstream, time.monotonic())
                self._flows = [f for f in self._flows if f.closed_at is None or time.monotonic() - f.closed_at < 600]
                self._flows.append(flow)
            threading.Thread(target=self._pump, args=(flow, True), daemon=True, name=f"relay {flow.n} up").start()
            threading.Thread(target=self._pump, args=(flow, False), daemon=True, name=f"relay {flow.n} down").start()

    def _pump(self, flow: Flow, from_client: bool) -> None:
        src, dst = (flow.client, flow.upstream) if from_client else (flow.upstream, flow.client)
        while True:
            try:
                data = src.recv(262144)
            except OSError:
                data = b""
            if flow.closed_at is not None:
                return
            if flow.frozen_at is not None:
                if data:
                    flow.dropped_bytes += len(data)
                    continue
                if from_client:
                    flow.close("tender")  # Tender gave up on the frozen flow: it noticed
                return  # the server's end of stream does not reach Tender while frozen
            if not data:
                flow.close("tender" if from_client else "server")
                return
            try:
                dst.sendall(data)
            except OSError:
                if flow.frozen_at is None:
                    flow.close("tender" if not from_client else "server")
                return
