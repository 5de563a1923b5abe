"""kb.validate's fast paths give jsonschema's own answers: a pack remedy's ``params`` are typed by a switch on
its ``template`` (an allOf of if/then cases), which kb.validate checks by going straight to the case that
applies. Every remedy of the built-in packs, mutated every way that reaches that switch, gets the same errors
at the same instance and schema paths as from jsonschema's unmodified validator."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from kb.rulepack import builtin_packs, generated, parse_pack
from kb.validate import _cases, _validator, errors, load_schema


def _reference() -> Any:
    """jsonschema's validator for rule packs, with kb's one type rule (an integer is a Python int) and no
    fast path."""
    schema = load_schema("rule-pack")
    cls = jsonschema.validators.validator_for(schema)
    strict = jsonschema.validators.extend(cls, type_checker=cls.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)))
    return strict(schema, format_checker=None)


def _remedies() -> list[dict[str, Any]]:
    """The first two remedies of each template (and of none) in the curated built-in packs."""
    found: dict[Any, list[dict[str, Any]]] = {}
    for origin, data in builtin_packs():
        if generated(origin):
            continue
        doc = parse_pack(data, origin, trusted=True).doc
        for item in [*(doc.get("rules") or []), *(doc.get("api_changes") or [])]:
            for remedy in item.get("remedies") or []:
                same = found.setdefault(remedy.get("template"), [])
                if len(same) < 2:
                    same.append(remedy)
    return [remedy for same in found.values() for remedy in same]


def _templates() -> list[str]:
    return list(load_schema("rule-pack")["$defs"]["remedy"]["properties"]["template"]["enum"])


def _mutants(remedy: dict[str, Any]) -> Iterator[Any]:
    yield remedy
    for template in [*_templates(), "no-such-template", 5, None, ["pin-dependency"]]:
        yield {**remedy, "template": template}  # the params of one case under another's name, or none
    yield {k: v for k, v in remedy.items() if k != "template"}
    yield {k: v for k, v in remedy.items() if k != "params"}
    yield {**remedy, "params": "x"}
    params = remedy.get("params")
    if isinstance(params, dict):
        yield {**remedy, "params": {**params, "extra": "x"}}
        for key in params:
            for value in (1, "", "a b()", None, [1]):
                yield {**remedy, "params": {**params, key: value}}
            yield {**remedy, "params": {k: v for k, v in params.items() if k != key}}


def _pack(remedy: Any) -> dict[str, Any]:
    """A one-rule pack whose rule has ``remedy``."""
    rule = {"id": "r", "title": "t", "explanation": "e", "source": "https://example.org/x", "prior": 0.5,
            "match": {"regex": "x"}, "symptom": "direct", "remedies": [remedy],
            "examples": {"match": ["ValueError: x"], "no_match": ["ValueError: y"]}}
    return {"pack": "p", "version": "1", "rules": [rule]}


def _found(validator: Any, doc: dict[str, Any]) -> list[tuple[list[Any], list[Any], str]]:
    return sorted((list(e.absolute_path), list(e.absolute_schema_path), e.message) for e in validator.iter_errors(doc))


def test_the_remedy_switch_is_recognised() -> None:
    remedy = load_schema("rule-pack")["$defs"]["remedy"]
    cases = _cases(remedy["then"]["allOf"])
    assert cases is not None and cases[0] == "template" and sorted(cases[1]) == sorted(_templates())
    assert _cases([{"pattern": "x"}, {"not": {"pattern": "y"}}]) is None  # any other allOf keeps its keyword


def test_every_mutated_remedy_gets_jsonschemas_own_errors() -> None:
    reference, fast = _reference(), _validator("rule-pack", None)
    remedies = _remedies()
    assert len({r.get("template") for r in remedies}) >= 8  # the built-in packs use the switch widely
    compared = refused = 0
    for remedy in remedies:
        for mutant in _mutants(remedy):
            doc = _pack(copy.deepcopy(mutant))
            expected = _found(reference, doc)
            assert _found(fast, doc) == expected, mutant
            compared += 1
            refused += bool(expected)
    assert compared > 400 and refused > compared // 2  # most mutants are refused: the errors were compared


@pytest.mark.parametrize("bad", [{"template": "pin-dependency", "params": {"requirement": 5}},
                                 {"template": "add-kwarg", "params": {"callable": "f"}}])
def test_a_bad_params_error_names_the_param(bad: dict[str, Any]) -> None:
    problems = errors(_pack({"kind": "code-edit", "description": "d", "risk": "low", **bad}), "rule-pack")
    assert problems and all(path.startswith("/rules/0/remedies/0/params") for path, _ in problems), problems
