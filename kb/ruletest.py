"""``kb rules test``: run every rule's examples through the real stage-1 matcher.

Output follows Semgrep's ``--test``: per rule what passed and what did not. An example is a
line as the exception prints it, ``"ImportError: cannot import name 'X' from 'y'"``; a
``match`` example must produce the rule's symptom (with every field its kind needs), a
``no_match`` example must not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .engine import FailureFact, Matcher
from .errors import FixError
from .rulepack import Pack, builtin_packs, generated, golden_cases, parse_pack, read_pack
from .store import rule_from_row, rule_row
from .templates import is_text_template, render_template

__all__ = ["RuleResult", "test_packs", "test_golden", "format_results", "split_example", "check_remedy_params"]

#: a ``{capture}`` placeholder, filled from the symptom's captures at diagnosis time
_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass
class RuleResult:
    pack: str
    rule: str
    passed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def split_example(example: str) -> tuple[str, str]:
    """``"TypeError: f() got ..."`` → ("TypeError", "f() got ..."); no type → ("", example)."""
    head, sep, rest = example.partition(": ")
    if sep and head and " " not in head.strip():
        return head.strip(), rest
    return "", example


def check_remedy_params(remedy: Mapping[str, Any]) -> None:
    """FixError unless the remedy's template exists and takes its parameters: a codemod's through
    ``codemods.check_params`` (what the fix stage checks at plan time), a text template by rendering.
    A ``{capture}`` placeholder stands for a name here (the plan checks the filled-in value)."""
    template = remedy.get("template")
    if not template:
        return
    params = {k: _PLACEHOLDER.sub("x", v) if isinstance(v, str) else v for k, v in (remedy.get("params") or {}).items()}
    if is_text_template(template):
        render_template(template, params=params)
        return
    from .fix import codemods  # LibCST (half a second to import) only for a pack that names a codemod

    if template in codemods.CODEMODS:
        codemods.check_params(template, params)
    else:
        render_template(template, params=params)  # FixError: no such template


def _check_remedies(result: RuleResult, remedies: list[dict]) -> None:
    """Every remedy's template exists and takes the parameters the rule gives it."""
    for n, remedy in enumerate(remedies, 1):
        if not remedy.get("template"):
            continue
        try:
            check_remedy_params(remedy)
            result.passed += 1
        except FixError as exc:
            result.failures.append(f"remedy {n}: {exc}")


def _test_pack(pack: Pack) -> list[RuleResult]:
    results = []
    for doc in pack.doc.get("rules") or []:
        rule = rule_from_row(rule_row(pack.name, doc))
        matcher = Matcher([rule])
        phase = rule.phases[0] if rule.phases else "call"
        result = RuleResult(pack.name, rule.id)
        for expected, examples in ((True, doc["examples"]["match"]), (False, doc["examples"]["no_match"])):
            for n, example in enumerate(examples, 1):
                exc, message = split_example(example)
                fact = FailureFact(0, exc, phase, message, message)
                hit = any(True for _ in matcher.match(fact))
                if hit == expected:
                    result.passed += 1
                else:
                    what = "match" if expected else "no_match"
                    verb = "did not match" if expected else "matched"
                    result.failures.append(f"{what} example {n} {verb}: {example[:200]!r}")
        _check_remedies(result, doc.get("remedies") or [])
        results.append(result)
    rows = RuleResult(pack.name, "(api-change remedies)")
    for doc in pack.doc.get("api_changes") or []:
        _check_remedies(rows, doc.get("remedies") or [])
    if rows.passed or rows.failures:
        results.append(rows)
    return results


def _run_case(case: dict[str, Any]) -> str:
    from .fix import codemods

    template, params, before = case["template"], case.get("params") or {}, case.get("before", "")
    if template == "quarantine":
        return codemods.quarantine(before, params.get("tests") or [], str(params["until"]), str(params["reason"]))
    if template in codemods.CODEMODS:
        return codemods.transform(template, params, before)
    return render_template(template, params=params)


def _golden_failure(case: dict[str, Any]) -> str | None:
    """Why a golden case fails, or None. A codemod's ``after`` must also parse and be a fixed point."""
    try:
        got = _run_case(case)
    except FixError as exc:
        return str(exc)
    if got != case["after"]:
        return f"gave {got!r}, expected {case['after']!r}"
    if not is_text_template(case["template"]):  # a codemod
        try:
            compile(case["after"], "<golden after>", "exec")
        except SyntaxError as exc:
            return f"the expected result does not parse: {exc}"
        again = _run_case({**case, "before": case["after"]})
        if again != case["after"]:
            return f"is not idempotent: applied again it gave {again!r}"
    return None


def test_golden() -> list[RuleResult]:
    """Run every fix template's golden cases (codemods through kb.fix.codemods, text templates through
    the renderer); one result per template."""
    by_template: dict[str, RuleResult] = {}
    for n, case in enumerate(golden_cases(), 1):
        result = by_template.setdefault(case["template"], RuleResult("fix templates", case["template"]))
        failure = _golden_failure(case)
        if failure is None:
            result.passed += 1
        else:
            note = f" ({case['note']})" if case.get("note") else ""
            result.failures.append(f"case {n}{note}: {failure}")
    return list(by_template.values())


def test_packs(paths: list[str], user: list[str] | None = None) -> list[RuleResult]:
    """Results for the packs at ``paths``; when ``paths`` is empty, for the built-in packs, the
    user packs at ``user`` and the fix templates' golden cases."""
    if paths:
        return [r for pack in (read_pack(p) for p in paths) for r in _test_pack(pack)]
    # kb's generated pack is checked as the store seeds it (trusted: lint, not the row-by-row schema check,
    # 9 of this command's 10 s); tests/test_pack_lint.py validates it in full against the schema
    packs = [parse_pack(data, origin, trusted=generated(origin)) for origin, data in builtin_packs()] + \
        [read_pack(p) for p in user or []]
    return [r for pack in packs for r in _test_pack(pack)] + test_golden()


def format_results(results: list[RuleResult]) -> str:
    lines = []
    current = None
    for r in results:
        if r.pack != current:
            current = r.pack
            lines.append(f"{r.pack}")
        total = r.passed + len(r.failures)
        lines.append(f"  {'✔' if r.ok else '✖'} {r.rule}  {r.passed}/{total}")
        lines.extend(f"      {failure}" for failure in r.failures)
    failed = sum(1 for r in results if not r.ok)
    examples = sum(r.passed + len(r.failures) for r in results)
    verdict = "all passed" if not failed else f"{failed} rule(s) failed"
    lines.append(f"{len(results)} rules and templates, {examples} checks: {verdict}")
    return "\n".join(lines) + "\n"
