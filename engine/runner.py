"""Stage 2: forward chaining in durable-rules — the only module that imports it.

The ruleset is small and generic (DESIGN §3, §5): it joins normalised symptom facts with the
candidate API-change rows, distributions and environment facts that stage 1 looked up, derives
``cause`` facts, checks them against the environment's versions and links remedies. Knowledge
grows as rows, never as durable rules, so the ruleset stays far below durable's limits.

Hazards handled here (each has a test in tests/test_engine_runner.py):
- timer threads: ``_QuietHost`` overrides ``Host._run``; we drain pending actions ourselves
  until durable reports none, so no diagnosis is lost when the process exits at once;
- ``register_rulesets`` mutates its argument: it gets a deep copy;
- unhandled facts raise ``MessageNotHandledException`` (and ``delete_state`` can crash):
  a catch-all rule handles every fact;
- identical facts raise ``MessageObservedException``: facts are de-duplicated first;
- sessions leak and are capped at 1,024: one session per call, always deleted;
- no regex ever reaches durable (its ``matches`` dialect is not Python's).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any

try:
    import durable.engine as durable_engine
    import durable_rules_engine
except ImportError as exc:  # pragma: no cover - depends on the interpreter
    # durable-rules 2.0.28 (unmaintained) calls PyEval_CallObject, which Python 3.13 removed
    raise ImportError(f"durable-rules cannot be loaded on this Python ({exc}); kb needs Python 3.10-3.12") from exc

from .types import GENERIC_KINDS

__all__ = ["DEFINITION", "RULESET", "chain", "version_key"]

RULESET = "kb_stage2_v2"

Fact = dict[str, Any]


def version_key(version: str) -> int:
    """``"3.11.7"`` → 3011007; ``"82"`` → 82000000; 0 when unknown or unparsable (PEP 440, through
    :mod:`kb.pep440`): one integer, because the rete compares numbers."""
    from ..pep440 import version_key as release

    parts = [min(n, 999) for n in release(version or "")[:3]]
    if not parts:
        return 0
    parts += [0] * (3 - len(parts))
    return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]


def _eq(field: str, other: str, attr: str | None = None) -> dict[str, Any]:
    return {field: {other: attr or field}}


def _cause_action(via: str, owner_prefix: str, owner_of: Callable[[Any], str]) -> Callable[[Any], None]:
    def action(c: Any) -> None:
        other = c.o if owner_prefix != "rule" else None
        owner = f"{owner_prefix}:{owner_of(c)}"
        c.assert_fact({
            "type": "cause",
            "id": f"{c.sy.sym}|{owner}",
            "sym": c.sy.sym,
            "owner": owner,
            "via": via,
            "package": other.package if other is not None and owner_prefix == "api" else "",
            "rk": other.rk if other is not None and owner_prefix == "api" else 0,
        })

    return action


def _check(verdict: str) -> Callable[[Any], None]:
    def action(c: Any) -> None:
        c.assert_fact({"type": "check", "cause": c.k.id, "verdict": verdict})

    return action


def _remedy(c: Any) -> None:
    c.assert_fact({"type": "remedy", "cause": c.k.id, "owner": c.r.owner, "rank": c.r.rank})


def _noop(c: Any) -> None:
    return None


def _symptom(*kinds: str) -> dict[str, Any]:
    kind = {"kind": kinds[0]} if len(kinds) == 1 else {"$or": [{"kind": k} for k in kinds]}
    return {"sy": {"$and": [{"type": "symptom"}, kind]}}


def _definition() -> dict[str, Any]:
    # aliases avoid "s" and "m": durable's Closure already has attributes of those names
    api = {"type": "api"}
    return {
        # symptom + API-change row → cause
        "name_exact": {
            "all": [_symptom("missing_name", "missing_attribute"),
                    {"o": {"$and": [api, _eq("module", "sy"), _eq("name", "sy")]}}],
            "run": _cause_action("exact-row", "api", lambda c: c.o.id),
        },
        # an object's class named without its module ('Series' object has no attribute 'iteritems')
        "attribute_by_name": {
            "all": [{"sy": {"$and": [{"type": "symptom"}, {"kind": "missing_attribute"}, {"module": "builtins"}]}},
                    {"o": {"$and": [api, _eq("name", "sy")]}}],
            "run": _cause_action("name-only-row", "api", lambda c: c.o.id),
        },
        "behaviour": {
            "all": [_symptom("changed_behaviour"),
                    {"o": {"$and": [api, {"kind": "behaviour-changed"}, _eq("module", "sy"), _eq("name", "sy")]}}],
            "run": _cause_action("exact-row", "api", lambda c: c.o.id),
        },
        "call_by_name": {
            "all": [_symptom("unexpected_kwarg", "missing_argument"),
                    {"o": {"$and": [api, _eq("tail", "sy"), _eq("param", "sy")]}}],
            "run": _cause_action("name-only-row", "api", lambda c: c.o.id),
        },
        "positional_count": {
            "all": [_symptom("bad_call"),
                    {"o": {"$and": [api, {"change": "param-keyword-only"}, _eq("tail", "sy")]}}],
            "run": _cause_action("name-only-row", "api", lambda c: c.o.id),
        },
        "module_exact": {
            "all": [_symptom("missing_module"),
                    {"o": {"$and": [api, {"name": ""}, _eq("module", "sy")]}}],
            "run": _cause_action("exact-row", "api", lambda c: c.o.id),
        },
        "module_parent": {
            "all": [_symptom("missing_module"),
                    {"o": {"$and": [api, {"name": ""}, _eq("module", "sy", "parent")]}}],
            "run": _cause_action("exact-row", "api", lambda c: c.o.id),
        },
        # missing module + import-name → distribution row → cause
        "dependency": {
            "all": [_symptom("missing_module"),
                    {"o": {"$and": [{"type": "dist"}, _eq("import", "sy", "module")]}}],
            "run": _cause_action("distribution", "dist", lambda c: c.o["import"]),
        },
        # symptom no row explains + owner facts (stdlib / installed or absent distribution) → generic cause
        "generic": {
            "all": [_symptom(*GENERIC_KINDS),
                    {"o": {"$and": [{"type": "owner"}, _eq("sym", "sy")]}}],
            "run": _cause_action("owner", "gen", lambda c: c.o.key),
        },
        "direct": {
            "all": [_symptom("direct")],
            "run": _cause_action("pattern", "rule", lambda c: c.sy.rule),
        },
        # cause + environment → version verdict
        "version_satisfied": {
            "all": [{"k": {"$and": [{"type": "cause"}, {"$gt": {"rk": 0}}]}},
                    {"e": {"$and": [{"type": "env"}, _eq("package", "k"), {"$gte": {"vk": {"k": "rk"}}}]}}],
            "run": _check("satisfied"),
        },
        "version_contradicted": {
            "all": [{"k": {"$and": [{"type": "cause"}, {"$gt": {"rk": 0}}]}},
                    {"e": {"$and": [{"type": "env"}, _eq("package", "k"), {"$lt": {"vk": {"k": "rk"}}}]}}],
            "run": _check("contradicted"),
        },
        # cause → remedy
        "remedy": {
            "all": [{"k": {"type": "cause"}},
                    {"r": {"$and": [{"type": "option"}, _eq("owner", "k")]}}],
            "run": _remedy,
        },
        # every fact is handled by something (MessageNotHandledException / delete_state crash)
        "catch_all": {"all": [{"m": {"$ex": {"type": 1}}}], "run": _noop},
    }


#: the ruleset as written; durable gets a deep copy because register_rulesets mutates it
DEFINITION = _definition()


class _QuietHost(durable_engine.Host):
    """A Host without the timer threads: we dispatch pending actions ourselves."""

    def _run(self) -> None:  # noqa: D401 - overriding durable's thread starter
        return None


_lock = threading.Lock()
_host: _QuietHost | None = None
_sessions = itertools.count(1)


def _get_host() -> _QuietHost:
    global _host
    if _host is None:
        host = _QuietHost()
        host.register_rulesets({RULESET: copy.deepcopy(DEFINITION)})
        _host = host
    return _host


def _drain(ruleset: Any) -> int:
    """Run every pending action until durable has none left; return how many ran."""
    errors: list[BaseException] = []

    def done(error: Any, _state: Any) -> None:
        if error:
            errors.append(error if isinstance(error, BaseException) else RuntimeError(str(error)))

    ran = 0
    while True:
        started = durable_rules_engine.start_action(ruleset._handle)
        if not started:
            break
        ran += 1
        ruleset._flush_actions(json.loads(started[0]), {"message": json.loads(started[1])}, started[2], done)
        if errors:
            raise errors[0]
    return ran


def _dedupe(facts: Iterable[Fact]) -> list[Fact]:
    seen: set[str] = set()
    out: list[Fact] = []
    for fact in facts:
        key = json.dumps(fact, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append(fact)
    return out


def chain(facts: Iterable[Fact]) -> list[Fact]:
    """Assert ``facts`` in one fresh session, run the rules to quiescence, return derived facts.

    Input facts need a ``type``: symptom | api | dist | owner | env | option. The result holds the
    derived ``cause``, ``check`` and ``remedy`` facts.
    """
    batch = _dedupe(facts)
    if not batch:
        return []
    # durable's actions call datetime.utcfromtimestamp, deprecated since Python 3.12: keep that
    # third-party warning out of users' runs (and from failing runs with -W error)
    with _lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        host = _get_host()
        sid = f"{os.getpid()}-{next(_sessions)}"
        for fact in batch:
            fact["sid"] = sid
        try:
            host.assert_facts(RULESET, batch)
            _drain(host.get_ruleset(RULESET))
            state = host.get_facts(RULESET, sid)
        finally:
            host.delete_state(RULESET, sid)
    derived = [f for f in state if f.get("type") in ("cause", "check", "remedy")]
    for fact in derived:
        fact.pop("sid", None)
    return derived
