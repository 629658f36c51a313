"""One tray per user: a second ``tender tray`` tells the first and exits.

Mechanism, and why:

* **The claim is a lock, not a file's existence.**  ``acquire`` takes an
  exclusive ``flock`` on ``NAME.lock`` in the instance directory and holds it
  for the process's life.  The kernel releases it when the process ends, by
  Quit, a crash or SIGKILL, so there is no stale claim to detect or clean
  (a pid file would need "is that pid still us?" guesses).  ``flock`` is per
  open file, so two claims in one process conflict too (the tests use that).
* **The message is a unix socket next to the lock** (``NAME.sock``, mode
  0600, in a 0700 directory): only this user can connect, no port is taken,
  nothing listens on the network.  A second launch connects, sends
  ``activate``, and the first answers ``ok`` at once and calls the app's
  ``on_activate`` (the tray shows a notification "Tender is already
  running"; an item on a StatusNotifier host cannot open its own menu).
  The socket is bound only while the lock is held, so a socket file left by
  a crash is known to be stale by whoever gets the lock: it is replaced.
  D-Bus name ownership would do the same on Linux, but not without a session
  bus, which the tray must survive (and macOS has none).
* **Where:** ``$XDG_RUNTIME_DIR/tender/`` (per user, on tmpfs, gone at
  logout), else a private directory under the user state dir.  The unit is
  the user on this machine, not one graphical session: forwards listen on
  the machine's loopback ports, which a second session's tray would fight
  over.
* **Windows:** a lock on the same ``NAME.lock`` (``msvcrt.locking``, also
  released by the system when the process ends) and no message: the second
  launch says Tender is running and exits.

Nothing here imports the rest of the tray; the calls block for at most the
timeouts they name.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

#: What a second launch sends, and what the first answers.
ACTIVATE = b"activate\n"
OK = b"ok\n"
#: Seconds a second launch tries to reach the first (its socket may be a moment from listening).
ACTIVATE_TIMEOUT = 2.0
#: Seconds the first instance waits for a connected client's line.
READ_TIMEOUT = 1.0


def instance_dir(env: Mapping[str, str] | None = None, platform: str = sys.platform) -> Path:
    """The directory of the lock and the socket (not created here).

    ``$XDG_RUNTIME_DIR/tender`` when that variable names an absolute path
    (not on Windows), else ``instance`` in the user state dir
    (``~/.local/state/tender/instance`` on Linux).  ``env``: default
    ``os.environ``.
    """
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if platform != "win32" and runtime and os.path.isabs(runtime):
        return Path(runtime) / "tender"
    import platformdirs

    return platformdirs.user_state_path("tender", appauthor=False) / "instance"


def _private_dir(path: Path) -> None:
    """Create ``path`` (0700), or check that it is ours and make it 0700; raises OSError if it is not ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name != "posix":
        return
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory of this user")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)


class Instance:
    """This process's claim (from :func:`acquire`): held until :meth:`close` or the process ends."""

    def __init__(self, name: str, directory: Path, lock_fd: int | None, listener: socket.socket | None) -> None:
        self.name = name
        self.directory = directory
        self.socket_path = directory / f"{name}.sock"
        self._lock_fd = lock_fd
        self._listener = listener
        self._socket_ino = os.stat(self.socket_path).st_ino if listener is not None else None
        self._callback: Callable[[], None] | None = None
        self._pending = 0
        self._mutex = threading.Lock()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe() if listener is not None else (-1, -1)
        self._thread: threading.Thread | None = None
        if listener is not None:
            self._thread = threading.Thread(target=self._accept_loop, name=f"tender-instance-{name}", daemon=True)
            self._thread.start()

    def serve(self, on_activate: Callable[[], None]) -> None:
        """From now on call ``on_activate()`` (on this object's thread) when another launch asks.

        Launches that asked before are answered at once anyway; if any did,
        ``on_activate`` is called once now (on the caller's thread).  Its
        exceptions are logged, never raised.  Returns at once.
        """
        with self._mutex:
            self._callback = on_activate
            pending, self._pending = self._pending, 0
        if pending:
            self._run(on_activate)

    def close(self) -> None:
        """Stop answering, remove the socket (if it is still ours) and release the claim.

        Idempotent; blocks until the answering thread ends (at most
        :data:`READ_TIMEOUT` seconds, when a client is being read).
        """
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(READ_TIMEOUT + 1)
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
        if self._listener is not None:
            self._listener.close()
            try:
                if os.stat(self.socket_path).st_ino == self._socket_ino:
                    os.unlink(self.socket_path)
            except OSError:
                pass
        if self._lock_fd is not None:
            _unlock(self._lock_fd)

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ answering thread
    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in sel.select()}
                if self._wake_r in ready or self._closed:
                    return
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    continue
                with conn:
                    self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(READ_TIMEOUT)
        try:
            line = _read_line(conn)
            if line != ACTIVATE:
                conn.sendall(b"?\n")
                return
            conn.sendall(OK)
        except OSError as exc:
            log.debug("instance: a client went away: %s", exc)
            return
        with self._mutex:
            callback = self._callback
            if callback is None:
                self._pending += 1
        log.info("another launch of Tender asked this one to show itself")
        if callback is not None:
            self._run(callback)

    @staticmethod
    def _run(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("instance: on_activate failed")


def _read_line(conn: socket.socket, limit: int = 64) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < limit:
        chunk = conn.recv(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data


def acquire(name: str = "tray", directory: Path | None = None) -> Instance | None:
    """Claim ``name`` for this process: an :class:`Instance`, or None when another process holds it.

    ``directory``: default :func:`instance_dir`; created 0700 if missing.
    On success the socket ``NAME.sock`` (0600) is listening before this
    returns (a stale one from a crashed process is replaced), and
    activations are answered from then on (see :meth:`Instance.serve`).
    Where a socket cannot be made (Windows; a path longer than the system's
    limit) the claim holds without one and a second launch is not told.

    Blocks for a few file operations.  Raises ``OSError`` when the directory
    or the lock file cannot be made or is not this user's (the caller runs
    without the guard).
    """
    directory = instance_dir() if directory is None else Path(directory)
    _private_dir(directory)
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    if not _try_lock(fd):
        os.close(fd)
        return None
    try:
        listener = _listen(directory / f"{name}.sock")
    except BaseException:
        _unlock(fd)
        raise
    return Instance(name, directory, fd, listener)


def claim(name: str = "tray", directory: Path | None = None, *,
          announce: Callable[[str], object] = print) -> Instance | None:
    """The app's entry: :func:`acquire`, or tell the holder and say so.

    Returns this process's :class:`Instance`, or None when another process
    holds ``name``: it was asked to show itself (:func:`activate_running`,
    up to :data:`ACTIVATE_TIMEOUT` seconds) and one line was passed to
    ``announce`` ("tender: Tender is already running ...").  When the guard
    cannot be set up (the directory is not usable) it logs one warning and
    returns an Instance that guards nothing (``serve`` and ``close`` do
    nothing): the tray runs anyway.  Raises nothing.
    """
    try:
        mine = acquire(name, directory)
    except OSError as exc:
        log.warning("running without the one-instance guard: %s", exc)
        return Instance(name, Path(directory or "."), None, None)
    if mine is not None:
        return mine
    told = activate_running(name, directory)
    log.info("another Tender is running%s; this launch ends", " and was told" if told else " (it did not answer)")
    announce("tender: Tender is already running" + (" (its icon is in the system tray)" if told else ""))
    return None


def activate_running(name: str = "tray", directory: Path | None = None, timeout: float = ACTIVATE_TIMEOUT) -> bool:
    """Ask the process holding ``name`` to show itself; True if it answered.

    Tries for up to ``timeout`` seconds (the holder may be a moment from
    listening) and blocks that long at most.  False when nothing answers
    (no holder, a holder without a socket, Windows).  Raises nothing.
    """
    if not hasattr(socket, "AF_UNIX") or sys.platform == "win32":
        return False
    path = str((instance_dir() if directory is None else Path(directory)) / f"{name}.sock")
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(remaining)
                s.connect(path)
                s.sendall(ACTIVATE)
                return _read_line(s) == OK
        except (FileNotFoundError, ConnectionRefusedError):
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        except OSError as exc:  # a timeout, a path too long, a holder that closed on us
            log.debug("instance: cannot reach the running one: %s", exc)
            return False


# ------------------------------------------------------------ platform parts
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


def _unlock(fd: int) -> None:
    # Closing the descriptor releases the lock (flock and msvcrt alike).
    try:
        os.close(fd)
    except OSError:
        pass


def _listen(path: Path) -> socket.socket | None:
    """A listening unix socket at ``path`` (0600), replacing a stale one; None where there can be none."""
    if not hasattr(socket, "AF_UNIX") or sys.platform == "win32":
        return None
    if len(os.fsencode(path)) >= 104:  # sun_path: 108 bytes on Linux, 104 on macOS
        log.warning("instance: %s is too long for a unix socket; a second launch will not be told", path)
        return None
    # We hold the lock: any socket file here is a dead holder's.
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(path))  # in our 0700 directory: nobody else can reach it before the chmod
        os.chmod(path, 0o600)
        s.listen(8)
    except BaseException:
        s.close()
        raise
    return s
