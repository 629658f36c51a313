"""Tender's exception tree: every error Tender raises on purpose, in one place.

Every such error derives from :class:`TenderError`, so the shells (CLI, tray)
catch one type, show ``str(err)`` to the user and treat anything else as a
bug.  The subclasses exist because the engine reacts to them differently.
The tree, with the layer that raises each and what a shell shows for it::

    TenderError                 any layer; a forward that meets one it has no
    |                           rule for is ``error`` with str(err) as reason
    +-- UsageError              domain (ports, targets), kube (kubeconfig),
    |   |                       engine (local port taken), profiles, cli:
    |   |                       CLI "tender: error: <msg>", exit 2; tray:
    |   |                       a notification, or the profiles/kubeconfig
    |   |                       error line in the menu
    |   +-- PortUsageError      engine: the port as typed does not exist on the
    |                           target; the forward is ``error`` for good
    |                           (usage error: CLI exits 2)
    +-- TargetError             domain (selection), engine: no pod serves the
    |                           port now; ``error``/``reconnecting`` with the
    |                           message, retried while the target exists
    +-- ForbiddenError          kube (HTTP 403): ``error`` with the server's
    |                           message (who may not do what where), no retry
    +-- ClusterUnreachable      kube: no answer from the API server; forwards
    |                           ``error`` ("cluster unreachable"), back by
    |                           themselves
    +-- TLSVerificationError    kube: the certificate does not verify; ``error``
    |                           for good
    +-- ApiError (.status)      kube: any other HTTP status; ``error`` or
    |   |                       ``reconnecting`` with the server's message
    |   +-- NotFound            kube (404): the target or pod is gone; the pods
    |   |                       are listed again (``reconnecting``)
    |   +-- Gone                kube (410): a watch's resourceVersion is too
    |   |                       old; relisted at once, never shown
    |   +-- Unauthorized        kube (401 after one reload): ``error``, no retry
    +-- WatchStalled            kube (watches): a watch the server should have
    |                           ended; relisted at once, never shown
    +-- UpgradeFailed           kube (spdyconn): the HTTP/1.1 upgrade's answer
    |                           is broken or not SPDY/3.1; ``cannot reach pod
    |                           ...: <msg>`` (reconnecting)
    +-- TunnelUnsupported       engine (tunnel): the API server did not choose
    |                           the SPDY-tunnel subprotocol; the dialer falls
    |                           back to the v4 stream, never shown
    +-- ProtocolError           wire (framing): the v4 channel protocol broken;
    |                           that one connection ends ("protocol error: ...")
    +-- SpdyError               wire (spdy): the SPDY framing broken; the tunnel
                                ends ("protocol error from the kubelet: ...")
                                and its connections with it

The modules that raise the kube, engine and wire errors import them from
here, so ``from tray.kube.kubeapi import NotFound`` keeps working.  Private
control-flow exceptions (``_GetOnly``, ``_MidWrite``...) stay in the module
that raises and catches them; they never reach a shell.
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
    "ApiError",
    "NotFound",
    "Gone",
    "Unauthorized",
    "WatchStalled",
    "UpgradeFailed",
    "TunnelUnsupported",
    "ProtocolError",
    "SpdyError",
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


class ApiError(TenderError):
    """The API server answered with an HTTP status Tender has no other class for.

    ``status`` is the HTTP status (0 for a watch interrupted mid-stream);
    ``str()`` is the server's own message (its Status body) or a summary.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class NotFound(ApiError):
    """404: the object (or the pod a port-forward names) does not exist."""


class Gone(ApiError):
    """410: the watch's resourceVersion is too old; relist."""


class Unauthorized(ApiError):
    """401 even after reloading the kubeconfig: the credentials were rejected.

    Retrying cannot help until the user changes something (as for a 403), so
    the engine fails the forward with this message instead of reconnecting.
    """


class WatchStalled(TenderError):
    """A watch the server should have ended by now: its connection is presumed dead."""


class UpgradeFailed(TenderError):
    """The server's answer broke HTTP/1.1, or switched to something else than SPDY/3.1."""


class TunnelUnsupported(TenderError):
    """The API server did not negotiate the SPDY tunnel subprotocol."""


class ProtocolError(TenderError):
    """The server broke the channel protocol; the connection must be dropped."""


class SpdyError(TenderError):
    """The peer broke the SPDY framing; the whole session must be dropped."""
