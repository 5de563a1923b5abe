"""The orchestrator end to end through real pytest runs on generated projects with injected faults
(tests/faults.py): kb run, targeted re-runs and flakiness, kb isolate's verdicts, and commands that
hang, are missing or write no report. kb runs the test commands as processes, as it does for a user, so
pytester's in-process runs do not fit (see test_isolate_order.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from kb.fix import FixOptions, fix_rounds
from kb.run.command import is_pytest
from kb.run.isolate import run_bound
from kb.store import open_store

from .conftest import KbCli
from .faults import make_project

PYTEST = [sys.executable, "-m", "pytest"]


def _isolate(kb_cli: KbCli, root: Path, db: Path, test: str, repeat: int = 1) -> dict:
    out = kb_cli("isolate", test, "--repeat", str(repeat), "--json", "--", *PYTEST, env={"KB_DB": str(db)}, cwd=root)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_one_polluter_is_found_within_the_bound_and_reproduced(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=30, faults=("polluter",))
    found = _isolate(kb_cli, tmp_path / "p", kb_db, info["victim"])
    assert found["verdict"] == "order-dependent" and found["polluters"] == info["polluters"]
    n = found["tests_before"]
    assert found["by_step"]["polluters"] <= run_bound(n), found  # step (b) within ceil(log2 n) + 2
    assert found["by_step"]["alone"] == found["by_step"]["order"] == 1  # stable: each probe runs once
    assert found["reproducer"] == [*info["polluters"], info["victim"]]
    assert found["root_causes"][0]["rule"] == "verdict-order-dependent"
    # the reproducer really reproduces
    done = subprocess.run([*PYTEST, "-q", "-p", "no:cacheprovider", *found["reproducer"]], cwd=tmp_path / "p",
                          capture_output=True, text=True)
    assert "1 failed, 1 passed" in done.stdout
    verdicts = list(open_store(kb_db).query_dicts("SELECT * FROM verdicts ORDER BY 1"))
    assert [(v["test"], v["verdict"]) for v in verdicts] == [(info["victim"], "order-dependent")]


def test_two_polluters_are_both_found(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=16, faults=("two-polluters",))
    found = _isolate(kb_cli, tmp_path / "p", kb_db, info["victim"])
    assert sorted(found["polluters"]) == sorted(info["polluters"])


def test_polluters_that_only_pollute_together_are_minimised(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=12, faults=("group-polluter",))
    found = _isolate(kb_cli, tmp_path / "p", kb_db, info["victim"])
    assert found["verdict"] == "order-dependent"
    assert sorted(found["polluters"]) == sorted(info["polluters"])
    assert found["reproducer"][-1] == info["victim"] and len(found["reproducer"]) == 3


def test_a_test_that_needs_another_ones_side_effect(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=20, faults=("needs-setup",))
    found = _isolate(kb_cli, tmp_path / "p", kb_db, info["dependent"])
    assert found["verdict"] == "needs-setup" and found["providers"] == [info["provider"]]
    assert found["root_causes"][0]["rule"] == "verdict-needs-setup"


@pytest.mark.slow
def test_a_seeded_flaky_test_is_flaky_in_run_and_isolate(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=10, faults=("flaky",), flaky_rate=0.5, seed=3)
    db = kb_db
    out = kb_cli("run", "--quiet", "--repeat", "3", "--format", "json", "--", *PYTEST, env={"KB_DB": str(db)}, cwd=tmp_path / "p")
    doc = json.loads(out.stdout)
    assert out.returncode == doc["command"]["exit_status"]  # the command's own status
    flaky = [v for v in doc["verdicts"] if v["test"] == info["flaky"]]
    if doc["summary"]["failures"]:  # the seeded draw decides whether the suite run failed it
        assert flaky and flaky[0]["verdict"] == "flaky" and 1 <= flaky[0]["failed"] < 4
        assert doc["root_causes"][0]["rule"] == "verdict-flaky"
        assert doc["root_causes"][0]["remedies"][0]["kind"] == "quarantine"
    found = _isolate(kb_cli, tmp_path / "p", db, info["flaky"], repeat=6)
    assert found["verdict"] == "flaky" and 0 < found["failed"] < 6 and found["runs"] == 6
    # the verdict's remedy: quarantine, approved by a person, verified, and it holds while it lasts
    store = open_store(db)
    events = list(fix_rounds(store.last_report(), tmp_path / "p", store, FixOptions(apply=True, interactive=True),
                             approve=lambda item: True))
    outcome = next(e.outcome for e in events if e.kind == "outcome")
    assert outcome.verdict == "verified", outcome.note
    assert "reason='kb quarantine until " in (tmp_path / "p" / info["flaky"].split("::")[0]).read_text()


def test_a_removed_api_is_deterministic_and_explained(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root = tmp_path / "p"
    make_project(root, tests=5, faults=())
    (root / "tests" / "test_api.py").write_text(
        "import collections\n\n\ndef test_mapping():\n    assert isinstance({}, collections.Mapping)\n")
    db = kb_db
    out = kb_cli("run", "--quiet", "--format", "json", "--", *PYTEST, env={"KB_DB": str(db)}, cwd=root)
    assert out.returncode == 1, out.stderr  # pytest's status: tests failed
    doc = json.loads(out.stdout)
    assert "collections.Mapping" in doc["root_causes"][0]["title"]
    found = _isolate(kb_cli, root, db, "tests/test_api.py::test_mapping")
    assert found["verdict"] == "environment-dependent" and found["probes"] == 2  # alone, then after the others
    assert found["reproduced"].startswith("checked")
    assert "collections.Mapping" in found["root_causes"][0]["title"]


def test_collection_and_conftest_errors_are_diagnosed(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    db = kb_db
    make_project(tmp_path / "c", tests=5, faults=("collection-error",))
    out = kb_cli("run", "--quiet", "--format", "json", "--", *PYTEST, env={"KB_DB": str(db)}, cwd=tmp_path / "c")
    doc = json.loads(out.stdout)
    assert "cv2" in doc["root_causes"][0]["title"]
    make_project(tmp_path / "f", tests=5, faults=("conftest-error",))  # pytest writes no JUnit XML here
    out = kb_cli("run", "--quiet", "--format", "json", "--", *PYTEST, env={"KB_DB": str(db)}, cwd=tmp_path / "f")
    doc = json.loads(out.stdout)
    assert out.returncode == 4, out.stderr  # pytest's usage-error status, passed through
    assert "cv2" in doc["root_causes"][0]["title"]


def test_fail_on_decides_the_exit_status(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    info = make_project(tmp_path / "p", tests=10, faults=("polluter",))
    db = kb_db
    assert info["victim"]
    codes = {mode: kb_cli("run", "--quiet", "--fail-on", mode, "--", *PYTEST, env={"KB_DB": str(db)}, cwd=tmp_path / "p").returncode
             for mode in ("status", "any", "undiagnosed", "never")}
    assert codes == {"status": 1, "any": 1, "undiagnosed": 1, "never": 0}  # an assertion failure: undiagnosed


def test_commands_that_hang_are_missing_or_write_no_report(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    root = tmp_path / "p"
    make_project(root, tests=2)
    (root / "tests" / "test_slow.py").write_text("import time\n\n\ndef test_slow():\n    time.sleep(60)\n")
    db = kb_db
    hang = kb_cli("run", "--quiet", "--timeout", "3", "--", *PYTEST, env={"KB_DB": str(db)}, cwd=root)
    missing = kb_cli("run", "--", "no-such-test-command-kb", env={"KB_DB": str(db)}, cwd=root)
    silent = kb_cli("run", "--", sys.executable, "-c", "print('all good')", env={"KB_DB": str(db)}, cwd=root)
    killed = kb_cli("run", "--", sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
                 env={"KB_DB": str(db)}, cwd=root)
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    no_pytest = kb_cli("run", "--", str(bare / "bin" / "python"), "-m", "pytest", env={"KB_DB": str(db)}, cwd=root)
    for out, words in ((hang, "timed out after 3 s (killed)"), (missing, "command not found: no-such-test-command-kb"),
                       (silent, "wrote no report kb can read (name it with --report PATH)"),
                       (no_pytest, "pytest is not installed"), (killed, "killed by SIGKILL")):
        assert out.returncode == 1, out.stderr
        last = out.stderr.strip().splitlines()[-1]  # the command's own output comes first (on stderr)
        assert last.startswith("kb: error: ") and words in last and "Traceback" not in out.stderr, out.stderr
    problems = [r["problem"] for r in open_store(db).query_dicts("SELECT * FROM runs ORDER BY 1")]
    assert len(problems) == 5 and all(problems)  # every one recorded


def test_a_non_pytest_command_names_its_report(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    source = Path(__file__).parent / "corpus/real/pyjwt-1.5.3/report.xml"
    out = kb_cli("run", "--report", "out.xml", "--format", "json", "--", sys.executable, "-c",
              f"import shutil; shutil.copy({str(source)!r}, 'out.xml'); raise SystemExit(3)",
              env={"KB_DB": str(kb_db)}, cwd=tmp_path)
    assert out.returncode == 3, out.stderr
    assert "collections.Mapping" in json.loads(out.stdout)["root_causes"][0]["title"]


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_run_bound(n: int) -> None:
    assert run_bound(n) == math.ceil(math.log2(n)) + 2


@pytest.mark.parametrize(("command", "pytest_"), [
    ("pytest -x", True), ("py.test", True), ("python -m pytest", True), ("/v/bin/python3.12 -m pytest t", True),
    ("python -I -m pytest", True), ("python -X dev -bb -m pytest", True), ("python -W error -m pytest", True),
    ("python -Im pytest", True), ("python -Impytest", True), ("python -mpytest", True),
    ("python -Wmpytest -m pytest", True),  # -W's value attached
    ("python -m tox", False), ("python -c pytest", False), ("python -Ic pytest", False), ("python script.py", False),
    ("python", False), ("python -m", False), ("tox -e py", False), ("python -X -m pytest", False), ("python -", False),
])
def test_which_commands_are_pytest(command: str, pytest_: bool) -> None:
    """kb run adds --junitxml (and re-runs failures) only for pytest: the interpreter's own options may come first."""
    assert is_pytest(command.split()) is pytest_
