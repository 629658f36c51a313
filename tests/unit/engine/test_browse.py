"""What the browse API offers as targets, from LIST answers on plain data (tray.engine.browse)."""

from __future__ import annotations

from tray.engine.browse import Resource, forwardable, resources_of


def test_finished_pods_are_not_listed_and_ports_are_read() -> None:
    data = {"items": [
        {"metadata": {"name": "web-2"}, "spec": {"containers": [{"ports": [{"containerPort": 8080, "name": "http"}]}]},
         "status": {"phase": "Running"}},
        {"metadata": {"name": "job-1"}, "spec": {"containers": []}, "status": {"phase": "Succeeded"}},
        {"metadata": {"name": "old", "deletionTimestamp": "x"}, "spec": {"containers": []}},
        {"metadata": {"name": "a-first"}, "spec": {"containers": [{"ports": [{"containerPort": 53, "protocol": "UDP"}]}]}},
    ]}
    assert resources_of("Pod", data) == (Resource("a-first", ((53, None, "UDP"),)),
                                         Resource("web-2", ((8080, "http", "TCP"),)))
    svc = {"items": [{"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "name": "http"}]}}]}
    assert resources_of("Service", svc)[0].tcp_ports == ((80, "http"),)


def _rs(name: str, replicas: int = 1, owner: str | None = None) -> dict:
    meta: dict = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "web", "controller": True}]
    return {"metadata": meta, "spec": {"replicas": replicas}}


def test_replicasets_of_deployments_and_scaled_to_zero_are_left_out() -> None:
    # The Deployment is the target that outlives a rollout; its ReplicaSet is not offered.
    answer = {"items": [_rs("web-5d9c", owner="Deployment"), _rs("cache"), _rs("idle", replicas=0),
                        _rs("adopted", owner="Other")]}
    assert [r.name for r in resources_of("ReplicaSet", answer)] == ["adopted", "cache"]
    assert not forwardable("ReplicationController", {"metadata": {"name": "rc"}, "spec": {"replicas": 0}})
    assert forwardable("ReplicationController", {"metadata": {"name": "rc"}, "spec": {"replicas": 2}})


def test_finished_and_finishing_jobs_are_left_out() -> None:
    def job(*conditions: tuple[str, str]) -> dict:
        return {"metadata": {"name": "j"}, "status": {"conditions": [{"type": t, "status": v} for t, v in conditions]}}

    assert forwardable("Job", job())
    assert forwardable("Job", job(("Suspended", "True"), ("Complete", "False")))
    for ended in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"):
        assert not forwardable("Job", job((ended, "True"))), ended
