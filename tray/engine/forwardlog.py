"""A forward's recent log: what ``tender logs NAME`` and the dashboard show.

A :class:`ForwardLog` is a bounded ring (:data:`LOG_LINES` lines) of
:class:`LogLine`, kept by each :class:`~tray.engine.session.Session`: one line
per status change (with its reason), pod chosen or switched, reconnect
attempt, failed local connection (at most one a second, as the shells are
told of them) and stop.  Lines are added on the engine's loop, rarely (never
per byte or per healthy connection), and read from any thread: the ring
takes a lock for both, held for microseconds.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["LogLine", "ForwardLog", "LOG_LINES", "INFO", "WARNING", "ERROR"]

#: How many lines a forward keeps (the oldest go first).
LOG_LINES = 200

#: A line's ``level``.
INFO, WARNING, ERROR = "info", "warning", "error"


@dataclass(frozen=True)
class LogLine:
    """One line of a forward's log.

    ``time``: when, ISO 8601 UTC with milliseconds
    ("2026-11-30T14:03:07.123+00:00"); ``level``: "info", "warning" or
    "error"; ``message``: one line of text ("reconnecting: pod web-1 was deleted").
    """

    time: str
    level: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The line as JSON-ready data: ``{"time": ..., "level": ..., "message": ...}``."""
        return asdict(self)


def now_iso() -> str:
    """The current time as :attr:`LogLine.time` writes it (ISO 8601 UTC, milliseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ForwardLog:
    """The last ``size`` lines of one forward (default :data:`LOG_LINES`), oldest first.

    Thread-safe: :meth:`add` and :meth:`lines` may be called from any
    thread; neither blocks beyond a short lock.
    """

    def __init__(self, size: int = LOG_LINES) -> None:
        self._lines: deque[LogLine] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, level: str, message: str, *, time: str | None = None) -> LogLine:
        """Append a line (``level``: :data:`INFO`, :data:`WARNING` or :data:`ERROR`;
        ``message`` is made one line); ``time`` defaults to now.  Returns the line."""
        line = LogLine(time or now_iso(), level, " ".join(message.split()))
        with self._lock:
            self._lines.append(line)
        return line

    def lines(self) -> list[LogLine]:
        """A copy of the lines, oldest first."""
        with self._lock:
            return list(self._lines)

    def __len__(self) -> int:
        with self._lock:
            return len(self._lines)
