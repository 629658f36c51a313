"""One engine per user (tray.api.claim): real locks and unix sockets in short temporary directories.

And what a second ``tender tray`` does when another process holds the claim
(tray.ui.app): it asks the holder over the API and says which it is.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tray.api import claim as claims

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="unix sockets and flock")

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def rundir():  # noqa: ANN201
    # Short: a unix socket path has ~104 bytes at most (pytest's tmp_path can be longer).
    base = Path(tempfile.mkdtemp(prefix="tc-", dir="/tmp"))
    yield base / "tender"
    shutil.rmtree(base, ignore_errors=True)


def answers(path: Path) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def holder(directory: Path, *, then: str) -> subprocess.Popen:
    """Another process that claims the engine, says "held" (or "busy"), then ``then``:
    ``"kill"`` (SIGKILLs itself, as the OOM killer would) or ``"wait"`` (until stdin closes)."""
    code = ("import os, signal, sys; from pathlib import Path; from tray.api import claim; "
            "c = claim.acquire(Path(sys.argv[1])); print('held' if c else 'busy', flush=True); "
            + ("os.kill(os.getpid(), signal.SIGKILL)" if then == "kill" else "sys.stdin.readline()"))
    return subprocess.Popen([sys.executable, "-c", code, str(directory)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def test_the_claim_is_a_private_listening_socket_and_a_second_claim_fails(rundir: Path) -> None:
    first = claims.acquire(rundir)
    assert first is not None
    try:
        assert stat.S_IMODE(os.stat(rundir).st_mode) == 0o700
        assert first.socket_path == rundir / "engine.sock" == claims.socket_path(rundir)
        assert stat.S_ISSOCK(os.stat(first.socket_path).st_mode)
        assert stat.S_IMODE(os.stat(first.socket_path).st_mode) == 0o600
        assert answers(first.socket_path)  # listening before acquire returned
        assert claims.acquire(rundir) is None  # flock is per open file: even in this process
        assert first.socket_path.exists()  # the loser touched nothing
    finally:
        first.close()


def test_close_releases_the_claim_and_removes_the_socket(rundir: Path) -> None:
    first = claims.acquire(rundir)
    first.close()
    first.close()  # idempotent
    assert not (rundir / "engine.sock").exists()
    assert not answers(rundir / "engine.sock")
    with claims.acquire(rundir) as second:
        assert second is not None and answers(second.socket_path)


def test_a_sigkilled_holder_leaves_a_stale_socket_that_the_next_one_replaces(rundir: Path) -> None:
    proc = holder(rundir, then="kill")
    assert proc.stdout.readline().strip() == "held"
    assert proc.wait(10) == -signal.SIGKILL
    stale = rundir / "engine.sock"
    assert stale.exists() and not answers(stale)  # left behind: nobody listens
    with claims.acquire(rundir) as now:  # the kernel released the lock with the process
        assert now is not None
        assert answers(now.socket_path)  # replaced: a listening socket at the same path


def test_a_live_holder_in_another_process_keeps_the_claim_until_it_ends(rundir: Path) -> None:
    proc = holder(rundir, then="wait")
    try:
        assert proc.stdout.readline().strip() == "held"
        assert claims.acquire(rundir) is None
        assert answers(rundir / "engine.sock")
    finally:
        proc.stdin.close()
        proc.wait(10)
    with claims.acquire(rundir) as mine:
        assert mine is not None


def test_of_engines_starting_at_once_exactly_one_wins(rundir: Path) -> None:
    go = rundir.parent / "go"
    code = ("import os, sys, time; from pathlib import Path; from tray.api import claim; "
            "go = Path(sys.argv[2])\n"
            "while not go.exists(): time.sleep(0.001)\n"
            "c = claim.acquire(Path(sys.argv[1])); print('held' if c else 'busy', flush=True); sys.stdin.readline()")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(rundir), str(go)], cwd=ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(6)]
    try:
        time.sleep(1.5)  # every interpreter started and is polling for the signal
        go.touch()
        results = sorted(p.stdout.readline().strip() for p in procs)
        assert results == ["busy"] * 5 + ["held"], results
        assert answers(rundir / "engine.sock")
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(10)


def test_a_loose_directory_is_made_private(rundir: Path) -> None:
    rundir.mkdir(mode=0o755)
    os.chmod(rundir, 0o755)
    with claims.acquire(rundir) as first:
        assert first is not None
        assert stat.S_IMODE(os.stat(rundir).st_mode) == 0o700


def test_an_unusable_directory_is_an_oserror(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        claims.acquire(tmp_path / "file" / "tender")  # a file where the directory's parent should be
    (tmp_path / "tender").write_text("")
    with pytest.raises(OSError):
        claims.acquire(tmp_path / "tender")  # a file where the directory should be


def test_where_the_claim_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert claims.runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path("/run/user/1000/tender")
    monkeypatch.setenv("XDG_STATE_HOME", "/home/u/.local/state")
    # No runtime dir (or a relative one, which the spec says to ignore), and no /run/user/UID of
    # ours: the user state dir.
    none = tmp_path / "no-run-user"
    assert claims.runtime_dir({}, run_user=none) == Path("/home/u/.local/state/tender/instance")
    assert claims.runtime_dir({"XDG_RUNTIME_DIR": "run"}, run_user=none) == Path(
        "/home/u/.local/state/tender/instance")
    # A shell without the variable (su -, sudo -u, cron) while systemd-logind keeps /run/user/UID:
    # the same directory the session's engine uses, so there is still one engine.
    (tmp_path / str(os.getuid())).mkdir(mode=0o700)
    assert claims.runtime_dir({}, platform="linux", run_user=tmp_path) == tmp_path / str(os.getuid()) / "tender"
    assert claims.runtime_dir({}, platform="darwin", run_user=tmp_path) == Path("/home/u/.local/state/tender/instance")
    if os.getuid() == 0:  # only root can give a directory away: someone else's there is not ours to use
        other = tmp_path / "other" / str(os.getuid())
        other.mkdir(parents=True)
        os.chown(other, 65534, 65534)
        assert claims.runtime_dir({}, platform="linux", run_user=other.parent) == Path(
            "/home/u/.local/state/tender/instance")
    assert claims.socket_path(Path("/run/user/1000/tender")) == Path("/run/user/1000/tender/engine.sock")


# ---------------------------------------------------------------- a second `tender tray`
class FakeEngine:
    """What the API server reads of a ForwardManager for /v1/engine and /v1/activate."""

    kubeconfig = "/nonexistent/kubeconfig"

    def subscribe(self, fn: object) -> None:
        pass

    def unsubscribe(self, fn: object) -> None:
        pass

    def list(self) -> list:
        return []


def second_launch(rundir: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_RUNTIME_DIR": str(rundir.parent),
           "XDG_STATE_HOME": str(home / "state")}  # no display, no bus: it must not get that far
    return subprocess.run([sys.executable, "-m", "tray", "tray"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("host", ["tray", "daemon"])
def test_a_second_tender_tray_tells_the_engine_and_exits_0(host: str, rundir: Path, tmp_path: Path) -> None:
    """`tender tray` while a tray or `tender daemon` holds the claim (here: this test's API server)."""
    from tray.api.server import ApiServer

    with claims.acquire(rundir) as first:
        told = threading.Event()
        server = ApiServer(FakeEngine(), host=host, profiles_path=tmp_path / "profiles.yaml",
                           on_activate=told.set if host == "tray" else None)
        server.start(first.listener)
        try:
            out = second_launch(rundir, tmp_path)
        finally:
            server.close()
    if host == "tray":
        assert (out.returncode, out.stdout, out.stderr) == (
            0, "tender: Tender is already running (its icon is in the system tray)\n", "")
        assert told.is_set()
    else:
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        assert out.stdout == (f"tender: Tender is already running as 'tender daemon' (pid {os.getpid()}), without a "
                              "tray: 'tender ls' lists its forwards, 'tender dashboard' opens its dashboard\n")


def test_a_second_tender_tray_whose_engine_does_not_answer_exits_1(rundir: Path, tmp_path: Path) -> None:
    with claims.acquire(rundir) as first:
        first.listener.close()  # the claim is held, nothing accepts: a hung or half-dead holder
        started = time.monotonic()
        out = second_launch(rundir, tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    [line] = out.stderr.splitlines()
    assert line.startswith("tender: Tender is already running but does not answer (no Tender engine is running")
    assert time.monotonic() - started < 15
