"""The soak's fault windows: which fault a failed request falls in, and how long each forward took to serve again.

Pure logic (no I/O, no clock of its own: every time is a ``time.monotonic()``
value the caller passes), so it is unit-tested (tests/unit/bench/).

A :class:`Window` is one fault action: its ``kind`` (``delete-pod``,
``drop-connections``, ``freeze-api``, ``never-reading``, ``scale-zero``),
``start`` and ``end`` (when the fault itself ended: the pod deletion was
asked for, the freeze was lifted, the writer let go, the first new pod was
Ready), and ``ref``, the moment recovery is measured from (the fault's start,
or for ``scale-zero`` the first new pod Ready).  A failed request is the
fault's if the request ran (``[t0, t1]``) while the window was open, which is
``[start, end + grace]``: the grace covers the engine's noticing and
reconnecting.  When several windows overlap, the one that started last
takes it.  A failure in no window is unexplained (``none``).

Recovery per forward: the first request that succeeded after the forward's
last failure in the window, measured from ``ref`` (its completion time
minus ``ref``); a forward that never failed in the window recovered in 0 s
(it kept serving); one that failed and had not succeeded again by the end of
the soak has recovery ``None``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from statistics import median
from typing import Any

__all__ = ["Window", "Faults", "NONE"]

#: The attribution of a failure no fault window explains.
NONE = "none"


@dataclass
class Window:
    """One fault action; times are ``time.monotonic()`` seconds."""

    n: int
    kind: str
    start: float
    end: float | None = None  # None while the fault lasts
    ref: float | None = None  # recovery is measured from here (default: start)
    detail: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)  # forward -> failed requests
    first_failure: dict[str, float] = field(default_factory=dict)  # forward -> t1 of its first failure
    recovered: dict[str, float] = field(default_factory=dict)  # forward -> t1 of its first success after that

    def open_until(self, grace: float) -> float:
        """The last moment a request may still be this window's (inf while the fault lasts)."""
        return float("inf") if self.end is None else self.end + grace

    def recovery(self, forwards: list[str]) -> dict[str, float | None]:
        """Seconds from ``ref`` to serving again, per forward (0.0: never failed; None: not yet)."""
        ref = self.start if self.ref is None else self.ref
        out: dict[str, float | None] = {}
        for name in forwards:
            if name not in self.first_failure:
                out[name] = 0.0
            elif name in self.recovered:
                out[name] = round(self.recovered[name] - ref, 2)
            else:
                out[name] = None
        return out


class Faults:
    """Every fault window of a soak, and the attribution of each request's outcome to them. Thread-safe."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.windows: list[Window] = []
        self.unexplained: dict[str, int] = {}
        self._lock = threading.Lock()

    def begin(self, kind: str, now: float, **detail: Any) -> Window:
        """A fault starts now; returns its window (pass it to :meth:`finish`)."""
        with self._lock:
            w = Window(len(self.windows) + 1, kind, now, detail=dict(detail))
            self.windows.append(w)
            return w

    def finish(self, w: Window, now: float, ref: float | None = None, **detail: Any) -> None:
        """The fault of ``w`` ended at ``now``; ``ref``: recovery is measured from there (default its start)."""
        with self._lock:
            w.end = now
            if ref is not None:
                w.ref = ref
            w.detail.update(detail)

    def window_for(self, t0: float, t1: float) -> Window | None:
        """The window a request that ran from ``t0`` to ``t1`` falls in (the latest started), or None."""
        with self._lock:
            hits = [w for w in self.windows if w.start <= t1 and w.open_until(self.grace) >= t0]
        return max(hits, key=lambda w: w.start) if hits else None

    def record(self, forward: str, t0: float, t1: float, ok: bool) -> str:
        """One request's outcome; returns what a failure is attributed to (``"freeze-api#3"`` or ``none``).

        A success marks the forward recovered in every window where it had
        failed and not yet recovered; returns "".
        """
        if ok:
            with self._lock:
                for w in self.windows:
                    if forward in w.first_failure and forward not in w.recovered:
                        w.recovered[forward] = t1
            return ""
        w = self.window_for(t0, t1)
        with self._lock:
            if w is None:
                self.unexplained[forward] = self.unexplained.get(forward, 0) + 1
                return NONE
            w.failures[forward] = w.failures.get(forward, 0) + 1
            w.first_failure.setdefault(forward, t1)
            w.recovered.pop(forward, None)  # failed again: serving again is measured from its last failure
            return f"{w.kind}#{w.n}"

    def summary(self, forwards: list[str]) -> dict[str, Any]:
        """Per fault kind: actions, failed requests, recovery times (per forward: median and max, and
        every action's), forwards that never served again; and the unexplained failures."""
        with self._lock:
            windows = list(self.windows)
            unexplained = dict(self.unexplained)
        kinds: dict[str, Any] = {}
        for w in windows:
            k = kinds.setdefault(w.kind, {"actions": 0, "failed": 0, "failed_by_forward": {},
                                          "recovery_s": {f: [] for f in forwards}, "not_recovered": []})
            k["actions"] += 1
            for fwd, n in w.failures.items():
                k["failed"] += n
                k["failed_by_forward"][fwd] = k["failed_by_forward"].get(fwd, 0) + n
            for fwd, r in w.recovery(forwards).items():
                if r is None:
                    k["not_recovered"].append(f"{fwd} after {w.kind}#{w.n}")
                else:
                    k["recovery_s"][fwd].append(r)
        for k in kinds.values():
            k["recovery"] = {f: {"median": round(median(v), 2), "max": max(v)} if v else None
                             for f, v in k["recovery_s"].items()}
        return {"faults": kinds, "unexplained": {"failed": sum(unexplained.values()), "by_forward": unexplained}}
