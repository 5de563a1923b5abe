"""The built-in packs: valid, every rule cited, no catastrophic regex shape."""

from __future__ import annotations

import pytest

from kb.engine import regex_hazard
from kb.rulepack import builtin_packs, parse_pack

pytestmark = pytest.mark.builtin_packs  # parse_pack checks every row of every built-in pack


def _packs():
    return [parse_pack(data, origin) for origin, data in builtin_packs()]


def test_no_rule_regex_has_a_catastrophic_shape() -> None:
    for pack in _packs():
        for rule in pack.doc.get("rules", []):
            assert regex_hazard(rule["match"]["regex"]) is None, rule["id"]


def test_every_rule_and_row_names_its_source() -> None:
    for pack in _packs():
        for item in pack.doc.get("rules", []) + pack.doc.get("api_changes", []):
            assert item["source"].startswith("https://"), item["id"]


def test_built_in_knowledge_size() -> None:
    """Issue 4's floor: at least 400 API-change rows and 60 rules across the built-in packs."""
    packs = _packs()
    assert sum(len(p.doc.get("api_changes", [])) for p in packs) >= 400
    assert sum(len(p.doc.get("rules", [])) for p in packs) >= 60


def test_every_rule_has_match_and_no_match_examples() -> None:
    for pack in _packs():
        for rule in pack.doc.get("rules", []):
            assert rule["examples"]["match"] and rule["examples"]["no_match"], rule["id"]


#: built-in regexes RE2 cannot express, run on Python re after the hazard check (a lookahead, a
#: backreference); every other built-in regex runs on RE2, and no user pack may add such a one
RE2_EXCEPTIONS = {"py-deprecation-as-error", "pytest-nose-setup-not-called"}


def test_built_in_regexes_compile_under_re2() -> None:
    from kb.engine.regex import unsupported

    refused = {rule["id"] for pack in _packs() for rule in pack.doc.get("rules", [])
               if unsupported(rule["match"]["regex"])}
    assert refused == RE2_EXCEPTIONS


def test_the_schema_types_every_fix_template() -> None:
    """Each template's params are typed in the schema: a new template needs its entry there."""
    from kb.fix import codemods
    from kb.templates import template_names
    from kb.validate import load_schema

    remedy = load_schema("rule-pack")["$defs"]["remedy"]
    typed = {branch["if"]["properties"]["template"]["const"] for branch in remedy["then"]["allOf"]}
    assert set(remedy["properties"]["template"]["enum"]) == typed
    assert typed == set(codemods.CODEMODS) | {"filterwarnings", "pin-dependency", "register-marker"}
    assert {"filterwarnings", "pin-dependency", "register-marker"} <= set(template_names())
