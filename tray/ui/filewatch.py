"""Notices when files change on disk (the profiles file, the kubeconfig).

Polls (mtime, size, inode) every 2 s from a thread of its own: portable,
cheap for a handful of files, and it sees editors that replace files by
renaming as well as those that write in place.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

Stamp = tuple[tuple[int, int, int] | None, ...]


def stamp(paths: Sequence[str]) -> Stamp:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


class FileWatcher:
    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self._watches: list[tuple[Sequence[str], Callable[[], None], list[Stamp]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tender-filewatch", daemon=True)

    def watch(self, paths: Sequence[str], callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the watcher's thread) whenever one of ``paths`` changes."""
        self._watches.append((list(paths), callback, [stamp(paths)]))

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def check(self) -> None:
        """One round of checks (the thread's body; tests call it directly)."""
        for paths, callback, last in self._watches:
            now = stamp(paths)
            if now != last[0]:
                last[0] = now
                try:
                    callback()
                except Exception:
                    log.exception("reacting to a change of %s failed", ", ".join(paths))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
