"""The engine: stage 1 → candidate knowledge → stage 2 → ranked root causes."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from . import generic, runner
from .confidence import Evidence, confidence
from .matcher import Matcher
from .types import GENERIC_KINDS, LAYERS, ApiRow, Cause, Distribution, FailureLike, Owner, Remedy, Rule, Symptom

__all__ = ["Engine", "EngineResult", "Knowledge", "OwnerResolver", "GENERIC_KINDS", "MAX_CACHED"]

_VIA_ORDER = ["pattern", "owner", "name-only-row", "distribution", "exact-row"]
#: the owner kinds a generic cause can be built on (never the project's own code, never unknown)
_GENERIC_OWNERS = ("stdlib", "distribution", "absent")

#: resolves the owner of each symptom's module (aligned; None: nothing to resolve) in the tests' environment
OwnerResolver = Callable[[Sequence[Symptom]], Sequence["Owner | None"]]
#: how many failure texts are searched for a mention of the changed API
_MENTION_SAMPLE = 50


class Knowledge(Protocol):
    """What the engine needs from a knowledge base (the store implements it)."""

    def api_rows(self, symptoms: Sequence[Symptom]) -> list[list[ApiRow]]:
        """Candidate API-change rows for each symptom (same order), found by exact keys."""
        ...

    def distributions(self, import_names: Iterable[str]) -> list[Distribution]: ...

    def learned(self, owner: str) -> tuple[int, int]:
        """(verified, failed) fix outcomes recorded for a cause owner (``api:ID``, ``rule:ID``...)."""
        ...


@dataclass
class EngineResult:
    causes: list[Cause]
    undiagnosed: list[int]
    symptoms: list[Symptom] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _describe_row(row: ApiRow, symptom_kind: str) -> str:
    where = "Python" if row.package == "python" else row.package
    if not row.removed_in:
        bound = ""
    elif row.kind in ("signature-changed", "behaviour-changed"):
        bound = f" (since {where} {row.removed_in})"
    else:
        bound = f" (removed in {where} {row.removed_in})"
    if row.kind == "signature-changed" and row.param:
        if row.change == "param-keyword-only" or symptom_kind == "bad_call":
            return f"{row.qualname}() takes {row.param} as a keyword argument only{bound}"
        verb = "now requires" if symptom_kind == "missing_argument" else "no longer accepts"
        return f"{row.qualname}() {verb} {row.param}={bound}"
    if row.kind in ("moved", "renamed") and row.replacement:
        return f"{row.qualname} was {row.kind} to {row.replacement}{bound}"
    if row.kind == "behaviour-changed":
        tail = f": {row.replacement}" if row.replacement else ""
        return f"{row.qualname} changed behaviour{bound}{tail}"
    tail = f"; use {row.replacement}" if row.replacement else ""
    return f"{row.qualname} was removed{bound}{tail}"


def _manual(row: ApiRow) -> Remedy:
    if row.replacement:
        description = f"Port by hand: {row.qualname} → {row.replacement} (see the upstream notes)"
    else:
        description = f"Port by hand away from {row.qualname} (see the upstream notes)"
    return Remedy(kind="manual", description=description, risk="medium", url=row.source)


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _fill_text(value: Any, fields: dict[str, str]) -> Any:
    """Fill ``{capture}`` placeholders from a symptom's captures; leave anything else alone."""
    if not isinstance(value, str) or "{" not in value:
        return value
    # only bare {name} is substituted: str.format would also run {x.__class__} or pad {x:>999999999}
    return _PLACEHOLDER.sub(lambda found: fields.get(found.group(1), found.group(0)), value)


def _fill(remedy: Remedy, fields: dict[str, str]) -> Remedy:
    """A direct rule's remedy with its placeholders filled from the symptom's captures."""
    return replace(remedy, description=_fill_text(remedy.description, fields),
                   params=tuple((k, _fill_text(v, fields)) for k, v in remedy.params))


#: compiled engines kept per process, by the digest of their rules (least recently used dropped first)
MAX_CACHED = 4
_CACHED: OrderedDict[str, Engine] = OrderedDict()
_CACHED_LOCK = threading.Lock()


class Engine:
    """Holds the stage-1 index for a set of rules; ``run`` diagnoses one set of failures."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.matcher = Matcher(rules)
        self.rules = {rule.id: rule for rule in self.matcher.rules}

    @classmethod
    def cached(cls, digest: str, rules: Callable[[], Iterable[Rule]]) -> Engine:
        """The engine for the rules ``digest`` names, built from ``rules()`` once per process.

        A process that diagnoses many runs (kb batch, heal rounds, a test session) then neither reads
        the rules nor rebuilds the index for each, and keeps the regexes it compiled. ``digest`` must
        change whenever the rules do (a hash of their content); the engine itself keeps no state of a
        run. The ``MAX_CACHED`` most recently used engines are kept.
        """
        with _CACHED_LOCK:
            engine = _CACHED.get(digest)
            if engine is not None:
                _CACHED.move_to_end(digest)
                return engine
        engine = cls(rules())
        with _CACHED_LOCK:
            _CACHED[digest] = engine
            _CACHED.move_to_end(digest)
            while len(_CACHED) > MAX_CACHED:
                _CACHED.popitem(last=False)
        return engine

    def run(
        self,
        facts: Sequence[FailureLike],
        knowledge: Knowledge,
        environment: dict[str, str] | None = None,
        owners: OwnerResolver | None = None,
    ) -> EngineResult:
        """Diagnose ``facts``. ``owners`` resolves who owns each symptom's module (stdlib, an installed
        distribution, the project, ...): its facts become evidence, and a symptom no row explains gets
        a generic cause from them (DESIGN §10)."""
        tried_before = self.matcher.regexes_tried
        symptoms, unmatched = self.matcher.symptoms(facts)
        by_id = {fact.id: fact for fact in facts}
        stats = {
            "failures": len(facts),
            "symptoms": len(symptoms),
            "regexes_tried": self.matcher.regexes_tried - tried_before,
        }
        if not symptoms:
            return EngineResult([], sorted(f.id for f in facts), [], stats)

        # stage 2 sees only candidates: symptoms some knowledge could explain
        candidates = knowledge.api_rows(symptoms)
        # "No module named 'x'" asks which distribution provides x; "No module named 'x.y'" says x imported
        tops = {s.get("top") for s in symptoms if s.kind == "missing_module" and s.get("module") == s.get("top")}
        dists = {d.import_name: d for d in knowledge.distributions(t for t in tops if t)}
        environment = dict(environment or {})
        owned = self._owners(symptoms, owners, environment)
        rows: dict[str, ApiRow] = {}
        sym_ids: dict[str, Symptom] = {}
        reasoned: dict[str, tuple[str, Owner]] = {}  # sym → (generic cause key, owner)
        allowed: set[tuple[str, str]] = set()  # (symptom, row) pairs stage 2 may join
        for i, (s, found) in enumerate(zip(symptoms, candidates, strict=True)):
            found = _fitting_rows(s, found)
            if found and i in owned:
                found = _owned_rows(s, owned[i], found)
            if found:  # hand-written rows win where both exist; learned rows win over shipped mined ones
                best = min(LAYERS.index(row.layer) for row in found)
                found = [row for row in found if LAYERS.index(row.layer) == best]
            known_dist = s.kind == "missing_module" and s.get("module") in dists
            if found or s.kind == "direct" or known_dist:
                sym_ids[f"S{i}"] = s
                rows.update((row.id, row) for row in found)
                allowed.update((f"S{i}", row.id) for row in found)
            elif i in owned and owned[i].kind in _GENERIC_OWNERS:
                sym_ids[f"S{i}"] = s
                reasoned[f"S{i}"] = (generic.key(s, owned[i]), owned[i])
        stats["candidate_symptoms"] = len(sym_ids)
        if not sym_ids:
            return EngineResult([], sorted(f.id for f in facts), symptoms, stats)
        options: dict[str, list[Remedy]] = {}
        for row in rows.values():
            rems = list(row.remedies)
            if not any(r.kind == "manual" for r in rems):
                rems.append(_manual(row))
            options[f"api:{row.id}"] = rems
        for dist in dists.values():
            options[f"dist:{dist.import_name}"] = [Remedy(
                kind="dependency-pin",
                description=f"Install {dist.distribution} (declare it in the project's test dependencies)",
                risk="medium",
                template="pin-dependency",
                params=(("requirement", dist.distribution),),
                url=dist.source or None,
            )]
        for sym, (key, owner) in reasoned.items():
            options.setdefault(f"gen:{key}", generic.remedies(sym_ids[sym], owner))
        for s in sym_ids.values():
            if s.kind == "direct" and f"rule:{s.rule}" not in options:
                options[f"rule:{s.rule}"] = [_fill(r, dict(s.fields)) for r in self.rules[s.rule].remedies]

        stage2: list[dict[str, Any]] = []
        for sym, s in sym_ids.items():
            fields = dict(s.fields)
            parent = fields.get("top", "") if fields.get("top") != fields.get("module") else ""
            stage2.append({"type": "symptom", "sym": sym, "kind": s.kind, "rule": s.rule,
                           "module": fields.get("module", ""), "name": fields.get("name", ""),
                           "tail": fields.get("tail", ""), "param": fields.get("param", ""),
                           "top": fields.get("top", ""), "parent": parent})
        for row in rows.values():
            stage2.append({"type": "api", "id": row.id, "kind": row.kind, "package": row.package.lower(),
                           "module": row.module,
                           "name": row.name, "tail": row.name.rsplit(".", 1)[-1] if row.name else "",
                           "param": row.param, "change": row.change, "rk": runner.version_key(row.removed_in)})
        for dist in dists.values():
            stage2.append({"type": "dist", "import": dist.import_name, "distribution": dist.distribution})
        for sym, (key, owner) in reasoned.items():
            stage2.append({"type": "owner", "sym": sym, "key": key, "okind": owner.kind})
        for package, version in environment.items():
            vkey = runner.version_key(version)
            if vkey:
                stage2.append({"type": "env", "package": package.lower(), "vk": vkey})
        for option_owner, rems in options.items():
            for rank in range(len(rems)):
                stage2.append({"type": "option", "owner": option_owner, "rank": rank})

        # stage 2 joins by keys: a symptom may meet a row that only another symptom's candidates hold (or
        # that the filters above took away from it); such pairs are not causes
        derived = [f for f in runner.chain(stage2) if f["type"] != "cause" or not f["owner"].startswith("api:")
                   or (f["sym"], f["owner"][4:]) in allowed]
        stats["derived_facts"] = len(derived)
        sym_owner = {sym: owned[i] for i, s in enumerate(symptoms) if (sym := f"S{i}") in sym_ids and i in owned}
        causes = self._assemble(derived, sym_ids, rows, dists, options, by_id, knowledge, environment, sym_owner)
        _owner_evidence(causes, symptoms, owned, environment)
        explained = {fid for cause in causes for fid in cause.failures}
        undiagnosed = sorted(set(unmatched) | ({f.id for f in facts} - explained))
        undiagnosed = _same_wrapper(causes, by_id, undiagnosed)
        return EngineResult(causes, undiagnosed, symptoms, stats)

    @staticmethod
    def _owners(symptoms: Sequence[Symptom], resolve: OwnerResolver | None,
                environment: dict[str, str]) -> dict[int, Owner]:
        """Owner facts by symptom index; installed versions they found join the environment facts
        (what the reports said wins)."""
        wanted = [i for i, s in enumerate(symptoms) if s.kind in GENERIC_KINDS or s.kind == "changed_behaviour"]
        if resolve is None or not wanted:
            return {}
        found = resolve([symptoms[i] for i in wanted])
        owned = {i: owner for i, owner in zip(wanted, found, strict=True) if owner is not None}
        for owner in owned.values():
            if owner.kind == "distribution" and owner.version:
                environment.setdefault(owner.distribution.lower(), owner.version)
            if owner.python:
                environment.setdefault("python", owner.python)
        return owned

    def _assemble(
        self,
        derived: list[dict[str, Any]],
        sym_ids: dict[str, Symptom],
        rows: dict[str, ApiRow],
        dists: dict[str, Distribution],
        options: dict[str, list[Remedy]],
        by_id: dict[int, FailureLike],
        knowledge: Knowledge,
        environment: dict[str, str],
        sym_owner: dict[str, Owner],
    ) -> list[Cause]:
        by_owner: dict[str, dict[str, Any]] = {}
        verdicts: dict[str, set[str]] = {}
        ranks: dict[str, set[int]] = {}
        for fact in derived:
            if fact["type"] == "check":
                verdicts.setdefault(fact["cause"], set()).add(fact["verdict"])
            elif fact["type"] == "remedy":
                ranks.setdefault(fact["owner"], set()).add(int(fact["rank"]))
        for fact in derived:
            if fact["type"] != "cause":
                continue
            entry = by_owner.setdefault(fact["owner"], {"syms": [], "via": "pattern", "verdicts": set(), "rk": 0,
                                                        "owners": []})
            entry["syms"].append(sym_ids[fact["sym"]])
            if fact["sym"] in sym_owner:
                entry["owners"].append(sym_owner[fact["sym"]])
            if _VIA_ORDER.index(fact["via"]) > _VIA_ORDER.index(entry["via"]):
                entry["via"] = fact["via"]
            entry["verdicts"] |= verdicts.get(fact["id"], set())
            entry["rk"] = max(entry["rk"], int(fact.get("rk") or 0))

        causes: list[Cause] = []
        for owner, entry in by_owner.items():
            syms: list[Symptom] = entry["syms"]
            failures = sorted({fid for s in syms for fid in s.failures})
            rules = [self.rules[s.rule] for s in syms]
            rule = max(rules, key=lambda r: r.prior)
            kind, _, ident = owner.partition(":")
            row = rows.get(ident) if kind == "api" else None
            dist = dists.get(ident) if kind == "dist" else None
            owners_seen: list[Owner] = list(dict.fromkeys(entry["owners"]))
            gen_owner = owners_seen[0] if kind == "gen" and owners_seen else None
            layer = row.layer if row is not None else "generic" if gen_owner is not None else "curated"
            if "satisfied" in entry["verdicts"]:
                version = "satisfied"
            elif "contradicted" in entry["verdicts"]:
                version = "contradicted"
            elif entry["rk"]:
                version = "unknown"
            else:
                version = "n/a"
            since = rule.since if row is None and dist is None else None
            if since and version == "n/a":
                installed = environment.get(since[0].lower(), "")
                version = ("unknown" if not runner.version_key(installed) else
                           "satisfied" if runner.version_key(installed) >= runner.version_key(since[1])
                           else "contradicted")
            mentioned = False
            if row is not None and entry["via"] == "name-only-row":
                needle = f"{row.module}.{row.name}"
                mentioned = any(needle in (by_id[fid].text or by_id[fid].message)
                                for fid in failures[:_MENTION_SAMPLE])
            verified, failed = knowledge.learned(owner)
            match = entry["via"]
            if gen_owner is not None and gen_owner.guessed:
                match = "owner-guess"
            value, breakdown = confidence(Evidence(
                prior=rule.prior, match=match, version=version, mentioned=mentioned,
                failures=len(failures), wordings=len({r.id for r in rules}),
                verified=verified, failed=failed, layer=layer,
                declared=bool(gen_owner is not None and gen_owner.declared),
            ))
            remedies = [options[owner][i] for i in sorted(ranks.get(owner, ())) if i < len(options.get(owner, []))]
            evidence = [f"{len(s.failures)} failure(s) match rule {s.rule}: "
                        + ", ".join(f"{k}={v}" for k, v in s.fields if k not in ("top", "tail"))
                        for s in syms]
            if gen_owner is not None:
                title = generic.title(syms[0], gen_owner)
                explanation = generic.explanation(gen_owner)
                source = generic.source(gen_owner)
                category = generic.category(syms[0], gen_owner)
                evidence.append("no curated, learned or mined row names it: reasoned from the owner facts "
                                "(a generic cause)")
            elif row is not None:
                title = _describe_row(row, syms[0].kind)
                explanation = rule.explanation.strip() + (f" {row.note.strip()}" if row.note else "")
                source = row.source
                category = rule.category or "removed-api"
                evidence.append(f"API change {row.id} ({row.layer} row): {title} — {row.source}")
                if version in ("satisfied", "contradicted"):
                    env_version = environment.get(row.package) or environment.get(row.package.lower(), "?")
                    relation = "≥" if version == "satisfied" else "<"
                    evidence.append(f"environment: {row.package} {env_version} {relation} {row.removed_in}")
                if mentioned:
                    evidence.append(f"the traceback calls {row.module}.{row.name}")
            elif dist is not None:
                title = (f"module '{dist.import_name}' is not installed; "
                         f"it is provided by the {dist.distribution} distribution")
                explanation = rule.explanation.strip() + (f" {dist.note.strip()}" if dist.note else "")
                source = dist.source or rule.source
                category = "missing-dependency"
                evidence.append(f"import name {dist.import_name} → distribution {dist.distribution}")
            else:
                fields = dict(syms[0].fields)
                title = _fill_text(rule.title, fields)
                explanation, source = rule.explanation.strip(), rule.source
                category = rule.category or "known-pattern"
                if since and version in ("satisfied", "contradicted"):
                    relation = "≥" if version == "satisfied" else "<"
                    evidence.append(f"environment: {since[0]} {environment.get(since[0].lower())} {relation} {since[1]}")
            causes.append(Cause(
                key=owner, rule=rule, title=title, category=category, explanation=explanation,
                source=source, failures=failures, symptoms=syms, confidence=value,
                breakdown=breakdown, remedies=remedies, evidence=evidence, api=row, distribution=dist,
                owner=gen_owner, layer=layer,
            ))
        return _attribute(causes)


def _dist_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


#: which signature changes each call symptom can show ("" — a row that does not say — fits every one)
_FITTING_CHANGES = {"unexpected_kwarg": ("", "param-removed"), "missing_argument": ("", "param-required"),
                    "bad_call": ("param-keyword-only",)}


def _fitting_rows(symptom: Symptom, found: list[ApiRow]) -> list[ApiRow]:
    """A removed parameter does not explain "missing 1 required argument", nor a required one "unexpected"."""
    fits = _FITTING_CHANGES.get(symptom.kind)
    return found if fits is None else [row for row in found if row.change in fits]


def _owned_rows(symptom: Symptom, owner: Owner, found: list[ApiRow]) -> list[ApiRow]:
    """Rows joined by a bare name (a callable's, a class attribute's) must belong to the symptom's owner
    when kb knows it: ``load() got an unexpected keyword argument`` raised by a call into PyYAML is not
    explained by another library's ``load``."""
    by_name = symptom.kind in generic.CALL_KINDS or (
        symptom.kind == "missing_attribute" and symptom.get("module") == "builtins")
    if not by_name or owner.kind not in ("stdlib", "distribution"):
        return found
    want = "python" if owner.kind == "stdlib" else _dist_key(owner.distribution)
    return [row for row in found if _dist_key(row.package) == want]


def _owner_evidence(causes: list[Cause], symptoms: Sequence[Symptom], owned: dict[int, Owner],
                    environment: dict[str, str]) -> None:
    """Every cause shows the owner facts of its failures, also those a different wording resolved (the
    nose rule's failures name the project's own class) and, for a rule tied to a release (``since``),
    the distribution it is tied to."""
    holders: dict[int, list[int]] = {}  # failure id → the causes that hold it
    for n, cause in enumerate(causes):
        for fid in cause.failures:
            holders.setdefault(fid, []).append(n)
    found: list[list[str]] = [[] for _ in causes]
    for i, owner in owned.items():  # in symptom order, as each cause lists them
        touched = {n for fid in symptoms[i].failures for n in holders.get(fid, ())}
        if touched:
            line = owner.describe()
            for n in touched:
                found[n].append(line)
    for cause, lines in zip(causes, found, strict=True):
        if cause.rule.since and not any(f"owner of {cause.rule.since[0]}" in line for line in lines):
            dist = cause.rule.since[0]
            version = environment.get(dist.lower(), "")
            lines.append(f"owner of {dist}: installed distribution {dist} {version or '(version not reported)'} "
                         f"— the release this pattern belongs to")
        for line in dict.fromkeys(lines):
            if line not in cause.evidence:
                cause.evidence.append(line)


#: a wrapper message must be at least this long to identify a wrapped cause
_MIN_WRAPPER = 24


def _same_wrapper(causes: list[Cause], by_id: dict[int, FailureLike], undiagnosed: list[int]) -> list[int]:
    """Give an undiagnosed failure to a cause when it shows the same wrapper error.

    Libraries often catch an exception and raise their own (``CoreError: Unable to load ...``).
    When failures explained through their exception chain share such a wrapper message, another
    failure that only shows the wrapper (an assertion about it, say) has the same cause.
    """
    if not undiagnosed:
        return undiagnosed
    wrappers: dict[str, Cause] = {}
    for cause in causes:
        for fid in cause.failures:
            fact = by_id[fid]
            line = fact.message.strip().splitlines()[0] if fact.chain and fact.message.strip() else ""
            if len(line) >= _MIN_WRAPPER:
                wrappers.setdefault(line, cause)
    if not wrappers:
        return undiagnosed
    left = []
    for fid in undiagnosed:
        fact = by_id[fid]
        haystack = fact.message + "\n" + fact.text
        owner = next((c for line, c in wrappers.items() if line in haystack), None)
        if owner is None:
            left.append(fid)
            continue
        owner.failures.append(fid)
        owner.failures.sort()
        note = "failures showing the same wrapper error as failures explained through their exception chain"
        if not any(note in item for item in owner.evidence):
            owner.evidence.append(f"also {note}")
    return left


def _attribute(causes: list[Cause]) -> list[Cause]:
    """Give each failure to its most confident cause; causes left with none become 'also considered'."""
    ordered = sorted(causes, key=lambda c: (-c.confidence, -len(c.failures), c.key))
    owner_of: dict[int, Cause] = {}
    for cause in ordered:
        for fid in cause.failures:
            owner_of.setdefault(fid, cause)
    kept: list[Cause] = []
    for cause in ordered:
        mine = [fid for fid in cause.failures if owner_of[fid] is cause]
        if not mine:
            winner = owner_of[cause.failures[0]]
            winner.also_considered.append(f"{cause.title} (confidence {cause.confidence:.2f})")
            continue
        cause.failures = mine
        kept.append(cause)
    return kept
