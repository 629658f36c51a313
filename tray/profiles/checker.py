"""The rules of the profiles format: a YAML node tree checked field by field and across profiles.

:class:`Checker` walks the node tree the reader composed
(:mod:`tray.profiles.reader`) and builds the :class:`~tray.profiles.model.Profile`
objects, collecting every problem as a one-line
:class:`~tray.errors.UsageError` that names the file, the line and the field
(``profiles.yaml:14: profiles[2].ports[1]: ...``; list indexes count from
0).  The checks are those of one field (a name's characters, a namespace,
a target or port in kubectl's forms, an address, YAML types and tags,
unknown and duplicate keys; for relay forwards a ``host/``/``ip/`` target's
port against the ``ports``, ``protocol`` against each port's ``/tcp`` or
``/udp``, named ports, ``relay: {image: ...}`` here and at the top level) and those across profiles: duplicate profile
names, a local address and port used twice (by two profiles, or twice in
one), and, when the kubeconfig's contexts are given, unknown contexts.  They
run in one pass over the file, so problems come out in file order.

YAML 1.1 reads ``yes``/``no``/``on``/``off`` as booleans and ``2024-01-01``
as a date: such values are refused where a string is expected, with a hint
to quote them.  A port written unquoted is typed as an integer --
sometimes surprisingly (YAML 1.1 reads ``8080:30`` as the base-60 number
484830) -- so port items are taken from the *source text* of the scalar,
never from YAML's interpretation of it.

Pure: no I/O.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from dataclasses import dataclass, replace
from typing import Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tray.domain.balance import balance_problem
from tray.domain.addresses import AUTO_ADDRESS, DEFAULT_ADDRESS, LOCALHOST_ADDRESSES, auto_address
from tray.domain.portspec import PortSpec, parse_port_spec
from tray.domain.servicegroup import (
    NAMESPACE_TARGET_PREFIX,
    NamespaceTarget,
    parse_label_selector,
    parse_namespace_target,
)
from tray.domain.targets import Target, parse_target, split_target_port
from tray.errors import UsageError
from tray.profiles.model import (
    NAME_PATTERN,
    NAMESPACE_PATTERN,
    PROFILE_KEYS,
    PROTOCOLS,
    RELAY_KEYS,
    REQUIRED_PROFILE_KEYS,
    TOP_LEVEL_KEYS,
    VERSION,
    Profile,
)

__all__ = ["MAX_ERRORS", "Checker"]

#: check_profiles stops collecting after this many problems.
MAX_ERRORS: Final = 100

_NAME_RE: Final = re.compile(NAME_PATTERN)
_NAMESPACE_RE: Final = re.compile(NAMESPACE_PATTERN)

_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: A port spec's own protocol suffix, in its source text.
_SUFFIX_RE: Final = re.compile(r"/(tcp|udp)$", re.IGNORECASE)
#: An image reference as a container runtime takes it: ``[REGISTRY[:PORT]/]PATH[:TAG][@DIGEST]``, loosely
#: (the runtime has the last word): no spaces or control characters, at most 512 characters.
_IMAGE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}")

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP = (
    _TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_SEQ, _MAP = _TAG + "seq", _TAG + "map"
_KNOWN_SCALAR_TAGS: Final = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})


def _q(text: str, limit: int = 60) -> str:
    """Quote user text for a one-line message."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return json.dumps(text, ensure_ascii=False)


def _type_name(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _STR: "a string",
        _INT: "a number",
        _FLOAT: "a number",
        _BOOL: "a boolean",
        _NULL: "nothing (null)",
        _TIMESTAMP: "a date",
    }.get(node.tag, f"a value tagged {node.tag}")


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _end_line(node: Node) -> int:
    return node.end_mark.line + 1


def _key_path(parent: str, key: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{_q(key, 30)}]"


class _TooManyErrors(Exception):
    """Raised by :meth:`Checker.error` when :data:`MAX_ERRORS` problems are collected: stop checking.

    The caller catches it and still calls :meth:`Checker.result`.
    """


@dataclass
class _PortUse:
    profile: str
    line: int
    field: str
    addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | _AutoClaim, ...]


@dataclass(frozen=True)
class _AutoClaim:
    """A profile's ``address: auto``, for the duplicate address:port check.

    The address is :func:`~tray.domain.addresses.auto_address` of (context,
    namespace, target name): known when the profile names its context and
    namespace, else (no kubeconfig here) the profile's own three values stand
    for it, so the same target twice clashes and different targets do not.
    Looks like an IPv4 address to :func:`_overlap` (a ``0.0.0.0`` wildcard
    on the same port clashes with it).
    """

    context: str | None
    namespace: str | None
    name: str
    version = 4
    is_unspecified = False

    def address(self) -> ipaddress.IPv4Address | _AutoClaim:
        if self.context is None or self.namespace is None:
            return self
        return ipaddress.IPv4Address(auto_address(self.context, self.namespace, self.name))

    def shown(self, port: int) -> str:
        """``127.A.B.C:PORT (address auto)``, or ``auto:PORT (...)`` naming the target when the address is not known."""
        known = self.address()
        if known is not self:
            return f"{known}:{port} (address auto)"
        where = f"{self.namespace or 'the default namespace'} of {self.context or 'the current context'}"
        return f"auto:{port} (the address of {self.name} in {where})"


def _auto_claim(address: str | None, context: str | None, namespace: str | None, target: Target | None, *,
                bad: bool) -> str | _AutoClaim | None:
    """What a profile's ports claim: its address, or for ``auto`` an :class:`_AutoClaim` (None: do not check)."""
    if address != AUTO_ADDRESS:
        return address
    if bad or target is None:
        return None  # a field it depends on is wrong, and said so already
    return _AutoClaim(context, namespace, target.name)


class Checker:
    """The problems of one profiles document, and the profiles it holds.

    *source* names the file in messages; with *known_contexts* (the
    kubeconfig's context names), a profile naming another context is a
    problem.  One instance checks one document: call :meth:`error` for
    problems found before the node tree exists (decoding, YAML syntax), then
    :meth:`document` on the tree, then :meth:`result`.  Pure, no I/O.
    """

    def __init__(self, source: str, known_contexts: set[str] | frozenset[str] | None) -> None:
        self.source = source
        self.known_contexts = None if known_contexts is None else frozenset(known_contexts)
        self.errors: list[UsageError] = []
        self._order: list[int] = []  # the line each error sorts by
        self.names: dict[str, int] = {}
        self.ports_in_use: dict[tuple[int, str], list[_PortUse]] = {}
        #: The file's top-level ``relay: {image: ...}`` (None: not given or bad).
        self.relay_image: str | None = None

    # -- reporting ---------------------------------------------------------

    def error(
        self, message: str, where: Node | int | None = None, fld: str | None = None, *, sort_line: int | None = None
    ) -> None:
        """Record a problem at *where* (a node, a 1-based line number, or None for the whole file).

        *fld* is the field path shown (``profiles[2].ports[1]``).  Raises
        :class:`_TooManyErrors` once :data:`MAX_ERRORS` problems are recorded.

        Problems are returned in order of *sort_line*, by default the line
        shown; a missing key is shown at the start of its mapping but sorted
        at its end, so that e.g. a misspelt key is reported first.
        """
        line = _line(where) if isinstance(where, Node) else where
        message = " ".join(message.split())  # always one line
        self.errors.append(UsageError(message, source=self.source, line=line, field=fld or None))
        self._order.append(sort_line if sort_line is not None else (line or 0))
        if len(self.errors) >= MAX_ERRORS:
            raise _TooManyErrors

    # -- the outcome -------------------------------------------------------

    def result(self, profiles: list[Profile]) -> tuple[list[Profile], list[UsageError]]:
        """(*profiles*, or [] if there was any problem; the problems in file order).

        Problems on one line keep the order they were found in; if checking
        stopped at :data:`MAX_ERRORS`, a last problem says so.
        """
        # File order; a stable sort keeps the order of problems on one line.
        errors = [e for _, _, e in sorted(zip(self._order, range(len(self.errors)), self.errors))]
        if len(errors) >= MAX_ERRORS:
            errors.append(UsageError(f"too many problems; stopped after the first {MAX_ERRORS}", source=self.source))
        return (profiles if not errors else []), errors

    # -- generic node helpers ----------------------------------------------

    def _check_tags(self, node: Node, fld: str) -> bool:
        if isinstance(node, ScalarNode):
            ok = node.tag in _KNOWN_SCALAR_TAGS
        elif isinstance(node, SequenceNode):
            ok = node.tag == _SEQ
        else:
            ok = node.tag == _MAP
        if not ok:
            tag = "!!" + node.tag[len(_TAG):] if node.tag.startswith(_TAG) else node.tag
            self.error(f"YAML tag {_q(tag, 40)} is not supported here", node, fld)
        return ok

    def _mapping(self, node: MappingNode, path: str, allowed: tuple[str, ...]) -> dict[str, tuple[Node, Node]]:
        """The mapping's entries by key, reporting odd, unknown and duplicate keys."""
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error(f"keys must be plain words, not {_type_name(key_node)}", key_node, path)
                continue
            key = key_node.value
            fld = _key_path(path, key)
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else "expected one of: " + ", ".join(allowed)
                self.error(f"unknown key {_q(key, 40)}; {hint}", key_node, fld)
                continue
            if key in out:
                self.error(f"duplicate key {key!r} (first given at line {_line(out[key][0])})", key_node, fld)
                continue
            out[key] = (key_node, value_node)
        return out

    def _string(self, node: Node, fld: str) -> str | None:
        """A string value, or None after reporting why it is not one."""
        if not self._check_tags(node, fld):
            return None
        if isinstance(node, ScalarNode) and node.tag == _STR:
            return node.value
        what = _type_name(node)
        hint = ""
        if isinstance(node, ScalarNode):
            if node.tag == _BOOL:
                hint = f"; YAML reads {node.value} as a boolean, quote it if you mean the word: \"{node.value}\""
            elif node.tag == _NULL:
                if fld.rsplit(".", 1)[-1] not in REQUIRED_PROFILE_KEYS:
                    hint = "; leave the key out to use the default"
            elif node.tag in (_INT, _FLOAT, _TIMESTAMP):
                hint = f"; quote it if you mean the text: \"{node.value}\""
        self.error(f"expected a string, got {what}{hint}", node, fld)
        return None

    def _text_field(self, node: Node, fld: str, what: str) -> str | None:
        """A non-empty single-line string."""
        value = self._string(node, fld)
        if value is None:
            return None
        if not value:
            self.error(f"{what} must not be empty", node, fld)
            return None
        if _CONTROL_RE.search(value):
            self.error(f"{what} {_q(value)} contains control characters", node, fld)
            return None
        return value

    # -- the document ------------------------------------------------------

    def document(self, root: Node) -> list[Profile]:
        """Check the whole document *root* (the file's composed node tree); return the profiles found valid.

        Problems are recorded with :meth:`error`; the profiles returned count
        only if there is none (see :meth:`result`).  Raises
        :class:`_TooManyErrors` at :data:`MAX_ERRORS` problems.
        """
        if not isinstance(root, MappingNode):
            self.error(
                f"the top level must be a mapping with 'version: 1' and 'profiles:', not {_type_name(root)}", root
            )
            return []
        if not self._check_tags(root, ""):
            return []
        entries = self._mapping(root, "", TOP_LEVEL_KEYS)
        if "relay" in entries:
            self.relay_image = self._relay(entries["relay"][1], "relay")

        if "version" not in entries:
            self.error("missing 'version: 1' (the format version)", root, "version", sort_line=_end_line(root))
        else:
            node = entries["version"][1]
            if isinstance(node, ScalarNode) and node.tag == _INT:
                version = _int_value(node)
                if version != VERSION:
                    # A different format: checking it against version 1's
                    # rules would only produce noise.
                    self.error(
                        f"unsupported version {_q(node.value, 20)}; this Tender reads version {VERSION}",
                        node,
                        "version",
                    )
                    return []
            else:
                self.error(f"expected the number {VERSION}, got {_type_name(node)}", node, "version")

        if "profiles" not in entries:
            self.error(
                "missing 'profiles:' (a list of profiles; 'profiles: []' for none)",
                root,
                "profiles",
                sort_line=_end_line(root),
            )
            return []
        node = entries["profiles"][1]
        if not self._check_tags(node, "profiles"):
            return []
        if not isinstance(node, SequenceNode):
            hint = "; write 'profiles: []' for none" if isinstance(node, ScalarNode) and node.tag == _NULL else ""
            self.error(f"expected a list of profiles, got {_type_name(node)}{hint}", node, "profiles")
            return []
        profiles = []
        for index, item in enumerate(node.value):
            profile = self._profile(item, f"profiles[{index}]")
            if profile is not None:
                profiles.append(profile)
        if self.relay_image is not None:
            profiles = [replace(p, file_relay_image=self.relay_image) for p in profiles]
        return profiles

    def _profile(self, node: Node, path: str) -> Profile | None:
        if not isinstance(node, MappingNode):
            self.error(
                f"expected a profile (a mapping with name, target and ports), got {_type_name(node)}", node, path
            )
            return None
        if not self._check_tags(node, path):
            return None
        before = len(self.errors)
        entries = self._mapping(node, path, PROFILE_KEYS)
        values: dict[str, Node] = {key: value for key, (_, value) in entries.items()}
        whole = _namespace_target_text(values.get("target"))
        carried = _target_carries_port(values.get("target"))
        for key in (*REQUIRED_PROFILE_KEYS, *(() if whole or carried else ("ports",))):
            if key not in entries:
                self.error(f"missing required key {key!r}", node, path, sort_line=_end_line(node))
        if whole:  # target: namespace/NS -- every Service of NS (tray.engine.group)
            return self._namespace_profile(node, path, values, whole, before)
        if "selector" in values:
            self.error("'selector' chooses the Services of a 'target: namespace/NS' profile; this target is one "
                       "object", values["selector"], f"{path}.selector")

        name = self._name(values["name"], f"{path}.name") if "name" in values else None
        context = self._context(values["context"], f"{path}.context") if "context" in values else None
        namespace = self._namespace(values["namespace"], f"{path}.namespace") if "namespace" in values else None
        target, target_port = (self._target(values["target"], f"{path}.target") if "target" in values
                               else (None, None))
        protocol = self._protocol(values["protocol"], f"{path}.protocol") if "protocol" in values else None
        address = self._address(values["address"], f"{path}.address") if "address" in values else DEFAULT_ADDRESS
        claim = _auto_claim(address, context, namespace, target, bad=len(self.errors) != before)
        if "ports" in values:
            ports = self._ports(values["ports"], f"{path}.ports", name or path, claim,
                                _PortRules(protocol, target, target_port, f"{path}.protocol"))
        elif target_port is not None:  # the target's port: local = remote
            spec = PortSpec(target_port, target_port, protocol=protocol or "TCP")
            ok = claim is None or self._claim(spec, claim, name or path, values["target"], f"{path}.target")
            ports = (spec,) if ok else None
        else:
            ports = None
        autostart = self._bool(values["autostart"], f"{path}.autostart") if "autostart" in values else False
        group = self._text_field(values["group"], f"{path}.group", "group") if "group" in values else None
        balance = self._balance(values["balance"], f"{path}.balance", target) if "balance" in values else "auto"
        relay_image = self._relay(values["relay"], f"{path}.relay") if "relay" in values else None

        if len(self.errors) != before or name is None or target is None or ports is None or address is None:
            return None
        assert autostart is not None
        return Profile(
            name=name,
            context=context,
            namespace=namespace,
            target=target,
            ports=ports,
            address=address,
            autostart=autostart,
            group=group,
            balance=balance or "auto",
            protocol=protocol,
            target_port=target_port,
            relay_image=relay_image,
            line=_line(node),
        )

    def _namespace_profile(self, node: Node, path: str, values: dict[str, Node], text: str,
                           before: int) -> Profile | None:
        """A ``target: namespace/NS`` profile: no ports, namespace or address of its own; an optional selector."""
        name = self._name(values["name"], f"{path}.name") if "name" in values else None
        context = self._context(values["context"], f"{path}.context") if "context" in values else None
        target: NamespaceTarget | None = None
        try:
            target = parse_namespace_target(text)
        except UsageError as err:
            self.error(err.message, values["target"], f"{path}.target")
        why = {"ports": "every Service port is forwarded on its real port",
               "protocol": "every Service port is forwarded with its own protocol",
               "namespace": "the target names the namespace",
               "address": "each Service listens on its own 127.A.B.C",
               "relay": "set the relay image for the whole file with a top-level 'relay: {image: ...}'"}
        for key, reason in why.items():
            if key in values:
                self.error(f"'{key}' is not allowed with 'target: {text}' ({reason})", values[key],
                           f"{path}.{key}")
        selector = None
        if "selector" in values:
            selector = self._string(values["selector"], f"{path}.selector")
            if selector is not None:
                try:
                    parse_label_selector(selector)
                except UsageError as err:
                    self.error(err.message, values["selector"], f"{path}.selector")
        autostart = self._bool(values["autostart"], f"{path}.autostart") if "autostart" in values else False
        group = self._text_field(values["group"], f"{path}.group", "group") if "group" in values else None
        balance = self._balance(values["balance"], f"{path}.balance", None) if "balance" in values else "auto"
        if len(self.errors) != before or name is None or target is None or autostart is None:
            return None
        return Profile(name=name, context=context, namespace=target.name, target=target, ports=(),
                       autostart=autostart, group=group, selector=selector, balance=balance or "auto",
                       line=_line(node))

    # -- fields ------------------------------------------------------------

    def _balance(self, node: Node, fld: str, target: Target | None) -> str | None:
        """``balance:``: round-robin, pin or sticky (:mod:`tray.domain.balance`); the spreading modes need a Service."""
        value = self._string(node, fld)
        if value is None:
            return None
        problem = balance_problem(target.kind if target is not None else "Service", value)
        if problem:
            self.error(problem, node, fld)
            return None
        return value

    def _name(self, node: Node, fld: str) -> str | None:
        name = self._string(node, fld)
        if name is None:
            return None
        if not _NAME_RE.fullmatch(name):
            if not name:
                problem = "a profile name must not be empty"
            elif len(name) > 63:
                problem = f"profile name is {len(name)} characters long; at most 63 are allowed"
            else:
                problem = (
                    f"invalid profile name {_q(name)}: use letters, digits, '.', '_' and '-', "
                    "starting with a letter or digit"
                )
            self.error(problem, node, fld)
            return None
        first = self.names.get(name)
        if first is not None:
            self.error(f"duplicate profile name {name!r} (first used at line {first})", node, fld)
            return None
        self.names[name] = _line(node)
        return name

    def _context(self, node: Node, fld: str) -> str | None:
        context = self._text_field(node, fld, "context")
        if context is None:
            return None
        if self.known_contexts is not None and context not in self.known_contexts:
            known = sorted(self.known_contexts)
            if not known:
                listing = "the kubeconfig has no contexts"
            else:
                shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
                listing = f"the kubeconfig has: {shown}"
            close = difflib.get_close_matches(context, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            self.error(f"unknown context {_q(context)}; {hint}{listing}", node, fld)
            return None
        return context

    def _namespace(self, node: Node, fld: str) -> str | None:
        namespace = self._string(node, fld)
        if namespace is None:
            return None
        if not _NAMESPACE_RE.fullmatch(namespace):
            self.error(
                f"invalid namespace {_q(namespace)}: namespaces are 1-63 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit",
                node,
                fld,
            )
            return None
        return namespace

    def _target(self, node: Node, fld: str) -> tuple[Target | None, int | None]:
        """(the target, the port a ``host/``/``ip/`` target carries or None); (None, None) after reporting."""
        text = self._string(node, fld)
        if text is None:
            return None, None
        try:
            bare, port = split_target_port(text)
            return parse_target(bare), port
        except UsageError as err:
            self.error(err.message, node, fld)
            return None, None

    def _protocol(self, node: Node, fld: str) -> str | None:
        """``protocol:``: TCP or UDP (any case), as Kubernetes spells it; None after reporting."""
        text = self._string(node, fld)
        if text is None:
            return None
        if text.upper() not in PROTOCOLS:
            self.error(f"unknown protocol {_q(text, 20)}; expected TCP or UDP", node, fld)
            return None
        return text.upper()

    def _relay(self, node: Node, fld: str) -> str | None:
        """``relay: {image: IMAGE}``: the image; None after reporting (or with no ``image``)."""
        if not self._check_tags(node, fld):
            return None
        if not isinstance(node, MappingNode):
            self.error(f"expected a mapping like {{image: python:3.13-alpine}}, got {_type_name(node)}", node, fld)
            return None
        entries = self._mapping(node, fld, RELAY_KEYS)
        if "image" not in entries:
            if not node.value:
                self.error("an empty 'relay:' says nothing; give 'image: IMAGE' or leave it out", node, fld)
            return None
        value_node = entries["image"][1]
        image = self._text_field(value_node, f"{fld}.image", "image")
        if image is None:
            return None
        if not _IMAGE_RE.fullmatch(image):
            self.error(f"invalid image {_q(image)}: expected an image reference such as python:3.13-alpine or "
                       "registry.example/python:3.13-alpine", value_node, f"{fld}.image")
            return None
        return image

    def _address(self, node: Node, fld: str) -> str | None:
        text = self._string(node, fld)
        if text is None:
            return None
        if text in ("localhost", AUTO_ADDRESS):
            return text
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            self.error(f"invalid address {_q(text)}: expected an IP address, \"localhost\" or \"auto\"", node, fld)
            return None

    def _bool(self, node: Node, fld: str) -> bool | None:
        if not self._check_tags(node, fld):
            return None
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return node.value.lower() in ("yes", "true", "on", "y")
        hint = ""
        if isinstance(node, ScalarNode) and node.tag == _STR and node.value.lower() in ("true", "false"):
            hint = "; remove the quotes"
        self.error(f"expected true or false, got {_type_name(node)}{hint}", node, fld)
        return None

    def _ports(self, node: Node, fld: str, profile: str,
               address: str | _AutoClaim | None, rules: _PortRules) -> tuple[PortSpec, ...] | None:
        if not self._check_tags(node, fld):
            return None
        if not isinstance(node, SequenceNode):
            hint = ""
            if isinstance(node, ScalarNode) and node.tag in (_STR, _INT):
                hint = f"; write a list even for one port: [\"{node.value}\"]"
            self.error(f"expected a list of ports, got {_type_name(node)}{hint}", node, fld)
            return None
        if not node.value:
            self.error("at least one port is required", node, fld)
            return None
        specs: list[PortSpec] = []
        ok = True
        own: dict[tuple[int, str], int] = {}  # (local port, protocol) -> index, within this profile
        for index, item in enumerate(node.value):
            item_field = f"{fld}[{index}]"
            spec = self._port(item, item_field)
            if spec is not None:
                spec = self._port_rules(spec, item, item_field, rules)
            if spec is None:
                ok = False
                continue
            specs.append(spec)
            if spec.local is None:
                continue
            if (spec.local, spec.protocol) in own:
                self.error(
                    f"local port {_port_shown(spec)} is already used by {fld}[{own[spec.local, spec.protocol]}] "
                    "of this profile",
                    item,
                    item_field,
                )
                ok = False
                continue
            own[spec.local, spec.protocol] = index
            if address is not None and not self._claim(spec, address, profile, item, item_field):
                ok = False
        return tuple(specs) if ok else None

    def _port_rules(self, spec: PortSpec, node: ScalarNode, fld: str, rules: _PortRules) -> PortSpec | None:
        """*spec* with the profile's protocol applied; None after reporting a port the profile contradicts."""
        suffix = _SUFFIX_RE.search(node.value)
        if rules.protocol is not None:
            if suffix is None:
                spec = replace(spec, protocol=rules.protocol)
            elif suffix.group(1).upper() != rules.protocol:
                self.error(f"port {_q(node.value, 20)} says {suffix.group(1).upper()}, but the profile's "
                           f"protocol ({rules.protocol_field}) is {rules.protocol}; drop the suffix or the "
                           "protocol", node, fld)
                return None
        target = rules.target
        if target is not None and target.relayed and isinstance(spec.remote, str):
            self.error(f"{target} has no named ports: give the port as a number", node, fld)
            return None
        if rules.target_port is not None and spec.remote != rules.target_port:
            self.error(f"port {_q(node.value, 20)} names remote port {spec.remote}, but the target "
                       f"{target}:{rules.target_port} says {rules.target_port}", node, fld)
            return None
        return spec

    def _port(self, node: Node, fld: str) -> PortSpec | None:
        if not self._check_tags(node, fld):
            return None
        if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT):
            self.error(
                f"expected a port like 8080, \"8080:80\" or \":http\", got {_type_name(node)}", node, fld
            )
            return None
        # The source text, not YAML's reading of it: see the module docstring.
        try:
            return parse_port_spec(node.value)
        except UsageError as err:
            self.error(err.message, node, fld)
            return None

    def _claim(self, spec: PortSpec, address: str | _AutoClaim, profile: str, node: Node, fld: str) -> bool:
        """Record that *profile* listens on address:port (of *spec*'s protocol); False (reported) if another does."""
        assert spec.local is not None
        port = spec.local
        addresses: tuple[_IP | _AutoClaim, ...]
        if isinstance(address, _AutoClaim):
            addresses = (address.address(),)
        else:
            addresses = tuple(
                _canonical_ip(a) for a in (LOCALHOST_ADDRESSES if address == "localhost" else (address,))
            )
        udp = "/udp" if spec.protocol == "UDP" else ""
        for use in self.ports_in_use.get((port, spec.protocol), []):
            if any(_overlap(a, b) for a in addresses for b in use.addresses):
                self.error(
                    f"local address {_shown(address, port)}{udp} is already used by profile {use.profile!r} "
                    f"({use.field}, line {use.line})",
                    node,
                    fld,
                )
                return False
        self.ports_in_use.setdefault((port, spec.protocol), []).append(_PortUse(profile, _line(node), fld, addresses))
        return True


@dataclass(frozen=True)
class _PortRules:
    """What a profile's other fields say about its ports: ``protocol:``, and the target (and its port)."""

    protocol: str | None
    target: Target | None
    target_port: int | None
    protocol_field: str


def _port_shown(spec: PortSpec) -> str:
    return f"{spec.local}/udp" if spec.protocol == "UDP" else str(spec.local)


def _target_carries_port(node: Node | None) -> bool:
    """Whether the ``target:`` text is ``host/NAME:PORT`` or ``ip/ADDRESS:PORT`` (a plain string with a port)."""
    if not isinstance(node, ScalarNode) or node.tag != _STR:
        return False
    try:
        return split_target_port(node.value)[1] is not None
    except UsageError:  # a bad port on a host/ or ip/ target: said at the target, not again as missing ports
        return True


def _namespace_target_text(node: Node | None) -> str:
    """The ``target:`` text when it is ``namespace/...`` (a plain string), else ""."""
    if isinstance(node, ScalarNode) and node.tag == _STR and node.value.startswith(NAMESPACE_TARGET_PREFIX):
        return node.value
    return ""


def _int_value(node: ScalarNode) -> int | None:
    """YAML's reading of an int-tagged scalar (0o17, 0x1f, 1_000, 1:30 ...), None if absurd."""
    loader = yaml.SafeLoader("")
    try:
        value = loader.construct_yaml_int(node)
    except (ValueError, OverflowError, yaml.YAMLError):  # e.g. more digits than int() accepts
        return None
    finally:
        loader.dispose()
    return value if isinstance(value, int) else None


def _canonical_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def _overlap(a: _IP, b: _IP) -> bool:
    """Whether listening on a and b with the same port would clash.

    Equal addresses clash; a wildcard clashes with every address of its
    family, and ``::`` with IPv4 too (dual-stack sockets are the default on
    Linux and macOS).
    """
    if a == b:
        return True
    for x, y in ((a, b), (b, a)):
        if x.is_unspecified and (x.version == y.version or x.version == 6):
            return True
    return False


def _shown(address: str | _AutoClaim, port: int) -> str:
    return address.shown(port) if isinstance(address, _AutoClaim) else _host_port(address, port)


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
