"""``tender proxy [--kubeconfig K] [--context C] [--listen 127.0.0.1:1080]``: the cluster proxy, in the foreground.

One SOCKS5 + HTTP proxy for one context (:mod:`tray.engine.proxy`): clients
reach Services and pods by their cluster names (``web.demo``,
``db-0.db.demo.svc.cluster.local``) and addresses.  It prints one line
saying where it listens and how to use it, then runs until Ctrl-C or
SIGTERM (exit 0).  Bad arguments (a listen address that is malformed or in
use, an unknown context, a broken kubeconfig): one line on stderr, exit 2.

The proxy runs in this process, on an engine of its own, even when the tray
or ``tender daemon`` runs (their proxies are started through the control
API or the tray's toggle instead); the two do not share watches.
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
    p.add_argument("--listen", default="127.0.0.1:1080",
                   help="HOST:PORT to listen on (default 127.0.0.1:1080; loopback only unless you say otherwise)")


def run(args: argparse.Namespace) -> int:
    """Run the proxy until SIGINT/SIGTERM; returns the exit code (0).

    Raises :class:`~tray.errors.UsageError` (the CLI prints it and exits 2)
    for a bad ``--listen``, an unknown context or unloadable credentials.
    Blocks until interrupted.
    """
    from tray.cli import _resolve_context
    from tray.engine.manager import ForwardManager
    from tray.engine.proxy import parse_listen
    from tray.logs import setup_logging

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
