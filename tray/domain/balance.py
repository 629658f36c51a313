"""How a forward spreads its new connections over the pods behind its target (``balance``).

The modes, as a user writes them (profile field ``balance:``, ``tender
forward --balance``, :attr:`tray.domain.spec.ForwardSpec.balance`):

* ``round-robin``: each new local connection goes to the next ready endpoint
  of the Service (what a Service's ClusterIP does, roughly); the default for
  Service targets.
* ``pin``: every connection goes to one pod, kubectl's choice, until that pod
  goes away (``kubectl port-forward``'s behaviour); the only mode of Pod and
  workload targets.
* ``sticky``: the same client address goes to the same pod while that pod is
  ready (a hash of the peer's IP address over the ready endpoints).  Every
  local client of a loopback forward is 127.0.0.1 (or ::1), so for a forward
  used from this machine alone ``sticky`` behaves like ``pin``, with the pod
  chosen by the hash rather than by kubectl's ranking.
* ``auto`` (what a spec says when the user said nothing): ``round-robin`` for
  a Service, ``pin`` for anything else (:func:`effective_balance`).

Which pod each mode picks is :mod:`tray.domain.selection`'s
(:func:`~tray.domain.selection.round_robin_pod`,
:func:`~tray.domain.selection.sticky_pod`).  Plain data, no I/O.
"""

from __future__ import annotations

from typing import Final

from tray.errors import UsageError

__all__ = ["AUTO", "ROUND_ROBIN", "PIN", "STICKY", "BALANCE_MODES", "effective_balance", "balance_problem"]

AUTO: Final = "auto"
ROUND_ROBIN: Final = "round-robin"
PIN: Final = "pin"
STICKY: Final = "sticky"
#: The modes a user may write (``auto`` is the absence of a choice).
BALANCE_MODES: Final = (ROUND_ROBIN, PIN, STICKY)


def balance_problem(kind: str, balance: str) -> str:
    """Why ``balance`` cannot be used for a target of ``kind`` ("Service", "Pod", ...); "" when it can.

    An unknown mode is a problem for every kind; ``round-robin`` and
    ``sticky`` need a Service (a Pod or a workload is forwarded as kubectl
    does, to one pod).  ``auto`` and ``pin`` suit every kind.
    """
    if balance not in (AUTO, *BALANCE_MODES):
        return f"unknown balance {balance!r}: expected {', '.join(BALANCE_MODES)}"
    if balance in (ROUND_ROBIN, STICKY) and kind != "Service":
        return f"balance {balance!r} needs a Service target (svc/NAME); a {kind} is forwarded to one pod"
    return ""


def effective_balance(kind: str, balance: str = AUTO) -> str:
    """The mode a forward to a ``kind`` target uses for ``balance``: never ``auto``.

    Raises :class:`~tray.errors.UsageError` (``field="balance"``) when
    :func:`balance_problem` names one.  Returns at once.
    """
    problem = balance_problem(kind, balance)
    if problem:
        raise UsageError(problem, field="balance")
    if balance == AUTO:
        return ROUND_ROBIN if kind == "Service" else PIN
    return balance
