"""``tender``: the command line.

* ``tender`` / ``tender tray`` — the tray app (``tray.ui``).
* ``tender forward [--kubeconfig P] [--context C] [-n NS] [--address A] TARGET [LOCAL:]REMOTE...``
  — kubectl's own syntax, headless, with auto-reconnect, until SIGINT/SIGTERM;
  ``tender forward --all-services -n NS [-l SELECTOR]``: every Service of a namespace (:mod:`tray.cli.allservices`).
* ``tender run [--profiles F] [NAME...] [--group G] [--all]`` — saved profiles, headless.
* ``tender profiles check [F]`` / ``tender profiles list [F]``.
* ``tender import [--dry-run] [--format F] [--profiles P] FILE|-`` — profiles from ``kubectl port-forward``
  lines, kftray's or kube-forwarder's export (:mod:`tray.cli.importing`).
* ``tender daemon`` -- the engine without a tray; ``tender ls|stop|retry|remove|start|events|logs|dashboard``
  drive the running engine over its control API (:mod:`tray.cli.verbs`, docs/api.md); ``forward``
  joins it when one runs (``--detach`` leaves the forwards there).

``forward`` and ``run`` also take ``-o text|json``, ``--timestamps`` and
``--exit-on-error``; :class:`_Printer` describes the output.

Exit codes: 2 and one line on stderr, without a traceback, for usage and
configuration errors, including a remote port the target does not have as
typed (an unknown Service port or port name, a UDP-only port: kubectl
refuses those too), no profiles to run, and ``profiles check`` of a missing
file.  ``forward`` and ``run`` exit 0 on SIGINT/SIGTERM; they keep running
while any forward can still recover (the engine keeps a forward whose target
exists watched, and it returns to ``active`` by itself), and exit 1 once
every forward is in ``error`` and none can; ``--exit-on-error`` exits 1 as
soon as every forward is in ``error`` (kubectl exits when it cannot forward).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from tray import __version__
from tray.errors import TenderError, UsageError
from tray.domain.spec import ForwardSpec
from tray.domain.status import Status

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timestamps", action="store_true",
                   help="start each line with the local time (JSON: a \"time\" field)")
    p.add_argument("--exit-on-error", action="store_true",
                   help="exit 1 once every forward is in error, even one that would recover by itself")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tender", description="Kubernetes port-forwards that survive pod restarts.")
    p.add_argument("--version", action="version", version=f"tender {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)

    tray_p = sub.add_parser("tray", help="run the tray app (the default)")
    tray_p.add_argument("--kubeconfig")
    tray_p.add_argument("--profiles")

    fw = sub.add_parser("forward", help="forward local ports to a pod, service or workload")
    fw.add_argument("--kubeconfig", help="kubeconfig path(s); default $KUBECONFIG or ~/.kube/config")
    fw.add_argument("--context", help="kubeconfig context (default: the current one)")
    fw.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    fw.add_argument("--address", default="127.0.0.1",
                    help="local address to listen on (default 127.0.0.1; 'localhost' = 127.0.0.1 and ::1; "
                         "'auto' = a 127.x.y.z of the target's own, so each forward keeps its real port)")
    fw.add_argument("--balance", choices=("round-robin", "pin", "sticky"), default="auto",
                    help="a Service's new connections: each to the next ready pod (round-robin, the default), "
                         "all to one pod as kubectl does (pin), or one pod per client address (sticky: every "
                         "client of this machine is 127.0.0.1, so one pod)")
    fw.add_argument("-o", "--output", choices=("text", "json"), default="text")
    fw.add_argument("--detach", action="store_true",
                    help="leave the forwards running in the engine (the tray or 'tender daemon') and exit")
    fw.add_argument("--no-engine", action="store_true",
                    help="forward in this process even when an engine runs")
    _add_run_flags(fw)
    fw.add_argument("--all-services", action="store_true",
                    help="forward every Service of the namespace on its real ports, each on its own 127.x.y.z, "
                         "following Services as they come and go (no TARGET)")
    fw.add_argument("-l", "--selector", help="with --all-services: only Services with these labels "
                                             "(kubectl's syntax: app=web,tier in (a,b))")
    fw.add_argument("target", nargs="?",
                    help="pod/NAME, svc/NAME, deploy/NAME, sts/NAME, ds/NAME, rs/NAME, rc/NAME, job/NAME or NAME; "
                         "host/NAME[:PORT] or ip/ADDRESS[:PORT] through a relay pod")
    fw.add_argument("--relay-image", metavar="IMAGE", default=None,
                    help="the image a relay pod runs (UDP, host/, ip/, Services without pods); "
                         "default python:3.13-alpine")
    fw.add_argument("ports", nargs="*", metavar="[LOCAL:]REMOTE",
                    help="8080, 8080:80, :80, 8080:http, 8053:53/udp")

    run = sub.add_parser("run", help="run saved profiles headless")
    run.add_argument("--profiles", help="profiles file (default $TENDER_PROFILES or the user config dir)")
    run.add_argument("--kubeconfig")
    run.add_argument("--group", action="append", default=[], help="run the profiles of this group")
    run.add_argument("--all", action="store_true", help="run every profile")
    run.add_argument("-o", "--output", choices=("text", "json"), default="text")
    _add_run_flags(run)
    run.add_argument("names", nargs="*", metavar="NAME")

    prof = sub.add_parser("profiles", help="check or list profiles")
    prof_sub = prof.add_subparsers(dest="profiles_command", parser_class=_Parser, required=True)
    for name in ("check", "list"):
        c = prof_sub.add_parser(name)
        c.add_argument("file", nargs="?")
        c.add_argument("--kubeconfig", help="also check contexts against this kubeconfig")

    daemon = sub.add_parser("daemon", help="run the engine without a tray (servers, tiling WMs, WSL)")
    daemon.add_argument("--kubeconfig")
    daemon.add_argument("--profiles", help="profiles file whose autostart profiles start")
    from tray.cli import verbs

    verbs.add_parsers(sub)
    from tray.cli import hosts as hosts_cli  # tender hosts: /etc/hosts lines for address: auto

    hosts_cli.add_parser(sub)
    from tray.cli import importing

    importing.add_parser(sub)
    from tray.cli import proxy as proxy_cli

    proxy_cli.add_parser(sub)

    svc = sub.add_parser("install-service",
                         help="start 'tender daemon' at login: a systemd user unit (macOS: a LaunchAgent)")
    svc.add_argument("--kubeconfig", help="kubeconfig path(s) for the daemon (default $KUBECONFIG or ~/.kube/config, recorded)")
    svc.add_argument("--profiles", help="profiles file for the daemon (default $TENDER_PROFILES or the user config dir, recorded)")
    svc.add_argument("--remove", action="store_true", help="stop and disable the service, and delete it")

    inst = sub.add_parser("install-desktop", help="install the icon and .desktop launcher for this user")
    inst.add_argument("--prefix", help="XDG data dir (default ~/.local/share)")
    inst.add_argument("--remove", action="store_true",
                      help="remove what install-desktop installed, and the Start at login entry")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # kubectl takes flags anywhere, between the target and its ports too (`forward svc/web -n shop 80`);
        # argparse ends an optional TARGET's positionals at the first flag, so the ports come back here.
        if args.command == "forward" and not any(word.startswith("-") for word in extra):
            args.ports = [*args.ports, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command in ("forward", "run", "daemon", "tray", None):
        from tray.logs import raise_open_files_limit

        raise_open_files_limit()  # each forward holds a listener and its connections
    from tray.cli import verbs

    if args.command in ("forward", "run", "profiles", "install-desktop", "install-service", "daemon", *verbs.VERBS):
        from tray.logs import setup_logging

        # The daemon's log is its only face (the journal under systemd): what it does, at INFO.
        base = logging.INFO if args.command == "daemon" else logging.WARNING
        setup_logging(base - 10 * min(args.verbose, 2), stream=sys.stderr)
    try:
        if args.command == "forward":
            return _forward(args)
        if args.command == "run":
            return _run_profiles(args)
        if args.command == "daemon":
            from tray.api.host import run_daemon

            return run_daemon(args.kubeconfig, args.profiles)
        if args.command in verbs.VERBS:
            return verbs.run_verb(args)
        if args.command == "hosts":
            from tray.cli import hosts as hosts_cli

            return hosts_cli.run(args)
        if args.command == "import":
            from tray.cli import importing

            return importing.run(args)
        if args.command == "proxy":
            from tray.cli import proxy as proxy_cli

            return proxy_cli.run(args)
        if args.command == "profiles":
            return _profiles(args)
        if args.command == "install-service":
            from tray.ui.service import install_service

            try:
                install_service(kubeconfig=args.kubeconfig, profiles=args.profiles, remove=args.remove)
            except UsageError:
                raise  # Windows: one line, exit 2
            except TenderError as exc:  # a folder not writable, systemctl failing: one line, exit 1
                print(f"tender: error: install-service{' --remove' if args.remove else ''}: {exc}", file=sys.stderr)
                return 1
            return 0
        if args.command == "install-desktop":
            from tray.ui.desktop import install_desktop, remove_desktop

            try:
                print(remove_desktop(args.prefix) if args.remove else install_desktop(args.prefix))
            except OSError as exc:  # a folder not writable, a full disk: one line, no traceback
                print(f"tender: error: install-desktop{' --remove' if args.remove else ''}: {exc}", file=sys.stderr)
                return 1
            return 0
        from tray.ui.app import run_tray

        return run_tray(kubeconfig=getattr(args, "kubeconfig", None), profiles=getattr(args, "profiles", None))
    except UsageError as exc:
        print(f"tender: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


# ---------------------------------------------------------------- forwards
def _now_stamp() -> str:
    """The local time, RFC 3339 with milliseconds (``--timestamps``)."""
    from datetime import datetime

    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _clock(iso: str) -> str:
    """``HH:MM:SS`` local time of an ISO 8601 instant (the engine's ``next_retry_at``), or ''."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return ""


class _Printer:
    """Prints engine events as text lines or JSON lines, from the main thread.

    Text: one line per change, each naming the profile (if any) and the
    context: ``shop-web (tender-a): Forwarding from 127.0.0.1:8080 -> 80
    (svc/web in demo, pod web-7c9f-abcd)``.  A reconnecting forward prints
    one line per attempt, with the attempt number and the time of the next
    one; an unchanged state is not printed again.  Connections that fail in
    the pod print one line each (the engine sends at most one a second per
    forward and counts the rest).  With ``timestamps`` every line starts with
    the local time.  JSON: every event, one object per line (``status``,
    ``list``, ``connection-error``), with ``time`` when ``timestamps``.
    """

    def __init__(self, output: str, *, timestamps: bool = False) -> None:
        self.output = output
        self.timestamps = timestamps
        self.events: queue.Queue[Any] = queue.Queue()
        self._last: dict[str, tuple[Any, ...]] = {}
        self._warned: dict[str, str] = {}

    def __call__(self, event: Any) -> None:  # engine thread: hand over only
        self.events.put(event)

    def show_batch(self, batch: list[Any]) -> None:
        """Show events in order, but only the newest full list of a burst.

        Starting 200 forwards emits 200 lists of up to 200 sessions; printing
        each would be quadratic.  In JSON every status event is still printed;
        in text, a status event followed in the same burst by another of the
        same forward and status says nothing the later one does not.
        """
        from tray.engine.manager import ListEvent, StatusEvent

        last_list = max((i for i, e in enumerate(batch) if isinstance(e, ListEvent)), default=-1)
        superseded: set[int] = set()
        if self.output == "text":
            newest: dict[str, tuple[int, str]] = {}
            for i, e in enumerate(batch):
                if isinstance(e, StatusEvent):
                    prev = newest.get(e.session_id)
                    if prev is not None and prev[1] == e.session.status:
                        superseded.add(prev[0])
                    newest[e.session_id] = (i, e.session.status)
        for i, event in enumerate(batch):
            if (isinstance(event, ListEvent) and i != last_list) or i in superseded:
                continue
            self.show(event)

    def _emit(self, line: str, *, stream: Any = None) -> None:
        if self.timestamps:
            line = f"{_now_stamp()} {line}"
        print(line, file=stream or sys.stdout, flush=True)

    def show(self, event: Any) -> None:
        from tray.engine.manager import ConnectionEvent, ListEvent

        if self.output == "json":
            from tray.api.schema import event_dict

            obj = event_dict(event)
            if self.timestamps:
                obj["time"] = _now_stamp()
            print(json.dumps(obj, sort_keys=True), flush=True)
            return
        if isinstance(event, ListEvent):
            return
        s = event.session
        prefix = f"{s.profile} ({s.cluster_id})" if s.profile else s.cluster_id
        addr = f"[{s.address}]" if ":" in s.address else s.address
        if isinstance(event, ConnectionEvent):
            more = f" (and {event.suppressed} more)" if event.suppressed else ""
            self._emit(f"{prefix}: error forwarding {addr}:{s.local_port} -> pod {event.pod_name} port "
                       f"{event.port}: {event.error}{more}")
            return
        if s.status == Status.RECONNECTING:
            key: tuple[Any, ...] = (s.status, s.status_reason, s.attempts if s.next_retry_at else None)
        elif s.status == Status.ACTIVE:
            spread = len(getattr(s, "pods", ())) if getattr(s, "balance", "pin") != "pin" else 0
            key = (s.status, s.pod_name) if spread < 2 else (s.status, spread)
        else:
            key = (s.status, s.status_reason, s.recoverable)
        if self._last.get(s.id) == key:
            return
        self._last[s.id] = key
        if s.status == Status.ACTIVE:
            where = f"pod {s.pod_name}" if spread < 2 else f"{s.balance} over {spread} pods"
            udp = "/udp" if getattr(s, "protocol", "TCP") == "UDP" else ""
            if getattr(s, "relay_pod", ""):
                self._emit(f"{prefix}: Forwarding from {addr}:{s.local_port}{udp} -> {s.relay_upstream} "
                           f"({s.target} in {s.namespace}, through relay pod {s.relay_pod})")
            else:
                self._emit(f"{prefix}: Forwarding from {addr}:{s.local_port} -> {s.container_port} "
                           f"({s.target} in {s.namespace}, {where})")
            if s.warning and self._warned.get(s.id) != s.warning:
                self._warned[s.id] = s.warning
                self._emit(f"{prefix}: warning: {s.warning}; connections to it will likely be refused")
        elif s.status == Status.RECONNECTING:
            when = ""
            if s.next_retry_at:
                when = f" (attempt {s.attempts}, next at {_clock(s.next_retry_at)})"
            self._emit(f"{prefix}: {s.target} {s.local_port} -> {s.remote_port}: reconnecting{when}: "
                       f"{s.status_reason}")
        elif s.status == Status.ERROR and not s.usage_error:  # usage errors: one line on stderr (_serve)
            tail = ""
            if s.recoverable:
                tail = f"; still watching {s.target}, forwards again when a pod is ready"
            self._emit(f"{prefix}: {s.target} {s.local_port} -> {s.remote_port}: error: {s.status_reason}{tail}")


def _serve(manager: Any, ids: list[str], printer: _Printer, origins: dict[str, UsageError], *,
           exit_on_error: bool, usage_exits: bool) -> int:
    """Print events until a signal, or until the forwards cannot go on; returns the exit code.

    Blocks.  Exit codes: 0 after SIGINT/SIGTERM; 2 for a usage error (a port
    the target does not have as typed), at once if ``usage_exits`` (``forward``:
    kubectl refuses such a command line), else once nothing else runs
    (``run``); 1 once every forward is in ``error`` and none can recover
    (``exit_on_error``: once every forward is in ``error``, recoverable or
    not).  ``origins`` maps session ids to where the forward was asked for
    (argument or profile), to name it in a usage error's line.
    """
    stop = {"signal": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["signal"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    reported: set[str] = set()
    changed = True  # the statuses are looked at again only after an event (200 idle forwards cost nothing)
    try:
        while not stop["signal"]:
            try:
                first = printer.events.get(timeout=0.2)
            except queue.Empty:
                first = None
            if first is not None:
                printer.show_batch(_drain(printer.events, first, settle=0.05))
                changed = True
            if not changed:
                continue
            changed = False
            infos = [manager.get(i) for i in ids]
            usage = False
            for info in infos:
                if info.status == Status.ERROR and info.usage_error:
                    usage = True
                    if info.id not in reported:
                        reported.add(info.id)
                        origin = origins.get(info.id) or UsageError("")
                        err = UsageError(info.status_reason, source=origin.source, line=origin.line,
                                         field=origin.field)
                        printer._emit(f"tender: error: {err}", stream=sys.stderr)
            if usage and usage_exits:
                return 2
            if not printer.events.empty():
                continue
            if infos and all(i.status == Status.ERROR for i in infos):
                if exit_on_error or not any(i.recoverable for i in infos):
                    return 2 if usage else 1
        return 0
    finally:
        if not printer.events.empty():
            printer.show_batch(_drain(printer.events, printer.events.get()))
        manager.shutdown()


def _drain(events: queue.Queue[Any], first: Any, settle: float = 0.0) -> list[Any]:
    """``first`` and whatever else is queued, waiting up to ``settle`` seconds for more."""
    import time

    batch = [first]
    deadline = time.monotonic() + settle
    while True:
        try:
            batch.append(events.get_nowait())
            continue
        except queue.Empty:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            return batch
        try:
            batch.append(events.get(timeout=left))
        except queue.Empty:
            return batch


def _resolve_context(manager: Any, context: str | None) -> str:
    clusters = manager.clusters()
    if context:
        if context not in {c.id for c in clusters}:
            known = ", ".join(c.id for c in clusters) or "none"
            raise UsageError(f'context "{context}" not found (contexts: {known})', field="--context")
        return context
    current = [c.id for c in clusters if c.current]
    if not current:
        from tray.kube.kubeconfig import load_kubeconfig, no_context_message

        raise UsageError(no_context_message(load_kubeconfig(manager.kubeconfig)), field="--context")
    return current[0]


def _forward(args: argparse.Namespace) -> int:
    from tray.engine.manager import ForwardManager
    from tray.cli import allservices

    allservices.check_args(args)  # --all-services or TARGET and ports, not both (exit 2)
    if args.all_services:  # on the running engine (as TARGET is), else in this process
        joined = None if args.no_engine else _forward_on_engine(args)
        return joined if joined is not None else allservices.forward_all_services(args)
    from tray.domain.spec import parse_target_and_ports

    try:
        target, specs = parse_target_and_ports(args.target, args.ports)
    except UsageError as exc:
        field = f"TARGET {args.target!r}" if exc.field == "TARGET" else (
            f"port {args.ports[int(exc.field[5:])]!r}" if exc.field and exc.field[5:].isdigit() else exc.field)
        raise UsageError(exc.message, field=field) from None
    if not args.ports:
        args.ports = [str(s) for s in specs]  # host/NAME:PORT: the port it carries
    from tray.domain.balance import balance_problem

    if balance_problem(target.kind, args.balance):
        raise UsageError(balance_problem(target.kind, args.balance), field="--balance")
    _check_address(args.address)
    if args.detach and args.no_engine:
        raise UsageError("--detach needs the engine; it cannot be used with --no-engine", field="--detach")
    if not args.no_engine:
        joined = _forward_on_engine(args)
        if joined is not None:
            return joined
    if args.detach:
        from tray.cli.verbs import NO_ENGINE_HINT

        print(f"tender: --detach: no Tender engine is running; {NO_ENGINE_HINT}", file=sys.stderr)
        return 1
    manager = ForwardManager(args.kubeconfig)
    printer = _Printer(args.output, timestamps=args.timestamps)
    origins: dict[str, UsageError] = {}
    try:
        context = _resolve_context(manager, args.context)
        manager.preflight(context)
        manager.subscribe(printer)
        ids = []
        for text, spec in zip(args.ports, specs):
            ids.append(manager.start(ForwardSpec(context, args.namespace, target, spec.remote,
                                                 local_port=_local(spec), address=args.address,
                                                 balance=args.balance, protocol=spec.protocol,
                                                 relay_image=args.relay_image)))
            origins[ids[-1]] = UsageError("", field=f"port {text!r}")
    except BaseException:
        manager.shutdown()
        raise
    return _serve(manager, ids, printer, origins, exit_on_error=args.exit_on_error, usage_exits=True)


def _forward_on_engine(args: argparse.Namespace) -> int | None:
    """``forward`` on the running engine, if one runs with this kubeconfig; None to forward in-process.

    An engine with another kubeconfig (``--kubeconfig``, ``$KUBECONFIG``) is
    left alone: the forward runs here, as before there was an engine.
    """
    from tray.api.client import ApiError, NoEngine, connect
    from tray.kube.kubeconfig import kubeconfig_paths

    try:
        client = connect(timeout=5.0)
    except ApiError as exc:  # an engine that does not answer (frozen), or refuses us
        print(f"tender: the running engine did not answer ({exc.message}); forwarding in this process",
              file=sys.stderr)
        return None
    if client is None:
        return None
    with client:
        try:
            info = client.get("/v1/engine")
            # The same files, however they are named (a symlink, a relative path, ~).
            mine = [os.path.realpath(os.path.expanduser(p))
                    for p in kubeconfig_paths(args.kubeconfig).split(os.pathsep) if p]
            theirs = [os.path.realpath(p) for p in info.get("kubeconfig", [])]
            if theirs != mine:
                if args.detach:
                    print(f"tender: --detach: the running engine uses another kubeconfig "
                          f"({os.pathsep.join(info.get('kubeconfig', []))}); run with that one, or without "
                          "--detach to forward in this process", file=sys.stderr)
                    return 1
                logging.getLogger("tender").info("the running engine uses another kubeconfig; forwarding here")
                return None
            from tray.cli import allservices, verbs

            join = allservices.group_on_engine if args.all_services else verbs.forward_on_engine
            return join(client, args, _Printer(args.output, timestamps=args.timestamps))
        except NoEngine:
            return None
        except ApiError as exc:
            print(f"tender: error: {exc.message}", file=sys.stderr)
            # 409: a local port another forward holds, exit 1 as in-process (a port in use), not a usage error
            return 2 if 400 <= exc.status < 500 and exc.status not in (403, 409) else 1


def _local(spec: Any) -> int | None:
    if spec.local is not None:
        return int(spec.local)
    return None if spec.local_same_as_remote else 0


def _check_address(address: str) -> None:
    from tray.api.schema import check_address

    if check_address(address, field="--address"):
        logging.getLogger("tender").warning(
            "listening on %s: the forwarded ports are reachable from other machines", address)


def _run_profiles(args: argparse.Namespace) -> int:
    from tray.engine.manager import ForwardManager
    from tray.profiles import load_profiles

    manager = ForwardManager(args.kubeconfig)
    try:
        clusters = manager.clusters()
        # Contexts are checked for the profiles that run, below: a profile for
        # another kubeconfig must not stop the others (the file itself is valid).
        pf = load_profiles(args.profiles or os.environ.get("TENDER_PROFILES") or None)
        chosen = _choose_profiles(pf, args)
        known = {c.id for c in clusters}
        current = next((c.id for c in clusters if c.current), None)
        printer = _Printer(args.output, timestamps=args.timestamps)
        manager.subscribe(printer)
        ids: list[str] = []
        origins: dict[str, UsageError] = {}
        checked: set[str] = set()
        skipped: list[UsageError] = []
        for prof in chosen:
            context = prof.context or current
            where = dict(source=str(pf.path), line=prof.line, field=f"{prof.name}.context")
            if context is None:
                from tray.kube.kubeconfig import load_kubeconfig, no_context_message

                skipped.append(UsageError(no_context_message(load_kubeconfig(manager.kubeconfig),
                                                             "set context: NAME"), **where))
                continue
            if context not in known:
                skipped.append(UsageError(f'unknown context "{context}" (contexts: '
                                          f'{", ".join(sorted(known)) or "none"})', **where))
                continue
            if context not in checked:
                manager.preflight(context)
                checked.add(context)
            if prof.is_namespace:  # every Service of a namespace: a group, its members come and go
                from tray.profiles.run import start_profile

                start_profile(manager, prof, context)
                continue
            for n, spec in enumerate(prof.ports):
                ids.append(manager.start(ForwardSpec(context, prof.namespace, prof.target, spec.remote,
                                                     local_port=_local(spec), address=prof.address,
                                                     profile=prof.name, balance=prof.balance,
                                                     protocol=spec.protocol,
                                                     relay_image=prof.effective_relay_image)))
                origins[ids[-1]] = UsageError("", source=str(pf.path), line=prof.line or None,
                                              field=f"{prof.name}.ports[{n}]")
            if not printer.events.empty():  # the first forwards are told while the others start
                printer.show_batch(_drain(printer.events, printer.events.get()))
        for problem in skipped:  # one line each; the others run
            print(f"tender: error: {problem}", file=sys.stderr)
        if skipped and not ids:
            manager.shutdown()
            return 2  # nothing could start
    except BaseException:
        manager.shutdown()
        raise
    return _serve(manager, ids, printer, origins, exit_on_error=args.exit_on_error, usage_exits=False)


def _no_profiles(pf: Any) -> UsageError:
    """Why there is nothing to run: no file at all, or a file without profiles."""
    if not pf.path.exists():
        return UsageError(f"no profiles file: {pf.path} does not exist (create it, set $TENDER_PROFILES "
                          "or pass --profiles FILE; 'tender forward' needs none)")
    return UsageError("the file has no profiles ('profiles: []'); add one, or use 'tender forward'",
                      source=str(pf.path), field="profiles")


def _choose_profiles(pf: Any, args: argparse.Namespace) -> list[Any]:
    """The profiles ``run`` starts; UsageError (exit 2) when that is none."""
    if not pf.profiles:
        raise _no_profiles(pf)
    if args.all:
        return list(pf.profiles)
    chosen = []
    for name in args.names:
        prof = pf.by_name(name)
        if prof is None:
            raise UsageError(f"no profile named {name!r} (profiles: {', '.join(pf.names()) or 'none'})",
                             source=str(pf.path), field="NAME")
        chosen.append(prof)
    for group in args.group:
        members = pf.groups().get(group)
        if not members:
            raise UsageError(f"no profiles in group {group!r}", source=str(pf.path), field="--group")
        chosen.extend(p for p in members if p not in chosen)
    if not chosen:
        chosen = [p for p in pf.profiles if p.autostart]
        if not chosen:
            raise UsageError("name profiles to run, or use --group or --all "
                             "(no profile has autostart: true)", source=str(pf.path))
    return chosen


def _profiles(args: argparse.Namespace) -> int:
    from tray.profiles import check_profiles, default_profiles_path, load_profiles

    known = None
    if args.kubeconfig:
        from tray.kube.kubeconfig import list_clusters

        known = {c.id for c in list_clusters(args.kubeconfig)}
    path = args.file if args.file is not None else default_profiles_path()
    if args.file is None and not os.path.lexists(path):
        # The tray treats a missing default file as "no profiles yet"; asked
        # about it by name, say it is not there (exit 2), not "ok".
        raise UsageError("no such file (the default profiles file; pass FILE or set $TENDER_PROFILES)",
                         source=str(path))
    if args.profiles_command == "check":
        errors = check_profiles(path, known_contexts=known, missing_ok=False)
        for err in errors:
            print(str(err), file=sys.stderr)
        if errors:
            return 2
        pf = load_profiles(path, known_contexts=known)
        print(f"{path}: ok ({len(pf.profiles)} profile{'' if len(pf.profiles) == 1 else 's'})")
        return 0
    pf = load_profiles(path, known_contexts=known)
    for prof in pf.profiles:
        ports = " ".join(str(p) for p in prof.ports)
        print(f"{prof.name}\t{prof.group or '-'}\t{prof.context or '(current)'}\t"
              f"{prof.namespace or '(default)'}\t{prof.target}\t{ports}\t"
              f"{'autostart' if prof.autostart else ''}".rstrip())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
