"""The profiles file: saved port-forwards, in YAML (format version 1).

Four modules, each one job; import from ``tray.profiles``, which re-exports
their public names:

* :mod:`~tray.profiles.model` -- the data: :class:`Profile`,
  :class:`ProfilesFile`, and the format's facts (version, keys, name
  patterns).  Plain data, no I/O.
* :mod:`~tray.profiles.reader` -- reading a file: :func:`load_profiles`
  (raises the first problem), :func:`check_profiles` (returns all of them,
  for ``tender profiles check``), :func:`parse_profiles`,
  :func:`default_profiles_path`.  Strict and bounded: non-blocking open, at
  most :data:`MAX_FILE_SIZE` bytes, no YAML anchors, bounded node count and
  depth; every problem is a one-line :class:`~tray.errors.UsageError` naming
  the file, the line and the field.
* :mod:`~tray.profiles.checker` -- the rules, on the YAML node tree: each
  field, and across profiles (duplicate names, a local address used twice,
  unknown contexts).  Pure.
* :mod:`~tray.profiles.writer` -- writing: :func:`save_profiles`,
  :func:`add_profile`, :func:`update_profile`, :func:`remove_profile`,
  :func:`ensure_profiles_file`; atomic writes that keep the user's comments
  and layout through a ruamel.yaml round trip (:func:`edit_profiles_text`).

Imports go one way: writer -> reader -> checker -> model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tray.domain.addresses import DEFAULT_ADDRESS
from tray.profiles.checker import MAX_ERRORS
from tray.profiles.model import (
    EMPTY_PROFILES_TEXT,
    NAME_PATTERN,
    NAMESPACE_PATTERN,
    PROFILE_KEYS,
    REQUIRED_PROFILE_KEYS,
    TOP_LEVEL_KEYS,
    VERSION,
    Profile,
    ProfilesFile,
)
from tray.profiles.reader import (
    MAX_DEPTH,
    MAX_FILE_SIZE,
    MAX_NODES,
    check_profiles,
    default_profiles_path,
    load_profiles,
    parse_profiles,
)
if TYPE_CHECKING:  # type checkers see the writer's names; at run time __getattr__ below loads them
    from tray.profiles.writer import (
        add_profile,
        dump_profiles,
        edit_profiles_text,
        ensure_profiles_file,
        remove_profile,
        save_profiles,
        update_profile,
    )

# The writer's names are loaded on first use (PEP 562): it brings ruamel.yaml,
# which reading a file (``tender run``'s start-up) never needs.
_WRITER_NAMES = frozenset({"add_profile", "dump_profiles", "edit_profiles_text", "ensure_profiles_file",
                           "remove_profile", "save_profiles", "update_profile"})


def __getattr__(name: str) -> object:
    if name in _WRITER_NAMES:
        from tray.profiles import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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

# Also importable from here, as before the split (not in __all__):
# VERSION, REQUIRED_PROFILE_KEYS, NAME_PATTERN, NAMESPACE_PATTERN, MAX_NODES,
# MAX_DEPTH, MAX_ERRORS.
