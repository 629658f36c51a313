"""Who may drive the engine (issue 13, docs/api.md "Where it listens, and who may talk to it").

A real `tender daemon` on the test cluster, each with a runtime directory of
its own:

* another uid (``nobody``, through ``setpriv``; the suite runs as root) cannot
  connect through the 0700 directory, and when a careless user makes the
  directory and socket world-accessible, the server's own ``SO_PEERCRED``
  check answers 403 and nothing changes;
* a socket left by a SIGKILLed engine: ``tender ls`` says no engine runs (exit
  1, one line), and the next ``tender daemon`` replaces it; an engine that
  hangs up before answering is one line too, never a traceback;
* two ``tender daemon`` started together: one wins, the other exits 3 with
  one line naming the winner;
* the dashboard's loopback listener: its link's one-time ``?code=`` is
  traded once for an HttpOnly SameSite=Strict cookie whose path is the
  dashboard's random prefix ``/d/RANDOM/``; without that cookie, with a
  wrong one, a used code, a foreign Host, Origin or ``Sec-Fetch-Site:
  cross-site`` every request is 403 and starts nothing; outside the prefix
  everything is 404; it listens on 127.0.0.1 only and sends no CORS header.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import struct
import sys
import threading
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.clusterlib import ROOT, Cluster
from tests.integration.daemon import Daemon
from tests.integration.engine import free_port, hostname, pod_manifest, port_refuses, wait_for

pytestmark = pytest.mark.cluster


# ---------------------------------------------------------------- the daemon
@pytest.fixture
def session(cluster: Cluster, tmp_path: Path) -> Iterator[Daemon]:
    """A user's session (runtime directory, environment) with no daemon started yet."""
    with Daemon(cluster, tmp_path) as d:
        yield d


@pytest.fixture
def daemon(session: Daemon) -> Daemon:
    """``tender daemon`` as a user starts it: no arguments (KUBECONFIG and TENDER_PROFILES say what)."""
    session.start([])
    return session


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> str:
    cluster.apply(pod_manifest("web"), namespace)
    cluster.wait_ready(namespace, "app=web")
    return "web"


def listening(pid: int) -> list[str]:
    """The local addresses (``127.0.0.1:PORT``, ``[::1]:PORT``) process ``pid`` listens on over TCP (``ss -ltnp``)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[3] for line in out.splitlines() if f"pid={pid}," in line)


# ---------------------------------------------------------------- another uid
# Run as nobody: one HTTP/1.1 request over the unix socket, printed as JSON
# {"status": 403, "body": ...} or {"errno": "EACCES"}.  Plain sockets, so a
# refusal is the kernel's or the engine's, never a client library's guess.
AS_NOBODY = r"""
import errno, json, socket, sys
path, method, target, body = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
try:
    s.connect(path)
except OSError as exc:
    print(json.dumps({"errno": errno.errorcode.get(exc.errno, str(exc.errno))}))
    sys.exit()
head = f"{method} {target} HTTP/1.1\r\nHost: tender\r\nContent-Type: application/json\r\n"
s.sendall(head.encode() + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
data = b""
while chunk := s.recv(65536):
    data += chunk
status_line, _, rest = data.partition(b"\r\n")
print(json.dumps({"status": int(status_line.split()[1]), "body": rest.partition(b"\r\n\r\n")[2].decode()}))
"""


def as_nobody(path: Path, method: str, target: str, body: Any = None) -> dict[str, Any]:
    if os.getuid() != 0:
        pytest.skip("needs root to run a client as another uid")
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv is missing (util-linux): cannot run a client as nobody")
    done = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
                           AS_NOBODY, str(path), method, target, "" if body is None else json.dumps(body)],
                          capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_another_uid_is_refused(cluster: Cluster, namespace: str, web: str, daemon: Daemon) -> None:
    fwd = daemon.start_forward({"target": "pod/web", "ports": [":8080"], "namespace": namespace})
    before = daemon.ids()
    mode = os.stat(daemon.socket.parent).st_mode & 0o777
    assert mode == 0o700 and os.stat(daemon.socket).st_mode & 0o777 == 0o600
    start = {"target": "pod/web", "ports": [":8080"], "namespace": namespace}

    # The engine's 0700 directory (the one above opened, so that it alone is tested): the kernel
    # refuses nobody before the engine sees anything.
    os.chmod(daemon.run_dir, 0o755)
    for method, target, body in (("GET", "/v1/forwards", None), ("POST", "/v1/forwards", start)):
        assert as_nobody(daemon.socket, method, target, body) == {"errno": "EACCES"}

    # A careless chmod opens the directory and the socket: the engine's own peer check answers 403.
    os.chmod(daemon.run_dir, 0o777)
    os.chmod(daemon.socket.parent, 0o777)
    os.chmod(daemon.socket, 0o666)
    for method, target, body in (("GET", "/v1/engine", None), ("GET", "/v1/forwards", None),
                                 ("GET", "/v1/events", None), ("POST", "/v1/forwards", start),
                                 ("POST", "/v1/forwards/stop", {"all": True}),
                                 ("DELETE", f"/v1/forwards/{fwd['session_id']}", None),
                                 ("POST", "/v1/dashboard", {}), ("POST", "/v1/profiles/start", {"all": True})):
        answer = as_nobody(daemon.socket, method, target, body)
        assert answer.get("status") == 403, (method, target, answer)
        error = json.loads(answer["body"])
        assert "uid 65534 may not use it" in error["error"], error
        assert fwd["session_id"] not in answer["body"]  # nothing about the forwards leaks

    # Nothing changed: the same forwards, still carrying bytes, and no dashboard listener was started.
    assert daemon.ids() == before
    assert hostname(fwd["local_port"]) == web
    assert listening(daemon.proc.pid) == [f"127.0.0.1:{fwd['local_port']}"]
    assert daemon.answers()

    # In the open directory nobody can also put a socket of their own in the engine's place:
    # the tender verbs do not talk to it (it would see the requests and choose the answers).
    planted = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                                "-c", PLANT, str(daemon.socket)], stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert planted.stdout is not None and planted.stdout.readline().strip() == "listening"
        assert os.stat(daemon.socket).st_uid == 65534
        for verb in (["ls"], ["dashboard", "--print-url"], ["events"]):
            done = daemon.tender(*verb)
            lines = done.stderr.splitlines()
            assert done.returncode != 0 and done.stdout == "", (verb, done)
            assert len(lines) == 1 and "belongs to uid 65534, not to you" in lines[0], (verb, done.stderr)
    finally:
        planted.kill()
        out, _ = planted.communicate(timeout=10)
    assert "got" not in out, out  # not a byte was sent to it


# Run as nobody: replace the socket at argv[1] with one of nobody's, say "listening", and
# report any connection ("got ...") until killed.
PLANT = r"""
import os, socket, sys
os.unlink(sys.argv[1])
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen()
print("listening", flush=True)
while True:
    conn, _ = s.accept()
    print("got", conn.recv(65536), flush=True)
    conn.close()
"""


# ---------------------------------------------------------------- a killed engine
def test_socket_of_a_killed_engine(session: Daemon) -> None:
    first = session.start([], log="first.log")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert session.socket.is_socket()  # left behind: nobody removed it

    for verb in (["ls"], ["stop", "--all"], ["events"]):
        done = session.tender(*verb)
        assert done.returncode == 1, (verb, done)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and "no Tender engine is running" in lines[0], (verb, done.stderr)
        assert done.stdout == "", (verb, done.stdout)

    second = session.start([], log="second.log")  # it answers with its pid, on that path
    assert (os.stat(session.socket).st_mode & 0o777) == 0o600
    done = session.tender("ls")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done
    session.stop()
    assert second.returncode == 0, session.log_text(second)
    assert not session.socket.exists()  # a clean exit removes its socket


def test_an_engine_that_goes_away_before_answering(session: Daemon) -> None:
    """A listener that reads the request and hangs up (an engine killed mid-request): one line, exit 1."""
    session.socket.parent.mkdir(mode=0o700)
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(session.socket))
    server.listen()
    server.settimeout(30)

    def serve() -> None:
        for i in range(8):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            if i % 2:  # half of them reset, half close cleanly
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for verb in (["ls"], ["ls"], ["stop", "--all"], ["stop", "--all"], ["events"], ["events"]):
            done = session.tender(*verb)
            lines = done.stderr.splitlines()
            assert done.returncode == 1 and len(lines) == 1, (verb, done.returncode, done.stderr)
            assert "the engine closed" in lines[0], (verb, lines)
    finally:
        server.close()
        thread.join(5)


# ---------------------------------------------------------------- two at once
def test_two_engines_starting_together(session: Daemon) -> None:
    for round in range(4):
        procs = [subprocess.Popen([sys.executable, "-m", "tray", "daemon"], cwd=ROOT, env=session.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while all(p.poll() is None for p in procs):
                assert time.monotonic() < deadline, f"round {round}: neither daemon gave way"
                time.sleep(0.05)
            (loser,) = [p for p in procs if p.poll() is not None]
            (winner,) = [p for p in procs if p is not loser]
            out, err = loser.communicate(timeout=10)
            assert loser.returncode == 3, (round, out, err)
            lines = err.splitlines()
            assert len(lines) == 1, (round, err)
            assert lines[0] == (f"tender: an engine is already running ('tender daemon', pid {winner.pid}); "
                                "'tender ls' lists its forwards"), (round, err)
            assert out == ""
            assert wait_for(lambda: session.answers(winner), 30, "the winner to answer", interval=0.1)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                try:
                    p.communicate(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.communicate()
        assert winner.returncode == 0, (round, winner.returncode)


# ---------------------------------------------------------------- the dashboard
def test_dashboard_guard(cluster: Cluster, namespace: str, web: str, daemon: Daemon) -> None:
    def link() -> str:
        with daemon.client() as c:
            answer = c.post("/v1/dashboard", json={})
            assert answer.status_code == 200, answer.text
            return answer.json()["url"]

    url = link()
    fwd = daemon.start_forward({"target": "pod/web", "ports": [":8080"], "namespace": namespace})
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and re.fullmatch(r"/d/[A-Za-z0-9_-]{16,}/", parts.path), url
    assert re.fullmatch(r"code=[A-Za-z0-9_-]{32,}", parts.query), url
    port, prefix, code = parts.port, parts.path, parts.query.removeprefix("code=")
    origin = f"http://127.0.0.1:{port}"
    before = daemon.ids()
    wanted = free_port()  # what a forged request would start a forward on
    forged = {"target": "pod/web", "ports": [f"{wanted}:8080"], "namespace": namespace}
    answers: list[httpx.Response] = []

    def request(method: str, path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
        with httpx.Client(base_url=origin, timeout=10, follow_redirects=False) as web_client:
            r = web_client.request(method, path, headers=headers, **kw)
        answers.append(r)
        return r

    # The code trade: 303 to the prefix (no code), an HttpOnly SameSite=Strict cookie whose path is the prefix
    # (browsers send a cookie to every port of 127.0.0.1, the forwarded pods' too, unless its path keeps it).
    traded = request("GET", f"{prefix}?code={code}", {})
    assert traded.status_code == 303, traded.text
    assert traded.headers["location"] == prefix
    assert traded.headers.get("referrer-policy") == "no-referrer"
    cookie = SimpleCookie(traded.headers["set-cookie"])["tender_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == prefix, cookie.output()
    key = cookie.value
    assert len(key) >= 32 and key != code
    session = {"Cookie": f"tender_session={key}"}
    # The code worked once: the same link again is refused with a way out, and sets no cookie.
    again = request("GET", f"{prefix}?code={code}", {})
    assert again.status_code == 403 and "set-cookie" not in again.headers, (again.status_code, again.headers)
    assert "open the dashboard again from the tray or with 'tender dashboard'" in again.json()["error"]
    # Each link has its own code; none of them is the cookie.
    codes = {urlsplit(link()).query for _ in range(3)} | {parts.query}
    assert len(codes) == 4 and not any(key in c for c in codes)

    # The cookie works (so the refusals below are the guards', not a broken listener).
    assert request("GET", f"{prefix}v1/forwards", session).status_code == 200
    assert request("GET", f"{prefix}v1/forwards", {**session, "Host": f"localhost:{port}"}).status_code == 200
    assert request("GET", f"{prefix}v1/forwards", {**session, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
                   ).status_code == 200

    refused = {
        "no cookie": {},
        "a wrong cookie": {"Cookie": "tender_session=" + "x" * len(key)},
        "the cookie's value as a bearer": {"Authorization": f"Bearer {key}"},
        "the code as the cookie": {"Cookie": f"tender_session={code}"},
        "a non-ASCII cookie": {"Cookie": "tender_session=\u00e9t\u00e9".encode()},  # type: ignore[dict-item]
        "a foreign Host": {**session, "Host": f"evil.example:{port}"},
        "a Host on another port": {**session, "Host": f"127.0.0.1:{port + 1}"},
        "a foreign Origin": {**session, "Origin": "http://evil.example"},
        "a null Origin": {**session, "Origin": "null"},
        "an Origin on another port": {**session, "Origin": f"http://127.0.0.1:{port + 1}"},
        "Sec-Fetch-Site: cross-site": {**session, "Sec-Fetch-Site": "cross-site"},
        "Sec-Fetch-Site: same-site": {**session, "Sec-Fetch-Site": "same-site"},
    }
    for what, headers in refused.items():
        for method, path, kw in (("GET", "v1/forwards", {}), ("GET", "v1/engine", {}), ("GET", "", {}),
                                 ("GET", "static/dashboard.js", {}),
                                 ("POST", "v1/forwards", {"json": forged}),
                                 ("POST", "v1/forwards/stop", {"json": {"all": True}}),
                                 ("DELETE", f"v1/forwards/{fwd['session_id']}", {}),
                                 ("OPTIONS", "v1/forwards", {"headers": {"Access-Control-Request-Method": "POST"}})):
            extra = kw.pop("headers", {})
            r = request(method, prefix + path, {**headers, **extra}, **kw)
            assert r.status_code == 403, (what, method, path, r.status_code, r.text)
            assert fwd["session_id"] not in r.text, (what, r.text)
    # A wrong code is not traded for a cookie.
    for wrong in (f"{code[:-2]}xx", "%C3%A9t%C3%A9", "%FF", "", key):
        r = request("GET", f"{prefix}?code={wrong}", {})
        assert r.status_code == 403 and "set-cookie" not in r.headers, (wrong, r.status_code, r.headers)
    # Outside the prefix there is nothing, with the cookie or not: no page, no API, no static files, no trade.
    fresh = urlsplit(link()).query
    for method, path in (("GET", "/"), ("GET", f"/?{fresh}"), ("GET", "/v1/forwards"), ("GET", "/v1/engine"),
                         ("POST", "/v1/forwards"), ("GET", "/static/dashboard.js"), ("GET", prefix.rstrip("/")),
                         ("GET", f"/d/{'x' * 16}/"), ("GET", f"/d/{'x' * 16}/?{fresh}")):
        r = request(method, path, session, **({"json": forged} if method == "POST" else {}))
        assert r.status_code == 404 and "set-cookie" not in r.headers, (method, path, r.status_code, r.text)
        assert prefix not in r.text and fwd["session_id"] not in r.text, r.text
    # A form's type (what a cross-site page may POST without a preflight) is not read as JSON here, with the cookie.
    form = request("POST", f"{prefix}v1/forwards", {**session, "Content-Type": "application/x-www-form-urlencoded"},
                   content=json.dumps(forged).encode())
    assert form.status_code == 415, (form.status_code, form.text)
    # The socket's own endpoint is not on the web.
    assert request("POST", f"{prefix}v1/dashboard", session, json={}).status_code == 404

    # Nothing started or stopped.
    assert daemon.ids() == before
    assert port_refuses(wanted)
    assert hostname(fwd["local_port"]) == web

    # A browser's visit: the link, then the page under the prefix with the cookie alone.
    with httpx.Client(base_url=origin, timeout=10, follow_redirects=True) as browser:
        page = browser.get(f"{prefix}?{fresh}")
        answers.append(page)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text[:200]
        assert page.url == f"{origin}{prefix}"
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert key not in page.text  # the page does not hand the session key to scripts
        assert browser.get(f"{prefix}static/dashboard.js").status_code == 200
        listed = browser.get(f"{prefix}v1/forwards", headers={"Origin": origin})
        answers.append(listed)
        assert listed.status_code == 200 and [f["session_id"] for f in listed.json()["forwards"]] == before

    # No CORS header in any answer, refused or not.
    for r in answers:
        cors = [h for h in r.headers if h.lower().startswith("access-control-")]
        assert not cors, (r.request.method, r.request.url, cors)

    # Loopback only: the dashboard's port is bound to 127.0.0.1 and nothing else.
    assert sorted(listening(daemon.proc.pid)) == sorted([f"127.0.0.1:{port}", f"127.0.0.1:{fwd['local_port']}"])
