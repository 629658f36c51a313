"""Hosting the engine: the claim, the engine, its API, and (for ``tender daemon``) the profiles' autostart.

The tray app (:func:`tray.ui.app.run_tray`) and ``tender daemon``
(:func:`run_daemon`) host the one engine the same way: claim it
(:mod:`tray.api.claim`), start a :class:`~tray.engine.manager.ForwardManager`,
serve the API on the claimed socket (:class:`~tray.api.server.ApiServer`).
Nothing here starts an engine that nobody asked for.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from tray.api import claim as claims
from tray.api.server import ApiServer

log = logging.getLogger(__name__)

__all__ = ["run_daemon", "serve_headless", "describe_running", "start_autostart", "ALREADY_RUNNING"]

#: ``tender daemon``'s exit status when another engine holds the claim (the
#: systemd unit's ``RestartPreventExitStatus=``: no restart loop beside a tray).
ALREADY_RUNNING = 3


def describe_running() -> str:
    """One phrase naming the engine that holds the claim ("the tray app, pid 42"), or "" if it does not answer.

    Blocks up to 2 s.
    """
    from tray.api.client import ApiError, NoEngine, connect

    try:
        client = connect(timeout=2.0)
    except ApiError:
        return ""
    if client is None:
        return ""
    try:
        info = client.get("/v1/engine")
    except (NoEngine, ApiError):
        return ""
    finally:
        client.close()
    what = "the tray app" if info.get("host") == "tray" else "'tender daemon'"
    return f"{what}, pid {info.get('pid')}"


def start_autostart(manager: Any, profiles_path: str) -> list[str]:
    """Start the profiles with ``autostart: true``; returns one line per profile that could not start.

    A broken profiles file is one line too; the others start.  Blocks for
    the file and kubeconfig reads (milliseconds; an exec plugin may run).
    """
    from tray.errors import UsageError
    from tray.profiles import load_profiles
    from tray.profiles.run import start_profiles

    try:
        pf = load_profiles(profiles_path, missing_ok=True)
    except UsageError as exc:
        return [str(exc)]
    _started, failed = start_profiles(manager, [p for p in pf.profiles if p.autostart],
                                      lambda: next((c.id for c in manager.clusters() if c.current), None))
    return [f"profile {p.name} could not start: {exc}" for p, exc in failed]


def run_daemon(kubeconfig: str | None = None, profiles: str | None = None) -> int:
    """``tender daemon``: host the engine without a tray until SIGINT/SIGTERM; returns the exit code.

    0 after a signal; :data:`ALREADY_RUNNING` (3) when another engine holds
    the claim (one line names it); 1 when the runtime directory cannot be
    used.  Blocks.
    """
    from tray.profiles import default_profiles_path

    try:
        mine = claims.acquire()
    except OSError as exc:
        print(f"tender: error: cannot use {claims.runtime_dir()}: {exc}", file=sys.stderr)
        return 1
    if mine is None:
        holder = describe_running()
        print(f"tender: an engine is already running ({holder or 'it does not answer'}); "
              "'tender ls' lists its forwards", file=sys.stderr)
        return ALREADY_RUNNING
    profiles_path = os.path.abspath(profiles) if profiles else str(default_profiles_path())
    return serve_headless(mine, kubeconfig, profiles_path)


def serve_headless(mine: claims.Claim, kubeconfig: str | None, profiles_path: str, *,
                   on_ready: Callable[[ApiServer], None] | None = None) -> int:
    """Host the engine without a tray on the claim ``mine`` until SIGINT/SIGTERM; returns 0.

    Starts the autostart profiles, then serves the API (so the first answer
    already lists them), then calls ``on_ready(server)`` (the tray without a
    tray host opens the dashboard there).  Releases the claim at the end.
    Signals are caught only on the main thread.  Blocks.
    """
    from tray.engine.manager import ForwardManager

    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    manager = ForwardManager(kubeconfig)
    server = ApiServer(manager, host="daemon", profiles_path=profiles_path)
    try:
        manager.subscribe(_log_event)
        for line in start_autostart(manager, profiles_path):
            log.error("%s", line)
        server.start(mine.listener)
        log.info("engine running (pid %s): API on %s, profiles %s, kubeconfig %s", os.getpid(),
                    mine.socket_path, profiles_path, manager.kubeconfig)
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(1.0):
            pass
        log.info("stopping: %d forwards", len(manager.list()))
    finally:
        server.close()
        manager.shutdown()
        mine.close()
    return 0


def _log_event(event: Any) -> None:
    """The daemon's log (stderr, the journal under systemd): one line per status change."""
    session = getattr(event, "session", None)
    if session is None or hasattr(event, "suppressed"):
        return
    name = session.profile or session.target
    where = f"{session.cluster_id}/{session.namespace}"
    if session.status == "active":
        log.info("%s (%s): forwarding %s:%s -> %s (pod %s)", name, where, session.address, session.local_port,
                    session.container_port, session.pod_name)
    elif session.status in ("reconnecting", "error"):
        log.warning("%s (%s): %s: %s", name, where, session.status, session.status_reason)
