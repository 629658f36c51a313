"""Relay forwards from the dashboard in a real browser (issue 15).

Headless Chromium on a ``tender daemon``'s dashboard (the fixtures of
test_dashboard_browser.py), on a cluster whose kubelet runs the relay pod's
program for real (``TENDER_TEST_CLUSTER_DIR=/tmp/tc-R``-style clusters,
tests/cluster/kubelet_process.go): type ``host/localhost:PORT`` for a
listener this test binds on 127.0.0.1 (only the node reaches it) into "Forward
a host, IP or UDP port", see the row go active naming its relay pod and where
it connects, get the listener's answer through the local port, press Stop and
see the row and the relay pod go (within 5 s).  Bad input gets the API's one
sentence under the form and starts nothing.  A UDP port (``:PORT/udp`` to a
UDP echo on 127.0.0.1) says UDP, offers no Open, and echoes.  The page is photographed to
tests/artifacts/dashboard-relay.png (and its error to dashboard-relay-error.png).
"""

from __future__ import annotations

import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.clusterlib import ROOT, Cluster, eventually
from tests.integration.test_cli_engine import columns
from tests.integration.test_dashboard_browser import (Cells, Dashboard, browser, dashboard,  # noqa: F401
                                                      wait_until)
from tests.integration.relays import RELAYS, node_only_server
from tray.api.page import forward_row
from tray.engine.session import SessionInfo
from tray.ui.menu import session_item

pytestmark = pytest.mark.cluster

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

ARTIFACT = ROOT / "tests" / "artifacts" / "dashboard-relay.png"
ERROR_ARTIFACT = ROOT / "tests" / "artifacts" / "dashboard-relay-error.png"


@pytest.fixture
def node_only() -> Iterator[int]:
    """The port of a TCP server only the node reaches (tests.integration.relays.node_only_server)."""
    srv, port = node_only_server()
    with srv:
        yield port


def ask(address: str, payload: bytes) -> bytes:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def fill_form(browser: WebDriver, cluster: Cluster, namespace: str, target: str, ports: str) -> None:
    wait_until(browser, "the contexts to be offered in the relay form",
               lambda: browser.find_elements(By.CSS_SELECTOR, f'#relay-context option[value="{cluster.context}"]'))
    Select(browser.find_element(By.ID, "relay-context")).select_by_value(cluster.context)
    for field, text in (("relay-namespace", namespace), ("relay-target", target), ("relay-ports", ports)):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(text)
    browser.find_element(By.CSS_SELECTOR, 'button[data-action="relay-start"]').click()


def read_row(row: WebElement) -> dict:
    """A forwards-table row as the page shows it, read in one go (the script replaces a row on each of its
    forward's events, stats every second: an element kept for a later statement may be stale): its id,
    ``data-local``, each cell's text by the cell's first class, the target's port title, its buttons'
    labels and how many links it has."""
    ports = row.find_elements(By.CSS_SELECTOR, "td.target .port")
    return {"id": row.get_attribute("id"), "local": row.get_attribute("data-local"),
            "cells": {((td.get_attribute("class") or "").split() or [""])[0]: td.text
                      for td in row.find_elements(By.CSS_SELECTOR, "td")},
            "port_titles": [p.get_attribute("title") for p in ports],
            "actions": [b.text for b in row.find_elements(By.CSS_SELECTOR, "td.actions button")],
            "links": len(row.find_elements(By.CSS_SELECTOR, "td.local a"))}


def click_stop(browser: WebDriver, row_id: str) -> None:
    """Click Stop in the row ``row_id`` (``f-SESSION``), found and clicked in one go."""
    wait_until(browser, "Stop to be clicked", lambda: browser.find_element(By.ID, row_id).find_element(
        By.CSS_SELECTOR, 'button[data-action="stop"]').click() or True)


def test_forward_a_host_from_the_form_use_it_and_stop_it(cluster: Cluster, namespace: str, dashboard: Dashboard,
                                                        browser: WebDriver, node_only: int) -> None:
    port = node_only
    browser.get(dashboard.link())
    wait_until(browser, "the events stream to be followed",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")
    assert browser.find_element(By.ID, "relay-h").text == "Forward a host, IP or UDP port"

    # Bad input: the API's sentence under the form, nothing started.
    fill_form(browser, cluster, namespace, "host/db_x", "5432")
    error = wait_until(browser, "the form's error", lambda: browser.find_element(By.ID, "relay-error").text)
    assert 'invalid host name "db_x"' in error, error
    assert "\n" not in error and error.count(". ") == 0, error  # one sentence
    assert browser.find_element(By.ID, "relay-status").text == ""
    assert browser.find_element(By.ID, "relay-error").is_displayed()
    browser.execute_script("document.getElementById('relay-section').scrollIntoView()")
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ERROR_ARTIFACT))
    assert dashboard.forwards() == []
    assert cluster.pods(namespace, RELAYS) == []

    # host/localhost:PORT, any free local port: the row goes active and names its relay pod.
    fill_form(browser, cluster, namespace, f"host/localhost:{port}", f":{port}")

    def active_row() -> object:
        for row in browser.find_elements(By.CSS_SELECTOR, "#forwards tbody tr"):
            if row.get_attribute("data-status") == "active" and \
                    row.find_element(By.CSS_SELECTOR, "td.target").text.startswith(f"host/localhost:{port}"):
                return read_row(row)
        return None

    row = wait_until(browser, "the relay forward's row to be active", active_row, timeout=90)
    assert browser.find_element(By.ID, "relay-error").text == ""
    # (The status is the start's answer; the row is the events': either may come first.)
    wait_until(browser, "the form to say it started the forward",
               lambda: browser.find_element(By.ID, "relay-status").text ==
               f"Started host/localhost:{port} :{port} in {cluster.context} / {namespace}.")
    [forward] = dashboard.forwards()
    relay = forward["relay_pod"]
    assert re.fullmatch(r"tender-relay-[a-z0-9-]+", relay), forward
    assert forward["relay_upstream"] == f"localhost:{port}" and forward["protocol"] == "TCP"
    assert [p["metadata"]["name"] for p in cluster.pods(namespace, RELAYS)] == [relay]
    assert row["id"] == f'f-{forward["session_id"]}', row
    target = row["cells"]["target"]
    assert re.sub(r"\s+", " ", target) == f"host/localhost:{port} TCP"
    pod = row["cells"]["pod"]
    assert re.sub(r"\s+", " ", pod) == f"relay pod {relay} → localhost:{port}"
    assert row["port_titles"][0] in ("", None), row  # not 8400
    # The script's row reads as the server's (page.py's forward_row) for the same forward.
    server = Cells(forward_row(forward)).cells
    live = {cls: row["cells"][cls] for cls in server if cls not in ("conns", "bytes")}
    assert {cls: re.sub(r"\s+", "", text) for cls, text in live.items()} == \
        {cls: re.sub(r"\s+", "", server[cls]) for cls in live}

    # The tray's menu for the same forward (the engine's snapshot, as the tray's engine lists it).
    known = {f.name for f in dataclasses.fields(SessionInfo)}
    fields = {k: v for k, v in forward.items() if k in known}
    info = SessionInfo(id=forward["session_id"], **{**fields, "pods": tuple(forward["pods"])})
    item = session_item(info)
    where = f"{cluster.context}/{namespace}"
    assert item.label == f"host/localhost  {info.local_port} → localhost:{port}  {where}  active"
    assert item.children[0].label == f"Relay pod {relay} → localhost:{port}"

    # tender ls -o wide names the relay pod and where it connects in POD; REMOTE is the port asked for.
    listed = dashboard.engine.tender("ls", "-o", "wide")
    assert listed.returncode == 0, listed
    [wide] = columns(listed.stdout)
    assert (wide["REMOTE"], wide["POD"], wide["TARGET"]) == (str(port), f"{relay} (relay to localhost:{port})",
                                                             "host/localhost")

    # The local port answers with what only the node reaches.
    local = row["local"]
    assert local.startswith("127.0.0.1:")
    assert ask(local, b"hello from the dashboard") == b"node-only server got: hello from the dashboard"

    browser.execute_script("document.getElementById('relay-section').scrollIntoView()")
    time.sleep(0.3)
    browser.save_screenshot(str(ARTIFACT))

    # Stop: the row goes, and so does the relay pod (within 5 s).
    click_stop(browser, row["id"])
    stopped = time.monotonic()
    wait_until(browser, "the row to go",
               lambda: not browser.find_elements(By.CSS_SELECTOR, f'#f-{forward["session_id"]}'), timeout=10)
    eventually(lambda: not cluster.pods(namespace, RELAYS), timeout=5 - (time.monotonic() - stopped),
               what="the relay pod to be deleted")
    assert dashboard.forwards() == []


@pytest.fixture
def node_only_udp_echo() -> Iterator[int]:
    """A UDP echo on this machine's loopback (only the node reaches it); its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                data, peer = sock.recvfrom(65535)
                sock.sendto(b"echo: " + data, peer)
            except OSError:
                return

    threading.Thread(target=serve, daemon=True).start()
    with sock:
        yield sock.getsockname()[1]


def test_a_udp_port_from_the_form_says_udp_and_offers_no_browser(cluster: Cluster, namespace: str,
                                                                 dashboard: Dashboard, browser: WebDriver,
                                                                 node_only_udp_echo: int) -> None:
    port = node_only_udp_echo
    browser.get(dashboard.link())
    wait_until(browser, "the events stream to be followed",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")
    fill_form(browser, cluster, namespace, "host/localhost", f":{port}/udp")

    def active_row() -> object:
        rows = browser.find_elements(By.CSS_SELECTOR, '#forwards tbody tr[data-status="active"]')
        return read_row(rows[0]) if rows else None

    row = wait_until(browser, "the UDP forward's row to be active", active_row, timeout=90)
    [forward] = dashboard.forwards()
    assert forward["protocol"] == "UDP" and forward["relay_upstream"] == f"localhost:{port}", forward
    assert row["id"] == f'f-{forward["session_id"]}', row
    assert re.sub(r"\s+", " ", row["cells"]["target"]) == f"host/localhost:{port} UDP"
    assert re.sub(r"\s+", " ", row["cells"]["pod"]) == f"relay pod {forward['relay_pod']} → localhost:{port}"
    assert row["actions"] == ["Copy", "Stop"], row
    assert row["links"] == 0, row  # a UDP port is no web page
    local = row["local"]
    host, local_port = local.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(3)
        client.connect((host, int(local_port)))
        for _ in range(3):  # UDP: a datagram may be lost
            client.send(b"ping")
            try:
                assert client.recv(100) == b"echo: ping"
                break
            except socket.timeout:
                continue
        else:
            raise AssertionError("no answer through the UDP forward")

    click_stop(browser, row["id"])
    stopped = time.monotonic()
    wait_until(browser, "the row to go",
               lambda: not browser.find_elements(By.CSS_SELECTOR, f'#f-{forward["session_id"]}'), timeout=10)
    eventually(lambda: not cluster.pods(namespace, RELAYS), timeout=5 - (time.monotonic() - stopped),
               what="the relay pod to be deleted")
