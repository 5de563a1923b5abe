"""The knowledge base: SQLite through sqlite-utils (the only sqlite-utils importer).

Where: ``--db PATH`` / ``KB_DB``, else ``.kb/kb.sqlite`` in the nearest directory upward that
has a ``.kb`` folder (like git, up to the repository's root), else at the repository's root, else in
the current directory — created on first use (with a ``.gitignore`` in a new ``.kb``) and seeded
from the built-in packs, so ``kb diagnose report.xml`` needs no set-up.

Safety and concurrency: WAL journal, a busy timeout, foreign keys on; every write that must
be all-or-nothing runs in ``BEGIN IMMEDIATE`` so concurrent ``kb`` processes queue instead of
failing with "database is locked". Schema migrations are numbered by ``PRAGMA user_version``.
JSON columns are validated against ``schemas/*.schema.json`` before they are written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlite_utils

from . import __version__
from .engine import ApiRow, Distribution, Remedy, Rule, Symptom
from .errors import KbError, RuleError, StoreError
from .rulepack import Pack, builtin_packs, digest, generated, parse_pack
from .safeio import GITIGNORE, make_kb_dir
from .validate import validate

__all__ = ["Store", "find_db", "make_kb_dir", "GITIGNORE", "open_store", "rule_row", "rule_from_row", "SCHEMA_VERSION"]

BUSY_TIMEOUT_S = 60.0
KB_DIR = ".kb"
DB_NAME = "kb.sqlite"


#: what marks a repository's root (a file in a git worktree or submodule, a folder otherwise)
REPO_MARKERS = (".git", ".hg")


def find_db(start: Path | None = None) -> Path:
    """``KB_DB``, else the first ``.kb/kb.sqlite`` found walking up from ``start`` to the repository's root,
    else ``.kb/kb.sqlite`` at that root (the folder with ``.git``), else in ``start``: one KB per repository,
    whichever subfolder kb runs in, and never a KB of an unrelated folder above the repository."""
    env = os.environ.get("KB_DB")
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / KB_DIR).is_dir():
            if (folder / KB_DIR).is_symlink():  # kb's own writes would land outside the project
                raise StoreError(f"{folder / KB_DIR}: a symlink; kb keeps its knowledge base only in a real "
                                 f"directory inside the project (or name one with --db / KB_DB)")
            return folder / KB_DIR / DB_NAME
        if any((folder / marker).exists() for marker in REPO_MARKERS):
            return folder / KB_DIR / DB_NAME
    return here / KB_DIR / DB_NAME


# ---------------------------------------------------------------- migrations

def _m1_knowledge(db: sqlite_utils.Database) -> None:
    db["packs"].create({"name": str, "version": str, "origin": str, "sha256": str, "loaded_at": str}, pk="name")
    db["rules"].create({
        "id": str, "pack": str, "title": str, "category": str, "explanation": str, "source": str,
        "prior": float, "exceptions": str, "phases": str, "regex": str, "literal": str,
        "ignore_case": int, "field": str, "symptom": str, "set_fields": str, "remedies": str,
        "examples": str,
    }, pk="id", foreign_keys=[("pack", "packs", "name")])
    db["api_changes"].create({
        "id": str, "pack": str, "package": str, "module": str, "name": str, "tail": str,
        "param": str, "kind": str, "replacement": str, "deprecated_in": str, "removed_in": str,
        "source": str, "note": str, "remedies": str,
    }, pk="id", foreign_keys=[("pack", "packs", "name")])
    db["api_changes"].create_index(["module", "name"])
    db["api_changes"].create_index(["tail", "param"])
    db["distributions"].create({
        "import_name": str, "pack": str, "distribution": str, "source": str, "note": str,
    }, pk="import_name", foreign_keys=[("pack", "packs", "name")])


def _m2_history(db: sqlite_utils.Database) -> None:
    db["runs"].create({
        "id": int, "created_at": str, "kb_version": str, "sources": str, "format": str,
        "tests": int, "passed": int, "failures": int, "errors": int, "skipped": int,
        "environment": str, "diagnosed": int, "undiagnosed": int,
    }, pk="id")
    db["failures"].create({
        "id": int, "run_id": int, "seq": int, "test": str, "phase": str, "exception": str,
        "message": str, "file": str, "line": int, "source": str,
    }, pk="id", foreign_keys=[("run_id", "runs", "id")])
    db["failures"].create_index(["run_id"])
    # traceback frames as rows, not a JSON column: typed, queryable (datasette), cheap to write
    db["frames"].create({"failure_id": int, "seq": int, "file": str, "line": int, "function": str},
                        pk=("failure_id", "seq"), foreign_keys=[("failure_id", "failures", "id")])
    db["diagnoses"].create({
        "id": int, "run_id": int, "rank": int, "cause_key": str, "rule": str, "api_change": str,
        "category": str, "title": str, "confidence": float, "tests": int, "doc": str,
    }, pk="id", foreign_keys=[("run_id", "runs", "id")])
    db["diagnoses"].create_index(["run_id"])
    db["diagnoses"].create_index(["cause_key"])
    # written by `kb fix`; read here so recorded outcomes move confidence (DESIGN §4)
    db["fix_outcomes"].create({
        "id": int, "created_at": str, "cause_key": str, "rule": str, "verdict": str, "run_id": int,
        "doc": str,
    }, pk="id")
    db["fix_outcomes"].create_index(["cause_key"])


def _m3_rule_since(db: sqlite_utils.Database) -> None:
    db["rules"].add_column("since", str)


def _m4_commands(db: sqlite_utils.Database) -> None:
    """Runs kb started itself (``kb run``, ``kb isolate``): the command, its status, what went wrong;
    and the orchestrator's verdicts per test (flaky with its rate, order-dependent with polluters)."""
    for column, kind in (("command", str), ("exit_status", int), ("problem", str), ("seconds", float)):
        db["runs"].add_column(column, kind)
    db["verdicts"].create({
        "id": int, "run_id": int, "test": str, "verdict": str, "failed": int, "runs": int, "doc": str,
    }, pk="id", foreign_keys=[("run_id", "runs", "id")])
    db["verdicts"].create_index(["test"])


def _m5_layers(db: sqlite_utils.Database) -> None:
    """Knowledge in layers (DESIGN §10): which layer a pack — and so each of its rows — belongs to."""
    db["packs"].add_column("layer", str, not_null_default="curated")
    db["api_changes"].add_column("layer", str, not_null_default="curated")
    db["api_changes"].add_column("change", str, not_null_default="")
    db["api_changes"].create_index(["tail"])
    db["api_changes"].create_index(["name"])


def _m6_orders(db: sqlite_utils.Database) -> None:
    """The order a recorded run executed its tests in (for ``kb isolate --run``), where it ran, the
    pytest-randomly seed and, under xdist, each test's worker."""
    db["run_orders"].create({"run_id": int, "root": str, "seed": int, "tests": str, "workers": str}, pk="run_id",
                            foreign_keys=[("run_id", "runs", "id")])
    db["failures"].create_index(["test"], if_not_exists=True)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_knowledge, _m2_history, _m3_rule_since,
                                                             _m4_commands, _m5_layers, _m6_orders]
SCHEMA_VERSION = len(MIGRATIONS)


# ---------------------------------------------------------------- conversions

def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _remedies(text: str | None) -> tuple[Remedy, ...]:
    return tuple(Remedy.from_dict(d) for d in json.loads(text or "[]"))


def rule_row(pack: str, doc: dict[str, Any]) -> dict[str, Any]:
    from .engine.matcher import required_literal

    match = doc["match"]
    ignore_case = bool(match.get("ignore_case", False))
    literal = match.get("literal") or required_literal(match["regex"], ignore_case)
    return {
        "id": doc["id"], "pack": pack, "title": doc["title"], "category": doc.get("category", ""),
        "explanation": doc["explanation"], "source": doc["source"], "prior": float(doc["prior"]),
        "exceptions": _j(match.get("exception", [])), "phases": _j(match.get("phase", [])),
        "regex": match["regex"], "literal": literal.lower() if literal else None,
        "ignore_case": int(ignore_case), "field": match.get("in", "message"), "symptom": doc["symptom"],
        "set_fields": _j(doc.get("set", {})), "remedies": _j(doc.get("remedies", [])),
        "examples": _j(doc["examples"]), "since": _j(doc.get("since") or {}),
    }


def _api_row(pack: str, doc: dict[str, Any], layer: str = "curated") -> dict[str, Any]:
    name = doc.get("name", "")
    return {
        "id": doc["id"], "pack": pack, "layer": layer, "package": doc["package"], "module": doc["module"], "name": name,
        "tail": name.rsplit(".", 1)[-1] if name else "", "param": doc.get("param", ""), "change": doc.get("change", ""),
        "kind": doc["kind"], "replacement": doc.get("replacement", ""),
        "deprecated_in": doc.get("deprecated_in", ""), "removed_in": doc.get("removed_in", ""),
        "source": doc["source"], "note": doc.get("note", ""), "remedies": _j(doc.get("remedies", [])),
    }


def rule_from_row(row: dict[str, Any]) -> Rule:
    return Rule(
        id=row["id"], title=row["title"], explanation=row["explanation"], source=row["source"],
        prior=row["prior"], regex=row["regex"], symptom=row["symptom"], category=row["category"] or "",
        exceptions=tuple(json.loads(row["exceptions"])), phases=tuple(json.loads(row["phases"])),
        literal=row["literal"], ignore_case=bool(row["ignore_case"]), field=row["field"],
        set=tuple(sorted(json.loads(row["set_fields"]).items())), remedies=_remedies(row["remedies"]),
        since=_since(row.get("since")),
    )


def _since(text: str | None) -> tuple[str, str] | None:
    found = json.loads(text or "{}")
    return (found["package"], found["version"]) if found else None


def _api_doc(row: dict[str, Any]) -> dict[str, Any]:
    """A stored API-change row back in the pack schema's shape (empty optional fields left out)."""
    doc = {key: row[key] for key in ("id", "package", "module", "name", "kind", "source")}
    for key in ("param", "change", "replacement", "deprecated_in", "removed_in", "note"):
        if row.get(key):
            doc[key] = row[key]
    remedies = json.loads(row.get("remedies") or "[]")
    if remedies:
        doc["remedies"] = remedies
    return doc


def _api_from_row(row: dict[str, Any]) -> ApiRow:
    return ApiRow(
        id=row["id"], package=row["package"], module=row["module"], name=row["name"], kind=row["kind"],
        source=row["source"], param=row["param"], replacement=row["replacement"],
        deprecated_in=row["deprecated_in"], removed_in=row["removed_in"], note=row["note"],
        remedies=_remedies(row["remedies"]), layer=row.get("layer") or "curated", change=row.get("change") or "",
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- the store

class Store:
    """An open knowledge base. Implements the engine's ``Knowledge`` protocol."""

    def __init__(self, path: str | Path, *, seed: bool = True, strict: bool = True) -> None:
        """Open (create, migrate, seed) the KB at ``path``. ``strict``: refuse a KB whose tables are not all
        there (``kb db check`` opens with ``strict=False`` to list what is wrong instead)."""
        self.path = Path(path)
        OPENED.append(self.path)
        try:
            if self.path.parent.name == KB_DIR and not self.path.exists():
                make_kb_dir(self.path.parent)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the knowledge base: {exc}") from None
        self.db = sqlite_utils.Database(conn)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._enable_wal()
            self.migrate()
            missing = self.missing_tables()
            if missing and strict:
                raise StoreError(f"{self.path}: the knowledge base is damaged: table(s) {', '.join(missing)} are "
                                 f"missing (kb db check lists what is wrong; delete the file to start afresh)")
            if seed and not missing:
                self.seed_builtin()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a usable kb database: {exc}") from None

    # -- set-up

    def _enable_wal(self) -> None:
        mode = self.db.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() == "wal":
            return
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.db.enable_wal()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """One all-or-nothing write; ``BEGIN IMMEDIATE`` takes the write lock up front."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    @property
    def user_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        if self.user_version == SCHEMA_VERSION:
            return
        with self.write() as db:
            current = self.user_version  # re-read under the lock: another process may have migrated
            if current > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: made by a newer kb (schema {current} > {SCHEMA_VERSION})")
            for step in MIGRATIONS[current:]:
                step(db)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def rules_dir(self) -> Path:
        """Where user packs live: ``rules/`` beside the knowledge base (``.kb/rules/``)."""
        return self.path.parent / "rules"

    def seed_builtin(self) -> None:
        """Load the built-in packs, then the user packs of :attr:`rules_dir`, when any of them is new,
        changed or gone (by sha256). User packs come last and win: a user rule with a built-in
        rule's id replaces it; two user packs may not define the same id."""
        wanted = [*builtin_packs(), *user_packs(self.rules_dir)]
        signature = {origin: digest(data) for origin, data in wanted}
        if self._loaded() == signature:
            return
        packs = [parse_pack(data, origin, trusted=generated(origin)) for origin, data in wanted]
        builtin = [p for p in packs if p.origin.startswith("builtin:")]
        user = [p for p in packs if not p.origin.startswith("builtin:")]
        _check_unique_ids(builtin)
        _check_unique_ids(user)
        names = {p.name: p.origin for p in builtin}
        for pack in user:
            if pack.name in names:
                raise RuleError(f"{pack.origin}: /pack: the name {pack.name!r} is taken by {names[pack.name]}")
            names[pack.name] = pack.origin
        with self.write() as db:
            if self._loaded() == signature:  # another process loaded them meanwhile
                return
            managed = [row["name"] for row in db["packs"].rows if self._managed(row["origin"])]
            for name in managed:
                for table in ("rules", "api_changes", "distributions"):
                    db.execute(f"DELETE FROM {table} WHERE pack = ?", [name])
                db.execute("DELETE FROM packs WHERE name = ?", [name])
            for pack in packs:
                self._load(pack)

    def _managed(self, origin: str) -> bool:
        """Packs the store loads itself: built-in ones and those in :attr:`rules_dir` (a pack loaded
        through :meth:`load_pack` from elsewhere stays until replaced)."""
        return origin.startswith("builtin:") or Path(origin).parent == self.rules_dir

    def _loaded(self) -> dict[str, str]:
        return {row["origin"]: row["sha256"] for row in self.db["packs"].rows if self._managed(row["origin"])}

    def pack_rows(self, pack: str) -> list[dict[str, Any]]:
        """The API-change rows a pack holds, as pack documents (to merge newly learned rows into)."""
        return [_api_doc(row) for row in self.db["api_changes"].rows_where("pack = ?", [pack], order_by="id")]

    def load_pack(self, pack: Pack) -> None:
        """Replace whatever a pack of that name held with ``pack`` (one transaction)."""
        with self.write():
            self._load(pack)

    def _load(self, pack: Pack) -> None:
        db = self.db
        for table in ("rules", "api_changes", "distributions"):
            db.execute(f"DELETE FROM {table} WHERE pack = ?", [pack.name])
        layer = str(pack.doc.get("layer", "curated"))
        db["packs"].upsert({"name": pack.name, "version": pack.version, "origin": pack.origin,
                            "sha256": pack.sha256, "loaded_at": _now(), "layer": layer}, pk="name")
        # a Pack comes from parse_pack, which validated the whole document (kb's own generated packs:
        # when they were built, and by kb rules test)
        rules = pack.doc.get("rules") or []
        db["rules"].insert_all((rule_row(pack.name, d) for d in rules), pk="id", replace=True)
        changes = pack.doc.get("api_changes") or []
        db["api_changes"].insert_all((_api_row(pack.name, d, layer) for d in changes), pk="id", replace=True)
        db["distributions"].insert_all(({
            "import_name": d["import"], "pack": pack.name, "distribution": d["distribution"],
            "source": d.get("source", ""), "note": d.get("note", ""),
        } for d in pack.doc.get("distributions") or []), pk="import_name", replace=True)

    # -- knowledge (the engine's Knowledge protocol)

    def rules(self) -> list[Rule]:
        return [rule_from_row(row) for row in self.db["rules"].rows_where(order_by="id")]

    def api_rows(self, symptoms: Sequence[Symptom]) -> list[list[ApiRow]]:
        """Candidate rows for each symptom (aligned with ``symptoms``), by exact keys only.

        One indexed query per chunk of keys rather than one per symptom: a run with thousands
        of distinct symptoms costs a handful of queries.
        """
        by_key: dict[tuple[str, str, str], list[ApiRow]] = {}
        wanted: dict[str, set[tuple[str, str]]] = {"name": set(), "call": set(), "module": set(), "tail": set(),
                                                   "attr": set()}
        keys: list[list[tuple[str, str, str]]] = []
        for s in symptoms:
            f = dict(s.fields)
            mine: list[tuple[str, str, str]] = []
            if s.kind in ("missing_name", "missing_attribute", "changed_behaviour"):
                mine.append(("name", f["module"], f["name"]))
                if s.kind == "missing_attribute" and f["module"] == "builtins" and "." in f["name"]:
                    mine.append(("attr", f["name"], ""))  # 'Series' object has no attribute 'iteritems
            elif s.kind in ("unexpected_kwarg", "missing_argument"):
                mine.append(("call", f["tail"], f["param"]))
            elif s.kind == "bad_call":
                mine.append(("tail", f["tail"], ""))
            elif s.kind == "missing_module":
                mine.extend({("module", f["module"], ""), ("module", f["top"], "")})
            for kind, a, b in mine:
                wanted[kind].add((a, b))
            keys.append(mine)
        queries = {
            "name": ("module, name", "module", "name", ""),
            "call": ("tail, param", "tail", "param", ""),
            "module": ("module, name", "module", "name", ""),
            "tail": ("tail, change", "tail", "change", ""),
            "attr": ("name, ''", "name", "name", ""),
        }
        for kind, pairs in wanted.items():
            columns, first, second, _ = queries[kind]
            pairs_list = sorted((a, "param-keyword-only" if kind == "tail" else "" if kind == "module" else b)
                                for a, b in pairs)
            for start in range(0, len(pairs_list), 250):
                chunk = pairs_list[start:start + 250]
                values = ",".join("(?, ?)" for _ in chunk)
                params = [v for pair in chunk for v in pair]
                cursor = self.db.execute(f"SELECT * FROM api_changes WHERE ({columns}) IN (VALUES {values})", params)
                names = [d[0] for d in cursor.description]
                for raw in cursor.fetchall():
                    row = dict(zip(names, raw, strict=True))
                    key = (kind, row[first], "" if kind in ("module", "tail", "attr") else row[second])
                    by_key.setdefault(key, []).append(_api_from_row(row))
        return [[row for key in mine for row in by_key.get(key, [])] for mine in keys]

    def distributions(self, import_names: Iterable[str]) -> list[Distribution]:
        names = sorted(set(import_names))
        if not names:
            return []
        marks = ",".join("?" * len(names))
        rows = self.db["distributions"].rows_where(f"import_name IN ({marks})", names)
        return [Distribution(r["import_name"], r["distribution"], r["source"], r["note"]) for r in rows]

    def learned(self, owner: str) -> tuple[int, int]:
        row = self.db.execute(
            "SELECT SUM(verdict = 'verified'), SUM(verdict IN ('failed', 'rolled back')) "
            "FROM fix_outcomes WHERE cause_key = ?", [owner]).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    def all_api_rows(self) -> list[ApiRow]:
        """Every API-change row (for a read-only snapshot of the knowledge, ``kb batch``)."""
        return [_api_from_row(row) for row in self.db["api_changes"].rows_where(order_by="id")]

    def all_distributions(self) -> list[Distribution]:
        return [Distribution(r["import_name"], r["distribution"], r["source"], r["note"])
                for r in self.db["distributions"].rows_where(order_by="import_name")]

    def all_learned(self) -> dict[str, tuple[int, int]]:
        """``learned(owner)`` for every owner with a recorded outcome."""
        rows = self.db.execute(
            "SELECT cause_key, SUM(CASE WHEN verdict = 'verified' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN verdict IN ('failed', 'rolled back') THEN 1 ELSE 0 END) "
            "FROM fix_outcomes GROUP BY cause_key").fetchall()
        return {key: (int(v or 0), int(f or 0)) for key, v, f in rows}

    def counts(self) -> dict[str, int]:
        return {t: self.db[t].count for t in
                ("packs", "rules", "api_changes", "distributions", "runs", "failures", "frames", "diagnoses",
                 "fix_outcomes")}

    # -- history

    def record_run(self, run_doc: dict[str, Any], failures: Sequence[dict[str, Any]],
                   diagnoses: Sequence[dict[str, Any]]) -> int:
        """Record a diagnosed run, its failures (with their frames) and its root causes; return the run id.

        ``failures`` are dicts with test, phase, exception, message, file, line, source and
        ``frames`` (a list of (file, line, function)). One transaction: all of it or nothing.
        """
        run_row = {"created_at": _now(), "kb_version": __version__, **run_doc}
        validate({"sources": run_row.get("sources", []), "environment": run_row.get("environment", {})},
                 "run", what="run", error=StoreError)
        for i, cause in enumerate(diagnoses):
            validate(cause, "diagnosis", "root_cause", what=f"diagnosis {i}", error=StoreError)
        run_row["sources"] = _j(run_row.get("sources", []))
        run_row["environment"] = _j(run_row.get("environment", {}))
        if "command" in run_row:
            run_row["command"] = _j(run_row["command"])
        with self.write() as db:
            run_id = int(db["runs"].insert(run_row).last_pk)
            first = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM failures").fetchone()[0]) + 1
            db.conn.executemany(
                "INSERT INTO failures (id, run_id, seq, test, phase, exception, message, file, line, source) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((first + seq, run_id, seq, f["test"], f["phase"], f["exception"], f["message"], f.get("file"),
                  f.get("line"), f.get("source", "")) for seq, f in enumerate(failures)))
            db.conn.executemany(
                "INSERT INTO frames (failure_id, seq, file, line, function) VALUES (?, ?, ?, ?, ?)",
                ((first + seq, n, file, line, function)
                 for seq, f in enumerate(failures) for n, (file, line, function) in enumerate(f.get("frames", []))))
            db["diagnoses"].insert_all(({
                "run_id": run_id, "rank": rank, "cause_key": cause.get("key", ""), "rule": cause["rule"],
                "api_change": cause.get("api_change"), "category": cause["category"], "title": cause["title"],
                "confidence": cause["confidence"], "tests": len(cause["tests"]), "doc": _j(cause),
            } for rank, cause in enumerate(diagnoses)))
        return run_id

    def record_verdicts(self, run_id: int | None, verdicts: Sequence[dict[str, Any]]) -> None:
        """Record the orchestrator's verdicts (``{"test", "verdict", "failed", "runs", ...}``)."""
        with self.write() as db:
            db["verdicts"].insert_all(({
                "run_id": run_id, "test": v["test"], "verdict": v["verdict"], "failed": v.get("failed", 0),
                "runs": v.get("runs", 0), "doc": _j(v)} for v in verdicts))

    def record_order(self, run_id: int, root: str, tests: Sequence[str], seed: int | None = None,
                     workers: dict[str, str] | None = None) -> None:
        """Record the order run ``run_id`` executed its tests in (``root``: the folder it ran in)."""
        with self.write() as db:
            db["run_orders"].insert({"run_id": run_id, "root": root, "seed": seed, "tests": _j(list(tests)),
                                     "workers": _j(workers or {})}, replace=True)

    def run_order(self, run_id: int) -> dict[str, Any] | None:
        """``{"run_id", "root", "seed", "tests", "workers"}`` of a recorded run, or None when kb has no order."""
        row = self.db.execute("SELECT run_id, root, seed, tests, workers FROM run_orders WHERE run_id = ?",
                              [run_id]).fetchone()
        if row is None:
            return None
        return {"run_id": row[0], "root": row[1], "seed": row[2], "tests": json.loads(row[3]),
                "workers": json.loads(row[4] or "{}")}

    def last_failing_order(self, test: str, root: str) -> int | None:
        """The last recorded run in ``root`` in which ``test`` failed and whose order kb knows (``test`` may be
        the end of a node id, as ``kb isolate`` takes it)."""
        suffix = ("/" if "::" in test else "::") + test
        row = self.db.execute(
            "SELECT o.run_id FROM run_orders o JOIN failures f ON f.run_id = o.run_id "
            "WHERE (f.test = ? OR substr(f.test, -length(?)) = ?) AND o.root = ? ORDER BY o.run_id DESC LIMIT 1",
            [test, suffix, suffix, root]).fetchone()
        return None if row is None else int(row[0])

    def record_outcome(self, cause_key: str, rule: str, verdict: str, doc: dict[str, Any]) -> int:
        """Record what happened to a fix (verified / plausible / failed / rolled back / undone)."""
        with self.write() as db:
            return int(db["fix_outcomes"].insert({
                "created_at": _now(), "cause_key": cause_key, "rule": rule, "verdict": verdict,
                "run_id": None, "doc": _j(doc)}).last_pk)

    def last_report(self) -> dict[str, Any]:
        """The root causes of the most recent recorded run, in the report's shape (for ``kb fix --last``)."""
        row = self.db.execute("SELECT id, sources FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            raise StoreError(f"{self.path}: no recorded run yet (run kb diagnose first)")
        docs = [json.loads(r[0]) for r in self.db.execute(
            "SELECT doc FROM diagnoses WHERE run_id = ? ORDER BY rank", [row[0]]).fetchall()]
        return {"run_id": row[0], "sources": json.loads(row[1]), "root_causes": docs}

    def missing_tables(self) -> list[str]:
        """Tables the schema has that this file lacks (a table dropped by hand would otherwise be re-created
        by the first insert, without its keys)."""
        if self.user_version != SCHEMA_VERSION:
            return []
        have = set(self.db.table_names())
        return [name for name in _schema_tables() if name not in have]

    def check(self) -> list[str]:
        """Problems found in this KB (empty: healthy): integrity, schema version, missing tables, documents.
        A damaged file gives its problems as a list, not an exception."""
        try:
            return self._check()
        except sqlite3.DatabaseError as exc:
            return [f"the file cannot be read to the end: {exc}"]

    def _check(self) -> list[str]:
        problems: list[str] = [f"table {name} is missing" for name in self.missing_tables()]
        if problems:
            return problems
        result = self.db.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            problems.append(f"integrity_check: {result}")
        for row in self.db.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"foreign key violation in {row[0]} rowid {row[1]} → {row[2]}")
        if self.user_version != SCHEMA_VERSION:
            problems.append(f"schema version {self.user_version}, expected {SCHEMA_VERSION}")
        for row in self.db["rules"].rows:
            doc = _rule_doc(row)
            try:
                validate(doc, "rule-pack", "rule", what=f"rule {row['id']}", error=StoreError)
            except KbError as exc:
                problems.append(str(exc))
        for row in self.db["runs"].rows:
            try:
                validate({"sources": json.loads(row["sources"]), "environment": json.loads(row["environment"])},
                         "run", what=f"run {row['id']}", error=StoreError)
            except (KbError, ValueError) as exc:
                problems.append(str(exc))
        for row in self.db["diagnoses"].rows:
            try:
                validate(json.loads(row["doc"]), "diagnosis", "root_cause", what=f"diagnosis {row['id']}",
                         error=StoreError)
            except (KbError, ValueError) as exc:
                problems.append(str(exc))
        return problems

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()


def _rule_doc(row: dict[str, Any]) -> dict[str, Any]:
    match: dict[str, Any] = {"regex": row["regex"]}
    for key, column in (("exception", "exceptions"), ("phase", "phases")):
        value = json.loads(row[column])
        if value:
            match[key] = value
    if row["ignore_case"]:
        match["ignore_case"] = True
    if row["field"] != "message":
        match["in"] = row["field"]
    doc: dict[str, Any] = {
        "id": row["id"], "title": row["title"], "explanation": row["explanation"], "source": row["source"],
        "prior": row["prior"], "match": match, "symptom": row["symptom"], "examples": json.loads(row["examples"]),
    }
    if row["category"]:
        doc["category"] = row["category"]
    if json.loads(row["set_fields"]):
        doc["set"] = json.loads(row["set_fields"])
    if json.loads(row["remedies"]):
        doc["remedies"] = json.loads(row["remedies"])
    if json.loads(row.get("since") or "{}"):
        doc["since"] = json.loads(row["since"])
    return doc


def _check_unique_ids(packs: Sequence[Pack]) -> None:
    """Rule and row ids are keys across packs: a clash would silently replace knowledge."""
    for section in ("rules", "api_changes"):
        seen: dict[str, str] = {}
        for pack in packs:
            for i, item in enumerate(pack.doc.get(section) or []):
                where = f"{pack.origin}: /{section}/{i}/id"
                if item["id"] in seen:
                    raise RuleError(f"{where}: id {item['id']!r} is already defined in {seen[item['id']]}")
                seen[item["id"]] = where


def user_packs(folder: Path) -> list[tuple[str, bytes]]:
    """(path, bytes) of every ``*.yaml`` / ``*.yml`` pack in ``folder``, sorted by name. Anything there that is
    not a regular file (a symlink, a FIFO) is refused, naming it: knowledge is never skipped silently."""
    if not folder.is_dir():
        return []
    if folder.is_symlink():
        raise RuleError(f"{folder}: a symlink; user packs are read only from a real directory in the project")
    found = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if path.is_symlink() or not path.is_file():
            raise RuleError(f"{path}: not a regular file (a symlink or a device); remove it or put the pack there")
        try:
            found.append((str(path), path.read_bytes()))
        except OSError as exc:
            raise RuleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return found


def open_store(db: str | Path | None = None, *, strict: bool = True) -> Store:
    return Store(Path(db) if db else find_db(), strict=strict)


#: every KB file opened in this process (an unreadable page may surface later: the CLI names the file)
OPENED: list[Path] = []


@lru_cache(maxsize=1)
def _schema_tables() -> tuple[str, ...]:
    """The tables every migration together creates (read from a scratch in-memory database)."""
    scratch = sqlite_utils.Database(memory=True)
    for migration in MIGRATIONS:
        migration(scratch)
    return tuple(sorted(scratch.table_names()))
