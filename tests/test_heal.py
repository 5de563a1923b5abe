"""kb heal and the proof a fix needs, through real pytest runs on generated projects (Python ≥ 3.11:
``collections.Mapping`` and ``inspect.getargspec`` are gone)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kb.cli import cli
from kb.fix import FixOptions, apply_fix, plan_fix
from kb.journal import Journal
from kb.store import open_store

from .projects import write_project

pytestmark = [pytest.mark.skipif(sys.version_info < (3, 11), reason="inspect.getargspec exists before 3.11"),
              pytest.mark.backends]  # the history and the fixes on SQLite and on PostgreSQL (conftest)

PROJECT = {
    "pkg/__init__.py": "",
    "pkg/compat.py": "from collections import (\n    OrderedDict,  # kept\n    Mapping,\n)\n\n\n"
                     "def kind(x):\n    return 'map' if isinstance(x, Mapping) else type(x).__name__\n",
    "pkg/spec.py": "import inspect\n\n\ndef arg_names(func):\n"
                   "    args, varargs, keywords, defaults = inspect.getargspec(func)\n    return args\n",
    "tests/test_compat.py": "from pkg.compat import kind\n\n\ndef test_kind():\n    assert kind({}) == 'map'\n",
    "tests/test_spec.py": "from pkg.spec import arg_names\n\n\ndef test_names():\n"
                          "    assert arg_names(lambda a, b=1: 0) == ['a', 'b']\n",
}




def test_heal_runs_fixes_and_reruns_until_green(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", PROJECT)
    patch = tmp_path / "heal.patch"
    result = CliRunner().invoke(cli, ["heal", "--yes", "--root", str(root), "--patch", str(patch), "--",
                                      sys.executable, "-m", "pytest", "tests"])
    assert result.exit_code == 0, result.output
    # pytest stops at the collection error: the second cause shows only once the first is fixed
    assert "round 2: 2 test(s), 1 failing, 1 known cause(s) to fix" in result.output
    assert "round 3: all 2 test(s) pass" in result.output
    assert result.output.count("   verified: ") == 2
    assert (root / "pkg/spec.py").read_text().endswith(
        "    args, varargs, keywords, defaults = inspect.getfullargspec(func)[:4]\n    return args\n")
    assert "from collections.abc import Mapping" in (root / "pkg/compat.py").read_text()
    assert "OrderedDict,  # kept" in (root / "pkg/compat.py").read_text()
    text = patch.read_text()
    assert "a/pkg/spec.py" in text and "a/pkg/compat.py" in text
    assert result.output.rstrip().endswith("2 fix(es) verified, 0 rolled back, 0 not applied, "
                                           "0 cause(s) without a fix kb can apply")


def test_a_rename_that_breaks_the_unpacking_is_rolled_back(tmp_path: Path, kb_db: str) -> None:
    """getargspec → getfullargspec without keeping four names: the targeted test fails with
    "too many values to unpack" — a new, unknown failure, so the edit is wrong."""
    root = write_project(tmp_path / "proj", PROJECT)
    before = (root / "pkg/spec.py").read_bytes()
    cause = {"key": "getargspec", "rule": "py-removed-attribute", "title": "inspect.getargspec was removed",
             "confidence": 0.9, "tests": ["tests/test_spec.py::test_names"], "neighbours": [],
             "remedies": [{"kind": "code-edit", "template": "rename-attribute", "risk": "low", "description": "rename",
                           "params": {"old": "getargspec", "new": "getfullargspec"}}]}
    [item] = plan_fix({"root_causes": [cause]}, root).plans
    assert "getfullargspec(func)" in item.diff and "[:4]" not in item.diff
    store = open_store(kb_db)
    try:
        outcome = apply_fix(item, root, store, FixOptions(test_command=[sys.executable, "-m", "pytest"]))
    finally:
        store.close()
    assert outcome.verdict == "rolled back"
    assert "new way (ValueError: too many values to unpack" in outcome.note, outcome.note
    assert (root / "pkg/spec.py").read_bytes() == before
    assert [e.state for e in Journal(root).entries()] == ["rolled back"]


def test_nothing_to_fix_is_said(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", {"tests/test_ok.py": "def test_ok():\n    assert 1\n"})
    report = tmp_path / "report.xml"
    report.write_text('<testsuite tests="1" failures="0"><testcase classname="tests.test_ok" name="test_ok"/></testsuite>')
    result = CliRunner().invoke(cli, ["fix", str(report), "--root", str(root), "--apply", "--yes"])
    assert result.exit_code == 0, result.output
    assert "nothing to fix" in result.output
    result = CliRunner().invoke(cli, ["heal", "--root", str(root), "--", sys.executable, "-m", "pytest"])
    assert result.exit_code == 0 and "round 1: all 1 test(s) pass" in result.output
