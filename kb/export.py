"""The datasette view of kb's history: ``kb export datasette OUT.db`` and ``kb serve``.

The export is a separate, clean SQLite database (the working KB stays private: its JSON documents,
migrations and locks are not for browsing) with plain columns, foreign keys, indexes, and a
``OUT.metadata.json`` beside it for datasette: titles, descriptions of every table and column,
units, default facets, and canned queries — fix success rate per rule, top root causes over time,
flaky tests, unresolved failures, fixes awaiting review. ``kb serve`` runs datasette on it, on
127.0.0.1 only. datasette is an optional extra (``pip install 'kb-selfheal[datasette]'``); kb
only starts it as a program, so nothing here imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .errors import KbError
from .store import Store, write_database

__all__ = ["export_datasette", "metadata", "metadata_of", "require_datasette", "serve", "QUERIES"]

QUERIES: dict[str, dict[str, str]] = {
    "fix_success_rate_per_rule": {
        "title": "Fix success rate per rule",
        "description": "Fixes kb applied for each rule's diagnoses and how they ended: verified (the re-run passed), "
                       "plausible (the targeted failures went away, others remain), rolled back.",
        "sql": "select rule, count(*) as attempts, sum(verdict = 'verified') as verified, "
               "sum(verdict = 'plausible') as plausible, sum(verdict in ('rolled back', 'failed')) as rolled_back, "
               "round(1.0 * sum(verdict in ('verified', 'plausible')) / count(*), 3) as success_rate "
               "from fix_outcomes where verdict in ('verified', 'plausible', 'rolled back', 'failed') "
               "group by rule order by attempts desc, rule",
    },
    "top_root_causes_over_time": {
        "title": "Top root causes over time",
        "description": "Per day, the root causes kb found and how many failing tests each explained.",
        "sql": "select substr(runs.created_at, 1, 10) as day, diagnoses.title, count(*) as runs, "
               "sum(diagnoses.tests) as tests from diagnoses join runs on runs.id = diagnoses.run_id "
               "group by day, diagnoses.title order by day desc, tests desc",
    },
    "flaky_tests": {
        "title": "Flaky tests",
        "description": "Tests kb saw pass and fail on the same code (kb run --repeat, kb isolate), with the "
                       "observed failure rate.",
        "sql": "select test, count(*) as verdicts, sum(failed) as failed, sum(runs) as runs, "
               "round(1.0 * sum(failed) / sum(runs), 3) as failure_rate from verdicts where verdict = 'flaky' "
               "group by test order by failure_rate desc, test",
    },
    "unresolved_failures": {
        "title": "Unresolved failures",
        "description": "Failures of the latest run of each source that no known root cause explains: the ones to "
                       "look at, or to write a rule for (kb suggest).",
        "sql": "select failures.run_id, failures.test, failures.exception, failures.message from failures "
               "where failures.diagnosis_id is null and failures.run_id = (select max(id) from runs "
               "where runs.sources = (select sources from runs r where r.id = failures.run_id)) "
               "order by failures.run_id desc, failures.test",
    },
    "fixes_awaiting_review": {
        "title": "Fixes awaiting review",
        "description": "Applied fixes whose verification was only plausible (other failures remained) and that "
                       "nobody has verified or undone since: review the diff, then keep or kb undo it.",
        "sql": "select o.created_at, o.fix_id, o.rule, o.title, o.note, o.diff from fix_outcomes o "
               "where o.verdict = 'plausible' and not exists (select 1 from fix_outcomes later "
               "where later.fix_id = o.fix_id and later.id > o.id) order by o.created_at desc",
    },
}

_TABLES: dict[str, dict[str, Any]] = {
    "runs": {
        "description": "Each test run kb read (kb diagnose, kb run, kb isolate).",
        "columns": {"created_at": "When kb recorded it (UTC, ISO 8601)", "sources": "Report files read",
                    "format": "Report format (junit, pytest-text, kb-run, ...)",
                    "command": "The test command kb ran (kb run), if it ran one",
                    "exit_status": "The test command's exit status", "problem": "Why no (complete) report, if so",
                    "seconds": "How long the test command ran", "tests": "Tests in the report",
                    "diagnosed": "Failing tests a root cause explains", "undiagnosed": "Failing tests nothing explains"},
        "units": {"seconds": "s"}, "facets": ["format"], "sort_desc": "id",
    },
    "failures": {
        "description": "Each failing or erroring test of a run, with the root cause that explains it (if any).",
        "columns": {"test": "pytest node id (or the report's test name)", "phase": "collection, setup, call, "
                    "teardown or suite", "exception": "Exception type", "message": "Exception message",
                    "file": "Where it was raised (innermost project frame)", "line": "Line in that file",
                    "diagnosis_id": "The root cause (diagnoses.id) that explains it; empty: undiagnosed"},
        "facets": ["exception", "phase"],
    },
    "diagnoses": {
        "description": "Root causes kb found in a run, most confident first (rank 0).",
        "columns": {"rank": "0 = the most confident cause of the run", "rule": "The symptom rule that matched",
                    "api_change": "The API-change row that explains it (if any)", "category": "Kind of cause",
                    "title": "What changed", "confidence": "0..1, with learning from recorded fixes",
                    "tests": "Failing tests it explains"},
        "facets": ["category", "rule"], "sort_desc": "run_id",
    },
    "fix_outcomes": {
        "description": "What happened to each fix kb applied (kb fix --apply) and each undo.",
        "columns": {"fix_id": "The fix's journal id (kb undo FIX_ID)", "verdict": "verified, plausible, "
                    "rolled back, failed or undone", "tests_before": "Failing tests it targeted",
                    "tests_after_failing": "Failing tests in the verification re-run", "note": "Why",
                    "diff": "The patch (git apply format)"},
        "facets": ["verdict", "rule"], "sort_desc": "id",
    },
    "verdicts": {
        "description": "The test orchestrator's verdicts: flaky (with the failure rate), order-dependent (with "
                       "the polluters), needs-setup, deterministic.",
        "columns": {"failed": "Runs in which the test failed", "runs": "Runs observed",
                    "failure_rate": "failed / runs", "detail": "Polluters or providers, steps, reproducer"},
        "facets": ["verdict"],
    },
    "rules": {
        "description": "Symptom rules of the loaded packs (built-in and the project's own).",
        "columns": {"prior": "Authored prior confidence", "source": "The upstream changelog or guide"},
        "facets": ["pack", "category", "symptom"],
    },
    "api_changes": {
        "description": "Rows of removed, renamed and changed APIs the rules join with.",
        "columns": {"removed_in": "The release that removed or changed it", "source": "Where it is documented"},
        "facets": ["package", "kind"],
    },
}


_SCHEMA: dict[str, tuple[dict[str, type], list[tuple[str, str, str]]]] = {
    "runs": ({"id": int, "created_at": str, "kb_version": str, "sources": str, "format": str, "command": str,
              "exit_status": int, "problem": str, "seconds": float, "tests": int, "passed": int, "failures": int,
              "errors": int, "skipped": int, "diagnosed": int, "undiagnosed": int}, []),
    "diagnoses": ({"id": int, "run_id": int, "rank": int, "rule": str, "api_change": str, "category": str,
                   "title": str, "confidence": float, "tests": int}, [("run_id", "runs", "id")]),
    "failures": ({"id": int, "run_id": int, "test": str, "phase": str, "exception": str, "message": str,
                  "file": str, "line": int, "diagnosis_id": int},
                 [("run_id", "runs", "id"), ("diagnosis_id", "diagnoses", "id")]),
    "fix_outcomes": ({"id": int, "created_at": str, "fix_id": str, "rule": str, "cause_key": str, "title": str,
                      "verdict": str, "tests_before": int, "tests_after_failing": int, "note": str, "diff": str}, []),
    "verdicts": ({"id": int, "run_id": int, "test": str, "verdict": str, "failed": int, "runs": int,
                  "failure_rate": float, "detail": str}, []),
    "rules": ({"id": str, "pack": str, "title": str, "category": str, "symptom": str, "prior": float,
               "source": str}, []),
    "api_changes": ({"id": str, "pack": str, "package": str, "module": str, "name": str, "kind": str,
                     "replacement": str, "removed_in": str, "source": str}, []),
}


def export_datasette(store: Store, out: str | Path) -> tuple[Path, Path]:
    """Write the clean database and its metadata; returns (database, metadata) paths. A folder that does not
    exist is one line (sqlite would otherwise blame the KB: "unable to open database file")."""
    out = Path(out)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise KbError(f"{out}: no folder {folder} to write into (create it first)")
    if out.is_dir():
        raise KbError(f"{out}: is a folder; name the database file to write")
    if out.exists():
        out.unlink()

    def rows(table: str, columns: str) -> list[tuple[Any, ...]]:
        return store.table_rows(table, columns.split(", "))

    runs = rows("runs", "id, created_at, kb_version, sources, format, command, exit_status, problem, seconds, tests, "
                        "passed, failures, errors, skipped, diagnosed, undiagnosed")
    explains: dict[tuple[int, str], int] = {}
    diagnoses = []
    for d_id, run_id, rank, rule, api, category, title, confidence, tests, doc in rows(
            "diagnoses", "id, run_id, rank, rule, api_change, category, title, confidence, tests, doc"):
        diagnoses.append({"id": d_id, "run_id": run_id, "rank": rank, "rule": rule, "api_change": api,
                          "category": category, "title": title, "confidence": confidence, "tests": tests})
        for test in json.loads(doc).get("tests", []):
            explains.setdefault((run_id, test), d_id)
    outcomes = []
    for o_id, created, cause, rule, verdict, doc in rows(
            "fix_outcomes", "id, created_at, cause_key, rule, verdict, doc"):
        body = json.loads(doc or "{}")
        after = body.get("tests_after") or {}
        outcomes.append({"id": o_id, "created_at": created, "fix_id": body.get("fix"), "rule": rule,
                         "cause_key": cause, "title": body.get("title"), "verdict": verdict,
                         "tests_before": body.get("tests_before"),
                         "tests_after_failing": (after.get("failures", 0) + after.get("errors", 0)) if after else None,
                         "note": body.get("note"), "diff": body.get("diff")})
    write_database(out, _SCHEMA, [
        ("runs", ({
            "id": r[0], "created_at": r[1], "kb_version": r[2], "sources": ", ".join(json.loads(r[3] or "[]")),
            "format": r[4], "command": " ".join(json.loads(r[5])) if r[5] else None, "exit_status": r[6],
            "problem": r[7], "seconds": r[8], "tests": r[9], "passed": r[10], "failures": r[11], "errors": r[12],
            "skipped": r[13], "diagnosed": r[14], "undiagnosed": r[15]} for r in runs)),
        ("diagnoses", diagnoses),
        ("failures", ({
            "id": f[0], "run_id": f[1], "test": f[2], "phase": f[3], "exception": f[4], "message": f[5],
            "file": f[6], "line": f[7], "diagnosis_id": explains.get((f[1], f[2]))} for f in rows(
                "failures", "id, run_id, test, phase, exception, message, file, line"))),
        ("fix_outcomes", outcomes),
        ("verdicts", ({
            "id": v[0], "run_id": v[1], "test": v[2], "verdict": v[3], "failed": v[4], "runs": v[5],
            "failure_rate": round(v[4] / v[5], 3) if v[5] else None, "detail": v[6]} for v in rows(
                "verdicts", "id, run_id, test, verdict, failed, runs, doc"))),
        ("rules", ({
            "id": r[0], "pack": r[1], "title": r[2], "category": r[3], "symptom": r[4], "prior": r[5],
            "source": r[6]} for r in rows("rules", "id, pack, title, category, symptom, prior, source"))),
        ("api_changes", ({
            "id": r[0], "pack": r[1], "package": r[2], "module": r[3], "name": r[4], "kind": r[5],
            "replacement": r[6], "removed_in": r[7], "source": r[8]} for r in rows(
                "api_changes", "id, pack, package, module, name, kind, replacement, removed_in, source"))),
    ], indexes=[("failures", ["run_id"]), ("failures", ["diagnosis_id"]), ("diagnoses", ["run_id"]),
                ("diagnoses", ["rule"]), ("fix_outcomes", ["rule"]), ("fix_outcomes", ["fix_id"]),
                ("verdicts", ["test"])])
    meta_path = _metadata_path(out)
    meta_path.write_text(json.dumps(metadata(out.stem), indent=2), encoding="utf-8")
    return out, meta_path


def _metadata_path(database: Path) -> Path:
    return database.with_suffix(".metadata.json")


def metadata_of(database: str | Path) -> Path:
    """The metadata file an export wrote beside ``database`` (a KbError when it is missing: not an export)."""
    meta = _metadata_path(Path(database))
    if not meta.exists():
        raise KbError(f"{meta}: missing (make the export with kb export datasette)")
    return meta


def metadata(name: str) -> dict[str, Any]:
    """datasette metadata for an export whose database is called ``name``."""
    return {
        "title": "kb: test failures, root causes and fixes",
        "description": "Exported by kb (kb export datasette). Root causes kb diagnosed in each test run, the fixes "
                       "it applied and how they ended, flaky and order-dependent tests, and the knowledge it used.",
        "source": "kb-selfheal",
        "databases": {name: {
            "tables": {table: dict(spec) for table, spec in _TABLES.items()},
            "queries": {key: dict(query) for key, query in QUERIES.items()},
        }},
    }


_NO_DATASETTE = "datasette is not installed: pip install 'kb-selfheal[datasette]'"


def require_datasette() -> None:
    """A KbError naming the extra to install when datasette is not installed for this interpreter (it runs
    as this interpreter's ``-m datasette``); nothing is imported."""
    import importlib.util

    if importlib.util.find_spec("datasette") is None:
        raise KbError(_NO_DATASETTE)


def serve(database: Path, metadata_path: Path, *, port: int = 8001, open_browser: bool = False) -> int:
    """Run datasette on ``database`` on 127.0.0.1 (until interrupted); returns its exit status."""
    probe = subprocess.run([sys.executable, "-c", "import datasette"], capture_output=True)
    if probe.returncode:
        raise KbError(_NO_DATASETTE)
    cmd = [sys.executable, "-m", "datasette", "serve", str(database), "--metadata", str(metadata_path),
           "--host", "127.0.0.1", "--port", str(port)]
    if open_browser:
        cmd.append("--open")
    try:
        return subprocess.run(cmd, env={**os.environ}).returncode
    except KeyboardInterrupt:
        return 0
