"""Spare port-forward streams, opened ahead of the next connection (v4 path only).

Used when a forward falls back to v4 (:mod:`tray.engine.dialer`); the SPDY tunnel
needs no spares.  ``v4.channel.k8s.io`` carries one TCP connection per WebSocket, so every
new local connection would otherwise pay a TLS handshake and an HTTP upgrade
through the API server and the kubelet before its first byte: several times
kubectl's latency, whose SPDY/tunnelled session multiplexes streams over one
connection.  A forward that is in use therefore keeps one stream open ahead
of need; an accepted connection takes it at once and a replacement is opened
in the background.

The spare is only kept while the forward is busy (a connection within the
last :data:`WARM_FOR` seconds), so an idle forward holds no extra connection
to the pod and makes no API requests.  A spare is for one (pod, port): it is
discarded when the session moves to another pod.  Bytes a server sends first
(an SSH or PostgreSQL greeting) wait in the WebSocket's queue and reach the
client when it takes the stream, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.protocol import State

log = logging.getLogger(__name__)

__all__ = ["StreamPool", "WARM_FOR"]

#: How long after the last accepted connection a spare stream is kept.
WARM_FOR = 10.0

Opener = Callable[[str, int], Awaitable[ClientConnection]]


class StreamPool:
    """The spare v4 streams of one forward, for one (pod, port) at a time.  Runs on the engine's loop.

    Never blocks its callers: streams open and close in background tasks.
    """

    def __init__(self, opener: Opener, *, size: int = 4, clock: Callable[[], float] = time.monotonic) -> None:
        """``opener(pod, port)`` opens one stream (raising on failure: that spare is skipped).

        ``size``: spares kept (and being opened) at most; ``clock``: seconds,
        monotonic (tests pass a fake).  Opens nothing until :meth:`take`.
        """
        self._open = opener
        self.size = size
        self._clock = clock
        self._key: tuple[str, int] | None = None
        self._spares: list[ClientConnection] = []
        self._filling: set[asyncio.Task[None]] = set()
        self._last_use = -1e9
        self._expiry: asyncio.TimerHandle | None = None

    def take(self, pod: str, port: int) -> ClientConnection | None:
        """A ready (open) stream to ``pod``'s container ``port``, or None; schedules a refill.

        Taking for another (pod, port) than before discards the old spares.
        Never blocks (call on the loop); never raises.
        """
        self._last_use = self._clock()
        if self._key != (pod, port):
            self.flush()
            self._key = (pod, port)
        stream = None
        while self._spares:
            candidate = self._spares.pop(0)
            if candidate.state is State.OPEN:
                stream = candidate
                break
            asyncio.ensure_future(candidate.close())
        self._refill()
        self._arm_expiry()
        return stream

    def _refill(self) -> None:
        missing = self.size - len(self._spares) - len(self._filling)
        for _ in range(max(0, missing)):
            task = asyncio.ensure_future(self._fill(self._key))
            self._filling.add(task)
            task.add_done_callback(self._filling.discard)

    async def _fill(self, key: tuple[str, int] | None) -> None:
        if key is None:
            return
        try:
            stream = await self._open(*key)
        except Exception as exc:  # the next connection opens its own and reports
            log.debug("spare stream to %s failed: %s", key, exc)
            return
        if key != self._key or self._clock() - self._last_use > WARM_FOR:
            try:
                await stream.close()
            except asyncio.CancelledError:  # flushed meanwhile: leave no socket open
                stream.transport.abort()
                raise
            return
        self._spares.append(stream)

    def _arm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(WARM_FOR, self._expire)

    def _expire(self) -> None:
        self._expiry = None
        if self._clock() - self._last_use >= WARM_FOR - 0.01:
            self.flush()

    def flush(self) -> None:
        """Close every spare (the pod changed, the forward went idle or stopped).

        Spares being opened are cancelled.  Never blocks (the closes run in
        the background); the next :meth:`take` starts filling again.
        """
        spares, self._spares = self._spares, []
        for stream in spares:
            asyncio.ensure_future(stream.close())
        for task in list(self._filling):
            task.cancel()
        self._key = None

    def close(self) -> None:
        """:meth:`flush`, and stop the idle timer (the forward stopped).  Never blocks."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.flush()
