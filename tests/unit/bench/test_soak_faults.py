"""The soak's attribution of failed requests to fault windows, and its recovery times (bench/soak_faults.py)."""

from __future__ import annotations

from bench.soak_faults import NONE, Faults

FWDS = ["a", "b"]


def test_a_failure_during_a_fault_or_its_grace_is_the_faults_and_one_outside_any_is_unexplained() -> None:
    f = Faults(grace=10.0)
    w = f.begin("freeze-api", 100.0)
    f.finish(w, 140.0)
    assert f.record("a", 99.0, 104.0, ok=False) == "freeze-api#1"  # ran into the window
    assert f.record("a", 149.0, 149.5, ok=False) == "freeze-api#1"  # within the grace after its end
    assert f.record("b", 150.5, 151.0, ok=False) == NONE  # after the grace
    assert f.record("b", 90.0, 95.0, ok=False) == NONE  # before it
    s = f.summary(FWDS)
    assert s["faults"]["freeze-api"]["failed"] == 2
    assert s["faults"]["freeze-api"]["failed_by_forward"] == {"a": 2}
    assert s["unexplained"] == {"failed": 2, "by_forward": {"b": 2}}


def test_a_fault_still_lasting_takes_every_failure_and_overlapping_windows_give_it_to_the_latest() -> None:
    f = Faults(grace=10.0)
    first = f.begin("delete-pod", 0.0)
    f.finish(first, 0.1)
    second = f.begin("scale-zero", 5.0)  # not finished: open
    assert f.record("a", 6.0, 6.1, ok=False) == "scale-zero#2"
    assert f.record("a", 4.0, 4.5, ok=False) == "delete-pod#1"
    assert f.record("a", 1000.0, 1000.1, ok=False) == "scale-zero#2"
    assert second.end is None


def test_recovery_is_from_the_reference_to_the_first_success_after_the_last_failure() -> None:
    f = Faults(grace=10.0)
    w = f.begin("scale-zero", 0.0)
    f.record("a", 1.0, 1.1, ok=False)
    f.record("a", 2.0, 2.1, ok=True)  # a success in between...
    f.record("a", 60.0, 60.2, ok=False)  # ...then it failed again
    f.finish(w, 65.0, ref=65.0)  # the first new pod Ready
    f.record("a", 65.5, 66.5, ok=True)
    f.record("a", 67.0, 67.1, ok=True)  # later successes do not move it
    assert w.recovery(FWDS) == {"a": 1.5, "b": 0.0}  # b never failed: it kept serving


def test_a_forward_that_never_served_again_is_named() -> None:
    f = Faults(grace=5.0)
    w = f.begin("freeze-api", 10.0)
    f.finish(w, 50.0)
    f.record("b", 11.0, 16.0, ok=False)
    f.record("a", 11.0, 12.0, ok=False)
    f.record("a", 20.0, 20.3, ok=True)
    assert w.recovery(FWDS) == {"a": 10.3, "b": None}
    s = f.summary(FWDS)["faults"]["freeze-api"]
    assert s["not_recovered"] == ["b after freeze-api#1"]
    assert s["recovery"] == {"a": {"median": 10.3, "max": 10.3}, "b": None}
