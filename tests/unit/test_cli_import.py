"""``tender import``: other tools' saved forwards appended to a profiles file, as a user runs it.

The inputs are tests/data/import/ (one file per format, see its README.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "import"
EXAMPLE = REPO / "config" / "profiles.example.yaml"

#: file -> (profiles added, entries skipped)
EXPECTED = {
    "kubectl.txt": (["web", "web-2", "db", "web-0"], 1),
    "kftray.json": (["web", "db-on-its-own-address", "dns", "outside"], 1),
    "kube-forwarder.json": (["web-deployment", "web", "db-pod"], 0),
    "kube-forwarder-v1.json": (["web"], 0),
}


#: No cluster to ask for Services' ports (tests/integration/test_import_cluster.py asks one).
NO_CLUSTER = {**os.environ, "KUBECONFIG": "/nonexistent/kubeconfig"}


def tender(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tray", *args], capture_output=True, text=True, timeout=60,
                          input=stdin, env=env or NO_CLUSTER, cwd=REPO)


def names_in(path: Path) -> list[str]:
    return [p["name"] for p in yaml.safe_load(path.read_text())["profiles"]]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_format_round_trips_to_profiles_that_check_accepts(tmp_path: Path, name: str):
    profiles = tmp_path / "profiles.yaml"
    proc = tender("import", "--profiles", str(profiles), str(DATA / name))
    assert proc.returncode == 0, proc.stderr
    added, skipped = EXPECTED[name]
    assert names_in(profiles) == added
    assert f"added {len(added)} profile" in proc.stderr
    assert proc.stderr.count(": skipped ") == skipped, proc.stderr
    check = tender("profiles", "check", str(profiles))
    assert check.returncode == 0, check.stderr
    assert f"ok ({len(added)} profile" in check.stdout


def test_appends_keeping_the_file_and_suffixing_names(tmp_path: Path):
    profiles = tmp_path / "profiles.yaml"
    shutil.copy(EXAMPLE, profiles)
    before = profiles.read_text()
    lines = ("kubectl -n demo port-forward svc/web 18181:80\n"   # the name shop-web is not taken: web is new
             "kubectl -n demo port-forward sts/db 18182:5432\n"
             "kubectl -n demo port-forward svc/web 8080:80\n")   # 127.0.0.1:8080 is shop-web's
    (tmp_path / "in.sh").write_text(lines)
    (tmp_path / "again.sh").write_text("kubectl -n demo port-forward svc/web 18183:80\n")
    assert tender("import", "--profiles", str(profiles), str(tmp_path / "in.sh")).returncode == 0
    proc = tender("import", "--profiles", str(profiles), str(tmp_path / "again.sh"))
    assert proc.returncode == 0, proc.stderr
    after = profiles.read_text()
    assert after.startswith(before.rstrip("\n")), "the file's comments and profiles were changed"
    assert names_in(profiles)[-3:] == ["web", "db", "web-2"]
    assert tender("profiles", "check", str(profiles)).returncode == 0


def test_a_clash_with_the_file_is_skipped_with_one_line(tmp_path: Path):
    profiles = tmp_path / "profiles.yaml"
    shutil.copy(EXAMPLE, profiles)
    proc = tender("import", "--profiles", str(profiles), "-",
                  stdin="kubectl -n demo port-forward svc/web 8080:80\nkubectl port-forward svc/x 18190\n")
    assert proc.returncode == 0
    skipped = [line for line in proc.stderr.splitlines() if "skipped" in line]
    assert skipped == ["tender: import: skipped <stdin> line 1 (web): local address 127.0.0.1:8080 is already "
                       "used by profile 'shop-web'"]
    assert names_in(profiles)[-1] == "x"


def test_dry_run_prints_the_yaml_and_writes_nothing(tmp_path: Path):
    missing = tmp_path / "new" / "profiles.yaml"
    proc = tender("import", "--dry-run", "--profiles", str(missing), str(DATA / "kube-forwarder.json"))
    assert proc.returncode == 0, proc.stderr
    assert not missing.exists() and not missing.parent.exists()
    shown = yaml.safe_load(proc.stdout)
    assert [p["name"] for p in shown] == ["web-deployment", "web", "db-pod"]
    # kube-forwarder's remotePort is the pods' port; with no cluster to ask, it is kept, and that is said
    assert shown[1] == {"name": "web", "context": "tender-a", "namespace": "demo", "target": "svc/web",
                        "ports": ["18102:8080", ":8080"], "address": "127.0.0.3"}
    assert "nothing written" in proc.stderr
    assert "svc/web" in proc.stderr and "the pods' port numbers are kept" in proc.stderr
    offline = tender("import", "--dry-run", "--offline", "--profiles", str(missing), str(DATA / "kube-forwarder.json"))
    assert offline.returncode == 0 and yaml.safe_load(offline.stdout) == shown
    assert "--offline: the ports of svc/web are kept as the pods' port numbers" in offline.stderr

    existing = tmp_path / "profiles.yaml"
    shutil.copy(EXAMPLE, existing)
    before = existing.read_bytes()
    assert tender("import", "--dry-run", "--profiles", str(existing), str(DATA / "kubectl.txt")).returncode == 0
    assert existing.read_bytes() == before


BAD = {
    "kubectl": ("kubectl port-forward svc/web 80\nkubectl port-forward svc/web 70000\n", "in.sh:2: ", "70000"),
    "kubectl-not-a-command": ("# ok\nssh host\n", "in.sh:2: ", '"ssh"'),
    "kftray": ('[{"service": "web", "remote_port": 80, "local_port": 80},\n {"service": "db", "remote_port": "x"}]',
               "in.sh: [1]: ", "remote_port"),
    "kftray-not-json": ('[{"service": "web",\n', "in.sh:2: ", "not JSON"),
    "kube-forwarder": ('{"version": 2, "clusters": [{"name": "a", "_services": [{"workloadType": "pod"}]}]}',
                       "in.sh: clusters[0]._services[0]: ", "workloadName"),
    "kftray-bad-address": ('[{"service": "web", "remote_port": 80, "local_address": "::g"}]', "in.sh: [0]: ",
                           "address"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_one_line_exit_2_and_nothing_written(tmp_path: Path, case: str):
    text, where, fragment = BAD[case]
    source = tmp_path / "in.sh"
    source.write_text(text)
    profiles = tmp_path / "profiles.yaml"
    shutil.copy(EXAMPLE, profiles)
    before = profiles.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "tray", "import", "--profiles", str(profiles), "in.sh"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**NO_CLUSTER, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"tender: error: {where}") and fragment in lines[0], lines[0]
    assert profiles.read_bytes() == before
    assert proc.stdout == ""


def test_a_broken_profiles_file_or_input_is_exit_2(tmp_path: Path):
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("version: 1\nprofiles: [{name: x}]\n")
    before = profiles.read_bytes()
    proc = tender("import", "--profiles", str(profiles), str(DATA / "kubectl.txt"))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1 and str(profiles) in proc.stderr
    assert profiles.read_bytes() == before
    proc = tender("import", "--profiles", str(profiles), str(tmp_path / "absent.json"))
    assert proc.returncode == 2 and "absent.json: No such file" in proc.stderr
    (tmp_path / "latin1.txt").write_bytes(b"kubectl port-forward svc/caf\xe9 80\n")
    proc = tender("import", "--profiles", str(profiles), str(tmp_path / "latin1.txt"))
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr


def test_format_can_be_forced(tmp_path: Path):
    proc = tender("import", "--format", "kube-forwarder", "--dry-run", "--profiles", str(tmp_path / "p.yaml"),
                  str(DATA / "kftray.json"))
    assert proc.returncode == 2 and "expected a kube-forwarder export" in proc.stderr
