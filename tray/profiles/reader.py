"""Reading a profiles file: from a path or bytes to checked profiles, strictly and within bounds.

Loading is strict, because a profile that silently means something other
than what the user wrote is worse than an error.  Every problem is reported
as a one-line :class:`~tray.errors.UsageError` naming the file, the line and
the field, e.g. ``profiles.yaml:14: profiles[2].ports[1]: ...``.
:func:`load_profiles` raises the first problem; :func:`check_profiles`
returns all of them (``tender profiles check``).  The rules themselves are
in :mod:`tray.profiles.checker`; this module gets the file to it:

* The file is opened non-blocking (a FIFO cannot hang us), must be a
  regular file, and files over 1 MiB are refused before being read.
* The bytes must be UTF-8 (or UTF-16 with a byte-order mark) text.
* The file is parsed to a node tree (never to Python objects first), so the
  checker sees each value's line and how YAML typed it.
* Anchors and aliases (``&x``/``*x``) are refused outright: a profiles file
  has no use for them and they are how "billion laughs" documents blow up.
  The number of nodes and the nesting depth are bounded too.
* Duplicate keys in a mapping are an error (PyYAML would silently keep the
  last one).

Reading stays with PyYAML's composer (not the round-trip library the writer
uses) because the node tree it gives is what the checks are built on: exact
line marks, YAML 1.1 typing as the user's tools see it, and the anchor, size
and depth bounds enforced before anything is built.  libyaml's scanner and
parser feed that composer when PyYAML has them (start-up: 200 profiles in
10 ms rather than 60); a document they do not take is parsed again by
PyYAML's own, whose messages the problems are told in.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.nodes import Node

from tray.errors import UsageError
from tray.profiles.checker import Checker, _TooManyErrors
from tray.profiles.model import Profile, ProfilesFile

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_SIZE",
    "MAX_NODES",
    "check_data",
    "check_profiles",
    "default_profiles_path",
    "load_profiles",
    "parse_profiles",
    "read_limited",
]

#: Files larger than this are refused without being read.
MAX_FILE_SIZE: Final = 1 << 20
#: Bounds on the YAML node tree (a real profiles file is a few thousand nodes
#: at depth 4): at most this many nodes ...
MAX_NODES: Final = 20_000
#: ... nested at most this deep.
MAX_DEPTH: Final = 32

# The characters PyYAML's reader refuses (the YAML 1.1 printable set, negated).
_NON_PRINTABLE_RE: Final = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# --------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------


def default_profiles_path() -> Path:
    """``$TENDER_PROFILES`` if set (and not empty), else the per-user config file.

    The latter is ``profiles.yaml`` in platformdirs' user config directory
    for "tender" (``~/.config/tender/profiles.yaml`` on Linux).  Reads the
    environment only: the file need not exist.
    """
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

    Returns the profiles in file order, with their line numbers.  Raises
    :class:`~tray.errors.UsageError` (one line: file, line, field, problem)
    for the first problem in file order, including an unreadable or too
    large file.  Blocks for one read of the file (at most
    :data:`MAX_FILE_SIZE` bytes; never waits on a FIFO) and the checks
    (see :func:`check_data`).
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
    """All the problems of a profiles file (at most :data:`~tray.profiles.checker.MAX_ERRORS`), in file order.

    Arguments as for :func:`load_profiles`.  An empty list means
    :func:`load_profiles` would succeed; a file that cannot be read gives
    one problem.  Never raises for a bad file.  Blocks as
    :func:`load_profiles`.
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
    """Validate profiles given as text or bytes (*source* names them in messages).

    Returns them as a :class:`~tray.profiles.model.ProfilesFile` whose path is
    *path*, else *source*.  *known_contexts* as for :func:`load_profiles`.
    Raises :class:`~tray.errors.UsageError` for the first problem.  Pure (no
    I/O).
    """
    profiles, errors = check_data(data, source, known_contexts)
    if errors:
        raise errors[0]
    return ProfilesFile(Path(path if path is not None else source), tuple(profiles))


def _load(
    path: Path, source: str, missing_ok: bool, known_contexts: set[str] | frozenset[str] | None
) -> tuple[list[Profile], list[UsageError]]:
    try:
        data = read_limited(path, source)
    except FileNotFoundError:
        if missing_ok:
            return [], []
        return [], [UsageError("no such file", source=source)]
    except UsageError as err:
        return [], [err]
    return check_data(data, source, known_contexts)


# --------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------


def read_limited(path: Path, source: str) -> bytes:
    """The file's bytes; UsageError for anything that is not a readable, small, regular file.

    *source* names the file in messages.  Raises FileNotFoundError for a
    missing file (the caller decides), :class:`~tray.errors.UsageError` for a
    directory, a FIFO or device, a file over :data:`MAX_FILE_SIZE` bytes, or
    an error opening or reading it.  The file is opened non-blocking so a
    FIFO cannot hang us, and its size is checked before reading so a huge
    file costs nothing: blocks for at most one read of 1 MiB.
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


class _Bounds:
    """Composition that refuses anchors/aliases and bounds node count and depth.

    Only ``compose`` is used: nothing is ever constructed into Python
    objects, which also keeps YAML's implicit typing visible to the checker.
    """

    _node_count = 0
    _depth = 0

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
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1


class _BoundedLoader(_Bounds, yaml.SafeLoader):
    """PyYAML's own scanner and parser, in Python: the messages every YAML problem is reported with."""


_CParser: Any
try:
    from yaml.cyaml import CParser as _CParser  # libyaml's, when PyYAML was built with it
except ImportError:
    _CParser = None

if _CParser is not None:
    class _BoundedCLoader(_Bounds, yaml.composer.Composer, _CParser, yaml.resolver.Resolver):
        """libyaml's scanner and parser (about 6x faster: 200 profiles in 10 ms rather than 60 ms at
        start-up), the same Python composer, bounds and resolver, so the same node tree."""

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)

        def compose_scalar_node(self, anchor: Any) -> Node:
            node = super().compose_scalar_node(anchor)
            node.style = node.style or None  # a plain scalar: None, as PyYAML's own parser says
            return node


# --------------------------------------------------------------------------
# Bytes to a node tree, to the checker
# --------------------------------------------------------------------------


def check_data(
    data: bytes | str, source: str, known_contexts: set[str] | frozenset[str] | None = None
) -> tuple[list[Profile], list[UsageError]]:
    """Check a profiles document given as bytes or text: (its profiles, its problems).

    *source* names the document in messages; *known_contexts* as for
    :func:`load_profiles`.  The profiles list is empty if there is any
    problem; the problems (at most :data:`~tray.profiles.checker.MAX_ERRORS`,
    plus one saying so) are in file order.  Never raises for bad input.  Pure
    (no I/O); CPU-bound, about 30 ms for a file of 100 profiles on a 2-core
    machine.
    """
    checker = Checker(source, known_contexts)
    profiles: list[Profile] = []
    try:
        text = _decode(data, checker)
        if text is not None:
            root = _compose(text, checker)
            if root is not None:
                profiles = checker.document(root)
    except _TooManyErrors:
        pass
    return checker.result(profiles)


def _decode(data: bytes | str, checker: Checker) -> str | None:
    """The document as text (BOM dropped), or None after reporting why it is not readable text."""
    if isinstance(data, str):
        if len(data) > MAX_FILE_SIZE:
            checker.error(_too_large(len(data.encode("utf-8", "surrogatepass"))))
            return None
        text = data
    else:
        if len(data) > MAX_FILE_SIZE:
            checker.error(_too_large(len(data)))
            return None
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                text = data.decode("utf-16")
            except UnicodeDecodeError as err:
                checker.error(f"not valid UTF-16 (the file starts with a UTF-16 byte-order mark): "
                           f"{err.reason} at byte offset {err.start}")
                return None
        else:
            nul = data.find(b"\x00")
            if nul >= 0:
                checker.error(
                    f"not a text file: NUL byte at byte offset {nul}",
                    data.count(b"\n", 0, nul) + 1,
                )
                return None
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as err:
                if _looks_binary(data):
                    checker.error(
                        f"not a text file: binary data (invalid UTF-8 at byte offset {err.start})",
                        data.count(b"\n", 0, err.start) + 1,
                    )
                    return None
                bad = data[err.start]
                checker.error(
                    f"not valid UTF-8: byte 0x{bad:02x} at byte offset {err.start}; save the file as UTF-8",
                    data.count(b"\n", 0, err.start) + 1,
                )
                return None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip(" \t\r\n"):
        checker.error("file is empty; expected 'version: 1' and 'profiles:'")
        return None
    bad_char = _NON_PRINTABLE_RE.search(text)
    if bad_char is not None:
        pos = bad_char.start()
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        checker.error(
            f"character U+{ord(bad_char.group()):04X} at column {column} is not allowed in YAML; "
            "is this a text file?",
            line,
        )
        return None
    return text

def _compose(text: str, checker: Checker) -> Node | None:
    """The document's node tree, or None after reporting a YAML problem or an empty document.

    libyaml's parser composes a valid document; anything it does not take
    (or no libyaml) goes to PyYAML's Python parser, whose messages every
    problem is reported with.
    """
    if _CParser is not None:
        fast = _BoundedCLoader(text)
        try:
            root = fast.get_single_node()
        except Exception:  # reported below, by the Python parser, in its words
            pass
        else:
            if root is not None:
                return root
        finally:
            fast.dispose()
    loader = _BoundedLoader(text)
    try:
        root = loader.get_single_node()
    except _Refused as err:
        checker.error(err.message, err.mark.line + 1 if err.mark is not None else None)
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
        checker.error(message, mark.line + 1 if mark is not None else None)
        return None
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        checker.error(f"YAML syntax error: {err}")
        return None
    finally:
        loader.dispose()
    if root is None:  # comments only
        checker.error("file is empty; expected 'version: 1' and 'profiles:'")
    return root
