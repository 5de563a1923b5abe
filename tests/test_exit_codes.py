"""The README's exit-code table is true: every row is read from the README and checked against a real
invocation of kb's entry point (in-process through ``kb.cli.main``; real pytest where the row needs it)."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import REAL, Ran, run_kb
from .projects import write_project

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
PYJWT = str(REAL / "pyjwt-1.5.3" / "report.xml")  # one root cause, nothing undiagnosed
CONFIGARGPARSE = str(REAL / "configargparse-1.2.3" / "report.xml")  # five undiagnosed failures, no cause
PASSING = '<testsuite tests="1" failures="0"><testcase classname="tests.test_ok" name="test_ok"/></testsuite>'
PACK = """\
pack: exit-codes
version: 1.0.0
rules:
- id: exit-codes-heading
  title: argparse's help heading changed
  category: stdlib-output-change
  explanation: Python 3.10 renamed a heading.
  source: https://docs.python.org/3/whatsnew/3.10.html#argparse
  prior: 0.7
  match:
    regex: "optional arguments:.*? not found"
    exception: [AssertionError]
  symptom: direct
  remedies:
  - kind: manual
    description: Accept both headings
    risk: medium
  examples:
    match:
    - "AssertionError: 'optional arguments:' not found in 'options:'"
    no_match:
    - "AssertionError: 'positional arguments:' not found in 'usage: x'"
"""


def table() -> list[tuple[str, str, str]]:
    """The rows of the README's exit-code table: (command, status, when)."""
    found = re.search(r"<!-- exit-codes -->\s*\n((?:\|.*\n)+)", README)
    assert found, "README has no table marked exit-codes"
    rows = []
    for line in found.group(1).splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0].strip("`"), cells[1], cells[2]))
    return rows


# -- one check per row; each asserts its status and, where it can, the other side of the condition

def every_0(tmp: Path) -> None:
    assert run_kb("diagnose", PYJWT, "--no-record").returncode == 0


def every_1(tmp: Path) -> None:
    bad = tmp / "bad.xml"
    bad.write_text("<testsuite><testcase")
    done = run_kb("diagnose", str(bad))
    assert done.returncode == 1 and done.stderr.startswith("kb: error: ") and len(done.stderr.splitlines()) == 1, done.stderr
    missing = run_kb("export", "datasette", str(tmp / "no" / "such" / "x.db"))
    assert missing.returncode == 1 and missing.stderr.startswith("kb: error: ") and "no folder" in missing.stderr


def every_2(tmp: Path) -> None:
    assert run_kb("diagnose", PYJWT, "--no-such-option").returncode == 2
    assert run_kb("diagnose", PYJWT, "--fail-on", "sometimes").returncode == 2


def every_130(tmp: Path) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("kb.diagnose.diagnose", interrupted)
        done = run_kb("diagnose", PYJWT)
    assert done.returncode == 130 and done.stderr.strip() == "kb: interrupted"  # click ends the ^C line first


def diagnose_default(tmp: Path) -> None:
    assert run_kb("diagnose", CONFIGARGPARSE, "--no-record").returncode == 0
    assert run_kb("diagnose", PYJWT, "--no-record", "--fail-on", "never").returncode == 0


def diagnose_undiagnosed(tmp: Path) -> None:
    assert run_kb("diagnose", CONFIGARGPARSE, "--no-record", "--fail-on", "undiagnosed").returncode == 1
    assert run_kb("diagnose", PYJWT, "--no-record", "--fail-on", "undiagnosed").returncode == 0


def diagnose_cause(tmp: Path) -> None:
    assert run_kb("diagnose", PYJWT, "--no-record", "--fail-on", "cause").returncode == 1
    assert run_kb("diagnose", CONFIGARGPARSE, "--no-record", "--fail-on", "cause").returncode == 0


def diagnose_any(tmp: Path) -> None:
    assert run_kb("diagnose", CONFIGARGPARSE, "--no-record", "--fail-on", "any").returncode == 1
    passing = tmp / "ok.xml"
    passing.write_text(PASSING)
    assert run_kb("diagnose", str(passing), "--no-record", "--fail-on", "any").returncode == 0


def _stub_run(tmp: Path, report: str, status: int, *options: str) -> Ran:
    """kb run on a command that exits ``status`` after its report ``report`` is in place."""
    shutil.copy(report, tmp / "report.xml")
    return run_kb("run", "--root", str(tmp), "--report", "report.xml", "--quiet", *options, "--",
              sys.executable, "-c", f"import sys; sys.exit({status})")


def run_status(tmp: Path) -> None:
    assert _stub_run(tmp, PYJWT, 5).returncode == 5
    assert _stub_run(tmp, PYJWT, 0, "--fail-on", "status").returncode == 0


def run_gates(tmp: Path) -> None:
    for report, fail_on, status in ((CONFIGARGPARSE, "never", 0), (CONFIGARGPARSE, "undiagnosed", 1),
                                    (PYJWT, "undiagnosed", 0), (PYJWT, "cause", 1), (CONFIGARGPARSE, "cause", 0),
                                    (CONFIGARGPARSE, "any", 1)):
        assert _stub_run(tmp, report, 5, "--fail-on", fail_on).returncode == status, (report, fail_on)


def run_cannot(tmp: Path) -> None:
    done = run_kb("run", "--root", str(tmp), "--", "no-such-command-kb-test")
    assert done.returncode == 1 and "command not found: no-such-command-kb-test" in done.stderr


def fix_ok(tmp: Path) -> None:
    assert run_kb("fix", PYJWT, "--root", str(tmp)).returncode == 0  # a dry run
    passing = tmp / "ok.xml"
    passing.write_text(PASSING)
    done = run_kb("fix", str(passing), "--root", str(tmp), "--apply", "--yes")
    assert done.returncode == 0 and "nothing to fix" in done.stdout


def fix_rolled_back(tmp: Path) -> None:
    root = write_project(tmp / "proj", {  # the fix breaks a neighbouring test: rolled back
        "pkg/__init__.py": "",
        "pkg/core.py": "def raw(a):\n    return a.tostring()\n",
        "tests/test_core.py": "import array\nfrom pkg.core import raw\n\n\ndef test_raw():\n"
                              "    assert raw(array.array('b', [1])) == b'\\x01'\n\n\n"
                              "def test_source_unchanged():\n    import inspect, pkg.core\n"
                              "    assert 'a.tostring' in inspect.getsource(pkg.core.raw)\n"})
    report = _pytest_report(root)
    done = run_kb("fix", report, "--root", str(root), "--apply", "--yes", "--min-confidence", "0.5")
    assert done.returncode == 1 and "rolled back:" in done.stdout, done.stdout + done.stderr


def fix_nothing_applied(tmp: Path) -> None:
    done = run_kb("fix", PYJWT, "--root", str(tmp), "--apply", "--yes")  # nothing under tmp to edit
    assert done.returncode == 3 and "1 cause(s) without a fix kb can apply" in done.stdout, done.stdout
    root = write_project(tmp / "proj", {"pkg/__init__.py": "", "pkg/core.py": "from collections import Mapping\n",
                                        "tests/test_core.py": "import pkg.core\n\n\ndef test_x():\n    pass\n"})
    asked = run_kb("fix", _pytest_report(root), "--root", str(root), "--apply")  # no terminal to ask at
    assert asked.returncode == 3 and "not applied: needs approval at a terminal" in asked.stdout, asked.stdout


def _pytest_report(root: Path) -> str:
    import subprocess

    report = root.parent / f"{root.name}-report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
                   cwd=root, capture_output=True)
    return str(report)


def heal(tmp: Path) -> None:
    green = write_project(tmp / "green", {"tests/test_ok.py": "def test_ok():\n    assert 1\n"})
    assert run_kb("heal", "--root", str(green), "--", sys.executable, "-m", "pytest").returncode == 0
    red = write_project(tmp / "red", {"tests/test_no.py": "def test_no():\n    assert 1 == 2\n"})
    assert run_kb("heal", "--root", str(red), "--", sys.executable, "-m", "pytest").returncode == 1


def undo(tmp: Path) -> None:
    done = run_kb("undo", "--root", str(tmp))
    assert done.returncode == 1 and done.stderr.startswith("kb: error: ")


def rules_test(tmp: Path) -> None:
    good = tmp / "good.yaml"
    good.write_text(PACK)
    assert run_kb("rules", "test", str(good)).returncode == 0
    bad = tmp / "bad.yaml"
    bad.write_text(PACK.replace("'optional arguments:' not found", "'optional arguments:' missing"))
    done = run_kb("rules", "test", str(bad))
    assert done.returncode == 1 and done.stderr == "kb: error: 1 rule(s) failed their examples\n"


def rules_lint(tmp: Path) -> None:
    pack = tmp / "thin.yaml"  # a single match example is a warning
    pack.write_text(PACK)
    assert run_kb("rules", "lint", str(pack)).returncode == 0
    assert run_kb("rules", "lint", "--strict", str(pack)).returncode == 1


def db_check(tmp: Path) -> None:
    broken = tmp / "broken.sqlite"
    broken.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    assert run_kb("db", "check", "--db", str(broken)).returncode == 1


def serve(tmp: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "datasette" else real(name, *a))
        done = run_kb("serve")
    assert done.returncode == 1
    assert done.stderr == "kb: error: datasette is not installed: pip install 'kb-selfheal[datasette]'\n"


def batch_ok(tmp: Path) -> None:
    from distributed import LocalCluster

    (tmp / "archive").mkdir()
    shutil.copyfile(PYJWT, tmp / "archive" / "a.xml")
    (tmp / "archive" / "b.xml").write_text("<testsuite><testcase", encoding="utf-8")
    # a real cluster, in this process (threads): the row is about kb's status, not about starting workers
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        done = run_kb("batch", "diagnose", tmp / "archive" / "*.xml", "--scheduler", cluster.scheduler_address,
                      "-o", tmp / "rows.jsonl", "--db", tmp / "kb.sqlite")
    assert done.returncode == 0, done.stderr
    assert "2 file(s)" in done.stdout and "1 diagnosed, 1 could not be read" in done.stdout
    assert "kb: could not read " in done.stderr


def batch_cannot(tmp: Path) -> None:
    done = run_kb("batch", "diagnose", tmp / "nothing" / "*.xml", "-o", tmp / "rows.jsonl", "--db", tmp / "kb.sqlite")
    assert done.returncode == 1 and done.stderr.startswith("kb: error: ") and done.stderr.count("\n") == 1
    done = run_kb("batch", "diagnose", PYJWT, "--scheduler", "nonsense", "-o", tmp / "rows.jsonl")
    assert done.returncode == 1 and done.stderr.startswith("kb: error: cannot reach the Dask scheduler at nonsense")


CHECKS: dict[tuple[str, str], Callable[[Path], None]] = {
    ("every command", "0"): every_0,
    ("every command", "1"): every_1,
    ("every command", "2"): every_2,
    ("every command", "130"): every_130,
    ("kb diagnose", "0"): diagnose_default,
    ("kb diagnose --fail-on undiagnosed", "1"): diagnose_undiagnosed,
    ("kb diagnose --fail-on cause", "1"): diagnose_cause,
    ("kb diagnose --fail-on any", "1"): diagnose_any,
    ("kb run", "the command's"): run_status,
    ("kb run --fail-on never, undiagnosed, cause, any", "0 or 1"): run_gates,
    ("kb run", "1"): run_cannot,
    ("kb fix", "0"): fix_ok,
    ("kb fix --apply", "1"): fix_rolled_back,
    ("kb fix --apply", "3"): fix_nothing_applied,
    ("kb heal", "0 or 1"): heal,
    ("kb undo", "1"): undo,
    ("kb rules test", "1"): rules_test,
    ("kb rules lint --strict", "1"): rules_lint,
    ("kb db check", "1"): db_check,
    ("kb serve", "1"): serve,
    ("kb batch diagnose", "0"): batch_ok,
    ("kb batch diagnose", "1"): batch_cannot,
}


def test_every_row_of_the_table_has_a_check() -> None:
    rows = [(command, status) for command, status, _ in table()]
    assert len(rows) == len(set(rows))
    assert sorted(rows) == sorted(CHECKS), "the README's exit-code table and CHECKS disagree"


@pytest.mark.parametrize("row", sorted(CHECKS), ids=lambda row: f"{row[0]} → {row[1]}")
def test_row(row: tuple[str, str], tmp_path: Path) -> None:
    CHECKS[row](tmp_path)

