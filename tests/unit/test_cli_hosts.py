"""``tender hosts`` from profiles, without an engine: the lines printed, the block written and removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tray.cli import main
from tray.domain.addresses import auto_address
from tray.domain.hostsfile import BEGIN, END

KUBECONFIG = """apiVersion: v1
kind: Config
current-context: a
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
  - {name: a, context: {cluster: c, user: u, namespace: shop}}
  - {name: b, context: {cluster: c, user: u}}
"""
PROFILES = """version: 1
profiles:
  - {name: pg, target: svc/pg, ports: ["5432"], address: auto}
  - {name: pg-b, target: svc/pg, ports: ["5432"], address: auto, context: b, namespace: data}
  - {name: plain, target: svc/web, ports: ["8080:80"]}
  - {name: deploy, target: deploy/api, ports: ["8080"], address: auto}
"""
HOSTS = "127.0.0.1\tlocalhost\n# keep me\n10.0.0.5 nas.lan\n"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))  # no engine there
    monkeypatch.delenv("TENDER_PROFILES", raising=False)
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    (tmp_path / "profiles.yaml").write_text(PROFILES)
    (tmp_path / "hosts").write_text(HOSTS)
    os.chmod(tmp_path / "hosts", 0o644)
    return {"kubeconfig": str(tmp_path / "kubeconfig"), "profiles": str(tmp_path / "profiles.yaml"),
            "file": str(tmp_path / "hosts")}


def args(files: dict[str, str], *more: str) -> list[str]:
    return ["hosts", "--kubeconfig", files["kubeconfig"], "--profiles", files["profiles"], "--file", files["file"],
            *more]


def test_prints_the_lines_of_auto_profiles(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(files)) == 0
    out, err = capsys.readouterr()
    a, b = auto_address("a", "shop", "pg"), auto_address("b", "data", "pg")
    assert out.splitlines() == [f"{a}  pg  pg.shop  pg.shop.svc  pg.shop.svc.cluster.local",
                                f"{b}  pg.data  pg.data.svc  pg.data.svc.cluster.local"]
    assert "profile 'deploy': deploy/api is not a Service" in err
    assert "pg already names another address" in err
    assert Path(files["file"]).read_text() == HOSTS  # printing writes nothing


def test_write_then_remove_keeps_the_rest_of_the_file(files: dict[str, str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args(files, "--write")) == 0
    text = Path(files["file"]).read_text()
    assert text.startswith(HOSTS) and text.splitlines()[3] == BEGIN and text.splitlines()[-1] == END
    assert f"{auto_address('a', 'shop', 'pg')}  pg  pg.shop" in text
    assert os.stat(files["file"]).st_mode & 0o777 == 0o644
    assert "wrote the tender block (2 lines)" in capsys.readouterr().out
    assert main(args(files, "--write")) == 0
    assert capsys.readouterr().out.strip().endswith("unchanged")
    assert main(["hosts", "--file", files["file"], "--remove"]) == 0
    assert Path(files["file"]).read_text() == HOSTS


def test_permission_denied_is_one_line_naming_sudo(files: dict[str, str], capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import tray.atomicfile

    def denied(*a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tray.atomicfile, "write_atomic", denied)
    assert main(args(files, "--write")) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"tender: error: hosts: cannot write {files['file']}: permission denied; run it with sudo: "
                   f"sudo tender hosts --file {files['file']} --write")


def test_a_broken_block_is_refused(files: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    Path(files["file"]).write_text(HOSTS + BEGIN + "\n127.1.1.1 x\n")
    assert main(args(files, "--remove")) == 2
    assert "without an '# END tender' line" in capsys.readouterr().err
