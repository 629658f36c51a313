"""The control API under bad input (issue 13): a `tender daemon` on the test cluster, driven over its socket.

Every bad request gets a 4xx whose JSON is one sentence naming the field at
fault -- never a 500/503, never a traceback -- and the engine keeps going:
``GET /v1/engine`` still answers and a forward started before still carries
bytes.  A Hypothesis property throws random JSON at ``POST /v1/forwards``
and ``POST /v1/forwards/stop`` and never gets a 5xx.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.clusterlib import Cluster
from tests.integration.daemon import Daemon
from tests.integration.engine import hostname, pod_manifest

pytestmark = pytest.mark.cluster


# ---------------------------------------------------------------- the daemon
@pytest.fixture
def web(cluster: Cluster, namespace: str) -> str:
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    return "web"


def assert_engine_goes_on(d: Daemon, c: httpx.Client, port: int, pod: str) -> None:
    assert d.proc.poll() is None, d.log.read_text()
    engine = c.get("/v1/engine")
    assert engine.status_code == 200 and engine.json()["pid"] == d.proc.pid, engine.text
    assert hostname(port) == pod  # the running forward still carries bytes


def assert_no_traceback(log: Path) -> None:
    """No record of the daemon's log has a traceback, but aiohttp's own about a body it could not decode.

    aiohttp answers such a request (our 400) and then, draining the rest of
    the body before closing, logs the decoding error as "Unhandled exception".
    """
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} )", log.read_text())
    bad = [r for r in records if "Traceback" in r
           and not (r.split("\n", 1)[0].endswith("ERROR aiohttp.server: Unhandled exception")
                    and r.rstrip().endswith("Can not decode content-encoding: gzip"))]
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------- the table
BIG = b'{"target": "pod/web", "ports": ["8080"], "namespace": "' + b"a" * (64 * 1024) + b'"}'
DEEP = b"[" * 5000 + b"]" * 5000

# (method, path, body: JSON-able, or bytes sent as they are, extra headers, status, field, words in the sentence)
CASES: list[tuple[str, str, Any, dict[str, str], int, str | None, str]] = [
    ("POST", "/v1/forwards", b"nope", {}, 400, None, "not valid JSON"),
    ("POST", "/v1/forwards", b"{\"target\": ", {}, 400, None, "not valid JSON"),
    ("POST", "/v1/forwards", b"\xff\xfe\x00", {}, 400, None, "not valid JSON"),
    ("POST", "/v1/forwards", DEEP, {}, 400, None, "not valid JSON"),
    ("POST", "/v1/forwards", ["pod/web", "8080"], {}, 400, None, "JSON object"),
    ("POST", "/v1/forwards", "pod/web", {}, 400, None, "JSON object"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": ["80"], "port": "80"}, {}, 400, "port",
     "unknown field 'port'"),
    ("POST", "/v1/forwards", {"ports": ["8080"]}, {}, 400, "target", "target is required"),
    ("POST", "/v1/forwards", {}, {}, 400, "target", "target is required"),
    ("POST", "/v1/forwards", {"target": "foo/web", "ports": ["8080"]}, {}, 400, "target", "unknown resource kind"),
    ("POST", "/v1/forwards", {"target": "pod/Web", "ports": ["8080"]}, {}, 400, "target", "invalid resource name"),
    ("POST", "/v1/forwards", {"target": ["pod/web"], "ports": ["8080"]}, {}, 400, "target", "non-empty string"),
    ("POST", "/v1/forwards", {"target": "pod/web"}, {}, 400, "ports", "ports is required"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": []}, {}, 400, "ports", "non-empty list"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": "8080"}, {}, 400, "ports", "non-empty list"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": ["8080:80:1"]}, {}, 400, "ports[0]", "too many ':'"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": [":8080", "x y"]}, {}, 400, "ports[1]", "whitespace"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": ["65536"]}, {}, 400, "ports[0]", "out of range"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": [0]}, {}, 400, "ports[0]", "out of range"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": [True]}, {}, 400, "ports[0]", "must be a string"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": [{"port": 80}]}, {}, 400, "ports[0]",
     "must be a string"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": [":8080"], "address": "my-laptop"}, {}, 400,
     "address", "not an IP address"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": [":8080"], "namespace": "a/b"}, {}, 400,
     "namespace", "not a namespace name"),
    ("POST", "/v1/forwards", {"target": "pod/web", "ports": [":8080"], "context": "nope"}, {}, 400, "context",
     'context "nope" not found'),
    ("GET", "/v1/forwards/00000000-0000-0000-0000-000000000000", None, {}, 404, "id", "no forward with id"),
    ("GET", "/v1/forwards/nope/logs", None, {}, 404, "id", "no forward with id nope"),
    ("POST", "/v1/forwards/nope/stop", {}, {}, 404, "id", "no forward with id nope"),
    ("POST", "/v1/forwards/nope/retry", {}, {}, 404, "id", "no forward with id nope"),
    ("DELETE", "/v1/forwards/nope", None, {}, 404, "id", "no forward with id nope"),
    ("POST", "/v1/forwards/stop", {"ids": ["nope"]}, {}, 404, "ids", "no forward with id nope"),
    ("GET", "/v1/nope", None, {}, 404, None, "no such path: /v1/nope"),
    ("GET", "/v2/forwards", None, {}, 404, None, "no such path"),
    ("GET", "/", None, {}, 404, None, "no such path"),  # the page is the dashboard's, not the socket's
    ("PUT", "/v1/forwards", {"target": "pod/web"}, {}, 405, None, "PUT is not allowed on /v1/forwards"),
    ("DELETE", "/v1/engine", None, {}, 405, None, "DELETE is not allowed"),
    ("GET", "/v1/profiles/start", None, {}, 405, None, "GET is not allowed"),
    ("POST", "/v1/forwards", BIG, {}, 413, None, "larger than 65536 bytes"),
    ("POST", "/v1/forwards", b'{"target": "pod/web", "ports": ["8080"]}', {"Content-Type": "text/xml"}, 415,
     None, "Content-Type: application/json"),
    # curl -d's type is read as JSON on the socket (the dashboard's port refuses it: test_api_security)
    ("POST", "/v1/forwards", b"target=pod/web", {"Content-Type": "application/x-www-form-urlencoded"}, 400, None,
     "the body is not valid JSON"),
    ("POST", "/v1/forwards", b'{"target": "pod/web", "ports": ["8080"]}', {"Content-Encoding": "gzip"}, 400,
     None, "could not be read"),
    ("POST", "/v1/forwards/stop", {}, {}, 400, None, "select something"),
    ("POST", "/v1/forwards/stop", {"all": False, "ids": []}, {}, 400, None, "select something"),
    ("POST", "/v1/forwards/stop", {"all": "yes"}, {}, 400, "all", "true or false"),
    ("POST", "/v1/forwards/stop", {"ids": "abc"}, {}, 400, "ids", "list of non-empty strings"),
    ("POST", "/v1/forwards/stop", {"names": ["web"]}, {}, 400, "names", "unknown field 'names'"),
    ("POST", "/v1/profiles/start", {}, {}, 400, None, "select something"),
    ("POST", "/v1/profiles/stop", [], {}, 400, None, "JSON object"),
    ("POST", "/v1/profiles/start", {"names": ["nope"]}, {}, 404, "names", "no profile named 'nope'"),
    ("POST", "/v1/profiles/start", {"groups": ["nope"]}, {}, 404, "groups", "no profiles in group 'nope'"),
    ("POST", "/v1/profiles/stop", {"names": ["web", "nope"]}, {}, 404, "names", "no profile named 'nope'"),
    ("GET", "/v1/search", None, {}, 400, "q", "q is required"),
    ("GET", "/v1/search?q=" + "x" * 201, None, {}, 400, "q", "longer than 200"),
]


def send(c: httpx.Client, method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    if isinstance(body, bytes):
        return c.request(method, path, content=body, headers={"Content-Type": "application/json", **headers})
    if body is None:
        return c.request(method, path, headers=headers)
    return c.request(method, path, json=body, headers=headers)


def test_bad_input_gets_a_4xx_naming_the_field(cluster: Cluster, namespace: str, web: str, daemon: Daemon) -> None:
    daemon.profiles.write_text(f"version: 1\nprofiles:\n  - {{name: web, context: {cluster.context}, "
                               f"namespace: {namespace}, target: pod/web, ports: [':8080'], group: shop}}\n")
    with daemon.client() as c:
        running = daemon.start_forward({"target": "pod/web", "ports": [":8080"], "namespace": namespace})
        port = running["local_port"]
        assert hostname(port) == web
        problems = []
        for method, path, body, headers, status, field, words in CASES:
            what = f"{method} {path[:40]} {str(body)[:60]!r}"
            try:
                answer = send(c, method, path, body, headers)
            except httpx.TransportError as exc:
                problems.append(f"{what}: no answer ({exc!r}), expected {status}")
                continue
            if answer.status_code != status:
                problems.append(f"{what}: {answer.status_code} {answer.text[:300]}, expected {status}")
                continue
            assert answer.headers["content-type"].startswith("application/json"), (what, answer.headers)
            error = answer.json()
            assert set(error) == {"error", "field"}, (what, error)
            sentence = error["error"]
            if error["field"] != field or words not in sentence or "\n" in sentence or "Traceback" in sentence:
                problems.append(f"{what}: {answer.status_code} {error}, expected field {field!r} and {words!r}")
            if status == 400 and field is not None and field not in sentence:
                problems.append(f"{what}: the sentence {sentence!r} does not name {field!r}")
        assert not problems, "\n".join(problems)

        # A local port this engine's forward holds: 409, naming the port and the forward that holds it.
        taken = c.post("/v1/forwards", json={"target": "pod/web", "ports": [f"{port}:8080"], "namespace": namespace})
        assert taken.status_code == 409, taken.text
        assert taken.json()["field"] == "ports[0]" and str(port) in taken.json()["error"], taken.text
        # All or nothing: the second port is taken, so the first is not left running.
        before = [f["session_id"] for f in c.get("/v1/forwards").json()["forwards"]]
        half = c.post("/v1/forwards", json={"target": "pod/web", "ports": [":8080", f"{port}:8080"],
                                            "namespace": namespace})
        assert half.status_code == 409 and half.json()["field"] == "ports[1]", half.text
        assert [f["session_id"] for f in c.get("/v1/forwards").json()["forwards"]] == before

        # A broken profiles file: GET /v1/profiles answers 200 and names FILE:LINE.
        daemon.profiles.write_text("version: 1\nprofiles:\n  - name: web\n    target: pod/web\n    ports: [99999]\n")
        listed = c.get("/v1/profiles")
        assert listed.status_code == 200, listed.text
        data = listed.json()
        assert data["error"].startswith(f"{daemon.profiles}:5: "), data
        assert data["problems"] and data["problems"][0]["line"] == 5, data
        assert [p["name"] for p in data["profiles"]] == ["web"], data  # the last good reading

        assert_engine_goes_on(daemon, c, port, web)
        assert [f["session_id"] for f in c.get("/v1/forwards").json()["forwards"]] == before
    assert_no_traceback(daemon.log)


def test_stopping_one_forward_from_many_clients_at_once(cluster: Cluster, namespace: str, daemon: Daemon) -> None:
    """Eight clients stop the same forward at once (a tray, a dashboard, a script): 200 or 404, nothing else."""
    answers: list[tuple[int, str]] = []
    for _ in range(5):
        with daemon.client() as c:
            started = c.post("/v1/forwards", json={"target": "pod/nope", "ports": [":8080"], "namespace": namespace})
            assert started.status_code == 201, started.text
            fid = started.json()["forwards"][0]["session_id"]
        barrier = threading.Barrier(8)

        def stop(i: int, fid: str = fid) -> None:
            with daemon.client() as c:
                barrier.wait(10)
                r = c.delete(f"/v1/forwards/{fid}") if i % 2 else c.post(f"/v1/forwards/{fid}/stop")
                answers.append((r.status_code, r.text))

        threads = [threading.Thread(target=stop, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with daemon.client() as c:
            assert c.get(f"/v1/forwards/{fid}").status_code == 404
    assert len(answers) == 40
    wrong = [a for a in answers if a[0] not in (200, 404)]
    assert not wrong, wrong
    assert all(json.loads(text)["field"] == "id" for status, text in answers if status == 404), answers
    assert_no_traceback(daemon.log)


# ---------------------------------------------------------------- the property
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
JSON = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=8), inner, max_size=4), max_leaves=12)
# Port specs that, if valid, bind a port the kernel chooses (":8080") or none at all: no test's port is taken.
_ports = st.lists(st.sampled_from([":8080", ":http", "0", "65536", "-1", "1:2:3", "", 0, 70000, True, None, 1.5])
                  | st.text(alphabet=":abc-", max_size=6).filter(lambda t: ":" in t or not t) | JSON, max_size=4)
FORWARD_BODIES = JSON | st.fixed_dictionaries({}, optional={
    "target": st.sampled_from(["pod/web", "svc/web", "web", "deploy/web", "nope/web", "", "pod/"]) | JSON,
    "ports": _ports | JSON,
    "context": st.sampled_from(["tender-a", "tender-b", "nope", ""]) | JSON,
    "namespace": st.sampled_from(["default", "a/b", "..", "UPPER", ""]) | JSON,
    "address": st.sampled_from(["127.0.0.1", "::1", "localhost", "127.0.0.2", "my-laptop", ""]) | JSON,
    "extra": JSON,
})
# Bodies close to valid ones: the engine gets past the checks to the start (201) or the cluster (400/409).
FORWARD_BODIES |= st.fixed_dictionaries({
    "target": st.sampled_from(["pod/web", "svc/web", "web", "deploy/web"]),
    "ports": st.lists(st.sampled_from([":8080", ":http", ":80"]), min_size=1, max_size=3),
}, optional={
    "context": st.sampled_from(["tender-a", "tender-b", "nope"]),
    "namespace": st.sampled_from(["default", "kube-system", "a/b"]),
    "address": st.sampled_from(["127.0.0.1", "::1", "localhost", "127.0.0.2", "my-laptop"]),
})
STOP_BODIES = JSON | st.fixed_dictionaries({}, optional={
    "ids": st.lists(st.text(max_size=40), max_size=3) | JSON, "all": st.booleans() | JSON,
    "context": st.sampled_from(["tender-a", "nope"]) | JSON, "profile": st.text(max_size=8) | JSON,
    "names": JSON,
})
PROFILE_BODIES = JSON | st.fixed_dictionaries({}, optional={
    "names": st.lists(st.sampled_from(["web", "nope", ""]) | JSON, max_size=3) | JSON,
    "groups": st.lists(st.sampled_from(["shop", "nope", ""]) | JSON, max_size=3) | JSON,
    "all": st.booleans() | JSON, "ids": JSON,
}) | st.fixed_dictionaries({}, optional={  # close to valid: they start, stop, or name what is not there (404)
    "names": st.lists(st.sampled_from(["web", "gone", "nope"]), max_size=2),
    "groups": st.lists(st.sampled_from(["shop", "nope"]), max_size=2), "all": st.booleans(),
})


def test_random_json_never_gets_a_5xx(cluster: Cluster, namespace: str, web: str, daemon: Daemon) -> None:
    seen: dict[int, int] = {}
    with daemon.client() as c:

        def check(path: str, body: Any) -> None:
            answer = c.post(path, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, f"POST {path} {body!r}: {answer.status_code} {answer.text}"
            assert "Traceback" not in answer.text
            if answer.status_code >= 400:
                assert set(answer.json()) == {"error", "field"}, answer.text
            if path == "/v1/forwards" and answer.status_code == 201:  # leave nothing bound between examples
                ids = [f["session_id"] for f in answer.json()["forwards"]]
                assert c.post("/v1/forwards/stop", json={"ids": ids}).status_code == 200

        @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(st.sampled_from(["/v1/forwards", "/v1/forwards/stop"]), st.data())
        def prop(path: str, data: st.DataObject) -> None:
            check(path, data.draw(FORWARD_BODIES if path == "/v1/forwards" else STOP_BODIES))

        prop()
        assert any(400 <= s < 500 for s in seen) and any(s < 300 for s in seen), seen

        # The profiles' start and stop too (a profile that can start, and one that cannot).
        daemon.profiles.write_text("version: 1\nprofiles:\n"
                                   f"  - {{name: web, context: tender-a, namespace: {namespace}, "
                                   "target: pod/web, ports: [':8080'], group: shop}\n"
                                   "  - {name: gone, context: tender-a, namespace: nope, target: svc/gone, "
                                   "ports: [':80'], group: shop}\n")

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(st.sampled_from(["/v1/profiles/start", "/v1/profiles/stop"]), PROFILE_BODIES)
        def profiles_prop(path: str, body: Any) -> None:
            check(path, body)

        before = dict(seen)
        profiles_prop()
        assert seen.get(200, 0) > before.get(200, 0) and seen.get(404, 0) > before.get(404, 0), (before, seen)
        assert c.post("/v1/profiles/stop", json={"all": True}).status_code == 200
        assert c.get("/v1/forwards").json() == {"forwards": []}
        # The engine is fine: it still starts a forward that carries bytes.
        fwd = daemon.start_forward({"target": "pod/web", "ports": [":8080"], "namespace": namespace})
        assert_engine_goes_on(daemon, c, fwd["local_port"], web)
    assert_no_traceback(daemon.log)


def test_curl_d_works_on_the_socket_as_the_docs_show(cluster: Cluster, namespace: str, web: str,
                                                     daemon: Daemon) -> None:
    """docs/api.md's examples use ``curl -d '{...}'`` (form type): the socket reads it as JSON."""
    body = json.dumps({"target": "pod/web", "ports": [":8080"], "namespace": namespace})
    out = subprocess.run(["curl", "-s", "--unix-socket", str(daemon.socket), "-d", body, "http://tender/v1/forwards"],
                         capture_output=True, text=True, timeout=30)
    started = json.loads(out.stdout)
    assert [f["target"] for f in started["forwards"]] == ["pod/web"], out.stdout
    with daemon.client() as c:
        assert c.post("/v1/forwards/stop", json={"all": True}).status_code == 200
