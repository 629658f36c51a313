"""The API's event batches (tray/api/server.py): the engine's order, every status, one list per burst, in its place."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from tray.api.server import ApiServer
from tray.engine.session import SessionInfo


def info(sid: str, status: str) -> SessionInfo:
    return SessionInfo(id=sid, cluster_id="c", cluster_name="c", namespace="ns", pod_name="p", container_port=80,
                       local_port=8080, target_kind="Service", target_name="web", status=status, status_reason="",
                       started_at="2026-11-30T00:00:00+00:00", address="127.0.0.1", remote_port="80", profile=None,
                       attempts=0, connections=0)


class Sink:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    def push(self, kind: str, line: bytes) -> None:
        self.got.append(json.loads(line))


def server_with_sink() -> tuple[ApiServer, Sink]:
    server = ApiServer(SimpleNamespace(kubeconfig=""), host="daemon", profiles_path="/nonexistent")
    sink = Sink()
    server._followers = {sink}  # type: ignore[assignment]
    return server, sink


def status(sid: str, state: str) -> tuple[str, bytes]:
    return ("status", (json.dumps({"event": "status", "session_id": sid, "status": state}) + "\n").encode())


def listing(*pairs: tuple[str, str]) -> tuple[str, Any]:
    return ("list", SimpleNamespace(sessions=[info(sid, state) for sid, state in pairs]))


def test_a_burst_sends_every_status_and_only_its_last_list_in_its_place() -> None:
    server, sink = server_with_sink()
    server._batch = [listing(("a", "starting")), status("a", "active"), listing(("a", "active"), ("b", "starting")),
                     status("b", "error"), status("a", "stopped"), listing(("b", "error")), status("b", "stopped")]
    server._flush_batch()
    said = [(e["event"], e.get("session_id"), e.get("status"),
             [(f["session_id"], f["status"]) for f in e.get("forwards", [])]) for e in sink.got]
    assert said == [("status", "a", "active", []), ("status", "b", "error", []), ("status", "a", "stopped", []),
                    ("list", None, None, [("b", "error")]), ("status", "b", "stopped", [])]
    assert server._batch == []
    server._loop.close()


def test_a_list_never_drops_a_forward_before_its_last_status_nor_shows_an_older_state() -> None:
    """What a follower rebuilds from the stream is what the engine said, in order."""
    server, sink = server_with_sink()
    server._batch = [status("x", "error"), listing(("x", "error")), status("x", "stopped"), listing()]
    server._flush_batch()
    last: dict[str, str] = {}
    for e in sink.got:
        if e["event"] == "status":
            last[e["session_id"]] = e["status"]
        else:
            for f in e["forwards"]:
                assert f["status"] == last.get(f["session_id"], f["status"])  # never older than a status sent
            assert all(last.get(i) == "stopped" for i in set(last) - {f["session_id"] for f in e["forwards"]})
    assert [e["event"] for e in sink.got] == ["status", "status", "list"]
    server._loop.close()
