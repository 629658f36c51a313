"""The dashboard in a real browser (issue 13): Debian's headless Chromium driven by Selenium.

A ``tender daemon`` runs on the test cluster (its own runtime directory, so
its socket and claim are the test's); ``tender dashboard --print-url`` gives
a link to the page with a one-time code.  In Chromium: search a Deployment, click its
port, see the row turn active, get the app's answer through the local port,
watch the counters move, start and stop a profile, read a forward's log,
stop the forward and see its row go.  The page is photographed for the
README (docs/images/dashboard.png) and tests/artifacts.

The dashboard's cookie stays in the dashboard: a forwarded pod opened from
the page on 127.0.0.1 (another port: browsers send cookies to every port of a
host) is not sent it, though the browser sends it a cookie the dashboard's
page set for the whole host.

Then, without a browser, the dashboard's guards: a request without the
session cookie, with a foreign Host header, a foreign Origin or a cross-site
fetch is refused with 403 and changes nothing.

Chromium and chromedriver are Debian's (tests/debian-packages.txt);
Selenium is pointed at both, so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.clusterlib import ROOT, Cluster, deployment_manifest
from tests.integration.daemon import Daemon
from tests.integration.engine import hostname, service_manifest, wait_for
from tray.api.page import forward_row

pytestmark = pytest.mark.cluster

webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[test]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.select import Select  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACT = ROOT / "tests" / "artifacts" / "dashboard.png"
README_IMAGE = ROOT / "docs" / "images" / "dashboard.png"


LINK = re.compile(r"http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]{16,}/\?code=[A-Za-z0-9_-]{32,}")


@dataclass
class Dashboard:
    """The dashboard of a running ``tender daemon`` (``engine``), as ``tender dashboard --print-url`` gives it."""

    engine: Daemon
    first: str  # the first link: http://127.0.0.1:PORT/d/RANDOM/?code=CODE
    _session: str | None = None

    @property
    def origin(self) -> str:
        parts = urlsplit(self.first)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def prefix(self) -> str:
        """``/d/RANDOM/``: where everything the dashboard serves lives."""
        return urlsplit(self.first).path

    def link(self) -> str:
        """A new link (``tender dashboard --print-url``), good for one visit."""
        done = self.engine.tender("dashboard", "--print-url")
        assert done.returncode == 0, done
        url = done.stdout.strip()
        assert LINK.fullmatch(url) and url.startswith(self.origin + self.prefix), url
        return url

    @property
    def session(self) -> str:
        """The ``tender_session`` cookie's value, as a browser gets it for a link (traded once)."""
        if self._session is None:
            traded = httpx.get(self.link(), follow_redirects=False, timeout=10)
            assert traded.status_code == 303, traded.text
            self._session = traded.cookies["tender_session"]
        return self._session

    def client(self, **headers: str) -> httpx.Client:
        """An HTTP client of the dashboard (URLs relative to its prefix: ``/v1/forwards`` is
        ``/d/RANDOM/v1/forwards``), with its session cookie unless ``Cookie`` is given ("": none)."""
        base = {"Cookie": f"tender_session={self.session}", **headers}
        return httpx.Client(base_url=self.origin + self.prefix, headers={k: v for k, v in base.items() if v},
                            timeout=10)

    def forwards(self) -> list[dict]:
        with self.client() as c:
            answer = c.get("/v1/forwards")
            assert answer.status_code == 200, answer.text
            return answer.json()["forwards"]


@pytest.fixture
def dashboard(cluster: Cluster, tmp_path: Path) -> Iterator[Dashboard]:
    """``tender daemon`` on the test kubeconfig (its config and state under ``tmp_path``), and its dashboard."""
    with Daemon(cluster, tmp_path) as engine:
        engine.start()

        def url() -> str | None:
            assert engine.proc.poll() is None, f"tender daemon exited {engine.proc.returncode}:\n{engine.log_text()}"
            done = engine.tender("dashboard", "--print-url")
            return done.stdout.strip() if done.returncode == 0 else None

        found = wait_for(url, 30, "tender dashboard --print-url to answer", interval=0.2)
        assert LINK.fullmatch(found), found
        yield Dashboard(engine, found)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (chromium, chromium-driver: make debian-deps)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,900",
                f"--user-data-dir={tmp_path / 'chromium'}", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps", "--lang=en-US",
                "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path given to the Service: Selenium Manager is skipped (nothing is downloaded).
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until(driver: WebDriver, what: str, find: Callable[[], object], timeout: float = 30) -> object:
    """Poll ``find()`` (stale or missing elements retried) until it returns something truthy."""
    def attempt() -> object:
        try:
            return find()
        except Exception:  # noqa: BLE001 -- an element replaced under us: ask again
            return None

    try:
        return wait_for(attempt, timeout, what, interval=0.1)
    except AssertionError as exc:
        logs = "\n".join(str(e) for e in driver.get_log("browser"))
        raise AssertionError(f"{exc}\npage text:\n{driver.find_element(By.TAG_NAME, 'body').text}\n"
                             f"browser log:\n{logs}") from None


def row_of(driver: WebDriver, **data: str) -> WebElement | None:
    """The forwards table's row whose cells read ``data`` (class -> text), else None.

    The script replaces a row on each of its forward's events (stats come every second): read or click
    what it returns within the same ``wait_until`` predicate, never in a later statement (a stale element).
    """
    for row in driver.find_elements(By.CSS_SELECTOR, "#forwards tbody tr"):
        if all(row.find_element(By.CSS_SELECTOR, f"td.{cls}").text == text for cls, text in data.items()):
            return row
    return None


def click_in_row(driver: WebDriver, action: str, **data: str) -> None:
    """Click the button ``data-action=action`` of the row whose cells read ``data`` (as ``row_of``), the row
    found and the button clicked in one go, retried until it is clicked (30 s at most)."""
    wait_until(driver, f"{action} to be clicked in the row of {data}", lambda: row_of(driver, **data).find_element(
        By.CSS_SELECTOR, f'button[data-action="{action}"]').click() or True)


class Cells(HTMLParser):
    """The text of each ``td`` of one rendered row, by its first class (buttons' labels run together,
    as the browser's text of a cell has them)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.cells: dict[str, str] = {}
        self._current: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self._current = (dict(attrs).get("class") or "").split()[0]
            self.cells[self._current] = ""

    def handle_data(self, data: str) -> None:
        if self._current:
            self.cells[self._current] += data


def screenshot(driver: WebDriver) -> None:
    """The whole page (as tall as its content), to tests/artifacts; with TENDER_README_IMAGES=1 also the README's.

    (A plain run must not rewrite a tracked file: docs/images/dashboard.png is
    renewed on purpose, by ``TENDER_README_IMAGES=1 pytest tests/integration/test_dashboard_browser.py``.)
    """
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1440, "height": min(max(int(height), 700), 2400), "deviceScaleFactor": 1, "mobile": False})
    driver.execute_script("window.scrollTo(0, 0)")
    ActionChains(driver).move_to_element(driver.find_element(By.TAG_NAME, "h1")).perform()  # no hover left
    time.sleep(0.5)  # laid out at the new size
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACT))
    if os.environ.get("TENDER_README_IMAGES") == "1":
        shutil.copyfile(ARTIFACT, README_IMAGE)


def test_search_start_use_and_stop_a_forward_in_the_browser(cluster: Cluster, namespace: str, dashboard: Dashboard,
                                                            browser: WebDriver) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    cluster.apply(deployment_manifest(name, replicas=2), namespace)
    cluster.apply(service_manifest(name, {"app": name}, "[{name: http, port: 80, targetPort: http}]"), namespace)
    pods = cluster.wait_ready(namespace, f"app={name}", count=2)
    profiles = dashboard.engine.profiles
    profiles.write_text(f"""version: 1
profiles:
  - {{name: {name}-web, context: {cluster.context}, namespace: {namespace}, target: svc/{name}, ports: [":80"],
     group: shop}}
  - {{name: {name}-admin, context: {cluster.context}, namespace: {namespace}, target: deploy/{name},
     ports: [":8080"], group: shop}}
""")

    # The link's one-time code becomes a cookie and leaves the address bar.
    browser.get(dashboard.link())
    assert browser.current_url == dashboard.origin + dashboard.prefix
    assert browser.title == "Tender"
    wait_until(browser, "the events stream to be followed",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")
    assert browser.find_element(By.ID, "no-forwards").is_displayed()

    # Two clicks: type, then click the Deployment's port.
    search = browser.find_element(By.ID, "search")
    assert search.get_attribute("placeholder") == "Search contexts, namespaces, resources, ports"
    search.click()
    search.send_keys(f"{name} {namespace}")

    def deployment_hit() -> WebElement | None:
        for li in browser.find_elements(By.CSS_SELECTOR, "#results li"):
            kind = li.find_element(By.CSS_SELECTOR, ".kind").text
            where = li.find_element(By.CSS_SELECTOR, ".rwhere").text
            if kind == "Deployment" and li.find_element(By.CSS_SELECTOR, ".rname").text == name \
                    and where == f"{cluster.context} / {namespace}":
                return li
        return None

    def listed() -> dict | None:
        """The hit's port and the kinds listed in the test's namespace, read in one go (a search the
        script runs again replaces the results)."""
        hit = deployment_hit()
        if hit is None:
            return None
        return {"kinds": [li.find_element(By.CSS_SELECTOR, ".kind").text
                          for li in browser.find_elements(By.CSS_SELECTOR, "#results li")
                          if li.find_element(By.CSS_SELECTOR, ".rwhere").text == f"{cluster.context} / {namespace}"],
                "port": hit.find_element(By.CSS_SELECTOR, 'button[data-action="forward"]').text}

    shown = wait_until(browser, f"the search to list deploy/{name}", listed)
    assert shown == {"kinds": ["Service", "Deployment", "Pod", "Pod"], "port": "8080 http"}, shown

    def port() -> WebElement:
        return deployment_hit().find_element(By.CSS_SELECTOR, 'button[data-action="forward"]')

    wait_until(browser, "the Deployment's port to be clicked", lambda: port().click() or True)

    def active_row() -> dict | None:
        """The active row's address, cells and buttons, read in one go (the script replaces the row as
        its events come)."""
        row = row_of(browser, target=f"deploy/{name}:8080", status="● active")
        return row and {"local": row.get_attribute("data-local"),
                        "where": row.find_element(By.CSS_SELECTOR, "td.where").text,
                        "href": row.find_element(By.CSS_SELECTOR, "td.local a").get_attribute("href"),
                        "actions": [b.text for b in row.find_elements(By.CSS_SELECTOR, "td.actions button")],
                        "pod": row.find_element(By.CSS_SELECTOR, "td.pod").text}

    shown = wait_until(browser, "the forward's row to turn active", active_row)
    local = shown["local"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", local), local
    assert shown["where"] == f"{cluster.context}\n{namespace}"
    assert shown["href"] == f"http://{local}/"
    assert shown["actions"] == ["Open", "Copy", "Stop"]
    # The search's port now says it is forwarded.
    wait_until(browser, "the port button to show the forward",
               lambda: "on" in port().get_attribute("class").split() and local in port().get_attribute("title"))

    # The port answers: the app's own answer, from the pod the row names.
    pod = shown["pod"]
    assert pod in pods
    assert hostname(int(local.rsplit(":", 1)[1])) == pod

    def counted_bytes() -> list[str] | None:
        row = row_of(browser, target=f"deploy/{name}:8080", conns="0 open\n1 total")
        return row and row.find_element(By.CSS_SELECTOR, "td.bytes").text.split("\n")

    down, up = wait_until(browser, "the counters to show the connection", counted_bytes)
    assert down.startswith("↓ ") and up.startswith("↑ ") and "↓ 0 B" != down and "↑ 0 B" != up

    # The script's row reads as the server's (page.py's forward_row) for the same forward.
    def same_as_server() -> bool:
        """The row's cells as the server renders the same forward now (both read afresh, the row's in one go)."""
        [forward] = [f for f in dashboard.forwards() if f["target"] == f"deploy/{name}"]
        server = Cells(forward_row(forward)).cells
        row = browser.find_element(By.ID, f"f-{forward['session_id']}")
        live = {cls: row.find_element(By.CSS_SELECTOR, f"td.{cls}").text for cls in server}
        return {cls: re.sub(r"\s+", "", text) for cls, text in live.items()} == \
            {cls: re.sub(r"\s+", "", text) for cls, text in server.items()}

    wait_until(browser, "the script's row to read as the server's", same_as_server)

    # Copy puts the address on the clipboard; Open shows the app in a new tab.
    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": dashboard.origin, "permissions": [
        "clipboardReadWrite", "clipboardSanitizedWrite"]})
    click_in_row(browser, "copy", target=f"deploy/{name}:8080")
    wait_until(browser, "the page to say it copied",
               lambda: browser.find_element(By.ID, "notice").text == f"Copied {local}")
    assert browser.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0](String(e)))") == local
    page = browser.current_window_handle
    click_in_row(browser, "open", target=f"deploy/{name}:8080")
    tab = wait_until(browser, "Open to open a tab", lambda: [h for h in browser.window_handles if h != page])[0]
    browser.switch_to.window(tab)
    wait_until(browser, "the tab to show the app", lambda: browser.current_url == f"http://{local}/" and
               browser.find_element(By.TAG_NAME, "body").text.startswith("NOW:"))
    browser.close()
    browser.switch_to.window(page)

    # A profile's Start button: its row appears; the profile counts it; its Stop takes it away.
    browser.refresh()  # the profiles are read when the page is rendered
    wait_until(browser, "the events stream to be followed again",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")

    def profile(action: str) -> None:
        """Click the profile's ``profile-start`` or ``profile-stop``, found and clicked in one go."""
        wait_until(browser, f"{action} to be clicked", lambda: browser.find_element(
            By.CSS_SELECTOR, f'tr[data-profile="{name}-web"] button[data-action="{action}"]').click() or True)

    profile("profile-start")
    wait_until(browser, "the profile's forward to be active",
               lambda: row_of(browser, name=f"{name}-web", status="● active"))
    wait_until(browser, "the profile to count its forward", lambda: browser.find_element(
        By.CSS_SELECTOR, f'tr[data-profile="{name}-web"] td.running').text == "1")

    # Search again in one context (the picture shows the search); open the first forward's log.
    wait_until(browser, "the contexts to be offered", lambda: len(browser.find_elements(
        By.CSS_SELECTOR, "#search-context option")) > 2)
    Select(browser.find_element(By.ID, "search-context")).select_by_visible_text(f"{cluster.context} (current)")
    search = browser.find_element(By.ID, "search")
    search.send_keys(name)
    contexts = wait_until(browser, "the search to list it again", lambda: deployment_hit() and {
        li.find_element(By.CSS_SELECTOR, ".rwhere").text.split(" / ")[0]
        for li in browser.find_elements(By.CSS_SELECTOR, "#results li")})
    assert contexts == {cluster.context}
    click_in_row(browser, "log", target=f"deploy/{name}:8080")

    def log_shown() -> dict | None:
        lines = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#log-lines li")]
        return lines and {"name": browser.find_element(By.ID, "log-name").text, "lines": lines}

    log = wait_until(browser, "the forward's log", log_shown)
    assert log["name"] == f"deploy/{name}:8080"
    assert any(pod in line for line in log["lines"]), log
    screenshot(browser)

    profile("profile-stop")
    wait_until(browser, "the profile's row to go", lambda: row_of(browser, name=f"{name}-web") is None)

    # Stop: the row goes, and so does the listener.
    click_in_row(browser, "stop", target=f"deploy/{name}:8080")
    wait_until(browser, "the row to go", lambda: row_of(browser, target=f"deploy/{name}:8080") is None)
    assert dashboard.forwards() == []
    assert browser.find_element(By.ID, "no-forwards").is_displayed()
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_a_forward_in_error_says_why_and_offers_retry_and_remove(cluster: Cluster, namespace: str, dashboard: Dashboard,
                                                                 browser: WebDriver) -> None:
    name = f"api-{uuid.uuid4().hex[:6]}"
    cluster.apply(deployment_manifest(name), namespace)
    cluster.wait_ready(namespace, f"app={name}")
    browser.get(dashboard.link())
    # A port the Deployment does not declare, through the search's "Other…" (it asks in a prompt).
    browser.find_element(By.ID, "search").send_keys(f"deploy/{name}")

    def hit() -> WebElement:
        """The first result in the test's namespace (IndexError if none: wait_until asks again)."""
        return [li for li in browser.find_elements(By.CSS_SELECTOR, "#results li")
                if li.find_element(By.CSS_SELECTOR, ".rwhere").text == f"{cluster.context} / {namespace}"][0]

    kind = wait_until(browser, f"the search to list deploy/{name}",
                      lambda: hit().find_element(By.CSS_SELECTOR, ".kind").text)
    assert kind == "Deployment"
    wait_until(browser, "Other… to be clicked", lambda: hit().find_element(
        By.CSS_SELECTOR, 'button[data-action="forward-other"]').click() or True)
    prompt = wait_until(browser, "the prompt for a port", lambda: browser.switch_to.alert)
    assert prompt.text == f"Port of deploy/{name} to forward (a number, or a port name):"
    prompt.send_keys("grpc")
    prompt.accept()

    def error_row() -> dict | None:
        """The row in error's reason, buttons and links, read in one go (the script replaces the row as
        its events come)."""
        row = row_of(browser, target=f"deploy/{name}:grpc", status="✕ error")
        return row and {"reason": row.find_element(By.CSS_SELECTOR, "td.reason").text,
                        "actions": [b.text for b in row.find_elements(By.CSS_SELECTOR, "td.actions button")],
                        "links": len(row.find_elements(By.CSS_SELECTOR, "td.local a"))}

    shown = wait_until(browser, "the row to show the error", error_row)
    assert "grpc" in shown["reason"], shown
    assert shown["actions"] == ["Retry", "Remove"], shown
    assert shown["links"] == 0, shown  # no link to a port that does not forward

    def errors_logged() -> int:
        return sum("grpc" in li.text for li in browser.find_elements(By.CSS_SELECTOR, "#log-lines li.l-error"))

    click_in_row(browser, "log", target=f"deploy/{name}:grpc", status="✕ error")
    failed = wait_until(browser, "the log to show the error", errors_logged)
    # Retry: it fails again, and the open log shows it without a click on Refresh.
    click_in_row(browser, "retry", target=f"deploy/{name}:grpc", status="✕ error")
    wait_until(browser, "the retried forward to fail again in the log", lambda: errors_logged() > failed)
    # (Its row's own event may come a moment after the log's line.)
    wait_until(browser, "the retried forward's row to show the error again",
               lambda: row_of(browser, target=f"deploy/{name}:grpc", status="✕ error"))
    assert not browser.find_element(By.ID, "notice").is_displayed()
    click_in_row(browser, "remove", target=f"deploy/{name}:grpc")
    wait_until(browser, "the row to go", lambda: row_of(browser, target=f"deploy/{name}:grpc") is None)
    assert dashboard.forwards() == []
    assert browser.find_element(By.ID, "log-name").text.endswith("(stopped)")


def test_the_page_says_reconnecting_when_the_engine_goes(cluster: Cluster, dashboard: Dashboard,
                                                        browser: WebDriver) -> None:
    browser.get(dashboard.link())
    live = browser.find_element(By.ID, "live")
    wait_until(browser, "the stream", lambda: live.get_attribute("data-state") == "live")
    dashboard.engine.proc.terminate()
    dashboard.engine.proc.wait(20)
    wait_until(browser, "the page to say it is reconnecting",
               lambda: live.text == "reconnecting to Tender…" and live.is_displayed())


def test_a_forwarded_pod_opened_from_the_dashboard_is_not_sent_its_cookie(cluster: Cluster, namespace: str,
                                                                          dashboard: Dashboard,
                                                                          browser: WebDriver) -> None:
    """Browsers send a host's cookies to all its ports: the dashboard's cookie is kept to its path prefix,
    so a pod forwarded to another port of 127.0.0.1 (agnhost's /header echoes a request header) never
    sees it, while a cookie set for the whole host does reach it (the browser would have sent ours)."""
    name = f"echo-{uuid.uuid4().hex[:6]}"
    cluster.apply(deployment_manifest(name), namespace)
    cluster.wait_ready(namespace, f"app={name}")
    fwd = dashboard.engine.start_forward({"context": cluster.context, "namespace": namespace,
                                          "target": f"deploy/{name}", "ports": [":8080"]})
    echo = f"http://127.0.0.1:{fwd['local_port']}/header?key=Cookie"
    browser.get(dashboard.link())
    wait_until(browser, "the events stream to be followed",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")
    assert [c["name"] for c in browser.get_cookies()] == ["tender_session"]
    # The control: a cookie for the whole host, set by the dashboard's own page.
    browser.execute_script("document.cookie = 'probe=host-wide; path=/; SameSite=Strict'")
    # The pod opened from the dashboard's page (as its links do), then typed in the address bar.
    browser.execute_script("window.location.href = arguments[0]", echo)
    wait_until(browser, "the pod's answer", lambda: browser.current_url == echo)
    from_page = browser.find_element(By.TAG_NAME, "body").text
    browser.get(echo)
    typed = browser.find_element(By.TAG_NAME, "body").text
    for sent in (from_page, typed):
        assert sent.strip() == "probe=host-wide", sent
        assert dashboard.session not in sent
    # The dashboard still has its session (the cookie was kept, not lost).
    browser.get(dashboard.origin + dashboard.prefix)
    assert browser.title == "Tender"
    wait_until(browser, "the events stream to be followed again",
               lambda: browser.find_element(By.ID, "live").get_attribute("data-state") == "live")


def test_requests_without_the_session_from_another_host_or_origin_are_refused(cluster: Cluster, namespace: str,
                                                                             dashboard: Dashboard) -> None:
    name = f"guard-{uuid.uuid4().hex[:6]}"
    cluster.apply(deployment_manifest(name), namespace)
    body = {"context": cluster.context, "namespace": namespace, "target": f"deploy/{name}", "ports": [":8080"]}
    with dashboard.client() as ok:
        started = ok.post("/v1/forwards", json=body)
        assert started.status_code == 201, started.text
    before = dashboard.forwards()
    [sid] = [f["session_id"] for f in before]
    port = urlsplit(dashboard.first).port
    refused = {
        "no session": dashboard.client(Cookie=""),
        "a wrong session": dashboard.client(Cookie="tender_session=not-the-session-key"),
        "the session as a bearer": dashboard.client(Cookie="", Authorization=f"Bearer {dashboard.session}"),
        "a foreign Host": dashboard.client(Host=f"evil.example:{port}"),
        "another port in Host": dashboard.client(Host=f"127.0.0.1:{port + 1}"),
        "a foreign Origin": dashboard.client(Origin="http://evil.example"),
        "a lookalike Origin": dashboard.client(Origin=f"http://127.0.0.1.evil.example:{port}"),
        "a cross-site fetch": dashboard.client(**{"Sec-Fetch-Site": "cross-site"}),
    }
    for why, client in refused.items():
        with client:
            for method, path, payload in (("GET", "/v1/forwards", None), ("GET", "/", None),
                                          ("POST", "/v1/forwards", body), ("POST", "/v1/forwards/stop", {"all": True}),
                                          ("POST", f"/v1/forwards/{sid}/stop", {}),
                                          ("DELETE", f"/v1/forwards/{sid}", None),
                                          ("GET", "/v1/events", None), ("POST", "/v1/dashboard", None)):
                answer = client.request(method, path, json=payload)
                assert answer.status_code == 403, f"{why}: {method} {path} answered {answer.status_code}"
                assert "error" in answer.json(), f"{why}: {method} {path}: {answer.text}"
                assert "access-control-allow-origin" not in answer.headers
    # A wrong code in the link sets no cookie.
    with dashboard.client(Cookie="") as bare:
        answer = bare.get("/?code=not-a-code", follow_redirects=False)
        assert answer.status_code == 403 and "set-cookie" not in answer.headers
    # Nothing changed: the same forward, and nothing added.
    after = dashboard.forwards()
    assert [f["session_id"] for f in after] == [sid]
    assert after[0]["status"] in ("starting", "active")
    # The same requests with the session, the page's Host and Origin work (the refusals were the guard's).
    with dashboard.client(Origin=dashboard.origin, Host=f"localhost:{port}") as ok:
        assert ok.post(f"/v1/forwards/{sid}/stop", json={}).status_code == 200
    assert dashboard.forwards() == []
