"""The tray's brain: engine events in, menu and notifications out, clicks to actions.

Threads (none of them the UI thread does any real work on):

* engine thread → ``_on_event``: only feeds the notifier and pokes the coalescer;
* coalescer thread → ``refresh``: snapshot, ``build_menu`` (pure), ``view.show``;
* UI thread → ``dispatch``: hands the click's action to the worker pool;
  ``menu_shown`` (the host is about to show the menu): pokes the coalescer, so
  the counters, which raise no engine event, are fresh when the menu is looked at;
* counters thread (``tender-counters``, only for :data:`MENU_LIVE_FOR` seconds after
  the menu was last shown): once a second, pokes the coalescer if a forward's
  counters moved, so an open menu's counters stay live;
* worker pool → the action's handler (``_do_*``, one per :class:`ActionKind`,
  in the table ``_handlers``): engine calls, dialogs, file writes, resource lists;
* file watcher thread → profiles and kubeconfig reloads.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import webbrowser
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from tray.errors import TenderError, UsageError
from tray.kube.kubeconfig import ClusterInfo
from tray.engine.browse import Browser
from tray.engine.manager import ListEvent, StatusEvent
from tray.domain.portspec import PortSpec
from tray.profiles import Profile, add_profile, ensure_profiles_file, load_profiles
from tray.profiles.run import start_profile, stop_profile
from tray.domain.targets import SHORT_NAMES, Target
from tray.ui import autostart, labels, system
from tray.ui.coalesce import DEFAULT_INTERVAL, Coalescer
from tray.ui.dialogs import PortRequest
from tray.ui.filewatch import FileWatcher
from tray.ui.icon import IconState
from tray.ui.loader import ResourceLoader
from tray.ui.menu import MenuState, build_menu, icon_of, status_text
from tray.ui.menu_profiles import profile_sessions
from tray.ui.model import Action, ActionKind, Item
from tray.ui.notify import Notifications, Notifier
from tray.ui.resources import Failed, ResourceStore
from tray.ui.settings import Settings, load_settings, save_settings, settings_path
from tray.domain.spec import ForwardSpec

log = logging.getLogger(__name__)


class View(Protocol):
    def show(self, menu: Item, state: IconState, count: int, tooltip: str) -> None: ...
    def copy_text(self, text: str) -> None: ...
    def stop(self) -> None: ...


class Dialogs(Protocol):
    def confirm(self, title: str, text: str, ok: str, cancel: str = "Cancel") -> bool: ...
    def ask_port(self, request: PortRequest) -> tuple[int | str, int] | None: ...
    def ask_text(self, title: str, prompt: str) -> str | None: ...


#: What a failed action is called in its notification.
FAILURE_TITLES: dict[ActionKind, str] = {
    ActionKind.FORWARD: "Could not start the forward", ActionKind.CUSTOM_PORT: "Could not start the forward",
    ActionKind.PROFILE_START: "Could not start the profile", ActionKind.GROUP_START: "Could not start the group",
    ActionKind.STOP: "Could not stop the forward", ActionKind.RETRY: "Could not retry the forward",
    ActionKind.SAVE_PROFILE: "Could not save the profile", ActionKind.EDIT_PROFILES: "Could not open the profiles file",
    ActionKind.OPEN_URL: "Could not open the browser", ActionKind.COPY: "Could not copy the address",
    ActionKind.TOGGLE_AUTOSTART: "Could not change Start at login",
    ActionKind.OPEN_DASHBOARD: "Could not open the dashboard",
    ActionKind.TOGGLE_PROXY: "Could not start the cluster proxy",
    ActionKind.NAMESPACE_GROUP: "Could not forward every Service",
}


#: Seconds after the host last showed the menu (or a submenu) during which moving counters refresh it.
#: Hosts tell when a menu opens (AboutToShow) but not always when it closes (libdbusmenu-gtk: only submenus').
MENU_LIVE_FOR = 30.0
#: Seconds between two looks at the counters while the menu may be open.
COUNTER_TICK = 1.0


def privileged_below() -> int:
    """Local ports below this need privileges here (Linux: root or the sysctl says otherwise)."""
    if not sys.platform.startswith("linux") or os.geteuid() == 0:
        return 0
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text().strip())
    except (OSError, ValueError):
        return 1024


class Controller:
    """The tray behind one icon: ``manager`` (the engine), ``view``, ``dialogs``, ``notifier``.

    ``profiles_path``: the profiles file; ``settings_file``: default the user's;
    ``launch_args``: this launch's options (recorded in the login entry);
    ``refresh_interval``, ``watch_interval``: seconds between two menu rebuilds
    at most, and between two looks at the files.  ``dashboard_url``: returns
    the engine's dashboard URL with its secret (blocking up to seconds; the
    tray passes :meth:`tray.api.server.ApiServer.dashboard_url`); without it
    the menu has no "Open dashboard…".  ``on_close``: called once by
    :meth:`close`, before the engine is shut down (the tray closes its
    control API there).
    """

    def __init__(self, manager: Any, view: View, dialogs: Dialogs, notifier: Notifier, *,
                 profiles_path: str | os.PathLike[str], settings_file: str | os.PathLike[str] | None = None,
                 launch_args: Sequence[str] = (), refresh_interval: float = DEFAULT_INTERVAL,
                 watch_interval: float = 2.0, dashboard_url: Callable[[], str] | None = None,
                 on_close: Callable[[], None] | None = None) -> None:
        self.manager = manager
        self.dashboard_url = dashboard_url
        self._on_close = on_close
        self.view = view
        self.dialogs = dialogs
        self.profiles_path = Path(profiles_path)
        self.settings_file = Path(settings_file) if settings_file else settings_path()
        self.launch_args = list(launch_args)
        self.settings: Settings = load_settings(self.settings_file)
        self.profiles: tuple[Profile, ...] = ()
        self.profiles_error: str | None = None
        self.clusters: tuple[ClusterInfo, ...] = ()
        self.kubeconfig_error: str | None = None
        #: Profiles that could not start (name -> reason), shown in the menu until
        #: the profile starts or stops, or leaves the profiles file.
        self.profile_failures: dict[str, str] = {}
        self._failures_lock = threading.Lock()
        self.privileged_below = privileged_below()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="tender-work")
        self.coalescer = Coalescer(self.refresh, refresh_interval)
        self.store = ResourceStore(on_change=self.coalescer.poke)
        self.loader = ResourceLoader(Browser(manager), self.store, self.pool.submit)
        self.notifications = Notifications(notifier, enabled=lambda: self.settings.notifications)
        self.files = FileWatcher(watch_interval)
        self._closed = False
        self.menu_live_for = MENU_LIVE_FOR
        self.counter_tick = COUNTER_TICK
        self._live_lock = threading.Lock()
        self._live_until = 0.0
        self._live_thread: threading.Thread | None = None
        self._live_stop = threading.Event()
        #: What each action does: every ActionKind has its handler (checked here).
        self._handlers: dict[ActionKind, Callable[..., None]] = {
            ActionKind.STOP: self._do_stop,
            ActionKind.RETRY: self._do_retry,
            ActionKind.REMOVE: self._do_remove,
            ActionKind.SAVE_PROFILE: self._do_save_profile,
            ActionKind.OPEN_URL: self._do_open_url,
            ActionKind.COPY: self._do_copy,
            ActionKind.FORWARD: self._do_forward,
            ActionKind.CUSTOM_PORT: self._do_custom_port,
            ActionKind.LOAD_NAMESPACE: self._do_load_namespace,
            ActionKind.SEARCH: self._do_search,
            ActionKind.REFRESH_CLUSTER: self._do_refresh_cluster,
            ActionKind.STOP_CLUSTER: self._do_stop_cluster,
            ActionKind.TOGGLE_PROXY: self._do_toggle_proxy,
            ActionKind.NAMESPACE_GROUP: self._do_namespace_group,
            ActionKind.PROFILE_START: self._do_profile_start,
            ActionKind.PROFILE_STOP: self._do_profile_stop,
            ActionKind.GROUP_START: self._do_group_start,
            ActionKind.GROUP_STOP: self._do_group_stop,
            ActionKind.EDIT_PROFILES: self._do_edit_profiles,
            ActionKind.OPEN_DASHBOARD: self._do_open_dashboard,
            ActionKind.TOGGLE_AUTOSTART: self._do_toggle_autostart,
            ActionKind.TOGGLE_NOTIFICATIONS: self._do_toggle_notifications,
            ActionKind.QUIT: self._do_quit,
        }
        missing = set(ActionKind) - set(self._handlers)
        if missing:
            raise RuntimeError(f"actions without a handler: {sorted(k.value for k in missing)}")

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Load everything and start autostart profiles (not on the UI thread: it reads files)."""
        self._sync_autostart()
        self.manager.subscribe(self._on_event)
        # The files are stamped before they are read: an edit made while they are read is seen.
        self.files.watch([str(self.profiles_path)], self.reload_profiles)
        self.files.watch([p for p in self.manager.kubeconfig.split(os.pathsep) if p], self.reload_clusters)
        self.reload_profiles()
        self.reload_clusters()
        self.files.start()
        for p in self.profiles:
            if p.autostart:
                self._guarded(ActionKind.PROFILE_START, self.start_profile, p)
        self.coalescer.poke()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._live_stop.set()
        self.manager.unsubscribe(self._on_event)
        self.files.close()
        self.coalescer.close()
        self.notifications.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._on_close is not None:
            try:
                self._on_close()
            except Exception:  # closing anyway
                log.exception("closing the control API failed")

    # ------------------------------------------------------------ events
    def _on_event(self, event: StatusEvent | ListEvent) -> None:
        """Engine thread: hand over, return at once."""
        if isinstance(event, StatusEvent):
            self.notifications.feed(event.session)
        elif isinstance(event, ListEvent):
            self.notifications.forget_except({s.id for s in event.sessions})
        else:
            return  # a ConnectionEvent: the menu does not show those
        self.coalescer.poke()

    def menu_state(self) -> MenuState:
        return MenuState(
            sessions=tuple(self.manager.list()), profiles=self.profiles, profiles_error=self.profiles_error,
            clusters=self.clusters, kubeconfig_error=self.kubeconfig_error, trees=self.store.snapshot(),
            notifications=self.settings.notifications, start_at_login=self.settings.start_at_login,
            privileged_below=self.privileged_below, profile_failures=self._failures(),
            dashboard=self.dashboard_url is not None, proxies=self._proxies(), groups=self._groups(),
            grouped_profiles=frozenset(g.profile for g in getattr(self.manager, "groups", list)() if g.profile),
        )

    def _groups(self) -> dict[tuple[str, str], int]:
        """The namespace groups running: (context, namespace) -> their member forwards (never blocks)."""
        groups = getattr(self.manager, "groups", None)  # an engine without groups has none
        return {(g.cluster_id, g.namespace): len(g.members) for g in groups()} if groups is not None else {}

    def _proxies(self) -> dict[str, str]:
        """The cluster proxies running: context -> where it listens (none from an engine without them)."""
        proxies = getattr(self.manager, "proxies", None)
        return {p.context: p.listen for p in proxies()} if proxies is not None else {}

    def menu_shown(self) -> None:
        """The host is about to show the menu or a submenu (any thread; returns at once).

        The counters (connections, bytes) change without an engine event:
        the menu is rebuilt now from a fresh snapshot, and for the next
        ``menu_live_for`` seconds (:data:`MENU_LIVE_FOR`) once a second when
        a forward's counters moved, so an open menu stays live.  Every rebuild
        is coalesced with the others (at most one per ``refresh_interval``),
        and nothing is sent to the host when nothing it shows changed; while
        the menu is closed nothing runs.
        """
        if self._closed:
            return
        self.coalescer.poke()
        with self._live_lock:
            self._live_until = time.monotonic() + self.menu_live_for
            if self._live_thread is None:
                self._live_thread = threading.Thread(target=self._follow_counters, name="tender-counters",
                                                     daemon=True)
                self._live_thread.start()

    def _counters(self) -> tuple[tuple[Any, ...], ...]:
        return tuple((s.id, getattr(s, "connections", 0), getattr(s, "connections_total", 0),
                      getattr(s, "bytes_in", 0), getattr(s, "bytes_out", 0), getattr(s, "last_connection_error", ""))
                     for s in self.manager.list())

    def _follow_counters(self) -> None:
        """The counters thread: poke the coalescer when counters moved, until the menu was not shown for a while."""
        seen = self._counters()
        while not self._live_stop.wait(self.counter_tick):
            with self._live_lock:
                if time.monotonic() >= self._live_until:
                    self._live_thread = None
                    return
            now = self._counters()
            if now != seen:
                seen = now
                self.coalescer.poke()
        with self._live_lock:
            self._live_thread = None

    def refresh(self) -> None:
        """Coalescer thread: rebuild the menu and the icon from a fresh snapshot."""
        state = self.menu_state()
        icon, count = icon_of(state)
        self.view.show(build_menu(state), icon, count, f"Tender — {status_text(state)}")

    # ------------------------------------------------------------ files
    def reload_profiles(self) -> None:
        try:
            pf = load_profiles(self.profiles_path, missing_ok=True)
        except UsageError as exc:
            # Keep the last good profiles; show where the file is wrong.
            self.profiles_error = str(exc).replace(str(self.profiles_path), self.profiles_path.name, 1)
            log.warning("profiles file has a problem: %s", exc)
        else:
            self.profiles, self.profiles_error = pf.profiles, None
            names = {p.name for p in pf.profiles}
            with self._failures_lock:
                for gone in set(self.profile_failures) - names:
                    del self.profile_failures[gone]
                    self.notifications.profile_ok(gone)  # its card's Retry would find no profile
        self.coalescer.poke()

    def reload_clusters(self) -> None:
        try:
            clusters = tuple(self.manager.clusters())
        except UsageError as exc:
            # A kubeconfig caught mid-write, or broken: keep what we had, say why.
            self.kubeconfig_error = str(exc)
            self.coalescer.poke()
            return
        first = not self.clusters and self.kubeconfig_error is None
        old = {c.id for c in self.clusters}
        new = {c.id for c in clusters}
        self.clusters, self.kubeconfig_error = clusters, None
        for cid in sorted(old - new) if not first else []:
            stopped = self.manager.stop_cluster(cid)
            self.store.forget(cid)
            self.notifications.send(f"Context {cid} was removed from the kubeconfig",
                                     f"{labels.plural(len(stopped), 'forward')} stopped" if stopped
                                     else "It had no forwards.", always=True)
        # New contexts, and those whose last load failed: the kubeconfig
        # changed, so the failure (say, TLS material read mid-rewrite) may be
        # gone; an error is never kept once the file reads.
        failed = {cid for cid, tree in self.store.snapshot().items() if isinstance(tree.namespaces, Failed)}
        for cid in sorted((new - old) | (failed & new)):
            self.loader.load_cluster(cid, prefer=self._namespaces_in_use(cid))
        self.coalescer.poke()

    def _namespaces_in_use(self, cluster: str) -> list[str]:
        current = next((c.id for c in self.clusters if c.current), None)
        used = [s.namespace for s in self.manager.list() if s.cluster_id == cluster]
        used += [p.namespace for p in self.profiles if p.namespace and (p.context or current) == cluster]
        return used

    # ------------------------------------------------------------ actions
    def dispatch(self, action: Action) -> Future[None]:
        """UI thread: queue the click's work (its kind's handler) and return at once.

        Returns the work's future (done when the handler returned; its result is
        always None).  A failure is logged and notified (``FAILURE_TITLES``),
        never raised.
        """
        return self.pool.submit(self._guarded, action.kind, self._handlers[action.kind], *action.args)

    def _guarded(self, kind: ActionKind, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except TenderError as exc:
            log.warning("%s: %s", kind.value, exc)
            self._notify_failure(kind, exc, args)
        except Exception as exc:
            log.exception("%s failed", kind.value)
            self._notify_failure(kind, exc, args)
        finally:
            self.coalescer.poke()

    def _notify_failure(self, kind: ActionKind, exc: Exception, args: tuple[Any, ...]) -> None:
        """A profile's start: its own card (named, with Retry; one per profile); else ``FAILURE_TITLES``'s."""
        if kind is ActionKind.PROFILE_START and args:
            name = args[0].name if isinstance(args[0], Profile) else str(args[0])
            self.notifications.profile_failed(name, exc)
        else:
            self.notifications.send(FAILURE_TITLES.get(kind, "Tender"), labels.shorten(str(exc), 200), always=True)

    def _do_stop(self, session_id: str) -> None:
        self.manager.stop(session_id)

    def _do_retry(self, session_id: str) -> None:
        self.manager.retry(session_id)

    def _do_remove(self, session_id: str) -> None:
        self.manager.remove(session_id)

    def _do_open_url(self, url: str) -> None:
        system.open_url(url)

    def _do_open_dashboard(self) -> None:
        """The engine's dashboard in the browser (a worker thread: the URL may take a moment, a browser command may wait)."""
        if self.dashboard_url is None:
            raise UsageError("this tray serves no dashboard")
        url = self.dashboard_url()  # carries the secret: never in a log line or a notification
        if not webbrowser.open(url):
            raise OSError("no web browser found; 'tender dashboard --print-url' prints the dashboard's address")

    def _do_copy(self, text: str) -> None:
        self.view.copy_text(text)

    def _do_forward(self, cluster: str, namespace: str, kind: str, name: str, port: int | str,
                    local: int | None, protocol: str = "TCP") -> None:
        self.manager.start(ForwardSpec(cluster, namespace, Target(kind, name), port, local_port=local,
                                       protocol=protocol))

    def _do_custom_port(self, cluster: str, namespace: str, kind: str, name: str,
                        ports: tuple[tuple[int, str | None], ...]) -> None:
        used = tuple(sorted({s.local_port for s in self.manager.list() if s.status in labels.RUNNING and s.local_port}))
        request = PortRequest(f"{SHORT_NAMES[kind]}/{name}", f"{cluster} / {namespace}", tuple(ports), used)
        answer = self.dialogs.ask_port(request)
        if answer is not None:
            remote, local = answer
            self.manager.start(ForwardSpec(cluster, namespace, Target(kind, name), remote, local_port=local))

    def _do_load_namespace(self, cluster: str, namespace: str) -> None:
        self.loader.load_namespace(cluster, namespace)

    def _do_search(self, cluster: str) -> None:
        """Ask for a part of a name; the hits appear under "Results for …" in the context's submenu."""
        text = self.dialogs.ask_text(f"Search {cluster} — Tender",
                                     f"Pods, services and workloads in {cluster} whose name contains:")
        if text and text.strip():
            self.loader.search(cluster, text)

    def _do_refresh_cluster(self, cluster: str) -> None:
        self.reload_clusters()
        self.loader.load_cluster(cluster, prefer=self._namespaces_in_use(cluster))

    def _do_stop_cluster(self, cluster: str) -> None:
        running = [s for s in self.manager.list() if s.cluster_id == cluster and s.status in labels.RUNNING]
        if running and not self.dialogs.confirm(
                f"Stop all forwards in {cluster}?",
                f"{labels.plural(len(running), 'forward')} in {cluster} will stop.", "Stop all", "Cancel"):
            return
        self.manager.stop_cluster(cluster)

    def _do_toggle_proxy(self, cluster: str) -> None:
        """Start the context's cluster proxy on the first free port of 127.0.0.1:1080-1099, or stop it.

        A worker thread: the start reads the kubeconfig and binds.  A port
        or context conflict raises :class:`~tray.api.proxies.ProxyConflict`
        (a notification, as every failed click).
        """
        from tray.api import proxies

        if cluster in self._proxies():
            proxies.stop_proxy(self.manager, cluster)
        else:
            info = proxies.start_proxy(self.manager, cluster)
            log.info("cluster proxy for %s on %s", cluster, info.listen)

    def _do_namespace_group(self, cluster: str, namespace: str) -> None:
        """Forward every Service of the namespace (a namespace group: each on its own 127.x.y.z, followed),
        or stop the group(s) running there.

        A worker thread: the start reads the kubeconfig (milliseconds; it
        does not wait for the cluster), the stop waits for the members'
        listeners to close.  An unknown context raises :class:`UsageError`
        (a notification, as every failed click).
        """
        from tray.domain.servicegroup import NamespaceSpec

        running = [g.id for g in self.manager.groups() if (g.cluster_id, g.namespace) == (cluster, namespace)]
        if running:
            for gid in running:
                try:
                    self.manager.stop(gid)
                except UsageError:
                    pass  # stopped meanwhile
            return
        gid = self.manager.start_group(NamespaceSpec(cluster, namespace))
        log.info("forwarding every Service of %s/%s (group %s)", cluster, namespace, gid)

    # profiles
    def _current_context(self) -> str | None:
        return next((c.id for c in self.clusters if c.current), None)

    def start_profile(self, p: Profile) -> None:
        """Start a forward for each of ``p``'s ports that has none from this profile yet.

        Blocks for the kubeconfig read (milliseconds).  Raises what
        ``manager.start`` raises (:class:`UsageError`: no kubeconfig, an
        unknown context, a local port taken); the reason is then kept in
        ``profile_failures[p.name]`` (the menu shows it with Retry) until
        the profile starts or stops.  Ports already forwarded for the
        profile are left as they are, so a Retry after a partial start
        starts only the rest.
        """
        try:
            self._start_profile_ports(p)
        except Exception as exc:
            self._set_failure(p.name, str(exc) or type(exc).__name__)
            raise
        self._set_failure(p.name, None)

    def _start_profile_ports(self, p: Profile) -> None:
        context = p.context or self._current_context()
        if context is None:
            # The kubeconfig may have appeared (or changed) since the watcher
            # last looked: a Retry right after fixing it must see it.
            self.reload_clusters()
            context = p.context or self._current_context()
        start_profile(self.manager, p, context)

    def _set_failure(self, name: str, reason: str | None) -> None:
        with self._failures_lock:
            if reason is None:
                self.profile_failures.pop(name, None)
            else:
                self.profile_failures[name] = reason
        if reason is None:  # started or stopped: a "could not start" card is stale
            self.notifications.profile_ok(name)

    def _failures(self) -> dict[str, str]:
        with self._failures_lock:
            return dict(self.profile_failures)

    def stop_profile(self, p: Profile) -> None:
        self._set_failure(p.name, None)
        stopped = set(stop_profile(self.manager, p.name))  # its forwards, and its namespace group's
        for s in profile_sessions(p, self.manager.list(), self._current_context()):
            if s.id in stopped:
                continue
            try:
                self.manager.stop(s.id)
            except UsageError:
                pass  # already gone

    def _profile(self, name: str) -> Profile:
        for p in self.profiles:
            if p.name == name:
                return p
        raise UsageError(f"no profile named {name!r} any more (the file changed?)")

    def _do_profile_start(self, name: str) -> None:
        self.start_profile(self._profile(name))

    def _do_profile_stop(self, name: str) -> None:
        self.stop_profile(self._profile(name))

    def _do_group_start(self, group: str) -> None:
        sessions = self.manager.list()
        for p in self.profiles:
            if p.group == group and not profile_sessions(p, sessions, self._current_context()):
                self._guarded(ActionKind.PROFILE_START, self.start_profile, p)

    def _do_group_stop(self, group: str) -> None:
        for p in self.profiles:
            if p.group == group:
                self.stop_profile(p)

    def _do_edit_profiles(self) -> None:
        ensure_profiles_file(self.profiles_path)
        system.edit_file(str(self.profiles_path))

    def _do_save_profile(self, session_id: str) -> None:
        s = self.manager.get(session_id)
        remote: int | str = int(s.remote_port) if str(s.remote_port).isdigit() else s.remote_port
        local = s.local_port or None
        profile = Profile(name=self._free_profile_name(f"{s.target_name}-{s.remote_port}"), context=s.cluster_id,
                          namespace=s.namespace, target=Target(s.target_kind, s.target_name),
                          ports=(PortSpec(local, remote, protocol=getattr(s, "protocol", "TCP")),),
                          address=s.address, relay_image=getattr(s, "relay_image", "") or None)
        add_profile(self.profiles_path, profile)
        self.reload_profiles()
        self.notifications.send(f"Saved as profile {profile.name}", f"in {self.profiles_path}", always=True)

    def _free_profile_name(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9._-]", "-", base).strip("-._")[:56] or "forward"
        taken = {p.name for p in self.profiles}
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        return name

    # settings and quitting
    def _sync_autostart(self) -> None:
        """Keep the login entry pointing at this installation (it may have moved), with the options
        and variables recorded when the user turned it on, not this launch's (README: turn it off
        and on again after changing them).  Those come from the settings; from a settings file
        that lacks them (an older Tender), from the XDG entry itself, else from this launch (then
        saved, so that later launches keep them).  Blocks for a few small file reads and writes."""
        if not self.settings.start_at_login:
            return
        recorded, arguments = self.settings.login_environment, self.settings.login_arguments
        if recorded is None or arguments is None:
            entry = autostart.read_xdg_entry() if sys.platform not in ("darwin", "win32") else None
            if entry is not None and entry[0][1:2] == ["tray"] and entry[1]:
                arguments, recorded = tuple(entry[0][2:]), entry[1]
        try:
            recorded = self._set_login_entry(True, arguments, recorded)
        except OSError as exc:
            log.warning("cannot refresh the login entry: %s", exc)
            return
        if self.settings.login_environment is None or self.settings.login_arguments is None:
            self.settings = replace(self.settings, login_environment=recorded,
                                    login_arguments=tuple(self.launch_args if arguments is None else arguments))
            try:
                save_settings(self.settings, self.settings_file)
            except OSError as exc:
                log.warning("cannot save the settings: %s", exc)

    def _set_login_entry(self, enabled: bool, arguments: Sequence[str] | None = None,
                         recorded: dict[str, str] | None = None) -> dict[str, str]:
        """Write (or remove) the login entry: this tender with ``arguments`` (default this launch's
        options), and ``recorded`` (default this launch's kubeconfig and profiles paths and the PATH
        its exec plugins need; tray.ui.autostart).  Returns the variables recorded ({} when
        removed).  Raises OSError."""
        args = self.launch_args if arguments is None else list(arguments)
        return autostart.set_enabled(enabled, autostart.tender_command(args), kubeconfig=self.manager.kubeconfig,
                                     profiles=self.profiles_path, recorded=recorded)

    def _do_toggle_autostart(self) -> None:
        enabled = not self.settings.start_at_login
        recorded = self._set_login_entry(enabled)
        self.settings = replace(self.settings, start_at_login=enabled,
                                login_environment=recorded if enabled else None,
                                login_arguments=tuple(self.launch_args) if enabled else None)
        save_settings(self.settings, self.settings_file)

    def _do_toggle_notifications(self) -> None:
        self.settings = replace(self.settings, notifications=not self.settings.notifications)
        save_settings(self.settings, self.settings_file)

    def _do_quit(self) -> None:
        running = [s for s in self.manager.list() if s.status in labels.RUNNING]
        if running and not self.dialogs.confirm(
                "Quit Tender?", f"{labels.plural(len(running), 'forward')} running. Quitting stops "
                f"{'it' if len(running) == 1 else 'them'}.", "Stop & Quit", "Cancel"):
            return
        log.info("quitting (%d forwards running)", len(running))
        self.close()
        self.manager.shutdown()
        self.view.stop()
