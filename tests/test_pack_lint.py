"""The built-in packs: valid, every rule cited, no catastrophic regex shape."""

from __future__ import annotations

from kb.engine import regex_hazard
from kb.rulepack import builtin_packs, parse_pack


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
