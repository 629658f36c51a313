"""A namespace's annotation suggestions gathered from its LIST answers (tray.engine.browse, plain data)."""

from __future__ import annotations

from tray.engine.browse import Suggested, resources_of
from tray.errors import ForbiddenError


def test_resources_carry_their_suggestions_and_a_namespace_gathers_them_services_first() -> None:
    services = resources_of("Service", {"items": [
        {"metadata": {"name": "web", "annotations": {"kftray.app/configs": "web-18080-8080"}},
         "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"metadata": {"name": "bad", "annotations": {"kftray.app/configs": "x"}}, "spec": {"ports": []}},
        {"metadata": {"name": "plain"}, "spec": {"ports": [{"port": 81}]}},
    ]})
    assert [str(s.target) for s in services[2].suggested] == ["svc/web"]
    assert services[0].problems and not services[1].suggested
    pods = resources_of("Pod", {"items": [
        {"metadata": {"name": "debug", "annotations": {"k9scli.io/port-forwards": "2345"}},
         "spec": {"containers": []}, "status": {"phase": "Running"}}]})
    deployments = resources_of("Deployment", {"items": [
        {"metadata": {"name": "api"}, "spec": {"template": {"metadata": {
            "annotations": {"k9scli.io/auto-port-forwards": "app::9090:http"}}}}}]})
    refused = ForbiddenError("jobs is forbidden")
    found = Suggested.of({"Pod": pods, "Service": services, "Job": refused, "Deployment": deployments})
    assert [(str(s.target), [str(p) for p in s.ports]) for s in found.suggestions] == [
        ("svc/web", ["18080:80"]), ("deploy/api", ["9090:http"]), ("pod/debug", ["2345"])]
    assert len(found.problems) == 1 and found.problems[0].startswith("svc/bad: ")
    assert found.errors == {"Job": refused}
