"""Helpers shared by the tests of tray.profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tray.errors import UsageError
from tray.profiles import parse_profiles
from tray.profiles.reader import check_data


REPO = Path(__file__).resolve().parents[3]
BAD = REPO / "tests" / "data" / "bad-profiles"
EXAMPLE = REPO / "config" / "profiles.example.yaml"
SCHEMA = REPO / "config" / "profiles.schema.json"
CONTEXTS = {"tender-a", "tender-b"}


def _one_line(err: UsageError) -> str:
    text = str(err)
    assert "\n" not in text and "\r" not in text, text
    return text


def _write(tmp_path: Path, text: str | bytes, name: str = "profiles.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _errors_of(text: str, **kwargs: Any) -> list[str]:
    return [str(e) for e in check_data(text, "p.yaml", kwargs.get("known_contexts"))[1]]


def _first_error(text: str | bytes, **kwargs: Any) -> UsageError:
    with pytest.raises(UsageError) as info:
        parse_profiles(text, source="p.yaml", **kwargs)
    _one_line(info.value)
    return info.value


def _doc(*profiles: str) -> str:
    return "version: 1\nprofiles:\n" + "".join(profiles)


def _p(name: str, ports: str = '["8080:80"]', target: str = "svc/web", **extra: str) -> str:
    out = f"  - name: {name}\n    target: {target}\n    ports: {ports}\n"
    for key, value in extra.items():
        out += f"    {key}: {value}\n"
    return out
