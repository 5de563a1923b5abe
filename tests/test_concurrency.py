"""Eight kb processes writing one fresh KB at once: no lost row, no "database is locked"."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from .conftest import REAL

WRITERS = 8


def test_eight_writers_one_kb(tmp_path: Path) -> None:
    db = tmp_path / "shared.sqlite"  # not created yet: the writers also race to create and seed it
    report = REAL / "janus-0.4.0" / "report.xml"
    procs = [subprocess.Popen([sys.executable, "-m", "kb", "diagnose", str(report), "--db", str(db),
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
    conn = sqlite3.connect(db)
    try:
        runs = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        failures = conn.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
        diagnoses = conn.execute("SELECT COUNT(*) FROM diagnoses").fetchone()[0]
        packs = conn.execute("SELECT COUNT(*) FROM packs").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    per_run = json.loads(results[0][1])
    assert runs == WRITERS
    assert failures == WRITERS * (per_run["summary"]["failures"] + per_run["summary"]["errors"])
    assert diagnoses == WRITERS * len(per_run["root_causes"])
    assert packs >= 1
    assert mode == "wal"
