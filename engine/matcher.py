"""Stage 1: find which rules a failure matches, fast, and turn matches into symptoms.

Rules are bucketed by exception type (an exact key) and, inside a bucket, one Aho-Corasick
automaton (pyahocorasick) holds each rule's required literal. A failure only runs the regexes
of rules whose literal occurs in its lower-cased message, so the cost grows with the number
of *candidate* rules, not with the size of the knowledge base (DESIGN §5 measured ×1.2–1.6
from 100 to 10,000 rules, against ×203 for "every regex on every failure").
Regexes are compiled lazily, on first use, by RE2 (:mod:`kb.engine.regex`: linear time in the
text, whatever the pattern), and only ever see the first ``SCAN_LIMIT`` characters of a message.
A regex RE2 cannot express (a lookahead, a backreference) runs on Python ``re`` only if it has no
backtracking hazard: packs other than kb's own are refused such regexes when they are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import ahocorasick

from . import regex as rx
from .regex import sre_parse
from .types import SYMPTOM_FIELDS, FailureFact, FailureLike, Rule, Symptom

__all__ = ["Matcher", "required_literal", "regex_hazard", "normalise", "compile_rule_regex", "check_fields",
           "SCAN_LIMIT"]

#: only this many characters of a message (or traceback text) are searched
SCAN_LIMIT = 16_384
_ANY = "*"
_MIN_LITERAL = 3

_LITERAL = sre_parse.LITERAL
_SUBPATTERN = sre_parse.SUBPATTERN
_MAX_REPEAT = sre_parse.MAX_REPEAT
_MIN_REPEAT = sre_parse.MIN_REPEAT
_POSSESSIVE = getattr(sre_parse, "POSSESSIVE_REPEAT", None)
_BRANCH = sre_parse.BRANCH
_ASSERTS = {sre_parse.ASSERT, sre_parse.ASSERT_NOT}
_GROUPREF_EXISTS = sre_parse.GROUPREF_EXISTS
_ATOMIC = getattr(sre_parse, "ATOMIC_GROUP", None)
_MAXREPEAT = sre_parse.MAXREPEAT
_REPEATS = {op for op in (_MAX_REPEAT, _MIN_REPEAT, _POSSESSIVE) if op is not None}


def _flatten(items: Iterable[Any]) -> Iterator[str | None]:
    """Yield the characters that must appear, in order; None where the run is broken."""
    for op, arg in items:
        if op is _LITERAL:
            yield chr(arg)
        elif op is _SUBPATTERN:
            yield from _flatten(arg[-1])
        elif op in _REPEATS and arg[0] >= 1:
            yield None
            yield from _flatten(arg[2])
            yield None
        else:
            yield None


def required_literal(regex: str, ignore_case: bool = False) -> str | None:
    """The longest literal run every match of ``regex`` must contain (lower-cased), or None.

    Stored with the rule when it is written, so the index never parses regexes at match time.
    """
    flags = re.IGNORECASE if ignore_case else 0
    try:
        parsed = rx.python_parse(regex, flags)
    except re.error:
        return None
    best, run = "", list[str]()
    for ch in list(_flatten(parsed)) + [None]:
        if ch is None:
            if len(run) > len(best):
                best = "".join(run)
            run = []
        else:
            run.append(ch)
    best = best.lower()
    return best if len(best.strip()) >= _MIN_LITERAL else None


def _contains_repeat(items: Iterable[Any]) -> bool:
    """True if ``items`` can match a variable amount of text (a repeat or an alternation)."""
    for op, arg in items:
        if op in _REPEATS and arg[0] != arg[1]:
            return True
        if op is _BRANCH and len(arg[1]) > 1:
            return True
        if op is _SUBPATTERN and _contains_repeat(arg[-1]):
            return True
        if op is _BRANCH and any(_contains_repeat(alt) for alt in arg[1]):
            return True
    return False


def _unbounded(items: Iterable[Any]) -> bool:
    """True if ``items`` holds a repeat without an upper bound (at any depth)."""
    for op, arg in items:
        if op in _REPEATS and (arg[1] is _MAXREPEAT or _unbounded(arg[2])):
            return True
        if op is _SUBPATTERN and _unbounded(arg[-1]):
            return True
        if op is _BRANCH and any(_unbounded(alt) for alt in arg[1]):
            return True
        if op in _ASSERTS and _unbounded(arg[1]):
            return True
    return False


def _hazard(items: Iterable[Any]) -> str | None:
    for op, arg in items:
        if op in _ASSERTS:
            if _unbounded(arg[1]):
                return ("unbounded repeat inside a lookaround: it runs again at every position "
                        "(bound it, e.g. {0,300})")
            inner = _hazard(arg[1])
            if inner:
                return inner
        elif op is _GROUPREF_EXISTS:
            for alt in arg[1:]:
                inner = _hazard(alt) if alt is not None else None
                if inner:
                    return inner
        elif _ATOMIC is not None and op is _ATOMIC:
            inner = _hazard(arg)
            if inner:
                return inner
        elif op in _REPEATS:
            low, high, body = arg
            if high > 1 or high is _MAXREPEAT:
                if _contains_repeat(body):
                    return ("nested quantifier: a repeat or alternation inside a repeat "
                            "can backtrack exponentially")
            inner = _hazard(body)
            if inner:
                return inner
        elif op is _SUBPATTERN:
            inner = _hazard(arg[-1])
            if inner:
                return inner
        elif op is _BRANCH:
            for alt in arg[1]:
                inner = _hazard(alt)
                if inner:
                    return inner
    return None


def regex_hazard(regex: str) -> str | None:
    r"""Why ``regex`` has a catastrophic-backtracking shape, or None if it has none.

    Conservative: any repeat whose body can itself match a variable amount of text (another
    repeat, an optional part or an alternation) is refused — the shape every classic blow-up
    (``(a+)+``, ``(a|aa)*``, ``(\w+\s?)*``) needs — and so is an unbounded repeat inside a
    lookaround. Use a character class or a bounded form instead. RE2 runs any shape in linear time;
    this check guards the Python ``re`` fallback and keeps packs readable.
    """
    try:
        parsed = rx.python_parse(regex)
    except re.error as exc:
        return f"invalid regex: {exc}"
    return _hazard(parsed)


def normalise(kind: str, captures: dict[str, str]) -> dict[str, str] | None:
    """Turn a rule's named captures into the join keys stage 2 uses (None: not usable).

    - missing_attribute: ``module`` is used as is; an ``owner`` is a type repr such as
      ``array.array`` (module ``array``, name ``array.tostring``) or ``str`` (builtins).
    - unexpected_kwarg / missing_argument / bad_call: ``Lock.__init__()`` → callable ``Lock``, tail ``Lock``.
    - missing_module: ``a.b.c`` also yields ``top`` = ``a``.
    """
    values = {k: (v or "").strip() for k, v in captures.items() if v is not None}
    if kind in ("missing_name", "changed_behaviour"):
        if not values.get("module") or not values.get("name"):
            return None
        return {"module": values["module"], "name": values["name"]}
    if kind == "missing_attribute":
        name = values.get("name", "")
        if not name:
            return None
        if values.get("module"):
            return {"module": values["module"], "name": name}
        owner = values.get("owner", "")
        if not owner:
            return None
        if "." in owner:
            module, cls = owner.rsplit(".", 1)
            return {"module": module, "name": f"{cls}.{name}"}
        return {"module": "builtins", "name": f"{owner}.{name}"}
    if kind in ("unexpected_kwarg", "missing_argument", "bad_call"):
        func = values.get("callable", "").removesuffix("()")
        for suffix in (".__init__", ".__new__", ".__call__"):
            func = func.removesuffix(suffix)
        call = {"callable": func, "tail": func.rsplit(".", 1)[-1]}
        if kind == "bad_call":  # "takes N positional arguments": no parameter named
            return call if func else None
        param = values.get("param", "")
        return {**call, "param": param} if func and param else None
    if kind == "missing_module":
        module = values.get("module", "")
        if not module:
            return None
        return {"module": module, "top": module.split(".", 1)[0]}
    if kind == "direct":
        return values  # the captures, for the rule's remedy parameters ("{alias}")
    return None


@dataclass
class _Bucket:
    automaton: ahocorasick.Automaton | None
    always: list[int]  # rules with no literal: candidates for every failure in the bucket
    #: with a few literals, each is looked for on its own (``str.find`` beats an automaton pass up to ~10)
    few: tuple[tuple[str, list[int]], ...] | None = None

    def hits(self, lowered: str, found: set[int]) -> None:
        """Add to ``found`` the rules whose literal occurs in ``lowered`` and those without one."""
        found.update(self.always)
        if self.few is not None:
            for literal, indexes in self.few:
                if literal in lowered:
                    found.update(indexes)
        elif self.automaton is not None:
            for _end, indexes in self.automaton.iter(lowered):
                found.update(indexes)


#: a bucket with at most this many distinct literals looks for each with ``in``, not an automaton
_FEW_LITERALS = 8


class Matcher:
    """The stage-1 index over a set of rules."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: list[Rule] = list(rules)
        self._compiled: dict[int, rx.Pattern] = {}
        self.regexes_tried = 0
        grouped: dict[tuple[str, str], list[int]] = {}
        for index, rule in enumerate(self.rules):
            for exc in rule.exceptions or (_ANY,):
                grouped.setdefault((exc, rule.field), []).append(index)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        for key, indexes in grouped.items():
            automaton = ahocorasick.Automaton()
            always: list[int] = []
            for index in indexes:
                literal = self.rules[index].literal
                if not literal:
                    always.append(index)
                    continue
                if literal in automaton:
                    automaton.get(literal).append(index)
                else:
                    automaton.add_word(literal, [index])
            if len(automaton):
                automaton.make_automaton()
                few = tuple((word, automaton.get(word)) for word in automaton.keys()) \
                    if len(automaton) <= _FEW_LITERALS else None
                self._buckets[key] = _Bucket(automaton, always, few)
            else:
                self._buckets[key] = _Bucket(None, always)
        self._fields = sorted({rule.field for rule in self.rules})
        self._plans: dict[tuple[str, str], tuple[_Bucket, ...]] = {}

    def _regex(self, index: int) -> rx.Pattern:
        compiled = self._compiled.get(index)
        if compiled is None:
            rule = self.rules[index]
            compiled = self._compiled[index] = compile_rule_regex(rule.regex, rule.ignore_case)
        return compiled

    def candidate_indexes(self, text: str, exception: str = "", field: str = "message") -> list[int]:
        """Indexes into :attr:`rules` of the rules whose regex may match ``text`` (their required
        literal occurs in it), in rule order: the index alone, without running any regex."""
        return self._candidates(exception, field, text[:SCAN_LIMIT].lower())

    def search(self, rule_index: int, text: str) -> rx.Match | None:
        """Rule ``rule_index``'s regex over the first ``SCAN_LIMIT`` characters of ``text``."""
        return self._regex(rule_index).search(text[:SCAN_LIMIT])

    def _plan(self, exception: str, field: str) -> tuple[_Bucket, ...]:
        """The buckets a failure of type ``exception`` is looked up in for ``field``: its exact type, the
        type's last dotted part and the rules for any type. Memoised: a run shows few distinct types."""
        plan = self._plans.get((exception, field))
        if plan is None:
            if len(self._plans) >= _MAX_PLANS:  # a long-lived matcher (kb batch) sees many runs
                self._plans.clear()
            names = dict.fromkeys((exception, exception.rsplit(".", 1)[-1], _ANY))
            plan = self._plans[(exception, field)] = tuple(
                bucket for name in names if (bucket := self._buckets.get((name, field))) is not None)
        return plan

    def _candidates(self, exception: str, field: str, lowered: str) -> list[int]:
        found: set[int] = set()
        for bucket in self._plan(exception, field):
            bucket.hits(lowered, found)
        return sorted(found)

    def match(self, fact: FailureLike, fields: tuple[str, ...] = ("message", "text")
              ) -> Iterator[tuple[Rule, dict[str, str]]]:
        """Yield (rule, normalised fields) for every rule the failure matches.

        The final exception is tried first, then each earlier exception of its chain
        (chained exceptions carry a message only).
        """
        yield from self._match_one(fact, fields)
        if "message" in fields:
            for exception, message in reversed(fact.chain):
                yield from self._match_one(FailureFact(fact.id, exception, fact.phase, message, ""), ("message",))

    def _match_one(self, fact: FailureLike, fields: tuple[str, ...]) -> Iterator[tuple[Rule, dict[str, str]]]:
        for field in self._fields:
            if field not in fields:
                continue
            text = (fact.message if field == "message" else fact.text)[:SCAN_LIMIT]
            if not text or not self._plan(fact.exception, field):
                continue
            yield from self._run(fact.phase, self._candidates(fact.exception, field, text.lower()), text)

    def _run(self, phase: str, indexes: list[int], text: str) -> list[tuple[Rule, dict[str, str]]]:
        """The candidate rules' regexes over ``text``: (rule, normalised fields) of each that matches."""
        found: list[tuple[Rule, dict[str, str]]] = []
        for index in indexes:
            rule = self.rules[index]
            if rule.phases and phase not in rule.phases:
                continue
            self.regexes_tried += 1
            captures = self._regex(index).captures(text)
            if captures is None:
                continue
            captures.update(dict(rule.set))
            normalised = normalise(rule.symptom, captures)
            if normalised is not None:
                found.append((rule, normalised))
        return found

    def _message_keys(self, fact: FailureLike) -> list[_Key]:
        """The symptoms of ``match(fact, ("message",))``, each once: the final exception's message, then
        each earlier one of its chain (what one distinct failure costs, so written without generators)."""
        keys: list[_Key] = []
        for exception, message in ((fact.exception, fact.message), *reversed(fact.chain)):
            text = message[:SCAN_LIMIT]
            plan = self._plan(exception, "message") if text else ()
            if not plan:
                continue
            lowered = text.lower()
            candidates: set[int] = set()
            for bucket in plan:
                bucket.hits(lowered, candidates)
            keys.extend(_key(rule, fields) for rule, fields in self._run(fact.phase, sorted(candidates), text))
        return list(dict.fromkeys(keys))  # a rule matching message and chain counts once

    def _text_keys(self, fact: FailureLike, plan: tuple[_Bucket, ...]) -> list[_Key]:
        """The symptoms of the rules that read the whole traceback (``in: text``), for one failure."""
        text = fact.text[:SCAN_LIMIT]
        lowered = text.lower()
        found: set[int] = set()
        for bucket in plan:
            bucket.hits(lowered, found)
        if not found:  # the usual case: no text rule's literal occurs in the traceback
            return []
        return [_key(r, f) for r, f in self._run(fact.phase, sorted(found), text)]

    def symptoms(self, facts: Iterable[FailureLike]) -> tuple[list[Symptom], list[int]]:
        """Group matches into one Symptom per distinct (rule, kind, fields); return unmatched ids too.

        Failures with one cause usually print the same message, so message matching is
        memoised on (exception, phase, message, chain): each distinct failure runs the index
        once. Rules that read the whole traceback (``in: text``) run per failure, and only
        for exception types that have such rules.
        """
        grouped: dict[_Key, list[int]] = {}
        unmatched: list[int] = []
        memo: dict[tuple[object, ...], list[_Key]] = {}
        for fact in facts:
            message = fact.message
            memo_key = (fact.exception, fact.phase, message if len(message) <= SCAN_LIMIT else message[:SCAN_LIMIT],
                        fact.chain)
            keys = memo.get(memo_key)
            if keys is None:
                keys = memo[memo_key] = self._message_keys(fact)
            if fact.text:
                plan = self._plan(fact.exception, "text")
                if plan:
                    more = self._text_keys(fact, plan)
                    if more:
                        keys = list(dict.fromkeys(keys + more))
            if not keys:
                unmatched.append(fact.id)
                continue
            for key in keys:
                found = grouped.get(key)
                if found is None:
                    grouped[key] = [fact.id]
                else:
                    found.append(fact.id)
        symptoms = [
            Symptom(rule=rule_id, kind=kind, fields=fields, failures=tuple(ids))
            for (rule_id, kind, fields), ids in grouped.items()
        ]
        return symptoms, unmatched


#: a symptom's grouping key: (rule id, symptom kind, sorted normalised fields)
_Key = tuple[str, str, tuple[tuple[str, str], ...]]
#: at most this many (exception type, field) lookup plans are kept
_MAX_PLANS = 4096


def _key(rule: Rule, fields: dict[str, str]) -> _Key:
    return rule.id, rule.symptom, tuple(sorted(fields.items()))


def compile_rule_regex(regex: str, ignore_case: bool = False) -> rx.Pattern:
    """A rule's regex as the matcher runs it: RE2; Python ``re`` only for a regex RE2 cannot express
    that has no backtracking hazard (kb's own packs; other packs are refused such regexes when read)."""
    try:
        return rx.compile(regex, ignore_case)
    except rx.RegexError as exc:
        hazard = regex_hazard(regex)
        if hazard:
            raise rx.RegexError(f"{exc}; {hazard}") from None
        return rx.backtracking(regex, ignore_case)


def check_fields(kind: str, names: Iterable[str]) -> list[str]:
    """Which captures a rule of this kind lacks (for lint and ``kb rules test``)."""
    have = set(names)
    if kind == "missing_attribute":
        missing = [] if "name" in have else ["name"]
        if not have & {"module", "owner"}:
            missing.append("module|owner")
        return missing
    return [f for f in SYMPTOM_FIELDS.get(kind, ()) if f not in have]
