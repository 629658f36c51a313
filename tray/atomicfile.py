"""Crash-safe file replacement.

``write_atomic`` writes the new content to a temporary file in the same
directory, flushes and fsyncs it, renames it over the target with
``os.replace`` and finally fsyncs the directory so the rename itself is
durable.  A reader (or a process that starts after a crash, a SIGKILL or a
power cut) therefore sees either the complete old content or the complete
new content, never a mixture or a truncated file.

What can be left behind: if the writer is killed between creating the
temporary file and the rename, a stray ``.NAME.XXXXXXXX.tmp`` file may remain
next to the target.  It never has the target's name, so it is harmless; it is
not cleaned up automatically because another writer might still be using it.
"""

from __future__ import annotations

import os
import secrets
import stat

__all__ = ["write_atomic"]


def write_atomic(path: str | os.PathLike[str], data: bytes | str, *, mode: int | None = 0o600) -> None:
    """Replace the file at *path* with *data*, atomically and durably.

    *data* given as ``str`` is encoded as UTF-8.

    Permissions: when *path* already exists its permission bits (and, where
    the process is allowed to, its owner and group) are kept.  A new file gets
    *mode* exactly (default ``0o600``: profiles name clusters and contexts,
    which are nobody else's business); ``mode=None`` means "like an ordinary
    ``open()``", i.e. ``0o666`` less the process umask.

    If *path* is a symbolic link, the file it points to is replaced and the
    link is kept (dotfile managers rely on this).

    Raises ``OSError`` on failure; the old file is then untouched and the
    temporary file removed.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    elif not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes or str, not {type(data).__name__}")

    target = os.fspath(path)
    if os.path.islink(target):
        target = os.path.realpath(target)
    directory = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)

    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise IsADirectoryError(21, "Is a directory", target)

    if existing is not None:
        perm: int | None = stat.S_IMODE(existing.st_mode)
    else:
        perm = mode

    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    # Created 0o600 when we are going to set the mode ourselves, so the data
    # is never readable by others even for a moment; 0o666 (umask applies)
    # for mode=None.
    create_mode = 0o666 if perm is None else 0o600
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, create_mode)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 32 random bits
        raise FileExistsError(17, "could not create a unique temporary file", directory)

    try:
        try:
            if perm is not None and hasattr(os, "fchmod"):
                os.fchmod(fd, perm)
            if existing is not None and hasattr(os, "fchown"):
                if (existing.st_uid, existing.st_gid) != _owner_of(fd):
                    try:
                        os.fchown(fd, existing.st_uid, existing.st_gid)
                    except OSError:
                        pass  # not allowed (not root): keep ours
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if perm is not None and not hasattr(os, "fchmod"):  # pragma: no cover - Windows
            os.chmod(tmp, perm)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _owner_of(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_uid, st.st_gid


def _fsync_directory(directory: str) -> None:
    """Make a rename in *directory* durable (POSIX only; a no-op elsewhere)."""
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - Windows
        return
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:  # pragma: no cover - e.g. a directory we may write but not read
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(dfd)
