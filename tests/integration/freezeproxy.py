"""A TCP proxy in front of the API server that can freeze every flow.

Frozen, it keeps every socket open and drops every byte, in both
directions, on the flows it has and on new ones (which it still accepts):
what a laptop meets after sleep, a Wi-Fi change or a VPN coming up — no FIN,
no RST, nothing arrives.  Thawed, new flows work again; bytes dropped from
an old flow have broken its TLS stream, as they would.

Only loopback: it listens on 127.0.0.1 and forwards to the API server's
loopback address.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class FreezeProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.frozen = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._socks: list[socket.socket] = []
        self._frozen_socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="freezeproxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.frozen.is_set() or src in self._frozen_socks:
                    continue  # dropped: the flow stays open and silent
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @contextmanager
    def freeze(self) -> Iterator[None]:
        self.frozen.set()
        try:
            yield
        finally:
            self.frozen.clear()

    def freeze_existing(self) -> int:
        """Freeze the flows open now, for good; new flows pass.  Returns how many."""
        with self._lock:
            self._frozen_socks.update(self._socks)
            return len(self._socks) // 2

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass
