"""``--format json`` writes exactly what ``json.dumps(doc, indent=2, ensure_ascii=False)`` writes: kb's own
indenting encoder (kb/report/jsonfmt.py) against the standard library on real report documents and on
generated ones, including what it leaves to json.dumps."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from kb.diagnose import diagnose
from kb.report.jsonfmt import dumps_indented

CORPUS = Path(__file__).parent / "corpus"


def reference(doc: object) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


@pytest.mark.parametrize("report", ["real/janus-0.4.0/report.xml", "real/fs-2.4.16/pytest.txt"])
def test_a_real_report_document_is_byte_identical(report: str, kb_db: str) -> None:
    doc = diagnose([CORPUS / report], db=kb_db, record=False)
    assert doc["root_causes"] or doc["undiagnosed"]
    assert dumps_indented(doc) == reference(doc)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                         | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_any_json_document_is_byte_identical(doc: object) -> None:
    assert dumps_indented(doc) == reference(doc)


@pytest.mark.parametrize("doc", [
    {1: "an int key", "b": [1.5, math.inf, -math.inf, math.nan]},  # json.dumps turns the key into "1"
    {"a": {True: None, None: 2}},
    {"big": 10 ** 30, "subclass": type("Sub", (str,), {})("x")},
    {"escapes": "\"\\\n\t\x00 é \u2028 \U0001f600"},
    [[], {}, (), [[[]]]],
])
def test_what_it_leaves_to_json_dumps_still_matches(doc: object) -> None:
    assert dumps_indented(doc) == reference(doc)


def test_a_circular_document_is_refused_as_json_refuses_it() -> None:
    doc: dict[str, object] = {}
    doc["self"] = doc
    with pytest.raises(ValueError, match="Circular reference"):
        dumps_indented(doc)


@pytest.mark.parametrize(("where", "bad", "path"), [
    ("tests", 7, "/tests/1"),  # a test id that is not a string, among strings
    ("tests", [], "/tests"),  # an empty list (minItems)
    ("neighbours", ["t.py::a", None], "/neighbours/1"),
])
def test_a_root_cause_with_a_bad_list_is_refused_at_the_item(where: str, bad: object, path: str, kb_db: str) -> None:
    """kb.validate looks at lists of strings in one pass when they are all strings; anything else is checked
    item by item as jsonschema does, and the error names the item."""
    from kb.validate import errors

    doc = diagnose([CORPUS / "real/janus-0.4.0/report.xml"], db=kb_db, record=False)
    cause = doc["root_causes"][0]
    assert errors(cause, "diagnosis", "root_cause") == []
    value = bad if not isinstance(bad, int) else [cause["tests"][0], bad]
    problems = errors({**cause, where: value}, "diagnosis", "root_cause")
    assert [p for p, _ in problems] == [path], problems
