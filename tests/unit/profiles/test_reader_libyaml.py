"""The profiles reader's libyaml path gives the node tree PyYAML's Python parser gives.

Start-up parses the profiles file before the first forward starts; with 200
profiles PyYAML's Python parser took 60 ms of it, libyaml's about 10 ms.  The
checker's results depend on the tree (values, tags, scalar styles, line
marks), so the two must agree node for node; problems are still reported by the Python
parser (the existing reader tests pin those messages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tray.profiles import reader

pytestmark = pytest.mark.skipif(reader._CParser is None, reason="PyYAML without libyaml")

ROOT = Path(__file__).resolve().parents[3]

DOCUMENTS = [
    "version: 1\nprofiles:\n  - name: web\n    context: kind-dev\n    target: svc/web\n    ports: [\"8080:80\", 9090]\n",
    "version: 1\nprofiles:\n- {name: a, target: 'deploy/x', ports: [80], autostart: yes}\n- name: b\n  target: pod/p\n"
    "  ports:\n    - 5432\n    - \"6000:6000/udp\"\n  # a comment\n  namespace: \"on\"\n",
    "# only comments, then\nversion: 1\nprofiles: []\n",
    "version: 1\nprofiles:\n  - name: |\n      literal\n    target: >\n      folded text\n    ports: [0x50, 1e3, ~, null, 0o17]\n",
    "version: 1\r\nprofiles:\r\n  - name: crlf\r\n    target: svc/w\r\n    ports: ['80']\r\n",
    "version: 1\nprofiles:\n  - name: ünïcode ✓\n    target: svc/w\n    ports: [80]\n    group: \"tab\\there\"\n",
]


def _same(a: Any, b: Any) -> None:
    if a is None or b is None:
        assert a is b
        return
    assert type(a) is type(b)
    # (flow_style is not compared: PyYAML's parser leaves it None on an indentless
    # block sequence, libyaml says False; the checker never reads it.)
    assert (a.tag, getattr(a, "style", None)) == (b.tag, getattr(b, "style", None))
    assert (a.start_mark.line, a.start_mark.column, a.end_mark.line, a.end_mark.column) == \
        (b.start_mark.line, b.start_mark.column, b.end_mark.line, b.end_mark.column)
    if isinstance(a.value, list):
        assert len(a.value) == len(b.value)
        for x, y in zip(a.value, b.value):
            if isinstance(x, tuple):
                _same(x[0], y[0])
                _same(x[1], y[1])
            else:
                _same(x, y)
    else:
        assert a.value == b.value


def _texts() -> list[str]:
    texts = list(DOCUMENTS)
    for path in [ROOT / "config" / "profiles.example.yaml", *sorted((ROOT / "tests").rglob("*profiles*.yaml"))]:
        if path.is_file():
            texts.append(path.read_text())
    lines = ["version: 1", "profiles:"]
    for k in range(200):
        lines += [f"  - name: p{k:03d}", "    context: tender-a", "    namespace: s0",
                  f"    target: svc/w{k % 2}", f'    ports: ["{20000 + k}:80"]']
    texts.append("\n".join(lines) + "\n")
    return texts


@pytest.mark.parametrize("text", _texts())
def test_libyaml_composes_the_same_tree(text: str) -> None:
    _same(reader._BoundedCLoader(text).get_single_node(), reader._BoundedLoader(text).get_single_node())


@pytest.mark.parametrize("text,problem", [
    ("version: 1\nprofiles: &a []\n", "YAML anchors (&a) are not supported"),
    ("version: 1\nprofiles:\n  - name: a\n     target: b\n", "YAML syntax error"),
    ("version: 1\nprofiles:\n\t- name: a\n", "tabs cannot be used for indentation"),
])
def test_problems_are_still_told_in_pyyamls_words(text: str, problem: str) -> None:
    profiles, problems = reader.check_data(text, "profiles.yaml")
    assert profiles == [] and problem in str(problems[0])


def test_a_valid_file_is_parsed_by_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    def python_parser(text: str) -> None:
        raise AssertionError("a valid file went to the Python parser")
    monkeypatch.setattr(reader, "_BoundedLoader", python_parser)
    profiles, problems = reader.check_data(DOCUMENTS[0], "profiles.yaml")
    assert problems == [] and [p.name for p in profiles] == ["web"]
