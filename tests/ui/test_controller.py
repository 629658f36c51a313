"""The controller with a fake engine, view, dialogs and notifier: clicks to engine calls,
events to coalesced menus, files to reloads."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.ui.fakes import FakeDialogs, FakeManager, FakeNotifier, FakeView, cluster
from tray.errors import PortUsageError, UsageError
from tray.ui.controller import Controller
from tray.ui.model import Action, ActionKind
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

PROFILES = """\
version: 1
profiles:
  - name: web
    context: tender-a
    namespace: shop
    target: svc/web
    ports: ["8080:80", ":http", "metrics"]
    group: shop
    autostart: true
  - name: db
    namespace: data
    target: sts/db
    ports: ["15432:5432"]
    group: shop
"""


def wait_until(pred, timeout: float = 5.0, what: str = "condition"):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def env(tmp_path: Path, monkeypatch):  # noqa: ANN201
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("placeholder")
    manager = FakeManager(kubeconfig=str(kubeconfig))
    view, dialogs, notifier = FakeView(), FakeDialogs(), FakeNotifier()
    c = Controller(manager, view, dialogs, notifier, profiles_path=profiles, settings_file=tmp_path / "settings.json",
                   refresh_interval=0.05, watch_interval=0.05)
    c.notifications._buffer.window = 0.05
    c.start()
    yield c, manager, view, dialogs, notifier, tmp_path
    c.close()


def run(c: Controller, kind: ActionKind, *args) -> None:  # noqa: ANN001
    """Click: dispatch the action and wait until its handler has returned (5 s at most)."""
    c.dispatch(Action(kind, args)).result(5)


def starts(manager: FakeManager) -> list[tuple]:
    return [call for call in manager.calls if call[0] == "start"]


def test_autostart_profiles_start_with_the_profile_port_rules(env) -> None:  # noqa: ANN001
    c, manager, view, *_ = env
    # "8080:80" -> local 8080; ":http" -> free (0); "metrics" (bare name) -> None (same as remote)
    assert starts(manager) == [
        ("start", "tender-a", "shop", "Service", "web", 80, 8080, "127.0.0.1", "web"),
        ("start", "tender-a", "shop", "Service", "web", "http", 0, "127.0.0.1", "web"),
        ("start", "tender-a", "shop", "Service", "web", "metrics", None, "127.0.0.1", "web"),
    ]
    wait_until(lambda: view.shown and view.menu.children[0].label.startswith("3 starting"), what="menu")


def test_profile_without_context_uses_the_current_one_and_stops_again(env) -> None:  # noqa: ANN001
    c, manager, view, *_ = env
    run(c, ActionKind.PROFILE_START, "db")
    assert starts(manager)[-1] == ("start", "tender-a", "data", "StatefulSet", "db", 5432, 15432, "127.0.0.1", "db")
    run(c, ActionKind.PROFILE_STOP, "db")
    assert not [s for s in manager.list() if s.profile == "db"]
    run(c, ActionKind.GROUP_STOP, "shop")
    assert manager.list() == []
    run(c, ActionKind.GROUP_START, "shop")
    assert len(manager.list()) == 4


def test_failed_action_is_notified_even_with_notifications_off(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, _ = env
    run(c, ActionKind.TOGGLE_NOTIFICATIONS)
    assert c.settings.notifications is False

    def refuse(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise UsageError("local port 8080 is already used by the forward to svc/web (tender-a/shop)")

    manager.start = refuse
    run(c, ActionKind.FORWARD, "tender-a", "shop", "Service", "web", 8080, 8080)
    wait_until(lambda: notifier.sent, what="notification")
    assert notifier.sent[-1] == ("Could not start the forward",
                                 "local port 8080 is already used by the forward to svc/web (tender-a/shop)")


def test_event_storm_is_a_few_rebuilds(env) -> None:  # noqa: ANN001
    c, manager, view, *_ = env
    for i in range(200):
        manager.start(ForwardSpec("tender-b", "bulk", Target("Service", f"s{i}"), 80, local_port=20000 + i))
    time.sleep(0.3)
    before = len(view.shown)
    for sid in [s.id for s in manager.list()]:
        manager.set_status(sid, "active", pod="p")
    wait_until(lambda: view.shown and view.menu.children[0].label.startswith("203 active"), what="all active")
    assert len(view.shown) - before <= 6  # 200 events in well under a second: a handful of rebuilds


def test_quit_asks_when_forwards_run(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, *_ = env
    dialogs.answer = False
    run(c, ActionKind.QUIT)
    assert dialogs.asked[-1][1:4] == ("Quit Tender?", "3 forwards running. Quitting stops them.", "Stop & Quit")
    assert not manager.shut and not view.stopped
    dialogs.answer = True
    run(c, ActionKind.QUIT)
    assert manager.shut and view.stopped


def test_quit_without_forwards_does_not_ask(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, *_ = env
    for s in manager.list():
        manager.stop(s.id)
    run(c, ActionKind.QUIT)
    assert dialogs.asked == [] and view.stopped


def test_stop_cluster_confirms_only_with_running_forwards(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, *_ = env
    dialogs.answer = False
    run(c, ActionKind.STOP_CLUSTER, "tender-a")
    assert dialogs.asked[-1][1] == "Stop all forwards in tender-a?"
    assert ("stop_cluster", "tender-a") not in manager.calls
    dialogs.answer = True
    run(c, ActionKind.STOP_CLUSTER, "tender-a")
    assert ("stop_cluster", "tender-a") in manager.calls
    asked = len(dialogs.asked)
    sid = manager.start(ForwardSpec("tender-b", "x", Target("Service", "s"), 80, local_port=1))
    manager.set_status(sid, "error", "boom")
    run(c, ActionKind.STOP_CLUSTER, "tender-b")  # only errors: nothing to confirm
    assert len(dialogs.asked) == asked and manager.list() == []


def test_custom_port_dialog_answer_starts_the_forward(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, *_ = env
    dialogs.port = (8080, 18081)
    run(c, ActionKind.CUSTOM_PORT, "tender-a", "demo", "Deployment", "web", ((8080, "http"),))
    request = dialogs.asked[-1][1]
    assert request.resource == "deploy/web" and request.cluster == "tender-a / demo"
    assert request.ports == ((8080, "http"),) and 8080 in request.used
    assert starts(manager)[-1] == ("start", "tender-a", "demo", "Deployment", "web", 8080, 18081, "127.0.0.1", None)


def test_broken_profiles_file_keeps_the_last_good_profiles(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, tmp = env
    path = tmp / "profiles.yaml"
    path.write_text(PROFILES.replace('["15432:5432"]', '["15432:99999"]'))
    wait_until(lambda: c.profiles_error, what="error")
    assert c.profiles_error.startswith("profiles.yaml:")
    assert "out of range" in c.profiles_error
    assert [p.name for p in c.profiles] == ["web", "db"]
    wait_until(lambda: view.shown and any(i.label.startswith("⚠ profiles.yaml:") for _, i in view.menu.walk()),
               what="error line")
    path.write_text(PROFILES.replace("name: db", "name: db2"))
    wait_until(lambda: c.profiles_error is None and [p.name for p in c.profiles] == ["web", "db2"], what="reload")


def test_removed_context_stops_its_forwards_and_new_one_appears(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, tmp = env
    manager.start(ForwardSpec("tender-b", "x", Target("Service", "s"), 80, local_port=1))
    manager.set_clusters([cluster("tender-a", True), cluster("tender-c")])
    (tmp / "kubeconfig").write_text("changed")
    wait_until(lambda: ("stop_cluster", "tender-b") in manager.calls, what="stop_cluster")
    wait_until(lambda: any(t == "Context tender-b was removed from the kubeconfig" for t, _ in notifier.sent),
               what="notification")
    assert ("Context tender-b was removed from the kubeconfig", "1 forward stopped") in notifier.sent
    wait_until(lambda: view.shown and [i.label for i in view.menu.child("Clusters").children]
               == ["tender-a (current)", "tender-c"], what="menu")


def test_broken_kubeconfig_keeps_the_contexts(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, tmp = env
    manager.clusters_error = UsageError("kubeconfig not found", source="/k")
    (tmp / "kubeconfig").write_text("broken")
    wait_until(lambda: c.kubeconfig_error, what="error")
    assert [x.id for x in c.clusters] == ["tender-a", "tender-b"]
    assert not [call for call in manager.calls if call[0] == "stop_cluster"]


def test_save_as_profile_writes_the_file(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, tmp = env
    sid = manager.start(ForwardSpec("tender-b", "data", Target("StatefulSet", "db"), 5432, local_port=15433))
    run(c, ActionKind.SAVE_PROFILE, sid)
    text = (tmp / "profiles.yaml").read_text()
    assert "name: db-5432" in text and "context: tender-b" in text and "15433:5432" in text
    assert "db-5432" in [p.name for p in c.profiles]


def test_save_as_profile_keeps_udp_and_the_relay_image(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, tmp = env
    sid = manager.start(ForwardSpec("tender-a", "net", Target("Host", "dns.corp"), 53, local_port=8053,
                                    protocol="UDP", relay_image="mirror.corp/python:3.13-alpine"))
    run(c, ActionKind.SAVE_PROFILE, sid)
    saved = next(p for p in c.profiles if p.name == "dns.corp-53")
    assert saved.target == Target("Host", "dns.corp") and [str(p) for p in saved.ports] == ["8053:53/udp"]
    assert saved.relay_image == "mirror.corp/python:3.13-alpine"


def test_settings_toggles_persist(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, tmp = env
    run(c, ActionKind.TOGGLE_AUTOSTART)
    # (The pool has 4 workers: the entry may still be written, after a read of the kubeconfig.)
    wait_until(lambda: (tmp / "cfg" / "autostart" / "tender.desktop").is_file(), what="login entry")
    exec_line = next(line for line in (tmp / "cfg" / "autostart" / "tender.desktop").read_text().splitlines()
                     if line.startswith("Exec="))
    # The tray's own kubeconfig and profiles file, whatever the login session's variables say.
    assert f"KUBECONFIG={tmp}/kubeconfig " in exec_line and f"TENDER_PROFILES={tmp}/profiles.yaml " in exec_line
    wait_until(lambda: '"start_at_login": true' in (tmp / "settings.json").read_text(), what="settings")
    run(c, ActionKind.TOGGLE_AUTOSTART)
    wait_until(lambda: not (tmp / "cfg" / "autostart" / "tender.desktop").exists(), what="entry removed")


def login_entry(tmp: Path) -> tuple[list[str], dict[str, str]]:
    from tray.ui import autostart

    entry = autostart.read_xdg_entry(tmp / "cfg" / "autostart" / "tender.desktop")
    assert entry is not None, "no login entry"
    return entry


def installed_tender(tmp: Path, where: str, monkeypatch) -> Path:  # noqa: ANN001
    """Make autostart.tender_command find a `tender` in ``tmp/where/bin`` (an installation there)."""
    tender = tmp / where / "bin" / "tender"
    tender.parent.mkdir(parents=True)
    tender.write_text("#!/bin/sh\n")
    tender.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(tender.parent / "python"))
    return tender


def test_start_at_login_keeps_what_was_in_force_when_turned_on(env, monkeypatch) -> None:  # noqa: ANN001
    """Issue 12: a later launch from the app launcher (no KUBECONFIG, TENDER_PROFILES or options,
    a shorter PATH) must not rewrite the entry with its own environment; only the path of the
    `tender` program follows the installation."""
    c, manager, view, dialogs, notifier, tmp = env
    c.close()
    tender_a = installed_tender(tmp, "venv-a", monkeypatch)
    monkeypatch.setenv("PATH", f"/usr/bin:{tmp}/plugins")
    (tmp / "a.yaml").write_text(PROFILES)
    a = Controller(FakeManager(kubeconfig=f"{tmp}/kube-a"), FakeView(), FakeDialogs(), FakeNotifier(),
                   profiles_path=tmp / "a.yaml", settings_file=tmp / "settings.json",
                   launch_args=["--kubeconfig", f"{tmp}/kube-a"], refresh_interval=0.05, watch_interval=0.05)
    a.start()
    run(a, ActionKind.TOGGLE_AUTOSTART)
    a.close()
    recorded_a = {"KUBECONFIG": f"{tmp}/kube-a", "PATH": f"/usr/bin:{tmp}/plugins",
                  "TENDER_PROFILES": f"{tmp}/a.yaml"}
    argv_a = [str(tender_a), "tray", "--kubeconfig", f"{tmp}/kube-a"]
    assert login_entry(tmp) == (argv_a, recorded_a)

    # The next start: another installation, another environment, no options.
    tender_b = installed_tender(tmp, "venv-b", monkeypatch)
    monkeypatch.setenv("PATH", "/usr/bin")
    b = Controller(FakeManager(kubeconfig=f"{tmp}/.kube/config"), FakeView(), FakeDialogs(), FakeNotifier(),
                   profiles_path=tmp / "profiles.yaml", settings_file=tmp / "settings.json",
                   refresh_interval=0.05, watch_interval=0.05)
    b.start()
    try:
        assert b.settings.start_at_login
        assert login_entry(tmp) == ([str(tender_b), *argv_a[1:]], recorded_a)
        # Off and on again: now this launch's environment and options are the ones recorded.
        run(b, ActionKind.TOGGLE_AUTOSTART)
        run(b, ActionKind.TOGGLE_AUTOSTART)
        assert login_entry(tmp) == ([str(tender_b), "tray"], {
            "KUBECONFIG": f"{tmp}/.kube/config", "PATH": "/usr/bin", "TENDER_PROFILES": f"{tmp}/profiles.yaml"})
    finally:
        b.close()


def test_start_at_login_from_an_older_settings_file_keeps_the_entrys_variables(env, monkeypatch) -> None:  # noqa: ANN001
    """settings.json from before the recorded variables were kept in it: they are read back from the
    entry (not replaced by this launch's), and kept in the settings from then on."""
    from tray.ui import autostart

    c, manager, view, dialogs, notifier, tmp = env
    c.close()
    recorded = {"KUBECONFIG": "/a/b.yaml", "PATH": "/usr/bin:/opt/plugins bin", "TENDER_PROFILES": "/c.yaml"}
    autostart.set_enabled(True, ["/old/bin/tender", "tray", "--profiles", "/c.yaml"], recorded=recorded)
    (tmp / "settings.json").write_text('{"notifications": false, "start_at_login": true}\n')
    tender = installed_tender(tmp, "venv", monkeypatch)
    monkeypatch.setenv("PATH", "/usr/bin")
    for _ in range(2):
        again = Controller(FakeManager(kubeconfig=f"{tmp}/kubeconfig"), FakeView(), FakeDialogs(), FakeNotifier(),
                           profiles_path=tmp / "profiles.yaml", settings_file=tmp / "settings.json",
                           refresh_interval=0.05, watch_interval=0.05)
        again.start()
        again.close()
        assert login_entry(tmp) == ([str(tender), "tray", "--profiles", "/c.yaml"], recorded)
        (tmp / "cfg" / "autostart" / "tender.desktop").unlink()  # the second start has only the settings
    assert again.settings.login_environment == recorded and not again.settings.notifications


def test_copy_and_status_notifications(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, _ = env
    run(c, ActionKind.COPY, "127.0.0.1:8080")
    assert view.copied == ["127.0.0.1:8080"]
    c.notifications.reconnect_after = 0.1  # a reconnect is told once it lasts (5 s by default)
    sid = manager.list()[0].id
    manager.set_status(sid, "active", pod="web-1")
    manager.set_status(sid, "reconnecting", "pod web-1 was deleted")
    wait_until(lambda: notifier.sent, what="notification")
    title, body = notifier.sent[-1]
    assert title.startswith("Reconnecting: ") and "8080 → 80" in title and body.endswith("pod web-1 was deleted")


def test_clicks_return_at_once_even_when_the_engine_is_slow(env) -> None:  # noqa: ANN001
    c, manager, *_ = env

    def slow(sid: str) -> None:
        time.sleep(1.0)

    manager.stop = slow
    started = time.monotonic()
    for _ in range(5):
        c.dispatch(Action(ActionKind.STOP, ("whatever",)))  # the UI thread's part of a click
    assert time.monotonic() - started < 0.1


def test_a_context_that_failed_to_load_is_loaded_again_when_the_kubeconfig_changes(env) -> None:  # noqa: ANN001
    """A context's tree failed (say, its TLS material was read mid-rewrite): the next change
    of the kubeconfig loads it again, instead of keeping the error until Refresh."""
    from tray.ui.resources import Failed

    c, manager, view, dialogs, notifier, tmp = env
    c.store.set_namespaces("tender-a", Failed("cannot load TLS material: NO_CERTIFICATE_OR_CRL_FOUND"))
    c.store.set_namespaces("tender-b", Failed("cannot list namespaces: timed out"))
    calls: list[str] = []
    original = c.loader.load_cluster
    c.loader.load_cluster = lambda cid, prefer=(): (calls.append(cid), original(cid, prefer))  # type: ignore[method-assign]
    (tmp / "kubeconfig").write_text("rewritten")
    wait_until(lambda: "tender-a" in calls, what="tender-a loaded again")
    assert sorted(set(calls)) == ["tender-a", "tender-b"]


# ------------------------------------------------------------ profiles that cannot start
class KubeconfiglessManager(FakeManager):
    """The engine's answers while its kubeconfig file is missing (``missing``), as ForwardManager gives them."""

    def __init__(self, kubeconfig: str) -> None:
        super().__init__(kubeconfig=kubeconfig)
        self.missing = True

    def clusters(self):  # noqa: ANN201
        if self.missing:
            raise UsageError("kubeconfig not found", source=self.kubeconfig)
        return super().clusters()

    def start(self, spec: ForwardSpec) -> str:
        self.clusters()
        return super().start(spec)


class CardNotifier(FakeNotifier):
    """A full notifier: ``sent`` (title, body) as FakeNotifier's, and ``log``: ("show", Message) / ("withdraw", key)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, object]] = []

    def show(self, message) -> None:  # noqa: ANN001
        with self.cond:
            self.log.append(("show", message))
        self.send(message.title, message.body)

    def withdraw(self, key: str) -> None:
        with self.cond:
            self.log.append(("withdraw", key))

    def shown(self) -> list:  # noqa: ANN201
        with self.cond:
            return [m for verb, m in self.log if verb == "show"]


@pytest.fixture
def no_kubeconfig(tmp_path: Path, monkeypatch):  # noqa: ANN201
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES)
    manager = KubeconfiglessManager(str(tmp_path / "missing" / "config"))
    view, notifier = FakeView(), CardNotifier()
    c = Controller(manager, view, FakeDialogs(), notifier, profiles_path=profiles,
                   settings_file=tmp_path / "settings.json", refresh_interval=0.05, watch_interval=0.05)
    c.start()
    yield c, manager, view, notifier, tmp_path
    c.close()


def test_an_autostart_profile_without_kubeconfig_is_a_failure_with_its_reason(no_kubeconfig) -> None:  # noqa: ANN001
    c, manager, view, notifier, tmp = no_kubeconfig
    reason = f"{tmp}/missing/config: kubeconfig not found"
    assert c.menu_state().profile_failures == {"web": reason}
    # (The notification leaves from the notifications' own thread.)  It names the profile, says why
    # (the cause first, then the file) and offers Retry; one card per profile.
    card = wait_until(lambda: next((m for m in notifier.shown() if m.key == "profile:web"), None),
                      what="the notification")
    assert (card.title, card.body) == ("Profile web could not start", f"kubeconfig not found ({tmp}/missing/config)")
    assert [(label, a) for label, a in card.actions] == [("Retry", Action(ActionKind.PROFILE_START, ("web",))),
                                                         ("Edit profiles", Action(ActionKind.EDIT_PROFILES))]
    assert manager.list() == []
    # The menu shows it, not "No forwards running": a row in error with the reason and Retry.
    # (The first menu is shown from the controller's thread: it may not be there yet.)
    row = wait_until(lambda: view.shown and next((i for i in view.menu.children if i.label.startswith("web  ")),
                                                 None), what="the failed profile's row")
    assert row.label.endswith("  error")
    assert [c.label for c in row.children if not c.separator][:2] == [reason, "Retry"]
    assert row.child("Retry").action == Action(ActionKind.PROFILE_START, ("web",))
    assert view.menu.children[0].label == "1 profile could not start"
    # A profile started from the menu fails the same way and is listed too.
    run(c, ActionKind.PROFILE_START, "db")
    assert c.menu_state().profile_failures == {"web": reason, "db": reason}
    run(c, ActionKind.PROFILE_START, "db")  # Retry fails again: its card is replaced, not doubled
    wait_until(lambda: [m.key for m in notifier.shown()].count("profile:db") == 2, what="db's card, twice")
    assert [m.key for m in notifier.shown()] == ["profile:web", "profile:db", "profile:db"]
    # The kubeconfig appears: Retry (PROFILE_START) starts the profile and the failure is gone.
    manager.missing = False
    c.dispatch(row.child("Retry").action)  # the click
    wait_until(lambda: c.menu_state().profile_failures == {"db": reason}, what="web started")
    wait_until(lambda: ("withdraw", "profile:web") in notifier.log, what="web's card closed")
    run(c, ActionKind.PROFILE_START, "web")  # idempotent: nothing started twice
    assert sorted(str(s.remote_port) for s in manager.list() if s.profile == "web") == ["80", "http", "metrics"]
    # A profile without a context takes the current one, read now (the file watcher may not have looked yet).
    run(c, ActionKind.PROFILE_START, "db")
    assert c.menu_state().profile_failures == {}
    assert starts(manager)[-1] == ("start", "tender-a", "data", "StatefulSet", "db", 5432, 15432, "127.0.0.1", "db")
    # Stopping a failed profile clears its failure too (the user gave up on it).
    manager.missing = True
    run(c, ActionKind.PROFILE_STOP, "db")
    run(c, ActionKind.PROFILE_START, "web")
    run(c, ActionKind.PROFILE_START, "db")
    assert c.menu_state().profile_failures == {"db": reason}
    run(c, ActionKind.PROFILE_STOP, "db")
    assert c.menu_state().profile_failures == {}
    wait_until(lambda: notifier.log[-1] == ("withdraw", "profile:db"), what="db's card closed on stop")
    assert {m.title for m in notifier.shown()} == {"Profile web could not start", "Profile db could not start"}


def test_unknown_context_failure_goes_when_the_profile_leaves_the_file(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, tmp = env
    (tmp / "profiles.yaml").write_text(PROFILES.replace("namespace: data", "context: nowhere\n    namespace: data"))
    wait_until(lambda: next(p for p in c.profiles if p.name == "db").context == "nowhere", what="reload")

    def start(spec: ForwardSpec) -> str:
        if spec.cluster not in {x.id for x in manager.clusters()}:
            raise UsageError(f'context "{spec.cluster}" not found in the kubeconfig (contexts: tender-a, tender-b)',
                             source=manager.kubeconfig, field="context")
        return FakeManager.start(manager, spec)

    manager.start = start
    run(c, ActionKind.PROFILE_START, "db")
    assert c.menu_state().profile_failures == {
        "db": f'{tmp}/kubeconfig: context: context "nowhere" not found in the kubeconfig '
              '(contexts: tender-a, tender-b)'}
    (tmp / "profiles.yaml").write_text(PROFILES.replace("name: db", "name: db2"))
    wait_until(lambda: c.menu_state().profile_failures == {}, what="failure dropped with its profile")


def test_retry_after_a_partial_start_starts_only_the_missing_ports(env) -> None:  # noqa: ANN001
    c, manager, view, dialogs, notifier, tmp = env
    run(c, ActionKind.PROFILE_STOP, "web")
    original = FakeManager.start
    refuse = ["metrics"]

    def start(spec: ForwardSpec) -> str:
        if spec.remote_port in refuse:
            raise PortUsageError('svc/web has no port named "metrics"', field="port")
        return original(manager, spec)

    manager.start = start
    run(c, ActionKind.PROFILE_START, "web")
    assert c.menu_state().profile_failures == {"web": 'port: svc/web has no port named "metrics"'}
    assert sorted(str(s.remote_port) for s in manager.list() if s.profile == "web") == ["80", "http"]
    refuse.clear()  # the Service got its port
    manager.calls.clear()
    run(c, ActionKind.PROFILE_START, "web")  # Retry
    assert c.menu_state().profile_failures == {}
    assert [call[5] for call in starts(manager)] == ["metrics"]
    assert sorted(str(s.remote_port) for s in manager.list() if s.profile == "web") == ["80", "http", "metrics"]


def test_an_edit_made_while_the_tray_starts_is_seen(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The profiles file changes after the tray read it but before its first check: the edit shows."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(PROFILES)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("placeholder")

    class EditingManager(FakeManager):
        edited = False

        def clusters(self) -> list:  # read by Controller.start after the profiles
            if not self.edited:
                self.edited = True
                profiles.write_text(PROFILES.replace("name: db", "name: db-renamed") + "\n")
            return super().clusters()

    manager = EditingManager(kubeconfig=str(kubeconfig))
    c = Controller(manager, FakeView(), FakeDialogs(), FakeNotifier(), profiles_path=profiles,
                   settings_file=tmp_path / "settings.json", refresh_interval=0.05, watch_interval=0.05)
    try:
        c.start()
        assert manager.edited
        wait_until(lambda: [p.name for p in c.profiles] == ["web", "db-renamed"], what="the edit")
    finally:
        c.close()


# ---------------------------------------------------------------- the dashboard, counters on opening the menu
@pytest.fixture
def with_dashboard(tmp_path: Path, monkeypatch):  # noqa: ANN201
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    (tmp_path / "profiles.yaml").write_text("version: 1\nprofiles: []\n")
    opened: list[str] = []
    closed: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    manager, view = FakeManager(clusters=[]), FakeView()  # no contexts: nothing loads (and rebuilds) late
    c = Controller(manager, view, FakeDialogs(), FakeNotifier(), profiles_path=tmp_path / "profiles.yaml",
                   settings_file=tmp_path / "settings.json", refresh_interval=0.05, watch_interval=0.05,
                   dashboard_url=lambda: "http://127.0.0.1:4711/?token=s3cret", on_close=lambda: closed.append("api"))
    c.start()
    yield c, manager, view, opened, closed
    c.close()


def test_open_dashboard_is_offered_before_quit_and_opens_the_url_with_its_secret(with_dashboard) -> None:  # noqa: ANN001
    c, manager, view, opened, _ = with_dashboard
    wait_until(lambda: view.shown, what="a menu")
    labels = [i.label for i in view.menu.children]
    assert labels[-2:] == ["Open dashboard…", "Quit"]
    assert view.menu.children[-2].action == Action(ActionKind.OPEN_DASHBOARD)
    run(c, ActionKind.OPEN_DASHBOARD)
    assert opened == ["http://127.0.0.1:4711/?token=s3cret"]


def test_without_a_dashboard_there_is_no_item(env) -> None:  # noqa: ANN001
    c, manager, view, *_ = env
    wait_until(lambda: view.shown, what="a menu")
    assert not any("dashboard" in i.label for _, i in view.menu.walk())


def test_no_browser_is_a_notification_without_the_secret(with_dashboard, monkeypatch) -> None:  # noqa: ANN001
    c, manager, view, opened, _ = with_dashboard
    monkeypatch.setattr("webbrowser.open", lambda url: False)
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(c.notifications, "send", lambda title, body, always=False: sent.append((title, body)))
    run(c, ActionKind.OPEN_DASHBOARD)
    assert sent and sent[-1][0] == "Could not open the dashboard"
    assert "s3cret" not in sent[-1][1] and "tender dashboard --print-url" in sent[-1][1]


def test_close_closes_the_api_once(with_dashboard) -> None:  # noqa: ANN001
    c, manager, view, opened, closed = with_dashboard
    c.close()
    c.close()
    assert closed == ["api"]


def test_opening_the_menu_shows_counters_that_moved_without_an_event(with_dashboard) -> None:  # noqa: ANN001
    from dataclasses import replace

    c, manager, view, *_ = with_dashboard
    sid = manager.start(ForwardSpec("tender-a", "shop", Target("Service", "web"), 80, local_port=8080))
    manager.set_status(sid, "active", pod="web-1")
    wait_until(lambda: view.shown and view.menu.children[0].label.startswith("1 active"), what="active")
    row = lambda: next(i for i in view.menu.children if i.label.startswith("svc/web"))  # noqa: E731
    assert not any("connection" in i.label for i in row().children)
    time.sleep(0.2)
    shown = len(view.shown)
    with manager.lock:  # the engine counts bytes and connections without telling anyone
        manager.sessions[sid] = replace(manager.sessions[sid], connections=2, connections_total=5,
                                        bytes_in=1_500_000, bytes_out=30_000)
    time.sleep(0.3)
    assert len(view.shown) == shown  # no event, no rebuild
    c.menu_shown()
    wait_until(lambda: any(i.label.startswith("2 connections open") for i in row().children), what="the counters")
    assert any("1.5 MB" in i.label for i in row().children)


def test_an_open_menu_follows_the_counters_for_a_while_then_nothing_runs(with_dashboard) -> None:  # noqa: ANN001
    import threading
    from dataclasses import replace

    c, manager, view, *_ = with_dashboard
    c.counter_tick, c.menu_live_for = 0.05, 0.6
    sid = manager.start(ForwardSpec("tender-a", "shop", Target("Service", "web"), 80, local_port=8080))
    manager.set_status(sid, "active", pod="web-1")
    wait_until(lambda: view.shown and view.menu.children[0].label.startswith("1 active"), what="active")
    row = lambda: next(i for i in view.menu.children if i.label.startswith("svc/web"))  # noqa: E731

    def count(total: int) -> None:  # the engine counting, without an event
        with manager.lock:
            manager.sessions[sid] = replace(manager.sessions[sid], connections=1, connections_total=total)

    c.menu_shown()  # the panel opened the menu: from now on it follows the counters
    for total in (1, 2, 3):
        count(total)
        wait_until(lambda: any(i.label.endswith(f"· {total} total") for i in row().children), 3,
                   what=f"{total} connections in the open menu")
    time.sleep(0.8)  # not shown again for longer than menu_live_for: the thread ends
    assert not [t for t in threading.enumerate() if t.name == "tender-counters"]
    shown = len(view.shown)
    count(4)
    time.sleep(0.4)
    assert len(view.shown) == shown and any(i.label.endswith("· 3 total") for i in row().children)
