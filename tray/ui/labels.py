"""How things are worded in the menu, the tooltip and notifications."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from tray.domain.status import Status

#: Remote ports that usually speak HTTP(S): "Open in browser" is offered for them.
HTTP_PORTS = frozenset({80, 443, 8080, 8443, 3000, 5000, 8000, 8888, 9090})
HTTPS_PORTS = frozenset({443, 8443})
#: Statuses in which a forward holds (or is about to hold) its local port.
RUNNING = (Status.STARTING, Status.ACTIVE, Status.RECONNECTING)
ARROW = "→"
DOT = "·"
ELLIPSIS = "…"


class SessionLike(Protocol):
    id: str
    cluster_id: str
    namespace: str
    pod_name: str
    container_port: int
    local_port: int
    target_kind: str
    target_name: str
    status: str
    status_reason: str
    address: str
    remote_port: str
    profile: str | None

    @property
    def target(self) -> str: ...


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def status_line(statuses: Iterable[str]) -> str:
    """'3 active · 1 reconnecting · 0 errors' (plus 'N starting' while some start)."""
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    if not counts:
        return "No forwards running"
    parts = [f"{counts.get(Status.ACTIVE, 0)} active"]
    if counts.get(Status.STARTING):
        parts.append(f"{counts[Status.STARTING]} starting")
    parts.append(f"{counts.get(Status.RECONNECTING, 0)} reconnecting")
    parts.append(plural(counts.get(Status.ERROR, 0), "error"))
    return f" {DOT} ".join(parts)


def shorten(text: str, limit: int = 90) -> str:
    """One line, at most ``limit`` characters (menus and notifications are no place for essays)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def local_text(local_port: int) -> str:
    return str(local_port) if local_port else ELLIPSIS  # 0: a free port not bound yet


def remote_text(s: SessionLike) -> str:
    return str(s.remote_port or s.container_port)


def ports_text(s: SessionLike) -> str:
    return f"{local_text(s.local_port)} {ARROW} {remote_text(s)}"


def where_text(s: SessionLike) -> str:
    return f"{s.cluster_id}/{s.namespace}"


def session_label(s: SessionLike) -> str:
    """'svc/web  8080 → 80  tender-a/shop  active' (two spaces between columns)."""
    return "  ".join((s.target, ports_text(s), where_text(s), s.status))


def session_title(s: SessionLike) -> str:
    """The short form used in notifications: 'svc/web 8080 → 80'."""
    return f"{s.target} {ports_text(s)}"


def host_for(address: str) -> str:
    """The host part a browser or a client should use to reach the listener."""
    if address in ("localhost", ""):
        return "localhost"
    if address in ("0.0.0.0",):
        return "127.0.0.1"
    if address == "::":
        return "[::1]"
    return f"[{address}]" if ":" in address else address


def local_address(s: SessionLike) -> str:
    return f"{host_for(s.address)}:{s.local_port}"


def looks_like_http(port: int | str | None, name: str | None = None) -> bool:
    names = " ".join(str(x).lower() for x in (name, port) if isinstance(x, str))
    if "http" in names or "web" in names:
        return True
    return isinstance(port, int) and port in HTTP_PORTS


def session_is_http(s: SessionLike) -> bool:
    remote: int | str = s.remote_port
    if isinstance(remote, str) and remote.isdigit():
        remote = int(remote)
    return looks_like_http(remote) or looks_like_http(s.container_port) or looks_like_http(s.local_port)


def browser_url(s: SessionLike) -> str:
    remote = str(s.remote_port).lower()
    https = s.container_port in HTTPS_PORTS or remote in ("443", "8443") or "https" in remote
    return f"{'https' if https else 'http'}://{local_address(s)}/"


def port_entry_label(port: int, name: str | None) -> str:
    return f"Forward {port} ({name})" if name else f"Forward {port}"
