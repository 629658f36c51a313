"""Writing a profiles file: save, add, update, remove, keeping the user's comments; atomic writes.

Saving (:func:`save_profiles`, :func:`add_profile`, :func:`update_profile`,
:func:`remove_profile`) edits the file in place, atomically, through a
ruamel.yaml round trip (:func:`edit_profiles_text`): only the profiles and
keys that changed are touched, and the user's comments (each staying with
its own profile), blank lines, key order, quoting, list styles, indentation
and line breaks stay as they were.  A missing file is written anew
(:func:`dump_profiles`).  What Tender writes always loads back to equal
profiles; an edit that would not is logged and the file written anew
instead.  ruamel.yaml only ever reads a file that passed the strict reader
(:mod:`tray.profiles.reader`).

Its ~600 lines are one job, keeping what the user wrote through an edit:
most of them place comments and blank lines that ruamel.yaml would
otherwise attach to the wrong profile; split apart, the halves would share
every helper.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable
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

from tray.atomicfile import write_atomic
from tray.domain.portspec import PortSpec
from tray.errors import UsageError
from tray.profiles.model import EMPTY_PROFILES_TEXT, PROFILE_KEYS, VERSION, Profile, ProfilesFile
from tray.profiles.reader import check_data, default_profiles_path, load_profiles, parse_profiles, read_limited

log = logging.getLogger(__name__)

__all__ = [
    "add_profile",
    "dump_profiles",
    "edit_profiles_text",
    "ensure_profiles_file",
    "remove_profile",
    "save_profiles",
    "update_profile",
]

_SAVE_HEADER: Final = (
    "# Tender profiles (format version 1); check with: tender profiles check FILE\n"
    "# Comments and layout are kept when Tender edits this file.\n"
)

_STR: Final = "tag:yaml.org,2002:str"


def dump_profiles(profiles: Iterable[Profile], relay_image: str | None = None) -> str:
    """The YAML text Tender writes for *profiles* when it writes a file anew (version 1).

    A header comment, then the file's ``relay: {image: ...}`` if *relay_image*
    is given, then the profiles as :meth:`~tray.profiles.model.Profile.to_dict`
    spells them, in the order given.  Does not validate them.  Pure (no I/O).
    """
    items = [p.to_dict() for p in profiles]
    if not items:
        relay = yaml.safe_dump({"relay": {"image": relay_image}}, default_flow_style=None) if relay_image else ""
        return _SAVE_HEADER + EMPTY_PROFILES_TEXT.replace("profiles:", relay + "profiles:")
    top: dict[str, Any] = {"version": VERSION}
    if relay_image:
        top["relay"] = {"image": relay_image}
    body = yaml.safe_dump(
        {**top, "profiles": items},
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 16,
    )
    return _SAVE_HEADER + body


def save_profiles(path: str | os.PathLike[str], profiles: Iterable[Profile] | ProfilesFile) -> ProfilesFile:
    """Write *profiles* to *path* atomically (mode 0600 for a new file).

    The file's top-level ``relay: {image: ...}`` is kept (a file written anew
    gets the one the profiles were loaded with).  The profiles are validated
    with the same rules as loading before anything is written, so Tender
    never writes a file it would refuse; a problem (e.g. two profiles with
    the same name) raises UsageError and leaves the file untouched.

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
    fresh = dump_profiles(wanted, next((p.file_relay_image for p in wanted if p.file_relay_image), None))
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

    *path* None means :func:`~tray.profiles.reader.default_profiles_path`.
    Returns (path, created).  An existing file (or a symlink, even a dangling
    one) is left alone, whatever it holds.  A new file is written atomically,
    mode 0600, creating missing directories (0700).  Raises OSError if that
    fails.  Blocks for a stat and, if the file is created, one small write.
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
        data = read_limited(path, source)
    except (FileNotFoundError, UsageError):
        return None
    if check_data(data, source)[1]:
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
    old, errors = check_data(text, "<profiles>")
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


def _ports(profile: Profile, like: Any, quote: type[str]) -> CommentedSeq:
    """The ports list of *profile* replacing *like* (None for a new profile).

    A port *like* has too keeps its text, its comment and the lines above it;
    the list keeps *like*'s flow or block style.  New ports are written as
    Tender writes them (:meth:`~tray.profiles.model.Profile.port_text`): a
    plain number, else a string quoted with *quote*.
    """
    out = CommentedSeq()
    old = list(like) if isinstance(like, CommentedSeq) else []
    old_leads = _cut_leads(like) if old else {}
    leads: dict[int, str] = {}
    used: set[int] = set()
    for spec in profile.ports:
        text = profile.port_text(spec)
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
        if key == "ports":
            item[key] = _ports(profile, None, quote)
        elif key == "relay":
            item[key] = _relay(value["image"], None)
        else:
            item[key] = _scalar(value)
    return item


def _relay(image: str, like: Any) -> CommentedMap:
    """``relay: {image: IMAGE}`` replacing *like* (None, or the mapping there): *like* edited, else a flow mapping."""
    if isinstance(like, CommentedMap):
        like["image"] = _scalar(image, like.get("image"))
        return like
    out = CommentedMap()
    out["image"] = _scalar(image)
    out.fa.set_flow_style()
    return out


def _field_value(profile: Profile, key: str) -> Any:
    """What *profile* says for the file's *key* (the target with its port; ``relay`` is the profile's image)."""
    if key == "target":
        return profile.target, profile.target_port
    if key == "relay":
        return profile.relay_image
    if key == "ports":
        return profile.ports, profile.ports_from_target, profile.protocol
    return getattr(profile, key)


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
        if _field_value(old, key) == _field_value(new, key):
            continue
        if key not in wanted:
            item.pop(key, None)
            item.ca.items.pop(key, None)  # its end-of-line comment (ruamel keeps it otherwise)
            continue
        if key == "ports":
            value = _ports(new, item.get(key), quote)
        elif key == "relay":
            value = _relay(wanted[key]["image"], item.get(key))
        else:
            value = _scalar(wanted[key], item.get(key))
        if key in item:
            item[key] = value
        else:
            position = max((n + 1 for n, k in enumerate(item) if order.get(k, -1) < order[key]), default=0)
            item.insert(position, key, value)
    return _put_leads(item, leads)
