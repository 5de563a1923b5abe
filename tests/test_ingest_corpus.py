"""The counting oracle: every file of tests/corpus/reports (and reports-extra) per expected.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.errors import ReportError
from kb.ingest import read_report

from .conftest import CORPUS

SETS = ["reports", "reports-extra"]


def _entries() -> list:
    params = []
    for name in SETS:
        expected = json.loads((CORPUS / name / "expected.json").read_text(encoding="utf-8"))
        for rel, entry in expected["files"].items():
            params.append(pytest.param(CORPUS / name / rel, entry, id=f"{name}/{rel}"))
    return params


@pytest.mark.parametrize(("path", "entry"), _entries())
def test_oracle(path: Path, entry: dict) -> None:
    status, fmt = entry["status"], entry.get("format")
    if status == "reject":
        with pytest.raises(ReportError) as info:
            read_report(path)
        message = str(info.value)
        assert message.startswith(str(path) + ": ") and len(message) > len(str(path)) + 5
        assert "\n" not in message
        return
    if status == "not-junit":
        with pytest.raises(ReportError) as info:
            read_report(path)
        assert f"unsupported format: <{entry['root']}>" in str(info.value)
        return
    if fmt == "pytest-text":
        run = read_report(path)
        keys = ("passed", "failed", "errors", "skipped", "xfailed", "xpassed", "deselected", "warnings")
        assert {k: run.claimed.get(k, 0) for k in keys} == {k: entry.get(k, 0) for k in keys}
        return
    try:
        run = read_report(path)
    except ReportError as exc:
        if entry.get("acceptable_alternative", "").startswith("reject"):
            assert str(path) in str(exc)
            return
        raise
    got = (run.tests, run.failures, run.errors, run.skipped)
    assert got == (entry["tests"], entry["failures"], entry["errors"], entry["skipped"])
    assert run.passed == entry["tests"] - entry["failures"] - entry["errors"] - entry["skipped"]
    suite_level = sum(1 for r in run.results if r.phase == "suite")
    assert suite_level == entry.get("suite_level_failures_or_errors", 0) or \
        suite_level == len(entry.get("suite_level_failures_or_errors") or [])
