"""Port specs (``[LOCAL:]REMOTE``) read the way ``kubectl port-forward`` reads them.

Accepted forms:

============  =======================================================
``8080``      local 8080 -> remote 8080
``8080:80``   local 8080 -> remote 80
``:80``       a free local port -> remote 80 (``0:80`` is the same)
``8080:http`` local 8080 -> the remote port named ``http``
``:http``     a free local port -> the remote port named ``http``
``http``      the remote port named ``http``; local = its number
``8053:53/udp`` the same forms with ``/udp`` (or ``/tcp``, the default)
============  =======================================================

``/udp`` is Tender's, not kubectl's (port-forward carries TCP only): a UDP
port goes through a relay pod (:mod:`tray.wire.relay`), as
``containerPort``'s ``protocol: UDP`` names it.

The bare-name case follows kubectl: it resolves the name and listens
locally on the *number the name denotes at the level the user named it*:

* for a Service target, the **service port** number (``svc/web http`` with
  ``port: 80, targetPort: 8080`` listens on 80 and forwards to 8080);
* for pod-backed targets, the **container port** number.

So :class:`PortSpec` cannot know the local port for a bare name; it records
``local=None, local_same_as_remote=True`` and :meth:`PortSpec.local_port_for`
finishes the job once the engine has resolved the name.  ``local=None`` with
``local_same_as_remote=False`` means "any free port" (kubectl's local 0).

Numbers are ASCII decimal digits only (leading zeros allowed, as Go's
``ParseUint`` allows them); signs, spaces, and other Unicode digits are
rejected, because the spec is also what we show back to the user.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Final

from tray.errors import UsageError

__all__ = ["PortSpec", "parse_port_spec", "is_port_name", "MIN_PORT", "MAX_PORT"]

MIN_PORT: Final = 1
MAX_PORT: Final = 65535

_DIGITS_RE: Final = re.compile(r"[0-9]+")
_PORT_NAME_RE: Final = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_MAX_PORT_NAME_LEN: Final = 15
_PORT_NAME_RULE: Final = (
    "port names are 1-15 lowercase letters, digits and '-', contain a letter, "
    "and do not start or end with '-' or contain '--'"
)
_FORMS: Final = "expected [LOCAL:]REMOTE[/udp], e.g. 8080, 8080:80, :80, 8080:http or 8053:53/udp"


def _quote(text: str) -> str:
    """Double-quote ``text`` for an error message, escaping control characters."""
    return json.dumps(text, ensure_ascii=False)


def is_port_name(text: str) -> bool:
    """True if ``text`` is a valid IANA_SVC_NAME (a Kubernetes port name)."""
    return (
        0 < len(text) <= _MAX_PORT_NAME_LEN
        and _PORT_NAME_RE.fullmatch(text) is not None
        and "--" not in text
        and any("a" <= c <= "z" for c in text)
    )


def _valid_port_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and MIN_PORT <= value <= MAX_PORT


@dataclass(frozen=True)
class PortSpec:
    """One parsed ``[LOCAL:]REMOTE`` spec.

    ``local`` -- the local port, or ``None`` (see ``local_same_as_remote``).
    ``remote`` -- a port number, or a port name to resolve against the target.
    ``local_same_as_remote`` -- only for the bare-name form: listen on the
    number ``remote`` resolves to (see the module docstring).  When False,
    ``local=None`` means "pick a free port".
    """

    local: int | None
    remote: int | str
    local_same_as_remote: bool = False
    #: ``"TCP"`` or ``"UDP"`` (Kubernetes' ``protocol`` spelling).
    protocol: str = "TCP"

    def __post_init__(self) -> None:
        if self.protocol not in ("TCP", "UDP"):
            raise ValueError(f"protocol must be TCP or UDP, got {self.protocol!r}")
        if self.local is not None and not _valid_port_number(self.local):
            raise ValueError(f"local port must be None or 1-65535, got {self.local!r}")
        if isinstance(self.remote, str):
            if not is_port_name(self.remote):
                raise ValueError(f"invalid remote port name {self.remote!r}")
        elif not _valid_port_number(self.remote):
            raise ValueError(f"remote port must be 1-65535 or a port name, got {self.remote!r}")
        if self.local_same_as_remote and (self.local is not None or not isinstance(self.remote, str)):
            raise ValueError("local_same_as_remote needs local=None and a named remote port")

    @property
    def free_local(self) -> bool:
        """True if any free local port will do."""
        return self.local is None and not self.local_same_as_remote

    def local_port_for(self, resolved: int) -> int:
        """The local port to bind, 0 meaning "let the OS pick a free one".

        ``resolved`` is the number the remote port denotes *at the target's
        level*: the service port number for a Service target (what
        ``selection.service_port_number`` returns), the container port for
        pod-backed targets.  It only matters for the bare-name form.
        """
        if self.local is not None:
            return self.local
        if self.local_same_as_remote:
            if not _valid_port_number(resolved):
                raise ValueError(f"resolved port must be 1-65535, got {resolved!r}")
            return resolved
        return 0

    def __str__(self) -> str:
        """Canonical text that :func:`parse_port_spec` reads back to an equal spec."""
        suffix = "/udp" if self.protocol == "UDP" else ""
        if self.local_same_as_remote:
            return f"{self.remote}{suffix}"
        if self.local is None:
            return f":{self.remote}{suffix}"
        if self.local == self.remote:
            return f"{self.local}{suffix}"
        return f"{self.local}:{self.remote}{suffix}"


def _parse_number(part: str, what: str, text: str) -> int:
    """``what`` is "port", "local port" or "remote port", for the message."""
    # ``part`` is known to be ASCII digits.  Long inputs are rejected before
    # int() so absurd strings can neither be slow nor hit Python's int-size
    # guard (which raises ValueError, not UsageError).
    stripped = part.lstrip("0") or "0"
    if len(stripped) > 5 or int(stripped) > MAX_PORT:
        shown = stripped if len(stripped) <= 12 else stripped[:12] + "..."
        raise UsageError(f"invalid port spec {_quote(text)}: {what} {shown} is out of range 1-65535")
    return int(stripped)


def _parse_remote(part: str, text: str, what: str) -> int | str:
    if part == "":
        raise UsageError(f"invalid port spec {_quote(text)}: empty {what}; {_FORMS}")
    if _DIGITS_RE.fullmatch(part):
        port = _parse_number(part, what, text)
        if port == 0:
            raise UsageError(f"invalid port spec {_quote(text)}: {what} 0 is out of range 1-65535")
        return port
    if is_port_name(part):
        return part
    if part.startswith("-") and _DIGITS_RE.fullmatch(part[1:]) and len(part) <= 13:
        raise UsageError(f"invalid port spec {_quote(text)}: {what} {part} is out of range 1-65535")
    raise UsageError(
        f"invalid port spec {_quote(text)}: {what} {_quote(part)} is neither a number "
        f"1-65535 nor a valid port name ({_PORT_NAME_RULE})"
    )


def _parse_local(part: str, text: str) -> int | None:
    if part == "":
        return None
    if _DIGITS_RE.fullmatch(part):
        port = _parse_number(part, "local port", text)
        return None if port == 0 else port
    raise UsageError(
        f"invalid port spec {_quote(text)}: local port {_quote(part)} is not a number 0-65535 "
        "(only the remote port may be a name)"
    )


def parse_port_spec(text: str) -> PortSpec:
    """Parse ``[LOCAL:]REMOTE`` (see the module docstring for the forms).

    Raises :class:`UsageError` -- and nothing else, for any input string --
    with a message that quotes the spec.
    """
    if not isinstance(text, str):
        raise UsageError(f"port spec must be text, not {type(text).__name__}")
    if text == "":
        raise UsageError(f"empty port spec; {_FORMS}")
    if any(c.isspace() for c in text):
        raise UsageError(f"invalid port spec {_quote(text)}: contains whitespace; {_FORMS}")
    protocol = "TCP"
    base, slash, proto = text.rpartition("/")
    if slash:
        if proto.lower() not in ("tcp", "udp"):
            raise UsageError(f"invalid port spec {_quote(text)}: unknown protocol {_quote(proto)} "
                             "(expected /tcp or /udp)")
        protocol, text = proto.upper(), base
        if "/" in text:
            raise UsageError(f"invalid port spec {_quote(text + slash + proto)}: more than one protocol")
        if text == "":
            raise UsageError(f"empty port spec before {_quote(slash + proto)}; {_FORMS}")
        return dataclasses.replace(parse_port_spec(text), protocol=protocol)
    parts = text.split(":")
    if len(parts) > 2:
        raise UsageError(f"invalid port spec {_quote(text)}: too many ':'; {_FORMS}")
    if len(parts) == 1:
        remote = _parse_remote(parts[0], text, "port")
        if isinstance(remote, str):
            return PortSpec(None, remote, local_same_as_remote=True)
        return PortSpec(remote, remote)
    local = _parse_local(parts[0], text)
    remote = _parse_remote(parts[1], text, "remote port")
    return PortSpec(local, remote)
