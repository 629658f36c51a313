// Tender's dashboard: keeps the server-rendered page (tray/api/page.py) live.
//
// Follows GET /v1/events (one JSON object per line, read with fetch and a
// ReadableStream), updates the forwards table in place, runs the search, and
// calls the API for every button (docs/api.md).  Every URL is relative to the
// page's (v1/events, not /v1/events): the dashboard lives under a random path
// prefix, the only path its cookie is sent to.  No framework, no build step.
// Every value is put in the page as text (textContent), never as HTML.
"use strict";

(() => {
  const RECONNECT_MS = 2000;      // wait before following the events again after a lost stream
  const SILENCE_MS = 40000;       // the engine pings every 15 s: this long without a byte = lost
  const SEARCH_DELAY_MS = 250;    // typing pause before a search is sent
  const SYMBOLS = {starting: "◌", active: "●", reconnecting: "↻", error: "✕", stopped: "■"};

  const forwards = new Map();     // session_id -> FORWARD, in start order
  const gone = new Set();         // ids a list event dropped: their late status events are ignored
  let live = false;
  let firstList = true;  // the next list event is the first of a stream
  let logId = null;
  const proxies = new Map();      // context -> PROXY (docs/api.md), the cluster proxies running
  let contexts = null;            // GET /v1/contexts' entries, once loaded
  const groups = new Map();       // id -> GROUP (docs/api.md), the namespace groups running
  let groupsKnown = false;        // until the API said which run, the server's list stands

  const $ = (sel) => document.querySelector(sel);

  // ------------------------------------------------------------------ DOM helpers
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "className") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // SI units, as page.py's human_bytes, the tray's menu and `tender ls` write them.
  function humanBytes(n) {
    let value = Number(n);
    if (!Number.isFinite(value) || value < 0) return "0 B";
    if (value < 1000) return `${Math.floor(value)} B`;
    const units = ["kB", "MB", "GB", "TB", "PB"];
    let unit = units[0];
    for (unit of units) {
      value /= 1000;
      if (value < 999.5 || unit === units[units.length - 1]) break;
    }
    return value < 9.95 ? `${value.toFixed(1)} ${unit}` : `${value.toFixed(0)} ${unit}`;
  }

  function localAddress(f) {
    if (!f.local_port) return "";
    let address = String(f.address || "127.0.0.1");
    if (["localhost", "0.0.0.0", "::", ""].includes(address)) address = "127.0.0.1";
    if (address.includes(":")) address = `[${address}]`;
    return `${address}:${f.local_port}`;
  }

  function clock(iso) {
    const t = new Date(iso);
    return Number.isNaN(t.getTime()) ? "" : t.toLocaleTimeString([], {hour12: false});
  }

  // "deploy/web:8080", or "shop-web (svc/web:80)" for a profile's forward.
  function describe(f) {
    const target = `${f.target}:${f.remote_port}`;
    return f.name && f.name !== f.target ? `${f.name} (${target})` : target;
  }

  function muted(text) { return h("span", {className: "muted"}, text); }

  // ------------------------------------------------------------------ the forwards table
  function statusCell(f) {
    let text = f.status || "";
    if (f.status === "reconnecting" && f.attempts) text = `${f.status} · attempt ${f.attempts}`;
    return [h("span", {className: `badge s-${f.status || ""}`},
      h("span", {"aria-hidden": "true"}, SYMBOLS[f.status] || "?"), ` ${text}`)];
  }

  function reasonCell(f) {
    const parts = [];
    if (f.status_reason && ["reconnecting", "error", "starting"].includes(f.status)) {
      parts.push(h("span", {className: "why"}, f.status_reason));
    }
    if (f.warning) parts.push(h("span", {className: "warning"}, f.warning));
    if (f.last_connection_error) {
      const at = f.last_connection_error_at ? ` at ${clock(f.last_connection_error_at)}` : "";
      parts.push(h("span", {className: "conn-error", title: f.last_connection_error_at || ""},
        `last connection${at}: ${f.last_connection_error}`));
    }
    return parts;
  }

  function actionsCell(f) {
    const out = [];
    const button = (action, label, cls) => h("button", {type: "button", "data-action": action, className: cls}, label);
    if (f.status === "active" && f.protocol !== "UDP") out.push(button("open", "Open"));  // UDP: no web page
    if (localAddress(f) && ["active", "starting", "reconnecting"].includes(f.status)) out.push(button("copy", "Copy"));
    if (f.status === "error") {
      out.push(button("retry", "Retry"));
      out.push(button("remove", "Remove", "danger"));
    } else if (f.status !== "stopped") {
      out.push(button("stop", "Stop", "danger"));
    }
    return out;
  }

  function connsCell(f) {
    return [`${f.connections || 0} open `, h("span", {className: "sub"}, `${f.connections_total || 0} total`)];
  }

  function bytesCell(f) {
    return [h("span", {className: "line", title: "received from the pod"}, `↓ ${humanBytes(f.bytes_in)}`), " ",
      h("span", {className: "line", title: "sent to the pod"}, `↑ ${humanBytes(f.bytes_out)}`)];
  }

  // The same row as page.py's forward_row.
  function renderRow(f) {
    const local = localAddress(f);
    let localCell;
    if (local && f.status === "active" && f.protocol !== "UDP") {
      localCell = h("a", {href: `http://${local}/`, target: "_blank", rel: "noopener noreferrer"}, local);
    } else {
      localCell = muted(local || "—");
    }
    const container = f.container_port || 0;
    const portTitle = container && String(container) !== String(f.remote_port) && !f.relay_pod  // the relay's own
      ? `pod port ${container}` : null;
    const cell = (cls, ...content) => h("td", {className: cls}, ...content);
    return h("tr", {id: `f-${f.session_id}`, "data-id": f.session_id, "data-status": f.status, "data-local": local},
      cell("status", statusCell(f)),
      cell("name", h("button", {type: "button", className: "link", "data-action": "log",
        title: "Show this forward's log"}, f.name || "")),
      cell("where", `${f.cluster_id || ""} `, h("span", {className: "sub"}, f.namespace || "")),
      cell("target", f.target || "", h("span", {className: "port", title: portTitle}, `:${f.remote_port}`),
        protoBadge(f)),
      cell("pod", podCell(f)),
      cell("local", localCell),
      cell("conns num", connsCell(f)),
      cell("bytes num", bytesCell(f)),
      cell("reason", reasonCell(f)),
      cell("actions", actionsCell(f)));
  }

  // A relay forward's protocol after its port (a UDP forward always says UDP), as page.py's forward_row.
  function protoBadge(f) {
    const protocol = f.protocol || "TCP";
    if (!f.relay_pod && protocol === "TCP") return null;
    return [" ", h("span", {className: "proto",
      title: `${protocol === "UDP" ? "UDP datagrams" : "TCP connections"} through a relay pod`}, protocol)];
  }

  function podCell(f) {  // a Service's connections spread over its ready pods: how many, named in the title
    if (f.relay_pod) {  // Tender's own pod in the namespace, and where it connects
      const relay = h("span", {className: "relay", title: "a pod Tender runs for this forward, deleted when it stops"},
        `relay pod ${f.relay_pod}`);
      if (!f.relay_upstream) return [relay];
      return [relay, " ", h("span", {className: "sub upstream"}, `→ ${f.relay_upstream}`)];
    }
    const pods = f.pods || [];
    if (pods.length > 1) return h("span", {title: pods.join(", ")}, `${pods.length} pods (${f.balance})`);
    return f.pod_name ? f.pod_name : muted("—");
  }

  function fill(td, content) { td.replaceChildren(...content); }

  function tbody() { return $("#forwards tbody"); }

  function upsert(f, fresh) {
    const row = renderRow(f);
    const old = document.getElementById(`f-${f.session_id}`);
    if (old) {
      // A row whose buttons did not change keeps its actions cell (a click in progress is not lost).
      const oldActions = old.querySelector("td.actions");
      const newActions = row.querySelector("td.actions");
      if (oldActions && newActions && oldActions.innerHTML === newActions.innerHTML) newActions.replaceWith(oldActions);
      old.replaceWith(row);
    } else {
      tbody().append(row);
      if (fresh) row.classList.add("fresh");
    }
  }

  function refreshCounts() {
    const n = forwards.size;
    $("#forward-count").textContent = String(n);
    $("#forwards").hidden = n === 0;
    $("#no-forwards").hidden = n !== 0;
    const running = new Map();
    for (const f of forwards.values()) {
      if (f.profile && f.status !== "stopped") running.set(f.profile, (running.get(f.profile) || 0) + 1);
    }
    const grouped = new Set([...groups.values()].map((g) => g.profile).filter(Boolean));
    for (const tr of document.querySelectorAll("tr[data-profile]")) {
      const count = running.get(tr.dataset.profile) || 0;
      tr.querySelector("td.running").textContent = String(count);
      // A namespace profile's group runs (and stops) before its Services are listed.
      tr.querySelector('[data-action="profile-stop"]').disabled = count === 0 && !grouped.has(tr.dataset.profile);
    }
    markForwardedPorts();
    renderGroups();
  }

  // A list event says which forwards exist, in start order.  The first of a stream is the whole
  // truth; a later one may carry older states than status events already read (the engine sends
  // lists a moment late, coalesced, and every change of state also comes as a status event), so it
  // only adds and removes forwards: the states already known stay.
  function reconcile(list, authoritative = true) {
    const ids = new Set(list.map((f) => f.session_id));
    for (const id of forwards.keys()) {
      if (!ids.has(id)) {
        gone.add(id);
        document.getElementById(`f-${id}`)?.remove();
        if (id === logId) $("#log-name").textContent += " (stopped)";  // its last lines stay readable
      }
    }
    for (const tr of [...tbody().children]) {
      if (!ids.has(tr.dataset.id)) tr.remove();  // a server-rendered row gone before the first event
    }
    const before = new Map(forwards);
    forwards.clear();
    for (const listed of list) {
      const known = before.get(listed.session_id);
      const f = known && !authoritative ? known : listed;
      forwards.set(f.session_id, f);
      gone.delete(f.session_id);
      if (f !== known || !document.getElementById(`f-${f.session_id}`)) upsert(f, before.size > 0 && !known);
    }
    // Keep start order (the list's); rows move only when it differs, so a click in progress stays.
    const shown = [...tbody().children].map((tr) => tr.dataset.id).join(" ");
    if (shown !== list.map((f) => f.session_id).join(" ")) {
      for (const f of list) tbody().append(document.getElementById(`f-${f.session_id}`));
    }
    refreshCounts();
  }

  function onStatus(f) {
    if (gone.has(f.session_id)) return;
    if (!forwards.has(f.session_id) && f.status === "stopped") return;
    const fresh = !forwards.has(f.session_id);
    forwards.set(f.session_id, Object.assign(forwards.get(f.session_id) || {}, f));
    upsert(forwards.get(f.session_id), fresh);
    refreshCounts();
    if (logId === f.session_id && f.status !== "stopped") loadLog();
  }

  function onStats(entries) {
    for (const s of entries) {
      const f = forwards.get(s.session_id);
      if (!f) continue;
      Object.assign(f, s);
      const row = document.getElementById(`f-${f.session_id}`);
      if (!row) continue;
      fill(row.querySelector("td.conns"), connsCell(f));
      fill(row.querySelector("td.bytes"), bytesCell(f));
      fill(row.querySelector("td.reason"), reasonCell(f));
    }
  }

  // ------------------------------------------------------------------ the cluster proxies
  // The same item as page.py's proxy_item.
  function proxyItem(c, p) {
    const on = Boolean(p);
    const switchButton = h("button", {type: "button", className: "switch", role: "switch",
      "aria-checked": on ? "true" : "false", "data-action": "proxy-toggle",
      title: `${on ? "Stop" : "Start"} the cluster proxy of ${c.name}`},
    h("span", {className: "knob", "aria-hidden": "true"}), c.name,
    c.current ? [" ", h("span", {className: "sub"}, "(current)")] : null);
    const item = h("li", {className: "proxy", "data-context": c.name, "data-on": on ? "true" : "false"}, switchButton);
    if (!on) {
      item.append(h("span", {className: "proxy-state muted"}, "off"));
      return item;
    }
    const curl = p.curl || `curl --socks5-hostname ${p.listen} http://svc.ns/`;
    const env = `HTTPS_PROXY=${p.http_url || `http://${p.listen}`}`;
    item.append(h("span", {className: "proxy-state"}, "on ", h("code", {className: "listen"}, p.listen), " ",
      h("span", {className: "sub"}, `${p.connections || 0} open · ${p.connections_total || 0} total`)));
    if (p.warning) item.append(h("span", {className: "proxy-warning"}, `warning: ${p.warning}`));
    if (p.last_error) item.append(h("span", {className: "proxy-error"}, `last failure: ${p.last_error}`));
    item.append(h("div", {className: "hints"}, [curl, env].map((text) => h("span", {className: "hint"},
      h("code", {}, text), " ", h("button", {type: "button", "data-action": "copy-text", "data-text": text,
        title: "Copy this command"}, "Copy")))));
    return item;
  }

  function renderProxies() {
    if (!contexts) return;  // the server's list stands until the contexts are known
    const names = new Set(contexts.map((c) => c.name));
    const items = [...contexts, ...[...proxies.keys()].filter((n) => !names.has(n)).map((n) => ({name: n}))];
    const list = $("#proxies");
    const old = new Map([...list.children].map((li) => [li.dataset.context, li]));
    const fresh = items.map((c) => {
      const item = proxyItem(c, proxies.get(c.name));
      const was = old.get(c.name);
      return was && was.outerHTML === item.outerHTML ? was : item;  // a click in progress stays
    });
    if (fresh.some((li, i) => list.children[i] !== li) || list.children.length !== fresh.length) {
      list.replaceChildren(...fresh);
    }
    $("#no-contexts").hidden = items.length > 0;
  }

  function onProxies(list) {
    proxies.clear();
    for (const p of list) proxies.set(p.context, p);
    renderProxies();
  }

  async function loadProxies() {
    try { onProxies((await api("GET", "v1/proxies")).proxies || []); } catch (err) { /* the stream will */ }
  }

  async function toggleProxy(button) {
    const context = button.closest("li[data-context]").dataset.context;
    const on = proxies.has(context) || button.getAttribute("aria-checked") === "true";
    button.disabled = true;
    try {
      if (on) {
        await api("DELETE", `v1/proxies/${encodeURIComponent(context)}`);
        proxies.delete(context);
      } else {
        const p = await api("POST", "v1/proxies", {context});
        proxies.set(context, p);
      }
      renderProxies();
    } catch (err) {
      notice(`Could not ${on ? "stop" : "start"} the cluster proxy of ${context}: ${err.message}`);
      await loadProxies();
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ namespace groups
  // The same item as page.py's group_item.
  function groupItem(g) {
    const members = (g.members || []).filter((id) => forwards.has(id)).map((id) => forwards.get(id));
    const count = (g.members || []).length;
    const head = h("div", {className: "ghead"},
      h("span", {className: `badge s-${g.status || ""}`}, h("span", {"aria-hidden": "true"}, SYMBOLS[g.status] || "?"),
        ` ${g.status || ""}`), " ",
      h("span", {className: "gwhere"}, `every Service of ${g.context || ""} / ${g.namespace || ""}`),
      g.selector ? [" ", h("span", {className: "sub"}, "matching ", h("code", {className: "selector"}, g.selector))]
        : null,
      g.profile ? [" ", h("span", {className: "tag"}, `profile ${g.profile}`)] : null,
      " ", h("span", {className: "gcount"}, `${count} forward${count === 1 ? "" : "s"}`),
      g.reason ? [" ", h("span", {className: "why"}, g.reason)] : null,
      h("button", {type: "button", "data-action": "group-stop", className: "danger",
        title: "Stop this group and every forward of it"}, "Stop"));
    const rows = members.map((f) => h("li", {"data-member": f.session_id},
      h("span", {className: "mtarget"}, f.target || ""), " ",
      h("code", {className: "mlocal"}, localAddress(f) || "—"), " ",
      h("span", {className: `mstatus s-${f.status || ""}`}, `${SYMBOLS[f.status] || "?"} ${f.status || ""}`)));
    const skipped = (g.skipped || []).length ? h("p", {className: "skipped muted"}, g.skipped.join("; ")) : null;
    return h("li", {className: "group", "data-id": g.id, "data-status": g.status},
      head, h("ul", {className: "members"}, rows), skipped);
  }

  function renderGroups() {
    const list = $("#groups");
    if (!list || !groupsKnown) return;
    const old = new Map([...list.children].map((li) => [li.dataset.id, li]));
    const fresh = [...groups.values()].map((g) => {
      const item = groupItem(g);
      const was = old.get(g.id);
      return was && was.outerHTML === item.outerHTML ? was : item;  // a click in progress stays
    });
    if (fresh.some((li, i) => list.children[i] !== li) || list.children.length !== fresh.length) {
      list.replaceChildren(...fresh);
    }
    $("#group-count").textContent = String(groups.size);
    $("#no-groups").hidden = groups.size > 0;
  }

  function onGroups(list) {
    groupsKnown = true;
    groups.clear();
    for (const g of list) groups.set(g.id, g);
    refreshCounts();
  }

  async function loadGroups() {
    try { onGroups((await api("GET", "v1/groups")).groups || []); } catch (err) { /* the stream will */ }
  }

  async function startGroup(button) {
    const context = $("#suggest-context").value;
    const namespace = $("#suggest-namespace").value.trim();
    if (!namespace) {
      notice("Type the namespace whose Services to forward.");
      return;
    }
    button.disabled = true;
    try {
      const g = await api("POST", "v1/groups", context ? {context, namespace} : {namespace});
      groups.set(g.id, g);
      $("#suggest-status").textContent = `Forwarding every Service of ${g.context} / ${g.namespace}.`;
      refreshCounts();
      document.querySelector(`#groups li[data-id="${g.id}"]`)?.scrollIntoView({behavior: "smooth", block: "nearest"});
    } catch (err) {
      notice(`Could not forward every Service of ${namespace}: ${err.message}`);
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  }

  async function stopGroup(button) {
    const id = button.closest("li[data-id]").dataset.id;
    const g = groups.get(id);
    button.disabled = true;
    try {
      await api("DELETE", `v1/groups/${encodeURIComponent(id)}`);
      groups.delete(id);
      refreshCounts();
      await resync();
    } catch (err) {
      notice(`Could not stop every Service of ${g ? `${g.context} / ${g.namespace}` : id}: ${err.message}`);
      await loadGroups();
    } finally {
      if (button.isConnected) button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ the events stream
  function setLive(state, text) {
    const badge = $("#live");
    badge.dataset.state = state;
    badge.textContent = text;
    document.body.classList.toggle("offline", state !== "live");
    live = state === "live";
  }

  function handle(event) {
    switch (event.event) {
      case "list":
        if (firstList) { loadProxies(); loadGroups(); }  // stopped while the stream was down: no event
        reconcile(event.forwards || [], firstList); firstList = false; break;
      case "proxies": onProxies(event.proxies || []); break;
      case "groups": onGroups(event.groups || []); break;
      case "status": onStatus(event); break;
      case "stats": onStats(event.forwards || []); break;
      default: break;  // ping, connection-error (its counters come in stats), later kinds
    }
  }

  async function followOnce() {
    const control = new AbortController();
    let timer = setTimeout(() => control.abort(), SILENCE_MS);
    const response = await fetch("v1/events", {
      credentials: "same-origin", cache: "no-store", signal: control.signal,
      headers: {Accept: "application/x-ndjson"},
    });
    if (response.status === 403 || response.status === 404) {  // 404: a new engine, with a new path
      clearTimeout(timer);
      notice("This page's access to Tender was refused (Tender restarted?): open the dashboard again " +
        "from the tray's menu or with tender dashboard.");
      return;
    }
    if (!response.ok || !response.body) {
      clearTimeout(timer);
      return;
    }
    setLive("live", "live");
    firstList = true;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        clearTimeout(timer);
        timer = setTimeout(() => control.abort(), SILENCE_MS);
        buffer += decoder.decode(value, {stream: true});
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, end).trim();
          buffer = buffer.slice(end + 1);
          if (line) handle(JSON.parse(line));
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async function follow() {
    for (;;) {
      try {
        await followOnce();
      } catch (err) {
        // a lost connection, a stopped engine, an abort after a silence: reconnect below
      }
      setLive("reconnecting", "reconnecting to Tender…");
      await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
    }
  }

  // ------------------------------------------------------------------ API calls
  async function api(method, path, body) {
    const options = {method, credentials: "same-origin", cache: "no-store", headers: {}};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let data = null;
    try { data = await response.json(); } catch (err) { data = null; }
    if (!response.ok) {
      throw new Error((data && data.error) || `Tender answered ${response.status} ${response.statusText}`);
    }
    return data;
  }

  // When the stream is down, read the list once so a button's effect still shows.
  async function resync() {
    if (live) return;
    try { reconcile((await api("GET", "v1/forwards")).forwards || []); } catch (err) { /* the stream will */ }
  }

  let noticeTimer = null;
  function notice(text, kind) {
    const box = $("#notice");
    box.textContent = text;
    box.dataset.kind = kind || "error";
    box.hidden = false;
    clearTimeout(noticeTimer);
    if (kind === "info") noticeTimer = setTimeout(() => { box.hidden = true; }, 3000);
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (err) {
      const area = h("textarea", {readonly: true}, text);
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    notice(`Copied ${text}`, "info");
  }

  // ------------------------------------------------------------------ the log panel
  async function loadLog() {
    const id = logId;
    if (!id || gone.has(id)) return;  // a stopped forward's log is gone with it
    const f = forwards.get(id);
    $("#log-name").textContent = f ? describe(f) : id;
    let lines;
    try {
      lines = (await api("GET", `v1/forwards/${encodeURIComponent(id)}/logs`)).lines || [];
    } catch (err) {
      if (logId === id) $("#log-lines").replaceChildren(h("li", {className: "l-error"}, err.message));
      return;
    }
    if (logId !== id) return;
    const list = $("#log-lines");
    list.replaceChildren(...(lines.length ? lines.map((l) => h("li", {className: `l-${l.level}`},
      h("span", {className: "t"}, clock(l.time)), ` ${l.level === "info" ? "" : `${l.level}: `}${l.message}`))
      : [h("li", {className: "t"}, "nothing logged yet")]));
    list.scrollTop = list.scrollHeight;
  }

  function openLog(id) {
    logId = id;
    $("#log-lines").replaceChildren();
    $("#log-panel").hidden = false;
    loadLog();
    $("#log-panel").scrollIntoView({behavior: "smooth", block: "nearest"});
  }

  // ------------------------------------------------------------------ search
  let searchTimer = null;
  let searchControl = null;

  function resultItem(r) {
    const tcp = (r.ports || []).filter((p) => p.protocol === "TCP");
    const ports = (r.ports || []).map((p) => {
      const label = [String(p.port), p.name ? h("span", {className: "pname"}, ` ${p.name}`) : null];
      if (p.protocol !== "TCP") {
        return h("button", {type: "button", className: "port", disabled: true,
          title: `${p.protocol}: port-forward carries TCP only`}, label, ` ${p.protocol}`);
      }
      return h("button", {type: "button", className: "port", "data-action": "forward", "data-port": p.port,
        title: `Forward a free local port to ${r.target} port ${p.port}`}, label);
    });
    // kubectl forwards ports a pod does not declare too: "Other…" asks for one.
    const other = h("button", {type: "button", className: "other", "data-action": "forward-other",
      title: `Forward another port of ${r.target} (a number, or a port name)`}, "Other…");
    const item = h("li", {},
      h("span", {className: "kind"}, r.kind),
      h("span", {className: "rname"}, r.name),
      h("span", {className: "rwhere"}, `${r.context} / ${r.namespace}`),
      h("span", {className: "ports"}, ports.length ? ports : muted("declares no ports"),
        tcp.length || !ports.length ? null : muted("no TCP port"), other));
    item.tender = r;
    return item;
  }

  function markForwardedPorts() {
    for (const li of document.querySelectorAll("#results li")) {
      const r = li.tender;
      if (!r) continue;
      for (const button of li.querySelectorAll('button[data-action="forward"]')) {
        const port = button.dataset.port;
        const f = [...forwards.values()].find((x) => x.cluster_id === r.context && x.namespace === r.namespace &&
          x.target === r.target && String(x.remote_port) === port && x.status !== "stopped");
        button.classList.toggle("on", Boolean(f));
        if (f && localAddress(f)) button.title = `Forwarded at ${localAddress(f)}; click to forward another local port`;
      }
    }
  }

  function showResults(answer, text) {
    const results = answer.results || [];
    $("#results").replaceChildren(...results.map(resultItem));
    $("#search-errors").replaceChildren(...(answer.errors || []).map((e) =>
      h("li", {}, e.context ? `${e.context}: ${e.error}` : e.error)));
    let status = "";
    if (!results.length) status = `Nothing matches “${text}”.`;
    else if (answer.truncated) status = `The first ${results.length} matches; type more to narrow them.`;
    $("#search-status").textContent = status;
    markForwardedPorts();
  }

  async function runSearch() {
    clearTimeout(searchTimer);
    const text = $("#search").value.trim();
    searchControl?.abort();
    if (!text) {
      $("#results").replaceChildren();
      $("#search-errors").replaceChildren();
      $("#search-status").textContent = "";
      return;
    }
    const control = searchControl = new AbortController();
    $("#search-status").textContent = "Searching…";
    const query = new URLSearchParams({q: text});
    const context = $("#search-context").value;
    if (context) query.set("context", context);
    try {
      const response = await fetch(`v1/search?${query}`, {credentials: "same-origin", signal: control.signal});
      const answer = await response.json();
      if (control !== searchControl) return;
      if (!response.ok) throw new Error(answer.error || `Tender answered ${response.status}`);
      showResults(answer, text);
    } catch (err) {
      if (control === searchControl && err.name !== "AbortError") $("#search-status").textContent = err.message;
    }
  }

  async function loadContexts() {
    try {
      contexts = (await api("GET", "v1/contexts")).contexts || [];
      renderProxies();
      const select = $("#search-context");
      for (const c of contexts) {
        select.append(h("option", {value: c.name}, c.current ? `${c.name} (current)` : c.name));
      }
      initRelayForm();
    } catch (err) { /* the search still covers every context */ }
  }

  async function startForward(button, port) {
    const r = button.closest("li").tender;
    button.disabled = true;
    try {
      const answer = await api("POST", "v1/forwards",
        {context: r.context, namespace: r.namespace, target: r.target, ports: [`:${port}`]});
      $("#search-status").textContent = `Started ${r.target} port ${port} in ${r.context} / ${r.namespace}.`;
      // The answer is the forward as it started; the stream may already have told a later state.
      for (const f of answer.forwards || []) if (!forwards.has(f.session_id)) onStatus(f);
      await resync();
      const row = document.getElementById(`f-${(answer.forwards || [{}])[0].session_id}`);
      row?.scrollIntoView({behavior: "smooth", block: "nearest"});
    } catch (err) {
      notice(`Could not forward ${r.target} port ${port}: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ forward a host, IP or UDP port
  // The relay form: POST v1/forwards with what was typed; the API's 4xx sentence goes under the form.
  function initRelayForm() {
    const select = $("#relay-context");
    const namespace = $("#relay-namespace");
    for (const c of contexts) {
      select.append(h("option", {value: c.name}, c.current ? `${c.name} (current)` : c.name));
    }
    const current = contexts.find((c) => c.current) || contexts[0];
    if (current) {
      select.value = current.name;
      if (!namespace.value) namespace.value = current.namespace || "default";
    }
    select.addEventListener("change", () => {
      const c = contexts.find((x) => x.name === select.value);
      if (c) namespace.value = c.namespace || "default";
    });
  }

  async function startRelay(button) {
    const target = $("#relay-target").value.trim();
    const ports = $("#relay-ports").value.split(/[\s,]+/).filter(Boolean);
    const image = $("#relay-image").value.trim();
    const body = {target};
    if ($("#relay-context").value) body.context = $("#relay-context").value;
    if ($("#relay-namespace").value.trim()) body.namespace = $("#relay-namespace").value.trim();
    if (ports.length) body.ports = ports;
    if (image) body.relay_image = image;
    const error = $("#relay-error");
    const status = $("#relay-status");
    button.disabled = true;
    try {
      const answer = await api("POST", "v1/forwards", body);
      error.textContent = "";
      const where = `${body.context || "the current context"} / ${body.namespace || "its namespace"}`;
      status.textContent = `Started ${target}${ports.length ? ` ${ports.join(" ")}` : ""} in ${where}.`;
      for (const f of answer.forwards || []) if (!forwards.has(f.session_id)) onStatus(f);
      await resync();
      document.getElementById(`f-${(answer.forwards || [{}])[0].session_id}`)
        ?.scrollIntoView({behavior: "smooth", block: "nearest"});
    } catch (err) {
      status.textContent = "";
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ suggested by annotations
  // GET v1/contexts/C/namespaces/NS/suggestions: the ports k9s and kftray annotations declare there.
  let suggestControl = null;

  function suggestionItem(s, context, namespace) {
    const start = h("button", {type: "button", "data-action": "suggest-start",
      title: `Forward ${s.target} ${s.ports.join(" ")} in ${context} / ${namespace}`}, "Start");
    const item = h("li", {className: "suggestion"},
      h("span", {className: "kind"}, s.kind),
      h("span", {className: "rname"}, s.target),
      h("span", {className: "sports"}, s.ports.join(" ")),
      s.alias ? h("span", {className: "rwhere"}, s.alias) : null,
      h("span", {className: "rwhere", title: "the annotation that suggests it"}, s.annotation),
      h("span", {className: "ports"}, start));
    item.tender = {...s, context, namespace};
    return item;
  }

  async function loadSuggestions() {
    const context = $("#suggest-context").value;
    const namespace = $("#suggest-namespace").value.trim();
    suggestControl?.abort();
    if (!context || !namespace) return;
    const control = suggestControl = new AbortController();
    $("#suggest-status").textContent = `Reading the annotations in ${context} / ${namespace}…`;
    const path = `v1/contexts/${encodeURIComponent(context)}/namespaces/${encodeURIComponent(namespace)}/suggestions`;
    try {
      const response = await fetch(path, {credentials: "same-origin", cache: "no-store", signal: control.signal});
      const answer = await response.json();
      if (control !== suggestControl) return;
      if (!response.ok) throw new Error(answer.error || `Tender answered ${response.status}`);
      const list = answer.suggestions || [];
      $("#suggestions").replaceChildren(...list.map((s) => suggestionItem(s, context, namespace)));
      $("#suggest-problems").replaceChildren(...(answer.problems || []).map((p) => h("li", {}, p)),
        ...(answer.errors || []).map((e) => h("li", {}, `${e.kind}: ${e.error}`)));
      $("#suggest-status").textContent = list.length ? "" :
        `No k9s or kftray port annotations in ${context} / ${namespace}.`;
    } catch (err) {
      if (control === suggestControl && err.name !== "AbortError") {
        $("#suggestions").replaceChildren();
        $("#suggest-problems").replaceChildren();
        $("#suggest-status").textContent = err.message;
      }
    }
  }

  async function startSuggestion(button) {
    const s = button.closest("li").tender;
    button.disabled = true;
    try {
      const answer = await api("POST", "v1/forwards",
        {context: s.context, namespace: s.namespace, target: s.target, ports: s.ports});
      $("#suggest-status").textContent = `Started ${s.target} ${s.ports.join(" ")} in ${s.context} / ${s.namespace}.`;
      for (const f of answer.forwards || []) if (!forwards.has(f.session_id)) onStatus(f);
      await resync();
    } catch (err) {
      notice(`Could not forward ${s.target} ${s.ports.join(" ")}: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  async function initSuggestions() {
    try {
      const known = (await api("GET", "v1/contexts")).contexts || [];
      const select = $("#suggest-context");
      for (const c of known) select.append(h("option", {value: c.name}, c.current ? `${c.name} (current)` : c.name));
      const current = known.find((c) => c.current) || known[0];
      if (!current) return;
      select.value = current.name;
      $("#suggest-namespace").value = current.namespace || "default";
      select.addEventListener("change", () => {
        const c = known.find((x) => x.name === select.value);
        if (c) $("#suggest-namespace").value = c.namespace || "default";
        loadSuggestions();
      });
      await loadSuggestions();
    } catch (err) { $("#suggest-status").textContent = err.message; }
  }

  // ------------------------------------------------------------------ buttons
  async function act(button) {
    const action = button.dataset.action;
    const row = button.closest("tr[data-id]");
    const id = row?.dataset.id;
    const f = id ? forwards.get(id) : null;
    const label = f ? describe(f) : id;
    try {
      switch (action) {
        case "log": openLog(id); return;
        case "open": window.open(`http://${row.dataset.local}/`, "_blank", "noopener,noreferrer"); return;
        case "copy": await copyText(row.dataset.local); return;
        case "log-close": logId = null; $("#log-panel").hidden = true; return;
        case "log-refresh": await loadLog(); return;
        case "proxy-toggle": await toggleProxy(button); return;
        case "copy-text": await copyText(button.dataset.text); return;
        case "forward": await startForward(button, button.dataset.port); return;
        case "suggest-start": await startSuggestion(button); return;
        case "relay-start": await startRelay(button); return;
        case "suggest-load": await loadSuggestions(); return;
        case "group-start": await startGroup(button); return;
        case "group-stop": await stopGroup(button); return;
        case "forward-other": {
          const r = button.closest("li").tender;
          const port = (window.prompt(`Port of ${r.target} to forward (a number, or a port name):`) || "").trim();
          if (port) await startForward(button, port);
          return;
        }
        default: break;
      }
      button.disabled = true;
      if (action === "stop") await api("POST", `v1/forwards/${encodeURIComponent(id)}/stop`, {});
      else if (action === "remove") await api("DELETE", `v1/forwards/${encodeURIComponent(id)}`);
      else if (action === "retry") await api("POST", `v1/forwards/${encodeURIComponent(id)}/retry`, {});
      else if (action === "profile-start" || action === "profile-stop") {
        const name = button.closest("tr[data-profile]").dataset.profile;
        const verb = action === "profile-start" ? "start" : "stop";
        const answer = await api("POST", `v1/profiles/${verb}`, {names: [name]});
        const failed = (answer.failed || []).map((x) => x.error);
        if (failed.length) notice(`Profile ${name} could not start: ${failed.join("; ")}`);
      }
      await resync();
    } catch (err) {
      notice(`${action[0].toUpperCase()}${action.slice(1).replace("profile-", "profile ")} ` +
        `${label || ""} failed: ${err.message}`);
    } finally {
      if (button.isConnected) button.disabled = false;
      refreshCounts();
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button && !button.disabled) {
      event.preventDefault();
      act(button);
    }
  });

  $("#search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(runSearch, SEARCH_DELAY_MS);
  });
  $("#search").addEventListener("keydown", (event) => {
    if (event.key === "Enter") runSearch();
    if (event.key === "Escape") { $("#search").value = ""; runSearch(); }
  });
  $("#search-context").addEventListener("change", runSearch);
  $("#suggest-namespace").addEventListener("keydown", (event) => { if (event.key === "Enter") loadSuggestions(); });
  $("#notice").addEventListener("click", () => { $("#notice").hidden = true; });
  for (const id of ["#relay-target", "#relay-ports", "#relay-image", "#relay-namespace"]) {
    $(id).addEventListener("keydown", (event) => {
      if (event.key === "Enter") $('button[data-action="relay-start"]').click();
    });
  }

  // The first event (a list) redraws the server-rendered rows (their times are UTC; these are local).
  loadContexts();
  initSuggestions();
  follow();
})();
