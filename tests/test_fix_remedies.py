"""Remedies beyond a plain rename: pytest configuration (filterwarnings), quarantine with expiry,
nose-style methods, a keyword's string value, a constraint for an undeclared dependency, and
rules whose symptom starts with a release (version evidence) — each through real files and,
where it matters, real pytest runs."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from kb.diagnose import diagnose
from kb.fix import FixOptions, fix_rounds, plan_fix
from kb.fix.quarantine import plan_quarantine
from kb.fix.registry import Context
from kb.store import open_store

from .conftest import KbCli
from .projects import pytest_report, write_project

pytestmark = pytest.mark.backends  # the history and the fixes on SQLite and on PostgreSQL (conftest)


def _cause(remedy: dict, tests: list[str] | None = None) -> dict:
    return {"key": "rule:x", "rule": "x", "title": "x", "confidence": 0.9, "tests": tests or [], "neighbours": [],
            "remedies": [remedy]}


def _run_pytest(root: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rxXf"], cwd=root,
                          capture_output=True, text=True)
    return done.stdout


WARNS = ("import warnings\n\n\ndef old_api():\n    warnings.warn('old_api() is deprecated: use new_api', DeprecationWarning)\n"
         "    return 1\n\n\ndef test_old():\n    assert old_api() == 1\n\n\ndef test_other():\n    assert True\n")


@pytest.mark.parametrize(("config", "text"), [
    ("pytest.ini", "[pytest]\nfilterwarnings =\n    error\n"),
    ("pyproject.toml", '[project]\nname = "p"\n\n[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n'),
])
def test_a_warning_turned_error_is_ignored_by_message_after_approval(tmp_path: Path, config: str, text: str, kb_db: str) -> None:
    root = write_project(tmp_path / "proj", {config: text, "tests/test_w.py": WARNS})
    db = kb_db
    report = diagnose([pytest_report(root)], db=db)
    cause = report["root_causes"][0]
    assert cause["rule"] == "py-deprecation-as-error" and cause["tests"] == ["tests/test_w.py::test_old"]
    store = open_store(db)
    # medium risk: --yes leaves it alone ...
    events = list(fix_rounds(report, root, store, FixOptions(apply=True, yes=True, min_confidence=0.0)))
    assert [e.note for e in events if e.kind == "refused"] == [
        "medium risk: --yes applies only up to --max-risk low (add --max-risk medium, or approve it at the terminal without --yes)"]
    # ... a person approves it at the terminal
    events = list(fix_rounds(report, root, store, FixOptions(apply=True, interactive=True), approve=lambda item: True))
    outcome = next(e.outcome for e in events if e.kind == "outcome")
    assert outcome.verdict == "verified", outcome.note
    written = (root / config).read_text()
    assert r"ignore:old_api\(\) is deprecated" in written and "error" in written  # the one warning, not all
    assert "2 passed" in _run_pytest(root)  # pytest itself read the edited file (valid TOML, valid regex)


def test_quarantine_marks_the_tests_xfail_until_it_expires(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", {"tests/test_q.py": (
        '"""Docstring."""\nfrom __future__ import annotations\n\nimport random\n\n\n'
        "def test_flaky():\n    assert random.random() < 0\n\n\ndef test_fine():\n    assert True\n")})
    remedy = {"kind": "quarantine", "template": "quarantine", "params": {"days": 14, "reason": "flaky: failed 3 of 20"},
              "description": "Quarantine", "risk": "medium"}
    ctx = Context(root, ["tests/test_q.py::test_flaky"])
    today = date.today()
    planned = plan_quarantine(remedy, ctx, today)
    assert planned.refused is None and "import pytest" in planned.diff
    changes = planned.changes
    until = (today + timedelta(days=14)).isoformat()
    new = changes["tests/test_q.py"][1].decode()
    assert f"reason='kb quarantine until {until}: flaky: failed 3 of 20'" in new
    assert new.index("from __future__") < new.index("import pytest")  # after __future__, or it would not compile
    assert "def test_fine" in new and new.count("xfail") == 1
    (root / "tests/test_q.py").write_bytes(changes["tests/test_q.py"][1])
    assert "1 passed, 1 xfailed" in _run_pytest(root)
    # once it expires the mark lapses by itself and the failure counts again
    (root / "tests/test_q.py").write_bytes(changes["tests/test_q.py"][0])
    expired = plan_quarantine(remedy, Context(root, ["tests/test_q.py::test_flaky"]), today - timedelta(days=15))
    (root / "tests/test_q.py").write_bytes(expired.changes["tests/test_q.py"][1])
    assert "1 failed, 1 passed" in _run_pytest(root)


def test_a_code_edit_that_adds_xfail_is_refused_outside_quarantine(tmp_path: Path) -> None:
    root = write_project(tmp_path / "proj", {"tests/test_q.py": "def test_flaky():\n    assert False\n"})
    remedy = {"kind": "code-edit", "template": "quarantine", "params": {"until": "2099-01-01", "reason": "x"},
              "description": "hide it", "risk": "low"}
    plan = plan_fix({"root_causes": [_cause(remedy, ["tests/test_q.py::test_flaky"])]}, root).plans[0]
    assert plan.remedy is None and "adds 'pytest.mark.xfail'" in plan.skipped


NOSE = ("import unittest\n\n\nclass TestPlain:\n    def setUp(self):\n        self.value = 1\n\n"
        "    def test_value(self):\n        assert self.value == 1\n\n\n"
        "class TestUnit(unittest.TestCase):\n    def setUp(self):\n        self.value = 2\n\n"
        "    def test_value(self):\n        assert self.value == 2\n")


def test_nose_setup_is_renamed_on_plain_classes_only_and_verified(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root = write_project(tmp_path / "proj", {"tests/test_n.py": NOSE})
    db = kb_db
    # one failing test is thin evidence (0.69 with the installed pytest's version): a lower bar here
    out = kb_cli("fix", str(pytest_report(root)), "--root", str(root), "--apply", "--yes", "--min-confidence", "0.6",
              env={"KB_DB": str(db)})
    assert "verified:" in out.stdout, out.stdout + out.stderr
    assert "environment: pytest" in "".join(open_store(db).last_report()["root_causes"][0]["evidence"])
    text = (root / "tests/test_n.py").read_text()
    assert text == NOSE.replace("    def setUp(self):\n        self.value = 1", "    def setup_method(self):\n"
                                "        self.value = 1")  # the unittest.TestCase's setUp is left alone


def test_a_keyword_string_value_is_edited_in_code_but_not_in_comments(tmp_path: Path) -> None:
    text = ("import pandas as pd\n\n# freq='M' was month end\nidx = pd.date_range('2000', periods=3, freq='M')  "
            "# freq='M'\nother = pd.date_range('2000', periods=3, freq='MS', label='M')\n")
    root = write_project(tmp_path / "proj", {"mod.py": text})
    remedy = {"kind": "code-edit", "template": "replace-kwarg-value", "params": {"param": "freq", "old": "M", "new": "ME"},
              "description": "x", "risk": "low"}
    plan = plan_fix({"root_causes": [_cause(remedy)]}, root).plans[0]
    assert [(e.line, e.after) for e in plan.edits] == [
        (4, "idx = pd.date_range('2000', periods=3, freq='ME')  # freq='M'")]


def test_an_undeclared_dependency_is_constrained_in_the_test_dependencies(tmp_path: Path) -> None:
    tox = "[tox]\nenvlist = py311\n\n[testenv]\ndeps =\n    pytest\n    mock\ncommands = pytest\n"
    root = write_project(tmp_path / "proj", {"setup.py": "from setuptools import setup\nsetup(install_requires=['six'])\n",
                                        "tox.ini": tox})
    remedy = {"kind": "dependency-pin", "template": "pin-dependency", "params": {"requirement": "urllib3<2"},
              "description": "pin", "risk": "low"}
    plan = plan_fix({"root_causes": [_cause(remedy)]}, root).plans[0]
    assert plan.changes["tox.ini"][1].decode() == tox.replace("    mock\n", "    mock\n    urllib3<2\n")
    assert [(e.path, e.line) for e in plan.edits] == [("tox.ini", 8)]
    (root / "tox.ini").unlink()
    (root / "requirements-dev.txt").write_text("pytest")  # no final newline
    plan = plan_fix({"root_causes": [_cause(remedy)]}, root).plans[0]
    assert plan.changes["requirements-dev.txt"][1] == b"pytest\nurllib3<2\n"
    (root / "requirements-dev.txt").unlink()
    plan = plan_fix({"root_causes": [_cause(remedy)]}, root).plans[0]  # no test dependencies yet: a test extra
    assert plan.changes["setup.py"][1].decode().endswith(
        "setup(install_requires=['six'], extras_require={'test': ['urllib3<2']})\n")
    (root / "setup.py").unlink()
    plan = plan_fix({"root_causes": [_cause(remedy)]}, root).plans[0]
    assert plan.remedy is None and "has no place for test dependencies" in plan.skipped


@pytest.mark.parametrize(("pytest_version", "verdict"), [("9.2.0", "satisfied"), ("7.4.0", "contradicted"),
                                                         (None, "n/a")])
def test_a_rule_that_starts_with_a_release_weighs_the_installed_version(
        tmp_path: Path, pytest_version: str | None, verdict: str, kb_db: str) -> None:
    report = Path(__file__).parent / "corpus/real/emcee-2.2.1/report.xml"
    env = {"pytest": pytest_version} if pytest_version else {}
    cause = diagnose([report], db=kb_db, record=False, environment=env)["root_causes"][0]
    assert cause["rule"] == "pytest-nose-setup-not-called"
    expected = "unknown" if verdict == "n/a" else verdict
    assert cause["confidence_breakdown"]["version"] == expected


def test_two_causes_fixed_in_the_same_file_in_one_round(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    text = ("import array\nimport collections\n\n\n"
            "def test_bytes():\n    assert array.array('b', [1]).tostring() == b'\\x01'\n\n\n"
            "def test_mapping():\n    assert isinstance({}, collections.Mapping)\n")  # both gone in 3.10+
    root = write_project(tmp_path / "proj", {"tests/test_two.py": text})
    out = kb_cli("fix", str(pytest_report(root)), "--root", str(root), "--apply", "--yes", "--min-confidence", "0.5",
              env={"KB_DB": str(kb_db)})
    assert out.returncode == 0 and out.stdout.count("verified:") == 2, out.stdout + out.stderr
    fixed = (root / "tests/test_two.py").read_text()
    assert ".tobytes()" in fixed and "collections.abc.Mapping)" in fixed
    assert "2 passed" in _run_pytest(root)
