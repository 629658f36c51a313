"""``tender forward --all-services -n NS [-l SELECTOR] [--context C]``: every Service of a namespace.

Each Service port is forwarded on the Service's own loopback address
(``127.A.B.C``, :func:`tray.domain.addresses.auto_address`) and its real
port, and the forwards follow the namespace: a Service created later is
forwarded within a second or two of the API server saying so, a deleted
one's forwards stop (:mod:`tray.engine.group`).  Output is ``tender
forward``'s (:class:`tray.cli._Printer`), plus one line per Service left out
(ExternalName, no ports, no selector, UDP) and per forward whose Service is
gone.  Runs in this process until SIGINT/SIGTERM (exit 0), however many
forwards are in ``error`` (a new Service may come); with ``--exit-on-error``
it exits 1 once the namespace's Services cannot be watched (forbidden,
unreachable) or every forward is in ``error``.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
from typing import Any

from tray.errors import UsageError

__all__ = ["check_args", "forward_all_services"]


def check_args(args: argparse.Namespace) -> None:
    """Refuse a ``forward`` command line that mixes ``--all-services`` with a target, ports or
    ``--address``, or that has neither; raises :class:`UsageError` (one line, exit 2)."""
    if not args.all_services:
        if args.selector is not None:
            raise UsageError("chooses the Services of --all-services; without --all-services, name one TARGET",
                             field="--selector")
        if args.target is None:
            raise UsageError("the following arguments are required: TARGET and [LOCAL:]REMOTE "
                             "(or --all-services -n NAMESPACE)", field="TARGET")
        if not args.ports:
            raise UsageError("the following arguments are required: [LOCAL:]REMOTE (at least one port after "
                             f"{args.target})", field="[LOCAL:]REMOTE")
        return
    if args.target is not None:
        raise UsageError(f"takes no TARGET (it forwards every Service of the namespace); drop "
                         f"{' '.join([args.target, *args.ports])!r} or --all-services", field="--all-services")
    if args.address != "127.0.0.1":
        raise UsageError("cannot be used with --all-services, which gives each Service its own 127.x.y.z",
                         field="--address")
    if args.detach:
        raise UsageError("cannot be used with --all-services, which runs in this process", field="--detach")


def forward_all_services(args: argparse.Namespace) -> int:
    """Run ``forward --all-services`` in this process; returns the exit code (blocks until a signal).

    Raises :class:`UsageError` for an unknown context, credentials that
    cannot be loaded or a selector that cannot be read (before anything
    starts).
    """
    from tray.cli import _Printer, _drain, _resolve_context
    from tray.domain.servicegroup import NamespaceSpec, parse_label_selector
    from tray.engine.manager import ForwardManager

    selector = args.selector or ""
    try:
        parse_label_selector(selector)
    except UsageError as exc:
        raise UsageError(exc.message, field="--selector") from None
    manager = ForwardManager(args.kubeconfig)
    printer = _Printer(args.output, timestamps=args.timestamps)
    try:
        context = _resolve_context(manager, args.context)
        manager.preflight(context)
        manager.subscribe(printer)
        balance = getattr(args, "balance", None) or "auto"  # --balance, where the parser has it
        group_id = manager.start_group(NamespaceSpec(context, args.namespace, selector, balance=balance))
    except BaseException:
        manager.shutdown()
        raise
    return _serve_group(manager, group_id, printer, exit_on_error=args.exit_on_error)


def _serve_group(manager: Any, group_id: str, printer: Any, *, exit_on_error: bool) -> int:
    from tray.cli import _drain

    stop = {"signal": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["signal"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    said: set[str] = set()
    known: dict[str, Any] = {}  # member id -> its last snapshot
    text = printer.output == "text"
    try:
        while not stop["signal"]:
            try:
                first = printer.events.get(timeout=0.2)
            except queue.Empty:
                first = None
            if first is not None:
                printer.show_batch(_drain(printer.events, first, settle=0.05))
            group = manager.group(group_id)
            for line in group.skipped:
                if line not in said:
                    said.add(line)
                    if text:
                        printer._emit(f"{group.cluster_id}: {line}")
            if group.status == "active" and group.reason and not group.members:
                line = f"{group.cluster_id}: {group.reason} in {group.namespace} yet; watching for new ones"
                if line not in said:
                    said.add(line)
                    printer._emit(line, stream=sys.stderr)
            if group.status == "error":
                line = f"{group.cluster_id}: cannot follow the Services of {group.namespace}: {group.reason}"
                if line not in said:
                    said.add(line)
                    printer._emit(line, stream=sys.stderr)
                if exit_on_error:
                    return 1
            members = set(group.members)
            for sid in list(known):
                if sid not in members:
                    s = known.pop(sid)
                    if text:
                        printer._emit(f"{s.cluster_id}: stopped {s.target} {s.address}:{s.local_port} "
                                      f"(the Service or its port is gone)")
            for sid in members:
                try:
                    known[sid] = manager.get(sid)
                except UsageError:
                    pass
            states = [known[i].status for i in members if i in known]
            if exit_on_error and states and all(s == "error" for s in states):
                return 1
        return 0
    finally:
        if not printer.events.empty():
            printer.show_batch(_drain(printer.events, printer.events.get()))
        manager.shutdown()
