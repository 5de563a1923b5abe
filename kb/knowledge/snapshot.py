"""A read-only, in-memory, picklable snapshot of the knowledge (``kb batch``).

A worker on another machine cannot open the project's SQLite file (nor should thousands of tasks
hit one database), so the client reads the knowledge once — rules, API-change rows, import-name
rows and the learned fix outcomes — and ships this object to every worker. It implements the
engine's ``Knowledge`` protocol with dict indexes that mirror :meth:`kb.store.Store.api_rows` key for
key, so a report diagnosed against a snapshot gets exactly the causes it gets against the store.

``digest`` names the knowledge's content (sha256 over the values' reprs): a worker keeps one
compiled engine per digest and builds a new one only when the knowledge changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ..engine import ApiRow, Distribution, Rule, Symptom
from ..storage import Key, symptom_keys

__all__ = ["Snapshot", "Source", "symptom_keys"]

class Source(Protocol):
    """What :meth:`Snapshot.of` reads: the store's public knowledge methods."""

    def rules(self) -> list[Rule]: ...

    def all_api_rows(self) -> list[ApiRow]: ...

    def all_distributions(self) -> list[Distribution]: ...

    def all_learned(self) -> dict[str, tuple[int, int]]: ...


def _row_keys(row: ApiRow) -> list[Key]:
    """Every key under which a row can be found (the store's WHERE clauses, read the other way)."""
    tail = row.name.rsplit(".", 1)[-1] if row.name else ""
    keys: list[Key] = [("name", row.module, row.name), ("call", tail, row.param), ("attr", row.name, "")]
    if not row.name:
        keys.append(("module", row.module, ""))
    if row.change == "param-keyword-only":
        keys.append(("tail", tail, ""))
    return keys


class Snapshot:
    """The knowledge, frozen in memory. Build it with :meth:`of`; it never changes afterwards."""

    def __init__(self, rules: Iterable[Rule], api_rows: Iterable[ApiRow], distributions: Iterable[Distribution],
                 learned: dict[str, tuple[int, int]]) -> None:
        self._rules = tuple(rules)
        self._api_rows = tuple(api_rows)
        self._distributions = tuple(distributions)
        self._learned = dict(learned)
        self.digest = self._digest()
        self._index()

    @classmethod
    def of(cls, store: Source) -> Snapshot:
        """Everything ``store`` knows, read once."""
        return cls(store.rules(), store.all_api_rows(), store.all_distributions(), store.all_learned())

    def _digest(self) -> str:
        """sha256 over the reprs of every value (frozen dataclasses of strings, numbers and tuples: their repr
        names every field, in order), learned outcomes sorted; JSON of the same costs ~5× the time."""
        digest = hashlib.sha256()
        for part in (self._rules, self._api_rows, self._distributions, sorted(self._learned.items())):
            digest.update(repr(part).encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        return digest.hexdigest()

    def _index(self) -> None:
        self._by_key: dict[Key, list[ApiRow]] = {}
        for row in self._api_rows:
            for key in _row_keys(row):
                self._by_key.setdefault(key, []).append(row)
        self._by_import = {d.import_name: d for d in self._distributions}

    # the indexes are rebuilt where the snapshot is unpickled: half the bytes on the wire
    def __getstate__(self) -> dict[str, Any]:
        return {"rules": self._rules, "api_rows": self._api_rows, "distributions": self._distributions,
                "learned": self._learned, "digest": self.digest}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._rules = state["rules"]
        self._api_rows = state["api_rows"]
        self._distributions = state["distributions"]
        self._learned = state["learned"]
        self.digest = state["digest"]
        self._index()

    def __repr__(self) -> str:
        return (f"Snapshot({len(self._rules)} rules, {len(self._api_rows)} API rows, "
                f"{len(self._distributions)} distributions, digest {self.digest[:12]})")

    # -- the engine's Knowledge protocol (and the rules it compiles)

    def rules_digest(self) -> str:
        """The key of the compiled rule index, as a Store gives it: here, the content digest."""
        return self.digest

    def rules(self) -> list[Rule]:
        return list(self._rules)

    def api_rows(self, symptoms: Sequence[Symptom]) -> list[list[ApiRow]]:
        """Candidate rows for each symptom (aligned with ``symptoms``), by exact keys only: the rows the store
        gives, key by key; under one key in id order, where the store gives its storage order (SQL promises
        none, and the engine's result does not depend on it)."""
        return [[row for key in symptom_keys(s) for row in self._by_key.get(key, ())] for s in symptoms]

    def distributions(self, import_names: Iterable[str]) -> list[Distribution]:
        return [self._by_import[name] for name in sorted(set(import_names)) if name in self._by_import]

    def learned(self, owner: str) -> tuple[int, int]:
        return self._learned.get(owner, (0, 0))
