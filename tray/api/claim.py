"""One engine per user: who hosts it, and where its control socket is.

Mechanism, and why:

* **The claim is a lock, not a file's existence.**  :func:`acquire` takes an
  exclusive ``flock`` on ``engine.lock`` in the runtime directory and holds
  it for the process's life.  The kernel releases it when the process ends,
  by a clean exit, a crash or SIGKILL, so there is no stale claim to detect
  (a pid file would need "is that pid still us?" guesses), and of two
  engines starting at once exactly one gets it.  ``flock`` is per open file,
  so two claims in one process conflict too (the tests use that).
* **The socket is bound only while the lock is held** (``engine.sock``, mode
  0600, in a 0700 directory: only this user can connect, nothing listens on
  the network).  So a socket file found by whoever gets the lock is a dead
  engine's: it is replaced.  A client that finds the file but no listener
  knows no engine runs.
* **Where:** ``$XDG_RUNTIME_DIR/tender/`` (per user, on tmpfs, gone at
  logout), else a private directory under the user state dir.  The unit is
  the user on this machine, not one graphical session: forwards listen on the
  machine's loopback ports, which a second session's engine would fight over.
* **Windows:** the same lock file (``msvcrt.locking``, also released when the
  process ends) and no socket yet (a named pipe is planned, see docs/api.md).

The server (:mod:`tray.api.server`) accepts on the listening socket this
module binds; this module only claims.  Calls block for a few file
operations.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["Claim", "acquire", "runtime_dir", "socket_path", "SOCKET_NAME"]

#: The control socket's file name in :func:`runtime_dir`.
SOCKET_NAME = "engine.sock"
LOCK_NAME = "engine.lock"
#: sun_path is 108 bytes on Linux, 104 on macOS.
_SUN_PATH_MAX = 104


def runtime_dir(env: Mapping[str, str] | None = None, platform: str = sys.platform,
                run_user: Path = Path("/run/user")) -> Path:
    """The directory of the lock and the socket (not created here).

    ``$XDG_RUNTIME_DIR/tender`` when that variable names an absolute path
    (not on Windows); else, on Linux, ``/run/user/UID/tender`` when that
    directory is this user's (what systemd sets ``XDG_RUNTIME_DIR`` to, so a
    shell without the variable -- ``su -``, ``sudo -u``, cron -- still finds
    the engine its desktop session or systemd unit started); else
    ``instance`` in the user state dir (``~/.local/state/tender/instance``).
    ``env``: default ``os.environ``; ``run_user``: where systemd-logind
    makes the users' runtime directories.
    """
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if platform != "win32" and runtime and os.path.isabs(runtime):
        return Path(runtime) / "tender"
    if platform.startswith("linux") and hasattr(os, "getuid"):
        mine = run_user / str(os.getuid())
        try:
            st = os.stat(mine)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid():
                return mine / "tender"
        except OSError:
            pass
    import platformdirs

    return platformdirs.user_state_path("tender", appauthor=False) / "instance"


def socket_path(directory: Path | None = None) -> Path:
    """The control socket's path (``directory``: default :func:`runtime_dir`)."""
    return (runtime_dir() if directory is None else Path(directory)) / SOCKET_NAME


def private_dir(path: Path) -> None:
    """Create ``path`` (0700), or check that it is this user's and make it 0700.

    Raises ``PermissionError`` if it is not a directory of this user, other
    ``OSError`` when it cannot be made.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name != "posix":
        return
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory of this user")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


class Claim:
    """This process's claim on the engine (from :func:`acquire`), held until :meth:`close` or exit.

    ``listener`` is the bound, listening control socket (None where there
    can be none: Windows, a path over the system's limit); the server
    accepts on it.
    """

    def __init__(self, directory: Path, lock_fd: int | None, listener: socket.socket | None) -> None:
        self.directory = directory
        self.socket_path = directory / SOCKET_NAME
        self.listener = listener
        self._lock_fd = lock_fd
        self._socket_ino = os.stat(self.socket_path).st_ino if listener is not None else None
        self._closed = False

    def close(self) -> None:
        """Remove the socket file (if it is still ours) and release the lock.  Idempotent.

        The listener itself is closed by whoever serves it (or here, if still open).
        """
        if self._closed:
            return
        self._closed = True
        if self.listener is not None:
            try:
                self.listener.close()
            except OSError:
                pass
            try:
                if os.stat(self.socket_path).st_ino == self._socket_ino:
                    os.unlink(self.socket_path)
            except OSError:
                pass
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)  # closing the descriptor releases the lock
            except OSError:
                pass

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def acquire(directory: Path | None = None) -> Claim | None:
    """Claim the engine for this process: a :class:`Claim`, or None when another process holds it.

    ``directory``: default :func:`runtime_dir`; created 0700 if missing.  On
    success the socket (0600) is listening before this returns; a stale one
    from a killed engine is replaced.  Never blocks on the other holder.
    Raises ``OSError`` when the directory or the lock file cannot be made or
    is not this user's.
    """
    directory = runtime_dir() if directory is None else Path(directory)
    private_dir(directory)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    if not _try_lock(fd):
        os.close(fd)
        return None
    try:
        listener = _listen(directory / SOCKET_NAME)
    except BaseException:
        os.close(fd)
        raise
    return Claim(directory, fd, listener)


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _listen(path: Path) -> socket.socket | None:
    """A listening unix socket at ``path`` (0600), replacing a stale one; None where there can be none."""
    if not hasattr(socket, "AF_UNIX") or sys.platform == "win32":
        return None
    if len(os.fsencode(path)) >= _SUN_PATH_MAX:
        log.warning("%s is too long for a unix socket: the tender verbs cannot reach this engine", path)
        return None
    try:  # we hold the lock: any socket file here is a dead engine's
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(path))  # in our 0700 directory: nobody else can reach it before the chmod
        os.chmod(path, 0o600)
        s.listen(64)
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a unix socket, or None where it cannot be known.

    Linux: ``SO_PEERCRED``; macOS/BSD: ``getpeereid`` is not in Python's
    socket module, so ``LOCAL_PEERCRED`` would be needed (not done: None).
    """
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:
        return None
    import struct

    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    except OSError as exc:
        if exc.errno in (errno.ENOTCONN, errno.EBADF):
            return None
        raise
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid
