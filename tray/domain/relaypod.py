"""The relay pod: what Tender creates in the cluster for a forward port-forward cannot reach.

Plain data and pure functions: the pod's manifest (:func:`relay_pod`), the
labels that say whose it is (:func:`relay_labels`), which pods are
orphans to delete (:func:`orphans`), and which forwards need a relay at
all (:func:`needs_relay`).  The engine (:mod:`tray.engine.relay`) sends
them; the program the pod runs is :mod:`tray.wire.relay`.

Ownership, as the labels say it: ``app.kubernetes.io/managed-by: tender``,
``app.kubernetes.io/name: tender-relay``, and ``kube-tender/user``,
``kube-tender/host`` (the local user and machine), ``kube-tender/engine``
(one running Tender, a random id) and ``kube-tender/forward`` (the
forward's target); the annotations ``kube-tender/pid`` and
``kube-tender/pid-start`` name that Tender's process.  A relay of this user
and machine whose process is gone (or is another program now) is an
orphan: its Tender died before deleting it.  A live one is left alone,
even another Tender's (``tender forward --no-engine`` beside the tray).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

from tray.domain.targets import Target

__all__ = ["DEFAULT_IMAGE", "RELAY_PORT", "DEFAULT_DEADLINE", "EXIT_IDLE", "LABEL_PREFIX", "relay_labels",
           "relay_pod", "orphans", "needs_relay", "label_value", "service_needs_relay"]

#: The image the relay runs when neither the profile nor the settings name one: the
#: Docker Official Image of Python on Alpine, stock and widely mirrored (about 20 MB
#: to pull).  Any image with ``python3`` >= 3.8 on its PATH will do.
DEFAULT_IMAGE: Final = "python:3.13-alpine"
#: The relay's port inside its pod (bound on the pod's 127.0.0.1 only).
RELAY_PORT: Final = 8400
#: ``activeDeadlineSeconds``: the relay pod ends after a day whatever happens (Tender makes a new one).
DEFAULT_DEADLINE: Final = 86400
#: Seconds the relay lives on without any connection (Tender holds one while the forward runs).
EXIT_IDLE: Final = 60
LABEL_PREFIX: Final = "kube-tender/"

_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def label_value(text: str) -> str:
    """``text`` made a valid label value: other characters as ``-``, at most 63, alphanumeric at both ends.

    ``"alice@corp"`` -> ``"alice-corp"``; ``""`` -> ``"unknown"``.  Pure.
    """
    value = _LABEL_BAD.sub("-", text).strip("._-")[:63].rstrip("._-")
    return value or "unknown"


def relay_labels(user: str, host: str, engine: str, forward: str) -> dict[str, str]:
    """The labels of a relay pod of ``user`` on ``host`` made by ``engine`` for ``forward`` (its target text)."""
    return {
        "app.kubernetes.io/name": "tender-relay",
        "app.kubernetes.io/managed-by": "tender",
        LABEL_PREFIX + "user": label_value(user),
        LABEL_PREFIX + "host": label_value(host),
        LABEL_PREFIX + "engine": label_value(engine),
        LABEL_PREFIX + "forward": label_value(forward.replace("/", ".")),
    }


def owner_selector(user: str, host: str) -> str:
    """The ``labelSelector`` of every relay pod ``user`` made on ``host`` (any engine)."""
    return (f"app.kubernetes.io/managed-by=tender,app.kubernetes.io/name=tender-relay,"
            f"{LABEL_PREFIX}user={label_value(user)},{LABEL_PREFIX}host={label_value(host)}")


def relay_pod(*, source: str, image: str, labels: dict[str, str], target: str,
              deadline: int = DEFAULT_DEADLINE, exit_idle: int = EXIT_IDLE,
              process: tuple[int, str] = (0, "")) -> dict[str, Any]:
    """The relay pod's manifest (``generateName: tender-relay-``), ready to POST.

    ``source``: the relay program (:mod:`tray.wire.relay`'s text); ``image``:
    an image with ``python3``; ``target``: what it relays to, for the
    ``kube-tender/target`` annotation (``"host/db.internal:5432"``);
    ``deadline``: ``activeDeadlineSeconds``; ``exit_idle``: seconds without a
    connection after which the program exits; ``process``: the Tender
    process's (pid, start time) for the orphan rule.  It runs as nobody (65534),
    read-only, no capabilities, no service account token, and restarts
    never: a relay that ended is replaced by Tender, not by the kubelet.
    """
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "tender-relay-",
            "labels": dict(labels),
            "annotations": {LABEL_PREFIX + "target": target, LABEL_PREFIX + "pid": str(process[0]),
                            LABEL_PREFIX + "pid-start": process[1]},
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": int(deadline),
            "terminationGracePeriodSeconds": 2,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "relay",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", source, "--listen", f"127.0.0.1:{RELAY_PORT}",
                            "--exit-idle", str(int(exit_idle))],
                "ports": [{"name": "relay", "containerPort": RELAY_PORT, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


def orphans(pods: list[dict[str, Any]], engine: str, alive: Callable[[int, str], bool]) -> list[str]:
    """The names among ``pods`` (relay pods of this user and machine) whose Tender is gone.

    ``engine``: this engine's id (its own pods are never orphans);
    ``alive(pid, start)``: whether that process still runs as the same
    program (its start time).  Pods already being deleted are left out, and
    so are pods that name no process (they are never guessed at).
    """
    mine = label_value(engine)
    out = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        name = str(meta.get("name", ""))
        if not name or meta.get("deletionTimestamp") or (meta.get("labels") or {}).get(LABEL_PREFIX + "engine") == mine:
            continue
        notes = meta.get("annotations") or {}
        pid = str(notes.get(LABEL_PREFIX + "pid", ""))
        if pid.isdigit() and int(pid) > 0 and not alive(int(pid), str(notes.get(LABEL_PREFIX + "pid-start", ""))):
            out.append(name)
    return out


def needs_relay(target: Target, protocol: str) -> bool:
    """Whether a forward needs a relay before looking at the cluster: ``host/``, ``ip/`` or UDP."""
    return target.relayed or protocol == "UDP"


def service_needs_relay(svc: dict[str, Any]) -> str:
    """Why a Service has no pods to port-forward to (``"ExternalName"``, ``"no selector"``), or "".

    Such a Service is reached through a relay: its ``externalName``, or the
    addresses of its EndpointSlices.  Pure.
    """
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return "ExternalName"
    if not spec.get("selector"):
        return "no selector"
    return ""
