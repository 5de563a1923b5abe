"""The built wheel works on its own: data folders, kb.engine mapping, both entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import REAL

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("kb_selfheal-*.whl"))


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("kb/cli.py", "kb/py.typed", "kb/engine/runner.py", "kb/schemas/diagnosis.schema.json",
                     "kb/schemas/rule-pack.schema.json", "kb/packs/python-core.yaml", "kb/fixes/__init__.py",
                     "kb/fixes/golden.yaml", "kb/fixes/filterwarnings.j2", "kb/schemas/log-record.schema.json",
                     "kb/fix/transaction.py", "kb/fix/codemods/__init__.py", "kb/testenv.py",
                     "kb/packs/test-behaviour.yaml", "kb/pytest_plugin.py", "kb/packs/mined-python.json.gz",
                     "kb/knowledge/mine.py", "kb/owners.py"):
        assert expected in names
    assert not any(n.startswith(("engine/", "schemas/", "fixes/", "tests/")) for n in names)
    # every module of the kb package is shipped (a subpackage missing from setup.cfg's list would not be)
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "kb").rglob("*.py")}
    assert modules <= names, sorted(modules - names)
    archive = zipfile.ZipFile(wheel)
    entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "[pytest11]\nkb = kb.pytest_plugin" in entry_points and "kb = kb.cli:main" in entry_points


def test_wheel_runs_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site), "KB_DB": str(tmp_path / "kb.sqlite")}
    where = subprocess.run([sys.executable, "-c", "import kb, kb.engine; print(kb.__file__, kb.engine.__file__)"],
                           cwd=tmp_path, env=env, check=True, capture_output=True, text=True).stdout
    assert where.count(str(site)) == 2
    result = subprocess.run([sys.executable, "-m", "kb", "diagnose", str(REAL / "pyjwt-1.5.3" / "report.xml")],
                            cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "collections.Mapping" in result.stdout
