"""The dashboard's "Cluster proxy" switch in a real browser (issue 14): Debian's headless Chromium via Selenium.

A ``tender daemon`` on the test cluster and its dashboard (the fixtures of
tests/integration/test_dashboard_browser.py).  In Chromium: the context's
switch is off; a click turns it on and the item says where the proxy
listens, with the two commands to copy; curl through that address reaches a
Service by name; the connection shows in the item's counters; Copy puts the
command on the clipboard; a proxy started elsewhere (the API, as the tray or
``tender proxy`` would) appears by itself; a click stops it and the port closes.
The script's item reads as the server's (page.py's ``proxy_item``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import service_manifest
from tests.integration.test_dashboard_browser import Dashboard, browser, dashboard, wait_until  # noqa: F401 - fixtures
from tests.unit.api.test_page import text_of
from tray.api import proxies
from tray.api.client import EngineClient
from tray.api.page import proxy_item

pytestmark = pytest.mark.cluster

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> Iterator[list[str]]:
    cluster.apply(deployment_manifest("web"), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    yield cluster.wait_ready(namespace, "app=web", 1)


def item(driver: WebDriver, context: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'#proxies li[data-context="{context}"]')


def shown(driver: WebDriver, context: str) -> dict:
    """The context's item as the page shows it, read in one go (the script replaces an item whose
    rendering changed, as the proxy's events come: an element kept for a later statement may be stale)."""
    li = item(driver, context)
    return {"on": li.get_attribute("data-on"),
            "checked": li.find_element(By.CSS_SELECTOR, 'button[role="switch"]').get_attribute("aria-checked"),
            "state": li.find_element(By.CSS_SELECTOR, ".proxy-state").text,
            "listen": [c.text for c in li.find_elements(By.CSS_SELECTOR, ".proxy-state code.listen")],
            "hints": [c.text for c in li.find_elements(By.CSS_SELECTOR, ".hints code")]}


def click(driver: WebDriver, context: str, selector: str) -> None:
    """Click ``selector`` in the context's item, found and clicked in one go (retried up to 30 s)."""
    wait_until(driver, f"{selector} of {context} to be clicked",
               lambda: item(driver, context).find_element(By.CSS_SELECTOR, selector).click() or True)


def other_context(cluster: Cluster) -> str:
    return "tender-b" if cluster.context != "tender-b" else "tender-a"


def test_the_cluster_proxy_switch_starts_a_proxy_that_reaches_services_by_name(
        cluster: Cluster, namespace: str, web: list[str], dashboard: Dashboard, browser: WebDriver) -> None:
    browser.get(dashboard.link())
    wait_until(browser, "the events stream to be followed",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")
    ctx = cluster.context
    assert browser.find_element(By.ID, "proxy-h").text == "Cluster proxy"
    off = wait_until(browser, "the context's item", lambda: shown(browser, ctx))
    assert (off["checked"], off["on"], off["state"]) == ("false", "false", "off"), off

    click(browser, ctx, 'button[role="switch"]')
    on = wait_until(browser, "the switch to turn on",
                    lambda: (now := shown(browser, ctx))["on"] == "true" and now)
    assert on["checked"] == "true", on
    [listen] = on["listen"]
    assert re.fullmatch(r"127\.0\.0\.1:10[89]\d", listen), listen  # the first free port from 1080
    hints = on["hints"]
    assert hints == [f"curl --socks5-hostname {listen} http://svc.ns/", f"HTTPS_PROXY=http://{listen}"]

    # What the hint says works, with the Service's name for svc.ns.
    done = subprocess.run(["curl", "-sS", "--max-time", "15", "--socks5-hostname", listen,
                           f"http://web.{namespace}/hostname"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout == web[0], done.stderr
    wait_until(browser, "the item's counters to show the connection",
               lambda: item(browser, ctx).find_element(By.CSS_SELECTOR, ".proxy-state .sub").text == "0 open · 1 total")

    # The script's item reads as the server's for the same proxy.
    def same_as_server() -> bool:
        """The item as the server renders the same proxy now (both read afresh: its counters move)."""
        with EngineClient(dashboard.engine.socket) as client:
            [proxy] = client.get("/v1/proxies")["proxies"]
            contexts = {c["name"]: c for c in client.get("/v1/contexts")["contexts"]}
        server = text_of(proxy_item(contexts[ctx], proxy))
        return text_of(item(browser, ctx).get_attribute("outerHTML")) == server

    wait_until(browser, "the script's item to read as the server's", same_as_server)

    # Copy puts the command on the clipboard.
    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": dashboard.origin, "permissions": [
        "clipboardReadWrite", "clipboardSanitizedWrite"]})
    click(browser, ctx, '.hints button[data-action="copy-text"]')
    wait_until(browser, "the page to say it copied",
               lambda: browser.find_element(By.ID, "notice").text == f"Copied {hints[0]}")
    assert browser.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0](String(e)))") == hints[0]

    # A proxy started elsewhere shows by itself.
    other = other_context(cluster)
    with EngineClient(dashboard.engine.socket) as client:
        started = client.post("/v1/proxies", {"context": other})
    wait_until(browser, "the other context's proxy to show",
               lambda: item(browser, other).find_element(By.CSS_SELECTOR, ".proxy-state code.listen").text
               == started["listen"])

    # A click stops it: the switch is off, the port closed.
    click(browser, ctx, 'button[role="switch"]')
    off = wait_until(browser, "the switch to turn off",
                     lambda: (now := shown(browser, ctx))["on"] == "false" and now)
    assert (off["checked"], off["state"]) == ("false", "off"), off
    host, port = proxies.parse_listen(listen)
    # The switch turns off on the engine's event; the listener's close may finish just after it.
    wait_until(browser, f"{listen} to be free again", lambda: proxies.port_is_free(host, port), timeout=10)
    with EngineClient(dashboard.engine.socket) as client:
        assert [p["context"] for p in client.get("/v1/proxies")["proxies"]] == [other]
    assert not browser.find_element(By.ID, "notice").is_displayed() or \
        browser.find_element(By.ID, "notice").get_attribute("data-kind") == "info"
