"""Tests for tray.engine.kubeletqueues: the kubelet's SPDY frame workers, as plain data.

Frames are reported as a tunnel writes them: a connection's opening (the
error stream's SYN_STREAM and empty FIN, the data stream's SYN_STREAM), its
request (DATA) and its FIN; PINGs round-robin from worker 0.  See
tests/unit/engine/test_tunnel_churn.py for the same through a Tunnel.
"""

from __future__ import annotations

from tray.engine.kubeletqueues import WORKERS, KubeletQueues
from tray.engine.tunnel import PING_LIMIT, WINDOW_FRAMES


def short_connection(q: KubeletQueues, error_id: int) -> None:
    """One short connection on streams ``error_id`` and ``error_id + 2`` (as Tunnel numbers them), no PING."""
    data_id = error_id + 2
    for stream_id in (error_id, error_id, data_id, data_id, data_id):  # SYN, FIN; SYN, DATA, FIN
        q.stream_frame(stream_id)


def test_short_connections_leave_no_bulk_data_behind_them():
    # 60 short connections and no PING: every worker has more frames never
    # acknowledged than a PING is allowed behind bulk data...
    q = KubeletQueues()
    for n in range(60):
        short_connection(q, 1 + 4 * n)
    assert min(q.outstanding(w) for w in range(WORKERS)) >= PING_LIMIT
    # ...yet none of them can wait behind bulk data: the pod took them all.
    assert [q.behind_bulk(w) for w in range(WORKERS)] == [0] * WORKERS
    # The next connection turns bulk (its data stream 243 on worker 3):
    # only its own frame may be stuck there, so a PING may follow it.
    q.stream_frame(241), q.stream_frame(241), q.stream_frame(243)
    q.stream_frame(243, bulk=True)
    assert q.reserved(3) and q.outstanding(3) > PING_LIMIT
    assert q.behind_bulk(3) == 1
    for _ in range(WINDOW_FRAMES - 2):
        q.stream_frame(243, bulk=True)
    assert q.behind_bulk(3) == WINDOW_FRAMES - 1 < PING_LIMIT


def test_an_answer_counts_from_the_ping_and_clears_the_worker():
    q = KubeletQueues()
    for n in range(20):
        short_connection(q, 1 + 4 * n)
    q.stream_frame(83, bulk=True)  # worker 3
    q.stream_frame(83, bulk=True)
    pings = {q.ping(ping_id): ping_id for ping_id in (1, 3, 5, 7)}  # workers 0, 1, 2, 3
    assert q.covered(3)
    q.stream_frame(83, bulk=True)  # after the PING
    q.stream_frame(83, bulk=True)
    assert q.behind_bulk(3) == 5  # two bulk frames, the PING, two more
    assert q.answered(pings[3], now=1.0) == 3
    assert q.behind_bulk(3) == 2 and q.reserved(3) and not q.covered(3)
    assert q.ping(9) == 4 and q.ping(11) == 0 and q.ping(13) == 1 and q.ping(15) == 2 and q.ping(17) == 3
    assert q.answered(17, now=1.1) == 3
    assert not q.reserved(3) and q.behind_bulk(3) == 0 and q.outstanding(3) == 0
    # New bulk data counts from its own first frame, not from the first one ever.
    q.stream_frame(83)
    q.stream_frame(83, bulk=True)
    assert q.behind_bulk(3) == 1 and q.outstanding(3) == 2


def test_an_echo_of_the_servers_ping_covers_nothing():
    # An echo takes a worker's turn and a place in its queue, but no answer
    # will credit anything: bulk data before it still needs a PING of ours.
    q = KubeletQueues()
    q.stream_frame(5, bulk=True)  # worker 0
    assert not q.covered(0)
    assert q.ping(None) == 0  # the echo goes to worker 0
    assert not q.covered(0) and q.outstanding(0) == 2 and q.next_ping_worker() == 1
    q.ping(1)  # worker 1
    assert not q.covered(0)
    for ping_id in (3, 5, 7, 9):  # workers 2, 3, 4, 0
        q.ping(ping_id)
    assert q.covered(0)
    assert q.answered(9, now=0.0) == 0 and not q.reserved(0)
