"""The dashboard's "Forward every Service" in a real browser (issue 14): Debian's headless Chromium via Selenium.

A ``tender daemon`` on the test cluster and its dashboard (the fixtures of
tests/integration/test_dashboard_browser.py), and a namespace with three
Services (tests/integration/test_groups_engine.py's).  In Chromium: the
namespace picker's "Forward every Service" starts a group; it shows under
"Every Service of a namespace" with its members, each on its Service's own
address and port, which answer; the script's item reads as the server's
(page.py's ``group_item``); its Stop closes every member; a group started
elsewhere (the API, as ``tender forward --all-services`` does) shows by
itself and goes when it is stopped.
"""

from __future__ import annotations

import pytest

from tests.clusterlib import Cluster
from tests.integration.test_dashboard_browser import Dashboard, browser, dashboard, wait_until  # noqa: F401 - fixtures
from tests.integration.test_groups_engine import SERVICES, all_answer, all_refuse, group_ns  # noqa: F401 - fixture
from tests.unit.api.test_page import text_of
from tray.api.client import EngineClient
from tray.api.page import group_item
from tray.domain.addresses import auto_address

pytestmark = pytest.mark.cluster

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


def items(driver: WebDriver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#groups li.group")


def test_forward_every_service_of_a_namespace_from_the_dashboard(cluster: Cluster, group_ns: str,
                                                                dashboard: Dashboard, browser: WebDriver) -> None:
    ctx, ns = cluster.context, group_ns
    browser.get(dashboard.link())
    wait_until(browser, "the events stream to be followed",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")
    assert browser.find_element(By.ID, "no-groups").is_displayed() and items(browser) == []
    wait_until(browser, "the context picker to be filled",
               lambda: browser.find_elements(By.CSS_SELECTOR, f'#suggest-context option[value="{ctx}"]'))
    Select(browser.find_element(By.ID, "suggest-context")).select_by_value(ctx)
    field = browser.find_element(By.ID, "suggest-namespace")
    field.clear()
    field.send_keys(ns)
    browser.find_element(By.CSS_SELECTOR, 'button[data-action="group-start"]').click()

    def active_with_members() -> object:
        """The group item's texts once it is active with every member active, read in one go (the script
        re-renders the item as events come: an element read later may be a stale one)."""
        [item] = items(browser)
        members = item.find_elements(By.CSS_SELECTOR, "ul.members li")
        if not (item.get_attribute("data-status") == "active" and len(members) == SERVICES and all(
                "active" in m.find_element(By.CSS_SELECTOR, ".mstatus").text for m in members)):
            return None
        return {"where": item.find_element(By.CSS_SELECTOR, ".gwhere").text,
                "count": item.find_element(By.CSS_SELECTOR, ".gcount").text,
                "members": sorted((m.find_element(By.CSS_SELECTOR, ".mtarget").text,
                                   m.find_element(By.CSS_SELECTOR, ".mlocal").text) for m in members)}

    shown = wait_until(browser, "the group to show its members, active", active_with_members, timeout=60)
    assert shown == {"where": f"every Service of {ctx} / {ns}", "count": f"{SERVICES} forwards",
                     "members": [(f"svc/q{i}", f"{auto_address(ctx, ns, f'q{i}')}:{7200 + i}")
                                 for i in range(1, SERVICES + 1)]}
    assert browser.find_element(By.ID, "group-count").text == "1"
    assert not browser.find_element(By.ID, "no-groups").is_displayed()
    all_answer(ctx, ns)
    # The members are forwards too: rows of the forwards table (the list events may come a moment after
    # the group's: a burst of starts is coalesced).
    wait_until(browser, "a row per member", lambda: len(browser.find_elements(
        By.CSS_SELECTOR, "#forwards tbody tr")) == SERVICES)

    # The script's item reads as the server's for the same group (once the page has caught up with it).
    def same_as_server() -> bool:
        with EngineClient(dashboard.engine.socket) as client:
            [group] = client.get("/v1/groups")["groups"]
            forwards = {f["session_id"]: f for f in client.get("/v1/forwards")["forwards"]}
        [element] = items(browser)
        assert group["id"] == element.get_attribute("data-id")
        return text_of(element.get_attribute("outerHTML")) == text_of(group_item(group, forwards))

    wait_until(browser, "the script's group item to read as the server's", same_as_server)

    # Its Stop stops every member.
    wait_until(browser, "Stop to be clicked", lambda: items(browser)[0].find_element(
        By.CSS_SELECTOR, 'button[data-action="group-stop"]').click() or True)
    wait_until(browser, "the group to go", lambda: items(browser) == [] and
               browser.find_element(By.ID, "no-groups").is_displayed())
    wait_until(browser, "its forwards to go", lambda: browser.find_elements(By.CSS_SELECTOR,
                                                                            "#forwards tbody tr") == [])
    all_refuse(ctx, ns)
    with EngineClient(dashboard.engine.socket) as client:
        assert client.get("/v1/groups")["groups"] == [] and client.get("/v1/forwards")["forwards"] == []
    assert not browser.find_element(By.ID, "notice").is_displayed() or \
        browser.find_element(By.ID, "notice").get_attribute("data-kind") == "info"

    # A group started elsewhere shows by itself, and goes when stopped there.
    with EngineClient(dashboard.engine.socket) as client:
        started = client.post("/v1/groups", {"context": ctx, "namespace": ns, "selector": "tier=web"})
    # (Found and read in one go: the script re-renders the item as its members start.)
    wait_until(browser, "the group started elsewhere to show with its selector",
               lambda: [i for i in items(browser) if i.get_attribute("data-id") == started["id"]
                        and i.find_element(By.CSS_SELECTOR, "code.selector").text == "tier=web"])
    with EngineClient(dashboard.engine.socket) as client:
        client.delete(f"/v1/groups/{started['id']}")
    wait_until(browser, "the group stopped elsewhere to go", lambda: items(browser) == [])


def test_the_server_renders_a_running_group(cluster: Cluster, group_ns: str, dashboard: Dashboard) -> None:
    with EngineClient(dashboard.engine.socket) as client:
        started = client.post("/v1/groups", {"context": cluster.context, "namespace": group_ns})
    all_answer(cluster.context, group_ns)
    with dashboard.client() as c:
        page = c.get("/").text
    assert f'<li class="group" data-id="{started["id"]}" data-status="active">' in page
    assert page.count("<li data-member=") == SERVICES and '<p id="no-groups" class="empty" hidden>' in page
