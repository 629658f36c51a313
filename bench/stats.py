"""Small statistics: percentiles and the median (min-max) summaries the report shows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100), linear between closest ranks; None for no values."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (k - lo))


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def summary(values: Sequence[float | None]) -> dict[str, Any]:
    """{"median", "min", "max", "n"} over the rounds (None values skipped)."""
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


PEERS = ("kubectl-ws", "kubectl-spdy", "kftray")  # what Tender is compared with


def vs_best_peer(summaries: dict[str, Any], higher_is_better: bool) -> dict[str, Any]:
    """Tender's median over the best peer's median (kubectl WS, kubectl SPDY, kftray: those measured).

    {"best": tool or None, "best_median", "tender": the ratio or None}.  A peer with no
    median (every sample failed) cannot be the best.
    """
    meds = {t: summaries[t]["median"] for t in PEERS if t in summaries and summaries[t]["median"] is not None}
    if not meds:
        return {"best": None, "best_median": None, "tender": None}
    best = (max if higher_is_better else min)(meds, key=meds.get)
    return {"best": best, "best_median": meds[best],
            "tender": ratio(summaries.get("tender", {}).get("median"), meds[best])}
