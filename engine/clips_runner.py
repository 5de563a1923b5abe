"""Stage 2 on CLIPS, through clipspy — the only module that imports it.

durable-rules does not load on Python ≥ 3.13 and ships no wheels; clipspy does (3.10–3.14), so
:mod:`kb.engine.runner` runs this backend where durable cannot, or when ``KB_ENGINE=clips``.
This is the ruleset of ``runner.DEFINITION``, written as CLIPS constructs, with durable's
semantics kept where they matter (tests/test_engine_conformance.py holds the two to the same
diagnoses):

- a fact with an ``id`` is identified by it: of two derivations of one cause id, the first is
  kept (durable drops the second as already observed). The one pair of rules that can derive the
  same id, an exact row and a name-only row on a ``builtins`` row, meets in durable with the exact
  row first: salience does that here;
- a field a fact lacks is ``nil``, a symbol, so it equals no string (durable: it never matches);
- facts of another type are ignored (durable's catch-all rule), and so are fields no rule reads;
  identical facts are asserted once (CLIPS does not duplicate facts).

Facts go in through ``Template.assert_fact`` as Python values, never as CLIPS source text, so any
string (quotes, parentheses, regex metacharacters) is plain data. One environment per process holds
the constructs; each call resets it, asserts, runs to quiescence and reads the derived facts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import clips

from .types import GENERIC_KINDS

__all__ = ["SLOTS", "CONSTRUCTS", "chain"]

Fact = dict[str, Any]

#: the slots of each fact type (input: symptom … option; derived: cause, check, remedy)
SLOTS: dict[str, tuple[str, ...]] = {
    "symptom": ("sym", "kind", "rule", "module", "name", "tail", "param", "top", "parent"),
    "api": ("id", "kind", "package", "module", "name", "tail", "param", "change", "rk"),
    "dist": ("import", "distribution"),
    "owner": ("sym", "key", "okind"),
    "env": ("package", "vk"),
    "option": ("owner", "rank"),
    "cause": ("id", "sym", "owner", "via", "package", "rk"),
    "check": ("cause", "verdict"),
    "remedy": ("cause", "owner", "rank"),
}
DERIVED = ("cause", "check", "remedy")


def _kinds(*kinds: str) -> str:
    """A CLIPS constraint accepting any of ``kinds`` (fixed names, never user data)."""
    return "|".join(f'"{kind}"' for kind in kinds)


def _constructs() -> list[str]:
    templates = [f"(deftemplate {name} {' '.join(f'(slot {slot})' for slot in slots)})"
                 for name, slots in SLOTS.items()]
    # one cause per id, the first derivation kept (durable's identity by "id")
    derive = """(deffunction derive (?sym ?owner ?via ?package ?rk)
      (bind ?id (str-cat ?sym "|" ?owner))
      (if (not (any-factp ((?c cause)) (eq ?c:id ?id)))
       then (assert (cause (id ?id) (sym ?sym) (owner ?owner) (via ?via) (package ?package) (rk ?rk)))))"""
    api = "(api (id ?id) (package ?p) (rk ?rk)"
    rules = {
        # symptom + API-change row → cause; exact rows first (salience), as durable fires them
        "name_exact": (10, f"(symptom (sym ?s) (kind {_kinds('missing_name', 'missing_attribute')}) "
                           f"(module ?m) (name ?n)) {api} (module ?m) (name ?n))",
                       '(derive ?s (str-cat "api:" ?id) "exact-row" ?p ?rk)'),
        "attribute_by_name": (0, f'(symptom (sym ?s) (kind "missing_attribute") (module "builtins") (name ?n)) '
                                 f"{api} (name ?n))",
                              '(derive ?s (str-cat "api:" ?id) "name-only-row" ?p ?rk)'),
        "behaviour": (10, f'(symptom (sym ?s) (kind "changed_behaviour") (module ?m) (name ?n)) '
                          f'{api} (kind "behaviour-changed") (module ?m) (name ?n))',
                      '(derive ?s (str-cat "api:" ?id) "exact-row" ?p ?rk)'),
        "call_by_name": (0, f"(symptom (sym ?s) (kind {_kinds('unexpected_kwarg', 'missing_argument')}) "
                            f"(tail ?t) (param ?a)) {api} (tail ?t) (param ?a))",
                         '(derive ?s (str-cat "api:" ?id) "name-only-row" ?p ?rk)'),
        "positional_count": (0, f'(symptom (sym ?s) (kind "bad_call") (tail ?t)) '
                                f'{api} (change "param-keyword-only") (tail ?t))',
                             '(derive ?s (str-cat "api:" ?id) "name-only-row" ?p ?rk)'),
        "module_exact": (10, f'(symptom (sym ?s) (kind "missing_module") (module ?m)) {api} (name "") (module ?m))',
                         '(derive ?s (str-cat "api:" ?id) "exact-row" ?p ?rk)'),
        "module_parent": (10, f'(symptom (sym ?s) (kind "missing_module") (parent ?m)) {api} (name "") (module ?m))',
                          '(derive ?s (str-cat "api:" ?id) "exact-row" ?p ?rk)'),
        # missing module + import-name → distribution row → cause
        "dependency": (0, '(symptom (sym ?s) (kind "missing_module") (module ?m)) (dist (import ?m))',
                       '(derive ?s (str-cat "dist:" ?m) "distribution" "" 0)'),
        # symptom no row explains + owner facts → generic cause
        "generic": (0, f"(symptom (sym ?s) (kind {_kinds(*GENERIC_KINDS)})) (owner (sym ?s) (key ?k))",
                    '(derive ?s (str-cat "gen:" ?k) "owner" "" 0)'),
        "direct": (0, '(symptom (sym ?s) (kind "direct") (rule ?r))',
                   '(derive ?s (str-cat "rule:" ?r) "pattern" "" 0)'),
        # cause + environment → version verdict
        "version_satisfied": (0, "(cause (id ?k) (package ?p) (rk ?rk&:(numberp ?rk)&:(> ?rk 0))) "
                                 "(env (package ?p) (vk ?vk&:(numberp ?vk)&:(>= ?vk ?rk)))",
                              '(assert (check (cause ?k) (verdict "satisfied")))'),
        "version_contradicted": (0, "(cause (id ?k) (package ?p) (rk ?rk&:(numberp ?rk)&:(> ?rk 0))) "
                                    "(env (package ?p) (vk ?vk&:(numberp ?vk)&:(< ?vk ?rk)))",
                                 '(assert (check (cause ?k) (verdict "contradicted")))'),
        # cause → remedy
        "remedy": (0, "(cause (id ?k) (owner ?o)) (option (owner ?o) (rank ?r))",
                   "(assert (remedy (cause ?k) (owner ?o) (rank ?r)))"),
    }
    return [*templates, derive, *(f"(defrule {name} (declare (salience {salience})) {lhs} => {rhs})"
                                  for name, (salience, lhs, rhs) in rules.items())]


#: the CLIPS source of the ruleset (templates, the ``derive`` function, one rule per durable rule)
CONSTRUCTS = _constructs()

_lock = threading.Lock()
_env: Any = None


def _environment() -> Any:
    global _env
    if _env is None:
        env = clips.Environment()
        for construct in CONSTRUCTS:
            env.build(construct)
        _env = env
    return _env


def chain(facts: Iterable[Fact]) -> list[Fact]:
    """Assert ``facts``, run the rules to quiescence, return the derived ``cause``, ``check`` and
    ``remedy`` facts (as dicts with their ``type``), in no particular order."""
    with _lock:
        env = _environment()
        env.reset()
        templates = {name: env.find_template(name) for name in SLOTS}
        try:
            for fact in facts:
                kind = fact.get("type")
                if kind not in SLOTS:
                    continue
                templates[kind].assert_fact(**{k: v for k, v in fact.items() if k in SLOTS[kind]})
            env.run()
            return [{"type": f.template.name, **dict(f)} for f in env.facts() if f.template.name in DERIVED]
        finally:
            env.reset()
