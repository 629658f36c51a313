"""Bad command lines: one line on stderr naming the argument, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KUBECONFIG = """
apiVersion: v1
kind: Config
current-context: only
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: not-a-real-token}}]
contexts: [{name: only, context: {cluster: c, user: u}}]
"""


def tender(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tray", *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env=env)


def no_profiles_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose default profiles file (under XDG_CONFIG_HOME) does not exist."""
    env = {k: v for k, v in os.environ.items() if k != "TENDER_PROFILES"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    return env


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.mark.parametrize("target, fragment", [
    ("foo/web", 'unknown resource kind "foo"'),
    ("svc/", "empty resource name"),
    ("svc/Web_1", "Web_1"),
    ("a/b/c", 'too many "/"'),
    ("", "empty target"),
])
def test_bad_targets(kubeconfig: str, target: str, fragment: str):
    assert_one_line_exit_2(tender("forward", "--kubeconfig", kubeconfig, target, "80"), "TARGET", fragment)


@pytest.mark.parametrize("spec", ["0:0", "70000", "a:b", "::", "-1", "1:2:3", "8080:", "x y", "65536:80"])
def test_bad_port_specs(kubeconfig: str, spec: str):
    assert_one_line_exit_2(tender("forward", "--kubeconfig", kubeconfig, "svc/web", spec), "port", repr(spec))


def test_unknown_flag(kubeconfig: str):
    assert_one_line_exit_2(tender("forward", "--kubeconfig", kubeconfig, "--frobnicate", "svc/web", "80"),
                           "--frobnicate")


def test_missing_arguments():
    assert_one_line_exit_2(tender("forward", "svc/web"), "required")


def test_unknown_command():
    assert_one_line_exit_2(tender("frobnicate"), "frobnicate")


def test_missing_kubeconfig(tmp_path: Path):
    assert_one_line_exit_2(tender("forward", "--kubeconfig", str(tmp_path / "nope"), "svc/web", "80"),
                           "kubeconfig not found", str(tmp_path / "nope"))


def test_unknown_context(kubeconfig: str):
    assert_one_line_exit_2(tender("forward", "--kubeconfig", kubeconfig, "--context", "prod", "svc/web", "80"),
                           '"prod"', "only")


def test_broken_kubeconfig_yaml(tmp_path: Path):
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nclusters: [\n")
    assert_one_line_exit_2(tender("forward", "--kubeconfig", str(path), "svc/web", "80"), str(path))


def test_bad_address(kubeconfig: str):
    assert_one_line_exit_2(tender("forward", "--kubeconfig", kubeconfig, "--address", "my-laptop", "svc/web", "80"),
                           "--address", "my-laptop")


def test_run_unknown_profile(tmp_path: Path, kubeconfig: str):
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text('version: 1\nprofiles:\n  - {name: web, target: svc/web, ports: ["8080:80"]}\n')
    assert_one_line_exit_2(tender("run", "--kubeconfig", kubeconfig, "--profiles", str(profiles), "nope"),
                           str(profiles), "'nope'", "web")


def test_profiles_check_reports_file_line_field(tmp_path: Path):
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text('version: 1\nprofiles:\n  - name: web\n    target: svc/web\n    ports: ["70000"]\n')
    proc = tender("profiles", "check", str(profiles))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"{profiles}:5: profiles[0].ports[0]: ")
    assert "Traceback" not in proc.stderr


def test_profiles_check_ok():
    root = Path(__file__).resolve().parents[2]
    proc = tender("profiles", "check", str(root / "config" / "profiles.example.yaml"))
    assert proc.returncode == 0 and "ok" in proc.stdout


def test_run_all_without_a_profiles_file(tmp_path: Path, kubeconfig: str):
    default = tmp_path / "config" / "tender" / "profiles.yaml"
    proc = tender("run", "--kubeconfig", kubeconfig, "--all", env=no_profiles_env(tmp_path))
    assert_one_line_exit_2(proc, "no profiles file", str(default), "does not exist")


@pytest.mark.parametrize("args", [["--all"], [], ["--group", "g"]])
def test_run_with_an_empty_profiles_list(tmp_path: Path, kubeconfig: str, args: list[str]):
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("version: 1\nprofiles: []\n")
    proc = tender("run", "--kubeconfig", kubeconfig, "--profiles", str(profiles), *args)
    assert_one_line_exit_2(proc, f"{profiles}: profiles: the file has no profiles")


def test_profiles_check_of_a_missing_default_file(tmp_path: Path):
    default = tmp_path / "config" / "tender" / "profiles.yaml"
    for command in ("check", "list"):
        proc = tender("profiles", command, env=no_profiles_env(tmp_path))
        assert_one_line_exit_2(proc, f"{default}: no such file")
        assert proc.stdout == ""


def test_profiles_check_of_a_missing_named_file(tmp_path: Path):
    assert_one_line_exit_2(tender("profiles", "check", str(tmp_path / "nope.yaml")), "nope.yaml: no such file")


def test_profiles_check_of_the_default_file(tmp_path: Path):
    env = no_profiles_env(tmp_path)
    default = tmp_path / "config" / "tender" / "profiles.yaml"
    default.parent.mkdir(parents=True)
    default.write_text("version: 1\nprofiles: []\n")
    proc = tender("profiles", "check", env=env)
    assert proc.returncode == 0 and proc.stdout == f"{default}: ok (0 profiles)\n", proc


@pytest.mark.parametrize("target", ["rs/web", "rc/web", "job/web", "replicationcontrollers/web", "jobs.batch/web"])
def test_new_kinds_parse(kubeconfig: str, target: str):
    # Accepted: the command gets as far as the (unreachable) cluster, not a usage error about the kind.
    proc = tender("forward", "--kubeconfig", kubeconfig, target, "80", "--exit-on-error")
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "unknown resource kind" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_no_current_context_says_what_to_pass(tmp_path: Path):
    """kubectl accepts a kubeconfig without current-context; a command that needs one says
    what to pass, with the contexts to choose from."""
    path = tmp_path / "config"
    path.write_text("apiVersion: v1\nkind: Config\n"
                    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
                    "users: [{name: u, user: {token: x}}]\n"
                    "contexts: [{name: a, context: {cluster: c, user: u}}, {name: b, context: {cluster: c, user: u}}]\n")
    r = tender("forward", "--kubeconfig", str(path), "pod/x", "80")
    assert r.returncode == 2
    assert r.stderr.strip() == ("tender: error: --context: the kubeconfig sets no current-context; "
                                "pass --context NAME (contexts: a, b)")


def test_run_with_only_unknown_contexts_names_each_and_exits_2(kubeconfig: str, tmp_path: Path):
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("version: 1\nprofiles:\n"
                        "  - {name: a, context: prod, target: deploy/web, ports: ['8080']}\n"
                        "  - {name: b, context: staging, target: deploy/web, ports: ['8081']}\n")
    r = tender("run", "--kubeconfig", kubeconfig, "--profiles", str(profiles), "--all")
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert lines == [f'tender: error: {profiles}:3: a.context: unknown context "prod" (contexts: only)',
                     f'tender: error: {profiles}:4: b.context: unknown context "staging" (contexts: only)'], lines
