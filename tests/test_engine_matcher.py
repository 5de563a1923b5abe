"""Stage 1: required literals, the regex-hazard lint, normalisation, the index."""

from __future__ import annotations

import pytest

from kb.engine import FailureFact, Matcher, Rule, regex_hazard, required_literal
from kb.engine.core import MAX_CACHED, Engine
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
    from kb.engine.regex import _Linear

    compiled = compile_rule_regex("boom" + ".*" * 8 + "!")
    assert isinstance(compiled, _Linear)
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


def _builtin_examples() -> list[tuple[str, str, bool]]:
    from kb.rulepack import builtin_packs, parse_pack

    found = []
    for origin, data in builtin_packs():
        if origin.endswith(".yaml"):
            for item in parse_pack(data, origin).doc.get("rules") or []:
                examples = item.get("examples") or {}
                for text in [*examples.get("match", []), *examples.get("no_match", [])]:
                    found.append((item["match"]["regex"], text, bool(item["match"].get("ignore_case"))))
    return found


def test_captures_are_what_a_search_gives() -> None:
    """The matcher's fast path (RE2's binding over UTF-8 bytes) returns exactly the wrapper's groupdict
    without its Nones, on every built-in rule's examples, as written and with non-ASCII text around them."""
    from kb.engine.matcher import compile_rule_regex

    cases = _builtin_examples()
    assert len(cases) > 100
    for regex, text, ignore_case in cases:
        compiled = compile_rule_regex(regex, ignore_case)
        for variant in (text, "é… " + text + " ✓", text.replace("'", "’", 1)):
            found = compiled.search(variant)
            expected = None if found is None else {k: v for k, v in found.groupdict().items() if v is not None}
            assert compiled.captures(variant) == expected, (regex, variant)


def test_engines_are_kept_per_rules_digest() -> None:
    built: list[str] = []

    def rules(name: str):  # noqa: ANN202 - a factory of rule loaders
        def load() -> list[Rule]:
            built.append(name)
            return [rule(name, IMPORT)]
        return load

    first = Engine.cached("test-digest-a", rules("a"))
    assert Engine.cached("test-digest-a", rules("a-again")) is first and built == ["a"]  # not read again
    assert Engine.cached("test-digest-b", rules("b")) is not first and built == ["a", "b"]
    for i in range(MAX_CACHED):
        Engine.cached(f"test-digest-other-{i}", rules("other"))
    assert Engine.cached("test-digest-a", rules("a-rebuilt")) is not first  # the least recently used went
    assert built[-1] == "a-rebuilt"


DIRECT_PACK = b"""
pack: frobnication
version: "1"
rules:
  - id: frobnicator-zone
    title: The frobnicator exploded
    explanation: A made-up failure only this pack knows.
    source: https://example.org/frobnicator
    prior: 0.6
    match:
      exception: [RuntimeError]
      regex: "frobnicator exploded in zone (?P<zone>\\\\d+)"
    symptom: direct
    remedies:
      - {kind: manual, description: Cool the frobnicator, risk: medium}
    examples:
      match: ["RuntimeError: frobnicator exploded in zone 7"]
      no_match: ["RuntimeError: other"]
"""


def test_a_run_sees_rules_loaded_since_the_last_one(tmp_path) -> None:  # noqa: ANN001
    """The compiled index is kept between runs of a process, keyed by the KB's packs: loading a pack
    into the same KB gives the next run an index with its rules."""
    from kb.diagnose import diagnose
    from kb.rulepack import parse_pack
    from kb.store import SqliteStore

    report = tmp_path / "report.xml"
    report.write_text('<testsuites><testsuite name="s"><testcase classname="t" name="x">'
                      '<failure message="RuntimeError: frobnicator exploded in zone 7">boom</failure>'
                      '</testcase></testsuite></testsuites>')
    db = tmp_path / "kb.sqlite"
    before = diagnose([report], db=db, record=False)
    assert [c["rule"] for c in before["root_causes"]] == [] and len(before["undiagnosed"]) == 1
    with SqliteStore(db) as store:
        store.load_pack(parse_pack(DIRECT_PACK, "frobnication.yaml"))
    after = diagnose([report], db=db, record=False)
    assert [c["rule"] for c in after["root_causes"]] == ["frobnicator-zone"]
