"""profiles.run.stop_profile: one rule for the tray's and the API's profile stop (issue 14): a namespace
profile's group stops by its own id, also before any member forward exists."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tray.errors import UsageError
from tray.profiles.run import stop_profile


@dataclass
class _Group:
    id: str
    profile: str | None
    members: tuple[str, ...] = ()


@dataclass
class _Forward:
    id: str
    profile: str | None
    group: str | None = None


@dataclass
class _Manager:
    """Records stop(); a group's stop drops its members, as ForwardManager's does."""

    groups_: list[_Group]
    forwards: list[_Forward]
    stopped: list[str] = field(default_factory=list)

    def groups(self) -> list[_Group]:
        return list(self.groups_)

    def list(self) -> list[_Forward]:
        return list(self.forwards)

    def stop(self, i: str) -> None:
        group = next((g for g in self.groups_ if g.id == i), None)
        if group is not None:
            self.groups_.remove(group)
            self.forwards = [f for f in self.forwards if f.group != i]
        elif any(f.id == i for f in self.forwards):
            self.forwards = [f for f in self.forwards if f.id != i]
        else:
            raise UsageError(f"no forward with id {i}")
        self.stopped.append(i)


def test_a_group_without_members_is_stopped() -> None:
    m = _Manager([_Group("g1", "shop"), _Group("g2", "other")], [])
    assert stop_profile(m, "shop") == ["g1"]
    assert [g.id for g in m.groups()] == ["g2"]


def test_a_group_stops_once_and_its_members_are_reported() -> None:
    m = _Manager([_Group("g1", "shop", ("f1", "f2"))],
                 [_Forward("f1", "shop", "g1"), _Forward("f2", "shop", "g1"), _Forward("f3", "web")])
    assert stop_profile(m, "shop") == ["g1", "f1", "f2"]
    assert m.stopped == ["g1"]
    assert [f.id for f in m.list()] == ["f3"]


def test_a_plain_profile_stops_its_forwards() -> None:
    m = _Manager([], [_Forward("f1", "web"), _Forward("f2", "web"), _Forward("f3", None)])
    assert stop_profile(m, "web") == ["f1", "f2"]
    assert [f.id for f in m.list()] == ["f3"]


def test_an_engine_without_groups() -> None:
    class Old:
        def list(self) -> list[Any]:
            return []

    assert stop_profile(Old(), "web") == []
