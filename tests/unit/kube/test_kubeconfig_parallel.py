"""Kubeconfig loading from many threads at once, and while the file is being rewritten.

The tray loads every context's credentials in parallel worker threads, and
kubectl rewrites the kubeconfig in place (truncate, then write) while Tender
may be reading it.  Neither may show the user an error for a valid file.
Plain files only; nothing is contacted (the servers are never dialled).
"""

from __future__ import annotations

import base64
import builtins
import threading
import time
from pathlib import Path

import pytest
import yaml

from tray.errors import UsageError
from tray.kube.kubeconfig import REREAD_FOR, list_clusters, load_auth

DATA = Path(__file__).resolve().parents[2] / "data" / "kubeconfig"
CA = (DATA / "ca.crt").read_bytes()
KEY = (DATA / "ca.key").read_bytes()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _config(contexts: int, ca: bytes, *, shared_user: dict | None = None) -> dict:
    """``contexts`` contexts, each with its own cluster (and user, unless shared), all trusting ``ca``."""
    cfg: dict = {"apiVersion": "v1", "kind": "Config", "current-context": "ctx-0",
                 "clusters": [], "users": [], "contexts": []}
    for i in range(contexts):
        cfg["clusters"].append({"name": f"c{i}", "cluster": {"server": f"https://127.0.0.1:{20000 + i}",
                                                             "certificate-authority-data": _b64(ca)}})
        user = "shared" if shared_user is not None else f"u{i}"
        if shared_user is None:
            cfg["users"].append({"name": user, "user": {"token": f"token-{i}"}})
        cfg["contexts"].append({"name": f"ctx-{i}", "context": {"cluster": f"c{i}", "user": user}})
    if shared_user is not None:
        cfg["users"].append({"name": "shared", "user": shared_user})
    return cfg


def _load_all_at_once(path: Path, names: list[str]) -> list[str]:
    """load_auth for every context, each in its own thread, released together; the errors."""
    barrier = threading.Barrier(len(names))
    errors: list[str] = []

    def load(name: str) -> None:
        barrier.wait()
        try:
            auth = load_auth(name, str(path))
            assert auth.snapshot()[1] is not None  # a TLS context trusting the CA
        except Exception as exc:  # anything at all is a failure here
            errors.append(f"{name}: {exc}")

    threads = [threading.Thread(target=load, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


@pytest.fixture
def slow_disk(monkeypatch: pytest.MonkeyPatch):
    """Opening a file for writing takes 20 ms, as on a loaded machine (the tray hit this in a clean-clone run).

    Nothing else changes: a file's content is still complete once its writer
    has written it; a reader that trusts a name before then sees it empty.
    """
    real_open = builtins.open

    def open_(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            time.sleep(0.02)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)


def test_contexts_sharing_one_ca_load_in_parallel(tmp_path: Path, slow_disk: None):
    # The client caches the CA file it writes per content, and publishes the
    # file's name before writing it: a second thread opened it empty
    # ("cannot load TLS material: NO_CERTIFICATE_OR_CRL_FOUND").  Only the
    # first load of a given content can race, so each round has a new one.
    names = [f"ctx-{i}" for i in range(16)]
    failures = []
    for rnd in range(8):
        ca = CA + f"# round {rnd} {tmp_path}\n".encode()
        path = tmp_path / f"kubeconfig-{rnd}"
        path.write_text(yaml.safe_dump(_config(len(names), ca)))
        failures += _load_all_at_once(path, names)
    assert failures == [], f"{len(failures)} failed loads, e.g. {failures[:3]}"


def test_contexts_sharing_one_client_certificate_load_in_parallel(tmp_path: Path, slow_disk: None):
    names = [f"ctx-{i}" for i in range(16)]
    failures = []
    for rnd in range(8):
        tag = f"# round {rnd} {tmp_path}\n".encode()
        user = {"client-certificate-data": _b64(CA + tag), "client-key-data": _b64(KEY + tag)}
        path = tmp_path / f"kubeconfig-{rnd}"
        path.write_text(yaml.safe_dump(_config(len(names), CA + tag, shared_user=user)))
        failures += _load_all_at_once(path, names)
    assert failures == [], f"{len(failures)} failed loads, e.g. {failures[:3]}"


def test_reads_while_kubectl_rewrites_the_file_in_place(tmp_path: Path):
    """A writer truncates and rewrites the file (as kubectl does) while readers load from it."""
    path = tmp_path / "kubeconfig"
    names = [f"ctx-{i}" for i in range(6)]
    contents = [yaml.safe_dump(_config(len(names), CA + f"# version {v}\n".encode())).encode() for v in range(2)]
    path.write_bytes(contents[0])
    stop = threading.Event()
    rewrites = [0]

    def writer() -> None:
        # os.WriteFile: open with O_TRUNC, then one write.  A short pause
        # between the two widens the window in which the file is empty.
        while not stop.is_set():
            with open(path, "wb") as f:
                time.sleep(0.002)
                f.write(contents[rewrites[0] % 2])
            rewrites[0] += 1
            time.sleep(0.01)

    errors: list[str] = []
    answers: list[list[str]] = []

    def reader(name: str) -> None:
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            try:
                answers.append([c.id for c in list_clusters(str(path))])
                load_auth(name, str(path))
            except Exception as exc:
                errors.append(f"{name}: {exc}")

    w = threading.Thread(target=writer)
    readers = [threading.Thread(target=reader, args=(n,)) for n in names[:4]]
    w.start()
    for t in readers:
        t.start()
    for t in readers:
        t.join(30)
    stop.set()
    w.join(5)
    assert rewrites[0] > 50, "the writer hardly ran"
    assert errors == [], f"{len(errors)} failed reads of a valid file, e.g. {errors[:3]}"
    assert answers and all(a == names for a in answers), "a read saw part of the file"


def test_a_file_broken_for_good_is_still_reported_promptly(tmp_path: Path):
    path = tmp_path / "kubeconfig"
    path.write_text("contexts: [\n")  # just written: read again for a while, then reported
    started = time.monotonic()
    with pytest.raises(UsageError) as err:
        list_clusters(str(path))
    elapsed = time.monotonic() - started
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert elapsed < REREAD_FOR + 0.5, elapsed


def test_an_error_is_not_kept_once_the_file_reads(tmp_path: Path):
    """The engine's cache of the contexts (by file stamp) never keeps a failed read."""
    from tray.engine.manager import ForwardManager

    path = tmp_path / "kubeconfig"
    path.write_text("contexts: [\n")
    manager = ForwardManager(str(path))
    try:
        with pytest.raises(UsageError):
            manager.clusters()
        path.write_text(yaml.safe_dump(_config(2, CA)))
        assert [c.id for c in manager.clusters()] == ["ctx-0", "ctx-1"]
    finally:
        manager.shutdown()
