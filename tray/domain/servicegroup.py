"""A namespace's Services as forwards: which Services and ports make members, and what changed.

``tender forward --all-services -n NS [-l SELECTOR]`` and a profile
``target: namespace/NS`` (with an optional ``selector:``) forward every
Service of a namespace on its real ports, each Service on a loopback
address of its own (:func:`tray.domain.addresses.auto_address`).  This
module is the plain-data half of that: :class:`NamespaceSpec` says what the
user asked for, :func:`parse_label_selector` reads kubectl's ``-l`` syntax,
:func:`plan` turns the Services the API returned into :class:`Member`
forwards (and the Services it leaves out, with why), :func:`diff` says
which members to start and stop when the Services change, and
:func:`privileged_hint` what to tell a user whose port needs privileges.
The engine half (a watch, the member forwards) is :mod:`tray.engine.group`.

Which Services and ports make members:

* every TCP port (``protocol`` absent or ``TCP``) of a Service the selector
  matches, by the Service's labels (an empty selector matches all);
* skipped: ExternalName Services (no pods: a DNS alias), Services without a
  pod selector (endpoints managed by hand, often not pods; kubectl cannot
  forward them either), Services without ports (a headless Service used
  only for DNS), and UDP/SCTP ports (port-forward carries TCP only).

Pure; nothing here blocks or does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from tray.domain import selection
from tray.domain.addresses import auto_address
from tray.errors import UsageError

__all__ = ["NamespaceSpec", "NamespaceTarget", "parse_namespace_target", "Member", "Skipped",
           "parse_label_selector", "plan", "diff", "privileged_hint", "NAMESPACE_TARGET_PREFIX"]

#: How a profile's ``target:`` names a namespace group (``namespace/shop``).
NAMESPACE_TARGET_PREFIX: Final = "namespace/"


@dataclass(frozen=True)
class NamespaceTarget:
    """A profile's ``target: namespace/NS``: every Service of namespace ``name``.

    Shaped like :class:`tray.domain.targets.Target` where a shell shows it:
    ``kind`` is ``"Namespace"``, ``str()`` is ``namespace/NS``.
    """

    name: str
    kind: ClassVar[str] = "Namespace"

    def __str__(self) -> str:
        return f"{NAMESPACE_TARGET_PREFIX}{self.name}"


_NAMESPACE_RE: Final = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def parse_namespace_target(text: str) -> NamespaceTarget:
    """Read ``namespace/NS``; raises :class:`UsageError` when NS is not a namespace name (a DNS-1123 label)."""
    name = text[len(NAMESPACE_TARGET_PREFIX):] if text.startswith(NAMESPACE_TARGET_PREFIX) else ""
    if not _NAMESPACE_RE.match(name):
        raise UsageError(f"invalid namespace target {text!r}: expected namespace/NAME, NAME being 1-63 lowercase "
                         "letters, digits and '-', starting and ending with a letter or digit")
    return NamespaceTarget(name)


@dataclass(frozen=True)
class NamespaceSpec:
    """Every Service of one namespace, as the user asked for them (not yet checked against a cluster).

    ``cluster``: the kubeconfig context's name.  ``namespace``: None means
    the context's default namespace.  ``selector``: kubectl's label selector
    text (``app=web,tier in (a,b)``), "" for every Service; it is read by
    :func:`parse_label_selector`.  ``profile``: the profile it came from, if
    any (its members carry that name).  ``balance``: each member's
    (:class:`~tray.domain.spec.ForwardSpec`'s; ``auto`` is a Service's
    round robin).
    """

    cluster: str
    namespace: str | None
    selector: str = ""
    profile: str | None = None
    balance: str = "auto"


@dataclass(frozen=True)
class Member:
    """One forward of a group: a Service port on the Service's own address, local port = the Service port."""

    service: str
    port: int  # the Service's port: both the remote port asked for and the local port
    port_name: str  # the port's name ("" when unnamed)
    address: str  # 127.A.B.C, from auto_address(context, namespace, service)

    @property
    def key(self) -> tuple[str, int]:
        """What identifies the member across changes: (Service name, port)."""
        return (self.service, self.port)


@dataclass(frozen=True)
class Skipped:
    """A Service (or one of its ports, ``port`` > 0) that makes no member, and why (a phrase)."""

    service: str
    reason: str
    port: int = 0

    def __str__(self) -> str:
        what = f"svc/{self.service}" + (f" port {self.port}" if self.port else "")
        return f"{what}: skipped ({self.reason})"


# ----------------------------------------------------------------- selectors
_KEY_RE: Final = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE_RE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_SET_RE: Final = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^()]*)\)\s*$")
_EQ_RE: Final = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_RE: Final = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split at the commas outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_label_selector(text: str) -> dict[str, Any]:
    """Read kubectl's label selector syntax (``-l``) into ``{"matchLabels": {}, "matchExpressions": [...]}``.

    Requirements are comma-separated, all must hold: ``k=v`` / ``k==v``,
    ``k!=v`` (also true without the key), ``k in (a,b)``, ``k notin (a,b)``,
    ``k`` (has the key), ``!k`` (lacks it).  "" (or only spaces) selects
    everything.  The result is what :func:`tray.domain.selection.matches`
    takes.  Raises :class:`UsageError` naming the requirement that cannot be
    read, or a key or value that is not a valid label key or value.
    """
    if not isinstance(text, str):
        raise UsageError(f"a label selector must be text, not {type(text).__name__}")
    if not text.strip():
        return {"matchLabels": {}, "matchExpressions": []}
    if text.count("(") != text.count(")"):
        raise UsageError(f"unbalanced parentheses in label selector {text!r}")
    exprs: list[dict[str, Any]] = []

    def key_ok(key: str, part: str) -> str:
        if not _KEY_RE.match(key) or len(key.rpartition("/")[2]) > 63:
            raise UsageError(f"invalid label key {key!r} in selector {text!r}")
        return key

    def value_ok(value: str, part: str) -> str:
        if not _VALUE_RE.match(value) or len(value) > 63:
            raise UsageError(f"invalid label value {value!r} in selector {text!r}")
        return value

    for part in _split_requirements(text):
        if m := _SET_RE.match(part):
            if m.group(1):
                raise UsageError(f"'!' cannot precede an 'in' or 'notin' requirement in selector {text!r}")
            values = [value_ok(v.strip(), part) for v in m.group(4).split(",")]
            if values == [""]:
                raise UsageError(f"{m.group(3)} () needs at least one value in selector {text!r}")
            exprs.append({"key": key_ok(m.group(2), part), "operator": "In" if m.group(3) == "in" else "NotIn",
                          "values": values})
        elif m := _EQ_RE.match(part):
            key, op, value = key_ok(m.group(1), part), m.group(2), value_ok(m.group(3), part)
            exprs.append({"key": key, "operator": "NotIn" if op == "!=" else "In", "values": [value]})
        elif m := _EXISTS_RE.match(part):
            exprs.append({"key": key_ok(m.group(2), part), "operator": "DoesNotExist" if m.group(1) else "Exists",
                          "values": []})
        else:
            raise UsageError(f"cannot read {part.strip()!r} in label selector {text!r} (expected key=value, "
                             "key!=value, key in (a,b), key notin (a,b), key or !key)")
    return {"matchLabels": {}, "matchExpressions": exprs}


# ----------------------------------------------------------------- the plan
def _port_number(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535 else 0


def plan(services: Iterable[Mapping[str, Any]], *, context: str, namespace: str,
         selector: Mapping[str, Any]) -> tuple[list[Member], list[Skipped]]:
    """The members the Services ``services`` make, and what is skipped (both sorted by name, then port).

    ``services``: Service objects as the API returns them (dicts);
    ``selector``: what :func:`parse_label_selector` returns; a Service whose
    labels it does not match is left out silently (it was not asked for).
    Never raises for a strange object: what cannot be read is skipped.
    """
    members: list[Member] = []
    skipped: list[Skipped] = []
    for svc in services:
        meta = svc.get("metadata") if isinstance(svc.get("metadata"), Mapping) else {}
        spec = svc.get("spec") if isinstance(svc.get("spec"), Mapping) else {}
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            continue
        labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
        if not selection.matches(selector, labels):
            continue
        if spec.get("type") == "ExternalName":
            skipped.append(Skipped(name, "an ExternalName Service has no pods"))
            continue
        ports = spec.get("ports") if isinstance(spec.get("ports"), list) else []
        if not ports:
            headless = spec.get("clusterIP") == "None"
            skipped.append(Skipped(name, "a headless Service without ports" if headless else "no ports"))
            continue
        if not spec.get("selector"):
            skipped.append(Skipped(name, "no pod selector: its endpoints are managed by hand"))
            continue
        address = auto_address(context, namespace, name)
        for port in ports:
            if not isinstance(port, Mapping):
                continue
            number = _port_number(port.get("port"))
            if not number:
                continue
            protocol = port.get("protocol") or "TCP"
            if protocol != "TCP":
                skipped.append(Skipped(name, f"{protocol}: port-forward carries TCP only", number))
                continue
            pname = port.get("name") if isinstance(port.get("name"), str) else ""
            members.append(Member(name, number, pname, address))
    members.sort(key=lambda m: m.key)
    skipped.sort(key=lambda s: (s.service, s.port))
    # A Service listing one port twice (TCP and UDP share a number; or bad data): one member.
    unique: dict[tuple[str, int], Member] = {}
    for m in members:
        unique.setdefault(m.key, m)
    return list(unique.values()), skipped


def diff(current: Set[tuple[str, int]], wanted: Iterable[Member]) -> tuple[list[Member], list[tuple[str, int]]]:
    """What to change: the members of ``wanted`` to start, and the keys of ``current`` to stop.

    ``current``: the keys (:attr:`Member.key`) of the members running now.
    A member is started once and kept while its Service keeps that port;
    a Service's port that changed number is one stop and one start.
    Both lists are sorted.
    """
    wanted = list(wanted)
    keys = {m.key for m in wanted}
    start = sorted((m for m in wanted if m.key not in current), key=lambda m: m.key)
    stop = sorted(k for k in current if k not in keys)
    return start, stop


def privileged_hint(port: int, unprivileged_start: int) -> str:
    """What to tell a user whose member cannot listen on ``port`` without privileges ("" if it may).

    ``unprivileged_start``: Linux's ``net.ipv4.ip_unprivileged_port_start``
    (1024 unless changed).  Ports below it need root or the
    ``CAP_NET_BIND_SERVICE`` capability, as they do for kubefwd.
    """
    if port >= unprivileged_start:
        return ""
    return (f"port {port} is below net.ipv4.ip_unprivileged_port_start ({unprivileged_start}), so only root may "
            f"listen on it; allow it once with 'sudo sysctl -w net.ipv4.ip_unprivileged_port_start={port}' "
            "(or give the Python interpreter cap_net_bind_service), or forward this Service alone "
            "with another local port")
