"""IntegrationTestOrchestrator, first piece: targeted re-runs of chosen tests.

``run_tests(node_ids, root)`` runs the project's test command on just those pytest node ids with
a JUnit report in a temporary file and returns what kb read from it. The command defaults to
this interpreter's ``-m pytest`` (run kb from the project's environment, or pass
``command=["/path/to/venv/bin/python", "-m", "pytest"]``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import FixError, ReportError
from .ingest import read_report
from .models import Run

__all__ = ["TestRun", "run_tests", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 900


@dataclass
class TestRun:
    __test__ = False  # not a pytest test class

    returncode: int
    run: Run | None
    output: str
    command: list[str]


def run_tests(node_ids: Sequence[str], root: str | Path, command: Sequence[str] | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> TestRun:
    """Run ``node_ids`` with the test command in ``root``; the JUnit report is read back with kb's reader."""
    base = list(command) if command else [sys.executable, "-m", "pytest"]
    with tempfile.TemporaryDirectory(prefix="kb-run-") as tmp:
        report = Path(tmp) / "report.xml"
        cmd = [*base, "-p", "no:cacheprovider", "-q", f"--junitxml={report}", *node_ids]
        try:
            done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        except FileNotFoundError:
            raise FixError(f"test command not found: {base[0]}") from None
        except subprocess.TimeoutExpired:
            return TestRun(-1, None, f"timed out after {timeout:.0f} s", cmd)
        output = (done.stdout or "") + (done.stderr or "")
        try:
            run = read_report(report) if report.exists() else None
        except ReportError:
            run = None
        return TestRun(done.returncode, run, output, cmd)
