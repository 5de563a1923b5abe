"""Generated projects for the tests that run kb on real files: one writer, shared."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def write_project(root: Path, files: dict[str, str] | dict[str, str | bytes]) -> Path:
    """Write ``files`` (path relative to ``root`` → text or bytes) under ``root``; returns ``root``."""
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return root


def pytest_report(root: Path) -> Path:
    """Run pytest in ``root`` and return the JUnit report it wrote (beside ``root``)."""
    report = root.parent / f"{root.name}-report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
                   cwd=root, capture_output=True)
    return report
