"""Tests for tray.atomicfile.write_atomic."""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tray import atomicfile
from tray.atomicfile import write_atomic

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions and signals")


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_creates_new_file_with_bytes(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    write_atomic(target, b"\x00\x01hello")
    assert target.read_bytes() == b"\x00\x01hello"
    assert _leftovers(tmp_path) == []


def test_str_is_encoded_as_utf8(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    write_atomic(str(target), "grüße ✓\n")
    assert target.read_bytes() == "grüße ✓\n".encode()


def test_replaces_existing_content(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old content that is longer than the new one")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"


def test_empty_data(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"something")
    write_atomic(target, b"")
    assert target.read_bytes() == b""


def test_rejects_other_data_types(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_atomic(tmp_path / "f", 123)  # type: ignore[arg-type]
    assert not (tmp_path / "f").exists()


@posix_only
def test_new_file_default_mode_is_0600(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"x")
    assert _mode(target) == 0o600


@posix_only
def test_new_file_explicit_mode_is_exact(tmp_path: Path) -> None:
    target = tmp_path / "f"
    old = os.umask(0o077)
    try:
        write_atomic(target, b"x", mode=0o644)
    finally:
        os.umask(old)
    assert _mode(target) == 0o644


@posix_only
def test_mode_none_follows_umask(tmp_path: Path) -> None:
    target = tmp_path / "f"
    old = os.umask(0o027)
    try:
        write_atomic(target, b"x", mode=None)
    finally:
        os.umask(old)
    assert _mode(target) == 0o640


@posix_only
@pytest.mark.parametrize("existing_mode", [0o644, 0o600, 0o640, 0o400])
def test_keeps_existing_permissions(tmp_path: Path, existing_mode: int) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    os.chmod(target, existing_mode)
    write_atomic(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert _mode(target) == existing_mode


@posix_only
def test_symlink_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_bytes(b"old")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink()
    assert real.read_bytes() == b"new"


def test_directory_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "d", b"x")
    assert _leftovers(tmp_path) == []


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "nope" / "f", b"x")


def test_failure_before_rename_keeps_old_file_and_cleans_up(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomicfile.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_failure_in_replace_cleans_up(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def broken_replace(src, dst) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomicfile.os, "replace", broken_replace)
    with pytest.raises(PermissionError):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_fsyncs_file_and_directory(tmp_path: Path, monkeypatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(atomicfile.os, "fsync", recording_fsync)
    write_atomic(tmp_path / "f", b"data")
    expected = ["file", "dir"] if hasattr(os, "O_DIRECTORY") else ["file"]
    assert synced == expected


# --- crash safety ------------------------------------------------------------

_SIZE = 1 << 20
_VERSIONS = 4


def _version(i: int) -> bytes:
    """A ~1 MiB content that is easy to tell apart from a torn mixture."""
    header = f"version {i}\n".encode()
    return header + bytes([ord("a") + i]) * (_SIZE - len(header))


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from tray.atomicfile import write_atomic
    SIZE = 1 << 20
    def version(i):
        header = f"version {i}\\n".encode()
        return header + bytes([ord("a") + i]) * (SIZE - len(header))
    contents = [version(i) for i in range(%d)]
    sys.stdout.write("ready\\n")
    sys.stdout.flush()
    i = 0
    while True:
        write_atomic(sys.argv[1], contents[i %% len(contents)])
        i += 1
    """
    % _VERSIONS
)


@posix_only
def test_sigkill_never_leaves_a_torn_file(tmp_path: Path) -> None:
    target = tmp_path / "profiles.yaml"
    target.write_bytes(_version(0))
    valid = {_version(i) for i in range(_VERSIONS)}
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    repo_root = str(Path(__file__).resolve().parents[2])
    rng = random.Random(1234)
    seen: set[bytes] = set()

    for _ in range(50):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(target), repo_root],
            stdout=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.0, 0.03))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        content = target.read_bytes()
        assert len(content) == _SIZE, f"torn file: {len(content)} bytes"
        assert content in valid, "torn file: content is not one of the complete versions"
        seen.add(content[:10])

    # The writer really did replace the file (not just idle until killed).
    assert len(seen) > 1
    # A killed writer may leave its temporary file behind, but never under
    # the target's name, and never anything but *.tmp files.
    others = {p.name for p in tmp_path.iterdir()} - {"profiles.yaml", "writer.py"}
    assert all(name.startswith(".profiles.yaml.") and name.endswith(".tmp") for name in others)
