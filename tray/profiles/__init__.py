"""The profiles file: saved port-forwards, in YAML.

Format (version 1)::

    version: 1
    profiles:
      - name: shop-web           # required, unique, 1-63 of [A-Za-z0-9._-], starts alphanumeric
        context: tender-a        # optional; default: the kubeconfig's current context
        namespace: shop          # optional; default: the context's namespace, else "default"
        target: svc/web          # required; kubectl form (pod name, TYPE/NAME)
        ports: ["8080:80", "9090:metrics", ":5432", 3000]   # required, non-empty
        address: 127.0.0.1       # optional; an IP address or "localhost" (127.0.0.1 and ::1)
        autostart: false         # optional; true or false
        group: shop              # optional; groups profiles in the tray menu

Loading is strict, because a profile that silently means something other
than what the user wrote is worse than an error.  Every problem is reported
as a one-line :class:`~tray.errors.UsageError` naming the file, the line and
the field, e.g. ``profiles.yaml:14: profiles[2].ports[1]: ...``.  List
indexes in field paths count from 0.  :func:`load_profiles` raises the first
problem; :func:`check_profiles` returns all of them (``tender profiles
check``).

Things worth knowing about the YAML:

* The file is parsed to a node tree (never to Python objects first), so the
  loader sees each value's line and how YAML typed it.  YAML 1.1 reads
  ``yes``/``no``/``on``/``off`` as booleans and ``2024-01-01`` as a date:
  such values are refused where a string is expected, with a hint to quote
  them.  A port written unquoted is typed as an integer -- sometimes
  surprisingly (YAML 1.1 reads ``8080:30`` as the base-60 number 484830) --
  so port items are taken from the *source text* of the scalar, never from
  YAML's interpretation of it.
* Anchors and aliases (``&x``/``*x``) are refused outright: a profiles file
  has no use for them and they are how "billion laughs" documents blow up.
  The number of nodes and the nesting depth are bounded too, and files over
  1 MiB are refused before being read.
* Duplicate keys in a mapping are an error (PyYAML would silently keep the
  last one).

Saving (:func:`save_profiles`, :func:`add_profile`, :func:`update_profile`,
:func:`remove_profile`) edits the file in place, atomically, through a
ruamel.yaml round trip (:func:`edit_profiles_text`): only the profiles and
keys that changed are touched, and the user's comments (each staying with
its own profile), blank lines, key order, quoting, list styles, indentation
and line breaks stay as they were.  A missing file is written anew.  What
Tender writes always loads back to equal profiles; an edit that would not
is logged and the file written anew instead.

Reading stays with PyYAML's composer (not the round-trip library) because
the node tree it gives is what the checks above are built on: exact line
marks, YAML 1.1 typing as the user's tools see it, and the anchor, size and
depth bounds enforced before anything is built.  ruamel.yaml only ever
reads a file that passed those checks.
"""

from __future__ import annotations

import difflib
import io
import ipaddress
import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import CommentMark
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarbool import ScalarBoolean
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString
from ruamel.yaml.tokens import CommentToken
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tray.atomicfile import write_atomic
from tray.domain.addresses import DEFAULT_ADDRESS, LOCALHOST_ADDRESSES
from tray.errors import UsageError
from tray.domain.portspec import PortSpec, parse_port_spec
from tray.domain.targets import Target, parse_target

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ADDRESS",
    "EMPTY_PROFILES_TEXT",
    "MAX_FILE_SIZE",
    "PROFILE_KEYS",
    "TOP_LEVEL_KEYS",
    "Profile",
    "ProfilesFile",
    "add_profile",
    "check_profiles",
    "default_profiles_path",
    "dump_profiles",
    "edit_profiles_text",
    "ensure_profiles_file",
    "load_profiles",
    "parse_profiles",
    "remove_profile",
    "save_profiles",
    "update_profile",
]

#: The only version of the format this code reads and writes.
VERSION: Final = 1
#: Keys allowed at the top level of the file.
TOP_LEVEL_KEYS: Final = ("version", "profiles")
#: Keys allowed in a profile, in the order Tender writes them.
PROFILE_KEYS: Final = ("name", "context", "namespace", "target", "ports", "address", "autostart", "group")
#: Keys a profile must have.
REQUIRED_PROFILE_KEYS: Final = ("name", "target", "ports")


#: Files larger than this are refused without being read.
MAX_FILE_SIZE: Final = 1 << 20
#: Bounds on the YAML node tree (a real profiles file is a few thousand nodes
#: at depth 4).
MAX_NODES: Final = 20_000
MAX_DEPTH: Final = 32
#: check_profiles stops collecting after this many problems.
MAX_ERRORS: Final = 100

#: What a freshly created profiles file contains.
EMPTY_PROFILES_TEXT: Final = "version: 1\nprofiles: []\n"

_SAVE_HEADER: Final = (
    "# Tender profiles (format version 1); check with: tender profiles check FILE\n"
    "# Comments and layout are kept when Tender edits this file.\n"
)

NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
NAMESPACE_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_NAME_RE: Final = re.compile(NAME_PATTERN)
_NAMESPACE_RE: Final = re.compile(NAMESPACE_PATTERN)

# The characters PyYAML's reader refuses (the YAML 1.1 printable set, negated).
_NON_PRINTABLE_RE: Final = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP = (
    _TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")
)
_SEQ, _MAP = _TAG + "seq", _TAG + "map"
_KNOWN_SCALAR_TAGS: Final = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})


# --------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Profile:
    """One saved forward.

    ``line`` is where the profile starts in the file it was loaded from (0
    for profiles made in code); it is not part of equality, so a profile
    compares equal to itself after a save and reload.
    """

    name: str
    context: str | None = None
    namespace: str | None = None
    target: Target
    ports: tuple[PortSpec, ...]
    address: str = DEFAULT_ADDRESS
    autostart: bool = False
    group: str | None = None
    line: int = field(default=0, compare=False)

    @property
    def bind_addresses(self) -> tuple[str, ...]:
        """The IP addresses to listen on ("localhost" is two of them)."""
        return LOCALHOST_ADDRESSES if self.address == "localhost" else (self.address,)

    def to_dict(self) -> dict[str, Any]:
        """The profile as the file spells it; defaults are left out."""
        out: dict[str, Any] = {"name": self.name}
        if self.context is not None:
            out["context"] = self.context
        if self.namespace is not None:
            out["namespace"] = self.namespace
        out["target"] = str(self.target)
        out["ports"] = [str(p) for p in self.ports]
        if self.address != DEFAULT_ADDRESS:
            out["address"] = self.address
        if self.autostart:
            out["autostart"] = True
        if self.group is not None:
            out["group"] = self.group
        return out


@dataclass(frozen=True)
class ProfilesFile:
    """The profiles of one file, in file order."""

    path: Path
    profiles: tuple[Profile, ...] = ()

    def __iter__(self) -> Iterator[Profile]:
        return iter(self.profiles)

    def __len__(self) -> int:
        return len(self.profiles)

    def by_name(self, name: str) -> Profile | None:
        """The profile called *name* (exact match), or None."""
        for profile in self.profiles:
            if profile.name == name:
                return profile
        return None

    def names(self) -> list[str]:
        return [p.name for p in self.profiles]

    def groups(self) -> dict[str | None, list[Profile]]:
        """Profiles by group (None = ungrouped), groups in order of first appearance."""
        out: dict[str | None, list[Profile]] = {}
        for profile in self.profiles:
            out.setdefault(profile.group, []).append(profile)
        return out


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------


def default_profiles_path() -> Path:
    """``$TENDER_PROFILES`` if set (and not empty), else the per-user config file."""
    env = os.environ.get("TENDER_PROFILES")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_config_path("tender", appauthor=False) / "profiles.yaml"


def _resolve_path(path: str | os.PathLike[str] | None, missing_ok: bool | None) -> tuple[Path, str, bool]:
    """(path, source shown in messages, whether a missing file means "no profiles").

    A missing file is fine only for the built-in default location: a path the
    user named (argument or ``$TENDER_PROFILES``) that does not exist is most
    likely a typo.
    """
    if path is None:
        explicit = bool(os.environ.get("TENDER_PROFILES"))
        resolved = default_profiles_path()
        return resolved, str(resolved), (not explicit) if missing_ok is None else missing_ok
    return Path(path), os.fspath(path), bool(missing_ok)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def load_profiles(
    path: str | os.PathLike[str] | None = None,
    *,
    known_contexts: set[str] | frozenset[str] | None = None,
    missing_ok: bool | None = None,
) -> ProfilesFile:
    """Load and validate a profiles file; raise the first problem as UsageError.

    *path* None means :func:`default_profiles_path`.  A missing file yields no
    profiles when it is the built-in default location (or *missing_ok* is
    true) and is an error otherwise.  With *known_contexts*, a profile naming
    a context not in the set is an error.
    """
    resolved, source, ok_missing = _resolve_path(path, missing_ok)
    profiles, errors = _load(resolved, source, ok_missing, known_contexts)
    if errors:
        raise errors[0]
    return ProfilesFile(resolved, tuple(profiles))


def check_profiles(
    path: str | os.PathLike[str] | None = None,
    known_contexts: set[str] | frozenset[str] | None = None,
    *,
    missing_ok: bool | None = None,
) -> list[UsageError]:
    """All the problems of a profiles file (at most :data:`MAX_ERRORS`), in file order.

    An empty list means :func:`load_profiles` would succeed.
    """
    resolved, source, ok_missing = _resolve_path(path, missing_ok)
    return _load(resolved, source, ok_missing, known_contexts)[1]


def parse_profiles(
    data: bytes | str,
    *,
    source: str = "<profiles>",
    known_contexts: set[str] | frozenset[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> ProfilesFile:
    """Validate profiles given as text or bytes (*source* names them in messages)."""
    profiles, errors = _Checker(source, known_contexts).run(data)
    if errors:
        raise errors[0]
    return ProfilesFile(Path(path if path is not None else source), tuple(profiles))


def _load(
    path: Path, source: str, missing_ok: bool, known_contexts: set[str] | frozenset[str] | None
) -> tuple[list[Profile], list[UsageError]]:
    try:
        data = _read_limited(path, source)
    except FileNotFoundError:
        if missing_ok:
            return [], []
        return [], [UsageError("no such file", source=source)]
    except UsageError as err:
        return [], [err]
    return _Checker(source, known_contexts).run(data)


def _read_limited(path: Path, source: str) -> bytes:
    """The file's bytes; UsageError for anything that is not a readable, small, regular file.

    Raises FileNotFoundError for a missing file (the caller decides).  The file
    is opened non-blocking so a FIFO cannot hang us, and its size is checked
    before reading so a huge file costs nothing.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise UsageError("is a directory, not a profiles file", source=source) from None
    except PermissionError:
        if os.path.isdir(path):  # Windows cannot open directories at all
            raise UsageError("is a directory, not a profiles file", source=source) from None
        raise UsageError("permission denied: cannot read the file", source=source) from None
    except OSError as err:
        raise UsageError(f"cannot open the file: {err.strerror or err}", source=source) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise UsageError("is a directory, not a profiles file", source=source)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError("not a regular file", source=source)
        if st.st_size > MAX_FILE_SIZE:
            raise UsageError(_too_large(st.st_size), source=source)
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_FILE_SIZE:
            chunk = os.read(fd, MAX_FILE_SIZE + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_FILE_SIZE:  # grew while we read it
            raise UsageError(_too_large(total), source=source)
        return b"".join(chunks)
    except OSError as err:
        raise UsageError(f"cannot read the file: {err.strerror or err}", source=source) from None
    finally:
        os.close(fd)


def _looks_binary(data: bytes) -> bool:
    """Whether undecodable bytes look like binary data rather than a wrong text encoding.

    Text in a legacy 8-bit encoding has the odd invalid byte among letters;
    binary data has control bytes and invalid sequences everywhere.
    """
    head = data[:4096]
    decoded = head.decode("utf-8", errors="replace")
    odd = sum(1 for c in decoded if c == "\ufffd" or (c < " " and c not in "\t\n\r\f"))
    return odd * 10 > len(decoded)


def _too_large(size: int) -> str:
    return f"file is too large ({size} bytes; the limit is {MAX_FILE_SIZE} bytes = 1 MiB)"


# --------------------------------------------------------------------------
# YAML with bounds
# --------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases and bounds node count and depth.

    Only ``compose`` is used: nothing is ever constructed into Python
    objects, which also keeps YAML's implicit typing visible to the checker.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._node_count = 0
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(f"YAML aliases (*{event.anchor}) are not supported in a profiles file", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _Refused(f"YAML anchors (&{anchor}) are not supported in a profiles file", event.start_mark)
        self._node_count += 1
        if self._node_count > MAX_NODES:
            raise _Refused(
                f"too many YAML nodes (more than {MAX_NODES}); this is not a profiles file", event.start_mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"YAML nested too deeply (more than {MAX_DEPTH} levels)", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------


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
    pass


@dataclass
class _PortUse:
    profile: str
    line: int
    field: str
    addresses: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]


class _Checker:
    def __init__(self, source: str, known_contexts: set[str] | frozenset[str] | None) -> None:
        self.source = source
        self.known_contexts = None if known_contexts is None else frozenset(known_contexts)
        self.errors: list[UsageError] = []
        self._order: list[int] = []  # the line each error sorts by
        self.names: dict[str, int] = {}
        self.ports_in_use: dict[int, list[_PortUse]] = {}

    # -- reporting ---------------------------------------------------------

    def error(
        self, message: str, where: Node | int | None = None, fld: str | None = None, *, sort_line: int | None = None
    ) -> None:
        """Record a problem at *where* (a node or a line number).

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

    # -- entry point -------------------------------------------------------

    def run(self, data: bytes | str) -> tuple[list[Profile], list[UsageError]]:
        profiles: list[Profile] = []
        try:
            text = self._decode(data)
            if text is not None:
                root = self._compose(text)
                if root is not None:
                    profiles = self._top(root)
        except _TooManyErrors:
            pass
        # File order; a stable sort keeps the order of problems on one line.
        errors = [e for _, _, e in sorted(zip(self._order, range(len(self.errors)), self.errors))]
        if len(errors) >= MAX_ERRORS:
            errors.append(UsageError(f"too many problems; stopped after the first {MAX_ERRORS}", source=self.source))
        return (profiles if not errors else []), errors

    def _decode(self, data: bytes | str) -> str | None:
        if isinstance(data, str):
            if len(data) > MAX_FILE_SIZE:
                self.error(_too_large(len(data.encode("utf-8", "surrogatepass"))))
                return None
            text = data
        else:
            if len(data) > MAX_FILE_SIZE:
                self.error(_too_large(len(data)))
                return None
            if data.startswith((b"\xff\xfe", b"\xfe\xff")):
                try:
                    text = data.decode("utf-16")
                except UnicodeDecodeError as err:
                    self.error(f"not valid UTF-16 (the file starts with a UTF-16 byte-order mark): "
                               f"{err.reason} at byte offset {err.start}")
                    return None
            else:
                nul = data.find(b"\x00")
                if nul >= 0:
                    self.error(
                        f"not a text file: NUL byte at byte offset {nul}",
                        data.count(b"\n", 0, nul) + 1,
                    )
                    return None
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as err:
                    if _looks_binary(data):
                        self.error(
                            f"not a text file: binary data (invalid UTF-8 at byte offset {err.start})",
                            data.count(b"\n", 0, err.start) + 1,
                        )
                        return None
                    bad = data[err.start]
                    self.error(
                        f"not valid UTF-8: byte 0x{bad:02x} at byte offset {err.start}; save the file as UTF-8",
                        data.count(b"\n", 0, err.start) + 1,
                    )
                    return None
        if text.startswith("\ufeff"):
            text = text[1:]
        if not text.strip(" \t\r\n"):
            self.error("file is empty; expected 'version: 1' and 'profiles:'")
            return None
        bad_char = _NON_PRINTABLE_RE.search(text)
        if bad_char is not None:
            pos = bad_char.start()
            line = text.count("\n", 0, pos) + 1
            column = pos - (text.rfind("\n", 0, pos) + 1) + 1
            self.error(
                f"character U+{ord(bad_char.group()):04X} at column {column} is not allowed in YAML; "
                "is this a text file?",
                line,
            )
            return None
        return text

    def _compose(self, text: str) -> Node | None:
        loader = _BoundedLoader(text)
        try:
            root = loader.get_single_node()
        except _Refused as err:
            self.error(err.message, err.mark.line + 1 if err.mark is not None else None)
            return None
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            problem = err.problem or err.context or "invalid YAML"
            if err.context and err.problem:
                message = f"YAML syntax error: {err.context}, {err.problem}"
            else:
                message = f"YAML syntax error: {problem}"
            if mark is not None:
                message += f" at column {mark.column + 1}"
            if "'\\t'" in problem:
                message += "; tabs cannot be used for indentation in YAML, use spaces"
            self.error(message, mark.line + 1 if mark is not None else None)
            return None
        except (yaml.YAMLError, RecursionError, ValueError) as err:
            self.error(f"YAML syntax error: {err}")
            return None
        finally:
            loader.dispose()
        if root is None:  # comments only
            self.error("file is empty; expected 'version: 1' and 'profiles:'")
        return root

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

    def _top(self, root: Node) -> list[Profile]:
        if not isinstance(root, MappingNode):
            self.error(
                f"the top level must be a mapping with 'version: 1' and 'profiles:', not {_type_name(root)}", root
            )
            return []
        if not self._check_tags(root, ""):
            return []
        entries = self._mapping(root, "", TOP_LEVEL_KEYS)

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
        for key in REQUIRED_PROFILE_KEYS:
            if key not in entries:
                self.error(f"missing required key {key!r}", node, path, sort_line=_end_line(node))
        values: dict[str, Node] = {key: value for key, (_, value) in entries.items()}

        name = self._name(values["name"], f"{path}.name") if "name" in values else None
        context = self._context(values["context"], f"{path}.context") if "context" in values else None
        namespace = self._namespace(values["namespace"], f"{path}.namespace") if "namespace" in values else None
        target = self._target(values["target"], f"{path}.target") if "target" in values else None
        address = self._address(values["address"], f"{path}.address") if "address" in values else DEFAULT_ADDRESS
        ports = self._ports(values["ports"], f"{path}.ports", name or path, address) if "ports" in values else None
        autostart = self._bool(values["autostart"], f"{path}.autostart") if "autostart" in values else False
        group = self._text_field(values["group"], f"{path}.group", "group") if "group" in values else None

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
            line=_line(node),
        )

    # -- fields ------------------------------------------------------------

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

    def _target(self, node: Node, fld: str) -> Target | None:
        text = self._string(node, fld)
        if text is None:
            return None
        try:
            return parse_target(text)
        except UsageError as err:
            self.error(err.message, node, fld)
            return None

    def _address(self, node: Node, fld: str) -> str | None:
        text = self._string(node, fld)
        if text is None:
            return None
        if text == "localhost":
            return "localhost"
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            self.error(f"invalid address {_q(text)}: expected an IP address or \"localhost\"", node, fld)
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

    def _ports(self, node: Node, fld: str, profile: str, address: str | None) -> tuple[PortSpec, ...] | None:
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
        own: dict[int, int] = {}  # local port -> index, within this profile
        for index, item in enumerate(node.value):
            item_field = f"{fld}[{index}]"
            spec = self._port(item, item_field)
            if spec is None:
                ok = False
                continue
            specs.append(spec)
            if spec.local is None:
                continue
            if spec.local in own:
                self.error(
                    f"local port {spec.local} is already used by {fld}[{own[spec.local]}] of this profile",
                    item,
                    item_field,
                )
                ok = False
                continue
            own[spec.local] = index
            if address is not None and not self._claim(spec.local, address, profile, item, item_field):
                ok = False
        return tuple(specs) if ok else None

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

    def _claim(self, port: int, address: str, profile: str, node: Node, fld: str) -> bool:
        """Record that *profile* listens on address:port; False (reported) if another does."""
        addresses = tuple(
            _canonical_ip(a) for a in (LOCALHOST_ADDRESSES if address == "localhost" else (address,))
        )
        for use in self.ports_in_use.get(port, []):
            if any(_overlap(a, b) for a in addresses for b in use.addresses):
                self.error(
                    f"local address {_host_port(address, port)} is already used by profile {use.profile!r} "
                    f"({use.field}, line {use.line})",
                    node,
                    fld,
                )
                return False
        self.ports_in_use.setdefault(port, []).append(_PortUse(profile, _line(node), fld, addresses))
        return True


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


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


# --------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------


def dump_profiles(profiles: Iterable[Profile]) -> str:
    """The YAML text Tender writes for *profiles* when it writes a file anew (version 1)."""
    items = [p.to_dict() for p in profiles]
    if not items:
        return _SAVE_HEADER + EMPTY_PROFILES_TEXT
    body = yaml.safe_dump(
        {"version": VERSION, "profiles": items},
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 16,
    )
    return _SAVE_HEADER + body


def save_profiles(path: str | os.PathLike[str], profiles: Iterable[Profile] | ProfilesFile) -> ProfilesFile:
    """Write *profiles* to *path* atomically (mode 0600 for a new file).

    The profiles are validated with the same rules as loading before anything
    is written, so Tender never writes a file it would refuse; a problem (e.g.
    two profiles with the same name) raises UsageError and leaves the file
    untouched.

    When *path* holds a valid profiles file, only what changed is edited (see
    :func:`edit_profiles_text`): comments, blank lines, key order, quoting,
    list styles and layout of everything else are kept.  A missing or
    unreadable-as-profiles file is written anew, and so is a file whose edit
    would not load back to *profiles* (logged as a warning).  Returns what
    was written, as loaded back (with line numbers).

    Blocks for one read and one atomic write of the file, and the round trip
    through ruamel.yaml in between: about 1 ms per profile in the file on a
    2-core machine (0.2 s for 200 profiles).
    """
    source = os.fspath(path)
    wanted = tuple(profiles)
    fresh = dump_profiles(wanted)
    written = parse_profiles(fresh, source=source, path=path)  # raises for invalid profiles
    text = _edited_file_text(Path(path), source, written.profiles)
    if text is None:
        text = fresh
    else:
        written = parse_profiles(text, source=source, path=path)
    parent = os.path.dirname(os.path.abspath(source))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    write_atomic(path, text)
    return written


def add_profile(path: str | os.PathLike[str], profile: Profile) -> ProfilesFile:
    """Append *profile* to the file at *path* (created if missing) and save.

    Raises UsageError if the file has problems (it is not overwritten then),
    if a profile of that name exists, or if the new profile clashes with
    another.  The rest of the file is kept as it was, comments included.
    Blocks for two reads and one atomic write of the file, as
    :func:`save_profiles`.
    """
    current = load_profiles(path, missing_ok=True)
    existing = current.by_name(profile.name)
    if existing is not None:
        raise UsageError(
            f"a profile named {profile.name!r} already exists", source=os.fspath(path), line=existing.line or None
        )
    return save_profiles(path, [*current.profiles, profile])


def update_profile(path: str | os.PathLike[str], name: str, profile: Profile) -> ProfilesFile:
    """Replace the profile called *name* with *profile* (which may rename it) and save.

    Only the changed keys of that profile are edited in the file.  Raises
    UsageError if the file has problems, has no profile *name*, or if the
    result would be invalid (the file is left untouched then).  Blocks for
    two reads and one atomic write of the file, as :func:`save_profiles`.
    """
    current = load_profiles(path)
    if current.by_name(name) is None:
        raise UsageError(f"no profile named {name!r}", source=os.fspath(path))
    return save_profiles(path, [profile if p.name == name else p for p in current.profiles])


def remove_profile(path: str | os.PathLike[str], name: str) -> ProfilesFile:
    """Remove the profile called *name* (with the comment and blank lines just above it) and save.

    Raises UsageError if the file has problems or has no profile *name*.
    Blocks for two reads and one atomic write of the file, as
    :func:`save_profiles`.
    """
    current = load_profiles(path)
    if current.by_name(name) is None:
        raise UsageError(f"no profile named {name!r}", source=os.fspath(path))
    return save_profiles(path, [p for p in current.profiles if p.name != name])


def ensure_profiles_file(path: str | os.PathLike[str] | None = None) -> tuple[Path, bool]:
    """Create an empty profiles file (``version: 1``, no profiles) if there is none.

    Returns (path, created).  An existing file is left alone, whatever it holds.
    """
    resolved = default_profiles_path() if path is None else Path(path)
    if resolved.exists() or resolved.is_symlink():
        return resolved, False
    resolved.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(resolved, EMPTY_PROFILES_TEXT)
    return resolved, True


# --------------------------------------------------------------------------
# Editing a file in place: a ruamel.yaml round trip
# --------------------------------------------------------------------------
#
# ruamel.yaml (typ "rt") keeps comments, blank lines, key order, quoting and
# the flow or block style of every list.  What it does not keep by itself is
# handled here:
#
# * Layout.  It writes one indentation everywhere, so the file's own (that of
#   its profiles list) is measured and set.  It writes LF only, drops a BOM,
#   drops a leading "---" together with the comments above it, and always
#   ends with a line break: those are taken off before and put back after.
# * Which entry a comment belongs to.  ruamel attaches the comment and blank
#   lines between two entries (two profiles, two keys of a profile, two
#   ports) to the *end of the entry above*: they follow, in one comment
#   token, the end-of-line comment of its last line.  In the text they stand
#   directly above the *entry below*, and a user deleting or moving that
#   entry means them too.  So before an edit they are cut off the entry
#   above (_cut_leads, _detach_comments; that line's own comment stays) and
#   go with the entry below; after the edit they are put back, above each
#   entry that is still there (_put_leads, _attach_comments).  The lines
#   after the last profile stay at the end of the list.
#
# The file reaches ruamel only after the strict loader above accepted it (no
# anchors, bounded size and depth), and what it writes must load back through
# the strict loader to exactly the profiles asked for, else the file is
# written anew.


def _edited_file_text(path: Path, source: str, wanted: tuple[Profile, ...]) -> str | None:
    """The file at *path* edited to hold *wanted*; None to write it anew (missing, invalid, or the edit failed)."""
    try:
        data = _read_limited(path, source)
    except (FileNotFoundError, UsageError):
        return None
    if _Checker(source, None).run(data)[1]:
        return None  # a broken file is replaced, as before
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")  # written back as UTF-8
    else:
        text = data.decode("utf-8")
    bom = ""
    if text.startswith("\ufeff"):
        bom, text = "\ufeff", text[1:]
    try:
        edited = edit_profiles_text(text, wanted)
    except Exception:  # a bug here must not cost the user the save
        log.warning("could not edit %s in place; writing it anew, without its comments", source, exc_info=True)
        return None
    try:
        again: tuple[Profile, ...] | None = parse_profiles(edited, source=source).profiles
        why = "it loads back as other profiles"
    except UsageError as err:
        again, why = None, str(err)
    if again != wanted:
        log.warning("editing %s in place went wrong (%s); writing it anew, without its comments", source, why)
        return None
    return bom + edited


def edit_profiles_text(text: str, wanted: Iterable[Profile]) -> str:
    """*text* (a valid profiles file, without BOM) edited so that it holds *wanted*, in that order.

    A ruamel.yaml round trip that keeps comments, blank lines, key order,
    quoting and the flow or block style of lists, and the file's line breaks
    (CRLF), a leading ``---`` with what stands above it, a missing final line
    break and the indentation of its profiles list.  ruamel writes one
    indentation everywhere, so a block list nested in a profile (``ports:``)
    that is indented unlike the profiles list is re-indented like it.

    Profiles are matched by name (one renamed profile, at the same place in
    the list, is matched as a rename).  A kept profile is edited in place: a
    changed value is replaced (its end-of-line comment stays, a list keeps
    its style and the ports it still has), a new key goes after the keys that
    come before it in :data:`PROFILE_KEYS`, a dropped key goes with its
    comments.  A removed profile takes the comment and blank lines just above
    it along, never another profile's.  A new profile is written where it
    stands in *wanted* (last, for :func:`add_profile`), indented like the
    others and after a blank line if the file separates its profiles with
    blank lines.

    Pure (no I/O).  Raises UsageError if *text* is not a valid profiles file.
    The caller checks that the result loads back to *wanted*.
    """
    wanted = tuple(wanted)
    old, errors = _Checker("<profiles>", None).run(text)
    if errors:
        raise errors[0]
    newline = "\r\n" if text.count("\r\n") * 2 > text.count("\n") else "\n"
    text = text.replace("\r\n", "\n")  # ruamel would keep the CR in comments only
    head, body = _split_document_start(text)

    rt = YAML(typ="rt")
    rt.Constructor, rt.Representer = _Constructor, _Representer
    rt.preserve_quotes = True
    rt.width = 1 << 16  # never fold a long value
    if head == "---":  # the document starts on the "---" line
        head, rt.explicit_start = "", True
    root = rt.load(body)
    seq = root["profiles"]
    assert isinstance(seq, CommentedSeq) and len(seq) == len(old)
    mapping, sequence, offset = _indentation(body, root, seq)
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)

    old_by_name = {p.name: i for i, p in enumerate(old)}
    match: list[int | None] = [old_by_name.get(p.name) for p in wanted]
    unmatched_old = set(range(len(old))) - {m for m in match if m is not None}
    unmatched_new = [i for i, m in enumerate(match) if m is None]
    if len(unmatched_old) == 1 and len(unmatched_new) == 1 and unmatched_new[0] == min(unmatched_old):
        match[unmatched_new[0]] = unmatched_old.pop()  # a rename, in place

    leads, trailing = _detach_comments(root, seq)
    separated = any(_blank_lines(lead) for lead in leads[1:])
    quote = _port_quote(seq)
    items: list[CommentedMap] = []
    new_leads: list[str] = []
    posts: list[Any] = []  # a flow-style item's end-of-line comment
    for position, (profile, index) in enumerate(zip(wanted, match)):
        if index is None:
            items.append(_new_item(profile, quote))
            comment = ""
            posts.append(None)
        else:
            items.append(seq[index])
            comment = leads[index][len(_blank_lines(leads[index])) :]
            comment += _edit_item(seq[index], old[index], profile, quote)
            posts.append(seq.ca.items.get(index, [None])[0])
        # The blank lines above a profile belong to its place in the list.
        if position == 0:
            blank = _blank_lines(leads[0]) if leads else ""
        elif index is not None and index > 0:
            blank = _blank_lines(leads[index])
        else:
            blank = "\n" if separated else ""
        new_leads.append(blank + comment)

    was_empty = not seq
    seq.ca.items.clear()
    seq[:] = items
    if not items:
        seq.fa.set_flow_style()  # "profiles: []"
    elif was_empty:
        seq.fa.set_block_style()
    _attach_comments(root, seq, new_leads, posts, trailing)

    out = io.StringIO()
    rt.dump(root, out)
    result = head + out.getvalue()
    if not text.endswith("\n"):
        result = result.rstrip("\n")
    return result.replace("\n", newline) if newline != "\n" else result


class _Bool(ScalarBoolean):
    """A boolean read from the file, with its spelling (``True``, ``FALSE``), which ruamel would write as true/false."""

    text: str


class _Constructor(RoundTripConstructor):
    def construct_spelt_bool(self, node: Any) -> _Bool:
        value = _Bool(self.construct_yaml_bool(node))
        value.text = node.value
        return value


class _Representer(RoundTripRepresenter):
    def represent_spelt_bool(self, data: _Bool) -> Any:
        return self.represent_scalar("tag:yaml.org,2002:bool", data.text)


_Constructor.add_constructor("tag:yaml.org,2002:bool", _Constructor.construct_spelt_bool)
_Representer.add_representer(_Bool, _Representer.represent_spelt_bool)


def _split_document_start(text: str) -> tuple[str, str]:
    """(the text up to and including an explicit ``---`` line, the rest); ("", text) if there is none.

    The first part (comments, directives, the marker) is kept byte for byte,
    since ruamel would drop the comments above the marker.  A document that
    starts on the marker's line (``--- {...}``) gives (``"---"``, text).
    """
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            if not event.explicit:
                return "", text
            end = event.end_mark.index
            line_end = text.find("\n", end) + 1 or len(text)
            after = text[end:line_end].strip()
            if after and not after.startswith("#"):
                return "---", text
            return text[:line_end], text[line_end:]
    return "", text


def _indentation(body: str, root: CommentedMap, seq: CommentedSeq) -> tuple[int, int, int]:
    """ruamel's (mapping, sequence, offset) indents, as the file's profiles list is indented.

    *offset* is the column of the ``-`` and *sequence* that of the item's
    content, both counted from the column of the list's key; measured on the
    first item of the profiles list if it is a block list, else of a block
    ``ports`` list, else Tender's own (2, 4, 2).  No mapping in the format
    nests directly in another, so *mapping* only keeps ruamel consistent.
    """
    lines = body.split("\n")
    for parent, key in [(root, "profiles"), *((item, "ports") for item in seq)]:
        value = parent.get(key)
        if not isinstance(value, CommentedSeq) or not value or value.fa.flow_style():
            continue
        key_column = parent.lc.key(key)[1]
        line, column = value.lc.item(0)
        dash = lines[line].rfind("-", 0, column)
        if dash >= key_column:
            return max(column - dash, 1), column - key_column, dash - key_column
    return 2, 4, 2


def _detach_comments(root: CommentedMap, seq: CommentedSeq) -> tuple[list[str], str]:
    """Cut the comment lines above each profile, and those after the list, off where ruamel put them.

    Returns (the lines above each profile, the lines after the list), as
    text.  In a block list the lines above the first profile are the ones
    after the ``profiles:`` line, which ruamel keeps with the list itself, and
    the lines after the list end the last profile.  After a flow list
    (``profiles: [...]``) they follow the comment on the line of its ``]``.
    """
    comment = seq.ca.comment  # [the comment on the "profiles:" line and the lines after it, [more lines]]
    first = _cut_after_first_line(comment, 0) if comment else ""
    if comment and len(comment) > 1 and comment[1]:
        first += "".join(_line_text(token) for token in comment[1])
        # None, not an empty list (ruamel would then write no line break
        # after the next key); the "profiles" key may hold the same list.
        key_slots = root.ca.items.get("profiles") or []
        for slots, slot in ((comment, 1), (key_slots, 3)):
            if len(slots) > slot and slots[slot] is not None:
                slots[slot] = None
    leads = list(_cut_leads(seq).values())
    for index in range(len(seq)):  # lines ruamel itself keeps above an item
        own = seq.ca.items.get(index)
        if own and len(own) > 1 and own[1]:
            leads[index] += "".join(_line_text(token) for token in own[1])
    if not seq or seq.fa.flow_style():
        return leads, first
    leads[0] = first + leads[0]
    return leads, _cut_after_first_line(*_tail_slot(seq, len(seq) - 1))


def _attach_comments(root: CommentedMap, seq: CommentedSeq, leads: list[str], posts: list[Any], trailing: str) -> None:
    """Put the comment lines back: each above its profile, *trailing* after the list."""
    for index, post in enumerate(posts):
        seq.ca.items[index] = [post, None, None, None]
    _put_leads(seq, dict(enumerate(leads)))
    if seq and not seq.fa.flow_style():
        _append_lines(*_tail_slot(seq, len(seq) - 1), trailing)
        return
    end = getattr(seq.ca, "end", None)  # lines after a block list whose last line had no comment
    if end:
        trailing += "".join(_line_text(token) for token in end)
        seq.ca.end = None
    slots = root.ca.items.setdefault("profiles", [None, None, None, None])
    if seq.ca.comment and seq.ca.comment[0] is not None:
        slots[2] = seq.ca.comment[0]  # the comment on the line of "]", which ruamel holds in both places
    _append_lines(slots, 2, trailing)


def _cut_leads(collection: CommentedMap | CommentedSeq) -> dict[Any, str]:
    """The comment and blank lines above each entry of a block collection, cut off the entry before; by key.

    The first entry has none here (what stands above it is kept with the
    collection); a flow collection has none at all.
    """
    keys = list(collection) if isinstance(collection, CommentedMap) else list(range(len(collection)))
    leads = {key: "" for key in keys}
    if collection.fa.flow_style():
        return leads
    for above, key in zip(keys, keys[1:]):
        leads[key] = _cut_after_first_line(*_tail_slot(collection, above))
    return leads


def _put_leads(collection: CommentedMap | CommentedSeq, leads: dict[Any, str]) -> str:
    """Put lines of :func:`_cut_leads` back above the entries now there (by key); return what is left over.

    A list holds the lines above its first item itself; a mapping's first
    key shares its line with the ``-`` of the item, so those lines are
    returned, for the caller to put above the item.
    """
    keys = list(collection) if isinstance(collection, CommentedMap) else list(range(len(collection)))
    for above, key in zip(keys, keys[1:]):
        _append_lines(*_tail_slot(collection, above), leads.get(key, ""))
    first = leads.get(keys[0], "") if keys else ""
    if first and isinstance(collection, CommentedSeq):
        collection.ca.items.setdefault(0, [None, None, None, None])[1] = [CommentToken(first, CommentMark(0))]
        return ""
    return first


def _tail_slot(parent: CommentedMap | CommentedSeq, key: Any) -> tuple[list[Any], int]:
    """Where ruamel keeps the comment that ends *parent[key]*: (a ``ca.items`` entry, index in it).

    That comment token holds the end-of-line comment of the value's last
    line, then the comment and blank lines after it.  A non-empty block
    collection ends with its own last entry; anything else ends on its line.
    """
    value = parent[key]
    if isinstance(value, (CommentedMap, CommentedSeq)) and value and not value.fa.flow_style():
        return _tail_slot(value, next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1)
    return parent.ca.items.setdefault(key, [None, None, None, None]), 2 if isinstance(parent, CommentedMap) else 0


def _cut_after_first_line(holder: list[Any], slot: int) -> str:
    """Shorten the comment token holder[slot] to its first line; return the lines cut off."""
    token = holder[slot]
    if token is None:
        return ""
    first, newline, rest = token.value.partition("\n")
    token.value = first + newline
    return rest


def _append_lines(holder: list[Any], slot: int, lines: str) -> None:
    """Add whole comment or blank *lines* after the line that ends with the comment token holder[slot]."""
    if not lines:
        return
    token = holder[slot]
    if token is None:
        holder[slot] = CommentToken("\n" + lines, CommentMark(0))
    else:
        token.value = (token.value if token.value.endswith("\n") else token.value + "\n") + lines


def _line_text(token: CommentToken) -> str:
    """A comment token that stands on lines of its own, as text (ruamel keeps its first column apart)."""
    value = token.value
    return value if value.startswith("\n") else " " * token.start_mark.column + value


def _blank_lines(lead: str) -> str:
    """The blank lines that *lead* starts with."""
    end = 0
    for line in lead.splitlines(keepends=True):
        if line.strip():
            break
        end += len(line)
    return lead[:end]


def _port_quote(seq: CommentedSeq) -> type[str]:
    """How the file quotes port strings (its first quoted port), to quote new ones alike; else double quotes."""
    for item in seq:
        for port in item.get("ports") or ():
            if isinstance(port, (SingleQuotedScalarString, DoubleQuotedScalarString)):
                return type(port)
    return DoubleQuotedScalarString


def _scalar(value: str | bool, like: Any = None) -> Any:
    """*value* as ruamel should write it so that the strict loader (PyYAML) reads it back as given.

    ruamel speaks YAML 1.2, where ``yes`` or ``on`` are plain words and
    ``::1`` may stand plain in a flow mapping; PyYAML speaks YAML 1.1.  A
    string PyYAML would not read back plain, in a block or a flow
    collection, is quoted: the way *like* (the value it replaces) was quoted
    if it was, else in single quotes.  Other strings go plain, and a replaced
    value keeps its quotes (ruamel's ``CommentedMap.__setitem__`` does that).
    """
    if isinstance(value, bool):
        return value
    if yaml.resolver.Resolver().resolve(yaml.ScalarNode, value, (True, False)) == _STR:
        analysis = yaml.emitter.Emitter(io.StringIO()).analyze_scalar(value)
        if analysis.allow_flow_plain and analysis.allow_block_plain:
            return value
    if isinstance(like, (SingleQuotedScalarString, DoubleQuotedScalarString)):
        return type(like)(value)
    return SingleQuotedScalarString(value)


def _ports(ports: tuple[PortSpec, ...], like: Any, quote: type[str]) -> CommentedSeq:
    """The ports list replacing *like* (None for a new profile).

    A port *like* has too keeps its text, its comment and the lines above it;
    the list keeps *like*'s flow or block style.  New ports are written as
    Tender writes them: a plain number, else a string quoted with *quote*.
    """
    out = CommentedSeq()
    old = list(like) if isinstance(like, CommentedSeq) else []
    old_leads = _cut_leads(like) if old else {}
    leads: dict[int, str] = {}
    used: set[int] = set()
    for spec in ports:
        text = str(spec)
        same = next((i for i, port in enumerate(old) if i not in used and str(port) == text), None)
        if same is None:
            out.append(int(text) if text.isdigit() and not text.startswith("0") else quote(text))
            continue
        used.add(same)
        out.append(old[same])
        leads[len(out) - 1] = old_leads[same]
        if same in like.ca.items:
            out.ca.items[len(out) - 1] = like.ca.items[same]
    if old and not like.fa.flow_style():
        out.fa.set_block_style()
    else:
        out.fa.set_flow_style()
    _put_leads(out, leads)
    return out


def _new_item(profile: Profile, quote: type[str]) -> CommentedMap:
    """A profile as Tender writes it: keys in :data:`PROFILE_KEYS` order, defaults left out, ports as a flow list."""
    item = CommentedMap()
    for key, value in profile.to_dict().items():
        item[key] = _ports(profile.ports, None, quote) if key == "ports" else _scalar(value)
    return item


def _edit_item(item: CommentedMap, old: Profile, new: Profile, quote: type[str]) -> str:
    """Edit the keys of *item* (loaded as *old*) whose value differs in *new*; the other keys are not touched.

    The comment lines above a dropped key go with it.  Returns the lines that
    stood above a key that is now the item's first, for the caller to put
    above the item.
    """
    if old == new:
        return ""
    leads = _cut_leads(item)
    wanted = new.to_dict()
    order = {key: n for n, key in enumerate(PROFILE_KEYS)}
    for key in PROFILE_KEYS:
        if getattr(old, key) == getattr(new, key):
            continue
        if key not in wanted:
            item.pop(key, None)
            item.ca.items.pop(key, None)  # its end-of-line comment (ruamel keeps it otherwise)
            continue
        value = _ports(new.ports, item.get(key), quote) if key == "ports" else _scalar(wanted[key], item.get(key))
        if key in item:
            item[key] = value
        else:
            position = max((n + 1 for n, k in enumerate(item) if order.get(k, -1) < order[key]), default=0)
            item.insert(position, key, value)
    return _put_leads(item, leads)
