"""Reconnect timing, kept pure so it can be tested without sleeping.

The schedule is deliberately short and fixed: a forward whose pod went away
should come back within seconds when a replacement pod is ready, and the
user should hear about a target that stays broken (after 1+2+4+8+16 = 31 s of
waiting) rather than watch a spinner forever.

Some failures deserve patience beyond :data:`MAX_ATTEMPTS` -- the laptop lost
Wi-Fi, the VPN is reconnecting -- so :func:`delay_for` is defined for every
attempt number: after the table it keeps doubling, capped at
:data:`MAX_DELAY`.  A :class:`Backoff` with ``max_attempts=None`` uses that
unbounded schedule.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DELAYS", "MAX_DELAY", "MAX_ATTEMPTS", "delay_for", "Backoff"]

#: Seconds to wait before retry 1, 2, 3, ...
DELAYS: tuple[int, ...] = (1, 2, 4, 8, 16)
#: Ceiling for the doubling that continues past :data:`DELAYS`.
MAX_DELAY: int = 30
#: Failed attempts a :class:`Backoff` allows before giving up by default.
MAX_ATTEMPTS: int = 5


def delay_for(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    1 -> 1, 2 -> 2, 3 -> 4, 4 -> 8, 5 -> 16, then 30 for every later attempt
    (the doubling 32, 64, ... capped at :data:`MAX_DELAY`).
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise TypeError(f"attempt must be an int, not {type(attempt).__name__}")
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    if attempt <= len(DELAYS):
        return float(DELAYS[attempt - 1])
    # Past the table the doubling would already exceed the cap (32 > 30); the
    # comparison is kept so changing the constants keeps the documented rule,
    # and the exponent is bounded so huge attempt numbers stay cheap.
    extra = min(attempt - len(DELAYS), 64)
    return float(min(DELAYS[-1] * 2**extra, MAX_DELAY))


@dataclass
class Backoff:
    """Counts failed attempts and hands out the delay before the next one.

    Usage: after each failure call :meth:`next_delay`; sleep that long and
    retry, or give up (go to the error state) when it returns ``None``.  Call
    :meth:`reset` once a connection has worked, so the next outage starts
    again at 1 s.

    ``max_attempts=None`` never gives up (delays settle at :data:`MAX_DELAY`).
    """

    attempts: int = 0
    max_attempts: int | None = MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0 or None, got {self.max_attempts}")
        if self.attempts < 0:
            raise ValueError(f"attempts must be >= 0, got {self.attempts}")

    @property
    def exhausted(self) -> bool:
        """True when :meth:`next_delay` would return ``None``."""
        return self.max_attempts is not None and self.attempts >= self.max_attempts

    def next_delay(self) -> float | None:
        """Record one failed attempt; return the wait before retrying, or None.

        With the defaults the successive results are 1, 2, 4, 8, 16, None,
        None, ...  Once exhausted the counter stops growing, so asking again
        is harmless.
        """
        if self.exhausted:
            return None
        self.attempts += 1
        return delay_for(self.attempts)

    def reset(self) -> None:
        """Forget past failures (call after a successful connection)."""
        self.attempts = 0
