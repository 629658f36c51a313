"""tender forward's text line for a Service forward that spreads its connections (issue 14 part 3)."""

from __future__ import annotations

import pytest

from tray.cli import _Printer

from tests.unit.test_cli_printer import lines, status

SVC = dict(target_kind="Service", target_name="web", remote_port="80")


def test_a_spreading_forward_names_its_mode_and_pod_count_once_per_count(capsys: pytest.CaptureFixture[str]) -> None:
    p = _Printer("text")
    p.show(status(**SVC, balance="round-robin", pods=("web-1", "web-2", "web-3")))
    p.show(status(**SVC, balance="round-robin", pods=("web-1", "web-2", "web-3"), pod_name="web-2"))  # same count
    p.show(status(**SVC, balance="round-robin", pods=("web-1", "web-3")))  # one left the rotation
    p.show(status(**SVC, balance="sticky", pods=("web-1",), id="s2"))  # one pod: named
    assert lines(capsys) == [
        "tender-a: Forwarding from 127.0.0.1:18080 -> 8080 (svc/web in demo, round-robin over 3 pods)",
        "tender-a: Forwarding from 127.0.0.1:18080 -> 8080 (svc/web in demo, round-robin over 2 pods)",
        "tender-a: Forwarding from 127.0.0.1:18080 -> 8080 (svc/web in demo, pod web-1)",
    ]


def test_pin_names_its_pod(capsys: pytest.CaptureFixture[str]) -> None:
    _Printer("text").show(status(**SVC, balance="pin", pods=("web-1",)))
    assert lines(capsys) == ["tender-a: Forwarding from 127.0.0.1:18080 -> 8080 (svc/web in demo, pod web-1)"]
