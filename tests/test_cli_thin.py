"""The decisions ``kb/cli.py`` hands to the library, called directly: what ``kb fix`` and ``kb heal`` start
from (options over the project's configuration, the report and its baseline), the tally of their events and
the exit statuses it makes; ``kb isolate``'s document; learning then diagnosing again; the project with a
journal, the tests' interpreter and an interpreter by version; the run-file check; the datasette export's
metadata. Real reports from the corpus, real generated projects, real pytest runs, a real store."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from kb import testenv
from kb.diagnose import diagnose, diagnose_learning
from kb.errors import KbError
from kb.export import export_datasette, metadata_of, require_datasette
from kb.fix import FixOptions, HealRound, fix_rounds
from kb.fix.options import diagnose_for_fix, fix_options
from kb.fix.tally import FIX_NOTHING_APPLIED, FIX_ROLLED_BACK, Tally, heal_status
from kb.journal import project_of
from kb.knowledge.learn import learn_from, learned_pack, rediagnosable
from kb.log import DiagnosticLogger, read_run_file
from kb.rulepack import builtin_packs, dump_pack, load_document, parse_pack
from kb.run.investigate import Isolation, Order
from kb.run.isolate import Verdict
from kb.run.isolation_report import diagnose_isolation
from kb.store import kb_cache, open_store
from kb.testenv import command_python, find_python

from .conftest import REAL
from .projects import pytest_report, write_project

PYJWT = REAL / "pyjwt-1.5.3" / "report.xml"  # one known cause (jwt's removed API), nine failing tests
CONFIGARGPARSE = REAL / "configargparse-1.2.3" / "report.xml"  # five failures no rule explains

#: one removed import: kb plans a fix (collections → collections.abc) and proves it with the tests
MAPPING = {
    "pkg/__init__.py": "",
    "pkg/core.py": "from collections import Mapping\n\n\ndef is_map(x):\n    return isinstance(x, Mapping)\n",
    "tests/test_core.py": "from pkg.core import is_map\n\n\ndef test_map():\n    assert is_map({})\n",
}
#: the same cause, but the project vendors a copy that still fails after the fix: kb rolls it back
VENDORED = {
    "pkg/__init__.py": "",
    "pkg/core.py": "import sys, os\nsys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'venv'))\n"
                   "from collections import Mapping\nimport legacy\n",
    "venv/legacy.py": "from collections import Mapping\n",
    "tests/test_core.py": "import pkg.core\n\n\ndef test_x():\n    assert pkg.core.Mapping\n",
}


# -- kb fix / kb heal: options, the report, the tally, the exit status

def test_fix_options_take_the_flags_over_the_project_configuration(tmp_path: Path) -> None:
    (tmp_path / ".kb").mkdir()
    (tmp_path / ".kb" / "config.toml").write_text(
        f'min_confidence = 0.6\nallow_auto_fix = false\ntest_command = ["{sys.executable}", "-m", "pytest", "-x"]\n')
    configured = fix_options(tmp_path, apply=True, yes=True)
    assert configured.min_confidence == 0.6 and not configured.allow_auto_fix
    assert configured.test_command == [sys.executable, "-m", "pytest", "-x"]
    assert configured.environment["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "pytest" in configured.environment  # the versions installed where the tests run
    flagged = fix_options(tmp_path, [sys.executable, "-m", "pytest", "tests"], min_confidence=0.9, max_rounds=2,
                          timeout=30, interactive=True)
    assert flagged.min_confidence == 0.9 and flagged.test_command == [sys.executable, "-m", "pytest", "tests"]
    assert (flagged.max_rounds, flagged.timeout, flagged.interactive, flagged.apply) == (2, 30, True, False)
    (tmp_path / "other" / ".git").mkdir(parents=True)  # another repository: the walk up stops at its root
    bare = fix_options(tmp_path / "other")  # no configuration there: FixOptions' defaults
    assert bare.min_confidence == FixOptions().min_confidence and bare.test_command is None and bare.allow_auto_fix


def test_the_report_to_fix_is_recorded_and_its_run_is_the_baseline(tmp_path: Path, kb_db: str) -> None:
    options = fix_options(tmp_path)
    with open_store(kb_db) as store:
        report = diagnose_for_fix([str(PYJWT)], store, options, tmp_path)
        assert store.last_report()["run_id"] == report["run_id"]
    assert [c["rule"] for c in report["root_causes"]] == ["py-cannot-import-name"]
    failing = {t for c in report["root_causes"] for t in c["tests"]}
    assert options.baseline.failing == failing and len(failing) == 9
    assert options.baseline.known and options.baseline.ran >= failing


def _tally(root: Path, store: object, options: FixOptions, approve: bool | None = None) -> Tally:
    report = diagnose_for_fix([str(pytest_report(root))], store, options, root)
    tally = Tally()
    for event in fix_rounds(report, root, store, options, None if approve is None else (lambda item: approve)):
        tally.add(event)
    return tally


def test_the_tally_and_kb_fix_exit_status(tmp_path: Path, kb_db: str) -> None:
    python = [sys.executable, "-m", "pytest"]
    with open_store(kb_db) as store:
        root = write_project(tmp_path / "dry", MAPPING)
        dry = _tally(root, store, fix_options(root, python))
        assert dict(dry) == {"planned": 1} and dry.status(applying=False) == 0
        declined = _tally(root, store, fix_options(root, python, apply=True, interactive=True), approve=False)
        assert dict(declined) == {"planned": 1, "not applied": 1}
        assert declined.status(applying=True) == FIX_NOTHING_APPLIED
        held = _tally(root, store, fix_options(root, python, apply=True, yes=True))
        assert dict(held) == {"planned": 1, "verified": 1} and held.applied == 1 and held.status(applying=True) == 0
        assert (root / "pkg/core.py").read_text().startswith("from collections.abc import Mapping")
        vendored = write_project(tmp_path / "vendored", VENDORED)
        undone = _tally(vendored, store, fix_options(vendored, python, apply=True, yes=True))
        assert undone["rolled back"] == 1 and undone.applied == 0 and undone.status(applying=True) == FIX_ROLLED_BACK
        nothing = Tally()
        for event in fix_rounds(diagnose_for_fix([str(CONFIGARGPARSE)], store, fix_options(tmp_path), tmp_path),
                                tmp_path, store, fix_options(tmp_path, apply=True)):
            nothing.add(event)
        assert dict(nothing) == {} and nothing.status(applying=True) == 0  # nothing known to fix: not a failure


@pytest.mark.parametrize(("rounds", "status"), [
    ([], 1),  # no round ran
    ([HealRound(1, tests=3, failing=0)], 0),
    ([HealRound(1, tests=3, failing=2, causes=1), HealRound(2, tests=3, failing=0)], 0),
    ([HealRound(1, tests=3, failing=2, causes=1), HealRound(2, tests=3, failing=1)], 1),
    ([HealRound(1, problem="the test command wrote no report")], 1),
])
def test_kb_heal_exit_status_is_the_last_round(rounds: list[HealRound], status: int) -> None:
    assert heal_status(rounds) == status


# -- kb isolate's verdict, diagnosed and as a document

def test_an_order_dependent_verdict_offers_the_isolation_fixture(tmp_path: Path, kb_db: str) -> None:
    order = ["tests/test_a.py::test_setup", "tests/test_a.py::test_polluter", "tests/test_b.py::test_victim"]
    verdict = Verdict(order[2], "order-dependent", failed=1, runs=1, polluters=[order[1]], probes=4,
                      by_step={"alone": 1, "polluters": 3}, steps=["passes alone"], reproducer=order[1:],
                      state=[{"kind": "global", "module": "shared", "name": "CACHE", "before": "{}",
                              "after": "{'k': 1}"}])
    done = Isolation(verdict, Order(order, "order file ci.txt", failed=True), before=2, reproduce="pytest …",
                     reproduced="checked", notes=["a note"])
    with open_store(kb_db) as store:
        found = diagnose_isolation(done, store, tmp_path)
    [cause] = found.root_causes
    assert cause["rule"] == "verdict-order-dependent"
    assert cause["remedies"][0]["kind"] == "isolation-fixture"
    assert cause["orders"] == [order[1:], [order[2]], order]  # the reproducer, alone, the failing order
    doc = found.as_dict()
    assert {k: doc[k] for k in ("test", "verdict", "polluters", "probes", "tests_before", "order", "reproduce",
                                "reproduced", "notes")} == {
        "test": order[2], "verdict": "order-dependent", "polluters": [order[1]], "probes": 4, "tests_before": 2,
        "order": "order file ci.txt", "reproduce": "pytest …", "reproduced": "checked", "notes": ["a note"]}
    assert doc["root_causes"] == found.root_causes and json.loads(json.dumps(doc)) == doc


def test_a_verdict_with_nothing_to_diagnose_is_still_recorded(tmp_path: Path, kb_db: str) -> None:
    verdict = Verdict("tests/test_a.py::test_fine", "passes", runs=1, probes=1)
    done = Isolation(verdict, Order([verdict.test], "the command's collection order"), before=0)
    with open_store(kb_db) as store:
        found = diagnose_isolation(done, store, tmp_path)
        recorded = store.query_dicts("SELECT test, verdict FROM verdicts")
    assert found.diagnosis is None and found.root_causes == [] and found.as_dict()["root_causes"] == []
    assert recorded == [{"test": verdict.test, "verdict": "passes"}]


# -- learning, then diagnosing again

def test_learning_without_a_generic_cause_diagnoses_once_and_records_once(kb_db: str) -> None:
    told = []
    doc = diagnose_learning([PYJWT], db=kb_db, record=True, learned=told.append)
    [result] = told
    assert result.rows == 0 and result.error is None
    assert result.problems == ["no cause reasoned from an installed distribution: nothing to mine"]
    with open_store(kb_db) as store:
        assert store.counts()["runs"] == 1 and store.last_report()["run_id"] == doc["run_id"]
    unrecorded = diagnose_learning([PYJWT], db=kb_db, record=False)
    assert unrecorded["run_id"] is None and [c["key"] for c in unrecorded["root_causes"]] == [
        c["key"] for c in doc["root_causes"]]
    with open_store(kb_db) as store:
        assert store.counts()["runs"] == 1
    with pytest.raises(KbError, match="give files, not -"):
        diagnose_learning(["-"], db=kb_db)


def test_learning_offline_is_the_results_error(monkeypatch: pytest.MonkeyPatch, kb_db: str) -> None:
    monkeypatch.setenv("KB_INDEX_URL", "http://127.0.0.1:9")  # nothing listens there
    report = {"root_causes": [{"layer": "generic", "owner": {"kind": "distribution", "distribution": "helperlib",
                                                             "version": "2.0"}}]}
    result = learn_from(report, kb_db)
    assert result.rows == 0 and result.learned == [] and result.error is not None
    assert result.error.startswith("http://127.0.0.1:9/pypi/helperlib/json: cannot reach the package index")


def test_only_sources_that_are_still_files_are_diagnosed_again(tmp_path: Path) -> None:
    kept = tmp_path / "report.xml"
    kept.write_bytes(PYJWT.read_bytes())
    report = diagnose([kept], record=False)
    assert rediagnosable(report) == [str(kept)]
    kept.unlink()
    assert rediagnosable(report) == []
    assert rediagnosable({"sources": ["-"]}) == []


def test_mined_rows_as_a_pack_are_a_valid_learned_pack() -> None:
    rows = [row for origin, data in builtin_packs() if origin.endswith("python-core.yaml")
            for row in load_document(data.decode())["api_changes"][:3]]
    doc = learned_pack("Helper", rows)
    pack = parse_pack(dump_pack(doc).encode(), "learned-helper.yaml")
    assert pack.name == "learned-helper" and doc["layer"] == "learned" and pack.doc["api_changes"] == rows


# -- the project, the interpreters, the run file, the export

def test_the_project_is_the_nearest_folder_with_a_journal(tmp_path: Path) -> None:
    deep = tmp_path / "proj" / "src" / "pkg"
    deep.mkdir(parents=True)
    assert project_of(deep) is None
    (tmp_path / "proj" / ".kb" / "journal").mkdir(parents=True)
    assert project_of(deep) == tmp_path / "proj" == project_of(tmp_path / "proj")
    (tmp_path / "proj" / "src" / ".kb").mkdir()  # a .kb without a journal is not a project kb changed
    assert project_of(deep) == tmp_path / "proj"


def test_the_tests_interpreter_and_an_interpreter_by_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert command_python(["venv/bin/python3.11", "-m", "pytest"]) == "venv/bin/python3.11"
    assert command_python(["tox", "-e", "py"]) is None and command_python([]) is None and command_python(None) is None
    assert testenv.test_python(["tox"]) == sys.executable == testenv.test_python(None)
    assert find_python("./bin/python") == "./bin/python" and find_python("/opt/py/bin/python3") == "/opt/py/bin/python3"
    (tmp_path / "python9.8").symlink_to(sys.executable)  # a real interpreter under a version's name
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("HOME", str(tmp_path))  # no pyenv there
    assert find_python("9.8") == str(tmp_path / "python9.8")
    assert find_python("9.7") is None
    for name in ("9.7.9", "9.7.10", "9.7.11rc1", "9.7.2"):  # pyenv's folders: the newest final release is taken
        (tmp_path / ".pyenv" / "versions" / name / "bin").mkdir(parents=True)
        (tmp_path / ".pyenv" / "versions" / name / "bin" / "python9.7").symlink_to(sys.executable)
    assert find_python("9.7") == str(tmp_path / ".pyenv" / "versions" / "9.7.10" / "bin" / "python9.7")


def test_a_run_file_is_read_and_anything_else_is_one_error(tmp_path: Path) -> None:
    runfile = tmp_path / "run.jsonl"
    log = DiagnosticLogger(runfile)
    with log.context("phase", name="import"):
        log.state_change("cache", "size", 0, 1)
    log.close()
    records = read_run_file(runfile)
    assert records[0]["type"] == "run" and records[0]["format"] == "kb-run" and len(records) >= 3
    (tmp_path / "other.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "text.jsonl").write_text("nope\n")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")  # JSON, but not a record (was an internal error)
    (tmp_path / "later.jsonl").write_text(runfile.read_text() + "3\n")
    for name, message in [("other.jsonl", "not a kb run file (its first line is not a run record)"),
                          ("text.jsonl", "not a kb run file (JSONDecodeError: Expecting value"),
                          ("list.jsonl", "not a kb run file (record 1 is not a JSON object)"),
                          ("later.jsonl", f"not a kb run file (record {len(records) + 1} is not a JSON object)"),
                          ("missing.jsonl", "No such file or directory")]:
        with pytest.raises(KbError, match=f"^{tmp_path / name}: {message}".replace("(", r"\(").replace(")", r"\)")):
            read_run_file(tmp_path / name)


def test_an_exports_metadata_is_beside_it(tmp_path: Path, kb_db: str) -> None:
    with open_store(kb_db) as store:
        database, meta = export_datasette(store, tmp_path / "history.db")
    assert metadata_of(database) == meta == tmp_path / "history.metadata.json"
    with pytest.raises(KbError, match="kb.metadata.json: missing \\(make the export with kb export datasette\\)"):
        metadata_of(tmp_path / "kb.db")
    if importlib.util.find_spec("datasette") is None:
        with pytest.raises(KbError, match=r"pip install 'kb-selfheal\[datasette\]'"):
            require_datasette()
    else:
        require_datasette()


def test_a_store_to_read_from_must_be_there(tmp_path: Path) -> None:
    """kb db copy's source: a missing file is an error, not a new empty knowledge base."""
    with pytest.raises(KbError, match=f"^{tmp_path / 'gone.sqlite'}: no such knowledge base file$"):
        open_store(tmp_path / "gone.sqlite", existing=True)
    assert not (tmp_path / "gone.sqlite").exists()
    with open_store(tmp_path / "kb.sqlite") as made:
        location = made.location
        assert kb_cache(tmp_path / "kb.sqlite") == made.cache_dir  # where kb fix keeps its probe, unopened
    with open_store(tmp_path / "kb.sqlite", existing=True) as again:
        assert again.location == location


def test_a_suite_runs_json_document(tmp_path: Path) -> None:
    """kb run --format json: the report, the verdicts and the command, built by the library."""
    from kb.run.orchestrate import CommandRun, SuiteRun

    done = CommandRun(command=["python", "-m", "pytest"], returncode=1, run=None, output="", seconds=1.23456)
    suite = SuiteRun(command=done, report={"run_id": 3, "root_causes": []},
                     verdicts=[Verdict("t.py::test_a", "flaky", failed=1, runs=3)], run_id=3)
    doc = suite.as_dict()
    assert doc["run_id"] == 3 and doc["root_causes"] == []
    assert doc["command"] == {"argv": ["python", "-m", "pytest"], "exit_status": 1, "seconds": 1.235}
    assert doc["verdicts"] == [Verdict("t.py::test_a", "flaky", failed=1, runs=3).as_dict()]
    assert json.loads(json.dumps(doc)) == doc
