"""`tender forward` reads kubectl's command lines: flags anywhere, between the target and its ports too."""

from __future__ import annotations

from unittest import mock

import pytest

import tray.cli as cli


def parsed(argv: list[str]) -> tuple[str | None, list[str], str | None]:
    seen = {}

    def fake_forward(args):  # noqa: ANN001, ANN202
        seen.update(target=args.target, ports=list(args.ports), namespace=args.namespace)
        return 0

    with mock.patch.object(cli, "_forward", fake_forward):
        assert cli.main(argv) == 0
    return seen["target"], seen["ports"], seen["namespace"]


@pytest.mark.parametrize("argv", [
    ["forward", "svc/web", "-n", "shop", "80"],
    ["forward", "-n", "shop", "svc/web", "80"],
    ["forward", "svc/web", "80", "-n", "shop"],
    ["forward", "svc/web", "--namespace=shop", "80"],
])
def test_flags_between_target_and_ports(argv: list[str]) -> None:
    assert parsed(argv) == ("svc/web", ["80"], "shop")


def test_ports_on_both_sides_of_a_flag_keep_their_order() -> None:
    assert parsed(["forward", "svc/web", "8080:80", "-n", "shop", "9090", ":http"]) == \
        ("svc/web", ["8080:80", "9090", ":http"], "shop")


def test_an_unknown_flag_is_still_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["forward", "svc/web", "-n", "shop", "80", "--bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments:" in err and "--bogus" in err
    with pytest.raises(SystemExit) as exc:
        cli.main(["ls", "extra-word"])
    assert exc.value.code == 2
