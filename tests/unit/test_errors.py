"""Tests for tray.errors."""

from __future__ import annotations

import pickle

import importlib

import pytest

import tray.errors
from tray.errors import (
    ApiError,
    ClusterUnreachable,
    ForbiddenError,
    Gone,
    NotFound,
    TargetError,
    TenderError,
    Unauthorized,
    UsageError,
)


@pytest.mark.parametrize("name", tray.errors.__all__)
def test_hierarchy(name: str) -> None:
    # Every error a shell may be handed is a TenderError: the CLI and the
    # tray catch that one type and show str(err); anything else is a bug.
    cls = getattr(tray.errors, name)
    assert issubclass(cls, TenderError)


@pytest.mark.parametrize("cls", [NotFound, Gone, Unauthorized])
def test_api_errors_keep_the_status(cls: type[ApiError]) -> None:
    err = cls(404, "pods \"web-0\" not found")
    assert isinstance(err, ApiError)
    assert err.status == 404
    assert str(err) == 'pods "web-0" not found'


@pytest.mark.parametrize(
    "module,names",
    [
        ("tray.kube.kubeapi", ["ApiError", "NotFound", "Gone", "Unauthorized"]),
        ("tray.kube.watches", ["WatchStalled"]),
        ("tray.kube.spdyconn", ["UpgradeFailed"]),
        ("tray.engine.tunnel", ["TunnelUnsupported"]),
        ("tray.wire.framing", ["ProtocolError"]),
        ("tray.wire.spdy", ["SpdyError"]),
    ],
)
def test_old_homes_still_export_the_same_classes(module: str, names: list[str]) -> None:
    # `except NotFound` written against tray.kube.kubeapi must catch what the
    # API client raises: the same class object, not a copy.
    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is getattr(tray.errors, name)


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({}, "port 70000 is out of range 1-65535"),
        (
            {"source": "profiles.yaml", "line": 12, "field": "ports[0]"},
            "profiles.yaml:12: ports[0]: port 70000 is out of range 1-65535",
        ),
        ({"source": "profiles.yaml"}, "profiles.yaml: port 70000 is out of range 1-65535"),
        ({"source": "profiles.yaml", "line": 3}, "profiles.yaml:3: port 70000 is out of range 1-65535"),
        ({"field": "ports[0]"}, "ports[0]: port 70000 is out of range 1-65535"),
        ({"line": 7}, "7: port 70000 is out of range 1-65535"),
        ({"line": 0, "source": "f"}, "f:0: port 70000 is out of range 1-65535"),
        ({"source": "argument 'a:b'"}, "argument 'a:b': port 70000 is out of range 1-65535"),
    ],
)
def test_usage_error_str(kwargs: dict, expected: str) -> None:
    err = UsageError("port 70000 is out of range 1-65535", **kwargs)
    assert str(err) == expected
    assert err.message == "port 70000 is out of range 1-65535"


def test_usage_error_attributes() -> None:
    err = UsageError("bad", source="p.yaml", line=4, field="target")
    assert (err.source, err.line, err.field) == ("p.yaml", 4, "target")
    assert err.args == ("bad",)


def test_usage_error_keyword_only() -> None:
    with pytest.raises(TypeError):
        UsageError("bad", "p.yaml")  # type: ignore[misc]


def test_usage_error_pickles_with_location() -> None:
    err = UsageError("bad", source="p.yaml", line=4, field="target")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is UsageError
    assert str(copy) == "p.yaml:4: target: bad"


def test_usage_error_subclass_pickles() -> None:
    class Sub(UsageError):
        pass

    err = Sub("x", field="f")
    # Local classes cannot be pickled; this checks __reduce__ keeps the type.
    assert err.__reduce__()[1][0] is Sub


def test_plain_errors_str() -> None:
    assert str(TargetError("no ready pod")) == "no ready pod"
