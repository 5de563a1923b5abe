"""The knowledge base on PostgreSQL, through psycopg 3 (the only psycopg importer).

``--db postgresql://user@host/dbname`` (or ``KB_DB``) selects it; whatever the URL leaves out comes from
the standard ``PG*`` variables and ``~/.pgpass``, as libpq reads them. The schema, the queries and the
document checks are :class:`kb.store.Store`'s, so a shared database behaves like a project's SQLite file:
this module supplies the connection, the DDL and the write lock.

Concurrency: reads run in autocommit; every write runs in one transaction inside kb's advisory lock
(:data:`WRITE_LOCK`, held by the session around the transaction), so many runners writing at once queue
exactly as SQLite's ``BEGIN IMMEDIATE`` makes them queue — no run, verdict or fix outcome is lost, and ids taken
from ``MAX(id)`` under the lock cannot collide. Writers hold the lock for milliseconds (one run's rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql

from .errors import StoreError
from .storage import DAMAGE, OPENED, Column, Index, Step, Store, Table, _tables, by_columns

__all__ = ["PgStore", "redact", "WRITE_LOCK"]

#: the advisory lock every kb writer takes (an arbitrary constant: 'kb' in ASCII)
WRITE_LOCK = 0x6B62
CONNECT_TIMEOUT_S = 10
DAMAGE.append(psycopg.Error)
_TYPES = {str: "TEXT", int: "BIGINT", float: "DOUBLE PRECISION"}


def redact(url: str) -> str:
    """The URL without its password (and without query parameters, which may carry one)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        user = netloc[0].split(":", 1)[0]
        host = f"{user}@{netloc[1]}" if user else netloc[1]
    else:
        host = netloc[0]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _sql(text: str) -> str:
    """kb's portable SQL (``?`` placeholders) in psycopg's style (``%s``, a literal ``%`` doubled)."""
    return text.replace("%", "%%").replace("?", "%s")


class PgStore(Store):
    """A knowledge base shared by many runners in one PostgreSQL database (its current schema)."""

    damage = (psycopg.DatabaseError,)

    def __init__(self, url: str, *, home: Path, seed: bool = True, strict: bool = True) -> None:
        self.url = url
        self.location = redact(url)
        self.home = home
        OPENED.append(self.location)
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            raise StoreError(f"{self.location}: cannot connect to the shared knowledge base: "
                             f"{_first_line(exc)}") from None
        try:
            self._open(seed=seed, strict=strict)
        except psycopg.Error as exc:
            self.conn.close()
            raise StoreError(f"{self.location}: not a usable kb database: {_first_line(exc)}") from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(_sql(sql), list(params))  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description else []

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self.conn.execute(_sql(sql), list(params))  # type: ignore[call-overload]
        if not cursor.description:
            return []
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if rows:
            with self.conn.cursor() as cursor:
                cursor.executemany(_sql(sql), rows)  # type: ignore[arg-type]

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        names = list(row)
        statement = pgsql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
            pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, names)),
            pgsql.SQL(", ").join(pgsql.Placeholder() * len(names)))
        found = self.conn.execute(statement, [row[n] for n in names]).fetchone()
        assert found is not None  # RETURNING gives the row
        return int(found[0])

    def _insert_rows(self, table: str, rows: Iterable[dict[str, Any]], *, replace: bool = False) -> None:
        keys = _tables()[table].key_columns
        for names, values in by_columns(rows).items():
            statement = pgsql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                pgsql.Identifier(table), pgsql.SQL(", ").join(map(pgsql.Identifier, names)),
                pgsql.SQL(", ").join(pgsql.Placeholder() * len(names)))
            others = [n for n in names if n not in keys]
            if replace and others:
                statement += pgsql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(
                    pgsql.SQL(", ").join(map(pgsql.Identifier, keys)),
                    pgsql.SQL(", ").join(pgsql.SQL("{0} = EXCLUDED.{0}").format(pgsql.Identifier(n))
                                         for n in others))
            with self.conn.cursor() as cursor:
                cursor.executemany(statement, values)

    @contextmanager
    def write(self) -> Iterator[None]:
        """One transaction, begun once kb's advisory write lock is held and committed before it is released.
        The lock is taken outside the transaction so that the transaction starts after the previous writer's
        commit: a transaction begun earlier could keep a stale view of the catalogue (a table another
        writer's migration just created would look missing). Nested calls join the outer transaction."""
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            yield
            return
        self.conn.execute("SELECT pg_advisory_lock(%s)", [WRITE_LOCK])
        try:
            with self.conn.transaction():
                yield
        finally:
            with suppress(psycopg.OperationalError):  # a lost connection: the server released the lock itself
                self.conn.execute("SELECT pg_advisory_unlock(%s)", [WRITE_LOCK])

    @property
    def user_version(self) -> int:
        found = self.conn.execute("SELECT to_regclass('kb_schema')").fetchone()
        if found is None or found[0] is None:
            return 0
        row = self.conn.execute("SELECT max(version) FROM kb_schema").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _set_user_version(self, version: int) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS kb_schema (version INTEGER NOT NULL)")
        self.conn.execute("DELETE FROM kb_schema")
        self.conn.execute("INSERT INTO kb_schema (version) VALUES (%s)", [version])

    def _apply(self, step: Step) -> None:
        if isinstance(step, Table):
            pk = step.pk
            parts = []
            for name, kind in step.columns.items():
                column = pgsql.SQL("{} {}").format(pgsql.Identifier(name), pgsql.SQL(_TYPES[kind]))
                if name == pk and kind is int:  # an id the database assigns when a row does not bring one
                    column += pgsql.SQL(" GENERATED BY DEFAULT AS IDENTITY")
                parts.append(column)
            keys = step.key_columns
            parts.append(pgsql.SQL("PRIMARY KEY ({})").format(pgsql.SQL(", ").join(map(pgsql.Identifier, keys))))
            for column_name, other, other_column in step.foreign_keys:
                parts.append(pgsql.SQL("FOREIGN KEY ({}) REFERENCES {} ({})").format(
                    pgsql.Identifier(column_name), pgsql.Identifier(other), pgsql.Identifier(other_column)))
            self.conn.execute(pgsql.SQL("CREATE TABLE {} ({})").format(
                pgsql.Identifier(step.name), pgsql.SQL(", ").join(parts)))
        elif isinstance(step, Column):
            statement = pgsql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                pgsql.Identifier(step.table), pgsql.Identifier(step.name), pgsql.SQL(_TYPES[step.type]))
            if step.default is not None:
                statement += pgsql.SQL(" NOT NULL DEFAULT {}").format(pgsql.Literal(step.default))
            self.conn.execute(statement)
            if step.fill_uid:
                self.conn.execute(pgsql.SQL("UPDATE {} SET {} = md5(random()::text || clock_timestamp()::text)")
                                  .format(pgsql.Identifier(step.table), pgsql.Identifier(step.name)))
        elif isinstance(step, Index):
            self.conn.execute(pgsql.SQL("CREATE {}INDEX IF NOT EXISTS {} ON {} ({})").format(
                pgsql.SQL("UNIQUE " if step.unique else ""), pgsql.Identifier(step.name),
                pgsql.Identifier(step.table), pgsql.SQL(", ").join(map(pgsql.Identifier, step.columns))))

    def table_names(self) -> list[str]:
        return [row[0] for row in self.conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()]

    def close(self) -> None:
        self.conn.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
