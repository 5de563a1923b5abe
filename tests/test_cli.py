"""kb as a user runs it: exit codes, one-line errors, formats, stdin, --no-record, kb db check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.validate import errors as schema_errors

from .conftest import CORPUS, REAL, KbCli

pytestmark = pytest.mark.backends  # the history and the fixes on SQLite and on PostgreSQL (conftest)

JANUS = REAL / "janus-0.4.0" / "report.xml"


def test_json_output_is_valid_against_the_schema(kb_cli: KbCli) -> None:
    result = kb_cli("diagnose", str(JANUS), "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert schema_errors(doc, "diagnosis") == []
    assert doc["run_id"] == 1


def test_text_and_markdown(tmp_path: Path, kb_cli: KbCli) -> None:
    text = kb_cli("diagnose", str(JANUS)).stdout
    assert text.splitlines()[0].startswith("kb ") and "Root causes (1)" in text
    md = kb_cli("diagnose", str(JANUS), "--format", "markdown", "--no-record").stdout
    assert md.startswith("# kb diagnosis") and "## Root causes (1)" in md


def test_stdin_and_output_file(tmp_path: Path, kb_cli: KbCli) -> None:
    out = tmp_path / "report.json"
    result = kb_cli("diagnose", "-", "--format", "json", "-o", str(out), input=JANUS.read_bytes())
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["summary"]["failures"] == 69


def test_several_files_and_a_directory(tmp_path: Path, kb_cli: KbCli) -> None:
    both = kb_cli("diagnose", str(JANUS), str(REAL / "pyjwt-1.5.3" / "report.xml"), "--format", "json", "--no-record")
    doc = json.loads(both.stdout)
    assert doc["summary"]["failures"] + doc["summary"]["errors"] == 69 + 9
    assert len(doc["root_causes"]) == 2
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "janus.xml").write_bytes(JANUS.read_bytes())
    (tmp_path / "a" / "notes.md").write_text("not a report")
    (tmp_path / "a" / "b").mkdir()
    (tmp_path / "a" / "b" / "fs.txt").write_bytes((REAL / "fs-2.4.16" / "pytest.txt").read_bytes())
    folder = kb_cli("diagnose", str(tmp_path / "a"), "--format", "json", "--no-record")
    assert folder.returncode == 0, folder.stderr
    doc = json.loads(folder.stdout)
    assert doc["summary"]["failures"] + doc["summary"]["errors"] == 69 + 41
    assert [len(c["tests"]) for c in doc["root_causes"]] == [69, 41] or \
        sorted(len(c["tests"]) for c in doc["root_causes"]) == [41, 69]


def test_no_record_leaves_the_history_alone(_isolated_kb: Path, kb_cli: KbCli) -> None:
    kb_cli("diagnose", str(JANUS), "--no-record")
    check = kb_cli("db", "check")
    assert check.returncode == 0, check.stderr
    assert " 0 runs" in check.stdout
    kb_cli("diagnose", str(JANUS))
    assert " 1 runs" in kb_cli("db", "check").stdout


@pytest.mark.parametrize("name", ["handmade/not-xml-bacon.txt", "handmade/zero-bytes.xml",
                                  "pytest/truncated-corrupt.xml", "handmade/xxe-external-entity.xml"])
def test_bad_report_is_one_line_exit_1(name: str, kb_cli: KbCli) -> None:
    path = CORPUS / "reports" / name
    result = kb_cli("diagnose", str(path))
    assert result.returncode == 1
    err = result.stderr
    assert len(err.strip().splitlines()) == 1 and str(path) in err and "Traceback" not in err


def test_missing_file_and_debug_traceback(kb_cli: KbCli) -> None:
    result = kb_cli("diagnose", "/nonexistent/report.xml")
    assert result.returncode == 1 and "/nonexistent/report.xml" in result.stderr
    assert "Traceback" not in result.stderr
    debug = kb_cli("--debug", "diagnose", "/nonexistent/report.xml")
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_usage_errors_exit_2(kb_cli: KbCli) -> None:
    assert kb_cli("diagnose").returncode == 2
    assert kb_cli("diagnose", str(JANUS), "--format", "yaml").returncode == 2
    assert kb_cli("no-such-command").returncode == 2


@pytest.mark.sqlite_only
def test_db_check_fails_on_a_broken_kb(tmp_path: Path, kb_cli: KbCli) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all" * 50)
    result = kb_cli("db", "check", "--db", str(bad))
    assert result.returncode == 1 and str(bad) in result.stderr


@pytest.mark.builtin_packs
@pytest.mark.sqlite_only  # the packs' examples: no knowledge base is read
def test_rules_test_passes_on_the_builtin_packs(kb_cli: KbCli) -> None:
    result = kb_cli("rules", "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all passed" in result.stdout
