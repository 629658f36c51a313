"""The dashboard's server-rendered page (tray/api/page.py): what a user reads before any script runs."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tray.api import page as page_module
from tray.api.page import forward_row, human_bytes, local_address, render_page
from tray.ui.labels import size_text

ENGINE = {"version": "0.1.0", "pid": 4242, "host": "tray", "uid": 1000, "kubeconfig": ["/home/u/.kube/config"],
          "profiles": "/home/u/.config/tender/profiles.yaml", "started_at": "2026-11-30T14:03:54.123+00:00",
          "forwards": 1, "api": "v1"}
NO_PROFILES = {"path": "/home/u/.config/tender/profiles.yaml", "error": None, "problems": [], "profiles": []}


def forward(**fields: object) -> dict:
    f = {"session_id": "0b7c1f9e-1111-4222-8333-444455556666", "name": "svc/web", "profile": None,
         "cluster_id": "tender-a", "cluster_name": "tender-a", "namespace": "demo", "target": "svc/web",
         "target_kind": "svc", "target_name": "web", "remote_port": 80, "container_port": 8080,
         "local_port": 45721, "address": "127.0.0.1", "status": "active", "status_reason": "",
         "pod_name": "web-76dfcc75f8-547kg", "started_at": "2026-11-30T14:05:00+00:00", "attempts": 0,
         "next_retry_at": "", "recoverable": False, "usage_error": False, "warning": "", "connections": 1,
         "connections_total": 7, "bytes_in": 1536, "bytes_out": 300, "last_connection_error": "",
         "last_connection_error_at": ""}
    f.update(fields)
    return f


BLOCKS = {"td", "th", "tr", "li", "p", "button", "h1", "h2", "div", "ul", "ol", "section", "header", "table"}


class Tags(HTMLParser):
    """Every start tag as (tag, attrs), and the text, of a document."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in BLOCKS:
            self.text.append(" ")  # cells, items and buttons read apart, as on the screen

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", "".join(Tags(html).text)).strip()


def buttons(html: str) -> list[str]:
    return [a["data-action"] for a in Tags(html).find("button") if a.get("data-action")]


@pytest.mark.parametrize("n", [0, 1, 999, 1000, 1536, 9949, 9951, 30_000, 999_499, 999_500, 1_234_567,
                               15 * 10 ** 9, 10 ** 18])
def test_bytes_read_as_in_the_tray_menu(n: int) -> None:
    assert human_bytes(n) == size_text(n)


@pytest.mark.parametrize("n", [-1, None, "x", float("nan")])
def test_odd_byte_counts_read_as_zero(n: object) -> None:
    assert human_bytes(n) == "0 B"


def test_local_address_is_what_a_client_connects_to() -> None:
    assert local_address(forward()) == "127.0.0.1:45721"
    assert local_address(forward(address="localhost")) == "127.0.0.1:45721"
    assert local_address(forward(address="0.0.0.0")) == "127.0.0.1:45721"
    assert local_address(forward(address="::1")) == "[::1]:45721"
    assert local_address(forward(local_port=0)) == ""


def test_an_active_forward_reads_as_a_user_sees_it() -> None:
    row = forward_row(forward())
    assert text_of(row) == ("● active svc/web tender-a demo svc/web:80 web-76dfcc75f8-547kg 127.0.0.1:45721 "
                            "1 open 7 total ↓ 1.5 kB ↑ 300 B Open Copy Stop")
    tags = Tags(row)
    assert tags.find("a", href="http://127.0.0.1:45721/", rel="noopener noreferrer")
    assert tags.find("tr", id="f-0b7c1f9e-1111-4222-8333-444455556666", **{"data-status": "active",
                                                                             "data-local": "127.0.0.1:45721"})
    assert tags.find("span", title="pod port 8080")
    assert buttons(row) == ["log", "open", "copy", "stop"]


@pytest.mark.parametrize(("fields", "actions", "shown"), [
    ({"status": "starting", "local_port": 0, "pod_name": ""}, ["log", "stop"], "◌ starting"),
    ({"status": "reconnecting", "attempts": 3, "status_reason": "pod web-1 was deleted"},
     ["log", "copy", "stop"], "↻ reconnecting · attempt 3"),
    ({"status": "error", "status_reason": 'service "nope" not found'}, ["log", "retry", "remove"], "✕ error"),
])
def test_each_status_offers_its_buttons_and_says_why(fields: dict, actions: list[str], shown: str) -> None:
    row = forward_row(forward(**fields))
    assert buttons(row) == actions
    assert text_of(row).startswith(shown)
    if fields.get("status_reason"):
        assert fields["status_reason"].replace('"', "&quot;") in row
    assert not Tags(row).find("a")  # the address is a link only while the forward is active


def test_the_last_connection_error_and_a_warning_are_shown() -> None:
    row = forward_row(forward(last_connection_error="connection refused",
                              last_connection_error_at="2026-11-30T14:09:12+00:00", warning="no container declares 81"))
    assert "no container declares 81" in text_of(row)
    assert "last connection at 14:09:12 UTC: connection refused" in text_of(row)


def test_everything_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    f = forward(name=evil, namespace=evil, pod_name=evil, status_reason=evil, status="error", warning=evil,
                target=evil, cluster_id=evil, session_id='"><img src=x onerror=alert(1)>', address='"><b>')
    profiles = {"path": evil, "error": evil, "problems": [{"line": 1, "field": None, "message": evil}],
                "profiles": [{"name": evil, "group": evil, "context": evil, "namespace": evil, "target": evil,
                              "ports": [evil], "running": 0, "autostart": True}]}
    page = render_page({**ENGINE, "version": evil, "kubeconfig": [evil]}, [f], profiles)
    assert "<script>alert" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    # Still one row, one profile: nothing broke out of its element.
    tags = Tags(page)
    assert len(tags.find("tr", **{"data-status": "error"})) == 1
    assert len([a for t, a in tags.tags if t == "tr" and "data-profile" in a]) == 1


def test_the_page_has_no_inline_script_and_no_form_that_posts() -> None:
    page = render_page(ENGINE, [forward()], NO_PROFILES)
    tags = Tags(page)
    scripts = [a for t, a in tags.tags if t == "script"]
    # Relative: the dashboard lives under /d/RANDOM/, the only path its cookie is sent to.
    assert scripts == [{"src": "static/dashboard.js", "defer": None}]
    assert tags.find("link", rel="stylesheet", href="static/dashboard.css")
    assert not re.search(r"<script[^>]*>[^<]", page)
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers (the CSP forbids them)
    assert not tags.find("form")


def test_the_page_shows_the_engine_the_search_and_the_forwards() -> None:
    page = render_page(ENGINE, [forward(), forward(session_id="2", name="shop-web", profile="shop-web",
                                                   status="error", status_reason="boom")], NO_PROFILES)
    tags = Tags(page)
    assert tags.find("input", id="search", placeholder="Search contexts, namespaces, resources, ports")
    assert "Engine in the tray (pid 4242, Tender 0.1.0) · since 2026-11-30 14:03 UTC" in text_of(page)
    assert tags.find("span", id="forward-count")
    assert [a["id"] for a in tags.find("tr") if a.get("id")] == ["f-0b7c1f9e-1111-4222-8333-444455556666", "f-2"]
    assert tags.find("table", id="forwards") == [{"id": "forwards"}]  # shown
    assert "hidden" in tags.find("p", id="no-forwards")[0]  # the "no forwards yet" line is not


def test_without_forwards_the_page_says_how_to_start_one() -> None:
    page = render_page(ENGINE, [], NO_PROFILES)
    assert "No forwards yet: search above and click a port, or start a profile below." in text_of(page)
    assert "hidden" in Tags(page).find("table", id="forwards")[0]
    assert "No profiles yet" in text_of(page)


def test_profiles_with_their_problems_and_buttons() -> None:
    profiles = {"path": "/p.yaml", "error": "/p.yaml:9: profiles[2].ports[0]: port 99999 is out of range 1-65535",
                "problems": [{"line": 9, "field": "profiles[2].ports[0]",
                              "message": "/p.yaml:9: profiles[2].ports[0]: port 99999 is out of range 1-65535"},
                             {"line": 12, "field": "profiles[3].target",
                              "message": "/p.yaml:12: profiles[3].target: unknown kind 'svcs'"}],
                "profiles": [{"name": "shop-web", "group": "shop", "context": "tender-a", "namespace": "demo",
                              "target": "svc/web", "ports": ["18080:80"], "address": "127.0.0.1",
                              "autostart": True, "line": 3, "running": 1},
                             {"name": "shop-db", "group": "shop", "context": None, "namespace": None,
                              "target": "sts/db", "ports": [":5432", "9000"], "address": "127.0.0.1",
                              "autostart": False, "line": 6, "running": 0}]}
    page = render_page(ENGINE, [], profiles)
    text = text_of(page)
    assert "The profiles file has 2 problems; the profiles below are what could be read." in text
    assert "/p.yaml:12: profiles[3].target: unknown kind 'svcs'" in text.replace("&#x27;", "'")
    assert "shop-web autostart shop tender-a / demo svc/web 18080:80 1 Start Stop" in text
    assert "shop-db shop current context sts/db :5432, 9000 0 Start Stop" in text
    stops = [a for a in Tags(page).find("button", **{"data-action": "profile-stop"})]
    assert ["disabled" in a for a in stops] == [False, True]  # nothing of shop-db runs to stop


def test_a_profiles_file_that_cannot_be_read_at_all() -> None:
    page = render_page(ENGINE, [], {"path": "/p.yaml", "error": "/p.yaml:1: version: missing 'version: 1'",
                                    "profiles": []})
    assert "The profiles file has a problem." in text_of(page)
    assert "No profiles yet" not in text_of(page)


def test_the_script_calls_the_api_by_relative_urls_only() -> None:
    """An absolute /v1/... would leave the dashboard's path prefix: no cookie there, and a 404."""
    script = (Path(page_module.__file__).parent / "static" / "dashboard.js").read_text()
    calls = re.findall(r"""(?:fetch|api)\(\s*(?:"[A-Z]+",\s*)?["'`]([^"'`]*)""", script)
    assert len(calls) >= 10, calls
    assert all(c.startswith("v1/") for c in calls), calls


def test_a_service_spread_over_its_pods_shows_how_many() -> None:
    row = forward_row(forward(balance="round-robin", pods=["web-a", "web-b", "web-c"]))
    assert "3 pods (round-robin)" in text_of(row) and "web-76dfcc75f8-547kg" not in text_of(row)
    assert Tags(row).find("span", title="web-a, web-b, web-c")
    assert "web-76dfcc75f8-547kg" in text_of(forward_row(forward(balance="pin", pods=["web-76dfcc75f8-547kg"])))
