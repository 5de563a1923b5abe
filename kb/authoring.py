"""Rule authoring for maintainers: scaffold, lint, suggest from history, impact preview, stats.

The workflow (README, "Writing a rule"): ``kb suggest`` clusters the undiagnosed failures of
the recorded history by message template → ``kb rules new --from-failure ID`` scaffolds a pack
with that failure's real text as its ``match`` example → edit → ``kb rules lint`` → ``kb rules
test`` → ``kb rules impact PACK`` replays the history with and without it. User packs live in
``rules/`` beside the knowledge base (``.kb/rules/``) and win over built-in rules of the same id.

Message templates mask what varies between occurrences of one failure — quoted names, numbers,
hex ids, paths — so ``'np.float' has no attribute`` and ``'np.int' has no attribute`` are one
cluster. This is the masking step of template miners such as drain3, without its token tree:
kb's histories are small enough that an exact key per (exception, template) is clear and
deterministic, and it needs no dependency.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .engine import Engine, FailureFact, Matcher, Rule
from .engine.matcher import compile_rule_regex
from .engine.types import SYMPTOM_FIELDS
from .errors import FixError, KbError, RuleError
from .rulepack import Pack, dump_pack, parse_pack, read_pack, read_pack_bytes
from .ruletest import check_remedy_params, split_example
from .safeio import write_bytes_atomic
from .store import SqliteStore, Store, copy_store, rule_from_row, rule_row

__all__ = ["template", "Cluster", "clusters", "draft_rule", "drafts", "scaffold", "lint_pack", "Lint", "lint_packs",
           "Impact", "impact", "rule_stats", "import_pack", "all_packs", "find_pack", "user_pack_files", "PLACEHOLDER"]

PLACEHOLDER = "TODO"
#: what varies between occurrences of one failure, in the order they are masked
_MASKS = (
    ("<Q>", re.compile(r"(?<!\w)(['\"])(?:(?!\1)[^\\]|\\.){0,2000}?\1(?!\w)", re.S)),
    ("<HEX>", re.compile(r"\b0x[0-9a-fA-F]+\b")),
    ("<PATH>", re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.\-]{1,100}){2,20}")),
    ("<N>", re.compile(r"(?<![\w.])\d+(?:\.\d+)*(?![\w.])")),
)
_SCAN = 8000
_IDENT = re.compile(r"[\w.]{1,80}")


def _tokens(message: str) -> list[tuple[str, str]]:
    """``message`` (its first 8,000 characters) as (kind, text) pieces: kind "" for literal text,
    else the mask (a quoted string may span lines; the template keeps only the first line)."""
    pieces: list[tuple[str, str]] = [("", message[:_SCAN])]
    for mask, pattern in _MASKS:
        out: list[tuple[str, str]] = []
        for kind, text in pieces:
            if kind:
                out.append((kind, text))
                continue
            last = 0
            for found in pattern.finditer(text):
                out.append(("", text[last:found.start()]))
                out.append((mask, found.group(0)))
                last = found.end()
            out.append(("", text[last:]))
        pieces = [p for p in out if p[1]]
    line: list[tuple[str, str]] = []
    for kind, text in pieces:  # up to the end of the first line of literal text
        if not kind and "\n" in text:
            line.append(("", text.split("\n", 1)[0]))
            break
        line.append((kind, text))
    return line


def template(message: str) -> str:
    """The first line of ``message`` with what varies masked (``<Q>``, ``<HEX>``, ``<PATH>``, ``<N>``)."""
    return "".join(kind or text for kind, text in _tokens(message))[:300]


def _regex_for(message: str) -> str:
    """A regex for every message of ``message``'s template: literal parts escaped, a short quoted
    name as the named group ``name``, longer quoted text and other masks as bounded wildcards."""
    out: list[str] = []
    named = 0
    for kind, text in _tokens(message):
        if kind == "<Q>":
            if named < 3 and _IDENT.fullmatch(text[1:-1]):
                named += 1
                out.append(f"['\"](?P<name{named if named > 1 else ''}>[\\w.]+)['\"]")
            else:
                out.append("['\"][\\s\\S]*?['\"]")  # RE2: linear whatever the length
        elif kind == "<HEX>":
            out.append("0x[0-9a-fA-F]+")
        elif kind == "<PATH>":
            out.append("\\S+")
        elif kind == "<N>":
            out.append("\\d[\\d.]*")  # not \\d+(?:\\.\\d+)*: the lint refuses nested repeats
        else:
            out.append(re.escape(text))
    return "".join(out)


@dataclass
class Cluster:
    exception: str
    template: str
    failures: list[int] = field(default_factory=list)  # failure ids in the history
    messages: list[str] = field(default_factory=list)
    tests: list[str] = field(default_factory=list)


def _undiagnosed(store: Store) -> list[dict[str, Any]]:
    """Recorded failures no recorded diagnosis of their run explains."""
    explained = store.explained_tests()
    return [row for row in store.failure_history() if row["test"] not in explained.get(row["run_id"], set())]


def clusters(store: Store, *, limit: int = 20) -> list[Cluster]:
    """Undiagnosed failures of the history grouped by (exception, message template), largest first."""
    found: dict[tuple[str, str], Cluster] = {}
    for row in _undiagnosed(store):
        key = (row["exception"], template(row["message"]))
        cluster = found.setdefault(key, Cluster(*key))
        cluster.failures.append(row["id"])
        if row["message"] not in cluster.messages and len(cluster.messages) < 5:
            cluster.messages.append(row["message"])
        if row["test"] not in cluster.tests:
            cluster.tests.append(row["test"])
    return sorted(found.values(), key=lambda c: (-len(c.failures), c.exception, c.template))[:limit]


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words[:6]) or "rule"


def draft_rule(exception: str, messages: list[str], *, rule_id: str | None = None,
               neighbours: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A rule whose regex matches ``messages`` (they become its match examples); a ``no_match``
    example comes from the most similar neighbouring failure the regex does not match."""
    tmpl = template(messages[0])
    regex = _regex_for(messages[0])
    compiled = compile_rule_regex(regex)
    examples = [f"{exception}: {m}" if exception else m for m in messages if compiled.search(m)][:3] or \
        [f"{exception}: {messages[0]}"]
    no_match = ""
    ranked = sorted(neighbours or [], key=lambda n: -difflib.SequenceMatcher(None, n[1], messages[0]).ratio())
    for other_exception, other in ranked:
        if not compiled.search(other) or (exception and other_exception != exception):
            no_match = f"{other_exception}: {other}" if other_exception else other
            break
    if not no_match:
        no_match = f"{exception or 'RuntimeError'}: {PLACEHOLDER} a message this rule must not match"
    doc: dict[str, Any] = {
        "id": rule_id or _slug(f"{exception} {tmpl.replace('<', ' ').replace('>', ' ')}"),
        "title": f"{PLACEHOLDER}: what changed" + (
            f" ({', '.join('{' + g + '}' for g in compiled.groupindex)})" if compiled.groupindex else ""),
        "category": "known-pattern",
        "explanation": f"{PLACEHOLDER}: why this fails — the upstream change, the release it came with.",
        "source": f"https://{PLACEHOLDER.lower()}.invalid/changelog",
        "prior": 0.5,
        "match": {"regex": regex, **({"exception": [exception]} if exception else {})},
        "symptom": "direct",
        "remedies": [{"kind": "manual", "description": f"{PLACEHOLDER}: how to fix it", "risk": "medium"}],
        "examples": {"match": examples, "no_match": [no_match]},
    }
    return doc


def drafts(found: Sequence[Cluster]) -> list[dict[str, Any]]:
    """A draft rule per cluster (``kb suggest``), in order: the other clusters' messages are its neighbours,
    so its ``no_match`` example is a real recorded failure it must not explain."""
    return [draft_rule(cluster.exception, cluster.messages,
                       neighbours=[(c.exception, m) for c in found if c is not cluster for m in c.messages])
            for cluster in found]


def scaffold(store: Store | None, *, failure: int | None = None, rule_id: str | None = None,
             pack_name: str = "my-rules") -> str:
    """A new pack (YAML text) with one rule: from a stored failure's real text, or a blank one."""
    if failure is not None and store is not None:
        found = store.failure(failure)
        if found is None:
            raise RuleError(f"no failure #{failure} in {store.location} (kb suggest lists them)")
        exception, message = found
        shape = template(message)
        same: list[str] = []
        others: list[tuple[str, str]] = []
        for r in _undiagnosed(store):
            if template(r["message"]) != shape:
                others.append((r["exception"], r["message"]))
            elif r["exception"] == exception:
                same.append(r["message"])
        messages = list(dict.fromkeys([message, *same]))
        rule = draft_rule(exception, messages, rule_id=rule_id, neighbours=others)
    else:
        rule = draft_rule("ValueError", [f"{PLACEHOLDER} the failure message"], rule_id=rule_id or "my-rule")
    return dump_pack({"pack": pack_name, "version": "0.1.0",
                      "description": f"{PLACEHOLDER}: what these rules know and where it comes from",
                      "rules": [rule]})


# ---------------------------------------------------------------- lint

def lint_pack(pack: Pack, others: list[Pack] | None = None) -> list[str]:
    """Warnings beyond what makes a pack invalid (``parse_pack`` refuses that): placeholders left,
    captures nothing uses, examples too few, rules that shadow others, ids a built-in pack has.
    A remedy whose parameters its fix template would refuse is an error (RuleError), as in
    ``kb rules test``: the schema and ``kb.fix.codemods.check_params`` must agree."""
    _check_params(pack)
    warnings: list[str] = []
    rules = pack.doc.get("rules") or []
    text_fields = ("title", "explanation", "source")
    for i, rule in enumerate(rules):
        where = f"{pack.origin}: /rules/{i} ({rule['id']})"
        for key in text_fields:
            if PLACEHOLDER in str(rule.get(key, "")) or PLACEHOLDER.lower() + ".invalid" in str(rule.get(key, "")):
                warnings.append(f"{where}: {key} still has the {PLACEHOLDER} placeholder")
        if any(PLACEHOLDER in str(r.get("description", "")) for r in rule.get("remedies") or []):
            warnings.append(f"{where}: a remedy still has the {PLACEHOLDER} placeholder")
        groups = set(compile_rule_regex(rule["match"]["regex"]).groupindex)
        wanted = set(SYMPTOM_FIELDS.get(rule["symptom"], ()))
        texts = " ".join([rule["title"], rule["explanation"],
                          *(str(v) for r in rule.get("remedies") or [] for v in [r.get("description", ""),
                                                                                   *(r.get("params") or {}).values()])])
        unused = sorted(g for g in groups if g not in wanted and f"{{{g}}}" not in texts
                        and g not in ("module", "owner", "name", "top", "tail"))
        if unused:
            warnings.append(f"{where}: capture(s) {', '.join(unused)} are not used by the title, remedies or symptom")
        if len(rule["examples"]["match"]) < 2:
            warnings.append(f"{where}: one match example; real variants (other names, numbers) show the regex "
                            f"is not too narrow")
    theirs = [(p, r) for p in (others or []) if p.name != pack.name for r in p.doc.get("rules") or []]
    ids = {r["id"]: p for p, r in theirs}
    found: list[tuple[int, int, str]] = []
    for n, rule in enumerate(rules):
        if rule["id"] in ids:
            found.append((n, -1, f"{pack.origin}: rule {rule['id']} replaces the rule of that id in "
                                 f"{ids[rule['id']].origin}"))
    for a, b, pack_b in _shadowing(rules, [*((pack, r) for r in rules), *theirs]):
        if pack_b is not pack and rules[a]["id"] == b["id"]:
            continue  # replaces it (said above)
        found.append((a, 0, f"{pack.origin}: rule {rules[a]['id']} also matches every example of {b['id']} "
                            f"({pack_b.origin}): it shadows it"))
    warnings.extend(text for _a, _order, text in sorted(found, key=lambda f: (f[0], f[1])))
    return warnings


@dataclass
class Lint:
    """What ``kb rules lint`` found: the packs it linted and their warnings."""

    packs: list[Pack]
    warnings: list[str]
    #: where user packs live (named when there were none and the built-in packs were linted instead)
    user_dir: Path
    #: no packs were named and there are no user packs: the built-in ones were linted
    builtin_only: bool = False

    @property
    def rules(self) -> int:
        return sum(len(p.doc.get("rules") or []) for p in self.packs)


def lint_packs(store: Store, paths: Sequence[str | Path] = ()) -> Lint:
    """Lint the packs at ``paths`` — without paths the user packs beside ``store``, else the built-in
    ones — each against every other loaded pack (replaced ids, shadowed rules). An invalid pack is an
    error (RuleError), as in :func:`lint_pack`. The packs linted are schema-checked in full, the built-in
    ones that are only compared against are read trusted (:func:`all_packs`)."""
    from .store import user_packs

    named = [read_pack(p) for p in paths]  # first: a broken pack is refused before anything else is read
    user = user_packs(store.rules_dir)
    known = _parsed(user, check_builtin=not named and not user)
    mine = [p for p in known if not p.origin.startswith("builtin:")]
    targets = named or mine or known
    warnings = [w for pack in targets for w in lint_pack(pack, [k for k in known if k.origin != pack.origin])]
    return Lint(targets, warnings, store.rules_dir, builtin_only=not paths and not mine)


def _check_params(pack: Pack) -> None:
    for section in ("rules", "api_changes"):
        for i, item in enumerate(pack.doc.get(section) or []):
            for n, remedy in enumerate(item.get("remedies") or []):
                try:
                    check_remedy_params(remedy)
                except FixError as exc:
                    raise RuleError(f"{pack.origin}: /{section}/{i}/remedies/{n}/params: {exc}") from None


def _shadowing(mine: list[dict[str, Any]], candidates: list[tuple[Pack, dict[str, Any]]]
               ) -> Iterator[tuple[int, dict[str, Any], Pack]]:
    """(index in ``mine`` of rule a, rule b, b's pack) for each rule a that matches every match
    example of another rule b. The matcher's literal index picks, per example, the few rules whose
    regex can match it, so this costs about one regex per example instead of one per pair of
    rules (a 22,000-rule pack: seconds, not hours)."""
    index = Matcher(_index_rule(rule) for rule in mine)
    for pack_b, b in candidates:
        examples = [split_example(e)[1] for e in b["examples"]["match"]]
        if not examples:
            continue
        common: set[int] | None = None
        for example in examples:
            hits = {i for i in index.candidate_indexes(example) if _compatible(mine[i], b)
                    and index.search(i, example) is not None}
            common = hits if common is None else common & hits
            if not common:
                break
        for a in sorted(common or ()):
            if mine[a] is not b:
                yield a, b, pack_b


def _index_rule(doc: dict[str, Any]) -> Rule:
    """A pack's rule as the shadowing index holds it: any exception, any phase, the message field
    (``_compatible`` compares those), its own literal and case-sensitivity."""
    return replace(rule_from_row(rule_row("lint", doc)), exceptions=(), field="message", phases=())


def _compatible(a: dict[str, Any], b: dict[str, Any]) -> bool:
    exc_a = set(a["match"].get("exception") or [])
    exc_b = set(b["match"].get("exception") or [])
    if exc_a and exc_b and not exc_a & exc_b:
        return False
    return bool(a["match"].get("in", "message") == b["match"].get("in", "message"))


def import_pack(path: str | Path, store: Store) -> tuple[Path, bool]:
    """Add the pack at ``path`` to the user packs beside ``store`` (:attr:`~kb.store.Store.rules_dir`) and
    load it; returns where it went and whether that file is new. The pack is validated before it is copied,
    then loaded with the built-in and the other user packs: when it clashes with one of them (a rule id, a
    pack name) it is refused and the file it added removed, so the user packs are as they were."""
    target, created = _copy_pack(path, store.rules_dir)
    try:
        store.seed_builtin()  # what opening the store does: loads the user packs, refuses clashes
    except KbError:
        if created:
            target.unlink()
        raise
    return target, created


def _copy_pack(path: str | Path, rules_dir: Path) -> tuple[Path, bool]:
    """Validate a pack and copy it into the user packs folder (refusing to overwrite another);
    returns where it went and whether that file is new. What is validated is what is written (the
    file is read once), and only as a new regular file: never through a symlink or over anything else."""
    source = Path(path)
    data = read_pack_bytes(source)  # not read_pack: the bytes are needed again to write them
    pack = parse_pack(data, str(source))
    try:
        rules_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RuleError(f"{rules_dir}: cannot create: {exc.strerror or exc}") from None
    if not rules_dir.is_dir():
        raise RuleError(f"{rules_dir}: not a directory")
    target = rules_dir / f"{pack.name}.yaml"
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise RuleError(f"{target}: cannot read: {exc.strerror or exc}") from None
    if info is not None:
        if not stat.S_ISREG(info.st_mode):
            what = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a regular file"
            raise RuleError(f"{target}: {what} is in the way of pack {pack.name!r} (remove it first)")
        if target.read_bytes() != data:
            raise RuleError(f"{target}: a different pack named {pack.name!r} is already there (remove it first)")
        return target, False
    write_bytes_atomic(target, data)  # a temp file renamed over the name: never follows a link
    return target, True


# ---------------------------------------------------------------- impact

@dataclass
class Impact:
    failures: int  # failures replayed
    newly: list[dict[str, Any]] = field(default_factory=list)  # matched now, not before
    lost: list[dict[str, Any]] = field(default_factory=list)  # matched before, not now
    changed: list[dict[str, Any]] = field(default_factory=list)  # another cause now
    warnings: list[str] = field(default_factory=list)
    matched_by_rule: dict[str, int] = field(default_factory=dict)


def _explain(store: Store, history: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """failure id -> (cause key, title) of its top cause, per run (as kb diagnosed each run)."""
    engine = Engine(store.rules())
    by_run: dict[int, list[dict[str, Any]]] = {}
    for row in history:
        by_run.setdefault(row["run_id"], []).append(row)
    out: dict[int, tuple[str, str]] = {}
    for rows in by_run.values():
        facts = [FailureFact(r["id"], r["exception"], r["phase"], r["message"]) for r in rows]
        for cause in engine.run(facts, store).causes:  # most confident first
            for fid in cause.failures:
                out.setdefault(fid, (cause.key, cause.title))
    return out


def impact(store: Store, pack: Pack) -> Impact:
    """Replay the recorded failures with the knowledge as it is and with ``pack`` loaded on top
    (in a copy of the KB): what it newly explains, what it no longer explains, what changes."""
    history = store.failure_history()
    before = _explain(store, history)
    with tempfile.TemporaryDirectory(prefix="kb-impact-") as tmp:
        trial = SqliteStore(Path(tmp) / "kb.sqlite", seed=False)  # the knowledge only, whatever the backend
        try:
            copy_store(store, trial, history=False, builtin=True)
            trial.load_pack(pack)
            after = _explain(trial, history)
        finally:
            trial.close()
    result = Impact(len(history))
    by_id = {row["id"]: row for row in history}
    for fid in sorted(set(before) | set(after)):
        row = by_id[fid]
        entry = {"failure": fid, "run": row["run_id"], "test": row["test"],
                 "message": f"{row['exception']}: {row['message']}"[:200]}
        old, new = before.get(fid), after.get(fid)
        if old is None and new is not None:
            result.newly.append({**entry, "cause": new[1], "key": new[0]})
        elif new is None and old is not None:
            result.lost.append({**entry, "cause": old[1], "key": old[0]})
        elif old and new and old[0] != new[0]:
            result.changed.append({**entry, "before": old[1], "after": new[1], "key": new[0]})
    for rule in pack.doc.get("rules") or []:
        key = f"rule:{rule['id']}"
        hits = [by_id[e["failure"]] for e in [*result.newly, *result.changed] if e["key"] == key]
        result.matched_by_rule[rule["id"]] = len(hits)
        shapes = {(h["exception"], template(h["message"])) for h in hits}
        examples = len(rule["examples"]["match"])
        if len(shapes) > max(3, 2 * examples):
            result.warnings.append(
                f"rule {rule['id']} newly explains {len(hits)} failure(s) of {len(shapes)} different message "
                f"shapes, but its examples show {examples}: it is probably over-broad")
    return result


def rule_stats(store: Store) -> list[dict[str, Any]]:
    """Per rule: how often it was the diagnosis, what happened to its fixes, and its confidence then and now."""
    stats: dict[str, dict[str, Any]] = {}
    diagnosed, outcomes = store.rule_history()
    for rule, confidence in diagnosed:
        entry = stats.setdefault(rule, {"rule": rule, "hits": 0, "first": confidence, "last": confidence,
                                        "outcomes": Counter()})
        entry["hits"] += 1
        entry["last"] = confidence
    for rule, verdict in outcomes:
        entry = stats.setdefault(rule, {"rule": rule, "hits": 0, "first": None, "last": None, "outcomes": Counter()})
        entry["outcomes"][verdict] += 1
    return sorted(stats.values(), key=lambda e: (-e["hits"], e["rule"]))


def all_packs(store: Store, *, check_builtin: bool = False) -> list[Pack]:
    """The built-in packs and the user packs beside ``store``, parsed.

    User packs are schema-checked in full. The built-in packs ship with kb and its tests check them in full
    (tests/test_pack_lint.py), so they are read trusted — the shape the store needs and the lint, not the JSON
    Schema, which costs about a second per command — unless ``check_builtin`` (``kb rules lint`` of the
    built-in packs themselves, as kb's own pack authors run it); kb's generated packs are always trusted."""
    from .store import user_packs

    return _parsed(user_packs(store.rules_dir), check_builtin=check_builtin)


def _parsed(user: list[tuple[str, bytes]], *, check_builtin: bool) -> list[Pack]:
    """The built-in packs and the user packs ``user`` ((origin, bytes), as read), parsed as :func:`all_packs` says."""
    from .rulepack import builtin_packs, generated

    builtins = [parse_pack(data, origin, trusted=generated(origin) or not check_builtin)
                for origin, data in builtin_packs()]
    return builtins + [parse_pack(data, origin) for origin, data in user]


def find_pack(store: Store, name: str) -> Pack:
    """The loaded pack (built-in or user) called ``name``."""
    pack = next((p for p in all_packs(store) if p.name == name), None)
    if pack is None:
        raise RuleError(f"no pack named {name!r}")
    return pack


def user_pack_files(db: str | Path | None = None) -> list[str]:
    """The user packs of the knowledge base at ``db`` (the ``rules/`` folder beside it), without opening it."""
    from .store import kb_home, user_packs

    return [origin for origin, _ in user_packs(kb_home(db) / "rules")]
