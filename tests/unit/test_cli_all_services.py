"""``tender forward --all-services``: misuse is one line naming the argument, exit 2, before any cluster call."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_cli_errors import KUBECONFIG, assert_one_line_exit_2, tender


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


@pytest.mark.parametrize("args, fragments", [
    (["--all-services", "svc/web", "80"], ["--all-services: takes no TARGET", "'svc/web 80'"]),
    (["-l", "app=web", "svc/web", "80"], ["--selector: chooses the Services of --all-services"]),
    (["--all-services", "--address", "0.0.0.0"], ["--address: cannot be used with --all-services"]),
    (["--all-services", "--detach"], ["--detach: needs the engine; it cannot be used with --no-engine"]),
    (["--all-services", "-l", "tier in (a"], ["--selector: unbalanced parentheses"]),
    (["--all-services", "-l", "a b"], ["--selector: cannot read 'a b'"]),
    (["--all-services", "--context", "prod"], ['--context: context "prod" not found']),
    (["svc/web"], ["[LOCAL:]REMOTE: the following arguments are required"]),
    ([], ["TARGET: the following arguments are required", "--all-services"]),
])
def test_misuse(kubeconfig: str, args: list[str], fragments: list[str]) -> None:
    assert_one_line_exit_2(tender("forward", "--kubeconfig", kubeconfig, "--no-engine", *args), *fragments)


def test_a_bad_namespace_name_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from tray import cli

    with pytest.raises(SystemExit) as exc:
        raise SystemExit(cli.main(["forward", "--all-services", "-n", "Bad_NS", "--no-engine"]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--namespace" in err and "'Bad_NS' is not a namespace name" in err
