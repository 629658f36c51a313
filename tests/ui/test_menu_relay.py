"""Relay forwards (issue 15) in the menu and notifications: the upstream, UDP and the relay pod, on plain data."""

from __future__ import annotations

from tests.ui.fakes import session
from tray.ui import labels
from tray.ui.menu import MenuState, build_menu, session_item
from tray.ui.model import Action, ActionKind, Item
from tray.ui.notify import TransitionTracker, summarize

RELAY = "tender-relay-x7k2q"


def labels_of(item: Item) -> list[str]:
    return [c.label for c in item.children if not c.separator]


def test_a_host_forward_row_names_where_the_relay_connects() -> None:
    s = session("host/db.internal", 15432, 5432, pod=RELAY, relay_pod=RELAY, relay_upstream="db.internal:5432")
    menu = build_menu(MenuState(sessions=[s]))
    assert labels_of(menu)[1] == "host/db.internal  15432 → db.internal:5432  tender-a/shop  active"
    item = menu.children[2]
    assert labels_of(item) == [f"Relay pod {RELAY} → db.internal:5432", "Copy address", "Stop",
                               "Save as profile…"]
    assert item.child("Copy address").action == Action(ActionKind.COPY, ("127.0.0.1:15432",))


def test_the_upstream_shows_before_the_relay_pod_exists() -> None:
    s = session("ip/10.0.3.7", 0, 5432, status="starting", pod="")
    assert labels.session_label(s) == "ip/10.0.3.7  … → 10.0.3.7:5432  tender-a/shop  starting"
    assert labels_of(session_item(s)) == ["Stop", "Save as profile…"]  # no pod to name yet


def test_an_ipv6_address_is_bracketed() -> None:
    s = session("ip/fd00::7", 8053, 53, pod=RELAY, protocol="UDP", relay_pod=RELAY, relay_upstream="fd00::7:53")
    assert labels.ports_text(s) == "8053 → [fd00::7]:53/udp"
    assert labels.relay_text(s) == f"Relay pod {RELAY} → [fd00::7]:53"


def test_a_udp_forward_says_udp_and_offers_no_browser() -> None:
    s = session("svc/dns", 8080, 80, pod=RELAY, protocol="UDP", relay_pod=RELAY, relay_upstream="its pods")
    assert labels.session_label(s) == "svc/dns  8080 → 80/udp  tender-a/shop  active"
    assert labels.session_title(s) == "svc/dns 8080 → 80/udp"
    item = session_item(s)
    assert labels_of(item)[0] == f"Relay pod {RELAY} → its pods"
    assert "Open in browser" not in labels_of(item)  # port 80 over UDP is no web page


def test_a_service_without_pods_names_its_endpoints_and_the_relay_pod_in_any_status() -> None:
    s = session("svc/legacy", 5432, 5432, status="reconnecting", reason="the relay pod was deleted",
                pod=RELAY, relay_pod=RELAY, relay_upstream="the endpoints of service legacy")
    assert labels.session_label(s) == "svc/legacy  5432 → 5432  tender-a/shop  reconnecting"
    assert labels_of(session_item(s))[:2] == ["the relay pod was deleted",
                                              f"Relay pod {RELAY} → the endpoints of service legacy"]
    assert "Pod " + RELAY not in labels_of(session_item(s))


def test_ordinary_forwards_are_unchanged() -> None:
    s = session("svc/web", 8080, 80, pod="web-7c9")
    assert labels.ports_text(s) == "8080 → 80"
    assert labels.pod_text(s) == "pod web-7c9" and labels.relay_text(s) == ""
    assert labels_of(session_item(s))[0] == "Pod web-7c9"


def test_a_recovery_notification_says_relay_pod() -> None:
    t = TransitionTracker()
    kw = dict(id="r", pod=RELAY, relay_pod=RELAY, relay_upstream="db.internal:5432")
    t.feed(session("host/db.internal", 15432, 5432, status="active", **kw), now=0)
    t.feed(session("host/db.internal", 15432, 5432, status="error", reason="relay pod deleted", **kw), now=1)
    back = t.feed(session("host/db.internal", 15432, 5432, status="active", **{**kw, "pod": "tender-relay-b2",
                                                                             "relay_pod": "tender-relay-b2"}), now=2)
    assert back is not None
    [m] = summarize([back]).messages
    assert (m.title, m.body) == ("Reconnected: host/db.internal 15432 → db.internal:5432",
                                 "tender-a/shop: reconnected to relay pod tender-relay-b2")
