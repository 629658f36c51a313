"""The hosts-file lines of ``address: auto`` forwards, and the marked block ``tender hosts --write`` keeps.

A Service ``web`` in namespace ``demo`` forwarded on its own address
(:func:`tray.domain.addresses.auto_address`) gets one line with the names a
pod would use for it::

    127.12.34.56  web  web.demo  web.demo.svc  web.demo.svc.cluster.local

``tender hosts --write`` keeps such lines between two marker lines
(:data:`BEGIN`, :data:`END`); everything outside the block stays byte for
byte.  Pure: text in, text out, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["BEGIN", "END", "HostsEntry", "HostsFileError", "service_names", "entries_for",
           "block_lines", "replace_block", "remove_block"]

#: The block's first line.
BEGIN: Final = "# BEGIN tender (managed by tender hosts; do not edit)"
#: The block's last line.
END: Final = "# END tender"
#: A line that starts a block (an edited BEGIN line still counts).
_BEGIN_PREFIX: Final = "# BEGIN tender"
#: The cluster domain kubelet gives pods (``--cluster-domain``), as in ``svc.ns.svc.cluster.local``.
CLUSTER_DOMAIN: Final = "cluster.local"

#: A DNS-1123 label: what a Service's and a namespace's names are.
_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_IPV4: Final = re.compile(r"127\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)\.(25[0-5]|2[0-4]\d|1?\d?\d)")


class HostsFileError(ValueError):
    """The hosts file has a block this module will not guess about (a BEGIN without its END)."""


@dataclass(frozen=True)
class HostsEntry:
    """One hosts-file line: ``address`` (``127.A.B.C``) and the ``names`` it answers for, in order."""

    address: str
    names: tuple[str, ...]

    def line(self) -> str:
        """``ADDRESS  NAME  NAME ...``, two spaces apart."""
        return "  ".join((self.address, *self.names))


def service_names(name: str, namespace: str, cluster_domain: str = CLUSTER_DOMAIN) -> tuple[str, ...]:
    """The names a pod resolves a Service by: ``svc``, ``svc.ns``, ``svc.ns.svc``, ``svc.ns.svc.DOMAIN``.

    Raises ``ValueError`` when ``name`` or ``namespace`` is not a DNS label
    (nothing else may reach a hosts file: no spaces, no newlines).
    """
    for label in (name, namespace):
        if not _LABEL.fullmatch(label):
            raise ValueError(f"{label!r} is not a DNS label")
    return (name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{cluster_domain}")


def entries_for(services: Iterable[tuple[str, str, str]]) -> tuple[list[HostsEntry], list[str]]:
    """The hosts entries of Services forwarded on their own addresses, and notes about what was left out.

    ``services``: ``(address, namespace, name)`` triples, in the order to
    keep (a Service forwarded on several ports appears once per port; one
    line is made).  A name a line already holds is left off a later line
    (the hosts file answers with the first anyway): ``web`` of namespaces
    ``a`` and ``b``, or the same Service of two contexts (two addresses);
    each such case is one note (``"web.b: ..."``).  An address that is not
    ``127.x.y.z``, or a name or namespace that is not a DNS label, is left
    out with a note.  Pure; never raises.
    """
    entries: dict[str, list[str]] = {}
    owner: dict[str, str] = {}  # name -> address holding it
    notes: list[str] = []
    for address, namespace, name in services:
        if not _IPV4.fullmatch(address):
            notes.append(f"{name}.{namespace}: {address!r} is not a 127.x.y.z address; left out")
            continue
        try:
            names = service_names(name, namespace)
        except ValueError as exc:
            notes.append(f"{name!r} in {namespace!r}: {exc}; left out")
            continue
        mine = entries.setdefault(address, [])
        taken = []
        for n in names:
            holder = owner.get(n)
            if holder is None:
                owner[n] = address
                mine.append(n)
            elif holder != address:
                taken.append(n)
        if taken:
            notes.append(f"{name}.{namespace} on {address}: {', '.join(taken)} already name{'s' if len(taken) == 1 else ''}"
                         f" another address (another namespace's or context's {name}); left off this line")
    return [HostsEntry(a, tuple(n)) for a, n in entries.items() if n], notes


def block_lines(entries: Iterable[HostsEntry]) -> list[str]:
    """The block for ``entries``: :data:`BEGIN`, one line each, :data:`END` (no line ends)."""
    return [BEGIN, *(e.line() for e in entries), END]


def _split(text: str) -> list[str]:
    """Lines with their ends (``\\n``, ``\\r\\n``), so joining them gives ``text`` back exactly."""
    return text.splitlines(keepends=True) if text else []


def _is_begin(line: str) -> bool:
    return line.strip().startswith(_BEGIN_PREFIX)


def _is_end(line: str) -> bool:
    return line.strip() == END


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) line indexes of every block; raises :class:`HostsFileError` for a BEGIN without END."""
    out = []
    start = None
    for i, line in enumerate(lines):
        if start is None and _is_begin(line):
            start = i
        elif start is not None and _is_end(line):
            out.append((start, i))
            start = None
        elif start is not None and _is_begin(line):
            raise HostsFileError(f"line {i + 1}: a second {_BEGIN_PREFIX!r} line before {END!r} "
                                 f"(the block starting at line {start + 1}); fix the file by hand")
    if start is not None:
        raise HostsFileError(f"line {start + 1}: {_BEGIN_PREFIX!r} without an {END!r} line after it; "
                             "fix the file by hand")
    return out


def _newline(lines: list[str]) -> str:
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def replace_block(text: str, entries: Iterable[HostsEntry]) -> str:
    """``text`` (a hosts file) with Tender's block holding ``entries``; everything else kept exactly.

    The first block is replaced where it is and any later one removed;
    without a block, the new one is appended (after a line end added to a
    last line that has none).  No entries: the same as :func:`remove_block`.
    The file's line end (``\\n`` or ``\\r\\n``, from its first line) is
    used.  Raises :class:`HostsFileError` for a BEGIN line without its END.
    """
    entries = list(entries)
    if not entries:
        return remove_block(text)
    lines = _split(text)
    blocks = _blocks(lines)
    nl = _newline(lines)
    new = [line + nl for line in block_lines(entries)]
    if not blocks:
        if lines and not lines[-1].endswith(("\n", "\r")):
            # A file without a final line end keeps none: the line end moves to before the block,
            # and remove_block moves it back (write then remove gives the file back byte for byte).
            lines[-1] += nl
            new[-1] = new[-1][:-len(nl)]
        return "".join(lines + new)
    out: list[str] = []
    prev = 0
    for n, (first, last) in enumerate(blocks):
        out += lines[prev:first]
        if n == 0:
            out += new
            if last == len(lines) - 1 and not lines[last].endswith(("\n", "\r")):
                out[-1] = out[-1][:-len(nl)]  # the block ended the file without a line end: so does the new one
        prev = last + 1
    out += lines[prev:]
    return "".join(out)


def remove_block(text: str) -> str:
    """``text`` without Tender's block(s), every other line kept exactly (unchanged when there is none).

    Raises :class:`HostsFileError` for a BEGIN line without its END.
    """
    lines = _split(text)
    blocks = _blocks(lines)
    if not blocks:
        return text
    out: list[str] = []
    prev = 0
    for first, last in blocks:
        out += lines[prev:first]
        prev = last + 1
    out += lines[prev:]
    end = blocks[-1][1]
    if end == len(lines) - 1 and not lines[end].endswith(("\n", "\r")) and out:
        out[-1] = out[-1].rstrip("\r\n")  # the file ended with the block and no line end (see replace_block)
    return "".join(out)
