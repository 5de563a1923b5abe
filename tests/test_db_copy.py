"""``kb db copy``: a project's SQLite history into a shared PostgreSQL database and back, losslessly and
idempotently, several projects merged without duplicates; the command's messages (no password shown)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kb.diagnose import diagnose
from kb.rulepack import dump_pack
from kb.store import _tables, copy_store, open_store

from .conftest import REAL

CASES = ("pyjwt-1.5.3", "configargparse-1.2.3", "janus-0.4.0", "emcee-2.2.1")
USER_PACK = {"pack": "team-rules", "version": "1", "rules": [{
    "id": "team-no-module", "title": "Module {module} is not installed here", "explanation": "x",
    "source": "https://example.org/team", "prior": 0.4, "match": {"regex": r"No module named '(?P<module>[\w.]+)'"},
    "symptom": "missing_module", "examples": {"match": ["ModuleNotFoundError: No module named 'x'"],
                                              "no_match": ["ValueError: x"]}}]}


def _project_kb(folder: Path, cases: tuple[str, ...]) -> str:
    """A project's KB with a real history: diagnosed runs, fix outcomes, verdicts, a recorded order and a
    user pack."""
    db = folder / ".kb" / "kb.sqlite"
    (folder / ".kb" / "rules").mkdir(parents=True)
    (folder / ".kb" / "rules" / "team.yaml").write_text(dump_pack(USER_PACK))
    docs = [diagnose([REAL / case / "report.xml"], db=str(db)) for case in cases]
    with open_store(str(db)) as store:
        first = docs[0]["root_causes"][0]
        store.record_outcome(first["key"], first["rule"], "verified", {"fix": "f1", "title": first["title"]})
        store.record_outcome(first["key"], first["rule"], "rolled back", {"fix": "f2"})
        store.record_verdicts(docs[-1]["run_id"], [{"test": "t.py::test_a", "verdict": "flaky", "failed": 2,
                                                    "runs": 10}])
        store.record_verdicts(None, [{"test": "t.py::test_b", "verdict": "order-dependent", "failed": 1, "runs": 1}])
        store.record_order(docs[0]["run_id"], str(folder), ["t.py::test_a", "t.py::test_b"], seed=7)
    return str(db)


def _logical(location: str) -> dict[str, list[str]]:
    """Every table's rows with the ids a database assigns replaced by what they stand for (a run by its
    uid, a failure by its run and position), as sorted JSON: equal for the same knowledge and history."""
    with open_store(location) as store:
        runs = {run_id: uid for run_id, uid in store.query("SELECT id, uid FROM runs")}
        failures = {fid: [runs[run], seq] for fid, run, seq in store.query("SELECT id, run_id, seq FROM failures")}
        out: dict[str, list[str]] = {}
        for table in _tables():
            rows = []
            for row in store.query_dicts(f"SELECT * FROM {table}"):
                row.pop("loaded_at", None)  # when this database loaded the pack
                if table in ("runs", "failures", "diagnoses", "verdicts", "fix_outcomes"):
                    row["id"] = failures[row["id"]] if table == "failures" else None
                if row.get("run_id") is not None and "run_id" in row:
                    row["run_id"] = runs[row["run_id"]]
                if "failure_id" in row:
                    row["failure_id"] = failures[row["failure_id"]]
                rows.append(json.dumps(row, sort_keys=True, default=str))
            out[table] = sorted(rows)
        return out


def _counts(location: str) -> dict[str, int]:
    with open_store(location) as store:
        return {table: int(store.query(f"SELECT COUNT(*) FROM {table}")[0][0]) for table in _tables()}


@pytest.fixture
def shared(pg_server: Any) -> str:
    return pg_server.new_database()


def test_sqlite_to_postgresql_and_back_is_lossless_and_idempotent(tmp_path: Path, shared: str) -> None:
    source = _project_kb(tmp_path / "project", CASES)
    back = str(tmp_path / "back" / "kb.sqlite")
    with open_store(source) as src, open_store(shared) as dst:
        copied = copy_store(src, dst)
        assert copied["runs"] == len(CASES) and copied["fix_outcomes"] == 2 and copied["packs"] == 1
        assert copy_store(src, dst) == {"runs": 0}  # again: nothing new
        assert dst.check() == []
    with open_store(shared) as src, open_store(back) as dst:
        copy_store(src, dst)
    assert _counts(back) == _counts(shared) == _counts(source)
    assert _logical(back) == _logical(shared) == _logical(source)
    with open_store(back) as store:  # and the copied pack is knowledge there: it explains as before
        assert store.rule_doc("team-no-module") is not None
        assert store.learned(json.loads(store.query("SELECT doc FROM diagnoses ORDER BY id")[0][0])["key"]) == (1, 1)


def test_two_projects_merge_into_one_shared_database(tmp_path: Path, shared: str) -> None:
    one = _project_kb(tmp_path / "one", CASES[:2])
    two = _project_kb(tmp_path / "two", CASES[2:])
    for source in (one, two, one):
        with open_store(source) as src, open_store(shared) as dst:
            copy_store(src, dst)
    counts, first, second = _counts(shared), _counts(one), _counts(two)
    for table in ("runs", "failures", "frames", "diagnoses", "fix_outcomes", "verdicts", "run_orders"):
        assert counts[table] == first[table] + second[table], table
    with open_store(shared) as store:
        assert store.check() == []
        tests = {t for (t,) in store.query("SELECT test FROM failures")}
    assert any("jwt" in t for t in tests) and any("janus" in t.lower() or "test_" in t for t in tests)


def _kb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kb", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


def test_the_command_copies_and_never_shows_a_password(tmp_path: Path, shared: str) -> None:
    source = _project_kb(tmp_path / "project", CASES[:1])
    secret = shared.replace("postgresql://kb@", "postgresql://kb:s3cret@")  # trust auth ignores it
    done = _kb("db", "copy", source, secret)
    assert done.returncode == 0, done.stderr
    assert "1 runs" in done.stdout and "s3cret" not in done.stdout + done.stderr
    again = _kb("db", "copy", source, secret)
    assert again.returncode == 0 and "nothing new" in again.stdout
    check = _kb("db", "check", "--db", secret)
    assert check.returncode == 0 and "s3cret" not in check.stdout + check.stderr and " 1 runs" in check.stdout
    missing = _kb("db", "copy", str(tmp_path / "nope.sqlite"), secret)
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "nope.sqlite" in missing.stderr
    unreachable = _kb("db", "copy", source, "postgresql://kb:s3cret@/nodb?host=/nonexistent")
    assert unreachable.returncode == 1 and unreachable.stderr.count("\n") == 1
    assert "s3cret" not in unreachable.stderr and "cannot connect" in unreachable.stderr
    other = _kb("diagnose", str(REAL / "pyjwt-1.5.3" / "report.xml"), "--db", "mysql://kb:s3cret@db/kb")
    assert other.returncode == 1 and "cannot serve this database URL" in other.stderr and "s3cret" not in other.stderr
