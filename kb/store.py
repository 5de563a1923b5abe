"""The knowledge base: one interface (:class:`Store`), two implementations — SQLite through sqlite-utils
(:class:`SqliteStore`, here: the only sqlite-utils importer) and PostgreSQL through psycopg 3
(:class:`kb.pgstore.PgStore`, the only psycopg importer). Every query, document check, migration step and
the learning read (``learned``) are written once, in :class:`Store`, in SQL both databases accept; an
implementation supplies the connection, the write transaction and the DDL.

Where: ``--db PATH|URL`` / ``KB_DB``. A ``postgresql://`` (or ``postgres://``) URL is a shared PostgreSQL
database (credentials from the URL or the standard ``PG*`` variables, never printed); any other URL is an
error; a path is a SQLite file. Without either, ``.kb/kb.sqlite`` in the nearest directory upward that has a
``.kb`` folder (like git, up to the repository's root), else at the repository's root, else in the current
directory — created on first use (with a ``.gitignore`` in a new ``.kb``) and seeded from the built-in packs,
so ``kb diagnose report.xml`` needs no set-up. The project's ``.kb`` folder (:attr:`Store.home`) also holds
the user packs (``rules/``) and caches, whichever database holds the knowledge.

Safety and concurrency: every write that must be all-or-nothing runs in :meth:`Store.write`, which takes the
database's one write lock up front (SQLite: ``BEGIN IMMEDIATE`` with WAL and a busy timeout; PostgreSQL: a
transaction-scoped advisory lock), so concurrent ``kb`` processes queue instead of failing and ids are
allocated without races. Schema migrations are numbered (SQLite ``PRAGMA user_version``, PostgreSQL a
``kb_schema`` table) and described as data (:data:`MIGRATIONS`), applied by each implementation. JSON
columns are validated against ``schemas/*.schema.json`` before they are written.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StoreError
from .safeio import CACHE_DIR, GITIGNORE, make_kb_dir
from .storage import (
    BUSY_TIMEOUT_S,
    DAMAGE,
    KB_DIR,
    MIGRATIONS,
    OPENED,
    PG_SCHEMES,
    SCHEMA_VERSION,
    Column,
    Index,
    Step,
    Store,
    Table,
    _rule_doc,
    _tables,
    by_columns,
    copy_store,
    find_db,
    find_home,
    is_url,
    rule_from_row,
    rule_row,
    user_packs,
)

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["Store", "SqliteStore", "open_store", "kb_home", "kb_cache", "apply_sqlite", "SEED_IMAGE", "find_db", "find_home",
           "make_kb_dir", "GITIGNORE", "rule_row", "rule_from_row", "SCHEMA_VERSION", "MIGRATIONS", "is_url",
           "copy_store", "user_packs", "DAMAGE", "OPENED", "Step", "Table", "Column", "Index", "_tables", "_rule_doc",
           "write_database"]

#: a KB holding only the built-in packs (kb/packs, built by scripts/build_seed_image.py): a new SQLite KB
#: starts as a copy of it instead of parsing and validating every pack row
SEED_IMAGE = "seed.sqlite.gz"


def apply_sqlite(db: sqlite_utils.Database, step: Step) -> None:
    """One migration step on a SQLite database, through sqlite-utils."""
    if isinstance(step, Table):
        db[step.name].create(step.columns, pk=step.pk,  # type: ignore[union-attr]
                             foreign_keys=list(step.foreign_keys))
    elif isinstance(step, Column):
        db[step.table].add_column(step.name, step.type, not_null_default=step.default)  # type: ignore[union-attr]
        if step.fill_uid:
            db.execute(f"UPDATE {step.table} SET {step.name} = lower(hex(randomblob(16)))")
    else:
        db[step.table].create_index(list(step.columns), index_name=step.name,  # type: ignore[union-attr]
                                    unique=step.unique, if_not_exists=True)


def write_database(path: str | Path, schema: Mapping[str, tuple[dict[str, type], list[tuple[str, str, str]]]],
                   rows: Iterable[tuple[str, Iterable[dict[str, Any]]]],
                   indexes: Iterable[tuple[str, list[str]]] = ()) -> None:
    """A new SQLite database at ``path`` (not a KB: kb export's datasette copy), through sqlite-utils like
    every table kb creates: each table of ``schema`` (columns, foreign keys; primary key ``id``), then
    ``rows`` inserted table by table in the order given (a later table's rows may be computed while an
    earlier one's are read), then ``indexes``; committed once, closed even on failure."""
    import sqlite_utils

    db = sqlite_utils.Database(sqlite3.connect(path))
    try:
        for table, (columns, foreign_keys) in schema.items():
            db.table(table).create(columns, pk="id", foreign_keys=foreign_keys)
        for table, items in rows:
            db.table(table).insert_all(items)
        for table, indexed in indexes:
            db.table(table).create_index(indexed, if_not_exists=True)
        db.conn.commit()
    finally:
        db.conn.close()


def _place_seed_image(path: Path) -> None:
    """Put the seed image at ``path`` unless a file is there by then (several kb processes may create the
    same KB at once: the image is written beside it and linked into place, so one wins and the others
    open what it placed). No image shipped: nothing happens and the store seeds from the packs."""
    import gzip
    from importlib import resources

    source = resources.files("kb.packs").joinpath(SEED_IMAGE)
    if not source.is_file():
        return
    temp = path.with_name(f".{path.name}.{os.getpid()}.seed")
    try:
        temp.write_bytes(gzip.decompress(source.read_bytes()))
        os.link(temp, path)
    except FileExistsError:
        pass
    except (OSError, EOFError, gzip.BadGzipFile):  # the image is a shortcut: without it, seed from the packs
        pass
    finally:
        temp.unlink(missing_ok=True)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


class SqliteStore(Store):
    """The embedded default: one SQLite file (WAL, busy timeout, foreign keys on). Statements go through
    the standard library's sqlite3 in autocommit mode (transactions are :meth:`write`'s); sqlite-utils
    creates and migrates the schema, so it is imported only when a file is new or older than kb."""

    damage = (sqlite3.DatabaseError,)

    def __init__(self, path: str | Path, *, seed: bool = True, strict: bool = True, home: Path | None = None,
                 image: bool = True) -> None:
        """Open (create, migrate, seed) the KB at ``path``. ``strict``: refuse a KB whose tables are not all
        there (``kb db check`` opens with ``strict=False`` to list what is wrong instead). ``home``: the
        project's .kb folder (default: the file's folder). ``image``: a new file starts as a copy of the
        seed image (:data:`SEED_IMAGE`); seeding then finds the built-in packs already loaded — or, if the
        image is stale, reloads them as it would without one."""
        self.path = Path(path)
        self.location = str(self.path)
        self.home = home or self.path.parent
        OPENED.append(self.location)
        try:
            if self.path.parent.name == KB_DIR and not self.path.exists():
                make_kb_dir(self.path.parent)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            if seed and image and not self.path.exists():
                _place_seed_image(self.path)
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{self.path}: cannot open the knowledge base: {exc}") from None
        self.conn = conn
        self._db: sqlite_utils.Database | None = None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            self._enable_wal()
            self._open(seed=seed, strict=strict)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path}: not a usable kb database: {exc}") from None

    @property
    def db(self) -> sqlite_utils.Database:
        """The same connection through sqlite-utils (migrations, and scripts that want its API)."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def _enable_wal(self) -> None:
        if self.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode = wal")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, list(params)).fetchall()

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, list(params))
        if cursor.description is None:
            return []
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        cursor = self.conn.execute(f'INSERT INTO "{table}" ({_quoted(row)}) VALUES ({", ".join("?" * len(row))})',
                                   list(row.values()))
        assert cursor.lastrowid is not None
        return int(cursor.lastrowid)

    def _insert_rows(self, table: str, rows: Iterable[dict[str, Any]], *, replace: bool = False) -> None:
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        for names, values in by_columns(rows).items():
            self.conn.executemany(f'{verb} INTO "{table}" ({_quoted(names)}) VALUES ({", ".join("?" * len(names))})',
                                  values)

    @contextmanager
    def write(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` takes the write lock up front. Nested calls join the outer transaction."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    @property
    def user_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _set_user_version(self, version: int) -> None:
        self.conn.execute(f"PRAGMA user_version = {int(version)}")

    def _apply(self, step: Step) -> None:
        apply_sqlite(self.db, step)

    def table_names(self) -> list[str]:
        return [name for (name,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    def _integrity_problems(self) -> list[str]:
        problems = []
        result = self.conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            problems.append(f"integrity_check: {result}")
        for row in self.conn.execute("PRAGMA foreign_key_check").fetchall():
            problems.append(f"foreign key violation in {row[0]} rowid {row[1]} → {row[2]}")
        return problems

    def close(self) -> None:
        self.conn.close()


def open_store(db: str | Path | None = None, *, strict: bool = True, seed: bool = True,
               existing: bool = False) -> Store:
    """Open the knowledge base at ``db`` (a path or a ``postgresql://`` URL), else :func:`find_db`'s.
    A SQLite file that is not there is created, unless ``existing`` (a source to read: a StoreError)."""
    location = db if db else find_db()
    if isinstance(location, str) and is_url(location):
        scheme = location.split("://", 1)[0].lower()
        if scheme not in PG_SCHEMES:
            raise StoreError(f"{location.split('://', 1)[0]}://…: kb cannot serve this database URL (a knowledge "
                             f"base is a SQLite file path or a postgresql:// URL)")
        from .pgstore import PgStore

        return PgStore(location, home=find_home(), strict=strict, seed=seed)
    if existing and not Path(location).is_file():
        raise StoreError(f"{location}: no such knowledge base file")
    return SqliteStore(Path(location), strict=strict, seed=seed)


def kb_home(db: str | Path | None = None) -> Path:
    """The project's .kb folder for the KB ``db`` would open (where user packs and caches live)."""
    location = db if db else find_db()
    if isinstance(location, str) and is_url(location):
        return find_home()
    return Path(location).parent


def kb_cache(db: str | Path | None = None) -> Path:
    """The cache folder of the KB ``db`` would open (its :attr:`Store.cache_dir`), without opening it."""
    return kb_home(db) / CACHE_DIR


