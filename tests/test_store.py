"""The knowledge base: migrations, whole-pack refusal, validation on write, kb db check — on SQLite and
on a real PostgreSQL server (the module is marked ``backends``: KB_DB / ``kb_db`` is each in turn)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from kb.errors import RuleError, StoreError
from kb.rulepack import parse_pack
from kb.store import MIGRATIONS, SCHEMA_VERSION, SqliteStore, Store, apply_sqlite, find_db, open_store

pytestmark = pytest.mark.backends

PACK = b"""
pack: mini
version: "1"
rules:
  - id: mini-import
    title: Name no longer importable
    explanation: The module no longer defines the name.
    source: https://docs.python.org/3/whatsnew/3.10.html
    prior: 0.5
    match:
      exception: [ImportError]
      regex: "cannot import name '(?P<name>[\\\\w.]+)' from '(?P<module>[\\\\w.]+)'"
    symptom: missing_name
    examples:
      match: ["ImportError: cannot import name 'Mapping' from 'collections'"]
      no_match: ["ImportError: No module named 'x'"]
api_changes:
  - id: collections-mapping
    package: python
    module: collections
    name: Mapping
    kind: moved
    replacement: collections.abc.Mapping
    removed_in: "3.10"
    source: https://docs.python.org/3/whatsnew/3.10.html
distributions:
  - {import: yaml, distribution: PyYAML}
"""


def _empty(kb_db: str) -> Store:
    """The test's KB with no packs at all (the PostgreSQL test databases start seeded)."""
    store = open_store(kb_db, seed=False)
    with store.write():
        for (name,) in store.query("SELECT name FROM packs"):
            store._drop_pack(name)
    return store


def test_pack_loads(kb_db: str) -> None:
    store = _empty(kb_db)
    store.load_pack(parse_pack(PACK, "mini.yaml"))
    counts = store.counts()
    assert (counts["rules"], counts["api_changes"], counts["distributions"]) == (1, 1, 1)
    assert store.rules()[0].literal == "cannot import name '"
    assert store.check() == []


def test_rows_of_one_key_come_in_id_order_on_both_databases(kb_db: str) -> None:
    """Two API-change rows under one (module, name), loaded in the other order: every backend gives them by id."""
    from kb.engine import Symptom

    store = _empty(kb_db)
    extra = b"""
  - id: collections-mapping-a-later-note
    package: python
    module: collections
    name: Mapping
    kind: removed
    removed_in: "3.10"
    source: https://docs.python.org/3/whatsnew/3.10.html
"""
    text = PACK.replace(b"api_changes:\n", b"api_changes:" + extra, 1)  # loaded before collections-mapping
    store.load_pack(parse_pack(text, "mini.yaml"))
    symptom = Symptom("mini-import", "missing_name", (("module", "collections"), ("name", "Mapping")), (0,))
    [rows] = store.api_rows([symptom])
    assert [row.id for row in rows] == ["collections-mapping", "collections-mapping-a-later-note"]


def test_the_rules_digest_changes_with_the_rules_only(kb_db: str) -> None:
    """The key a process keeps its compiled rule index under: new when a pack is loaded or dropped, the same
    while only history is written; a snapshot of the store is keyed by its content."""
    from kb.knowledge.snapshot import Snapshot

    store = _empty(kb_db)
    empty = store.rules_digest()
    store.load_pack(parse_pack(PACK, "mini.yaml"))
    loaded = store.rules_digest()
    assert loaded != empty and store.rules_digest() == loaded
    store.record_run({"format": "junit", "sources": [], "tests": 0, "passed": 0, "failures": 0, "errors": 0,
                      "skipped": 0, "environment": {}, "diagnosed": 0, "undiagnosed": 0}, [], [])
    assert store.rules_digest() == loaded
    with store.write():
        store._drop_pack("mini")
    assert store.rules_digest() not in (loaded, "")
    snapshot = Snapshot.of(store)
    assert snapshot.rules_digest() == snapshot.digest


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda t: t.replace(b"prior: 0.5", b"prior: 5"), "/rules/0/prior"),
    (lambda t: t.replace(b"kind: moved", b"kind: vanished"), "/api_changes/0/kind"),
    (lambda t: t.replace(b"(?P<module>", b"(?P<modul>"), "/rules/0/match/regex"),
    (lambda t: t.replace(b"[\\\\w.]+)' from", b"(?:\\\\w+)+)' from"), "/rules/0/match/regex"),
    (lambda t: t.replace(b"  - {import: yaml", b"  - {import: yaml, distribution: a}\n  - {import: yaml"),
     "/distributions/1/import"),
    (lambda t: t + b"  - : [\n", "line"),
])
def test_invalid_pack_is_refused_whole(kb_db: str, mutate, where: str) -> None:
    store = _empty(kb_db)
    with pytest.raises(RuleError) as info:
        store.load_pack(parse_pack(mutate(PACK), "bad.yaml"))
    message = str(info.value)
    assert message.startswith("bad.yaml: ") and where in message
    assert store.counts()["rules"] == 0 and store.counts()["packs"] == 0


@pytest.mark.sqlite_only
def test_migration_upgrades_an_old_db_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite_utils.Database(path)
    for step in MIGRATIONS[0]:
        apply_sqlite(db, step)
    db["packs"].insert({"name": "old", "version": "0", "origin": "x", "sha256": "y", "loaded_at": "z"})
    db.execute("PRAGMA user_version = 1")
    db.close()
    store = SqliteStore(path, seed=False)
    assert store.user_version == SCHEMA_VERSION
    assert store.query("SELECT name FROM packs") == [("old",)]
    assert "runs" in store.table_names() and "fix_outcomes" in store.table_names()
    assert store.check() == []


def test_a_history_from_before_uids_gets_one_per_row(tmp_path: Path) -> None:
    """Migration 7 gives the runs, fix outcomes and verdicts an old KB already holds their uids."""
    path = tmp_path / "v6.sqlite"
    db = sqlite_utils.Database(path)
    for steps in MIGRATIONS[:6]:
        for step in steps:
            apply_sqlite(db, step)
    for _ in range(3):
        db["runs"].insert({"created_at": "t", "sources": "[]", "environment": "{}"})
        db["fix_outcomes"].insert({"created_at": "t", "cause_key": "k", "rule": "r", "verdict": "verified",
                                   "doc": "{}"})
    db.execute("PRAGMA user_version = 6")
    db.close()
    with SqliteStore(path, seed=False) as store:
        for table in ("runs", "fix_outcomes"):
            uids = [uid for (uid,) in store.query(f"SELECT uid FROM {table}")]
            assert len(set(uids)) == 3 and all(len(uid) == 32 for uid in uids)


def test_an_empty_database_is_migrated_to_the_whole_schema(kb_db: str, kb_backend: str,
                                                           request: pytest.FixtureRequest) -> None:
    location = kb_db
    if kb_backend == "postgresql":  # a database nobody has migrated: kb creates every table itself
        location = request.getfixturevalue("pg_server").new_database(template=None)
    with open_store(location, seed=False) as store:
        assert store.user_version == SCHEMA_VERSION and store.missing_tables() == [] and store.check() == []


@pytest.mark.sqlite_only
def test_a_new_kb_starts_from_the_seed_image_which_matches_the_builtin_packs(tmp_path: Path) -> None:
    """kb/packs/seed.sqlite.gz is what seeding would load: a new KB copied from it loads no pack again
    (their loaded_at stays the image's blank). Fails when a built-in pack changed and the image was not
    rebuilt (python scripts/build_seed_image.py)."""
    with SqliteStore(tmp_path / "kb.sqlite") as store:
        assert store.query("SELECT DISTINCT loaded_at FROM packs") == [("",)]
        assert store.check() == []
    with SqliteStore(tmp_path / "plain.sqlite", image=False) as plain, \
            SqliteStore(tmp_path / "kb.sqlite") as imaged:
        for table in ("rules", "api_changes", "distributions"):
            assert plain.query(f"SELECT * FROM {table} ORDER BY 1") == imaged.query(f"SELECT * FROM {table} ORDER BY 1")


@pytest.mark.sqlite_only
def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer kb"):
        SqliteStore(path, seed=False)


@pytest.mark.sqlite_only
def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        SqliteStore(path, seed=False)


def test_invalid_diagnosis_is_not_written(kb_db: str) -> None:
    store = open_store(kb_db, seed=False)
    with pytest.raises(StoreError, match="diagnosis 0"):
        store.record_run({"format": "junit", "tests": 1, "passed": 0, "failures": 1, "errors": 0, "skipped": 0},
                         [], [{"rule": "r", "title": "t"}])
    assert store.counts()["runs"] == 0


def test_db_check_reports_a_corrupted_document(kb_db: str) -> None:
    store = _empty(kb_db)
    store.load_pack(parse_pack(PACK, "mini.yaml"))
    with store.write():
        store.query("UPDATE rules SET prior = 7")
    problems = store.check()
    assert problems and "rule mini-import" in problems[0] and "/prior" in problems[0]


@pytest.mark.sqlite_only  # where the file is: the same code path whatever KB_DB says
def test_find_db_walks_up_like_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KB_DB", raising=False)
    (tmp_path / ".kb").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_db(deep) == tmp_path / ".kb" / "kb.sqlite"
    monkeypatch.setenv("KB_DB", str(tmp_path / "x.sqlite"))
    assert find_db(deep) == tmp_path / "x.sqlite"
    monkeypatch.setenv("KB_DB", "postgresql://kb@db.example/kb")
    assert find_db(deep) == "postgresql://kb@db.example/kb"


@pytest.mark.sqlite_only
@pytest.mark.parametrize("url", ["mysql://kb:secret@db.example/kb", "sqlite:///tmp/kb.sqlite", "https://x/y"])
def test_a_url_kb_cannot_serve_is_an_error_not_a_file(url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match="cannot serve this database URL") as info:
        open_store(url)
    assert "secret" not in str(info.value)
    assert list(tmp_path.rglob("*")) == []  # no file made under the URL's name


def test_learned_counts_outcomes(kb_db: str) -> None:
    store = open_store(kb_db, seed=False)
    for verdict in ("verified", "verified", "failed", "rolled back", "plausible"):
        store.record_outcome("api:x", "r", verdict, {})
    assert store.learned("api:x") == (2, 2)
    assert store.all_learned() == {"api:x": (2, 2)}
    assert store.learned("api:y") == (0, 0)


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    bomb = b'pack: bomb\nversion: "1"\ndescription: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for level in "bcdefghi":
        bomb += f"{level}: &{level} [*{chr(ord(level) - 1)},*{chr(ord(level) - 1)},*{chr(ord(level) - 1)}]\n".encode()
    with pytest.raises(RuleError, match="aliases"):
        parse_pack(bomb, "bomb.yaml")


def test_rules_test_reports_a_failing_example(tmp_path: Path) -> None:
    from kb.ruletest import format_results, test_packs

    pack = tmp_path / "mine.yaml"
    pack.write_bytes(PACK.replace(b"ImportError: No module named 'x'", b"ImportError: cannot import name 'A' from 'b'"))
    results = test_packs([str(pack)])
    text = format_results(results)
    assert "✖ mini-import" in text and "no_match example 1 matched" in text and "1 rule(s) failed" in text


def test_a_recorded_run_keeps_failures_frames_and_diagnoses(kb_db: str) -> None:
    from kb.diagnose import diagnose

    from .conftest import REAL

    doc = diagnose([REAL / "pyjwt-1.5.3" / "report.xml"], db=kb_db)
    store = open_store(kb_db)
    rows = store.query_dicts(
        "SELECT f.test, fr.file, fr.line FROM failures f JOIN frames fr ON fr.failure_id = f.id "
        "WHERE f.run_id = ? ORDER BY f.seq, fr.seq", [doc["run_id"]])
    assert len({r["test"] for r in rows}) == 9
    assert ("jwt/api_jwt.py", 5) in {(r["file"], r["line"]) for r in rows}
    [diagnosis] = store.query_dicts("SELECT * FROM diagnoses WHERE run_id = ?", [doc["run_id"]])
    assert diagnosis["api_change"] == "collections-mapping" and diagnosis["tests"] == 9
    assert store.check() == []


def test_a_run_order_is_found_by_the_test_that_failed_in_it(kb_db: str) -> None:
    store = open_store(kb_db)
    failure = {"test": "tests/test_b.py::test_victim", "phase": "call", "exception": "AssertionError",
               "message": "assert [1] == []"}
    older = store.record_run({"sources": ["a"], "environment": {}}, [failure], [])
    newer = store.record_run({"sources": ["b"], "environment": {}}, [failure], [])
    other = store.record_run({"sources": ["c"], "environment": {}}, [], [])
    order = ["tests/test_a.py::test_polluter", "tests/test_b.py::test_victim"]
    for run_id in (older, newer, other):
        store.record_order(run_id, "/project", order, seed=1234, workers={})
    assert store.last_failing_order("tests/test_b.py::test_victim", "/project") == newer
    assert store.last_failing_order("test_b.py::test_victim", "/project") == newer  # the end of a node id
    assert store.last_failing_order("test_victim", "/project") == newer
    assert store.last_failing_order("b.py::test_victim", "/project") is None  # not a whole path part
    assert store.last_failing_order("tests/test_b.py::test_victim", "/elsewhere") is None
    assert store.run_order(newer) == {"run_id": newer, "root": "/project", "seed": 1234, "tests": order,
                                      "workers": {}}
    assert store.run_order(999) is None
    assert store.check() == []
