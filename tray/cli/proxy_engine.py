"""``tender proxy`` on the running engine: the cluster proxy starts in the tray or ``tender daemon``.

When an engine runs for the same kubeconfig, ``tender proxy`` asks it
(``POST /v1/proxies``, docs/api.md) instead of running a proxy of its own: the
proxy then shows in the tray's menu and the dashboard, shares the engine's
watches, and outlives the command, which prints where it listens and exits 0.
``tender proxy --stop`` stops it (``DELETE /v1/proxies/CONTEXT``).

Without ``--listen`` the engine picks the first free port of
127.0.0.1:1080-1099 (so a second context does not collide with the first);
a context whose proxy already runs is reported where it is (exit 0) when
that is where it was asked for.  Exit codes as ``tender forward``'s: 2 for
a request the engine refuses as bad (an unknown context, a malformed
listen address), 1 for one that cannot be done now (a listen port in use:
"local port N is already in use on HOST"; a privileged port, with the
sysctl that allows it; a context whose proxy runs elsewhere), when the
engine fails, or when there is nothing to stop.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["proxy_on_engine", "started_line", "warning_line"]


def started_line(context: str, listen: str) -> str:
    """The line ``tender proxy`` prints once the proxy listens (the foreground proxy prints the same).

    ``listen`` as the proxy reports it; the command in it uses the address a
    client on this machine connects to (127.0.0.1 for 0.0.0.0 and localhost).
    """
    from tray.api.proxies import client_address

    return (f"SOCKS5 and HTTP proxy for context {context} on {listen} "
            f"(curl --socks5-hostname {client_address(listen)} http://SERVICE.NAMESPACE/)")


def warning_line(warning: str) -> str:
    """The stderr line for a proxy's :attr:`~tray.engine.proxy.ProxyInfo.warning` (``""``: none)."""
    return f"tender: warning: {warning}" if warning else ""


def _same_kubeconfig(args: argparse.Namespace, engine: dict[str, Any]) -> bool:
    from tray.kube.kubeconfig import kubeconfig_paths

    mine = [os.path.realpath(os.path.expanduser(p))
            for p in kubeconfig_paths(args.kubeconfig).split(os.pathsep) if p]
    return [os.path.realpath(p) for p in engine.get("kubeconfig", [])] == mine


def _not_in_kubeconfig(args: argparse.Namespace) -> str:
    """The error line when ``args.context`` is not in the kubeconfig (read here: milliseconds), else ``""``.

    A kubeconfig that cannot be read says nothing here (the caller goes on as before).
    """
    from tray.errors import TenderError
    from tray.kube.kubeconfig import load_kubeconfig

    try:
        known = load_kubeconfig(args.kubeconfig).contexts()
    except (TenderError, OSError):
        return ""
    if args.context in known:
        return ""
    return (f'tender: error: --context: context "{args.context}" is not in the kubeconfig '
            f"(contexts: {', '.join(known) or 'none'})")


def _current(client: Any) -> str | None:
    return next((c["name"] for c in client.get("/v1/contexts").get("contexts", []) if c.get("current")), None)


def proxy_on_engine(args: argparse.Namespace) -> int | None:
    """Start (or with ``args.stop`` stop) ``args.context``'s proxy in the running engine; the exit code.

    ``args``: ``kubeconfig``, ``context``, ``listen`` (None: the engine's
    default), ``stop``.  Returns None when no engine runs for this
    kubeconfig (the caller then runs the proxy in this process), except for
    ``--stop``, which has nothing to stop then (exit 1).  Prints one line on
    stdout (where it listens; what was stopped) or one on stderr (why not).
    Blocks for the engine's answers (at most 30 s).
    """
    from tray.api.client import ApiError, NoEngine, connect
    from tray.cli.verbs import NO_ENGINE_HINT

    try:
        client = connect(timeout=30.0)
    except ApiError as exc:  # an engine that does not answer (frozen), or refuses us
        if args.stop:
            print(f"tender: error: the running engine did not answer ({exc.message})", file=sys.stderr)
            return 1
        print(f"tender: the running engine did not answer ({exc.message}); running the proxy in this process",
              file=sys.stderr)
        return None
    if client is None:
        if args.stop and args.context is not None and (unknown := _not_in_kubeconfig(args)):
            print(unknown, file=sys.stderr)
            return 2
        if args.stop:
            print(f"tender: proxy --stop: no Tender engine is running, so no proxy of it to stop; a "
                  "'tender proxy' in a terminal stops with Ctrl-C", file=sys.stderr)
            return 1
        return None
    with client:
        try:
            engine = client.get("/v1/engine")
            if not _same_kubeconfig(args, engine):
                if args.stop:
                    print(f"tender: proxy --stop: the running engine uses another kubeconfig "
                          f"({os.pathsep.join(engine.get('kubeconfig', []))})", file=sys.stderr)
                    return 1
                print(f"tender: the running Tender engine uses another kubeconfig "
                      f"({os.pathsep.join(engine.get('kubeconfig', []))}), so the proxy runs here, in this process",
                      file=sys.stderr)
                return None
            context = args.context or _current(client)
            if context is None and args.stop:
                print("tender: error: the kubeconfig has no current context: name one with --context",
                      file=sys.stderr)
                return 2
            known = [c.get("name") for c in client.get("/v1/contexts").get("contexts", [])]
            if args.context is not None and args.context not in known:
                print(f'tender: error: --context: context "{args.context}" is not in the kubeconfig '
                      f"(contexts: {', '.join(map(str, known)) or 'none'})", file=sys.stderr)
                return 2
            if args.stop:
                client.delete(f"/v1/proxies/{context}")
                print(f"Stopped the cluster proxy for context {context}")
                return 0
            running = {p["context"]: p for p in client.get("/v1/proxies").get("proxies", [])}
            mine = running.get(context) if context else None
            if mine is not None and args.listen in (None, mine["listen"]):
                proxy = mine  # already there: say where
            else:
                body = {"context": context} if context else {}
                if args.listen is not None:
                    body["listen"] = args.listen
                proxy = client.post("/v1/proxies", body)
            print(started_line(proxy["context"], proxy["listen"]), flush=True)
            if proxy.get("warning"):
                print(warning_line(proxy["warning"]), file=sys.stderr)
            print(f"tender: it runs in the Tender engine (the tray or 'tender daemon'); "
                  f"'tender proxy --stop{'' if args.context is None else f' --context {context}'}' stops it",
                  file=sys.stderr)
            return 0
        except NoEngine:
            if args.stop:
                print(f"tender: proxy --stop: the engine stopped meanwhile; {NO_ENGINE_HINT}", file=sys.stderr)
                return 1
            return None
        except ApiError as exc:
            print(f"tender: error: {exc.message}", file=sys.stderr)
            if exc.status in (404, 409) or "ip_unprivileged_port_start" in exc.message:
                return 1  # --stop: no proxy to stop; a port in use or privileged; the context's proxy runs elsewhere
            return 2 if 400 <= exc.status < 500 and exc.status != 403 else 1
