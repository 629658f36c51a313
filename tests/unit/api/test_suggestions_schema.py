"""GET /v1/contexts/C/namespaces/NS/suggestions' answer, and the dashboard's empty section (plain data)."""

from __future__ import annotations

import pytest

from tray.api.page import render_page
from tray.api.schema import ApiError, check_namespace, suggestions_dict
from tray.engine.browse import Suggested, resources_of
from tray.errors import ForbiddenError


def test_the_answer_names_each_suggestion_its_problems_and_the_kinds_not_listed() -> None:
    services = resources_of("Service", {"items": [
        {"metadata": {"name": "web", "annotations": {"kftray.app/configs": "web-18080-8080,x"}},
         "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}]})
    suggested = Suggested.of({"Service": services, "Pod": ForbiddenError("pods is forbidden")})
    answer = suggestions_dict("tender-a", "demo", suggested, lambda exc: f"forbidden: {exc}")
    assert answer == {
        "context": "tender-a", "namespace": "demo",
        "suggestions": [{"target": "svc/web", "kind": "Service", "name": "web", "ports": ["18080:80"],
                         "alias": "web", "annotation": "kftray.app/configs"}],
        "problems": ['svc/web: kftray.app/configs: "x": expected ALIAS-LOCAL-PORT (three parts joined by \'-\')'],
        "errors": [{"kind": "Pod", "error": "forbidden: pods is forbidden"}],
    }


@pytest.mark.parametrize("bad", ["Demo", "a_b", "-a", "a" * 64, ""])
def test_a_namespace_must_be_a_namespace_name(bad: str) -> None:
    with pytest.raises(ApiError) as info:
        check_namespace(bad)
    assert info.value.status == 400 and info.value.field == "namespace"
    assert check_namespace("kube-system") == "kube-system"


def test_the_page_has_the_section_for_the_script_to_fill() -> None:
    page = render_page({}, [], {})
    for piece in ('<h2 id="suggest-h">Suggested by annotations</h2>', 'id="suggest-context"',
                  'id="suggest-namespace"', 'data-action="suggest-load"', '<ul id="suggestions" class="results">'):
        assert piece in page
    assert page.index('id="suggest-section"') < page.index('id="forwards-section"')
