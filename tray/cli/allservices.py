"""``tender forward --all-services -n NS [-l SELECTOR] [--context C]``: every Service of a namespace.

Each Service port is forwarded on the Service's own loopback address
(``127.A.B.C``, :func:`tray.domain.addresses.auto_address`) and its real
port, and the forwards follow the namespace: a Service created later is
forwarded within a second or two of the API server saying so, a deleted
one's forwards stop (:mod:`tray.engine.group`).  Output is ``tender
forward``'s (:class:`tray.cli._Printer`), plus one line per Service left out
(ExternalName, no ports, no selector, UDP) and per forward whose Service is
gone.  Runs until SIGINT/SIGTERM (exit 0), however many forwards are in
``error`` (a new Service may come); with ``--exit-on-error`` it exits 1 once
the namespace's Services cannot be watched (forbidden, unreachable) or
every forward is in ``error``.

Where an engine runs for the same kubeconfig (the tray, ``tender daemon``)
the group runs there, as ``tender forward TARGET`` does
(:func:`group_on_engine`, ``POST /v1/groups``): its forwards show in the
tray and ``tender ls``, Ctrl-C (or this process going away) stops the
group, and ``--detach`` leaves it running (``tender stop GROUP-ID`` stops
it).  ``--no-engine``, or no engine, runs it in this process
(:func:`forward_all_services`).
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
from typing import Any

from tray.errors import UsageError

__all__ = ["check_args", "forward_all_services", "group_on_engine"]


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
        if not args.ports and not args.target.lower().startswith(("host/", "ip/")):
            raise UsageError("the following arguments are required: [LOCAL:]REMOTE (at least one port after "
                             f"{args.target})", field="[LOCAL:]REMOTE")
        return
    if args.target is not None:
        raise UsageError(f"takes no TARGET (it forwards every Service of the namespace); drop "
                         f"{' '.join([args.target, *args.ports])!r} or --all-services", field="--all-services")
    if args.address != "127.0.0.1":
        raise UsageError("cannot be used with --all-services, which gives each Service its own 127.x.y.z",
                         field="--address")
    if args.detach and args.no_engine:
        raise UsageError("needs the engine; it cannot be used with --no-engine", field="--detach")
    if args.namespace is not None:
        import re

        from tray.profiles.model import NAMESPACE_PATTERN

        if not re.fullmatch(NAMESPACE_PATTERN, args.namespace):  # the API's 400 for the same (tray.api.groups)
            raise UsageError(f"{args.namespace!r} is not a namespace name: 1-63 lowercase letters, digits and "
                             "'-', starting and ending with a letter or digit", field="--namespace")
    from tray.domain.servicegroup import parse_label_selector

    try:
        parse_label_selector(args.selector or "")
    except UsageError as exc:
        raise UsageError(exc.message, field="--selector") from None


def forward_all_services(args: argparse.Namespace) -> int:
    """Run ``forward --all-services`` in this process; returns the exit code (blocks until a signal).

    With ``--detach`` (no engine to leave the group in) prints one line and returns 1.

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
    if args.detach:
        from tray.cli.verbs import NO_ENGINE_HINT

        print(f"tender: --detach: no Tender engine is running; {NO_ENGINE_HINT}", file=sys.stderr)
        return 1
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


# ---------------------------------------------------------------- on the running engine
#: Seconds ``--detach`` waits for the group's first list of Services and its members' first state.
DETACH_WAIT = 15.0


def _namespace(client: Any, args: argparse.Namespace) -> str:
    """``-n``, else the context's namespace as the engine's kubeconfig says (``default`` when it names none)."""
    if args.namespace:
        return str(args.namespace)
    contexts = client.get("/v1/contexts")["contexts"]
    chosen = [c for c in contexts if (c["name"] == args.context if args.context else c["current"])]
    if args.context and not chosen:
        known = ", ".join(c["name"] for c in contexts) or "none"
        raise UsageError(f'context "{args.context}" not found in the kubeconfig (contexts: {known})',
                         field="--context")
    return str(chosen[0]["namespace"] or "default") if chosen else "default"


class _Follow:
    """What a joined ``--all-services`` has said about its group, so each line is printed once."""

    def __init__(self, printer: Any, group_id: str) -> None:
        self.printer = printer
        self.group_id = group_id
        self.said: set[str] = set()
        self.known: dict[str, dict[str, Any]] = {}  # member id -> its last forward object
        self.members: set[str] = set()

    def say(self, line: str, *, err: bool = False) -> None:
        if line not in self.said:
            self.said.add(line)
            if err or self.printer.output == "text":
                self.printer._emit(line, stream=sys.stderr if err else None)

    def forward(self, f: dict[str, Any]) -> None:
        from tray.cli.verbs import as_engine_event

        self.known[f["session_id"]] = f
        self.printer.show(as_engine_event({**f, "event": "status"}))

    def group(self, g: dict[str, Any], exit_on_error: bool) -> bool:
        """Print what changed in the group ``g`` (a GROUP object); True when the command should exit 1."""
        where = g["context"]
        for line in g["skipped"]:
            self.say(f"{where}: {line}")
        if g["status"] == "active" and g["reason"] and not g["members"]:
            self.say(f"{where}: {g['reason']} in {g['namespace']} yet; watching for new ones", err=True)
        if g["status"] == "error":
            self.say(f"{where}: cannot follow the Services of {g['namespace']}: {g['reason']}", err=True)
            if exit_on_error:
                return True
        members = set(g["members"])
        for sid in self.members - members:
            f = self.known.pop(sid, None)
            if f is not None and self.printer.output == "text":
                self.printer._emit(f"{f['cluster_id']}: stopped {f['target']} {f['address']}:{f['local_port']} "
                                   "(the Service or its port is gone)")
        self.members = members
        states = [self.known[i]["status"] for i in members if i in self.known]
        return exit_on_error and bool(states) and len(states) == len(members) and all(s == "error" for s in states)


def group_on_engine(client: Any, args: argparse.Namespace, printer: Any) -> int:
    """``forward --all-services`` on the running engine (``POST /v1/groups``); returns the exit code.

    ``client``: a :class:`tray.api.client.EngineClient`; ``printer``: a
    :class:`tray.cli._Printer`.  Without ``--detach``: prints the members'
    lines as in-process and follows the group until SIGINT/SIGTERM/SIGHUP
    (the group is then stopped, exit 0), the group is stopped from elsewhere
    (exit 0) or the engine goes (exit 1); with ``--exit-on-error``, exit 1
    (the group stopped) once its Services cannot be watched or every member
    is in ``error``.  The engine also stops the group if this process dies
    (``stop_on_close``).  With ``--detach``: waits up to
    :data:`DETACH_WAIT` seconds for the Services to be listed and the
    members to leave ``starting``, prints their lines and how to stop the
    group, and exits 0 (it keeps running), or 1 when its Services cannot be
    watched (it is left running: it follows them once they can be).
    Raises :class:`tray.api.client.ApiError` for a request the engine
    refuses (the caller prints it), :class:`UsageError` for an unknown ``--context``.
    """
    from tray.api.client import ApiError, NoEngine

    body: dict[str, Any] = {"namespace": _namespace(client, args)}
    if args.context:
        body["context"] = args.context
    if args.selector:
        body["selector"] = args.selector
    if getattr(args, "balance", "auto") != "auto":
        body["balance"] = args.balance
    from tray.cli.verbs import stop_on_signals

    stop = stop_on_signals(detach=args.detach)  # a signal before the group is known: stopped once it is
    group = client.post("/v1/groups", body)
    gid = group["id"]
    follow = _Follow(printer, gid)
    if args.detach:
        return _detached(client, follow, group)
    code = 1
    try:
        stop["following"] = True
        if stop["now"]:
            raise KeyboardInterrupt
        for data in client.events(stop_on_close=[gid]):
            kind = data.get("event")
            if kind == "groups":
                mine = [g for g in data["groups"] if g["id"] == gid]
                if not mine:
                    print("tender: the group was stopped from elsewhere", file=sys.stderr)
                    return 0
                if follow.group(mine[0], args.exit_on_error):
                    break
            elif kind == "list":
                for f in data["forwards"]:
                    if f.get("group") == gid:
                        follow.forward(f)
            elif kind == "status" and data.get("group") == gid:
                follow.forward(data)
                states = [follow.known[i]["status"] for i in follow.members if i in follow.known]
                if args.exit_on_error and follow.members and len(states) == len(follow.members) and all(
                        s == "error" for s in states):
                    break
        else:
            print("tender: the engine stopped", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        code = 0
    try:
        client.delete(f"/v1/groups/{gid}")
    except (ApiError, NoEngine):
        pass  # stopped from elsewhere meanwhile, or the engine went
    return code


def _detached(client: Any, follow: _Follow, group: dict[str, Any]) -> int:
    import time

    gid = group["id"]
    deadline = time.monotonic() + DETACH_WAIT
    while time.monotonic() < deadline:
        group = client.get(f"/v1/groups/{gid}")
        if group["status"] != "starting":
            forwards = [client.get(f"/v1/forwards/{i}") for i in group["members"]]
            if all(f["status"] != "starting" for f in forwards):
                break
        time.sleep(0.1)
    for i in group["members"]:
        try:
            follow.forward(client.get(f"/v1/forwards/{i}"))
        except Exception:  # noqa: BLE001 - its Service went meanwhile
            pass
    follow.group(group, exit_on_error=False)
    if follow.printer.output == "text":
        print(f"Running in the engine (see 'tender ls'); stop with: tender stop {gid[:8]}")
    return 1 if group["status"] == "error" else 0
