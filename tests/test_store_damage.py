"""A damaged knowledge base is one clear line, and kb db check lists what is wrong (no internal error)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPORT = Path(__file__).parent / "corpus/real/pyjwt-1.5.3/report.xml"


def _kb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kb", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kb") / "kb.sqlite"
    assert _kb("diagnose", str(REPORT), "--db", str(path)).returncode == 0
    return path


def _damaged(healthy: Path, tmp_path: Path, how: str) -> Path:
    path = tmp_path / f"{how}.sqlite"
    shutil.copy(healthy, path)
    if how == "pages":
        with open(path, "r+b") as handle:
            handle.seek(8192)
            handle.write(b"\xff" * 4096)
    elif how == "dropped":
        conn = sqlite3.connect(path)
        conn.execute("DROP TABLE verdicts")
        conn.commit()
        conn.close()
    else:
        path.write_bytes(healthy.read_bytes()[:100] + b"\x00" * 50)
    return path


@pytest.mark.parametrize("how", ["pages", "dropped", "truncated"])
def test_a_damaged_kb_is_one_line_and_db_check_lists_it(healthy: Path, tmp_path: Path, how: str) -> None:
    path = _damaged(healthy, tmp_path, how)
    for args in (("diagnose", str(REPORT), "--db", str(path)), ("db", "check", "--db", str(path))):
        done = _kb(*args)
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("kb: error:")]
        if done.returncode:
            assert done.returncode == 1 and len(errors) == 1 and str(path) in errors[0], done.stderr
    if how == "dropped":  # never silently re-created without its keys
        assert "verdicts" not in sqlite3.connect(path).execute(
            "SELECT group_concat(name) FROM sqlite_master WHERE type='table'").fetchone()[0]
        assert "problem: table verdicts is missing" in _kb("db", "check", "--db", str(path)).stderr
