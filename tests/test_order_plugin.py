"""kb's order plugin (kb/run/order_plugin.py) inside pytest, with pytest's own ``pytester``: the exact records
``--kb-outcomes`` writes for an order file (the ids in the file's order, the rest deselected, ids not collected
reported missing, a teardown error making its test failed), collection only, xdist kept to one process, and
the state ``--kb-state-around`` snapshots.

The order, outcome and xdist tests run pytest in-process (``runpytest_inprocess``): they are about what the
plugin's hooks do to one session, and in-process they cost a few milliseconds instead of a pytest start. The
state snapshot runs in a subprocess (``runpytest_subprocess``) through kb's own loading (the plugin copied
onto PYTHONPATH as ``-p _kb_order``, :func:`kb.run.ordered.plugin_env`): it fingerprints the modules of the
process it runs in, and in-process that would be this test process with everything the suite imported. kb's
probes through real test commands are tested in test_isolate_order.py and test_orchestrator.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kb.run import order_plugin
from kb.run.ordered import PLUGIN, plugin_env

from .conftest import SUBPROCESS_ADDOPTS

A = """
def test_one():
    pass

def test_two():
    assert 1 + 1 == 3

def test_three():
    pass
"""

B = """
import pytest

def test_four():
    pass

@pytest.fixture
def breaks_in_teardown():
    yield
    raise RuntimeError("teardown")

def test_five(breaks_in_teardown):
    pass

@pytest.mark.skip(reason="not today")
def test_six():
    pass
"""

ORDER = ["test_b.py::test_five", "test_a.py::test_two", "test_b.py::test_six", "test_gone.py::test_x",
         "test_a.py::test_one"]
RAN = [i for i in ORDER if "gone" not in i]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_a=A, test_b=B)
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, list[dict[str, Any]]]:
    """pytest in-process with kb's order plugin (and, as kb runs it, without pytest-randomly); the records."""
    outcomes = pytester.path / "outcomes.jsonl"
    result = pytester.runpytest_inprocess("-p", "no:randomly", f"--kb-outcomes={outcomes}", *args,
                                          plugins=[order_plugin])
    records = [json.loads(line) for line in outcomes.read_text("utf-8").splitlines()] if outcomes.exists() else []
    return result, records


def _order_file(pytester: pytest.Pytester, ids: list[str]) -> Path:
    path = pytester.path / "order.txt"
    path.write_text("".join(f"{i}\n" for i in ids), "utf-8")
    return path


def test_an_order_file_runs_exactly_its_ids_in_its_order(project: pytest.Pytester) -> None:
    result, records = _run(project, f"--kb-order={_order_file(project, ORDER)}")
    assert records == [
        {"type": "missing", "nodeid": "test_gone.py::test_x"},
        {"type": "collected", "ids": RAN, "seed": None},
        {"type": "test", "nodeid": "test_b.py::test_five", "outcome": "failed"},  # its teardown failed
        {"type": "test", "nodeid": "test_a.py::test_two", "outcome": "failed"},
        {"type": "test", "nodeid": "test_b.py::test_six", "outcome": "skipped"},
        {"type": "test", "nodeid": "test_a.py::test_one", "outcome": "passed"},
    ]
    result.assert_outcomes(passed=2, failed=1, skipped=1, errors=1, deselected=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_collection_only_records_the_order_the_command_runs(project: pytest.Pytester) -> None:
    """What :func:`kb.run.ordered.collect_order` reads: the collected ids in order, and no test records."""
    result, records = _run(project, "--collect-only", "-q")
    assert records == [{"type": "collected", "seed": None, "ids": [
        "test_a.py::test_one", "test_a.py::test_two", "test_a.py::test_three",
        "test_b.py::test_four", "test_b.py::test_five", "test_b.py::test_six"]}]
    assert result.ret == pytest.ExitCode.OK


def test_xdist_is_kept_to_one_process_when_an_order_is_given(project: pytest.Pytester) -> None:
    """An order only means something in one process: ``-n 2`` (an addopts, say) must not spread the ids."""
    result, records = _run(project, "-n", "2", f"--kb-order={_order_file(project, ORDER)}")
    assert [(r["nodeid"], r["outcome"]) for r in records if r["type"] == "test"] == [
        ("test_b.py::test_five", "failed"), ("test_a.py::test_two", "failed"), ("test_b.py::test_six", "skipped"),
        ("test_a.py::test_one", "passed")]
    assert not any("worker" in r for r in records)
    assert "created:" not in result.stdout.str() and "workers" not in result.stdout.str()


def test_the_plugin_does_nothing_unless_asked(project: pytest.Pytester) -> None:
    result = project.runpytest_inprocess("-p", "no:randomly", "-v", plugins=[order_plugin])
    result.assert_outcomes(passed=4, failed=1, skipped=1, errors=1)  # test_five passes, then its teardown errs
    ran = [line.split(" ", 1)[0] for line in result.outlines if " PASSED" in line or " FAILED" in line
           or " SKIPPED" in line]
    assert ran == ["test_a.py::test_one", "test_a.py::test_two", "test_a.py::test_three", "test_b.py::test_four",
                   "test_b.py::test_five", "test_b.py::test_six"]
    assert not list(project.path.glob("*.jsonl"))


def test_the_state_a_test_leaves_behind_is_recorded(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(
        shared_state="LEAKS = []\nMODE = 'quiet'\n\n\nclass Settings:\n    level = 1\n",
        extra="VALUE = 1\n",
        test_pollute="""
            import os
            import shared_state

            def test_polluter():
                import extra
                shared_state.LEAKS.append(7)
                shared_state.Settings.level = 3
                os.environ["KB_POLLUTED"] = "yes"
                open("left-behind.txt", "w").close()

            def test_victim():
                assert shared_state.LEAKS == []
            """)
    for name, value in plugin_env().items():
        monkeypatch.setenv(name, value)
    outcomes = pytester.path / "outcomes.jsonl"
    result = pytester.runpytest_subprocess(*SUBPROCESS_ADDOPTS.split(), "-p", PLUGIN, "-p", "no:randomly",
                                           f"--kb-outcomes={outcomes}", "--kb-state-around=test_pollute.py::test_polluter")
    result.assert_outcomes(passed=1, failed=1)
    records = [json.loads(line) for line in outcomes.read_text("utf-8").splitlines()]
    state = next(r for r in records if r["type"] == "state")
    assert state == {"type": "state", "nodeid": "test_pollute.py::test_polluter", "changes": [
        {"kind": "environ", "name": "KB_POLLUTED", "before": None, "after": "yes"},
        {"kind": "global", "module": "shared_state", "name": "LEAKS", "before": "[]", "after": "[7]"},
        {"kind": "global", "module": "shared_state", "name": "Settings.level", "before": "1", "after": "3"},
        {"kind": "module", "name": "extra", "before": None, "after": "imported"},
        {"kind": "file", "name": "left-behind.txt", "before": None, "after": "present"},
    ]}
