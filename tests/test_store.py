"""The knowledge base: migrations, whole-pack refusal, validation on write, kb db check."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from kb.errors import RuleError, StoreError
from kb.rulepack import parse_pack
from kb.store import MIGRATIONS, SCHEMA_VERSION, Store, find_db

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


def test_pack_loads(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb.sqlite", seed=False)
    store.load_pack(parse_pack(PACK, "mini.yaml"))
    counts = store.counts()
    assert (counts["rules"], counts["api_changes"], counts["distributions"]) == (1, 1, 1)
    assert store.rules()[0].literal == "cannot import name '"
    assert store.check() == []


@pytest.mark.parametrize(("mutate", "where"), [
    (lambda t: t.replace(b"prior: 0.5", b"prior: 5"), "/rules/0/prior"),
    (lambda t: t.replace(b"kind: moved", b"kind: vanished"), "/api_changes/0/kind"),
    (lambda t: t.replace(b"(?P<module>", b"(?P<modul>"), "/rules/0/match/regex"),
    (lambda t: t.replace(b"[\\\\w.]+)' from", b"(?:\\\\w+)+)' from"), "/rules/0/match/regex"),
    (lambda t: t.replace(b"  - {import: yaml", b"  - {import: yaml, distribution: a}\n  - {import: yaml"),
     "/distributions/1/import"),
    (lambda t: t + b"  - : [\n", "line"),
])
def test_invalid_pack_is_refused_whole(tmp_path: Path, mutate, where: str) -> None:
    store = Store(tmp_path / "kb.sqlite", seed=False)
    with pytest.raises(RuleError) as info:
        store.load_pack(parse_pack(mutate(PACK), "bad.yaml"))
    message = str(info.value)
    assert message.startswith("bad.yaml: ") and where in message
    assert store.counts()["rules"] == 0 and store.counts()["packs"] == 0


def test_migration_upgrades_an_old_db_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite_utils.Database(path)
    MIGRATIONS[0](db)
    db["packs"].insert({"name": "old", "version": "0", "origin": "x", "sha256": "y", "loaded_at": "z"})
    db.execute("PRAGMA user_version = 1")
    db.close()
    store = Store(path, seed=False)
    assert store.user_version == SCHEMA_VERSION
    assert [r["name"] for r in store.db["packs"].rows] == ["old"]
    assert "runs" in store.db.table_names() and "fix_outcomes" in store.db.table_names()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer kb"):
        Store(path, seed=False)


def test_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        Store(path, seed=False)


def test_invalid_diagnosis_is_not_written(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb.sqlite", seed=False)
    with pytest.raises(StoreError, match="diagnosis 0"):
        store.record_run({"format": "junit", "tests": 1, "passed": 0, "failures": 1, "errors": 0, "skipped": 0},
                         [], [{"rule": "r", "title": "t"}])
    assert store.counts()["runs"] == 0


def test_db_check_reports_a_corrupted_document(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb.sqlite", seed=False)
    store.load_pack(parse_pack(PACK, "mini.yaml"))
    store.db.execute("UPDATE rules SET prior = 7")
    store.db.conn.commit()
    problems = store.check()
    assert problems and "rule mini-import" in problems[0] and "/prior" in problems[0]


def test_find_db_walks_up_like_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KB_DB", raising=False)
    (tmp_path / ".kb").mkdir()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_db(deep) == tmp_path / ".kb" / "kb.sqlite"
    monkeypatch.setenv("KB_DB", str(tmp_path / "x.sqlite"))
    assert find_db(deep) == tmp_path / "x.sqlite"


def test_learned_counts_outcomes(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb.sqlite", seed=False)
    store.db["fix_outcomes"].insert_all([
        {"created_at": "t", "cause_key": "api:x", "rule": "r", "verdict": v, "run_id": None, "doc": json.dumps({})}
        for v in ("verified", "verified", "failed", "rolled back", "plausible")])
    assert store.learned("api:x") == (2, 2)
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


def test_a_recorded_run_keeps_failures_frames_and_diagnoses(tmp_path: Path) -> None:
    from kb.diagnose import diagnose

    from .conftest import REAL

    doc = diagnose([REAL / "pyjwt-1.5.3" / "report.xml"], db=tmp_path / "kb.sqlite")
    store = Store(tmp_path / "kb.sqlite")
    rows = list(store.db.query(
        "SELECT f.test, fr.file, fr.line FROM failures f JOIN frames fr ON fr.failure_id = f.id "
        "WHERE f.run_id = ? ORDER BY f.seq, fr.seq", [doc["run_id"]]))
    assert len({r["test"] for r in rows}) == 9
    assert ("jwt/api_jwt.py", 5) in {(r["file"], r["line"]) for r in rows}
    [diagnosis] = store.db["diagnoses"].rows_where("run_id = ?", [doc["run_id"]])
    assert diagnosis["api_change"] == "collections-mapping" and diagnosis["tests"] == 9
    assert store.check() == []


def test_a_run_order_is_found_by_the_test_that_failed_in_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb.sqlite")
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
