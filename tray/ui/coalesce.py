"""Rebuild the menu at most every 250 ms, however many events arrive.

200 forwards changing at once emit hundreds of engine events within
milliseconds; rebuilding a GTK menu for each would freeze the desktop.
:class:`RateLimit` is the policy (pure, driven by a clock the tests fake);
:class:`Coalescer` runs it on a thread of its own: ``poke()`` is cheap and
safe from any thread, and the work runs on the coalescer's thread, never
twice at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.25


class RateLimit:
    """Leading edge at once, then at most one run per ``interval``; pokes in between merge."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self.pending = False
        self.last_run: float | None = None

    def poke(self) -> None:
        self.pending = True

    def delay(self, now: float) -> float | None:
        """Seconds until the work is due (0: now), or None when nothing is pending."""
        if not self.pending:
            return None
        if self.last_run is None:
            return 0.0
        return max(0.0, self.last_run + self.interval - now)

    def take(self, now: float) -> bool:
        """If due at ``now``: mark it done and return True (the caller runs the work)."""
        d = self.delay(now)
        if d is None or d > 0:
            return False
        self.pending = False
        self.last_run = now
        return True


class Coalescer:
    def __init__(self, work: Callable[[], None], interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, name: str = "tender-refresh") -> None:
        self._work = work
        self._clock = clock
        self._limit = RateLimit(interval)
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        with self._cond:
            self._limit.poke()
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    delay = self._limit.delay(self._clock())
                    if delay == 0:
                        break
                    self._cond.wait(delay)
                if self._closed:
                    return
                self._limit.take(self._clock())
            try:
                self._work()
            except Exception:  # a broken rebuild must not stop later ones
                log.exception("menu refresh failed")
