"""``tender``: the command line.

* ``tender`` / ``tender tray`` — the tray app (``tray.ui``).
* ``tender forward [--kubeconfig P] [--context C] [-n NS] [--address A] TARGET [LOCAL:]REMOTE...``
  — kubectl's own syntax, headless, with auto-reconnect, until SIGINT/SIGTERM.
* ``tender run [--profiles F] [NAME...] [--group G] [--all]`` — saved profiles, headless.
* ``tender profiles check [F]`` / ``tender profiles list [F]``.

Usage and configuration errors print one line and exit 2, without a
traceback.  ``forward`` and ``run`` exit 0 on SIGINT/SIGTERM, and 1 when
every forward they started has ended in ``error`` (as kubectl exits when it
cannot forward), after printing why.
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

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


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
                    help="local address to listen on (default 127.0.0.1; 'localhost' = 127.0.0.1 and ::1)")
    fw.add_argument("-o", "--output", choices=("text", "json"), default="text")
    fw.add_argument("target", help="pod/NAME, svc/NAME, deploy/NAME, sts/NAME, ds/NAME, rs/NAME, rc/NAME, job/NAME or NAME")
    fw.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE", help="8080, 8080:80, :80, 8080:http")

    run = sub.add_parser("run", help="run saved profiles headless")
    run.add_argument("--profiles", help="profiles file (default $TENDER_PROFILES or the user config dir)")
    run.add_argument("--kubeconfig")
    run.add_argument("--group", action="append", default=[], help="run the profiles of this group")
    run.add_argument("--all", action="store_true", help="run every profile")
    run.add_argument("-o", "--output", choices=("text", "json"), default="text")
    run.add_argument("names", nargs="*", metavar="NAME")

    prof = sub.add_parser("profiles", help="check or list profiles")
    prof_sub = prof.add_subparsers(dest="profiles_command", parser_class=_Parser, required=True)
    for name in ("check", "list"):
        c = prof_sub.add_parser(name)
        c.add_argument("file", nargs="?")
        c.add_argument("--kubeconfig", help="also check contexts against this kubeconfig")

    inst = sub.add_parser("install-desktop", help="install the icon and .desktop launcher for this user")
    inst.add_argument("--prefix", help="XDG data dir (default ~/.local/share)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("forward", "run", "profiles", "install-desktop"):
        from tray.logs import setup_logging

        setup_logging(logging.WARNING - 10 * min(args.verbose, 2), stream=sys.stderr)
    try:
        if args.command == "forward":
            return _forward(args)
        if args.command == "run":
            return _run_profiles(args)
        if args.command == "profiles":
            return _profiles(args)
        if args.command == "install-desktop":
            from tray.ui.desktop import install_desktop

            print(install_desktop(args.prefix))
            return 0
        from tray.ui.app import run_tray

        return run_tray(kubeconfig=getattr(args, "kubeconfig", None), profiles=getattr(args, "profiles", None))
    except UsageError as exc:
        print(f"tender: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


# ---------------------------------------------------------------- forwards
class _Printer:
    """Prints events as kubectl-like text or as JSON lines, from the main thread."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.events: queue.Queue[Any] = queue.Queue()
        self._last: dict[str, tuple[str, str]] = {}

    def __call__(self, event: Any) -> None:  # engine thread: hand over only
        self.events.put(event)

    def show_batch(self, batch: list[Any]) -> None:
        """Show events in order, but only the newest full list of a burst.

        Starting 200 forwards emits 200 lists of up to 200 sessions; printing
        each would be quadratic.  Every status event is still printed.
        """
        from tray.manager import ListEvent

        last_list = max((i for i, e in enumerate(batch) if isinstance(e, ListEvent)), default=-1)
        for i, event in enumerate(batch):
            if isinstance(event, ListEvent) and i != last_list:
                continue
            self.show(event)

    def show(self, event: Any) -> None:
        from tray.manager import ListEvent

        if self.output == "json":
            if isinstance(event, ListEvent):
                obj = {"event": "list", "sessions": [_public(s.to_dict()) for s in event.sessions]}
            else:
                obj = {"event": "status", **_public(event.session.to_dict())}
            print(json.dumps(obj, sort_keys=True), flush=True)
            return
        if isinstance(event, ListEvent):
            return
        s = event.session
        key = (s.status, s.pod_name)
        if self._last.get(s.id) == key and s.status != "reconnecting":
            return
        self._last[s.id] = key
        addr = f"[{s.address}]" if ":" in s.address else s.address
        if s.status == "active":
            print(f"Forwarding from {addr}:{s.local_port} -> {s.container_port} "
                  f"({s.target_kind.lower()} {s.target_name}, pod {s.pod_name})", flush=True)
        elif s.status in ("reconnecting", "error"):
            print(f"{s.target} {s.local_port} -> {s.remote_port}: {s.status}: {s.status_reason}", flush=True)


def _public(d: dict[str, Any]) -> dict[str, Any]:
    keep = ("session_id", "cluster_id", "cluster_name", "namespace", "target_kind", "target_name",
            "pod_name", "container_port", "local_port", "address", "status", "status_reason",
            "profile", "started_at", "attempts")
    return {k: d[k] for k in keep if k in d}


def _serve(manager: Any, ids: list[str], printer: _Printer) -> int:
    """Print events until a signal, or until every forward is in error."""
    stop = {"signal": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["signal"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop["signal"]:
            try:
                printer.show_batch(_drain(printer.events, printer.events.get(timeout=0.2)))
                continue
            except queue.Empty:
                pass
            states = [manager.get(i).status for i in ids]
            if states and all(s == "error" for s in states) and printer.events.empty():
                return 1
        return 0
    finally:
        if not printer.events.empty():
            printer.show_batch(_drain(printer.events, printer.events.get()))
        manager.shutdown()


def _drain(events: queue.Queue[Any], first: Any) -> list[Any]:
    batch = [first]
    while True:
        try:
            batch.append(events.get_nowait())
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
        raise UsageError("the kubeconfig has no current context; pass --context", field="--context")
    return current[0]


def _forward(args: argparse.Namespace) -> int:
    from tray.manager import ForwardManager
    from tray.portspec import parse_port_spec
    from tray.targets import parse_target

    try:
        target = parse_target(args.target)
    except UsageError as exc:
        raise UsageError(exc.message, field=f"TARGET {args.target!r}") from None
    specs = []
    for text in args.ports:
        try:
            specs.append(parse_port_spec(text))
        except UsageError as exc:
            raise UsageError(exc.message, field=f"port {text!r}") from None
    _check_address(args.address)
    manager = ForwardManager(args.kubeconfig)
    printer = _Printer(args.output)
    try:
        context = _resolve_context(manager, args.context)
        manager.preflight(context)
        manager.subscribe(printer)
        ids = [manager.start(context, args.namespace, target.kind, target.name, spec.remote,
                             _local(spec), args.address) for spec in specs]
    except BaseException:
        manager.shutdown()
        raise
    return _serve(manager, ids, printer)


def _local(spec: Any) -> int | None:
    if spec.local is not None:
        return int(spec.local)
    return None if spec.local_same_as_remote else 0


def _check_address(address: str) -> None:
    import ipaddress

    if address == "localhost":
        return
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"{address!r} is not an IP address or 'localhost'", field="--address") from None
    if not ip.is_loopback:
        logging.getLogger("tender").warning(
            "listening on %s: the forwarded ports are reachable from other machines", address)


def _run_profiles(args: argparse.Namespace) -> int:
    from tray.manager import ForwardManager
    from tray.profiles import load_profiles

    manager = ForwardManager(args.kubeconfig)
    try:
        clusters = manager.clusters()
        pf = load_profiles(args.profiles or os.environ.get("TENDER_PROFILES") or None,
                           known_contexts={c.id for c in clusters})
        chosen = _choose_profiles(pf, args)
        current = next((c.id for c in clusters if c.current), None)
        printer = _Printer(args.output)
        manager.subscribe(printer)
        ids: list[str] = []
        checked: set[str] = set()
        for prof in chosen:
            context = prof.context or current
            if context is None:
                raise UsageError("no context and the kubeconfig has no current context",
                                 source=str(pf.path), line=prof.line, field=f"{prof.name}.context")
            if context not in checked:
                manager.preflight(context)
                checked.add(context)
            for spec in prof.ports:
                ids.append(manager.start(context, prof.namespace, prof.target.kind, prof.target.name,
                                         spec.remote, _local(spec), prof.address, profile=prof.name))
    except BaseException:
        manager.shutdown()
        raise
    return _serve(manager, ids, printer)


def _choose_profiles(pf: Any, args: argparse.Namespace) -> list[Any]:
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
    from tray.profiles import check_profiles, load_profiles

    known = None
    if args.kubeconfig:
        from tray.kubeconfig import list_clusters

        known = {c.id for c in list_clusters(args.kubeconfig)}
    if args.profiles_command == "check":
        errors = check_profiles(args.file, known_contexts=known)
        for err in errors:
            print(str(err), file=sys.stderr)
        if errors:
            return 2
        print(f"{args.file or 'profiles'}: ok")
        return 0
    pf = load_profiles(args.file, known_contexts=known)
    for prof in pf.profiles:
        ports = " ".join(str(p) for p in prof.ports)
        print(f"{prof.name}\t{prof.group or '-'}\t{prof.context or '(current)'}\t"
              f"{prof.namespace or '(default)'}\t{prof.target}\t{ports}\t"
              f"{'autostart' if prof.autostart else ''}".rstrip())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
