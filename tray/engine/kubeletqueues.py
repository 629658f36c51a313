"""A model of the kubelet's SPDY frame workers: where each frame Tender sends waits, and what an answered PING proves.

:class:`KubeletQueues` is sans-I/O bookkeeping for :class:`tray.engine.tunnel.Tunnel`,
which reports every frame as it writes it and every PING answer, and asks
which workers it may use for new streams and which look stuck.  Its rules
are moby/spdystream's (``connection.go``, ``Connection.Serve``, v0.5.1), the
SPDY library the kubelet's streaming server runs for each port-forward
session; the class docstring states them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KubeletQueues", "WORKERS", "QUEUE_FRAMES"]

#: moby/spdystream's frame workers per session (``FRAME_WORKERS``) and the
#: frames each one's queue holds before the session's reader waits (``QUEUE_SIZE``).
WORKERS = 5
QUEUE_FRAMES = 50


@dataclass(slots=True)
class _PingRecord:
    worker: int
    index: int  # its place among the frames sent to that worker (1-based)
    seq: int  # its place among all our PINGs
    overtaken_at: float | None = None  # when a later PING to another worker was answered


class KubeletQueues:
    """Where the kubelet's SPDY library puts each frame Tender sends, and what an answered PING proves.

    Sans-I/O: the tunnel reports every frame as it writes it (in wire order)
    and every PING answer; this says which of the kubelet's frame workers
    holds what, which workers hold data that is not yet known to be taken,
    and which look stuck.  The rules are moby/spdystream's
    (``connection.go``, ``Connection.Serve``, v0.5.1), which the kubelet's
    streaming server (k8s.io/streaming's httpstream/spdy) runs for each
    port-forward session:

    * one goroutine reads the session's frames in order and queues each for
      one of :data:`WORKERS` frame workers: a stream's frames (SYN_STREAM,
      DATA, RST_STREAM) for worker ``stream_id % WORKERS``, each PING (and
      any control frame it does not know) for the next worker round-robin;
    * each worker's queue holds :data:`QUEUE_FRAMES`; the reader waits while
      the one it needs is full, and then nothing on the session moves;
    * a worker handles its frames in order (all of Tender's have priority 0),
      handing a DATA frame's bytes to the stream's reader (the kubelet's copy
      to the pod) and waiting until it takes them; it answers a PING at once.

    So an answered PING proves that its worker has handled every frame queued
    for it before the PING: the bytes of those DATA frames were taken by the
    kubelet's copy to the pod.  A PING still unanswered after a later PING to
    another worker came back means that its worker is stuck (waiting for a
    pod that does not read); :meth:`stalled` names such workers once that has
    lasted ``stall_after`` seconds.
    """

    def __init__(self, stall_after: float = 1.0) -> None:
        """``stall_after``: seconds an overtaken PING may stay unanswered before its worker counts as stuck."""
        self.stall_after = stall_after
        self.sent = [0] * WORKERS  # frames written for each worker
        self.handled = [0] * WORKERS  # of those, how many are known handled
        self.bulk_mark = [0] * WORKERS  # the last frame for each worker that must be seen handled
        self.bulk_from = [0] * WORKERS  # the first bulk frame since the worker was last seen clear
        self.last_ping = [0] * WORKERS  # the index of the last PING for each worker
        self._next_worker = 0  # the reader's round-robin counter (PINGs only: we send no other)
        self._pings: dict[int, _PingRecord] = {}
        self._seq = 0

    def stream_frame(self, stream_id: int, *, bulk: bool = False) -> int:
        """A frame of ``stream_id`` written; its index in its worker's queue.

        ``bulk``: its worker is reserved (:meth:`reserved`) until it is seen handled.
        """
        worker = stream_id % WORKERS
        self.sent[worker] += 1
        if bulk:
            if not self.reserved(worker):
                self.bulk_from[worker] = self.sent[worker]
            self.bulk_mark[worker] = self.sent[worker]
        return self.sent[worker]

    def next_ping_worker(self) -> int:
        """The worker (0 to WORKERS-1) the next PING written will go to."""
        return self._next_worker

    def ping(self, ping_id: int | None = None) -> int:
        """A PING written (ours with its id, or an echo of the server's); the worker it goes to.

        An echo takes its worker's turn and a place in its queue, but no
        answer comes back for it: it covers nothing (:meth:`covered`).
        """
        worker = self._next_worker
        self._next_worker = (worker + 1) % WORKERS
        self.sent[worker] += 1
        if ping_id is not None:
            self.last_ping[worker] = self.sent[worker]
            self._seq += 1
            self._pings[ping_id] = _PingRecord(worker, self.sent[worker], self._seq)
        return worker

    def answered(self, ping_id: int, now: float) -> int | None:
        """Our PING came back (``now``: the loop's clock, seconds): its worker, or None if not ours.

        Every frame queued for that worker before the PING counts as handled;
        earlier PINGs to other workers that are still unanswered count as
        overtaken from ``now`` on.
        """
        record = self._pings.pop(ping_id, None)
        if record is None:
            return None
        worker = record.worker
        self.handled[worker] = max(self.handled[worker], record.index)
        for other_id, other in list(self._pings.items()):
            if other.seq >= record.seq:
                continue
            if other.worker == worker:
                del self._pings[other_id]  # handled in order: it was answered, or lost with the frame
            elif other.overtaken_at is None:
                other.overtaken_at = now
        return worker

    def outstanding(self, worker: int) -> int:
        """Frames written for ``worker`` not yet known handled (an upper bound of its queue).

        It only falls when a PING to the worker is answered, so frames of
        connections that needed no acknowledgement (never bulk) stay in it
        for as long as no PING went there: a loose bound.
        """
        return self.sent[worker] - self.handled[worker]

    def behind_bulk(self, worker: int) -> int:
        """Frames that may wait in ``worker``'s queue should its bulk data never be taken (0: it holds none).

        A worker waits only on bulk DATA (the pod's socket takes anything
        else, see :class:`KubeletQueues`), so if it waits for good, it waits
        on the first bulk frame not yet known handled; every frame before
        that one was handled.  Counted from there (or from the last frame
        known handled, if later), not from the first frame never
        acknowledged: a worker that carried many short connections without a
        PING has a large :meth:`outstanding` but nothing queued behind bulk
        data.  A bound on what a stuck worker's queue holds.
        """
        if not self.reserved(worker):
            return 0
        return self.sent[worker] - max(self.handled[worker], self.bulk_from[worker] - 1)

    def pings_waiting(self, worker: int) -> int:
        """Our PINGs to ``worker`` not yet answered."""
        return sum(1 for r in self._pings.values() if r.worker == worker)

    def reserved(self, worker: int) -> bool:
        """The worker holds bulk data not yet seen handled: new streams keep away from it."""
        return self.handled[worker] < self.bulk_mark[worker]

    def covered(self, worker: int) -> bool:
        """A PING of ours written after every frame for the worker is on its way (its answer will credit them)."""
        return self.last_ping[worker] == self.sent[worker] and self.last_ping[worker] > self.handled[worker]

    def stalled(self, now: float) -> set[int]:
        """Workers with a PING overtaken ``stall_after`` seconds or more before ``now``."""
        return {r.worker for r in self._pings.values()
                if r.overtaken_at is not None and now - r.overtaken_at >= self.stall_after}

    def overtaken_since(self) -> float | None:
        """The earliest time a still unanswered PING was overtaken (None: none is)."""
        times = [r.overtaken_at for r in self._pings.values() if r.overtaken_at is not None]
        return min(times) if times else None
