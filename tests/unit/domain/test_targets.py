"""Tests for tray.domain.targets: kubectl-style TYPE/NAME parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tray.errors import UsageError
from tray.domain.targets import KIND_PLURAL, KINDS, Target, parse_target


@pytest.mark.parametrize(
    "text,kind,name",
    [
        ("web-1", "Pod", "web-1"),
        ("pod/web-1", "Pod", "web-1"),
        ("pods/web-1", "Pod", "web-1"),
        ("po/web-1", "Pod", "web-1"),
        ("Pod/web-1", "Pod", "web-1"),
        ("svc/web", "Service", "web"),
        ("service/web", "Service", "web"),
        ("services/web", "Service", "web"),
        ("SVC/web", "Service", "web"),
        ("Service/web", "Service", "web"),
        ("deploy/web", "Deployment", "web"),
        ("deployment/web", "Deployment", "web"),
        ("deployments/web", "Deployment", "web"),
        ("Deployment/web", "Deployment", "web"),
        ("deployment.apps/web", "Deployment", "web"),
        ("deployments.apps/web", "Deployment", "web"),
        ("deployments.v1.apps/web", "Deployment", "web"),
        ("Deployment.Apps/web", "Deployment", "web"),
        ("deploy.apps/web", "Deployment", "web"),
        ("sts/db", "StatefulSet", "db"),
        ("statefulset/db", "StatefulSet", "db"),
        ("statefulsets/db", "StatefulSet", "db"),
        ("StatefulSet/db", "StatefulSet", "db"),
        ("statefulset.apps/db", "StatefulSet", "db"),
        ("ds/agent", "DaemonSet", "agent"),
        ("daemonset/agent", "DaemonSet", "agent"),
        ("daemonsets/agent", "DaemonSet", "agent"),
        ("daemonsets.v1.apps/agent", "DaemonSet", "agent"),
        ("rs/web-7c9f", "ReplicaSet", "web-7c9f"),
        ("replicaset/web-7c9f", "ReplicaSet", "web-7c9f"),
        ("ReplicaSets/web-7c9f", "ReplicaSet", "web-7c9f"),
        ("replicasets.apps/web-7c9f", "ReplicaSet", "web-7c9f"),
        ("rs.v1.apps/web-7c9f", "ReplicaSet", "web-7c9f"),
        ("rc/legacy", "ReplicationController", "legacy"),
        ("replicationcontroller/legacy", "ReplicationController", "legacy"),
        ("ReplicationControllers/legacy", "ReplicationController", "legacy"),
        ("job/migrate", "Job", "migrate"),
        ("jobs/migrate", "Job", "migrate"),
        ("Job/migrate", "Job", "migrate"),
        ("job.batch/migrate", "Job", "migrate"),
        ("jobs.v1.batch/migrate", "Job", "migrate"),
        ("svc/my.dotted.name", "Service", "my.dotted.name"),
        ("pod/0abc", "Pod", "0abc"),
        ("a", "Pod", "a"),
    ],
)
def test_parse_valid(text: str, kind: str, name: str) -> None:
    assert parse_target(text) == Target(kind, name)


@pytest.mark.parametrize(
    "target,text,reconnects",
    [
        (Target("Pod", "x"), "pod/x", False),
        (Target("Service", "x"), "svc/x", True),
        (Target("Deployment", "x"), "deploy/x", True),
        (Target("StatefulSet", "x"), "sts/x", True),
        (Target("DaemonSet", "x"), "ds/x", True),
        (Target("ReplicaSet", "x"), "rs/x", True),
        (Target("ReplicationController", "x"), "rc/x", True),
        (Target("Job", "x"), "job/x", True),
    ],
)
def test_str_and_reconnects(target: Target, text: str, reconnects: bool) -> None:
    assert str(target) == text
    assert target.reconnects is reconnects
    assert parse_target(text) == target  # the short form parses back


def test_kind_plural() -> None:
    assert KIND_PLURAL["Pod"] == ("api/v1", "pods")
    assert KIND_PLURAL["Service"] == ("api/v1", "services")
    assert KIND_PLURAL["Deployment"] == ("apis/apps/v1", "deployments")
    assert KIND_PLURAL["StatefulSet"] == ("apis/apps/v1", "statefulsets")
    assert KIND_PLURAL["DaemonSet"] == ("apis/apps/v1", "daemonsets")
    assert KIND_PLURAL["ReplicaSet"] == ("apis/apps/v1", "replicasets")
    assert KIND_PLURAL["ReplicationController"] == ("api/v1", "replicationcontrollers")
    assert KIND_PLURAL["Job"] == ("apis/batch/v1", "jobs")
    assert set(KIND_PLURAL) == set(KINDS)


def test_api_path_and_plural() -> None:
    assert Target("Deployment", "web").api_path("prod") == "/apis/apps/v1/namespaces/prod/deployments/web"
    assert Target("Pod", "p").api_path("default") == "/api/v1/namespaces/default/pods/p"
    assert Target("Service", "s").plural == "services"
    assert Target("Job", "m").api_path("ci") == "/apis/batch/v1/namespaces/ci/jobs/m"
    assert Target("ReplicationController", "r").api_path("ci") == "/api/v1/namespaces/ci/replicationcontrollers/r"


def test_target_is_frozen_and_hashable() -> None:
    t = Target("Pod", "x")
    with pytest.raises(AttributeError):
        t.name = "y"  # type: ignore[misc]
    assert {t, Target("Pod", "x")} == {t}


def test_target_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError):
        Target("CronJob", "x")


@pytest.mark.parametrize(
    "text,message",
    [
        ("foo/x", 'unknown resource kind "foo" in "foo/x"; expected pod, svc, deploy, sts, ds, rs, rc or job'),
        ("cronjob/x", 'unknown resource kind "cronjob" in "cronjob/x"'),
        ("cj/x", 'unknown resource kind "cj"'),
        ("replicaset.extensions/x", 'unknown resource kind "replicaset.extensions"'),
        ("job.apps/x", 'unknown resource kind "job.apps"'),
        ("rc.v1/x", 'unknown resource kind "rc.v1"'),
        ("jobs.v1/x", 'unknown resource kind "jobs.v1"'),
        ("pods.v1/x", 'unknown resource kind "pods.v1"'),
        ("pod.apps/x", 'unknown resource kind "pod.apps"'),
        ("deployment.extensions/x", 'unknown resource kind "deployment.extensions"'),
        ("deployment./x", 'unknown resource kind "deployment."'),
        ("svc/", 'empty resource name in "svc/"'),
        ("/x", 'empty resource kind in "/x"'),
        ("/", 'empty resource kind in "/"'),
        ("", "empty target"),
        ("svc/a/b", 'too many "/" in "svc/a/b"'),
        ("svc/Web", 'invalid resource name "Web" in "svc/Web"'),
        ("Web", 'invalid resource name "Web"'),
        ("svc/-web", 'invalid resource name "-web"'),
        ("svc/web-", 'invalid resource name "web-"'),
        ("svc/web_1", 'invalid resource name "web_1"'),
        ("svc/a..b", 'invalid resource name "a..b"'),
        ("svc/.a", 'invalid resource name ".a"'),
        ("svc/" + "a" * 254, "254 characters long"),
        ("svc/ web", "whitespace"),
        (" web", "whitespace"),
        ("web\n", "whitespace"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_target(text)
    assert message in str(info.value)


def test_max_length_name_ok() -> None:
    name = ("a" * 63 + ".") * 3 + "a" * 61  # 253 chars
    assert len(name) == 253
    assert parse_target(f"svc/{name}").name == name


def test_non_string_rejected() -> None:
    with pytest.raises(UsageError):
        parse_target(None)  # type: ignore[arg-type]


@given(st.text(max_size=40))
def test_parse_target_only_raises_usage_error(text: str) -> None:
    try:
        t = parse_target(text)
    except UsageError:
        return
    assert t.kind in KINDS
    assert parse_target(str(t)) == t


label = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?", fullmatch=True)


@given(
    alias=st.sampled_from(
        ["pod", "svc", "deploy", "sts", "ds", "services", "Deployments", "StatefulSet.apps", "rs", "rc",
         "job", "Jobs.batch", "replicationcontrollers"]
    ),
    labels=st.lists(label, min_size=1, max_size=3),
)
def test_valid_names_roundtrip(alias: str, labels: list[str]) -> None:
    name = ".".join(labels)
    t = parse_target(f"{alias}/{name}")
    assert t.name == name
    assert parse_target(str(t)) == t
