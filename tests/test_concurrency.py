"""Eight kb processes writing one fresh KB at once: no lost row, no "database is locked" — a SQLite file
nobody has created yet, and a PostgreSQL database nobody has migrated yet (the writers race to create,
migrate and seed it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kb.store import open_store

from .conftest import REAL

WRITERS = 8


@pytest.mark.slow
@pytest.mark.backends
def test_eight_writers_one_kb(kb_backend: str, tmp_path_factory: pytest.TempPathFactory,
                              request: pytest.FixtureRequest) -> None:
    if kb_backend == "postgresql":
        db = request.getfixturevalue("pg_server").new_database(template=None)
    else:
        db = str(tmp_path_factory.mktemp("shared") / "shared.sqlite")
    report = REAL / "janus-0.4.0" / "report.xml"
    procs = [subprocess.Popen([sys.executable, "-m", "kb", "diagnose", str(report), "--db", db,
                               "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(WRITERS)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    for code, _out, err in results:
        assert "locked" not in err
        assert code == 0, err
    run_ids = sorted(json.loads(out)["run_id"] for _code, out, _err in results)
    assert len(set(run_ids)) == WRITERS
    with open_store(db) as store:
        counts = store.counts()
        assert store.check() == []
        if kb_backend == "sqlite":
            assert store.query("PRAGMA journal_mode") == [("wal",)]
    per_run = json.loads(results[0][1])
    assert counts["runs"] == WRITERS
    assert counts["failures"] == WRITERS * (per_run["summary"]["failures"] + per_run["summary"]["errors"])
    assert counts["diagnoses"] == WRITERS * len(per_run["root_causes"])
    assert counts["packs"] >= 1
