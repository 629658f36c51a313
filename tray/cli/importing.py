"""``tender import``: other tools' saved port-forwards as profiles.

``tender import [--dry-run] [--format kubectl|kftray|kube-forwarder|auto] [--profiles FILE] FILE|-``
reads ``kubectl port-forward`` command lines, kftray's JSON export or
kube-forwarder's export (:mod:`tray.profiles.importer` reads them) and
appends one profile per entry to the profiles file (``--profiles``, else
``$TENDER_PROFILES`` or the user config file; created if missing), through
:func:`tray.profiles.save_profiles`: atomically, the file's comments and
layout kept, nothing already there changed.  A name already taken gets a
suffix (``web-2``).

``--dry-run`` prints the profiles it would add, as YAML, on stdout and
writes nothing.  On stderr: one line per entry that Tender cannot express
or that clashes with a profile already in the file (the same local
address and port), skipped; one line per note (say, fields that are
ignored); and what was added.

Exit codes: 0 (also when everything was skipped: each said why); 2 and one
line naming the file and the line or entry for a file that is not in its
format, a profiles file with problems, or an unreadable input; nothing is
written then.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Any

import yaml

from tray.errors import UsageError

__all__ = ["MAX_INPUT", "add_parser", "run"]

#: The most bytes read from the input (a larger file is refused, exit 2).
MAX_INPUT = 4 * 1024 * 1024
#: Seconds the clusters are given, all together, to answer for the Services' ports.
SERVICE_TIMEOUT = 10.0


def add_parser(sub: Any) -> None:
    """Add ``import`` to ``sub`` (argparse's subparsers action)."""
    from tray.profiles.importer import FORMATS

    p = sub.add_parser("import", help="add profiles from kubectl port-forward lines, kftray or kube-forwarder exports")
    p.add_argument("--dry-run", action="store_true", help="print the profiles as YAML; write nothing")
    p.add_argument("--format", choices=(*FORMATS, "auto"), default="auto",
                   help="the input's format (default auto: JSON list = kftray, JSON object = kube-forwarder, "
                        "else command lines)")
    p.add_argument("--profiles", help="profiles file to add to (default $TENDER_PROFILES or the user config dir)")
    p.add_argument("--kubeconfig", help="kubeconfig whose clusters are asked for Services' ports (default "
                                        "$KUBECONFIG or ~/.kube/config)")
    p.add_argument("--offline", action="store_true",
                   help="ask no cluster: kftray's and kube-forwarder's Service ports stay the pods' port numbers")
    p.add_argument("file", metavar="FILE|-", help="the file to read; - reads stdin")


def _read_input(name: str) -> tuple[str, str]:
    """(text, name shown in messages) of FILE or stdin; UsageError if unreadable, too large or not UTF-8."""
    source = "<stdin>" if name == "-" else name
    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_INPUT + 1)
        else:
            with open(name, "rb") as f:
                data = f.read(MAX_INPUT + 1)
    except OSError as exc:
        raise UsageError(exc.strerror or str(exc), source=source) from None
    if len(data) > MAX_INPUT:
        raise UsageError(f"larger than {MAX_INPUT // (1024 * 1024)} MiB; not an export", source=source)
    try:
        return data.decode("utf-8-sig"), source
    except UnicodeDecodeError as exc:
        raise UsageError(f"not UTF-8 text (byte {exc.start})", source=source) from None


def _as_file(dicts: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"version": 1, "profiles": dicts}, sort_keys=False, allow_unicode=True)


def _checked(profile: dict[str, Any], line: int | None, entry: str | None, source: str) -> Any:
    """An imported dict as a :class:`~tray.profiles.Profile`, checked alone by the profiles file's rules.

    A problem is the input's (a bad address, say): UsageError naming the
    input's line or entry.
    """
    from tray.profiles import parse_profiles

    try:
        return parse_profiles(_as_file([profile]), source=source).profiles[0]
    except UsageError as exc:
        raise UsageError(exc.message, source=source, line=line, field=entry) from None


def _service_ports(result: Any, kubeconfig: str | None, *, offline: bool,
                   timeout: float = SERVICE_TIMEOUT) -> list[str]:
    """Translate the pods' port numbers of ``result.pod_ports``' profiles to their Services' ports, in place.

    kftray and kube-forwarder name the pods' port; a Tender ``svc/`` profile
    names the Service's (kubectl's rule).  Each Service is read (with its
    EndpointSlices, which resolve named targetPorts) on the cluster of the
    profile's context, all within ``timeout`` seconds, and each number
    becomes the Service port that sends to it
    (:func:`tray.domain.annotations.service_port_for`).  Returns one line per
    Service: what was translated, or why a number was kept.  Blocks up to
    ``timeout`` seconds (plus the engine's start and stop); never raises.
    """
    from tray.domain.portspec import PortSpec, parse_port_spec

    groups: dict[tuple[str | None, str | None, str], list[int]] = {}
    for index in sorted(result.pod_ports):
        profile = result.profiles[index]
        name = profile["target"].partition("/")[2]
        groups.setdefault((profile.get("context"), profile.get("namespace"), name), []).append(index)
    services = ", ".join(dict.fromkeys(f"svc/{n}" for _, _, n in groups))
    if offline:
        return [f"--offline: the ports of {services} are kept as the pods' port numbers; a Service port "
                "that differs from its targetPort will be refused at start"]
    from tray.engine.manager import ForwardManager

    notes: list[str] = []
    deadline = time.monotonic() + timeout
    manager = ForwardManager(kubeconfig)
    try:
        try:
            clusters = manager.clusters()
        except Exception as exc:  # a kubeconfig that cannot be read: say so, keep the numbers
            return [f"the ports of {services} were not checked ({exc}); the pods' port numbers are kept"]
        known = {c.id for c in clusters}
        current = next((c.id for c in clusters if c.current), None)
        for (context, namespace, name), indexes in groups.items():
            ctx = context or current
            where = f"svc/{name} in {ctx or '(no current context)'}/{namespace or '(its namespace)'}"
            if ctx not in known:
                notes.append(f"{where}: no such context here; the pods' port numbers are kept")
                continue
            try:
                service, resolved = _read_service(manager, ctx, namespace, name, deadline - time.monotonic())
            except Exception as exc:
                reason = f"no answer within {timeout:.0f} s" if isinstance(exc, TimeoutError) else str(exc)
                notes.append(f"{where}: not read ({reason}); the pods' port numbers are kept")
                continue
            from tray.domain.annotations import service_port_for

            for index in indexes:
                profile = result.profiles[index]
                ports = []
                for text in profile["ports"]:
                    spec = parse_port_spec(text)
                    port = service_port_for(service, spec.remote, resolved) if isinstance(spec.remote, int) else None
                    if port is None:
                        notes.append(f"{where}: no port sends to the pods' port {spec.remote}; kept as it is")
                        ports.append(text)
                        continue
                    new = str(PortSpec(spec.local, port))  # the local port stays (":8080" stays free)
                    if new != text:
                        notes.append(f"{where}: the pods' port {spec.remote} is Service port {port}: {text} -> {new}")
                    ports.append(new)
                profile["ports"] = ports
    finally:
        manager.shutdown()
    return notes


def _read_service(manager: Any, context: str, namespace: str | None, name: str,
                  timeout: float) -> tuple[dict[str, Any], dict[str, int]]:
    """(the Service, its port names -> the pods' port numbers from its EndpointSlices). Blocks up to ``timeout`` s."""
    import asyncio

    if timeout <= 0:
        raise TimeoutError
    conn = manager.api_for(context)
    ns = namespace or conn.default_namespace

    async def fetch() -> tuple[dict[str, Any], dict[str, Any]]:
        await conn.ensure_auth()
        service = await conn.api.get(f"/api/v1/namespaces/{ns}/services/{name}")
        try:
            slices = await conn.api.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                                        params={"labelSelector": f"kubernetes.io/service-name={name}"})
        except Exception:  # RBAC may refuse these: the Service alone still answers integer targetPorts
            slices = {}
        return service, slices

    from tray.domain.annotations import resolved_ports

    service, slices = manager.run(asyncio.wait_for(fetch(), timeout), timeout + 1.0)
    return service, resolved_ports(slices).get(name, {})


def run(args: argparse.Namespace) -> int:
    """Run ``tender import``; returns the exit code (see the module docstring).

    Blocks for reading the input and one read and, unless ``--dry-run`` or
    nothing is left to add, one atomic write of the profiles file (about
    1 ms per profile in the file).  UsageError propagates (the caller prints
    it, exit 2).
    """
    from tray.profiles import default_profiles_path, dump_profiles, load_profiles, parse_profiles, save_profiles
    from tray.profiles.importer import import_text, unique_names

    text, source = _read_input(args.file)
    result = import_text(text, args.format, source=source)
    if result.pod_ports:
        result.notes.extend(_service_ports(result, args.kubeconfig, offline=args.offline))
    path = os.path.expanduser(args.profiles) if args.profiles else default_profiles_path()
    current = load_profiles(path, missing_ok=True)
    added: list[Any] = []
    clashes: list[str] = []
    for imported, (line, entry) in zip(result.profiles, result.origins, strict=True):
        named = unique_names([imported], [*current.names(), *(p.name for p in added)])[0]
        profile = _checked(named, line, entry, source)
        try:  # the file's rules across profiles: one local address:port per profile
            parse_profiles(dump_profiles([*current.profiles, *added, profile]), source=str(path))
        except UsageError as exc:
            where = f"line {line}" if line is not None else entry
            # The checker names the other profile's place in the text checked here, not in the file.
            message = re.sub(r" \(profiles\[\d+\][^()]*\)$", "", exc.message)
            clashes.append(f"{where} ({profile.name}): {message}")
            continue
        added.append(profile)

    for skipped in result.skipped:
        print(f"tender: import: skipped {source} {skipped}", file=sys.stderr)
    for clash in clashes:
        print(f"tender: import: skipped {source} {clash}", file=sys.stderr)
    for note in result.notes:
        print(f"tender: import: note: {note}", file=sys.stderr)
    names = ", ".join(p.name for p in added)
    plural = "" if len(added) == 1 else "s"
    if args.dry_run:
        if added:
            sys.stdout.write(yaml.safe_dump([p.to_dict() for p in added], sort_keys=False, allow_unicode=True,
                                            default_flow_style=None, width=1 << 16))
        print(f"tender: import: dry run: would add {len(added)} profile{plural} to {path}"
              f"{f' ({names})' if added else ''}; nothing written", file=sys.stderr)
        return 0
    if not added:
        print(f"tender: import: nothing to add to {path}", file=sys.stderr)
        return 0
    save_profiles(path, [*current.profiles, *added])
    print(f"tender: import: added {len(added)} profile{plural} to {path} ({names})", file=sys.stderr)
    return 0
