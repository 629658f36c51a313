"""Tender's exception hierarchy.

Every error Tender raises on purpose derives from :class:`TenderError`, so the
shells (CLI, tray) can catch one type, show ``str(err)`` to the user and treat
anything else as a bug.  The subclasses exist because the engine reacts to
them differently:

* :class:`UsageError` -- the user's input is wrong; retrying cannot help, the
  message must point at the offending input.
* :class:`TargetError` -- the input is well-formed but the cluster state does
  not allow a forward *right now* (no selector, no ready pod, port not
  declared...).  The engine may retry these for reconnecting targets.
* :class:`ForbiddenError` -- RBAC said no; retrying won't help until the user
  changes something.
* :class:`ClusterUnreachable` -- network/API-server trouble; retried with
  back-off.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "TenderError",
    "UsageError",
    "TargetError",
    "ForbiddenError",
    "ClusterUnreachable",
    "PortUsageError",
    "TLSVerificationError",
]


class TenderError(Exception):
    """Base class of every error Tender raises deliberately."""


class UsageError(TenderError):
    """Bad input from the user (command line, profiles file, menu dialog).

    The optional location parts let the profile loader say *where* the problem
    is without every caller formatting it by hand.  ``str()`` renders one line,
    e.g. ``profiles.yaml:12: ports[0]: port 70000 is out of range 1-65535``;
    absent parts are simply left out.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line
        self.field = field

    def __str__(self) -> str:
        location = ":".join(str(p) for p in (self.source, self.line) if p is not None and p != "")
        return ": ".join(p for p in (location, self.field or "", self.message) if p)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # Keyword-only arguments are lost by the default Exception pickling,
        # which only replays ``args``; keep them so errors survive a process
        # boundary (e.g. a future multiprocessing-based UI) intact.
        return (_rebuild_usage_error, (type(self), self.message, self.source, self.line, self.field))


def _rebuild_usage_error(
    cls: type[UsageError], message: str, source: str | None, line: int | None, field: str | None
) -> UsageError:
    return cls(message, source=source, line=line, field=field)


class PortUsageError(UsageError):
    """The requested port does not exist on the target as typed: an unknown
    Service port or port name, or a port declared only for UDP/SCTP.  A
    forward that hits it is ``error`` for good (``usage_error``), and the CLI
    exits 2, as kubectl refuses such a command line."""


class TargetError(TenderError):
    """The target cannot be resolved to a pod and port at the moment."""


class ForbiddenError(TenderError):
    """The API server refused the request (HTTP 403)."""


class ClusterUnreachable(TenderError):
    """The API server could not be reached or did not answer sensibly."""


class TLSVerificationError(TenderError):
    """The API server's certificate did not verify against what the kubeconfig
    says (certificate-authority, tls-server-name): not a network problem that
    waiting mends, so a forward that meets it is ``error`` for good."""
