"""The dashboard's namespace groups as the server renders them (page.py's group_item and the section)."""

from __future__ import annotations

from tests.unit.api.test_page import buttons, text_of
from tray.api.page import group_item, render_page

GROUP = {"id": "g-1", "context": "prod", "namespace": "shop", "selector": "tier=web", "balance": "auto",
         "profile": None, "status": "active", "reason": "", "members": ["f1", "f2", "f3"],
         "skipped": ["svc/dns port 53: skipped (UDP: port-forward carries TCP only)"]}
FORWARDS = {"f1": {"session_id": "f1", "target": "svc/api", "address": "127.1.2.3", "local_port": 80,
                   "status": "active"},
            "f2": {"session_id": "f2", "target": "svc/<db>", "address": "127.4.5.6", "local_port": 0,
                   "status": "starting"}}


def test_a_group_reads_as_its_services_and_their_addresses() -> None:
    html = group_item(GROUP, FORWARDS)
    assert html.startswith('<li class="group" data-id="g-1" data-status="active">')
    assert text_of(html) == ("● active every Service of prod / shop matching tier=web 3 forwards Stop "
                             "svc/api 127.1.2.3:80 ● active svc/<db> — ◌ starting "
                             "svc/dns port 53: skipped (UDP: port-forward carries TCP only)")
    assert "svc/&lt;db&gt;" in html  # escaped
    assert buttons(html) == ["group-stop"]


def test_a_group_in_error_says_why() -> None:
    html = group_item({**GROUP, "status": "error", "reason": "services is forbidden", "members": [], "skipped": [],
                       "selector": "", "profile": "shop-all"}, {})
    assert text_of(html) == ("✕ error every Service of prod / shop profile shop-all 0 forwards "
                             "services is forbidden Stop")


def test_the_page_lists_groups_and_says_when_there_are_none() -> None:
    empty = render_page({}, [], {}, groups=[])
    assert '<ul id="groups" class="groups"></ul>' in empty and '<p id="no-groups" class="empty">' in empty
    assert 'data-action="group-start"' in empty  # the namespace picker's "Forward every Service"
    page = render_page({}, list(FORWARDS.values()), {}, groups=[GROUP])
    assert '<li class="group" data-id="g-1"' in page and '<p id="no-groups" class="empty" hidden>' in page
