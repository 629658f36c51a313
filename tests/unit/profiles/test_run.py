"""Starting profiles on an engine (tray/profiles/run.py), on a recording stand-in for the engine's start()."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tray.domain.portspec import parse_port_spec
from tray.domain.targets import parse_target
from tray.errors import UsageError
from tray.profiles.model import Profile
from tray.profiles.run import start_profiles


class Engine:
    """What start_profile uses of a ForwardManager: list(), start(spec), kubeconfig."""

    kubeconfig = ""

    def __init__(self, taken: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.specs: list[Any] = []
        self.taken = taken

    def list(self) -> list[Any]:
        return [SimpleNamespace(profile=s.profile, remote_port=s.remote_port) for s in self.specs]

    def start(self, spec: Any) -> str:
        if spec.local_port in self.taken:
            raise UsageError(f"local port {spec.local_port} is already used", field="local_port")
        self.specs.append(spec)
        return f"id-{len(self.specs)}"


def profile(name: str, ports: str, context: str | None = None) -> Profile:
    return Profile(name=name, context=context, target=parse_target("svc/web"),
                   ports=tuple(parse_port_spec(p) for p in ports.split()))


def test_one_profile_that_cannot_start_does_not_stop_the_others() -> None:
    engine = Engine(taken={9000})
    asked: list[int] = []

    def current() -> str:
        asked.append(1)
        return "ctx-now"

    started, failed = start_profiles(engine, [profile("a", "8080:80"), profile("b", "9000:80"),
                                              profile("c", "8081:80", context="other")], current)
    assert started == ["id-1", "id-2"]
    assert [(p.name, exc.field) for p, exc in failed] == [("b", "local_port")]
    assert [(s.profile, s.cluster, s.local_port) for s in engine.specs] == [("a", "ctx-now", 8080),
                                                                           ("c", "other", 8081)]
    assert asked == [1]  # the current context is asked once, and only for profiles that name none


def test_no_current_context_is_a_failure_of_each_profile_that_needs_one() -> None:
    started, failed = start_profiles(Engine(), [profile("a", "8080:80"), profile("b", "8081:80", context="x")],
                                     lambda: None)
    assert started == ["id-1"]
    assert [p.name for p, _ in failed] == ["a"]
