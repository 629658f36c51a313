"""One tray per user: real locks and unix sockets in short temporary directories."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tray.ui import instance

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="unix sockets and flock")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def rundir():  # noqa: ANN201
    # Short: a unix socket path has ~104 bytes at most (pytest's tmp_path can be longer).
    base = Path(tempfile.mkdtemp(prefix="ti-", dir="/tmp"))
    yield base / "tender"
    shutil.rmtree(base, ignore_errors=True)


def holder(directory: Path, *, crash: bool) -> subprocess.Popen:
    """Another process that claims the instance, says "held", then crashes (os._exit) or waits for stdin."""
    code = ("import os, sys; from pathlib import Path; from tray.ui import instance; "
            "i = instance.acquire('tray', Path(sys.argv[1])); print('held' if i else 'busy', flush=True); "
            "i.serve(lambda: print('activated', flush=True)) if i else None; "
            + ("os._exit(3)" if crash else "sys.stdin.readline()"))
    return subprocess.Popen([sys.executable, "-c", code, str(directory)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def test_the_second_claim_fails_and_activates_the_first(rundir: Path) -> None:
    first = instance.acquire("tray", rundir)
    assert first is not None
    try:
        activated = threading.Event()
        first.serve(activated.set)
        assert stat.S_IMODE(os.stat(rundir).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(rundir / "tray.sock").st_mode) == 0o600
        assert instance.acquire("tray", rundir) is None  # flock is per open file: even in this process
        started = time.monotonic()
        assert instance.activate_running("tray", rundir) is True
        assert time.monotonic() - started < 0.5
        assert activated.wait(2)
        assert instance.acquire("other", rundir) is not None  # another name is another claim
    finally:
        first.close()


def test_an_activation_before_serve_is_answered_and_delivered_once(rundir: Path) -> None:
    with instance.acquire("tray", rundir) as first:
        assert instance.activate_running("tray", rundir) is True  # answered although nobody listens yet
        assert instance.activate_running("tray", rundir) is True
        calls: list[str] = []
        first.serve(lambda: calls.append("shown"))
        assert calls == ["shown"]  # once, not once per launch that asked meanwhile


def test_close_releases_the_claim_and_removes_the_socket(rundir: Path) -> None:
    first = instance.acquire("tray", rundir)
    first.close()
    first.close()  # idempotent
    assert not (rundir / "tray.sock").exists()
    assert instance.activate_running("tray", rundir, timeout=0.3) is False
    second = instance.acquire("tray", rundir)
    assert second is not None
    second.close()


def test_a_crashed_holder_leaves_a_stale_socket_that_the_next_one_replaces(rundir: Path) -> None:
    proc = holder(rundir, crash=True)
    assert proc.stdout.readline().strip() == "held"
    assert proc.wait(10) == 3
    assert (rundir / "tray.sock").exists()  # left behind: nobody listens
    assert instance.activate_running("tray", rundir, timeout=0.3) is False
    with instance.acquire("tray", rundir) as now:
        assert now is not None
        seen = threading.Event()
        now.serve(seen.set)
        assert instance.activate_running("tray", rundir) is True and seen.wait(2)


def test_a_live_holder_in_another_process_is_told(rundir: Path) -> None:
    proc = holder(rundir, crash=False)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert instance.acquire("tray", rundir) is None
        assert instance.activate_running("tray", rundir) is True
        assert proc.stdout.readline().strip() == "activated"
    finally:
        proc.stdin.close()
        proc.wait(10)
    # The holder ended (its lock went with it): the claim is free.
    with instance.acquire("tray", rundir) as mine:
        assert mine is not None


def test_a_failing_callback_or_a_stranger_does_not_stop_the_answers(rundir: Path) -> None:
    with instance.acquire("tray", rundir) as first:
        calls: list[int] = []

        def boom() -> None:
            calls.append(1)
            raise RuntimeError("the notifier is gone")

        first.serve(boom)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(str(rundir / "tray.sock"))
            s.sendall(b"hello\n")
            assert s.recv(16) == b"?\n"
        assert calls == []
        assert instance.activate_running("tray", rundir) is True
        assert instance.activate_running("tray", rundir) is True
        deadline = time.monotonic() + 2
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert calls == [1, 1]


def test_a_loose_directory_is_made_private(rundir: Path) -> None:
    rundir.mkdir(mode=0o755)
    os.chmod(rundir, 0o755)
    with instance.acquire("tray", rundir) as first:
        assert first is not None
        assert stat.S_IMODE(os.stat(rundir).st_mode) == 0o700


def test_where_the_claim_lives(monkeypatch: pytest.MonkeyPatch) -> None:
    assert instance.instance_dir({"XDG_RUNTIME_DIR": "/run/user/1000"}) == Path("/run/user/1000/tender")
    monkeypatch.setenv("XDG_STATE_HOME", "/home/u/.local/state")
    # No runtime dir (or a relative one, which the spec says to ignore): the user state dir.
    assert instance.instance_dir({}) == Path("/home/u/.local/state/tender/instance")
    assert instance.instance_dir({"XDG_RUNTIME_DIR": "run"}) == Path("/home/u/.local/state/tender/instance")


def test_nobody_holding_means_no_answer(rundir: Path) -> None:
    started = time.monotonic()
    assert instance.activate_running("tray", rundir, timeout=0.3) is False
    assert time.monotonic() - started < 1.0


def test_a_second_tender_tray_tells_the_first_and_exits_0(rundir: Path, tmp_path: Path) -> None:
    """`tender tray` while a tray holds the claim (here: this test, standing in for it)."""
    with instance.acquire("tray", rundir) as first:
        told = threading.Event()
        first.serve(told.set)
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(rundir.parent),
               "XDG_STATE_HOME": str(tmp_path / "state")}  # no display, no bus: it must not get that far
        out = subprocess.run([sys.executable, "-m", "tray", "tray"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=30)
        assert (out.returncode, out.stdout, out.stderr) == (
            0, "tender: Tender is already running (its icon is in the system tray)\n", "")
        assert told.wait(2)


def test_claim_without_a_usable_directory_runs_unguarded(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    mine = instance.claim("tray", tmp_path / "file" / "tender", announce=lambda line: None)
    assert mine is not None
    mine.serve(lambda: None)
    mine.close()


def test_a_client_that_says_nothing_delays_the_next_by_at_most_the_read_timeout(rundir: Path) -> None:
    with instance.acquire("tray", rundir) as first:
        seen = threading.Event()
        first.serve(seen.set)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
            mute.connect(str(rundir / "tray.sock"))
            started = time.monotonic()
            assert instance.activate_running("tray", rundir, timeout=instance.READ_TIMEOUT + 1.5) is True
            assert time.monotonic() - started < instance.READ_TIMEOUT + 1.0
        assert seen.wait(2)
