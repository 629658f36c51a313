"""``tender hosts``: the hosts-file lines of the Services forwarded on their own addresses (``address: auto``).

``tender hosts [--kubeconfig K] [--profiles F] [--file PATH] [--write | --remove]``

The Services come from the running engine's forwards (``GET /v1/forwards``:
those listening on :func:`~tray.domain.addresses.auto_address` of their
context, namespace and name) and from the profiles with ``address: auto``
(their context and namespace filled in from the kubeconfig).  Without a flag
the lines are printed (``127.A.B.C  web  web.demo  web.demo.svc
web.demo.svc.cluster.local``); ``--write`` keeps them in the file's marked
block (:mod:`tray.domain.hostsfile`), ``--remove`` removes the block, both
written atomically with the file's mode and owner kept.  Those two need
root for ``/etc/hosts``: run as ``sudo tender hosts --write``, the lines are
gathered as the user who ran sudo (their engine, profiles and kubeconfig),
then the file is written as root.

Exit codes: 0 done; 1 the file could not be read or written for another
reason than a permission (one line); 2 a permission denied (one line telling
to use sudo), a block this command will not guess about, or bad arguments.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from tray.domain.addresses import AUTO_ADDRESS, auto_address
from tray.domain.hostsfile import HostsEntry, HostsFileError, entries_for, remove_block, replace_block
from tray.errors import UsageError

__all__ = ["add_parser", "run", "DEFAULT_FILE"]

DEFAULT_FILE = "/etc/hosts"
#: Seconds to wait for the engine's answer, and for the invoking user's ``tender hosts`` under sudo.
TIMEOUT = 30.0


def add_parser(sub: Any) -> None:
    """Add ``hosts`` to ``sub`` (argparse's subparsers action)."""
    p = sub.add_parser("hosts", help="print (or --write into /etc/hosts) the names of the Services "
                                     "forwarded with address auto")
    p.add_argument("--kubeconfig", help="kubeconfig path(s) for profiles without context or namespace "
                                        "(default $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--profiles", help="profiles file (default $TENDER_PROFILES or the user config dir)")
    p.add_argument("--file", default=DEFAULT_FILE, help=f"the hosts file (default {DEFAULT_FILE})")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--write", action="store_true",
                      help="keep the lines in the file's '# BEGIN tender' block (needs sudo for /etc/hosts)")
    what.add_argument("--remove", action="store_true", help="remove the '# BEGIN tender' block from the file")


def run(args: argparse.Namespace) -> int:
    """Run ``tender hosts``; returns the exit code (module docstring).  Blocks for the engine (at most 30 s)."""
    again = "hosts" + ("" if args.file == DEFAULT_FILE else f" --file {shlex.quote(args.file)}")
    if args.remove:
        return _edit(args.file, lambda text: remove_block(text), "removed the tender block", f"{again} --remove")
    sudo = _sudo_user()
    if sudo is not None:
        entries = _entries_as(sudo, args)
        if entries is None:
            return 1
    else:
        entries, notes = gather(args.kubeconfig, args.profiles)
        for note in notes:
            print(f"tender: hosts: {note}", file=sys.stderr)
    if not args.write:
        if not entries:
            print("tender: hosts: no Service is forwarded with address auto (tender forward --address auto "
                  "svc/NAME PORT, or a profile with address: auto)", file=sys.stderr)
        for entry in entries:
            print(entry.line())
        return 0
    count = f"{len(entries)} line{'' if len(entries) == 1 else 's'}"
    return _edit(args.file, lambda text: replace_block(text, entries),
                 f"wrote the tender block ({count})" if entries else "no Service is forwarded with address auto: "
                 "removed the tender block", f"{again} --write")


# ---------------------------------------------------------------- what to write
def gather(kubeconfig: str | None, profiles: str | None) -> tuple[list[HostsEntry], list[str]]:
    """The hosts entries of the engine's auto-address Service forwards, then of the profiles', and notes.

    Notes (one line each) say what was left out and why: no engine
    running is not one (its forwards are simply none).  Blocks for the
    engine's answer (at most :data:`TIMEOUT` seconds) and the files' reads.
    """
    notes: list[str] = []
    services = _engine_services(notes) + _profile_services(kubeconfig, profiles, notes)
    entries, more = entries_for(services)
    return entries, notes + more


def _engine_services(notes: list[str]) -> list[tuple[str, str, str]]:
    from tray.api.client import ApiError, NoEngine, connect

    try:
        client = connect(timeout=TIMEOUT)
        if client is None:
            return []
        with client:
            forwards = client.get("/v1/forwards")["forwards"]
    except (ApiError, NoEngine) as exc:
        notes.append(f"the running engine's forwards are left out: {getattr(exc, 'message', exc)}")
        return []
    out = []
    for f in forwards:
        context, namespace, name = f.get("cluster_id", ""), f.get("namespace", ""), f.get("target_name", "")
        if f.get("address") != auto_address(context, namespace, name):
            continue  # not on its own address
        if f.get("target_kind") != "Service":
            notes.append(f"{f.get('name') or name} ({context}/{namespace}) listens on its own address "
                         f"{f.get('address')} but is not a Service: no cluster name to give it")
            continue
        out.append((f["address"], namespace, name))
    return out


def _profile_services(kubeconfig: str | None, path: str | None, notes: list[str]) -> list[tuple[str, str, str]]:
    from tray.profiles import load_profiles

    try:
        pf = load_profiles(path or os.environ.get("TENDER_PROFILES") or None)
    except UsageError as exc:
        notes.append(f"the profiles are left out: {exc}")
        return []
    auto = [p for p in pf.profiles if p.address == AUTO_ADDRESS]
    if not auto:
        return []
    clusters: dict[str, Any] = {}
    current = None
    if any(p.context is None or p.namespace is None for p in auto):
        from tray.kube.kubeconfig import list_clusters

        try:
            infos = list_clusters(kubeconfig)
        except UsageError as exc:
            notes.append(f"profiles without a context or namespace are left out: {exc}")
            infos = []
        clusters = {c.id: c for c in infos}
        current = next((c.id for c in infos if c.current), None)
    out = []
    for p in auto:
        if p.target.kind != "Service":
            notes.append(f"profile {p.name!r}: {p.target} is not a Service: no cluster name to give it")
            continue
        context = p.context or current
        if context is None:
            notes.append(f"profile {p.name!r}: no context (the kubeconfig has no current context); left out")
            continue
        namespace = p.namespace
        if namespace is None:
            info = clusters.get(context)
            if info is None:
                notes.append(f"profile {p.name!r}: context {context!r} is not in the kubeconfig, so its "
                             "default namespace is unknown; left out")
                continue
            namespace = info.namespace
        out.append((auto_address(context, namespace, p.target.name), namespace, p.target.name))
    return out


# ---------------------------------------------------------------- sudo
def _sudo_user() -> tuple[int, int, str] | None:
    """(uid, gid, home) of the user who ran ``sudo``, when this runs as root under sudo; else None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    uid = os.environ.get("SUDO_UID", "")
    if not uid.isdigit() or int(uid) == 0:
        return None
    import pwd

    try:
        entry = pwd.getpwuid(int(uid))
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid, entry.pw_dir


_ADDRESS = re.compile(r"127\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")


def _entries_as(user: tuple[int, int, str], args: argparse.Namespace) -> list[HostsEntry] | None:
    """The entries ``tender hosts`` prints when run as the user who ran sudo (their engine, profiles, kubeconfig).

    The engine answers its own user only, so the lines are asked for as
    that user; what comes back is checked line by line before it may reach
    the file.  None (after one line on stderr) when that run fails.
    """
    uid, gid, home = user
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TENDER_PROFILES", "KUBECONFIG")}
    env.update(HOME=home, USER=os.environ.get("SUDO_USER", str(uid)), LOGNAME=os.environ.get("SUDO_USER", str(uid)))
    if os.path.isdir(f"/run/user/{uid}"):
        env["XDG_RUNTIME_DIR"] = f"/run/user/{uid}"
    # What sudo kept of the user's session (sudo -E, env_keep), where it is that user's own.
    for key in ("HOME", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        value = os.environ.get(key, "")
        if value and _owned_by(value, uid):
            env[key] = value
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # this very tender and its libraries
    command = [sys.executable, "-m", "tray", "hosts"]
    for flag, value in (("--kubeconfig", args.kubeconfig), ("--profiles", args.profiles)):
        if value:
            command += [flag, os.path.abspath(value)]
    try:
        done = subprocess.run(command, user=uid, group=gid, extra_groups=[], env=env, stdout=subprocess.PIPE,
                              text=True, timeout=TIMEOUT + 10)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"tender: error: hosts: could not ask as uid {uid} for the lines: {exc}", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"tender: error: hosts: 'tender hosts' as uid {uid} exited {done.returncode}", file=sys.stderr)
        return None
    entries = []
    for line in done.stdout.splitlines():
        address, *names = line.split("  ")
        if not _ADDRESS.fullmatch(address) or not names or not all(_NAME.fullmatch(n) for n in names):
            print(f"tender: error: hosts: unexpected line from 'tender hosts' as uid {uid}: {line!r}", file=sys.stderr)
            return None
        entries.append(HostsEntry(address, tuple(names)))
    return entries


def _owned_by(path: str, uid: int) -> bool:
    try:
        return os.path.isabs(path) and os.stat(path).st_uid == uid
    except OSError:
        return False


# ---------------------------------------------------------------- the file
def _edit(path: str, change: Any, done: str, again: str) -> int:
    """Read ``path``, apply ``change`` (text -> text), write it atomically if it changed; returns the exit code.

    ``done``: what is printed after a write; ``again``: the arguments to
    repeat under sudo when permission is denied.
    """
    from tray.atomicfile import write_atomic

    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raw = b""
    except PermissionError:
        return _denied(path, "read", again)
    except OSError as exc:
        print(f"tender: error: hosts: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    text = raw.decode("utf-8", "surrogateescape")  # any bytes come back out as they went in
    try:
        new = change(text)
    except HostsFileError as exc:
        print(f"tender: error: hosts: {path}: {exc}", file=sys.stderr)
        return 2
    if new == text:
        print(f"{path}: unchanged")
        return 0
    try:
        write_atomic(file, new.encode("utf-8", "surrogateescape"), mode=0o644)
    except PermissionError:
        return _denied(path, "write", again)
    except OSError as exc:
        print(f"tender: error: hosts: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{path}: {done}")
    return 0


def _denied(path: str, what: str, again: str) -> int:
    print(f"tender: error: hosts: cannot {what} {path}: permission denied; run it with sudo: sudo tender {again}",
          file=sys.stderr)
    return 2
