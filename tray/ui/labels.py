"""How things are worded in the menu, the tooltip and notifications.

One notation for ports everywhere (rows, profiles, the tooltip,
notifications): ``LOCAL → REMOTE`` (:func:`port_pair`), the direction kubectl
prints ("Forwarding from 127.0.0.1:8080 -> 80"); ``…`` stands for a local
port not known yet (a free one is picked when the forward starts).  A UDP
port is written as kubectl's port specs write it (``8053 → 53/udp``); a relay
forward to ``host/`` or ``ip/`` names where the relay pod connects
(``15432 → db.internal:5432``), and the pod it goes through is a "relay pod"
(:func:`pod_text`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from tray.domain.portspec import PortSpec
from tray.domain.status import Status

#: Remote ports that usually speak HTTP(S): "Open in browser" is offered for them.
HTTP_PORTS = frozenset({80, 443, 8080, 8443, 3000, 5000, 8000, 8888, 9090})
HTTPS_PORTS = frozenset({443, 8443})
#: Statuses in which a forward holds (or is about to hold) its local port.
RUNNING = (Status.STARTING, Status.ACTIVE, Status.RECONNECTING)
#: Target kinds only a relay pod reaches (``host/NAME``, ``ip/ADDRESS``).
RELAY_KINDS = frozenset({"Host", "IP"})
ARROW = "→"
DOT = "·"
ELLIPSIS = "…"
DOWN = "↓"
UP = "↑"


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
    connections: int
    connections_total: int
    bytes_in: int
    bytes_out: int
    last_connection_error: str
    last_connection_error_at: str

    @property
    def target(self) -> str: ...


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def counts_of(statuses: Iterable[str]) -> dict[str, int]:
    """How many of each status: {'active': 3, 'error': 1}."""
    counts: dict[str, int] = {}
    for st in statuses:
        counts[st] = counts.get(st, 0) + 1
    return counts


def status_line(statuses: Iterable[str], failed_profiles: int = 0) -> str:
    """The menu's first line and the tooltip: the forwards counted by status, zero counts left out.

    '3 active · 1 reconnecting · 2 errors', '5 active', '1 active · 1 starting'
    (order: active, starting, reconnecting, error); ``failed_profiles``
    profiles that could not start are added ('· 1 profile could not start').
    'No forwards running' only when there is nothing at all to report.
    """
    counts = counts_of(statuses)
    parts = [f"{counts[Status.ACTIVE]} active"] if counts.get(Status.ACTIVE) else []
    if counts.get(Status.STARTING):
        parts.append(f"{counts[Status.STARTING]} starting")
    if counts.get(Status.RECONNECTING):
        parts.append(f"{counts[Status.RECONNECTING]} reconnecting")
    if counts.get(Status.ERROR):
        parts.append(plural(counts[Status.ERROR], "error"))
    if failed_profiles:
        parts.append(f"{plural(failed_profiles, 'profile')} could not start")
    return f" {DOT} ".join(parts) or "No forwards running"


def group_counts(statuses: Iterable[str]) -> str:
    """A group's forwards in a few words that never hide a problem.

    '3 of 3 active'; '2 of 3 active, 1 error'; '1 of 3 active, 1 reconnecting,
    1 starting' -- every forward not active is named by its status.
    """
    counts = counts_of(statuses)
    total = sum(counts.values())
    parts = [f"{counts.get(Status.ACTIVE, 0)} of {total} active"]
    for status in (Status.RECONNECTING, Status.STARTING):
        if counts.get(status):
            parts.append(f"{counts[status]} {status}")
    if counts.get(Status.ERROR):
        parts.append(plural(counts[Status.ERROR], "error"))
    return ", ".join(parts)


def shorten(text: str, limit: int = 90) -> str:
    """One line, at most ``limit`` characters (menus and notifications are no place for essays)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def reason_lines(text: str, width: int = 100, lines: int = 3) -> list[str]:
    """A reason as up to ``lines`` menu lines of at most ``width`` characters, the last one shortened.

    An error's cause often comes after a long path ("/home/u/.kube/config: context a:
    credentials could not be loaded: [Errno 2] ... 'aws'"): wrapped, not cut, so it shows.
    """
    import textwrap

    wrapped = textwrap.wrap(" ".join(str(text).split()), width) or [""]
    if len(wrapped) <= lines:
        return wrapped
    return [*wrapped[: lines - 1], shorten(" ".join(wrapped[lines - 1:]), width)]


def is_udp(s: SessionLike) -> bool:
    """True for a UDP forward (a port spec ending ``/udp``)."""
    return getattr(s, "protocol", "TCP") == "UDP"


def host_port(host: str, port: int | str) -> str:
    """'db.internal:5432', '10.0.3.7:5432', '[fd00::7]:53' (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def remote_text(s: SessionLike) -> str:
    """The remote side of a forward's ports: '80', 'http', '53/udp'; for ``host/`` and ``ip/``
    targets where the relay connects: 'db.internal:5432', '[fd00::7]:53/udp'."""
    remote = str(s.remote_port or s.container_port)
    if s.target_kind in RELAY_KINDS:
        remote = host_port(s.target_name, remote)
    return f"{remote}/udp" if is_udp(s) else remote


def pod_text(s: SessionLike) -> str:
    """The pod a forward goes to now, named as such: 'pod web-7c9', 'relay pod tender-relay-x7k2q'
    (a relay forward's pod is Tender's own, not the target's); '' when none."""
    relay = getattr(s, "relay_pod", "")
    if relay:
        return f"relay pod {relay}"
    return f"pod {s.pod_name}" if s.pod_name else ""


def relay_text(s: SessionLike) -> str:
    """A relay forward's path in one line: 'Relay pod tender-relay-x7k2q → db.internal:5432',
    'Relay pod tender-relay-x7k2q → the endpoints of service legacy'; '' for an ordinary
    forward or while the relay pod is not known yet."""
    relay = getattr(s, "relay_pod", "")
    if not relay:
        return ""
    upstream = getattr(s, "relay_upstream", "")
    if s.target_kind in RELAY_KINDS:  # the engine's text does not bracket an IPv6 address
        upstream = host_port(s.target_name, s.remote_port)
    return shorten(f"Relay pod {relay} {ARROW} {upstream}" if upstream else f"Relay pod {relay}")


def port_pair(local: int | str | None, remote: int | str) -> str:
    """The one notation for ports: '8080 → 80', local first; '… → 80' while no local port is known."""
    return f"{local or ELLIPSIS} {ARROW} {remote}"


def ports_text(s: SessionLike) -> str:
    return port_pair(s.local_port, remote_text(s))


def spec_ports_text(spec: PortSpec) -> str:
    """A profile's port spec in the menu's notation: '8080 → 80'; '… → http' for a port chosen at start."""
    return port_pair(spec.local, spec.remote)


def where_text(s: SessionLike, cluster: bool = True) -> str:
    """'tender-a/shop'; only the namespace ('shop') when ``cluster`` is False (a cluster's group)."""
    return f"{s.cluster_id}/{s.namespace}" if cluster else s.namespace


def session_label(s: SessionLike, cluster: bool = True) -> str:
    """A forward's row: 'web  svc/web  8080 → 80  tender-a/shop  active'.

    Columns, two spaces apart: the profile's name when the forward has one,
    the target, its ports, where (``cluster`` False: the namespace only, for
    a row under its cluster's heading) and the status.
    """
    columns = [s.profile] if s.profile else []
    return "  ".join((*columns, s.target, ports_text(s), where_text(s, cluster), s.status))


def session_title(s: SessionLike) -> str:
    """The short form used in notifications and logs: 'svc/web 8080 → 80', 'web: svc/web 8080 → 80'."""
    what = f"{s.target} {ports_text(s)}"
    return f"{s.profile}: {what}" if s.profile else what


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
    if is_udp(s):
        return False
    remote: int | str = s.remote_port
    if isinstance(remote, str) and remote.isdigit():
        remote = int(remote)
    return looks_like_http(remote) or looks_like_http(s.container_port) or looks_like_http(s.local_port)


def browser_url(s: SessionLike) -> str:
    remote = str(s.remote_port).lower()
    https = s.container_port in HTTPS_PORTS or remote in ("443", "8443") or "https" in remote
    return f"{'https' if https else 'http'}://{local_address(s)}/"


def port_entry_label(port: int, name: str | None, protocol: str = "TCP") -> str:
    """``Forward 80 (http)``; a UDP port ``Forward 53/udp (dns)`` (through a relay pod)."""
    shown = f"{port}/udp" if protocol == "UDP" else str(port)
    return f"Forward {shown} ({name})" if name else f"Forward {shown}"


def size_text(n: int) -> str:
    """A byte count in SI units, short: '0 B', '512 B', '1.2 kB', '30 kB', '1.2 MB', '15 GB'.

    One decimal below 10 of a unit, none above (a menu line, not an invoice).
    """
    if n < 1000:
        return f"{n} B"
    value = float(n)
    units = ("kB", "MB", "GB", "TB", "PB")
    for unit in units:
        value /= 1000
        if value < 999.5 or unit == units[-1]:
            return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def connections_text(s: SessionLike) -> str:
    """'2 connections open · 15 total'; '1 connection open · 1 total'."""
    return f"{plural(s.connections, 'connection')} open {DOT} {s.connections_total} total"


def traffic_text(s: SessionLike) -> str:
    """The bytes each way, as the local clients see them: '↓ 1.2 MB  ↑ 30 kB' (down: from the pod)."""
    return f"{DOWN} {size_text(s.bytes_in)}  {UP} {size_text(s.bytes_out)}"


def clock_text(iso: str) -> str:
    """An ISO 8601 time as the local wall clock's 'HH:MM' ('' when it cannot be read); reads no clock."""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M")
    except (ValueError, TypeError, OverflowError, OSError):
        return ""


def last_error_text(s: SessionLike) -> str:
    """'Last connection error: connection refused (14:03)' (local time); '' when there was none."""
    if not s.last_connection_error:
        return ""
    at = clock_text(s.last_connection_error_at)
    return shorten(f"Last connection error: {s.last_connection_error}" + (f" ({at})" if at else ""))
