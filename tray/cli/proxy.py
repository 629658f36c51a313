"""``tender proxy [--kubeconfig K] [--context C] [--listen 127.0.0.1:1080]``: the cluster proxy, in the foreground.

One SOCKS5 + HTTP proxy for one context (:mod:`tray.engine.proxy`): clients
reach Services and pods by their cluster names (``web.demo``,
``db-0.db.demo.svc.cluster.local``) and addresses.  It prints one line
saying where it listens and how to use it, then runs until Ctrl-C or
SIGTERM (exit 0), printing each connection it could not serve on stderr
(one line each, at most one a second, as ``tender forward`` prints its
connection errors: the others are counted into the next line).  Listening
on every interface (``--listen 0.0.0.0:PORT``, ``[::]:PORT``) prints a
warning on stderr: anyone who can reach this machine can use the proxy,
with your credentials.  ``--listen localhost:PORT`` listens on both
loopbacks (127.0.0.1 and ::1).  Bad arguments (a malformed listen address,
an unknown context, a broken kubeconfig, ``--listen`` with ``--stop``): one
line on stderr, exit 2.  A listen port in use ("local port N is already in
use on HOST") or one only root may use (with the sysctl that allows it):
one line, exit 1, as ``tender forward``.

When the tray or ``tender daemon`` runs for the same kubeconfig, the proxy
starts in that engine instead (:mod:`tray.cli.proxy_engine`: it shows in the
menu and the dashboard and outlives the command, which exits 0 once it
listens; without ``--listen`` the engine takes the first free port of
127.0.0.1:1080-1099), and ``--stop`` stops it there.  ``--no-engine`` runs
it in this process all the same, on an engine of its own.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Add the ``proxy`` subparser to ``sub`` (argparse's subparsers action)."""
    p = sub.add_parser("proxy", help="a SOCKS5 and HTTP proxy that reaches Services and pods by name")
    p.add_argument("--kubeconfig", help="kubeconfig path(s); default $KUBECONFIG or ~/.kube/config")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.add_argument("--listen", default=None,
                   help="HOST:PORT to listen on (default 127.0.0.1:1080; in a running engine the first free port "
                        "from 127.0.0.1:1080; loopback only unless you say otherwise)")
    p.add_argument("--stop", action="store_true", help="stop the context's proxy in the running engine")
    p.add_argument("--no-engine", action="store_true",
                   help="run the proxy in this process even when an engine (the tray, tender daemon) runs")


#: Seconds between two failure lines of the foreground proxy (``tender forward``'s interval).
FAILURE_INTERVAL = 1.0


class _FailurePrinter(logging.Handler):
    """Prints the proxy's failures (:data:`tray.engine.proxy.failures_log`) on stderr, at most one a second.

    The first failure after a quiet second prints at once; later ones are
    counted and the newest printed, with the count, by :meth:`flush_due`
    (called from the waiting loop) once the second has passed.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self._lock2 = threading.Lock()
        self._printed_at = float("-inf")
        self._pending: str | None = None
        self._more = 0

    def emit(self, record: logging.LogRecord) -> None:
        import time

        line = record.getMessage().strip().splitlines()[0] if record.getMessage().strip() else ""
        with self._lock2:
            now = time.monotonic()
            if self._pending is None and now - self._printed_at >= FAILURE_INTERVAL:
                self._printed_at = now
                self._print(line, 0)
                return
            if self._pending is not None:
                self._more += 1
            self._pending = line

    def flush_due(self) -> None:
        """Print the newest held failure, with how many others since the last line, once a second has passed."""
        import time

        with self._lock2:
            now = time.monotonic()
            if self._pending is None or now - self._printed_at < FAILURE_INTERVAL:
                return
            line, more = self._pending, self._more
            self._pending, self._more, self._printed_at = None, 0, now
            self._print(line, more)

    @staticmethod
    def _print(line: str, more: int) -> None:
        print(f"tender: proxy: {line}" + (f" (and {more} more)" if more else ""), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the proxy until SIGINT/SIGTERM; returns the exit code (0; 1 for a listen port in use or privileged).

    Raises :class:`~tray.errors.UsageError` (the CLI prints it and exits 2)
    for a bad ``--listen``, ``--listen`` with ``--stop``, an unknown context
    or unloadable credentials.  Blocks until interrupted.
    """
    from tray.cli import _resolve_context
    from tray.engine.manager import ForwardManager
    from tray.cli.proxy_engine import started_line, warning_line
    from tray.engine.proxy import ListenError, failures_log, parse_listen
    from tray.errors import UsageError
    from tray.logs import setup_logging

    if args.stop and args.no_engine:
        raise UsageError("--stop stops a proxy in the running engine; it cannot be used with --no-engine",
                         field="--stop")
    if args.stop and args.listen is not None:
        raise UsageError("--listen does nothing with --stop: a context has one proxy, and "
                         "'tender proxy --stop [--context C]' stops it", field="--listen")
    if args.listen is not None:
        parse_listen(args.listen)  # a malformed address fails before the engine or the kubeconfig is asked
    if not args.no_engine:
        from tray.cli.proxy_engine import proxy_on_engine

        joined = proxy_on_engine(args)
        if joined is not None:
            return joined
    args.listen = args.listen or "127.0.0.1:1080"
    parse_listen(args.listen)  # a malformed address fails before any kubeconfig is read
    setup_logging(logging.WARNING - 10 * min(getattr(args, "verbose", 0), 2), stream=sys.stderr)
    manager = ForwardManager(args.kubeconfig)
    stop = threading.Event()
    printer = _FailurePrinter()
    failures_log.addHandler(printer)
    failures_log.setLevel(logging.INFO)
    failures_log.propagate = False  # printed once, by the printer
    engine_log = logging.getLogger("tray.engine.proxy")
    said_here = logging.Filter()
    said_here.filter = lambda record: not getattr(record, "exposure", False)  # type: ignore[method-assign]
    engine_log.addFilter(said_here)  # the warning is printed below, as one line of ours
    try:
        context = _resolve_context(manager, args.context)
        manager.preflight(context)
        try:
            info = manager.start_proxy(context, args.listen)
        except ListenError as exc:
            print(f"tender: error: {exc.message}", file=sys.stderr)
            return 1
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        print(started_line(context, info.listen), flush=True)
        if info.warning:
            print(warning_line(info.warning), file=sys.stderr, flush=True)
        try:
            while not stop.wait(0.25):
                printer.flush_due()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    finally:
        failures_log.removeHandler(printer)
        engine_log.removeFilter(said_here)
        failures_log.propagate = True
        manager.shutdown()
    return 0
