"""``tender proxy [--kubeconfig K] [--context C] [--listen 127.0.0.1:1080]``: the cluster proxy, in the foreground.

One SOCKS5 + HTTP proxy for one context (:mod:`tray.engine.proxy`): clients
reach Services and pods by their cluster names (``web.demo``,
``db-0.db.demo.svc.cluster.local``) and addresses.  It prints one line
saying where it listens and how to use it, then runs until Ctrl-C or
SIGTERM (exit 0).  Bad arguments (a listen address that is malformed or in
use, an unknown context, a broken kubeconfig): one line on stderr, exit 2.

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


def run(args: argparse.Namespace) -> int:
    """Run the proxy until SIGINT/SIGTERM; returns the exit code (0).

    Raises :class:`~tray.errors.UsageError` (the CLI prints it and exits 2)
    for a bad ``--listen``, an unknown context or unloadable credentials.
    Blocks until interrupted.
    """
    from tray.cli import _resolve_context
    from tray.engine.manager import ForwardManager
    from tray.engine.proxy import parse_listen
    from tray.errors import UsageError
    from tray.logs import setup_logging

    if args.stop and args.no_engine:
        raise UsageError("--stop stops a proxy in the running engine; it cannot be used with --no-engine",
                         field="--stop")
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
    try:
        context = _resolve_context(manager, args.context)
        manager.preflight(context)
        info = manager.start_proxy(context, args.listen)
        previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        print(f"SOCKS5 and HTTP proxy for context {context} on {info.listen} "
              f"(curl --socks5-hostname {info.listen} http://web.demo/)", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    finally:
        manager.shutdown()
    return 0
