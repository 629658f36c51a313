"""Is the API server still answering?  One small monitor per cluster.

A watch says nothing when nothing changes, so a dead connection looks the
same as a quiet namespace.  After a laptop sleeps, the Wi-Fi changes or a
VPN comes up, the connection under a watch can be half-open: no FIN, no
RST, bytes vanish.  The watch then stays silent until its read timeout, and
meanwhile a deleted pod would still look alive.  This module finds out:

* after :data:`IDLE` seconds in which the API server sent nothing (no
  response, no watch line), it asks ``GET /version`` (any user may);
* no answer within :data:`TIMEOUT` seconds: the cluster is *not answering*.
  Its caches are marked stale (forwards say ``reconnecting``), the HTTP
  connections are replaced, and it asks again every :data:`TICK` second
  (each time on a new connection, within :data:`RECHECK_TIMEOUT` s);
* the first answer after that: every cache lists again at once, so forwards
  follow what happened meanwhile (a pod replaced) within a second or two;
* a tick that comes much later than due means the process was stopped
  (SIGSTOP) or the machine slept: the caches list again, and the server is
  asked at once.

The monitor runs only while the cluster has caches; at idle it costs one
timer tick a second and one small GET per :data:`IDLE` seconds of silence
(none of them touches pods, services or workloads).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

from tray.errors import TenderError

if TYPE_CHECKING:
    from tray.kube.kubeapi import KubeAPI

log = logging.getLogger(__name__)

__all__ = ["ClusterHealth", "HealthChange", "IDLE", "TIMEOUT", "RECHECK_TIMEOUT", "TICK", "JUMP"]

#: Seconds of silence from the API server before it is asked.
IDLE = 15.0
#: Seconds it has to answer.
TIMEOUT = 5.0
#: Seconds it has to answer while it is known not to (and on the second try
#: right after a first one timed out): short, so the first answer after an
#: outage comes soon (each try is on a new connection).
RECHECK_TIMEOUT = 1.5
#: Seconds between two looks.
TICK = 1.0
#: A tick this many seconds late means the process was frozen or the machine slept.
JUMP = 3.0


class HealthChange(StrEnum):
    DOWN = "down"  # stopped answering: caches are stale
    UP = "up"  # answering again: list everything again
    WOKE = "woke"  # the process was frozen or the machine slept: list again


def _boottime() -> float:
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)  # counts suspended time too
    except (AttributeError, OSError):  # not Linux
        return time.monotonic()


class ClusterHealth:
    """Watches one API server's liveness; runs on the engine loop.

    ``on_change(change, reason)`` is called on the loop for every
    :class:`HealthChange`; ``reason`` is a sentence for the user
    ("cluster not answering: no reply from the API server in 5 s").
    """

    def __init__(self, api: KubeAPI, on_change: Callable[[HealthChange, str], None]) -> None:
        self.api = api
        self.answering = True
        self.reason = ""
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None
        self._check = asyncio.Event()
        self._pinging = False
        self._stopped = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster health")

    async def stop(self) -> None:
        """End the monitor.  A ping in flight is not cancelled (a request
        cancelled while connecting can leave its socket open until the GC
        finds it): the monitor ends after it, within :data:`TIMEOUT` s."""
        task, self._task = self._task, None
        self._stopped = True
        if task is not None and not self._pinging:
            task.cancel()
            await asyncio.wait([task])

    def check_soon(self) -> None:
        """Ask the API server at the next tick (something failed to reach it)."""
        self._check.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self.api.last_heard = max(self.api.last_heard, loop.time())
        while True:
            last, last_boot = loop.time(), _boottime()  # the wait alone is timed, not the ping
            try:
                await asyncio.wait_for(self._check.wait(), TICK)
            except TimeoutError:
                pass
            now, boot = loop.time(), _boottime()
            elapsed, elapsed_boot = now - last, boot - last_boot
            asked = self._check.is_set()
            self._check.clear()
            woke = elapsed > TICK + JUMP or elapsed_boot - elapsed > JUMP
            if woke:
                log.info("%s: the process was stopped or the machine slept for %.0f s; listing again",
                         self.api.auth.server, max(elapsed, elapsed_boot))
                self._on_change(HealthChange.WOKE, "")
            if self.answering and not (woke or asked) and now - self.api.last_heard < IDLE:
                continue
            self._pinging = True
            try:
                try:
                    await self.api.ping(TIMEOUT if self.answering else RECHECK_TIMEOUT)
                except TenderError:
                    if not self.answering or self._stopped:
                        raise
                    # One more, at once and short: the network may have come
                    # back while the first one waited (then what we missed
                    # meanwhile is listed again, without a "not answering").
                    await self.api.ping(RECHECK_TIMEOUT)
                    self._on_change(HealthChange.WOKE, "")
            except TenderError as exc:
                if self._stopped:
                    return
                self.api.reset_connections()  # the pooled connections may be the dead ones
                if self.answering:
                    self.answering = False
                    self.reason = f"cluster not answering: {exc}".replace(
                        "cluster not answering: cluster unreachable: ", "cluster not answering: ")
                    if "Timeout" in self.reason:
                        self.reason = f"cluster not answering: no reply from the API server in {TIMEOUT:.0f} s"
                    log.warning("%s: %s", self.api.auth.server, self.reason)
                    self._on_change(HealthChange.DOWN, self.reason)
                continue
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the monitor die
                log.exception("health check of %s failed", self.api.auth.server)
                continue
            finally:
                self._pinging = False
            if self._stopped:
                return
            if not self.answering:
                self.answering = True
                self.reason = ""
                log.warning("%s: answering again", self.api.auth.server)
                self._on_change(HealthChange.UP, "")
