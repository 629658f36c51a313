"""What a user's RBAC allows decides how Tender follows pods, never whether it tells the truth.

kubectl port-forward needs `get` on the pod (or `get` on a workload and `list` of its pods)
and `create` on pods/portforward; it never watches.  Tender watches when it may, and
otherwise polls (LIST, or GET of the named object) every 5 s, saying so once in the
status reason.  Each shape runs on the real cluster with a ServiceAccount of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clusterlib import Cluster, deployment_manifest
from tests.integration.engine import hostname, pod_manifest, service_manifest, wait_for, wait_hostname, wait_status
from tests.integration.kubeconfigs import user_with_rules
from tray.engine.manager import ForwardManager
from tray.domain.spec import ForwardSpec
from tray.domain.targets import Target

pytestmark = pytest.mark.cluster

PORTFORWARD = {"apiGroups": [""], "resources": ["pods/portforward"], "verbs": ["create"]}


def _rules(*verbs: str, portforward: bool = True) -> list[dict]:
    rules = [{"apiGroups": [""], "resources": ["pods", "services"], "verbs": list(verbs)},
             {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": list(verbs)}]
    return rules + ([PORTFORWARD] if portforward else [])


@pytest.fixture
def web(cluster: Cluster, namespace: str) -> list[str]:
    cluster.apply(deployment_manifest("web", replicas=1), namespace)
    cluster.apply(service_manifest("web", {"app": "web"}, "[{port: 80, targetPort: http}]"), namespace)
    cluster.apply(pod_manifest("solo"), namespace)
    cluster.wait_ready(namespace, "app=solo")
    return cluster.wait_ready(namespace, "app=web")


def _manager(cluster: Cluster, namespace: str, tmp_path: Path, name: str, rules: list[dict]) -> ForwardManager:
    return ForwardManager(user_with_rules(cluster, namespace, name, rules, tmp_path / f"{name}.yaml"))


def _follows_a_deleted_pod(cluster: Cluster, namespace: str, m: ForwardManager, sid: str, old: str,
                           timeout: float) -> None:
    port = m.get(sid).local_port
    assert hostname(port) == old
    cluster.kubectl("delete", "pod", old, "-n", namespace, "--wait=false")
    new = wait_for(lambda: [p for p in cluster.ready_pods(namespace, "app=web") if p != old], 60,
                   "the replacement pod")[0]
    wait_hostname(port, new, timeout=timeout)
    info = wait_status(m, sid, "active")
    assert info.pod_name == new


def test_full_rights_watch(cluster: Cluster, namespace: str, web: list[str], tmp_path: Path) -> None:
    m = _manager(cluster, namespace, tmp_path, "full", _rules("get", "list", "watch"))
    try:
        sid = m.start(ForwardSpec("full", namespace, Target("Service", "web"), 80, local_port=0))
        info = wait_status(m, sid, "active")
        assert info.status_reason == "", info.status_reason
        _follows_a_deleted_pod(cluster, namespace, m, sid, web[0], timeout=10)
    finally:
        m.shutdown()


def test_no_watch_polls_and_says_so(cluster: Cluster, namespace: str, web: list[str], tmp_path: Path) -> None:
    """get/list without watch (kubectl forwards with that): Tender forwards too, says once that
    it checks every 5 s, and still follows a deleted pod (within a poll or two)."""
    m = _manager(cluster, namespace, tmp_path, "nowatch", _rules("get", "list"))
    try:
        sid = m.start(ForwardSpec("nowatch", namespace, Target("Service", "web"), 80, local_port=0))
        info = wait_status(m, sid, "active", timeout=30)
        assert "cannot watch" in info.status_reason and "every 5 s" in info.status_reason, info.status_reason
        _follows_a_deleted_pod(cluster, namespace, m, sid, web[0], timeout=30)
        assert m.get(sid).status == "active"
    finally:
        m.shutdown()


def test_get_only_forwards_to_a_pod_and_names_the_missing_verb_for_a_service(
        cluster: Cluster, namespace: str, web: list[str], tmp_path: Path) -> None:
    """Only get (and create pods/portforward): a forward to a named pod works (as kubectl's
    does), and notices the pod's deletion by GET; a Service needs its pods listed, so that
    forward is an error naming the verb it lacks, never active."""
    m = _manager(cluster, namespace, tmp_path, "getonly", _rules("get"))
    try:
        pod = m.start(ForwardSpec("getonly", namespace, Target("Pod", "solo"), 8080, local_port=0))
        info = wait_status(m, pod, "active", timeout=30)
        assert "cannot list" in info.status_reason, info.status_reason
        assert hostname(info.local_port) == "solo"
        svc = m.start(ForwardSpec("getonly", namespace, Target("Service", "web"), 80, local_port=0))
        info = wait_status(m, svc, "error", timeout=30)
        assert 'cannot list resource "pods"' in info.status_reason, info.status_reason
        assert not info.recoverable
        cluster.kubectl("delete", "pod", "solo", "-n", namespace, "--wait=false")
        info = wait_status(m, pod, "error", timeout=30)
        assert "solo" in info.status_reason and not info.recoverable, info
    finally:
        m.shutdown()


def test_no_portforward_is_an_error_naming_the_verb(cluster: Cluster, namespace: str, web: list[str],
                                                     tmp_path: Path) -> None:
    m = _manager(cluster, namespace, tmp_path, "noforward", _rules("get", "list", "watch", portforward=False))
    seen: list[str] = []
    m.subscribe(lambda e: seen.append(getattr(e, "status", "")))
    try:
        sid = m.start(ForwardSpec("noforward", namespace, Target("Service", "web"), 80, local_port=0))
        info = wait_status(m, sid, "error", timeout=30)
        assert "cannot create pods/portforward" in info.status_reason, info.status_reason
        assert "active" not in seen, seen
    finally:
        m.shutdown()
