"""Stage 2: forward chaining over normalised, regex-free facts — and which backend runs it.

The ruleset is small and generic (DESIGN §3, §5): it joins normalised symptom facts with the
candidate API-change rows, distributions and environment facts that stage 1 looked up, derives
``cause`` facts, checks them against the environment's versions and links remedies. Knowledge
grows as rows, never as rules, so the ruleset stays far below durable's limits.

Two backends run it (DESIGN §10 "Engine backends"): durable-rules, here (the only module that
imports it), and CLIPS, in :mod:`kb.engine.clips_runner` (the only module that imports clipspy).
The choice: ``KB_ENGINE=durable|clips`` forces one (a one-line :class:`KbError` when it cannot load);
otherwise durable where it imports, else CLIPS. durable-rules 2.0.28 ships no wheels and its C
extension calls ``PyEval_CallObject``, which Python 3.13 removed, so setup.cfg installs it below 3.13
and clipspy from 3.13 on. Either way :func:`chain` returns the derived facts in one canonical order
(symptoms in the order core numbered them), so a cause's symptoms, evidence and ties do not depend on
a backend's internal order; tests/test_engine_conformance.py asserts both give the same diagnoses.

durable hazards handled here (each has a test in tests/test_engine_runner.py):
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
import importlib
import itertools
import json
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from ..errors import KbError
from .types import GENERIC_KINDS

_durable_missing = ""
try:
    import durable.engine as durable_engine
    import durable_rules_engine
except ImportError as exc:  # pragma: no cover - depends on the interpreter
    # durable-rules 2.0.28 (unmaintained) calls PyEval_CallObject, which Python 3.13 removed
    _durable_missing = (f"durable-rules is not installed ({exc})" if isinstance(exc, ModuleNotFoundError)
                        else f"durable-rules does not load on this Python ({exc})")

__all__ = ["BACKENDS", "DEFINITION", "RULESET", "backend", "chain", "unavailable", "version_key"]

#: the stage-2 backends, in the order they are preferred
BACKENDS = ("durable", "clips")

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


if not _durable_missing:
    class _QuietHost(durable_engine.Host):  # type: ignore[misc]  # durable-rules is untyped
        """A Host without the timer threads: we dispatch pending actions ourselves."""

        def _run(self) -> None:  # noqa: D401 - overriding durable's thread starter
            return None


_lock = threading.Lock()
_host: Any = None
_sessions = itertools.count(1)


def _get_host() -> Any:
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


@cache
def unavailable(name: str) -> str:
    """Why backend ``name`` cannot run here ("" when it can)."""
    if name == "durable":
        return _durable_missing
    if name == "clips":
        try:
            importlib.import_module(".clips_runner", __package__)
        except ImportError as exc:
            return f"clipspy is not installed ({exc}); pip install clipspy"
        return ""
    return f"no stage-2 backend named {name!r} (choose {' or '.join(BACKENDS)})"


def backend() -> str:
    """The backend :func:`chain` runs on: ``KB_ENGINE`` when set, else the first of :data:`BACKENDS`
    that loads. Read on every call, so a test (or a user) can switch it by the environment."""
    forced = os.environ.get("KB_ENGINE", "").strip().lower()
    if forced:
        problem = unavailable(forced)
        if problem:
            raise KbError(f"KB_ENGINE={forced}: {problem}")
        return forced
    for name in BACKENDS:
        if not unavailable(name):
            return name
    raise KbError("no stage-2 rule engine loads: install durable-rules (Python < 3.13) or clipspy")


def _natural(text: str) -> tuple[Any, ...]:
    """``S10`` after ``S9``: digits compare as numbers."""
    return tuple(int(part) if odd else part for odd, part in
                 zip(itertools.cycle((False, True)), re.split(r"(\d+)", text)))


def _canonical(fact: Fact) -> tuple[Any, ...]:
    return (fact["type"], _natural(str(fact.get("id") or fact.get("cause") or "")),
            json.dumps(fact, sort_keys=True))


def chain(facts: Iterable[Fact]) -> list[Fact]:
    """Assert ``facts`` in one fresh session, run the rules to quiescence, return derived facts.

    Input facts need a ``type``: symptom | api | dist | owner | env | option. The result holds the
    derived ``cause``, ``check`` and ``remedy`` facts, sorted by type and then by the symptom they
    come from (natural order), whichever backend ran them.
    """
    name = backend()
    batch = _dedupe(facts)
    if not batch:
        return []
    if name == "clips":
        from . import clips_runner

        derived = clips_runner.chain(batch)
    else:
        derived = _durable_chain(batch)
    return sorted(derived, key=_canonical)


def _durable_chain(batch: list[Fact]) -> list[Fact]:
    """The durable backend: one session for ``batch``, drained and deleted."""
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
