"""The profiles data model: :class:`Profile`, :class:`ProfilesFile` and the format's facts.

Plain data, no I/O.  Format (version 1)::

    version: 1
    profiles:
      - name: shop-web           # required, unique, 1-63 of [A-Za-z0-9._-], starts alphanumeric
        context: tender-a        # optional; default: the kubeconfig's current context
        namespace: shop          # optional; default: the context's namespace, else "default"
        target: svc/web          # required; kubectl form (pod name, TYPE/NAME), or namespace/NS (below)
        ports: ["8080:80", "9090:metrics", ":5432", 3000]   # required, non-empty (not with namespace/NS)
        protocol: TCP            # optional; TCP or UDP, for ports without their own /tcp or /udp
        address: 127.0.0.1       # optional; an IP address or "localhost" (127.0.0.1 and ::1)
        balance: round-robin     # optional, svc/ only; round-robin (a Service's default), pin or sticky
        autostart: false         # optional; true or false
        group: shop              # optional; groups profiles in the tray menu
        relay: {image: IMAGE}    # optional; the relay pod's image for this profile's relay forwards
      - name: db-internal
        target: host/db.internal:5432  # host/NAME[:PORT] or ip/ADDRESS[:PORT]: through a relay pod
        # ports: absent means the target's port (local = remote); given, each names the same remote port
      - name: shop-all
        target: namespace/shop   # every Service of the namespace, followed (tray.engine.group)
        selector: tier in (web, api)   # optional; kubectl's label selector, on the Services' labels

A ``namespace/NS`` target forwards every Service of NS on its real ports,
each on its own 127.A.B.C: it takes no ``ports``, ``namespace`` or
``address`` (the target names the namespace; the addresses are the
Services' own); ``selector`` is allowed only with it.

Relay forwards (:mod:`tray.engine.relay`): a ``host/NAME[:PORT]`` or
``ip/ADDRESS[:PORT]`` target, and any port with ``/udp`` (or every port of
a profile with ``protocol: UDP``), run through a short-lived relay pod.  A
port the target carries stands for ``ports`` when they are absent; ports
given must name it as their remote port.  Its image is the profile's
``relay: {image: ...}``, else the file's top-level ``relay: {image: ...}``
(which applies to every profile of the file), else
:data:`tray.domain.relaypod.DEFAULT_IMAGE`::

    version: 1
    relay: {image: registry.example/python:3.13-alpine}   # optional
    profiles: [...]

The constants below are what the reader (:mod:`tray.profiles.reader`),
the checker (:mod:`tray.profiles.checker`), the writer
(:mod:`tray.profiles.writer`) and ``config/profiles.schema.json`` agree on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tray.domain.addresses import DEFAULT_ADDRESS, LOCALHOST_ADDRESSES
from tray.domain.portspec import PortSpec
from tray.domain.servicegroup import NamespaceTarget
from tray.domain.targets import Target

__all__ = [
    "EMPTY_PROFILES_TEXT",
    "NAMESPACE_PATTERN",
    "NAME_PATTERN",
    "PROFILE_KEYS",
    "PROTOCOLS",
    "RELAY_KEYS",
    "REQUIRED_PROFILE_KEYS",
    "REQUIRED_TOP_LEVEL_KEYS",
    "TOP_LEVEL_KEYS",
    "VERSION",
    "Profile",
    "ProfilesFile",
]

#: The only version of the format this code reads and writes.
VERSION: Final = 1
#: Keys allowed at the top level of the file.
TOP_LEVEL_KEYS: Final = ("version", "relay", "profiles")
#: Top-level keys every file must have.
REQUIRED_TOP_LEVEL_KEYS: Final = ("version", "profiles")
#: Keys allowed in a ``relay:`` mapping (the profile's and the file's).
RELAY_KEYS: Final = ("image",)
#: What ``protocol:`` may say (Kubernetes' spelling; the checker accepts any case).
PROTOCOLS: Final = ("TCP", "UDP")
#: Keys allowed in a profile, in the order Tender writes them.
PROFILE_KEYS: Final = ("name", "context", "namespace", "target", "selector", "ports", "protocol", "address",
                       "balance", "autostart", "group", "relay")
#: Keys every profile must have (``ports`` too, unless the target is ``namespace/NS``).
REQUIRED_PROFILE_KEYS: Final = ("name", "target")

#: What a freshly created profiles file contains.
EMPTY_PROFILES_TEXT: Final = "version: 1\nprofiles: []\n"

#: A profile name: 1-63 letters, digits, '.', '_' and '-', starting with a letter or digit.
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
#: A namespace name (a DNS-1123 label), as the API server accepts it.
NAMESPACE_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


@dataclass(frozen=True, kw_only=True)
class Profile:
    """One saved forward, as checked by the loader (frozen, keyword-only).

    *target* and *ports* are parsed (kubectl's forms, see
    :mod:`tray.domain.targets` and :mod:`tray.domain.portspec`); *address*
    is a canonical IP address or ``"localhost"``; None for *context* /
    *namespace* means the kubeconfig's current context / the context's
    namespace.  Making one does not validate it: :func:`~tray.profiles.save_profiles`
    does, before writing.

    ``line`` is where the profile starts in the file it was loaded from (0
    for profiles made in code); it is not part of equality, so a profile
    compares equal to itself after a save and reload.
    """

    name: str
    context: str | None = None
    namespace: str | None = None
    target: Target | NamespaceTarget
    ports: tuple[PortSpec, ...]
    address: str = DEFAULT_ADDRESS
    autostart: bool = False
    group: str | None = None
    line: int = field(default=0, compare=False)
    #: With a ``namespace/NS`` target: kubectl's label selector choosing its Services (None: all).
    selector: str | None = None
    #: How a Service target spreads connections (:mod:`tray.domain.balance`; "auto": the target's default).
    balance: str = "auto"
    #: ``protocol:`` as written ("TCP" or "UDP"), None when absent (TCP).  Every port's own
    #: :attr:`PortSpec.protocol <tray.domain.portspec.PortSpec.protocol>` is already the effective one.
    protocol: str | None = None
    #: The port a ``host/NAME:PORT`` or ``ip/ADDRESS:PORT`` target carries (None: none).
    target_port: int | None = None
    #: ``relay: {image: ...}`` of this profile (None: the file's, else the default).
    relay_image: str | None = None
    #: The file's top-level ``relay: {image: ...}`` when the profile was loaded (not part of equality).
    file_relay_image: str | None = field(default=None, compare=False)

    @property
    def effective_relay_image(self) -> str | None:
        """The relay image for this profile's relay forwards: its own, else the file's; None for the default."""
        return self.relay_image or self.file_relay_image

    @property
    def target_text(self) -> str:
        """The target as the file spells it: ``svc/web``, ``host/db.internal:5432``, ``ip/[fd00::7]:53``."""
        text = str(self.target)
        if self.target_port is None:
            return text
        if ":" in text.partition("/")[2]:  # an IPv6 address
            kind, _, address = text.partition("/")
            text = f"{kind}/[{address}]"
        return f"{text}:{self.target_port}"

    def port_text(self, spec: PortSpec) -> str:
        """*spec* as this profile writes it: without ``/udp`` when ``protocol: UDP`` says it already."""
        text = str(spec)
        if self.protocol == "UDP" and spec.protocol == "UDP":
            return text.removesuffix("/udp")
        return text

    @property
    def ports_from_target(self) -> bool:
        """Whether ``ports`` can be left out: they are just the target's port (local = remote)."""
        if self.target_port is None:
            return False
        protocol = self.protocol or "TCP"
        return self.ports == (PortSpec(self.target_port, self.target_port, protocol=protocol),)

    @property
    def is_namespace(self) -> bool:
        """The target is ``namespace/NS``: every Service of NS, no ports of its own."""
        return isinstance(self.target, NamespaceTarget)

    @property
    def bind_addresses(self) -> tuple[str, ...]:
        """The IP addresses to listen on, as strings ("localhost" is two of them: 127.0.0.1 and ::1)."""
        return LOCALHOST_ADDRESSES if self.address == "localhost" else (self.address,)

    def to_dict(self) -> dict[str, Any]:
        """The profile as the file spells it: a new dict of plain str/bool/list values (``relay``: a dict).

        Keys in :data:`PROFILE_KEYS` order; keys at their default are left
        out, and so are ``ports`` that are just the target's own port.
        """
        out: dict[str, Any] = {"name": self.name}
        if self.context is not None:
            out["context"] = self.context
        if self.namespace is not None and not self.is_namespace:  # namespace/NS names it
            out["namespace"] = self.namespace
        out["target"] = str(self.target) if self.is_namespace else self.target_text
        if self.selector is not None:
            out["selector"] = self.selector
        if not self.is_namespace and not self.ports_from_target:
            out["ports"] = [self.port_text(p) for p in self.ports]
        if self.protocol is not None:
            out["protocol"] = self.protocol
        if self.address != DEFAULT_ADDRESS:
            out["address"] = self.address
        if self.balance != "auto":
            out["balance"] = self.balance
        if self.autostart:
            out["autostart"] = True
        if self.group is not None:
            out["group"] = self.group
        if self.relay_image is not None:
            out["relay"] = {"image": self.relay_image}
        return out


@dataclass(frozen=True)
class ProfilesFile:
    """The profiles of one file, in file order (frozen).

    *path* is the file they were loaded from or written to.  Iterating and
    ``len()`` go over *profiles*.
    """

    path: Path
    profiles: tuple[Profile, ...] = ()

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.profiles)

    def __len__(self) -> int:
        return len(self.profiles)

    @property
    def relay_image(self) -> str | None:
        """The file's top-level ``relay: {image: ...}`` as its profiles carry it (None: not set, or no profiles)."""
        return next((p.file_relay_image for p in self.profiles if p.file_relay_image), None)

    def by_name(self, name: str) -> Profile | None:
        """The profile called *name* (exact match), or None."""
        for profile in self.profiles:
            if profile.name == name:
                return profile
        return None

    def names(self) -> list[str]:
        """The profile names, in file order (a new list)."""
        return [p.name for p in self.profiles]

    def groups(self) -> dict[str | None, list[Profile]]:
        """Profiles by group (None = ungrouped), groups in order of first appearance (a new dict)."""
        out: dict[str | None, list[Profile]] = {}
        for profile in self.profiles:
            out.setdefault(profile.group, []).append(profile)
        return out
