"""The tray app end to end, as a person uses it, against the real test cluster.

Each test runs ``tender tray`` as its own process on a throwaway desktop:
Xvfb, a private D-Bus session bus that activates only the harness's services,
xfce4-panel (the StatusNotifierWatcher and host) and xfce4-notifyd
(tests/ui/harness/desktop.py).  The tests read the live menu over
``com.canonical.dbusmenu`` and click items there, as the panel does; they
answer the real dialogs with xdotool; they read notifications as the
notification server received them (a bus monitor).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clusterlib import Cluster, deployment_manifest

from tests.integration.engine import hostname, http_get, wait_for
from tests.ui.harness.app import TrayApp
from tests.ui.harness.desktop import Desktop, missing_desktop
from tests.ui.harness.launch import TrayLauncher, free_port, port_closed

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def desktop() -> Desktop:
    missing = missing_desktop()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (make deps installs them)")
    d = Desktop().start()
    yield d
    d.stop()


@pytest.fixture
def launch(desktop: Desktop, cluster: Cluster, tmp_path: Path) -> Iterator[TrayLauncher]:
    """``launch(profiles_text, kubeconfig=…, env=…, on=…)`` starts a tray; all are stopped after the test."""
    launcher = TrayLauncher(desktop, cluster.kubeconfig, tmp_path)
    yield launcher
    launcher.stop_all()


def deploy(cluster: Cluster, namespace: str, name: str = "web", port: int = 8080, replicas: int = 1) -> list[str]:
    cluster.apply(deployment_manifest(name, replicas=replicas, args=f"netexec --http-port={port}", port=port),
                  namespace)
    return cluster.wait_ready(namespace, f"app={name}", replicas)


def profile_yaml(name: str, namespace: str, target: str, ports: str, *, context: str = "tender-a",
                 group: str = "e2e", autostart: bool = False) -> str:
    return (f"  - name: {name}\n    context: {context}\n    namespace: {namespace}\n    target: {target}\n"
            f"    ports: [{ports}]\n    group: {group}\n    autostart: {'true' if autostart else 'false'}\n")


def entry(target: str, local: int, remote: int | str, namespace: str, status: str, context: str = "tender-a",
          profile: str | None = None, cluster: bool = True) -> str:
    """A forward's row: 'PROFILE  TARGET  LOCAL → REMOTE  CONTEXT/NAMESPACE  STATUS' (no context under a
    cluster's heading, when forwards are in several clusters)."""
    where = f"{context}/{namespace}" if cluster else namespace
    return "  ".join([*([profile] if profile else []), target, f"{local} → {remote}", where, status])


def is_context(name: str):  # noqa: ANN201
    return lambda label: label.split(" ")[0] == name


def notifications_about(desktop: Desktop, text: str) -> list:
    return desktop.notifications.about(text)


# ---------------------------------------------------------------------------------------------
def test_profile_from_the_menu_reaches_the_pod_and_survives_its_deletion(
        desktop: Desktop, cluster: Cluster, namespace: str, launch) -> None:  # noqa: ANN001
    [pod] = deploy(cluster, namespace)
    local = free_port()
    app = launch("version: 1\nprofiles:\n" + profile_yaml("e2e-web", namespace, "deploy/web", f'"{local}:8080"'))
    menu = app.menu

    menu.click_path("Profiles", "e2e (0 of 1 running)", lambda label: label.startswith("e2e-web  "))
    active = entry("deploy/web", local, 8080, namespace, "active", profile="e2e-web")
    item = menu.wait_for(active, timeout=30)
    assert hostname(local) == pod
    assert menu.find(active, f"Pod {pod}", root=menu.layout()) is not None
    assert [c.label for c in item.children if c.type != "separator"][-3:] == ["Open in browser", "Copy address", "Stop"]
    profile_item = menu.wait_for("Profiles", "e2e (1 of 1 running)", lambda label: label.startswith("e2e-web  "))
    assert profile_item.toggle_state == 1
    assert menu.layout().children[0].label == "1 active"

    # The pod goes away: the forward is active again on the new pod.
    cluster.kubectl("delete", "pod", pod, "-n", namespace, "--wait=false")
    new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != pod], 60, "a new pod")[0]
    menu.wait_for(active, f"Pod {new}", timeout=45)
    assert wait_for(lambda: hostname(local) == new, 20, "traffic on the new pod")
    # Whatever the tray said about it, it said it on one card, replaced as the state changed.
    cards = [n for n in desktop.notifications.about("deploy/web") if "e2e-web" in n.summary + n.body]
    assert len({n.id for n in cards if n.id}) <= 1, [(n.summary, n.id, n.replaces_id) for n in cards]


def test_forward_from_the_clusters_menu_then_its_actions(cluster: Cluster, namespace: str, launch,
                                                        tmp_path: Path) -> None:  # noqa: ANN001
    port = free_port()  # the container port, which is also the local port the menu offers
    [pod] = deploy(cluster, namespace, port=port)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    app = launch(env={"BROWSER": f"{browser} %s"})
    menu = app.menu
    ns_path = ("Clusters", is_context("tender-a"), lambda label: label.split(" ")[0] == namespace)
    node = menu.wait_for(*ns_path, where=lambda n: any(c.label != "Loading…" for c in n.children), timeout=30)
    if node.children[0].label == "Load resources…":
        menu.click(node.children[0])
    menu.click_path(*ns_path, "web", f"Forward {port} (http)", timeout=30)  # under the heading "Deployments"
    active = entry("deploy/web", port, "http", namespace, "active")
    menu.wait_for(active, timeout=30)
    assert hostname(port) == pod

    menu.click_path(active, "Copy address")
    assert wait_for(lambda: app.clipboard() == f"127.0.0.1:{port}", 10, "the address on the clipboard")
    menu.click_path(active, "Open in browser")
    wait_for(lambda: opened.exists() and opened.read_text().strip() == f"http://127.0.0.1:{port}/", 10,
             "the browser to be asked")
    menu.click_path(active, "Save as profile…")
    saved = f"web-http  (deploy/web {port} → http · tender-a/"
    profile = menu.wait_for("Profiles", lambda label: label.startswith(saved),
                            timeout=15)
    assert profile.toggle_state == 1  # the running forward is that profile now
    assert "name: web-http" in app.profiles.read_text()
    assert menu.find(active, "Save as profile…") is None

    menu.click_path(active, "Stop")
    wait_for(lambda: menu.find(lambda label: label.startswith("deploy/web  ")) is None, 20, "the entry to go")
    assert wait_for(lambda: port_closed(port), 10, "the port to close")
    assert menu.layout().children[0].label == "No forwards running"


def test_retry_and_remove_errored_forwards(cluster: Cluster, namespace: str, launch) -> None:  # noqa: ANN001
    late, never = free_port(), free_port()
    app = launch("version: 1\nprofiles:\n"
                 + profile_yaml("late", namespace, "deploy/late", f'"{late}:8080"', autostart=True)
                 + profile_yaml("never", namespace, "deploy/never", f'"{never}:8080"', autostart=True))
    menu = app.menu
    failed = entry("deploy/late", late, 8080, namespace, "error", profile="late")
    item = menu.wait_for(failed, timeout=40)
    reason = item.children[0]
    assert not reason.enabled and "late" in reason.label, reason.label
    labels = [c.label for c in item.children if c.type != "separator"]
    assert "Retry" in labels and "Remove" in labels and "Stop" not in labels
    assert menu.layout().children[0].label == "2 errors"

    [pod] = deploy(cluster, namespace, "late")
    menu.click_path(failed, "Retry")
    menu.wait_for(entry("deploy/late", late, 8080, namespace, "active", profile="late"), timeout=40)
    assert hostname(late) == pod

    menu.click_path(entry("deploy/never", never, 8080, namespace, "error", profile="never"), "Remove")
    wait_for(lambda: menu.find(lambda label: label.startswith("deploy/never")) is None, 20, "the errored entry to go")


def test_stop_all_in_cluster_asks_first(two_clusters, namespace: str, launch) -> None:  # noqa: ANN001
    a, b = two_clusters
    deploy(a, namespace)
    ns_b = b.new_namespace()
    try:
        deploy(b, ns_b)
        p1, p2, p3 = free_port(), free_port(), free_port()
        app = launch("version: 1\nprofiles:\n"
                     + profile_yaml("a1", namespace, "deploy/web", f'"{p1}:8080"', autostart=True)
                     + profile_yaml("a2", namespace, "deploy/web", f'"{p2}:8080"', autostart=True)
                     + profile_yaml("b1", ns_b, "deploy/web", f'"{p3}:8080"', context="tender-b", autostart=True))
        menu = app.menu
        # Forwards in two clusters: rows under a heading per cluster, without the context.
        menu.wait_for(entry("deploy/web", p3, 8080, ns_b, "active", profile="b1", cluster=False), timeout=40)
        menu.wait_for(entry("deploy/web", p1, 8080, namespace, "active", profile="a1", cluster=False), timeout=40)
        stop_all = ("Clusters", is_context("tender-a"), "Stop all in this cluster (2)")

        menu.click_path(*stop_all)
        app.answer("Stop all forwards in tender-a?", "Escape")  # changed my mind
        time.sleep(1)
        assert menu.layout().children[0].label.startswith("3 active")

        menu.click_path(*stop_all)
        app.answer("Stop all forwards in tender-a?", "Return")
        wait_for(lambda: menu.layout().children[0].label.startswith("1 active"), 20, "tender-a's forwards to stop")
        assert port_closed(p1) and port_closed(p2)
        http_get(p3, "/hostname")
    finally:
        b.kubectl("delete", "namespace", ns_b, "--wait=false", check=False)


def test_custom_port_dialog(cluster: Cluster, namespace: str, launch) -> None:  # noqa: ANN001
    [pod] = deploy(cluster, namespace)
    app = launch()
    menu = app.menu
    ns_path = ("Clusters", is_context("tender-a"), lambda label: label.split(" ")[0] == namespace)
    node = menu.wait_for(*ns_path, where=lambda n: any(c.label != "Loading…" for c in n.children), timeout=30)
    if node.children[0].label == "Load resources…":
        menu.click(node.children[0])
    menu.click_path(*ns_path, "web", "Custom port…", timeout=30)
    local = free_port()
    app.answer("Forward a port", "Return", text=f"{local}:8080")  # "Forward a port — Tender"
    menu.wait_for(entry("deploy/web", local, 8080, namespace, "active"), timeout=30)
    assert hostname(local) == pod


def test_quit_asks_and_stops_the_forwards(cluster: Cluster, namespace: str, launch) -> None:  # noqa: ANN001
    deploy(cluster, namespace)
    local = free_port()
    app = launch("version: 1\nprofiles:\n"
                 + profile_yaml("q", namespace, "deploy/web", f'"{local}:8080"', autostart=True))
    menu = app.menu
    menu.wait_for(entry("deploy/web", local, 8080, namespace, "active", profile="q"), timeout=40)

    menu.click_path("Quit")
    app.answer("Quit Tender?", "Escape")
    time.sleep(1)
    assert app.proc.poll() is None
    http_get(local, "/hostname")

    menu.click_path("Quit")
    app.answer("Quit Tender?", "Return")
    assert app.proc.wait(20) == 0, app.output()
    assert port_closed(local)


def test_files_change_under_a_running_tray(desktop: Desktop, cluster: Cluster, namespace: str, launch,
                                           tmp_path: Path) -> None:  # noqa: ANN001
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copy(cluster.kubeconfig, kubeconfig)
    good = "version: 1\nprofiles:\n" + profile_yaml("keep", namespace, "deploy/web", '"18999:8080"')
    app = launch(good, kubeconfig=str(kubeconfig))
    menu = app.menu
    menu.wait_for("Clusters", is_context("tender-b"))

    # A broken profiles file: one error line, the last good profiles stay.
    app.profiles.write_text(good.replace('"18999:8080"', '"18999:80 80"'))
    line = menu.wait_for("Profiles", lambda label: label.startswith("⚠ profiles.yaml:"), timeout=15)
    assert not line.enabled and "profiles.yaml:" in line.label
    assert menu.find("Profiles", "e2e (0 of 1 running)", lambda label: label.startswith("keep  ")) is not None
    app.profiles.write_text(good)
    wait_for(lambda: menu.find("Profiles", lambda label: label.startswith("⚠")) is None, 15, "the error line to go")

    # A context removed from the kubeconfig disappears (with a notification); a new one appears.
    subprocess.run(["kubectl", "config", "delete-context", "tender-b", "--kubeconfig", str(kubeconfig)],
                   check=True, capture_output=True)
    wait_for(lambda: menu.find("Clusters", is_context("tender-b")) is None, 15, "tender-b to disappear")
    wait_for(lambda: notifications_about(desktop, "Context tender-b was removed"), 10, "a notification")
    subprocess.run(["kubectl", "config", "set-context", "tender-b-again", "--cluster", "tender-b", "--user",
                    "tender-b-admin", "--kubeconfig", str(kubeconfig)], check=True, capture_output=True)
    menu.wait_for("Clusters", is_context("tender-b-again"), timeout=15)

    # Start at login, from the menu.
    menu.click_path("Start at login")
    autostart = app.home / "config" / "autostart" / "tender.desktop"
    wait_for(autostart.is_file, 10, "the autostart entry")
    assert "tray" in autostart.read_text()
    assert menu.wait_for("Start at login", where=lambda n: n.toggle_state == 1)


def test_display_without_a_tray_offers_the_dashboard(cluster: Cluster, tmp_path: Path) -> None:
    with Desktop(panel=False) as bare:  # an X display and a session bus, but no panel
        app = TrayApp(bare, tmp_path / "home", cluster.kubeconfig, tmp_path / "none.yaml").start(wait_registered=False)
        wait_for(lambda: "dashboard at" in app.stdout() or app.proc.poll() is not None, 60, "the dashboard line")
        assert app.proc.poll() is None, app.output()  # the engine runs, without an icon
        app.stop()
        assert app.proc.returncode == 0, app.output()
    [line] = app.stdout().strip().splitlines()
    assert line.startswith("tender: no system tray here: no tray host"), line
    assert "Tender runs without an icon: dashboard at http://127.0.0.1:" in line and "token" not in line
