"""The dashboard's "Suggested by annotations" list in a real browser (issue 14 part 4).

Headless Chromium on a ``tender daemon``'s dashboard (the fixtures of
test_dashboard_browser.py): pick the context and a namespace of the test's
own whose Service carries a kftray annotation (kftray's docs/kftui/USAGE.md:
``alias-localport-port``) and whose Deployment's pods carry a k9s one (k9s's
README, FastForwards), see both listed, press Start, and reach the pod
through the forward the suggestion named.
"""

from __future__ import annotations

import pytest

from tests.clusterlib import Cluster
from tests.integration.engine import AGNHOST, hostname
from tests.integration.test_dashboard_browser import Dashboard, browser, dashboard, wait_until  # noqa: F401

pytestmark = pytest.mark.cluster

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

LOCAL = 29331  # below the ephemeral range (32768-60999), where outgoing connections could hold it


def manifests() -> str:
    return f"""
apiVersion: v1
kind: Service
metadata:
  name: shop
  annotations: {{kftray.app/configs: "shop-{LOCAL}-8080"}}
spec:
  selector: {{app: shop}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: shop}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata:
      labels: {{app: shop}}
      annotations: {{k9scli.io/port-forwards: "app::http"}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: {AGNHOST}
          args: [netexec, --http-port=8080]
          ports: [{{name: http, containerPort: 8080}}]
"""


def test_suggested_ports_are_listed_and_start(cluster: Cluster, namespace: str, dashboard: Dashboard,
                                              browser: WebDriver) -> None:
    cluster.apply(manifests(), namespace)
    (pod,) = cluster.wait_ready(namespace, "app=shop")
    browser.get(dashboard.link())
    wait_until(browser, "the events stream to be followed",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")
    heading = browser.find_element(By.ID, "suggest-h")
    assert heading.text == "Suggested by annotations"

    wait_until(browser, "the contexts to be offered",
               lambda: browser.find_elements(By.CSS_SELECTOR, f'#suggest-context option[value="{cluster.context}"]'))
    Select(browser.find_element(By.ID, "suggest-context")).select_by_value(cluster.context)
    field = browser.find_element(By.ID, "suggest-namespace")
    field.clear()
    field.send_keys(namespace)
    browser.find_element(By.CSS_SELECTOR, 'button[data-action="suggest-load"]').click()

    def listed() -> list[tuple[str, ...]] | None:
        items = browser.find_elements(By.CSS_SELECTOR, "#suggestions li.suggestion")
        shown = [tuple(span.text for span in li.find_elements(By.CSS_SELECTOR, ".kind, .rname, .sports, .rwhere"))
                 for li in items]
        return shown if len(shown) == 2 else None

    shown = wait_until(browser, "the namespace's suggestions", listed)
    assert shown == [
        ("Service", "svc/shop", f"{LOCAL}:80", "shop", "kftray.app/configs"),
        ("Deployment", "deploy/shop", "http", "app", "k9scli.io/port-forwards"),
    ]
    assert browser.find_element(By.ID, "suggest-status").text == ""

    # Found and clicked in one go (the list is the script's to re-render).
    wait_until(browser, "the first suggestion's Start to be clicked", lambda: browser.find_elements(
        By.CSS_SELECTOR, "#suggestions li.suggestion")[0].find_element(
        By.CSS_SELECTOR, 'button[data-action="suggest-start"]').click() or True)

    def active_row() -> bool:
        for row in browser.find_elements(By.CSS_SELECTOR, "#forwards tbody tr"):
            if row.get_attribute("data-status") == "active" and \
                    row.find_element(By.CSS_SELECTOR, "td.local").text == f"127.0.0.1:{LOCAL}":
                return True
        return False

    wait_until(browser, "the suggested forward's row to be active", active_row)
    # (The status is the start's answer; the row is the events': either may come first.)
    wait_until(browser, "the page to say it started the suggestion",
               lambda: f"Started svc/shop {LOCAL}:80" in browser.find_element(By.ID, "suggest-status").text)
    assert hostname(LOCAL) == pod
