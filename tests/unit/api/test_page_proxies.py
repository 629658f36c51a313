"""The dashboard's "Cluster proxy" list as the server renders it (tray/api/page.py): a switch per context,
and while a proxy runs, where it listens and the two commands to copy."""

from __future__ import annotations

from tests.unit.api.test_page import ENGINE, NO_PROFILES, Tags, text_of
from tray.api.page import proxy_item, render_page
from tray.api.proxies import proxy_dict
from tray.engine.proxy import ProxyInfo

CONTEXTS = [{"name": "tender-a", "current": True}, {"name": "tender-b", "current": False}]


def proxy(context: str = "tender-b", listen: str = "127.0.0.1:1081", **over: object) -> dict:
    info = ProxyInfo(context, listen, connections=2, connections_total=9, last_error="")
    return {**proxy_dict(info), **over}


def test_every_context_has_a_switch_off_until_its_proxy_runs() -> None:
    page = render_page(ENGINE, [], NO_PROFILES, CONTEXTS, [proxy()])
    tags = Tags(page)
    assert [a["data-context"] for a in tags.find("li", **{"class": "proxy"})] == ["tender-a", "tender-b"]
    assert [a["data-on"] for a in tags.find("li", **{"class": "proxy"})] == ["false", "true"]
    switches = tags.find("button", role="switch")
    assert [s["aria-checked"] for s in switches] == ["false", "true"]
    assert all(s["data-action"] == "proxy-toggle" for s in switches)
    assert [s["title"] for s in switches] == ["Start the cluster proxy of tender-a", "Stop the cluster proxy of tender-b"]
    text = text_of(page)
    assert "Cluster proxy A SOCKS5 and HTTP proxy on one local port per context" in text
    words = text.split()  # the items' parts are flex items: apart on the screen, not always by a space here
    assert " ".join(words[words.index("(current)off") - 1:][:2]) == "tender-a (current)off"
    assert ("tender-bon 127.0.0.1:1081 2 open · 9 total curl --socks5-hostname 127.0.0.1:1081 http://svc.ns/ "
            "CopyHTTPS_PROXY=http://127.0.0.1:1081 Copy") in text


def test_the_copy_buttons_copy_the_commands_shown() -> None:
    tags = Tags(proxy_item(CONTEXTS[1], proxy()))
    assert [b["data-text"] for b in tags.find("button", **{"data-action": "copy-text"})] == [
        "curl --socks5-hostname 127.0.0.1:1081 http://svc.ns/", "HTTPS_PROXY=http://127.0.0.1:1081"]


def test_a_proxy_on_every_address_is_reached_on_loopback_and_its_last_failure_is_shown() -> None:
    item = proxy_item({"name": "tender-b"}, proxy(listen="0.0.0.0:1080", last_error="no Service <web> in demo"))
    assert "on 0.0.0.0:1080" in text_of(item)
    assert "HTTPS_PROXY=http://127.0.0.1:1080" in text_of(item)
    assert "last failure: no Service <web> in demo" in text_of(item)
    assert "&lt;web&gt;" in item  # escaped like everything else


def test_a_proxy_on_every_address_shows_its_warning() -> None:
    from tray.engine.proxy import exposure_warning

    info = ProxyInfo("tender-b", "0.0.0.0:1080", 0, 0, "", exposure_warning("0.0.0.0"))
    item = proxy_item({"name": "tender-b"}, proxy_dict(info))
    assert ("warning: the proxy listens on every network interface (0.0.0.0): anyone who can reach this machine "
            "can use it to reach the cluster with your credentials") in text_of(item)
    assert "proxy-warning" not in proxy_item({"name": "tender-b"}, proxy())


def test_a_proxy_of_a_context_the_kubeconfig_no_longer_names_is_still_listed() -> None:
    page = render_page(ENGINE, [], NO_PROFILES, CONTEXTS[:1], [proxy("gone")])
    assert [a["data-context"] for a in Tags(page).find("li", **{"class": "proxy"})] == ["tender-a", "gone"]


def test_without_contexts_the_section_says_so() -> None:
    page = render_page(ENGINE, [], NO_PROFILES)
    assert "No contexts in the kubeconfig." in text_of(page)
    assert "hidden" not in Tags(page).find("p", id="no-contexts")[0]
    assert "hidden" in Tags(render_page(ENGINE, [], NO_PROFILES, CONTEXTS)).find("p", id="no-contexts")[0]
