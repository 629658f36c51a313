"""The ``tender`` verbs that drive the running engine over its control API (docs/api.md).

``ls``, ``stop``, ``retry``, ``remove``, ``start``, ``events``, ``logs``,
``dashboard``; and ``forward`` when an engine runs (:func:`forward_on_engine`).
Each talks to the engine through :class:`tray.api.client.EngineClient` and
never starts one.  Exit codes: 0 done; 1 no engine runs, or the engine
could not do it (one line on stderr); 2 bad arguments (a forward no argument
matches, a profile it does not have), before anything changes.

A forward is named on the command line by its id, a unique prefix of it (at
least 4 characters), or its name (the profile's, else the target as kubectl
writes it, ``svc/web``), which may match several.  ``stop`` also takes a
namespace group (``forward --all-services``) by its id, a prefix of it,
``namespace/NS`` or the namespace's name (:func:`stop_groups`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import datetime, timezone
from typing import Any

from tray.api.client import ApiError, EngineClient, NoEngine
from tray.errors import UsageError

__all__ = ["add_parsers", "run_verb", "forward_on_engine", "human_bytes", "age"]

VERBS = ("ls", "stop", "retry", "remove", "start", "events", "logs", "dashboard")
NO_ENGINE_HINT = "start the tray ('tender') or 'tender daemon'"
#: Seconds a verb waits for the engine's answer (a frozen engine: one line, exit 1, not a hang).
VERB_TIMEOUT = 30.0


def add_parsers(sub: Any) -> None:
    """Add the verbs' subparsers to ``sub`` (argparse's subparsers action)."""
    ls = sub.add_parser("ls", help="list the running engine's forwards")
    ls.add_argument("-o", "--output", choices=("text", "wide", "json", "yaml"), default="text")
    for verb, what in (("stop", "stop forwards (their listeners close)"),
                       ("retry", "start forwards in error again"),
                       ("remove", "drop forwards (say, ones in error) from the list")):
        p = sub.add_parser(verb, help=what)
        p.add_argument("forwards", nargs="*", metavar="ID|NAME")
        p.add_argument("--all", action="store_true", help="every forward")
        p.add_argument("--cluster", "--context", dest="cluster", metavar="CONTEXT",
                       help="the forwards of this kubeconfig context")
        p.add_argument("--profile", help="the forwards of this profile")
    start = sub.add_parser("start", help="start saved profiles on the running engine")
    start.add_argument("names", nargs="*", metavar="PROFILE")
    start.add_argument("--group", action="append", default=[], help="the profiles of this group")
    start.add_argument("--all", action="store_true", help="every profile")
    sub.add_parser("events", help="follow the engine's events, one JSON object per line")
    logs = sub.add_parser("logs", help="a forward's recent log lines")
    logs.add_argument("forward", metavar="ID|NAME")
    dash = sub.add_parser("dashboard", help="open the engine's dashboard in a browser")
    dash.add_argument("--print-url", action="store_true", help="print the URL (with its secret) instead")


def run_verb(args: argparse.Namespace) -> int:
    """Run one of :data:`VERBS`; returns the exit code.  Blocks (``events`` until the engine goes or Ctrl-C)."""
    try:
        with EngineClient(timeout=VERB_TIMEOUT) as client:
            return _VERB_FUNCS[args.command](client, args)
    except NoEngine as exc:
        print(f"tender: {exc}; {NO_ENGINE_HINT}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"tender: error: {exc.message}", file=sys.stderr)
        return 2 if 400 <= exc.status < 500 and exc.status not in (403, 409) else 1


# ---------------------------------------------------------------- output helpers
def human_bytes(n: int) -> str:
    """``1536`` -> ``"1.5 kB"``: a byte count (an int >= 0) in SI units, as the dashboard shows them."""
    if n < 1000:
        return f"{n} B"
    size = float(n)
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if round(size, 1) < 1000:  # 999_999 is "1.0 MB", not "1000.0 kB"
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} PB"


def age(started_at: str, now: datetime | None = None) -> str:
    """kubectl's short age of an ISO 8601 time: ``45s``, ``3m``, ``5h``, ``2d``."""
    try:
        then = datetime.fromisoformat(started_at)
    except ValueError:
        return "?"
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - then).total_seconds()))
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _local(f: dict[str, Any]) -> str:
    if not f["local_port"]:
        return "-"
    addr = f["address"]
    return f"[{addr}]:{f['local_port']}" if ":" in addr else f"{addr}:{f['local_port']}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _ls(client: EngineClient, args: argparse.Namespace) -> int:
    forwards = client.get("/v1/forwards")["forwards"]
    if args.output == "json":
        print(json.dumps({"forwards": forwards}, indent=2))
        return 0
    if args.output == "yaml":
        import yaml

        print(yaml.safe_dump({"forwards": forwards}, sort_keys=False), end="")
        return 0
    if not forwards:
        print("No forwards.", file=sys.stderr)
        return 0
    head = ["ID", "NAME", "STATUS", "LOCAL", "REMOTE", "POD", "AGE"]
    if args.output == "wide":
        head += ["CONTEXT", "NAMESPACE", "TARGET", "GROUP", "CONNS", "IN", "OUT", "REASON"]
    rows = [head]
    for f in forwards:
        udp = "/udp" if f.get("protocol") == "UDP" else ""  # as kubectl's port specs write it
        pod = f["pod_name"] or "-"
        if args.output == "wide" and f.get("relay_pod"):  # Tender's relay pod, and where it connects
            pod = f"{f['relay_pod']} (relay to {f.get('relay_upstream') or '?'})"
        # a relay forward's container port is the relay pod's own: the port asked for is the one to show
        remote = f["remote_port"] if f.get("relay_pod") else (f["container_port"] or f["remote_port"])
        row = [f["session_id"][:8], f["name"], f["status"], _local(f), f"{remote}{udp}", pod, age(f["started_at"])]
        if args.output == "wide":
            reason = f["status_reason"] if f["status"] in ("error", "reconnecting") else ""
            reason = reason or f["last_connection_error"] or f["warning"]
            row += [f["cluster_id"], f["namespace"], f["target"], (f.get("group") or "-")[:8],
                    f"{f['connections']}/{f['connections_total']}",
                    human_bytes(f["bytes_in"]), human_bytes(f["bytes_out"]), reason or "-"]
        rows.append(row)
    print(_table(rows))
    return 0


# ---------------------------------------------------------------- naming forwards
def resolve(forwards: list[dict[str, Any]], words: list[str]) -> list[dict[str, Any]]:
    """The forwards ``words`` name (ids, unique id prefixes of 4+ characters, names or targets), in list order.

    Raises :class:`UsageError` (field ``ID|NAME``) for a word that names none
    or an id prefix that names several.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for word in words:
        hits = [f for f in forwards if f["session_id"] == word]
        if not hits and len(word) >= 4:
            hits = [f for f in forwards if f["session_id"].startswith(word)]
            if len(hits) > 1:
                raise UsageError(f"{word!r} is the start of {len(hits)} forwards' ids; give more of it",
                                 field="ID|NAME")
        if not hits:
            hits = [f for f in forwards if word in (f["name"], f["target"], f["profile"])]
        if not hits:
            names = ", ".join(sorted({f["name"] for f in forwards})) or "none running"
            raise UsageError(f"no forward is called {word!r} (forwards: {names}; see 'tender ls')",
                             field="ID|NAME")
        for f in hits:
            chosen[f["session_id"]] = f
    return [f for f in forwards if f["session_id"] in chosen]


def _select(client: EngineClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The forwards the arguments name: the named ones (or all, with ``--all`` or with only options),
    narrowed by ``--cluster`` and ``--profile`` (as kubectl's ``--context``/``-n`` narrow, never widen)."""
    if not (args.forwards or args.all or args.cluster or args.profile):
        raise UsageError("name forwards (ID or NAME), or use --all, --cluster or --profile", field="ID|NAME")
    forwards = client.get("/v1/forwards")["forwards"]
    named = resolve(forwards, args.forwards) if args.forwards and not args.all else forwards
    chosen = [f for f in named if (not args.cluster or f["cluster_id"] == args.cluster)
              and (not args.profile or f["profile"] == args.profile)]
    if not chosen:
        where = " and ".join(w for w in (f"in context {args.cluster!r}" if args.cluster else "",
                                         f"of profile {args.profile!r}" if args.profile else "") if w)
        if args.forwards and not args.all:
            raise UsageError(f"{', '.join(repr(w) for w in args.forwards)} names no forward {where}",
                             field="ID|NAME")
        print(f"tender: no forwards{' ' + where if where else ''}", file=sys.stderr)
    return chosen


def _stop(client: EngineClient, args: argparse.Namespace) -> int:
    if args.command == "stop":  # namespace groups (--all-services) by id or namespace, and with --all
        named = bool(args.forwards)
        args.forwards = stop_groups(client, args)
        if named and not args.forwards:
            return 0
    chosen = _select(client, args)
    if chosen:
        stopped = set(client.post("/v1/forwards/stop", {"ids": [f["session_id"] for f in chosen]})["stopped"])
        for f in chosen:
            if f["session_id"] in stopped:
                print(f"forward {f['session_id'][:8]} ({f['name']}, {_local(f)}) "
                      f"{'removed' if args.command == 'remove' else 'stopped'}")
    return 0


def _retry(client: EngineClient, args: argparse.Namespace) -> int:
    for f in _select(client, args):
        done = client.post(f"/v1/forwards/{f['session_id']}/retry")["retried"]
        print(f"forward {f['session_id'][:8]} ({f['name']}) "
              + ("retrying" if done else f"is {f['status']}, not in error: left as it is"))
    return 0


def _start(client: EngineClient, args: argparse.Namespace) -> int:
    if not (args.names or args.group or args.all):
        raise UsageError("name profiles to start, or use --group or --all", field="PROFILE")
    answer = client.post("/v1/profiles/start", {"names": args.names, "groups": args.group, "all": args.all})
    for f in answer["started"]:
        print(f"forward {f['session_id'][:8]} ({f['name']}: {f['target']} {f['remote_port']}) starting")
    for problem in answer["failed"]:  # named, so that one of several can be told apart
        error, name = problem["error"], problem["profile"]
        named = error if error.startswith(f"profile {name}") else f"profile {name} could not start: {error}"
        print(f"tender: error: {named}", file=sys.stderr)
    if not answer["started"] and not answer["failed"]:
        print("tender: those profiles already run (see 'tender ls')", file=sys.stderr)
    return 1 if answer["failed"] else 0


def _events(client: EngineClient, args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        for event in client.events():
            if event.get("event") != "ping":
                print(json.dumps(event, sort_keys=True), flush=True)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `tender events | head`
        return 0
    print("tender: the engine closed the stream (it stopped)", file=sys.stderr)
    return 1


def _logs(client: EngineClient, args: argparse.Namespace) -> int:
    hits = resolve(client.get("/v1/forwards")["forwards"], [args.forward])
    for f in hits:
        lines = client.get(f"/v1/forwards/{f['session_id']}/logs")["lines"]
        for line in lines:
            prefix = f"{f['session_id'][:8]} " if len(hits) > 1 else ""
            print(f"{prefix}{line['time']} {line['level']:<7} {line['message']}")
    return 0


def _dashboard(client: EngineClient, args: argparse.Namespace) -> int:
    url = client.post("/v1/dashboard")["url"]
    if args.print_url:
        print(url)
        return 0
    import webbrowser

    if not webbrowser.open(url):
        print(f"tender: could not open a web browser (set BROWSER?); open {url}", file=sys.stderr)
        return 1
    print("Opened the dashboard in your browser.")
    return 0


_VERB_FUNCS = {"ls": _ls, "stop": _stop, "remove": _stop, "retry": _retry, "start": _start,
               "events": _events, "logs": _logs, "dashboard": _dashboard}


# ---------------------------------------------------------------- forward on the engine
class _Snapshot:
    """A forward dict with the attributes of a ``SessionInfo``, for the CLI's printer."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)
        self.id = data["session_id"]
        self._data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)


def as_engine_event(data: dict[str, Any]) -> Any:
    """An API event object as the engine's event class, so one printer shows both; None for ``stats``/``ping``."""
    from tray.engine.manager import ConnectionEvent, ListEvent, StatusEvent

    kind = data.get("event")
    if kind == "list":
        return ListEvent([_Snapshot(f) for f in data["forwards"]])  # type: ignore[arg-type]
    if kind == "status":
        s = _Snapshot(data)
        return StatusEvent(s.id, s.status, s.local_port, s.pod_name, s.status_reason, s)  # type: ignore[arg-type]
    if kind == "connection-error":
        s = _Snapshot({**data, "status": "active", "status_reason": "", "container_port": data["port"],
                       "remote_port": data["port"], "cluster_name": "", "started_at": "", "attempts": 0,
                       "next_retry_at": "", "recoverable": False, "usage_error": False, "warning": "",
                       "target": f"{data['target_kind']}/{data['target_name']}"})
        return ConnectionEvent(data["session_id"], data["pod_name"], data["port"], data["error"],
                               data["suppressed"], s)  # type: ignore[arg-type]
    return None


def stop_on_signals(*, detach: bool) -> dict[str, bool]:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal closed) for a command that joined the engine.

    Returns the flags the caller reads and sets: ``now`` becomes True when a
    signal came before what was started is known (the POST still running:
    the caller stops it once known); once the caller sets ``following``, a
    signal raises :class:`KeyboardInterrupt`.  With ``detach`` nothing is
    installed (the forwards outlive the command).  Never blocks.
    """
    stop = {"now": False, "following": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True
        if stop["following"]:
            raise KeyboardInterrupt

    if not detach:
        for sig in ("SIGINT", "SIGTERM", "SIGHUP"):
            if hasattr(signal, sig):
                signal.signal(getattr(signal, sig), on_signal)
    return stop


def forward_on_engine(client: EngineClient, args: argparse.Namespace, printer: Any) -> int:
    """``tender forward`` on the running engine: the forwards show in the tray and ``tender ls``.

    Without ``--detach``: prints their lines as in-process and stops them on
    Ctrl-C/SIGTERM (exit 0); exit 1 if the engine stops meanwhile, or once
    every forward is in ``error`` and none can recover by itself (with
    ``--exit-on-error``: once every forward is in ``error``), 2 for a port the
    target does not have; the forwards are stopped on every exit but the
    engine's.  With ``--detach``: waits up to 15 s for
    each to leave ``starting``, prints its line and the way to stop it, and
    exits 0 (they keep running), or 1 when every one is in an ``error`` it
    cannot recover from by itself (they stay listed, for ``tender retry`` or
    ``tender remove``).  A port the target does not have (either
    way) stops every forward this command started, prints one line on stderr
    and exits 2, as kubectl refuses such a command line.
    """
    body = {"target": args.target, "ports": list(args.ports), "address": args.address}
    if getattr(args, "balance", "auto") != "auto":
        body["balance"] = args.balance
    if getattr(args, "relay_image", None):
        body["relay_image"] = args.relay_image
    if args.context:
        body["context"] = args.context
    if args.namespace:
        body["namespace"] = args.namespace
    stop = stop_on_signals(detach=args.detach)
    started = client.post("/v1/forwards", body)["forwards"]
    ids = [f["session_id"] for f in started]
    if args.detach:
        deadline = time.monotonic() + 15
        final: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline and len(final) < len(ids):
            for i in ids:
                if i not in final:
                    f = client.get(f"/v1/forwards/{i}")
                    if f["status"] != "starting":
                        final[i] = f
            time.sleep(0.1)
        forwards = [final.get(i) or client.get(f"/v1/forwards/{i}") for i in ids]
        bad = [f for f in forwards if f["usage_error"]]
        if bad:  # kubectl starts nothing for such a command line: leave nothing running either
            for f in bad:
                print(f"tender: error: {f['status_reason']}", file=sys.stderr)
            for i in ids:
                try:
                    client.delete(f"/v1/forwards/{i}")
                except ApiError:
                    pass  # stopped from elsewhere meanwhile
            return 2
        for f in forwards:
            printer.show(as_engine_event({"event": "status", **f}))
        short = " ".join(i[:8] for i in ids)
        if all(f["status"] == "error" and not f["recoverable"] for f in forwards):
            # As in-process (and kubectl): exit 1 when nothing can forward.  Left in the list for 'tender retry'.
            if args.output == "text":
                print(f"Left in the engine in error (see 'tender ls'); try again with: tender retry {short}; "
                      f"drop with: tender remove {short}")
            return 1
        if args.output == "text":
            print(f"Running in the engine (see 'tender ls'); stop with: tender stop {short}")
        return 0
    mine = set(ids)
    latest: dict[str, dict[str, Any]] = {}  # each of ours as last seen
    code = 1
    try:
        stop["following"] = True
        if stop["now"]:  # Ctrl-C while the forwards were being started
            raise KeyboardInterrupt
        for data in client.events(stop_on_close=ids):
            event = as_engine_event(data)
            if event is None:
                continue
            if data["event"] == "list":
                ours = [f for f in data["forwards"] if f["session_id"] in mine]
                if not ours:
                    print("tender: the forwards were stopped from elsewhere", file=sys.stderr)
                    return 0
                mine = {f["session_id"] for f in ours}  # any other was stopped from elsewhere
                latest = {f["session_id"]: f for f in ours}
                for f in ours:  # the first list is the state when we began to follow: show it
                    printer.show(as_engine_event({"event": "status", **f}))
            elif data.get("session_id") in mine:
                printer.show(event)
                if data["event"] != "status":
                    continue
                latest[data["session_id"]] = data
                if data.get("usage_error"):
                    print(f"tender: error: {data['status_reason']}", file=sys.stderr)
                    code = 2
                    break
            else:
                continue
            # As in-process: exit 1 once every forward is in error and none can recover by itself
            # (--exit-on-error: once every forward is in error).
            states = [latest[i] for i in mine if i in latest]
            if len(states) == len(mine) and all(f["status"] == "error" for f in states) and (
                    getattr(args, "exit_on_error", False) or not any(f["recoverable"] for f in states)):
                break
        else:
            print("tender: the engine stopped", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        code = 0
    for i in ids:
        try:
            client.delete(f"/v1/forwards/{i}")
        except ApiError:
            pass  # stopped from elsewhere meanwhile
        except NoEngine:
            break
    return code


def stop_groups(client: Any, args: argparse.Namespace) -> list[str]:
    """``tender stop``'s namespace groups: stop those ``args.forwards`` name; returns the words left for forwards.

    A word names a group by its id, a unique prefix of it (4 characters or
    more), ``namespace/NS``, or ``NS`` alone when no forward is called that
    and one group follows NS.  ``--all`` (and ``--cluster C``) also stop every
    group (of C), so no group starts members again.  Prints one line per
    group stopped.  Raises :class:`tray.api.client.ApiError` as the client
    does; an engine without groups (404) leaves every word to the forwards.
    """
    try:
        groups = client.get("/v1/groups")["groups"]
    except ApiError as exc:
        if exc.status == 404:
            return list(args.forwards)
        raise
    if args.profile:
        groups = [g for g in groups if g["profile"] == args.profile]
    if args.cluster:
        groups = [g for g in groups if g["context"] == args.cluster]
    chosen: dict[str, dict[str, Any]] = {}
    left = []
    names: set[str] | None = None
    for word in args.forwards:
        hits = [g for g in groups if g["id"] == word or (len(word) >= 4 and g["id"].startswith(word))]
        if not hits and word.startswith("namespace/"):
            hits = [g for g in groups if f"namespace/{g['namespace']}" == word]
        if not hits:
            if names is None:
                forwards = client.get("/v1/forwards")["forwards"]
                names = {n for f in forwards for n in (f["name"], f["target"], f["profile"]) if n}
            if word not in names:
                hits = [g for g in groups if g["namespace"] == word]
        if len(hits) > 1 and word not in (f"namespace/{hits[0]['namespace']}", hits[0]["namespace"]):
            raise UsageError(f"{word!r} is the start of {len(hits)} groups' ids; give more of it", field="ID|NAME")
        if hits:
            chosen.update((g["id"], g) for g in hits)
        else:
            left.append(word)
    if args.all or ((args.cluster or args.profile) and not args.forwards):
        chosen.update((g["id"], g) for g in groups)
    for gid, g in chosen.items():
        try:
            client.delete(f"/v1/groups/{gid}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            continue  # stopped meanwhile
        count = len(g["members"])
        print(f"group {gid[:8]} (every Service of {g['context']}/{g['namespace']}, "
              f"{count} forward{'' if count == 1 else 's'}) stopped")
    return left
