"""``tender`` / ``tender tray``: claim the one engine, find a tray, then run the controller behind its icon.

The tray hosts the user's one engine (issue 13): it claims it
(:func:`tray.api.claim.acquire`), runs the
:class:`~tray.engine.manager.ForwardManager` and serves the control API on
the claimed socket (:class:`tray.api.server.ApiServer`, host ``"tray"``), so
``tender ls``/``stop``/``forward``… and the dashboard drive the forwards the
menu shows.

* **A second launch** finds the claim taken and asks its holder over the
  API (``POST /v1/activate``): a tray shows a notification ("Tender is
  already running"; an item on a StatusNotifier host cannot open its own
  menu), a ``tender daemon`` is named with its pid; one line, exit 0.  A
  holder that does not answer: one line, exit 1.
* On Linux with a StatusNotifier host the icon is our own D-Bus item
  (:class:`tray.ui.sni.SniView`, no PyGObject); on an XEmbed-only desktop,
  macOS and Windows it is a pystray icon (:class:`tray.ui.view.PystrayView`).
* **No tray here** (no StatusNotifier host, no XEmbed tray, a bus that does
  not answer): in a graphical session (``DISPLAY`` or ``WAYLAND_DISPLAY``)
  the engine runs as ``tender daemon`` would (host ``"daemon"``, the
  profiles' autostart) and the dashboard opens in the browser instead of a
  menu, until SIGINT/SIGTERM (exit 0).  Without one: one line on stderr,
  exit 2.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from tray.ui.host import HINT, SNI, check_host, wait_for_host

log = logging.getLogger(__name__)

#: Seconds a second launch waits for the running engine's answer (it may be starting: the
#: first launch serves the API once its tray host is found, up to ``PROBE_TIMEOUT`` later).
ACTIVATE_TIMEOUT = 5.0
#: Seconds a second launch retries a socket that does not accept yet (the holder is binding it).
CONNECT_RETRY = 2.0


def run_tray(kubeconfig: str | None = None, profiles: str | None = None) -> int:
    """Run the tray (and the engine) until Quit; returns the exit status.

    0 after Quit, SIGTERM or SIGINT, and for a second launch whose engine
    answered; 1 when another process holds the engine but does not answer;
    2 when there is no tray and no graphical session.  Blocks.
    """
    from tray.ui.logs import setup_tray_logging

    log_file = setup_tray_logging()
    from tray.api import claim as claims

    try:
        mine = claims.acquire()  # one engine per user (tray.api.claim)
    except OSError as exc:  # the runtime dir is not usable: run anyway, unreachable by the verbs
        log.warning("running without the one-engine claim (the tender verbs cannot reach this tray): %s", exc)
        mine = _Unclaimed()
    if mine is None:  # another process hosts the engine: ask it to show itself
        return _tell_running()
    wait = _seconds(os.environ.get("TENDER_TRAY_WAIT"))
    host = wait_for_host(wait) if wait else check_host()
    profiles_path = os.path.abspath(profiles or os.environ.get("TENDER_PROFILES") or _default_profiles())
    if host.backend is None:
        return _without_tray(host.reason, mine, kubeconfig, profiles_path)

    from tray.engine.manager import ForwardManager
    from tray.ui.bus import BusClosed, BusUnavailable
    from tray.ui.controller import Controller
    from tray.ui.dialogs import Dialogs

    launch_args = [*(["--kubeconfig", os.path.abspath(kubeconfig)] if kubeconfig else []),
                   *(["--profiles", os.path.abspath(profiles)] if profiles else [])]
    controller: Controller | None = None

    def dispatch(action: Any) -> None:
        if controller is not None:
            controller.dispatch(action)

    def activated() -> None:  # the API thread: a notification is queued, nothing waits
        log.info("another launch of Tender asked this one to show itself")
        if controller is not None:
            _already_running(controller)

    try:
        view = make_view(host.backend, dispatch)
    except BusUnavailable as exc:  # the bus went away since the check
        return _without_tray(str(exc), mine, kubeconfig, profiles_path)
    manager = ForwardManager(kubeconfig)
    api = _LateApi(manager, profiles_path, activated, mine.listener)
    unregistered: str | None = None
    try:
        controller = Controller(manager, view, Dialogs(), make_notifier(view, dispatch),
                                profiles_path=profiles_path, launch_args=launch_args,
                                dashboard_url=api.dashboard_url, on_close=api.close)

        def setup() -> None:
            # Once the icon is registered (the view calls this on a thread of its own), after the
            # menu's first state: the API server (aiohttp's import and its thread) delays neither.
            # A second launch meanwhile waits in the socket's backlog (ACTIVATE_TIMEOUT).
            try:
                controller.start()
            finally:
                api.start()

        if hasattr(view, "on_menu_shown"):
            view.on_menu_shown = controller.menu_shown
        log.info("tray starting (backend %s, kubeconfig %s, profiles %s, log %s, API %s)",
                 host.backend or "default", manager.kubeconfig, profiles_path, log_file, mine.socket_path)
        # SniView: on Quit, SIGTERM (log out) or SIGINT alike, the controller closes while the loop still
        # serves the bus, so its notifications' cards are closed (CloseNotification) before the connection goes.
        closing = {"before_close": controller.close} if host.backend == SNI else {}
        try:
            view.run(setup, **closing)
        except BusClosed as exc:  # the session ended under the registration: end as when it ends later
            log.warning("%s; the tray icon is gone", exc)
        except BusUnavailable as exc:  # the item could not register: nothing started yet
            unregistered = str(exc)
    finally:
        if controller is not None:
            controller.close()  # closes the API too (on_close), before the engine goes
        api.close()
        manager.shutdown()
        mine.close()
    if unregistered is None:
        return 0
    # The item could not register: the engine runs without it.  The API's listener closed with
    # the server above, so the claim is taken again (with a new socket).
    try:
        again = claims.acquire() if mine.listener is not None else _Unclaimed()
    except OSError as exc:
        log.warning("running without the one-engine claim: %s", exc)
        again = _Unclaimed()
    if again is None:  # another launch took it meanwhile
        return _tell_running()
    return _without_tray(unregistered, again, kubeconfig, profiles_path)


class _LateApi:
    """The tray's control API, started once the icon is up (:meth:`start`); safe to use before and after.

    ``dashboard_url`` waits for the start (up to 10 s: the menu's item can be
    clicked a moment before it) and raises ``RuntimeError`` if there is no
    API then; ``close`` before the start does nothing.
    """

    def __init__(self, manager: Any, profiles_path: str, on_activate: Callable[[], None], listener: Any) -> None:
        self._args = (manager, profiles_path, on_activate, listener)
        self._server: Any = None
        self._lock = threading.Lock()
        self._closed = False
        self._started = threading.Event()

    def start(self) -> None:
        """Start the API on the claimed socket (blocks up to 10 s); its failure is logged, not raised."""
        try:
            self._start()
        finally:
            self._started.set()

    def _start(self) -> None:
        from tray.api.server import ApiServer

        manager, profiles_path, on_activate, listener = self._args
        with self._lock:  # held while it starts (up to 10 s): a close meanwhile waits for it
            if self._closed or self._server is not None:
                return
            server = ApiServer(manager, host="tray", profiles_path=profiles_path, on_activate=on_activate)
            try:
                server.start(listener)
            except Exception:  # noqa: BLE001 - the tray goes on without its API: say so
                log.exception("the control API could not start: the tender verbs cannot reach this tray")
                server.close()
                return
            self._server = server

    def dashboard_url(self) -> str:
        self._started.wait(10.0)
        if self._server is None:
            raise RuntimeError("the control API is not running")
        return self._server.dashboard_url()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            server = self._server
        if server is not None:
            server.close()


def _default_profiles() -> str:
    from tray.profiles import default_profiles_path

    return str(default_profiles_path())


class _Unclaimed:
    """What the tray holds when the runtime directory cannot be used: no socket, nothing to release."""

    listener = None
    socket_path = None

    def close(self) -> None:
        pass


def _tell_running() -> int:
    """A second launch: ask the engine's host to show itself, say which it is (one line); the exit status."""
    from tray.api.client import ApiError, EngineClient, NoEngine

    deadline = time.monotonic() + CONNECT_RETRY
    problem = ""
    while True:
        try:
            with EngineClient(timeout=ACTIVATE_TIMEOUT) as client:
                host = client.post("/v1/activate").get("host")
                engine = client.get("/v1/engine") if host != "tray" else {}
        except NoEngine as exc:  # the holder is a moment from listening, or has no socket at all
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            problem = str(exc)
        except ApiError as exc:
            problem = exc.message
        break
    if problem:
        log.info("another Tender holds the engine and does not answer: %s", problem)
        print(f"tender: Tender is already running but does not answer ({problem}); try again in a moment",
              file=sys.stderr)
        return 1
    log.info("another Tender (%s) hosts the engine and was told; this launch ends", host)
    if host == "tray":
        print("tender: Tender is already running (its icon is in the system tray)")
    else:
        print(f"tender: Tender is already running as 'tender daemon' (pid {engine.get('pid')}), without a tray: "
              "'tender ls' lists its forwards, 'tender dashboard' opens its dashboard")
    return 0


def _already_running(controller: Any) -> None:
    """What a second launch gets from this one: a notification (a tray item cannot open its own menu)."""
    controller.notifications.send("Tender is already running", "Its menu is behind the Tender icon in the panel.",
                                  always=True)


def graphical_session(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a graphical session (``DISPLAY`` or ``WAYLAND_DISPLAY`` set), where a browser can open."""
    env = os.environ if env is None else env
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def _without_tray(reason: str, mine: Any, kubeconfig: str | None, profiles_path: str) -> int:
    """No tray here: in a graphical session, the engine with its dashboard in the browser; else exit 2.

    Holds ``mine`` (the claim) until SIGINT/SIGTERM, then releases it; returns 0 (2: no graphical session).
    """
    if not graphical_session():
        mine.close()
        return _no_tray(reason)
    import webbrowser

    from tray.api.host import serve_headless

    def ready(server: Any) -> None:
        url = server.dashboard_url()
        address = url.split("?", 1)[0]  # the secret is for the browser only, never printed
        print(f"tender: no system tray here: {reason}; Tender runs without an icon: dashboard at {address} "
              "('tender dashboard' opens it; Ctrl-C to stop)", file=sys.stderr, flush=True)
        log.warning("no system tray (%s): the engine runs without an icon, dashboard on %s", reason, address)
        # A BROWSER command may wait for the browser to exit: not on this thread.
        threading.Thread(target=_open_browser, args=(webbrowser, url), name="tender-browser", daemon=True).start()

    return serve_headless(mine, kubeconfig, profiles_path, on_ready=ready)


def _open_browser(webbrowser: Any, url: str) -> None:
    try:
        if not webbrowser.open(url):
            log.warning("no web browser found for the dashboard: 'tender dashboard --print-url' prints its address")
    except Exception as exc:  # noqa: BLE001 - a broken BROWSER setting: say so, keep the engine
        log.warning("could not open the dashboard in a browser: %s", exc)


def make_view(backend: str, dispatch: Callable[[Any], None]) -> Any:
    """The view for ``backend`` (a :func:`tray.ui.host.check_host` answer); clicks go to ``dispatch``.

    ``"sni"`` connects to the session bus (up to 2 s) and raises
    :class:`tray.ui.bus.BusUnavailable` if it cannot; any other value is a
    pystray backend, set in ``PYSTRAY_BACKEND`` before pystray is imported.
    """
    if backend == SNI:
        from tray.ui.sni import SniView

        return SniView(dispatch)
    if backend:
        os.environ["PYSTRAY_BACKEND"] = backend  # read by pystray at import
    from tray.ui.view import PystrayView

    return PystrayView(backend, dispatch)


def make_notifier(view: Any, dispatch: Callable[[Any], None]) -> Any:
    """The notifier for this view; a click on a notification's button goes to ``dispatch``.

    Linux: ``org.freedesktop.Notifications`` with actions (:mod:`tray.ui.dbusnotify`), on the
    :class:`~tray.ui.sni.SniView`'s own connection, or on one of its own for pystray's view (connecting
    blocks up to 2 s; no bus: one warning, then silence).  macOS and Windows: plyer.
    """
    if sys.platform.startswith("linux"):
        from tray.ui.dbusnotify import linux_notifier

        return linux_notifier(dispatch, getattr(view, "bus", None), getattr(view, "loop", None))
    from tray.ui.notify import PlyerNotifier

    return PlyerNotifier()


def _no_tray(reason: str) -> int:
    print(f"tender: no system tray here: {reason}; `tender daemon` runs Tender without one ('tender ls', "
          f"'tender dashboard'), or {HINT}", file=sys.stderr)
    log.info("not starting the tray: %s", reason)
    return 2


def _seconds(text: str | None) -> float:
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        return 0.0
