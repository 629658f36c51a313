"""A forward's status: the five words every shell shows (the design's state machine).

``starting`` → ``active`` ⇄ ``reconnecting`` → ``error``; ``stopped`` by the
user from any of them.  The transitions are the engine's
(:mod:`tray.engine.session`); this module only names the states, so the
tray, the CLI and tests compare against one type instead of string literals.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Status"]


class Status(StrEnum):
    """A forward's status.  A ``str``: ``Status.ACTIVE == "active"``, and it prints as ``active``."""

    STARTING = "starting"
    """Looking up the target and opening the local port."""
    ACTIVE = "active"
    """Listening, with a ready pod to send connections to."""
    RECONNECTING = "reconnecting"
    """Listening, but no pod answers now; retrying with backoff."""
    ERROR = "error"
    """Not listening; the reason says why (and whether it retries by itself: ``recoverable``)."""
    STOPPED = "stopped"
    """Stopped by the user (or the engine shut down)."""
