"""The datasette export: a clean database plus metadata, served by datasette itself on 127.0.0.1,
and every canned query returns the rows the recorded history implies — exported from a SQLite KB and
from a PostgreSQL one."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kb.diagnose import diagnose
from kb.export import QUERIES, export_datasette
from kb.store import open_store

from .conftest import BACKENDS
from .readme import ROOT

REAL = ROOT / "tests/corpus/real"


@pytest.fixture(scope="module", params=BACKENDS)
def exported(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("export")
    db = request.getfixturevalue("pg_server").new_database() if request.param == "postgresql" else str(tmp / "kb.sqlite")
    for case in ("pyjwt-1.5.3", "configargparse-1.2.3", "janus-0.4.0"):
        diagnose([REAL / case / "report.xml"], db=db)
    store = open_store(db)
    [jwt] = store.query_dicts("SELECT * FROM diagnoses WHERE rule = ?", ["py-cannot-import-name"])
    [janus] = store.query_dicts("SELECT * FROM diagnoses WHERE run_id = 3 AND rank = 0")
    # what kb fix records (kb.fix.apply_fix / undo_fix call exactly this)
    store.record_outcome(jwt["cause_key"], jwt["rule"], "verified", {"fix": "f1", "title": jwt["title"], "diff": "d1",
                                                                     "tests_before": 9, "tests_after": {"failures": 0}})
    store.record_outcome(janus["cause_key"], janus["rule"], "plausible", {"fix": "f2", "title": janus["title"],
                                                                         "diff": "d2", "note": "1 failure remains"})
    store.record_outcome(janus["cause_key"], janus["rule"], "rolled back", {"fix": "f3", "title": janus["title"]})
    store.record_outcome(jwt["cause_key"], jwt["rule"], "plausible", {"fix": "f4", "title": jwt["title"]})
    store.record_outcome(jwt["cause_key"], jwt["rule"], "undone", {"fix": "f4", "title": jwt["title"]})
    store.record_verdicts(3, [{"test": "t.py::test_a", "verdict": "flaky", "failed": 3, "runs": 20},
                              {"test": "t.py::test_b", "verdict": "order-dependent", "failed": 1, "runs": 1}])
    database, meta = export_datasette(store, tmp / "kb-history.db")
    store.close()
    return database, meta


def test_the_export_is_clean_and_documented(exported: tuple[Path, Path]) -> None:
    database, meta = exported
    conn = sqlite3.connect(database)
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    assert tables == {"runs", "failures", "diagnoses", "fix_outcomes", "verdicts", "rules", "api_changes"}
    assert conn.execute("pragma foreign_key_check").fetchall() == []
    undiagnosed = conn.execute("select count(*) from failures where diagnosis_id is null").fetchone()[0]
    assert undiagnosed == 5 + 0 + 0  # configargparse's five; pyjwt and janus are explained
    doc = json.loads(meta.read_text())
    tables_meta = doc["databases"]["kb-history"]["tables"]
    assert set(tables_meta) == tables and all(t["description"] for t in tables_meta.values())
    assert set(doc["databases"]["kb-history"]["queries"]) == set(QUERIES)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_datasette_serves_it_and_the_canned_queries_answer(exported: tuple[Path, Path]) -> None:
    database, meta = exported
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "datasette", "serve", str(database), "--metadata", str(meta),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}/kb-history"

        def rows(query: str) -> list[dict]:
            with urllib.request.urlopen(f"{base}/{query}.json?_shape=array", timeout=10) as response:
                return json.loads(response.read())

        deadline = time.monotonic() + 30
        while True:
            try:
                rows("runs")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        rates = {r["rule"]: r for r in rows("fix_success_rate_per_rule")}
        jwt = rates["py-cannot-import-name"]
        assert (jwt["attempts"], jwt["verified"], jwt["plausible"], jwt["rolled_back"]) == (2, 1, 1, 0)
        assert jwt["success_rate"] == 1.0
        other = [r for rule, r in rates.items() if rule != "py-cannot-import-name"][0]
        assert (other["attempts"], other["rolled_back"], other["success_rate"]) == (2, 1, 0.5)
        causes = rows("top_root_causes_over_time")
        assert len(causes) == 2 and all(c["day"] and c["runs"] == 1 for c in causes)
        assert any("collections.Mapping" in c["title"] and c["tests"] == 9 for c in causes)
        assert rows("flaky_tests") == [{"test": "t.py::test_a", "verdicts": 1, "failed": 3, "runs": 20,
                                        "failure_rate": 0.15}]
        unresolved = rows("unresolved_failures")
        assert len(unresolved) == 5 and {u["exception"] for u in unresolved} == {"AssertionError"}
        review = rows("fixes_awaiting_review")
        assert [r["fix_id"] for r in review] == ["f2"]  # f4 was undone, f1 verified, f3 rolled back
        with urllib.request.urlopen(f"{base}/fix_outcomes", timeout=10) as response:
            page = response.read().decode()
        assert "What happened to each fix kb applied" in page  # the metadata's description is shown
    finally:
        server.terminate()
        server.wait(timeout=10)
