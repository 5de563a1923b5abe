"""The knowledge base's interface and everything both databases share (:mod:`kb.store` is where kb opens
one): :class:`Store` with every query, document check and the learning read written once in SQL SQLite
and PostgreSQL both accept; the schema as data (:data:`MIGRATIONS`); where the project's KB and ``.kb``
folder are; :func:`copy_store`. :mod:`kb.store` adds the SQLite implementation and :func:`kb.store.open_store`,
:mod:`kb.pgstore` the PostgreSQL one; both import this module, which imports neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .engine import ApiRow, Distribution, Remedy, Rule, Symptom
from .errors import KbError, RuleError, StoreError
from .packs import builtin_packs, digest
from .safeio import CACHE_DIR, GITIGNORE, REPO_MARKERS, make_kb_dir

if TYPE_CHECKING:

    from .rulepack import Pack

__all__ = ["Store", "find_db", "find_home", "make_kb_dir", "GITIGNORE", "rule_row", "rule_from_row", "SCHEMA_VERSION",
           "MIGRATIONS", "is_url", "copy_store", "user_packs", "DAMAGE", "OPENED", "Step", "Table", "Column", "Index"]

BUSY_TIMEOUT_S = 60.0
KB_DIR = ".kb"
DB_NAME = "kb.sqlite"


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
PG_SCHEMES = ("postgresql", "postgres")


def is_url(location: str | Path) -> bool:
    """A database URL (``scheme://...``) rather than a file path."""
    return isinstance(location, str) and bool(_URL.match(location))


def find_home(start: Path | None = None) -> Path:
    """The project's ``.kb`` folder: the first found walking up from ``start`` to the repository's root, else
    the one at that root (the folder with ``.git``), else in ``start`` — one per repository, whichever
    subfolder kb runs in, and never one of an unrelated folder above the repository. ``KB_HOME`` names it
    outright (for a shared database used outside a project, or tests)."""
    if os.environ.get("KB_HOME"):
        return Path(os.environ["KB_HOME"])
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / KB_DIR).is_dir():
            if (folder / KB_DIR).is_symlink():  # kb's own writes would land outside the project
                raise StoreError(f"{folder / KB_DIR}: a symlink; kb keeps its knowledge base only in a real "
                                 f"directory inside the project (or name one with --db / KB_DB)")
            return folder / KB_DIR
        if any((folder / marker).exists() for marker in REPO_MARKERS):
            return folder / KB_DIR
    return here / KB_DIR


def find_db(start: Path | None = None) -> str | Path:
    """``KB_DB`` (a path or a database URL), else ``kb.sqlite`` in the project's ``.kb`` folder (:func:`find_home`)."""
    env = os.environ.get("KB_DB")
    if env:
        return env if is_url(env) else Path(env)
    return find_home(start) / DB_NAME


# ---------------------------------------------------------------- the schema, as data

@dataclass(frozen=True)
class Table:
    """A migration step: create a table (``pk``: its key; ``foreign_keys``: (column, table, column))."""

    name: str
    columns: dict[str, type]
    pk: str | tuple[str, ...]
    foreign_keys: tuple[tuple[str, str, str], ...] = ()

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.pk if isinstance(self.pk, tuple) else (self.pk,)


@dataclass(frozen=True)
class Column:
    """A migration step: add a column (``default``: NOT NULL with this default; ``fill_uid``: give every
    existing row a fresh unique id)."""

    table: str
    name: str
    type: type
    default: str | None = None
    fill_uid: bool = False


@dataclass(frozen=True)
class Index:
    table: str
    columns: tuple[str, ...]
    unique: bool = False

    @property
    def name(self) -> str:
        return f"idx_{self.table}_{'_'.join(self.columns)}"


Step = Table | Column | Index

#: the schema's history: one tuple of steps per version (a KB at version n has run the first n)
MIGRATIONS: list[tuple[Step, ...]] = [
    # 1: knowledge
    (Table("packs", {"name": str, "version": str, "origin": str, "sha256": str, "loaded_at": str}, "name"),
     Table("rules", {
         "id": str, "pack": str, "title": str, "category": str, "explanation": str, "source": str,
         "prior": float, "exceptions": str, "phases": str, "regex": str, "literal": str,
         "ignore_case": int, "field": str, "symptom": str, "set_fields": str, "remedies": str,
         "examples": str}, "id", (("pack", "packs", "name"),)),
     Table("api_changes", {
         "id": str, "pack": str, "package": str, "module": str, "name": str, "tail": str,
         "param": str, "kind": str, "replacement": str, "deprecated_in": str, "removed_in": str,
         "source": str, "note": str, "remedies": str}, "id", (("pack", "packs", "name"),)),
     Index("api_changes", ("module", "name")),
     Index("api_changes", ("tail", "param")),
     Table("distributions", {"import_name": str, "pack": str, "distribution": str, "source": str, "note": str},
           "import_name", (("pack", "packs", "name"),))),
    # 2: history. Traceback frames as rows, not a JSON column: typed, queryable (datasette), cheap to write.
    # fix_outcomes is written by `kb fix` and read here so recorded outcomes move confidence (DESIGN §4).
    (Table("runs", {
        "id": int, "created_at": str, "kb_version": str, "sources": str, "format": str,
        "tests": int, "passed": int, "failures": int, "errors": int, "skipped": int,
        "environment": str, "diagnosed": int, "undiagnosed": int}, "id"),
     Table("failures", {
         "id": int, "run_id": int, "seq": int, "test": str, "phase": str, "exception": str,
         "message": str, "file": str, "line": int, "source": str}, "id", (("run_id", "runs", "id"),)),
     Index("failures", ("run_id",)),
     Table("frames", {"failure_id": int, "seq": int, "file": str, "line": int, "function": str},
           ("failure_id", "seq"), (("failure_id", "failures", "id"),)),
     Table("diagnoses", {
         "id": int, "run_id": int, "rank": int, "cause_key": str, "rule": str, "api_change": str,
         "category": str, "title": str, "confidence": float, "tests": int, "doc": str}, "id",
         (("run_id", "runs", "id"),)),
     Index("diagnoses", ("run_id",)),
     Index("diagnoses", ("cause_key",)),
     Table("fix_outcomes", {
         "id": int, "created_at": str, "cause_key": str, "rule": str, "verdict": str, "run_id": int,
         "doc": str}, "id"),
     Index("fix_outcomes", ("cause_key",))),
    # 3: the package version a rule applies from
    (Column("rules", "since", str),),
    # 4: runs kb started itself (`kb run`, `kb isolate`): the command, its status, what went wrong; and the
    # orchestrator's verdicts per test (flaky with its rate, order-dependent with polluters)
    (Column("runs", "command", str), Column("runs", "exit_status", int), Column("runs", "problem", str),
     Column("runs", "seconds", float),
     Table("verdicts", {"id": int, "run_id": int, "test": str, "verdict": str, "failed": int, "runs": int,
                        "doc": str}, "id", (("run_id", "runs", "id"),)),
     Index("verdicts", ("test",))),
    # 5: knowledge in layers (DESIGN §10): which layer a pack — and so each of its rows — belongs to
    (Column("packs", "layer", str, default="curated"),
     Column("api_changes", "layer", str, default="curated"),
     Column("api_changes", "change", str, default=""),
     Index("api_changes", ("tail",)),
     Index("api_changes", ("name",))),
    # 6: the order a recorded run executed its tests in (for `kb isolate --run`), where it ran, the
    # pytest-randomly seed and, under xdist, each test's worker
    (Table("run_orders", {"run_id": int, "root": str, "seed": int, "tests": str, "workers": str}, "run_id",
           (("run_id", "runs", "id"),)),
     Index("failures", ("test",))),
    # 7: a unique id for every run, fix outcome and verdict, so `kb db copy` can merge several projects'
    # histories into one shared database (and copy again) without duplicating or confusing rows
    (Column("runs", "uid", str, fill_uid=True), Column("fix_outcomes", "uid", str, fill_uid=True),
     Column("verdicts", "uid", str, fill_uid=True),
     Index("runs", ("uid",), unique=True), Index("fix_outcomes", ("uid",), unique=True),
     Index("verdicts", ("uid",), unique=True)),
]
SCHEMA_VERSION = len(MIGRATIONS)


def _tables() -> dict[str, Table]:
    return {step.name: step for steps in MIGRATIONS for step in steps if isinstance(step, Table)}


def _columns(table: str) -> list[str]:
    """A table's columns in the order the migrations give them."""
    columns = list(_tables()[table].columns)
    columns += [s.name for steps in MIGRATIONS for s in steps if isinstance(s, Column) and s.table == table]
    return columns


def _schema_tables() -> tuple[str, ...]:
    """The tables every migration together creates."""
    return tuple(sorted(_tables()))


def by_columns(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], list[list[Any]]]:
    """Rows to insert grouped by their columns (one statement per group): the rows of one call share their
    keys, but nothing promises it."""
    batches: dict[tuple[str, ...], list[list[Any]]] = {}
    for row in rows:
        batches.setdefault(tuple(row), []).append(list(row.values()))
    return batches


def new_uid() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------- conversions

def _j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# Stored JSON columns back to the immutable values rules and rows hold, each distinct text decoded once: a
# KB's rows repeat a few values ("[]", one exception type, the same remedies) and a new process reads every
# rule (10,000 rules: 309 ms before, most of it json.loads; benchmarks/bench_diagnose.py, whole process).
@lru_cache(maxsize=4096)
def _remedies(text: str | None) -> tuple[Remedy, ...]:
    return tuple(Remedy.from_dict(d) for d in json.loads(text or "[]"))


@lru_cache(maxsize=4096)
def _strings(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


@lru_cache(maxsize=4096)
def _set_fields(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(json.loads(text).items()))


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
        exceptions=_strings(row["exceptions"]), phases=_strings(row["phases"]),
        literal=row["literal"], ignore_case=bool(row["ignore_case"]), field=row["field"],
        set=_set_fields(row["set_fields"]), remedies=_remedies(row["remedies"]),
        since=_since(row.get("since")),
    )


#: the columns :func:`rule_from_row` reads (not the examples, which only authoring reads)
RULE_COLUMNS = ("id", "title", "explanation", "source", "prior", "regex", "symptom", "category", "exceptions",
                "phases", "literal", "ignore_case", "field", "set_fields", "remedies", "since")


@lru_cache(maxsize=4096)
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


#: an index key of API-change rows: (kind of lookup, first value, second value)
Key = tuple[str, str, str]


def symptom_keys(symptom: Symptom) -> list[Key]:
    """The exact keys a symptom is looked up by, as :meth:`Store.api_rows` and the batch snapshot (:mod:`kb.knowledge.snapshot`) look them up.

    - a missing name / attribute / changed behaviour: (module, name); a builtin object's dotted
      attribute (``'Series' object has no attribute 'iteritems'``) also by the row's name alone;
    - an unexpected or missing keyword: (last part of the callable's name, parameter);
    - a call that takes a parameter as keyword only: the callable's last name part, keyword-only rows;
    - a missing module: rows of the module as a whole (no name), for the module and its top package.
    """
    f = dict(symptom.fields)
    keys: list[Key] = []
    if symptom.kind in ("missing_name", "missing_attribute", "changed_behaviour"):
        keys.append(("name", f["module"], f["name"]))
        if symptom.kind == "missing_attribute" and f["module"] == "builtins" and "." in f["name"]:
            keys.append(("attr", f["name"], ""))
    elif symptom.kind in ("unexpected_kwarg", "missing_argument"):
        keys.append(("call", f["tail"], f["param"]))
    elif symptom.kind == "bad_call":
        keys.append(("tail", f["tail"], ""))
    elif symptom.kind == "missing_module":
        # a set, as the store builds it: the module and its top package, once when they are the same
        keys.extend({("module", f["module"], ""), ("module", f["top"], "")})
    return keys



# ---------------------------------------------------------------- the store

class Store(ABC):
    """An open knowledge base. Implements the engine's ``Knowledge`` protocol.

    The queries below are written once for both databases: ``?`` placeholders (an implementation
    translates them), no SQLite- or PostgreSQL-only functions. An implementation provides the
    connection and the primitives marked abstract.
    """

    #: how the database is named in messages (a URL without its password)
    location: str
    #: the project's .kb folder: user packs (``rules/``) and caches live here, whichever database is used
    home: Path
    #: exceptions meaning "the database is damaged or unreadable" (``kb db check`` lists them as problems)
    damage: tuple[type[BaseException], ...] = ()

    def _open(self, *, seed: bool, strict: bool) -> None:
        """Migrate, check the tables, seed: the common part of opening (called by an implementation's
        ``__init__`` once it is connected)."""
        self.migrate()
        missing = self.missing_tables()
        if missing and strict:
            raise StoreError(f"{self.location}: the knowledge base is damaged: table(s) {', '.join(missing)} are "
                             f"missing (kb db check lists what is wrong; delete the file to start afresh)")
        if seed and not missing:
            self.seed_builtin()

    # -- what an implementation provides

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``?`` placeholders) and return its rows as tuples."""

    @abstractmethod
    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one statement and return its rows as dicts by column name."""

    @abstractmethod
    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def _insert(self, table: str, row: dict[str, Any]) -> int:
        """Insert one row into a table keyed by an integer ``id`` the database assigns; return that id."""

    @abstractmethod
    def _insert_rows(self, table: str, rows: Iterable[dict[str, Any]], *, replace: bool = False) -> None:
        """Insert rows (``replace``: a row whose key exists replaces it)."""

    @abstractmethod
    @contextmanager
    def write(self) -> Iterator[None]:
        """One all-or-nothing write holding the database's write lock from its start."""

    @property
    @abstractmethod
    def user_version(self) -> int:
        """The schema version this database is at (0: empty)."""

    @abstractmethod
    def _set_user_version(self, version: int) -> None: ...

    @abstractmethod
    def _apply(self, step: Step) -> None:
        """Run one migration step."""

    @abstractmethod
    def table_names(self) -> list[str]: ...

    def _integrity_problems(self) -> list[str]:
        """The database's own consistency checks (SQLite: integrity and foreign keys)."""
        return []

    @abstractmethod
    def close(self) -> None: ...

    # -- set-up

    def migrate(self) -> None:
        if self.user_version == SCHEMA_VERSION:
            return
        with self.write():
            current = self.user_version  # re-read under the lock: another process may have migrated
            if current > SCHEMA_VERSION:
                raise StoreError(f"{self.location}: made by a newer kb (schema {current} > {SCHEMA_VERSION})")
            for steps in MIGRATIONS[current:]:
                for step in steps:
                    self._apply(step)
            self._set_user_version(SCHEMA_VERSION)

    @property
    def rules_dir(self) -> Path:
        """Where user packs live: ``rules/`` in the project's .kb folder (``.kb/rules/``)."""
        return self.home / "rules"

    @property
    def cache_dir(self) -> Path:
        return self.home / CACHE_DIR

    def seed_builtin(self) -> None:
        """Load the built-in packs, then the user packs of :attr:`rules_dir`, when any of them is new,
        changed or gone (by sha256). User packs come last and win: a user rule with a built-in
        rule's id replaces it; two user packs may not define the same id.

        A built-in pack already loaded with the same sha256 keeps its rows unless a user pack, the one
        loaded before or one loading now, holds one of its keys (a rule or API-change id, a distribution's
        import name): adding or editing a user pack reloads that pack, not the 16,000 mined rows."""
        shipped, mine = builtin_packs(), user_packs(self.rules_dir)
        signature = {origin: digest(data) for origin, data in [*shipped, *mine]}
        if self._loaded() == signature:
            return
        from .rulepack import parse_pack  # only when a pack is new or changed: YAML and the schema

        # kb's own packs are read trusted (their shape and the lint, not the JSON Schema, which the build and
        # tests/test_pack_lint.py check in full): a user pack added or edited costs its own check, not a
        # second of re-validating the built-in rows that did not change
        builtin = [parse_pack(data, origin, trusted=True) for origin, data in shipped]
        user = [parse_pack(data, origin) for origin, data in mine]
        packs = builtin + user
        _check_unique_ids(builtin)
        _check_unique_ids(user)
        names = {p.name: p.origin for p in builtin}
        for pack in user:
            if pack.name in names:
                raise RuleError(f"{pack.origin}: /pack: the name {pack.name!r} is taken by {names[pack.name]}")
            names[pack.name] = pack.origin
        with self.write():
            loaded = self._loaded()
            if loaded == signature:  # another process loaded them meanwhile
                return
            managed = [(name, origin) for name, origin in self.query("SELECT name, origin FROM packs")
                       if self._managed(origin)]
            taken = self._keys_of([name for name, origin in managed if not origin.startswith("builtin:")])
            taken.update(key for pack in user for key in _pack_keys(pack.doc))
            kept = {pack.origin for pack in builtin
                    if loaded.get(pack.origin) == pack.sha256 and not _pack_keys(pack.doc) & taken}
            for name, origin in managed:
                if origin not in kept:
                    self._drop_pack(name)
            for pack in packs:
                if pack.origin not in kept:
                    self._load(pack)

    def _keys_of(self, names: list[str]) -> set[tuple[str, str]]:
        """The (table, key) of every rule, API-change row and distribution the packs ``names`` hold now."""
        if not names:
            return set()
        marks = ", ".join("?" * len(names))
        return {(table, str(key)) for table, column in _KEYED
                for (key,) in self.query(f"SELECT {column} FROM {table} WHERE pack IN ({marks})", names)}

    def _managed(self, origin: str) -> bool:
        """Packs the store loads itself: built-in ones and those in :attr:`rules_dir` (a pack loaded
        through :meth:`load_pack` from elsewhere stays until replaced)."""
        return origin.startswith("builtin:") or Path(origin).parent == self.rules_dir

    def _loaded(self) -> dict[str, str]:
        return {origin: sha for origin, sha in self.query("SELECT origin, sha256 FROM packs")
                if self._managed(origin)}

    def _drop_pack(self, name: str) -> None:
        for table in ("rules", "api_changes", "distributions"):
            self.query(f"DELETE FROM {table} WHERE pack = ?", [name])
        self.query("DELETE FROM packs WHERE name = ?", [name])

    def pack_rows(self, pack: str) -> list[dict[str, Any]]:
        """The API-change rows a pack holds, as pack documents (to merge newly learned rows into)."""
        return [_api_doc(row) for row in self.query_dicts("SELECT * FROM api_changes WHERE pack = ? ORDER BY id",
                                                          [pack])]

    def load_pack(self, pack: Pack) -> None:
        """Replace whatever a pack of that name held with ``pack`` (one transaction)."""
        with self.write():
            self._load(pack)

    def _load(self, pack: Pack) -> None:
        for table in ("rules", "api_changes", "distributions"):
            self.query(f"DELETE FROM {table} WHERE pack = ?", [pack.name])
        layer = str(pack.doc.get("layer", "curated"))
        self._insert_rows("packs", [{"name": pack.name, "version": pack.version, "origin": pack.origin,
                                     "sha256": pack.sha256, "loaded_at": _now(), "layer": layer}], replace=True)
        # a Pack comes from parse_pack, which validated the whole document (kb's own packs: when they were
        # built, and by tests/test_pack_lint.py)
        rules = pack.doc.get("rules") or []
        self._insert_rows("rules", (rule_row(pack.name, d) for d in rules), replace=True)
        changes = pack.doc.get("api_changes") or []
        self._insert_rows("api_changes", (_api_row(pack.name, d, layer) for d in changes), replace=True)
        self._insert_rows("distributions", ({
            "import_name": d["import"], "pack": pack.name, "distribution": d["distribution"],
            "source": d.get("source", ""), "note": d.get("note", ""),
        } for d in pack.doc.get("distributions") or []), replace=True)

    # -- knowledge (the engine's Knowledge protocol)

    def rules(self) -> list[Rule]:
        columns = ", ".join(RULE_COLUMNS)
        return [rule_from_row(row) for row in self.query_dicts(f"SELECT {columns} FROM rules ORDER BY id")]

    def rule_list(self) -> list[tuple[str, str, str]]:
        """(pack, id, title) of every loaded rule."""
        return [(p, i, t) for p, i, t in self.query("SELECT pack, id, title FROM rules ORDER BY pack, id")]

    def rule_doc(self, rule_id: str) -> tuple[str, dict[str, Any]] | None:
        """(pack, the rule as a pack document) of a loaded rule, or None."""
        rows = self.query_dicts("SELECT * FROM rules WHERE id = ?", [rule_id])
        return (rows[0]["pack"], _rule_doc(rows[0])) if rows else None

    def api_rows(self, symptoms: Sequence[Symptom]) -> list[list[ApiRow]]:
        """Candidate rows for each symptom (aligned with ``symptoms``), by exact keys only.

        One indexed query per chunk of keys rather than one per symptom: a run with thousands
        of distinct symptoms costs a handful of queries.
        """
        by_key: dict[Key, list[ApiRow]] = {}
        wanted: dict[str, set[tuple[str, str]]] = {"name": set(), "call": set(), "module": set(), "tail": set(),
                                                   "attr": set()}
        keys: list[list[Key]] = []
        for s in symptoms:
            mine = symptom_keys(s)
            for kind, a, b in mine:
                wanted[kind].add((a, b))
            keys.append(mine)
        # (the key's first column, its second or None): a join with the keys as a VALUES table uses the
        # indexes on both databases, where `(a, b) IN (VALUES ...)` made SQLite scan the whole table
        columns = {"name": ("module", "name"), "call": ("tail", "param"), "module": ("module", "name"),
                   "tail": ("tail", "change"), "attr": ("name", None)}
        for kind, pairs in wanted.items():
            first, second = columns[kind]
            pairs_list = sorted((a, "param-keyword-only" if kind == "tail" else "" if kind == "module" else b)
                                for a, b in pairs)
            on = f"a.{first} = v.column1" + (f" AND a.{second} = v.column2" if second else "")
            for start in range(0, len(pairs_list), 250):
                chunk = pairs_list[start:start + 250]
                values = ",".join("(?, ?)" for _ in chunk)
                params = [v for pair in chunk for v in pair]
                # ordered: the rows of one key come in id order on both databases (a join's order is the plan's)
                for row in self.query_dicts(f"SELECT a.* FROM (VALUES {values}) AS v JOIN api_changes AS a ON {on} "
                                            f"ORDER BY a.id", params):
                    key = (kind, row[first], "" if kind in ("module", "tail", "attr") else row[second or first])
                    by_key.setdefault(key, []).append(_api_from_row(row))
        return [[row for key in mine for row in by_key.get(key, [])] for mine in keys]

    def distributions(self, import_names: Iterable[str]) -> list[Distribution]:
        names = sorted(set(import_names))
        if not names:
            return []
        marks = ",".join("?" * len(names))
        rows = self.query(f"SELECT import_name, distribution, source, note FROM distributions "
                          f"WHERE import_name IN ({marks}) ORDER BY import_name", names)
        return [Distribution(*row) for row in rows]

    _LEARNED = ("SUM(CASE WHEN verdict = 'verified' THEN 1 ELSE 0 END), "
                "SUM(CASE WHEN verdict IN ('failed', 'rolled back') THEN 1 ELSE 0 END)")

    def learned(self, owner: str) -> tuple[int, int]:
        """(verified, failed) fix outcomes recorded for a cause — on a shared database, everyone's."""
        row = self.query(f"SELECT {self._LEARNED} FROM fix_outcomes WHERE cause_key = ?", [owner])[0]
        return int(row[0] or 0), int(row[1] or 0)

    def all_api_rows(self) -> list[ApiRow]:
        """Every API-change row (for a read-only snapshot of the knowledge, ``kb batch``)."""
        return [_api_from_row(row) for row in self.query_dicts("SELECT * FROM api_changes ORDER BY id")]

    def all_distributions(self) -> list[Distribution]:
        return [Distribution(*row) for row in self.query(
            "SELECT import_name, distribution, source, note FROM distributions ORDER BY import_name")]

    def all_learned(self) -> dict[str, tuple[int, int]]:
        """``learned(owner)`` for every owner with a recorded outcome."""
        rows = self.query(f"SELECT cause_key, {self._LEARNED} FROM fix_outcomes GROUP BY cause_key")
        return {key: (int(v or 0), int(f or 0)) for key, v, f in rows}

    def counts(self) -> dict[str, int]:
        return {t: int(self.query(f"SELECT COUNT(*) FROM {t}")[0][0]) for t in
                ("packs", "rules", "api_changes", "distributions", "runs", "failures", "frames", "diagnoses",
                 "fix_outcomes")}

    # -- history

    def record_run(self, run_doc: dict[str, Any], failures: Sequence[dict[str, Any]],
                   diagnoses: Sequence[dict[str, Any]]) -> int:
        """Record a diagnosed run, its failures (with their frames) and its root causes; return the run id.

        ``failures`` are dicts with test, phase, exception, message, file, line, source and
        ``frames`` (a list of (file, line, function)). One transaction: all of it or nothing.
        """
        from .validate import validate

        run_row = {"created_at": _now(), "kb_version": __version__, "uid": new_uid(), **run_doc}
        validate({"sources": run_row.get("sources", []), "environment": run_row.get("environment", {})},
                 "run", what="run", error=StoreError)
        for i, cause in enumerate(diagnoses):
            validate(cause, "diagnosis", "root_cause", what=f"diagnosis {i}", error=StoreError)
        run_row["sources"] = _j(run_row.get("sources", []))
        run_row["environment"] = _j(run_row.get("environment", {}))
        if "command" in run_row:
            run_row["command"] = _j(run_row["command"])
        with self.write():
            run_id = self._insert("runs", run_row)
            self._record_failures(run_id, failures)
            self._insert_rows("diagnoses", ({
                "run_id": run_id, "rank": rank, "cause_key": cause.get("key", ""), "rule": cause["rule"],
                "api_change": cause.get("api_change"), "category": cause["category"], "title": cause["title"],
                "confidence": cause["confidence"], "tests": len(cause["tests"]), "doc": _j(cause),
            } for rank, cause in enumerate(diagnoses)))
        return run_id

    def _record_failures(self, run_id: int, failures: Sequence[dict[str, Any]]) -> None:
        """The failures of a run, numbered on from the highest id (safe: the caller holds the write lock),
        so their frames can name them without a round trip per failure."""
        first = int(self.query("SELECT COALESCE(MAX(id), 0) FROM failures")[0][0]) + 1
        self._executemany(
            "INSERT INTO failures (id, run_id, seq, test, phase, exception, message, file, line, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(first + seq, run_id, seq, f["test"], f["phase"], f["exception"], f["message"], f.get("file"),
              f.get("line"), f.get("source", "")) for seq, f in enumerate(failures)])
        self._executemany(
            "INSERT INTO frames (failure_id, seq, file, line, function) VALUES (?, ?, ?, ?, ?)",
            [(first + seq, n, file, line, function)
             for seq, f in enumerate(failures) for n, (file, line, function) in enumerate(f.get("frames", []))])

    def record_verdicts(self, run_id: int | None, verdicts: Sequence[dict[str, Any]]) -> None:
        """Record the orchestrator's verdicts (``{"test", "verdict", "failed", "runs", ...}``)."""
        with self.write():
            self._insert_rows("verdicts", ({
                "run_id": run_id, "test": v["test"], "verdict": v["verdict"], "failed": v.get("failed", 0),
                "runs": v.get("runs", 0), "doc": _j(v), "uid": new_uid()} for v in verdicts))

    def record_order(self, run_id: int, root: str, tests: Sequence[str], seed: int | None = None,
                     workers: dict[str, str] | None = None) -> None:
        """Record the order run ``run_id`` executed its tests in (``root``: the folder it ran in)."""
        with self.write():
            self._insert_rows("run_orders", [{"run_id": run_id, "root": root, "seed": seed,
                                              "tests": _j(list(tests)), "workers": _j(workers or {})}],
                              replace=True)

    def run_order(self, run_id: int) -> dict[str, Any] | None:
        """``{"run_id", "root", "seed", "tests", "workers"}`` of a recorded run, or None when kb has no order."""
        rows = self.query("SELECT run_id, root, seed, tests, workers FROM run_orders WHERE run_id = ?", [run_id])
        if not rows:
            return None
        row = rows[0]
        return {"run_id": row[0], "root": row[1], "seed": row[2], "tests": json.loads(row[3]),
                "workers": json.loads(row[4] or "{}")}

    def last_failing_order(self, test: str, root: str) -> int | None:
        """The last recorded run in ``root`` in which ``test`` failed and whose order kb knows (``test`` may be
        the end of a node id, as ``kb isolate`` takes it)."""
        suffix = ("/" if "::" in test else "::") + test
        rows = self.query(
            "SELECT o.run_id FROM run_orders o JOIN failures f ON f.run_id = o.run_id "
            "WHERE (f.test = ? OR substr(f.test, length(f.test) - length(?) + 1) = ?) AND o.root = ? "
            "ORDER BY o.run_id DESC LIMIT 1", [test, suffix, suffix, root])
        return int(rows[0][0]) if rows else None

    def record_outcome(self, cause_key: str, rule: str, verdict: str, doc: dict[str, Any]) -> int:
        """Record what happened to a fix (verified / plausible / failed / rolled back / undone)."""
        with self.write():
            return self._insert("fix_outcomes", {
                "created_at": _now(), "cause_key": cause_key, "rule": rule, "verdict": verdict,
                "run_id": None, "doc": _j(doc), "uid": new_uid()})

    def last_report(self) -> dict[str, Any]:
        """The root causes of the most recent recorded run, in the report's shape (for ``kb fix --last``)."""
        rows = self.query("SELECT id, sources FROM runs ORDER BY id DESC LIMIT 1")
        if not rows:
            raise StoreError(f"{self.location}: no recorded run yet (run kb diagnose first)")
        run_id, sources = rows[0]
        docs = [json.loads(r[0]) for r in self.query("SELECT doc FROM diagnoses WHERE run_id = ? ORDER BY rank",
                                                     [run_id])]
        return {"run_id": run_id, "sources": json.loads(sources), "root_causes": docs}

    def failure(self, failure_id: int) -> tuple[str, str] | None:
        """(exception, message) of a recorded failure, or None."""
        rows = self.query("SELECT exception, message FROM failures WHERE id = ?", [failure_id])
        return (rows[0][0] or "", rows[0][1] or "") if rows else None

    def failure_history(self) -> list[dict[str, Any]]:
        """Every recorded failure (id, run_id, test, exception, message, phase), oldest first."""
        return [{"id": i, "run_id": r, "test": t, "exception": e or "", "message": m or "", "phase": p or "call"}
                for i, r, t, e, m, p in self.query(
                    "SELECT id, run_id, test, exception, message, phase FROM failures ORDER BY id")]

    def explained_tests(self) -> dict[int, set[str]]:
        """Per run, the tests its recorded diagnoses explain."""
        explained: dict[int, set[str]] = {}
        for run_id, doc in self.query("SELECT run_id, doc FROM diagnoses"):
            explained.setdefault(run_id, set()).update(json.loads(doc).get("tests", []))
        return explained

    def rule_history(self) -> tuple[list[tuple[str, float]], list[tuple[str, str]]]:
        """(rule, confidence) of every recorded diagnosis and (rule, verdict) of every fix outcome, oldest first."""
        return ([(r, c) for r, c in self.query("SELECT rule, confidence FROM diagnoses ORDER BY id")],
                [(r, v) for r, v in self.query("SELECT rule, verdict FROM fix_outcomes ORDER BY id")])

    def rules_digest(self) -> str:
        """A key for the compiled rule index (``Engine.cached``), read without reading the rules: a digest of
        this store's location and its pack rows. Rules are only ever written with the pack they come from (a
        row per load, with its sha256 and time), so those rows change whenever the rules do."""
        rows = self.table_rows("packs", ("name", "version", "origin", "sha256", "loaded_at", "layer"))
        return hashlib.sha256(repr((self.location, rows)).encode("utf-8")).hexdigest()

    def table_rows(self, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """``columns`` of every row of one of the schema's tables, in key order (exports, copies)."""
        known = set(_columns(table)) if table in _tables() else set()
        unknown = [c for c in columns if c not in known]
        if not known or unknown:
            raise StoreError(f"no table {table} with column(s) {', '.join(unknown or columns)} in the schema")
        order_by = ", ".join(_tables()[table].key_columns)
        return self.query(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order_by}")

    def missing_tables(self) -> list[str]:
        """Tables the schema has that this database lacks (a table dropped by hand would otherwise be
        re-created by the first insert, without its keys)."""
        if self.user_version != SCHEMA_VERSION:
            return []
        have = set(self.table_names())
        return [name for name in _schema_tables() if name not in have]

    def check(self) -> list[str]:
        """Problems found in this KB (empty: healthy): integrity, schema version, missing tables, documents.
        A damaged file gives its problems as a list, not an exception."""
        try:
            return self._check()
        except self.damage as exc:
            return [f"the database cannot be read to the end: {exc}"]

    def _check(self) -> list[str]:
        from .validate import validate

        problems: list[str] = [f"table {name} is missing" for name in self.missing_tables()]
        if problems:
            return problems
        problems += self._integrity_problems()
        if self.user_version != SCHEMA_VERSION:
            problems.append(f"schema version {self.user_version}, expected {SCHEMA_VERSION}")
        for row in self.query_dicts("SELECT * FROM rules ORDER BY id"):
            doc = _rule_doc(row)
            try:
                validate(doc, "rule-pack", "rule", what=f"rule {row['id']}", error=StoreError)
            except KbError as exc:
                problems.append(str(exc))
        for run_id, sources, environment in self.query("SELECT id, sources, environment FROM runs ORDER BY id"):
            try:
                validate({"sources": json.loads(sources), "environment": json.loads(environment)},
                         "run", what=f"run {run_id}", error=StoreError)
            except (KbError, ValueError) as exc:
                problems.append(str(exc))
        for diagnosis_id, doc in self.query("SELECT id, doc FROM diagnoses ORDER BY id"):
            try:
                validate(json.loads(doc), "diagnosis", "root_cause", what=f"diagnosis {diagnosis_id}",
                         error=StoreError)
            except (KbError, ValueError) as exc:
                problems.append(str(exc))
        return problems

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


#: the knowledge tables and the key a row of a pack is replaced by (a later pack's row with the same key wins)
_KEYED = (("rules", "id"), ("api_changes", "id"), ("distributions", "import_name"))


def _pack_keys(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """The (table, key) of every row a pack document loads (as :meth:`Store._keys_of` names them)."""
    return {*(("rules", str(r["id"])) for r in doc.get("rules") or []),
            *(("api_changes", str(a["id"])) for a in doc.get("api_changes") or []),
            *(("distributions", str(d["import"])) for d in doc.get("distributions") or [])}


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


def copy_store(src: Store, dst: Store, *, history: bool = True, builtin: bool = False) -> dict[str, int]:
    """Copy ``src``'s knowledge and history into ``dst`` in one transaction of ``dst``; returns what was
    copied per table. Idempotent and safe for merging several projects into one shared database:

    - knowledge: every pack that is not built in (user, learned and mined packs; ``builtin``: those too —
      otherwise ``dst`` has its own), with its rules, API-change rows and distributions, unless ``dst``
      already holds that pack at the same sha256. A pack of the same name is replaced (pack names are
      keys in one knowledge base, shared or not).
    - history: runs, fix outcomes and verdicts are matched by their uid; what ``dst`` lacks is added with
      new ids (ids are per database), and the rows that hang off a run (failures, frames, diagnoses,
      verdicts, its recorded order) follow it, re-keyed.
    """
    copied: dict[str, int] = {}

    def add(table: str, rows: list[dict[str, Any]], *, replace: bool = False) -> None:
        if rows:
            dst._insert_rows(table, rows, replace=replace)
            copied[table] = copied.get(table, 0) + len(rows)

    with dst.write():
        have = {name: sha for name, sha in dst.query("SELECT name, sha256 FROM packs")}
        for pack in src.query_dicts("SELECT * FROM packs ORDER BY name"):
            if (pack["origin"].startswith("builtin:") and not builtin) or have.get(pack["name"]) == pack["sha256"]:
                continue
            dst._drop_pack(pack["name"])
            add("packs", [pack])
            for table in ("rules", "api_changes", "distributions"):
                add(table, src.query_dicts(f"SELECT * FROM {table} WHERE pack = ?", [pack["name"]]))
        if not history:
            return copied
        runs: dict[int, int] = {}  # src run id -> dst run id, for every src run dst holds afterwards
        known = {uid: run_id for uid, run_id in dst.query("SELECT uid, id FROM runs")}
        new: list[int] = []
        for run in src.query_dicts("SELECT * FROM runs ORDER BY id"):
            old = run.pop("id")
            if run["uid"] in known:
                runs[old] = known[run["uid"]]
                continue
            runs[old] = dst._insert("runs", run)
            new.append(old)
        copied["runs"] = len(new)
        fresh = set(new)
        failures = [f for f in src.query_dicts("SELECT * FROM failures ORDER BY id") if f["run_id"] in fresh]
        first = int(dst.query("SELECT COALESCE(MAX(id), 0) FROM failures")[0][0]) + 1
        renumber = {f["id"]: first + n for n, f in enumerate(failures)}
        add("failures", [{**f, "id": renumber[f["id"]], "run_id": runs[f["run_id"]]} for f in failures])
        add("frames", [{**fr, "failure_id": renumber[fr["failure_id"]]}
                       for fr in src.query_dicts("SELECT * FROM frames ORDER BY failure_id, seq")
                       if fr["failure_id"] in renumber])
        add("diagnoses", [{**d, "run_id": runs[d["run_id"]]} for d in _without_id(
            src.query_dicts("SELECT * FROM diagnoses ORDER BY id")) if d["run_id"] in fresh])
        add("run_orders", [{**o, "run_id": runs[o["run_id"]]} for o in
                           src.query_dicts("SELECT * FROM run_orders ORDER BY run_id") if o["run_id"] in fresh])
        for table in ("verdicts", "fix_outcomes"):
            there = {uid for (uid,) in dst.query(f"SELECT uid FROM {table}")}
            add(table, [{**row, "run_id": runs.get(row["run_id"]) if row["run_id"] is not None else None}
                        for row in _without_id(src.query_dicts(f"SELECT * FROM {table} ORDER BY id"))
                        if row["uid"] not in there])
    return copied


def _without_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row.pop("id", None)
    return rows


#: the errors that mean a database is damaged or unreachable, for every backend loaded (kb.pgstore adds its own)
DAMAGE: list[type[BaseException]] = [sqlite3.DatabaseError]

#: every KB opened in this process, as named in messages (an unreadable page may surface later: the CLI
#: names the file)
OPENED: list[str] = []
