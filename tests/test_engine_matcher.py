"""Stage 1: required literals, the regex-hazard lint, normalisation, the index."""

from __future__ import annotations

import pytest

from kb.engine import FailureFact, Matcher, Rule, regex_hazard, required_literal
from kb.engine.matcher import SCAN_LIMIT, normalise

IMPORT = r"cannot import name '(?P<name>[\w.]+)' from '(?P<module>[\w.]+)'"


def rule(rid: str, regex: str, symptom: str = "direct", exceptions: tuple[str, ...] = ("ImportError",),
         literal: str | None = "auto", **kw) -> Rule:
    if literal == "auto":
        literal = required_literal(regex)
    return Rule(id=rid, title=rid, explanation="x", source="https://example.org", prior=0.5,
                regex=regex, symptom=symptom, exceptions=exceptions, literal=literal, **kw)


@pytest.mark.parametrize(("regex", "literal"), [
    (IMPORT, "cannot import name '"),
    (r"No module named '(?P<module>[\w.]+)'", "no module named '"),
    (r"(?P<callable>[\w.]+)\(\) got an unexpected keyword argument '(?P<param>\w+)'",
     "() got an unexpected keyword argument '"),
    (r"(a|b)c", None),
    (r"x+", None),
])
def test_required_literal(regex: str, literal: str | None) -> None:
    assert required_literal(regex) == literal


@pytest.mark.parametrize("regex", [r"(a+)+$", r"(\w+\s?)*x", r"(a|aa)*b", r"(?:x*)*", r"((ab)*)+"])
def test_catastrophic_shapes_are_refused(regex: str) -> None:
    assert regex_hazard(regex) is not None


@pytest.mark.parametrize("regex", [IMPORT, r"No module named '(?P<module>[\w.]+)'", r"a+b+c+", r"(?:ab){1,3}x"])
def test_linear_shapes_pass(regex: str) -> None:
    assert regex_hazard(regex) is None


def test_normalise_owner_and_callable() -> None:
    assert normalise("missing_attribute", {"owner": "array.array", "name": "tostring"}) == {
        "module": "array", "name": "array.tostring"}
    assert normalise("missing_attribute", {"module": "urllib3.connectionpool", "name": "X"}) == {
        "module": "urllib3.connectionpool", "name": "X"}
    assert normalise("missing_attribute", {"owner": "str", "name": "decode"}) == {
        "module": "builtins", "name": "str.decode"}
    assert normalise("unexpected_kwarg", {"callable": "Lock.__init__", "param": "loop"}) == {
        "callable": "Lock", "tail": "Lock", "param": "loop"}
    assert normalise("missing_module", {"module": "a.b.c"}) == {"module": "a.b.c", "top": "a"}
    assert normalise("missing_name", {"module": "m"}) is None


def test_index_only_tries_candidate_regexes() -> None:
    rules = [rule(f"r{i}", rf"zz{i:05d}-gone '(?P<x>\w+)'") for i in range(2000)]
    rules.append(rule("imp", IMPORT, "missing_name"))
    matcher = Matcher(rules)
    fact = FailureFact(1, "ImportError", "call", "cannot import name 'Mapping' from 'collections' (/x.py)")
    hits = list(matcher.match(fact))
    assert [(r.id, f) for r, f in hits] == [("imp", {"module": "collections", "name": "Mapping"})]
    assert matcher.regexes_tried == 1


def test_exception_bucket_and_qualified_types() -> None:
    matcher = Matcher([rule("err", r"error code (?P<code>\d+)", exceptions=("CoreError",))])
    assert list(matcher.match(FailureFact(1, "pkg.errors.CoreError", "call", "error code 3")))
    assert not list(matcher.match(FailureFact(2, "ValueError", "call", "error code 3")))


def test_phase_filter() -> None:
    matcher = Matcher([rule("col", r"import (?P<x>\w+)", phases=("collection",), literal=None)])
    assert list(matcher.match(FailureFact(1, "ImportError", "collection", "import x")))
    assert not list(matcher.match(FailureFact(2, "ImportError", "call", "import x")))


def test_scan_is_bounded() -> None:
    matcher = Matcher([rule("tail", r"needle-(?P<x>\w+)", literal=None)])
    far = "a" * (SCAN_LIMIT + 10) + "needle-here"
    assert not list(matcher.match(FailureFact(1, "ImportError", "call", far)))


def test_symptoms_group_failures() -> None:
    matcher = Matcher([rule("imp", IMPORT, "missing_name")])
    facts = [FailureFact(i, "ImportError", "collection", "cannot import name 'Mapping' from 'collections'")
             for i in range(5)]
    facts.append(FailureFact(9, "ImportError", "collection", "something else"))
    symptoms, unmatched = matcher.symptoms(facts)
    assert len(symptoms) == 1 and symptoms[0].failures == (0, 1, 2, 3, 4)
    assert unmatched == [9]


def test_rule_regexes_run_on_re2() -> None:
    """A polynomial shape Python's re would backtrack on for hours returns at once."""
    from kb.engine.matcher import compile_rule_regex

    compiled = compile_rule_regex("boom" + ".*" * 8 + "!")
    assert type(compiled).__module__.startswith("re2")
    assert compiled.search("boom" + "a" * SCAN_LIMIT) is None
    matcher = Matcher([rule("poly", "boom" + ".*" * 8 + "(?P<end>!)", exceptions=())])
    assert list(matcher.match(FailureFact(1, "E", "call", "boom" + "a" * 50_000 + "!"))) == []  # past SCAN_LIMIT
    assert [r.id for r, _ in matcher.match(FailureFact(2, "E", "call", "boom, then !"))] == ["poly"]


def test_python_re_only_for_hazard_free_regexes_re2_cannot_express() -> None:
    from kb.engine.matcher import compile_rule_regex
    from kb.engine.regex import RegexError

    fallback = compile_rule_regex(r"^(?=[^\n]{0,300}deprecat)(?P<message>[^:\n]{1,100})", ignore_case=True)
    assert fallback.search("DeprecationWarning x").group("message") == "DeprecationWarning x"
    for regex in (r"boom(?=(a+)+$)", r"boom(?=.*x)"):
        with pytest.raises(RegexError, match="RE2"):
            compile_rule_regex(regex)


@pytest.mark.parametrize("regex", [r"a(?=(b+)+)", r"x(?=.*y)", r"(?!\w+$)z"])
def test_unbounded_repeats_inside_lookarounds_are_hazards(regex: str) -> None:
    assert regex_hazard(regex) is not None


def test_candidate_indexes_are_the_index_alone() -> None:
    rules = [rule(f"r{i}", rf"cond{i:03d} here") for i in range(100)]
    matcher = Matcher(rules)
    assert matcher.candidate_indexes("xx cond042 here", "ImportError") == [42]
    assert matcher.regexes_tried == 0
