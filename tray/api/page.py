"""The dashboard's page: plain HTML rendered on the server, kept live by ``static/dashboard.js``.

``GET /d/RANDOM/`` (the dashboard's path prefix, see :mod:`tray.api.server`)
on the dashboard's loopback listener answers :func:`render_page` of what the
API returns at that moment (``GET /v1/engine``, the forwards,
``GET /v1/profiles``), so the page is complete and readable before any
script runs.  The script then follows ``GET /v1/events`` and updates the
forwards table in place, runs the search, and calls the API for the buttons;
it builds a forward's row with the same structure and classes as
:func:`forward_row` (the two are kept in step by tests/unit/api/test_page.py
and the browser test).

The page has no inline script (the dashboard's Content-Security-Policy
allows scripts from its own origin only) and no form that posts anywhere:
every action goes through the script's ``fetch`` calls, which the server
checks like any other API request.  Its links to the stylesheet and the
script are relative (``static/...``), resolved under the prefix.  Every value
is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["STATUS_SYMBOLS", "forward_row", "group_item", "human_bytes", "local_address", "proxy_item",
           "render_page"]

#: The symbol shown before each status's name (the name is always written: colour is not the only cue).
STATUS_SYMBOLS = {"starting": "◌", "active": "●", "reconnecting": "↻", "error": "✕", "stopped": "■"}


#: The tab's icon, inline (the dashboard serves no other image): a white dot on a blue rounded square.
FAVICON = ("data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
           "%3Crect width='16' height='16' rx='4' fill='%232457c5'/%3E"
           "%3Ccircle cx='8' cy='8' r='3.5' fill='%23fff'/%3E%3C/svg%3E")


def e(value: Any) -> str:
    """``value`` as text safe in HTML content and in double-quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def human_bytes(n: Any) -> str:
    """A byte count for people, in SI units as the tray's menu and ``tender ls`` write it:
    ``"0 B"``, ``"812 B"``, ``"1.5 kB"``, ``"23 MB"``.

    One decimal below 10 of a unit, none above; anything that is not a
    non-negative number is shown as ``"0 B"``.
    """
    try:
        value = float(n)
    except (TypeError, ValueError):
        return "0 B"
    if value != value or value < 0:  # NaN or negative
        return "0 B"
    if value < 1000:
        return f"{int(value)} B"
    units = ("kB", "MB", "GB", "TB", "PB")
    for unit in units:
        value /= 1000
        if value < 999.5 or unit == units[-1]:
            break
    return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"


def local_address(forward: Mapping[str, Any]) -> str:
    """Where a local client connects: ``"127.0.0.1:PORT"`` (``"[::1]:PORT"`` for an IPv6
    address), or ``""`` while no port is bound.

    ``localhost`` (both loopbacks) and the any-addresses ``0.0.0.0``/``::`` are
    reached at ``127.0.0.1``.
    """
    port = forward.get("local_port") or 0
    if not port:
        return ""
    address = str(forward.get("address") or "127.0.0.1")
    if address in ("localhost", "0.0.0.0", "::", ""):
        address = "127.0.0.1"
    if ":" in address:
        address = f"[{address}]"
    return f"{address}:{port}"


def _status(forward: Mapping[str, Any]) -> str:
    status = str(forward.get("status") or "")
    symbol = STATUS_SYMBOLS.get(status, "?")
    text = status
    if status == "reconnecting" and forward.get("attempts"):
        text = f"{status} · attempt {forward['attempts']}"
    return f'<span class="badge s-{e(status)}"><span aria-hidden="true">{symbol}</span> {e(text)}</span>'


def _reason(forward: Mapping[str, Any]) -> str:
    parts = []
    status = forward.get("status")
    if forward.get("status_reason") and status in ("reconnecting", "error", "starting"):
        parts.append(f'<span class="why">{e(forward["status_reason"])}</span>')
    if forward.get("warning"):
        parts.append(f'<span class="warning">{e(forward["warning"])}</span>')
    if forward.get("last_connection_error"):
        at = str(forward.get("last_connection_error_at") or "")
        when = f" at {e(at[11:19])} UTC" if len(at) >= 19 else ""
        parts.append(f'<span class="conn-error" title="{e(at)}">last connection{when}: '
                     f'{e(forward["last_connection_error"])}</span>')
    return "".join(parts)


def _actions(forward: Mapping[str, Any]) -> str:
    status = forward.get("status")
    buttons = []
    if status == "active" and forward.get("protocol") != "UDP":  # a UDP port is no web page
        buttons.append('<button type="button" data-action="open">Open</button>')
    if local_address(forward) and status in ("active", "starting", "reconnecting"):
        buttons.append('<button type="button" data-action="copy">Copy</button>')
    if status == "error":
        buttons.append('<button type="button" data-action="retry">Retry</button>')
        buttons.append('<button type="button" data-action="remove" class="danger">Remove</button>')
    elif status != "stopped":
        buttons.append('<button type="button" data-action="stop" class="danger">Stop</button>')
    return "".join(buttons)


def forward_row(forward: Mapping[str, Any]) -> str:
    """One forward's ``<tr>`` in the forwards table (``forward`` is a FORWARD object of docs/api.md).

    The row is ``id="f-SESSION_ID"`` with ``data-id``, ``data-status`` and
    ``data-local`` (what Copy copies); its cells have the classes ``status``,
    ``name``, ``where``, ``target``, ``pod``, ``local``, ``conns``,
    ``bytes``, ``reason`` and ``actions``.  A relay forward (docs/api.md:
    ``relay_pod``) shows its protocol after the port (``span.proto``:
    ``TCP``/``UDP``; a UDP forward always does) and, in the pod cell,
    ``span.relay`` "relay pod NAME" and ``span.upstream`` "→ UPSTREAM".  The buttons carry
    ``data-action`` (``log``, ``open``, ``copy``, ``stop``, ``retry``,
    ``remove``).  ``dashboard.js`` builds the same.
    """
    sid = str(forward.get("session_id") or "")
    status = str(forward.get("status") or "")
    local = local_address(forward)
    if local and status == "active" and forward.get("protocol") != "UDP":
        local_cell = (f'<a href="http://{e(local)}/" target="_blank" rel="noopener noreferrer">'
                      f'{e(local)}</a>')
    elif local:
        local_cell = f'<span class="muted">{e(local)}</span>'
    else:
        local_cell = '<span class="muted">—</span>'
    port = forward.get("remote_port")
    container = forward.get("container_port") or 0
    relayed = forward.get("relay_pod")  # its container port is the relay pod's own
    shown = container and str(container) != str(port) and not relayed
    port_title = f' title="pod port {e(container)}"' if shown else ""
    pod = forward.get("pod_name") or ""
    pods = forward.get("pods") or []
    relay = forward.get("relay_pod") or ""
    if relay:  # Tender's own pod in the namespace, and where it connects
        upstream = forward.get("relay_upstream") or ""
        pod_cell = (f'<span class="relay" title="a pod Tender runs for this forward, deleted when it stops">'
                    f'relay pod {e(relay)}</span>'
                    + (f' <span class="sub upstream">→ {e(upstream)}</span>' if upstream else ""))
    elif len(pods) > 1:  # a Service's connections spread over its ready pods
        pod_cell = f'<span title="{e(", ".join(pods))}">{e(len(pods))} pods ({e(forward.get("balance"))})</span>'
    else:
        pod_cell = e(pod) if pod else '<span class="muted">—</span>'
    protocol = str(forward.get("protocol") or "TCP")
    proto = (f' <span class="proto" title="{"UDP datagrams" if protocol == "UDP" else "TCP connections"}'
             f' through a relay pod">{e(protocol)}</span>' if relay or protocol != "TCP" else "")
    return (
        f'<tr id="f-{e(sid)}" data-id="{e(sid)}" data-status="{e(status)}" data-local="{e(local)}">'
        f'<td class="status">{_status(forward)}</td>'
        f'<td class="name"><button type="button" class="link" data-action="log" '
        f'title="Show this forward\'s log">{e(forward.get("name"))}</button></td>'
        f'<td class="where">{e(forward.get("cluster_id"))} <span class="sub">{e(forward.get("namespace"))}</span></td>'
        f'<td class="target">{e(forward.get("target"))}<span class="port"{port_title}>:{e(port)}</span>{proto}</td>'
        f'<td class="pod">{pod_cell}</td>'
        f'<td class="local">{local_cell}</td>'
        f'<td class="conns num">{e(forward.get("connections") or 0)} open '
        f'<span class="sub">{e(forward.get("connections_total") or 0)} total</span></td>'
        f'<td class="bytes num"><span class="line" title="received from the pod">'
        f'↓ {e(human_bytes(forward.get("bytes_in")))}</span> '
        f'<span class="line" title="sent to the pod">↑ {e(human_bytes(forward.get("bytes_out")))}</span></td>'
        f'<td class="reason">{_reason(forward)}</td>'
        f'<td class="actions">{_actions(forward)}</td>'
        "</tr>"
    )


def _engine(engine: Mapping[str, Any]) -> str:
    host = "the tray" if engine.get("host") == "tray" else "tender daemon"
    kubeconfig = engine.get("kubeconfig") or []
    if isinstance(kubeconfig, str):
        kubeconfig = [kubeconfig]
    started = str(engine.get("started_at") or "")
    started = f" · since {e(started[:10])} {e(started[11:16])} UTC" if len(started) >= 16 else ""
    return (f'<p class="engine">Engine in {e(host)} (pid {e(engine.get("pid"))}, '
            f'Tender {e(engine.get("version"))}){started} · kubeconfig '
            f'<code>{e(":".join(map(str, kubeconfig)) or "default")}</code></p>')


def _forwards(forwards: list[Mapping[str, Any]]) -> str:
    rows = "".join(forward_row(f) for f in forwards)
    return (
        '<section id="forwards-section" aria-labelledby="forwards-h">'
        f'<h2 id="forwards-h">Forwards <span class="count" id="forward-count">{len(forwards)}</span></h2>'
        f'<p id="no-forwards" class="empty"{"" if not forwards else " hidden"}>No forwards yet: search above '
        "and click a port, or start a profile below.</p>"
        f'<div class="table-wrap"><table id="forwards"{" hidden" if not forwards else ""}>'
        '<thead><tr><th>Status</th><th>Name</th><th>Context <span class="sub">namespace</span></th>'
        "<th>Target</th><th>Pod</th>"
        "<th>Local address</th><th>Connections</th><th>In / out</th><th>Last error</th><th>Actions</th>"
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
        "</section>"
    )


def _search() -> str:
    return (
        '<section id="start" aria-labelledby="start-h">'
        '<h2 id="start-h">Start a forward</h2>'
        '<div class="search-bar" role="search">'
        '<input id="search" type="search" autocomplete="off" spellcheck="false" '
        'placeholder="Search contexts, namespaces, resources, ports" '
        'aria-label="Search contexts, namespaces, resources, ports" aria-describedby="search-help">'
        '<select id="search-context" aria-label="Context"><option value="">All contexts</option></select>'
        "</div>"
        '<p id="search-help" class="muted">Type a name, a namespace or a port, then click a port: Tender '
        "forwards it to a free local port.</p>"
        '<p id="search-status" class="muted" role="status"></p>'
        '<ul id="search-errors" class="errors"></ul>'
        '<ul id="results" class="results"></ul>'
        "</section>"
    )


def _relay_form() -> str:
    """The "Forward a host, IP or UDP port" form (no ``<form>``: ``dashboard.js`` sends ``POST /v1/forwards``
    from the Forward button or Enter, and writes the API's 4xx sentence in ``#relay-error``)."""
    return (
        '<section id="relay-section" aria-labelledby="relay-h">'
        '<h2 id="relay-h">Forward a host, IP or UDP port</h2>'
        '<div class="search-bar relay-form">'
        '<select id="relay-context" aria-label="Context"></select>'
        '<input id="relay-namespace" type="text" autocomplete="off" spellcheck="false" placeholder="Namespace" '
        'aria-label="Namespace">'
        '<input id="relay-target" type="text" autocomplete="off" spellcheck="false" '
        'placeholder="host/db.internal:5432, ip/10.0.3.7:5432, svc/dns" aria-label="Target" '
        'aria-describedby="relay-help relay-error">'
        '<input id="relay-ports" type="text" autocomplete="off" spellcheck="false" '
        'placeholder="Ports: 8053:53/udp" aria-label="Ports">'
        '<input id="relay-image" type="text" autocomplete="off" spellcheck="false" '
        'placeholder="Relay image (python:3.13-alpine)" aria-label="Relay image">'
        '<button type="button" data-action="relay-start">Forward</button>'
        "</div>"
        '<p id="relay-help" class="muted">A host or IP address only the cluster reaches, a Service without pods, or '
        "a UDP port (<code>/udp</code>): Tender runs a short-lived relay pod in the namespace and deletes it when "
        "the forward stops. Ports are kubectl's (<code>5432</code>, <code>15432:5432</code>, "
        "<code>8053:53/udp</code>), several separated by spaces; none when the target ends in "
        "<code>:PORT</code>.</p>"
        '<p id="relay-error" class="form-error" role="alert"></p>'
        '<p id="relay-status" class="muted" role="status"></p>'
        "</section>"
    )


def _suggestions() -> str:
    """The "Suggested by annotations" section, empty: ``dashboard.js`` fills it from
    ``GET /v1/contexts/C/namespaces/NS/suggestions`` (its items: ``li.suggestion``, a Start button each)."""
    return (
        '<section id="suggest-section" aria-labelledby="suggest-h">'
        '<h2 id="suggest-h">Suggested by annotations</h2>'
        '<div class="search-bar">'
        '<select id="suggest-context" aria-label="Context"></select>'
        '<input id="suggest-namespace" type="text" autocomplete="off" spellcheck="false" placeholder="Namespace" '
        'aria-label="Namespace">'
        '<button type="button" data-action="suggest-load">Show</button>'
        '<button type="button" data-action="group-start" title="Forward every Service of this namespace on its '
        "real ports, each on its own 127.x.y.z address, following Services as they come and go\">"
        "Forward every Service</button>"
        "</div>"
        '<p class="muted">The ports that k9s (<code>k9scli.io/port-forwards</code>, '
        "<code>k9scli.io/auto-port-forwards</code>) and kftray (<code>kftray.app/configs</code>) annotations "
        "declare in a namespace; Start forwards one as it says.</p>"
        '<p id="suggest-status" class="muted" role="status"></p>'
        '<ul id="suggest-problems" class="errors"></ul>'
        '<ul id="suggestions" class="results"></ul>'
        "</section>"
    )


def group_item(group: Mapping[str, Any], forwards: Mapping[str, Mapping[str, Any]]) -> str:
    """One namespace group in the "Every Service of a namespace" list: an ``<li>`` (``dashboard.js`` builds the same).

    ``group``: a GROUP object (docs/api.md); ``forwards``: FORWARD objects
    by ``session_id`` (its members are looked up there; one not yet known
    is left out).  The item is ``class="group"`` with ``data-id`` and
    ``data-status``; ``.gwhere`` says which Services, ``.gcount`` how many
    forwards, ``.why`` the reason (``error``, or no Services yet), a Stop
    button (``data-action="group-stop"``) stops the group and its members;
    ``ul.members`` has one ``li`` per member (``data-member``: its forward's
    id) with its target, local address and status; ``.skipped`` what is
    left out.
    """
    gid = str(group.get("id") or "")
    status = str(group.get("status") or "")
    members = [forwards[i] for i in group.get("members") or [] if i in forwards]
    count = len(group.get("members") or [])
    selector = (f' <span class="sub">matching <code class="selector">{e(group["selector"])}</code></span>'
                if group.get("selector") else "")
    profile = f' <span class="tag">profile {e(group["profile"])}</span>' if group.get("profile") else ""
    why = f' <span class="why">{e(group["reason"])}</span>' if group.get("reason") else ""
    rows = "".join(
        f'<li data-member="{e(f.get("session_id"))}"><span class="mtarget">{e(f.get("target"))}</span> '
        f'<code class="mlocal">{e(local_address(f) or "—")}</code> '
        f'<span class="mstatus s-{e(f.get("status"))}">{e(STATUS_SYMBOLS.get(str(f.get("status")), "?"))} '
        f'{e(f.get("status"))}</span></li>' for f in members)
    skipped = [str(x) for x in group.get("skipped") or []]
    skipped_line = f'<p class="skipped muted">{e("; ".join(skipped))}</p>' if skipped else ""
    return (f'<li class="group" data-id="{e(gid)}" data-status="{e(status)}">'
            f'<div class="ghead"><span class="badge s-{e(status)}"><span aria-hidden="true">'
            f'{STATUS_SYMBOLS.get(status, "?")}</span> {e(status)}</span> '
            f'<span class="gwhere">every Service of {e(group.get("context"))} / {e(group.get("namespace"))}</span>'
            f'{selector}{profile} <span class="gcount">{count} forward{"" if count == 1 else "s"}</span>{why}'
            '<button type="button" data-action="group-stop" class="danger" title="Stop this group and every '
            'forward of it">Stop</button></div>'
            f'<ul class="members">{rows}</ul>{skipped_line}</li>')


def _groups(groups: list[Mapping[str, Any]], forwards: list[Mapping[str, Any]]) -> str:
    by_id = {str(f.get("session_id")): f for f in forwards}
    return (
        '<section id="groups-section" aria-labelledby="groups-h">'
        f'<h2 id="groups-h">Every Service of a namespace <span class="count" id="group-count">{len(groups)}</span></h2>'
        '<p class="muted">Each Service on its real ports at an address of its own (<code>127.x.y.z</code>), '
        "followed as Services are created and deleted (<code>tender hosts</code> prints the names for them).</p>"
        f'<ul id="groups" class="groups">{"".join(group_item(g, by_id) for g in groups)}</ul>'
        f'<p id="no-groups" class="empty"{"" if not groups else " hidden"}>None: "Forward every Service" above '
        "starts one for a namespace.</p>"
        "</section>"
    )


def _profile_row(profile: Mapping[str, Any]) -> str:
    name = str(profile.get("name") or "")
    running = int(profile.get("running") or 0)
    ports = profile.get("ports") or []
    if not isinstance(ports, list):
        ports = [ports]
    where = e(profile.get("context") or "current context")
    if profile.get("namespace"):
        where += f'<span class="sep"> / </span>{e(profile["namespace"])}'
    tags = '<span class="tag">autostart</span>' if profile.get("autostart") else ""
    return (
        f'<tr data-profile="{e(name)}">'
        f'<td class="name">{e(name)} {tags}</td>'
        f'<td>{e(profile.get("group") or "")}</td>'
        f"<td>{where}</td>"
        f'<td>{e(profile.get("target"))}</td>'
        f'<td>{e(", ".join(map(str, ports)))}</td>'
        f'<td class="running num">{running}</td>'
        '<td class="actions"><button type="button" data-action="profile-start">Start</button>'
        f'<button type="button" data-action="profile-stop" class="danger"{"" if running else " disabled"}>'
        "Stop</button></td></tr>"
    )


def _profiles(profiles: Mapping[str, Any]) -> str:
    items = [p for p in profiles.get("profiles") or [] if isinstance(p, Mapping)]
    path = profiles.get("path") or ""
    out = ['<section id="profiles-section" aria-labelledby="profiles-h">',
           f'<h2 id="profiles-h">Profiles <span class="count">{len(items)}</span></h2>',
           f'<p class="muted">From <code>{e(path)}</code>.</p>']
    problems = [p for p in profiles.get("problems") or [] if isinstance(p, Mapping)]
    messages = [str(p.get("message") or "") for p in problems] or (
        [str(profiles["error"])] if profiles.get("error") else [])
    if messages:
        lead = ("The profiles file has a problem" if len(messages) == 1
                else f"The profiles file has {len(messages)} problems")
        lead += "; the profiles below are what could be read." if items else "."
        out.append('<div class="problems" role="alert"><p><strong>' + e(lead) + "</strong></p><ul>"
                   + "".join(f"<li><code>{e(m)}</code></li>" for m in messages) + "</ul></div>")
    if items:
        out.append('<div class="table-wrap"><table id="profiles"><thead><tr><th>Name</th><th>Group</th>'
                   "<th>Context / namespace</th><th>Target</th><th>Ports</th><th>Running</th><th>Actions</th>"
                   "</tr></thead><tbody>" + "".join(_profile_row(p) for p in items) + "</tbody></table></div>")
    elif not messages:
        out.append('<p class="empty">No profiles yet: a profile is a forward you start by name '
                   "(<code>tender start NAME</code>), written in the file above.</p>")
    out.append("</section>")
    return "".join(out)


def proxy_item(context: Mapping[str, Any], proxy: Mapping[str, Any] | None) -> str:
    """One context's cluster proxy in the "Cluster proxy" list: an ``<li>`` (``dashboard.js`` builds the same).

    ``context``: a ``GET /v1/contexts`` entry (``name``, ``current``);
    ``proxy``: its PROXY object (docs/api.md), or None when it has none.
    The item is ``class="proxy"`` with ``data-context`` and ``data-on``
    (``true``/``false``); its switch is a ``button`` with ``role="switch"``,
    ``aria-checked`` and ``data-action="proxy-toggle"``; while on, ``.proxy-state``
    says where it listens and its connections, ``.proxy-warning`` that other machines can use it
    (an any-address), ``.proxy-error`` the last
    failure, and ``.hints`` two commands, each with a Copy button
    (``data-action="copy-text"``, ``data-text``).
    """
    name = str(context.get("name") or "")
    current = ' <span class="sub">(current)</span>' if context.get("current") else ""
    on = proxy is not None
    switch = (f'<button type="button" class="switch" role="switch" aria-checked="{"true" if on else "false"}" '
              f'data-action="proxy-toggle" title="{"Stop" if on else "Start"} the cluster proxy of {e(name)}">'
              f'<span class="knob" aria-hidden="true"></span>{e(name)}{current}</button>')
    if proxy is None:
        return (f'<li class="proxy" data-context="{e(name)}" data-on="false">{switch}'
                '<span class="proxy-state muted">off</span></li>')
    listen = str(proxy.get("listen") or "")
    curl = str(proxy.get("curl") or f"curl --socks5-hostname {listen} http://svc.ns/")
    env = f'HTTPS_PROXY={proxy.get("http_url") or f"http://{listen}"}'
    hints = "".join(f'<span class="hint"><code>{e(text)}</code> <button type="button" data-action="copy-text" '
                    f'data-text="{e(text)}" title="Copy this command">Copy</button></span>' for text in (curl, env))
    error = (f'<span class="proxy-error">last failure: {e(proxy["last_error"])}</span>'
             if proxy.get("last_error") else "")
    warning = (f'<span class="proxy-warning">warning: {e(proxy["warning"])}</span>'
               if proxy.get("warning") else "")
    return (f'<li class="proxy" data-context="{e(name)}" data-on="true">{switch}'
            f'<span class="proxy-state">on <code class="listen">{e(listen)}</code> '
            f'<span class="sub">{e(proxy.get("connections") or 0)} open · '
            f'{e(proxy.get("connections_total") or 0)} total</span></span>{warning}{error}'
            f'<div class="hints">{hints}</div></li>')


def _proxies(contexts: list[Mapping[str, Any]], proxies: list[Mapping[str, Any]]) -> str:
    by_context = {str(p.get("context")): p for p in proxies}
    names = {str(c.get("name")) for c in contexts}
    items = [*contexts, *({"name": n, "current": False} for n in by_context if n not in names)]
    return (
        '<section id="proxy-section" aria-labelledby="proxy-h">'
        '<h2 id="proxy-h">Cluster proxy</h2>'
        '<p class="muted">A SOCKS5 and HTTP proxy on one local port per context: programs set to use it reach '
        "the context's Services and pods by the names a pod uses (<code>web.demo</code>, "
        "<code>db-0.db.demo.svc.cluster.local</code>) on their real ports.</p>"
        f'<ul id="proxies" class="proxies">{"".join(proxy_item(c, by_context.get(str(c.get("name")))) for c in items)}'
        "</ul>"
        f'<p id="no-contexts" class="empty"{"" if not items else " hidden"}>No contexts in the kubeconfig.</p>'
        "</section>"
    )


def render_page(engine: Mapping[str, Any], forwards: Iterable[Mapping[str, Any]], profiles: Mapping[str, Any],
                contexts: Iterable[Mapping[str, Any]] = (), proxies: Iterable[Mapping[str, Any]] = (),
                groups: Iterable[Mapping[str, Any]] = ()) -> str:
    """The dashboard's whole HTML document (a ``str``; serve it as ``text/html; charset=utf-8``).

    ``engine`` is ``GET /v1/engine``'s object, ``forwards`` the FORWARD
    objects (in start order), ``profiles`` ``GET /v1/profiles``'s object,
    ``contexts`` ``GET /v1/contexts``'s entries, ``proxies`` the PROXY
    objects and ``groups`` the GROUP objects, as docs/api.md describes them; missing fields are shown as empty.  Pure
    and quick (no I/O); never raises for odd values, which are escaped like
    everything else.
    """
    forwards = list(forwards)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        "<title>Tender</title>"
        f'<link rel="icon" href="{FAVICON}">'
        '<link rel="stylesheet" href="static/dashboard.css">'
        '<script src="static/dashboard.js" defer></script>'
        "</head><body>"
        '<header class="top"><div class="brand"><h1>Tender</h1>'
        '<span id="live" class="live" role="status" data-state="connecting">connecting…</span></div>'
        f"{_engine(engine)}</header>"
        '<div id="notice" class="notice" role="alert" hidden></div>'
        "<main>"
        f"{_search()}"
        f"{_relay_form()}"
        f"{_suggestions()}"
        f"{_forwards(forwards)}"
        f"{_groups(list(groups), forwards)}"
        '<section id="log-panel" aria-labelledby="log-h" hidden>'
        '<div class="log-head"><h2 id="log-h">Log of <span id="log-name"></span></h2>'
        '<button type="button" data-action="log-refresh">Refresh</button>'
        '<button type="button" data-action="log-close">Close</button></div>'
        '<ol id="log-lines" class="log"></ol></section>'
        f"{_proxies(list(contexts), list(proxies))}"
        f"{_profiles(profiles)}"
        "</main>"
        '<noscript><p class="notice">The page does not update and its buttons do nothing without '
        "JavaScript; <code>tender ls</code> and <code>tender stop</code> do the same from a terminal."
        "</p></noscript>"
        "</body></html>\n"
    )
