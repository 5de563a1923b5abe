"""What proves a fix: report ids matched to pytest's node ids, the gate's thresholds as the user sees
them, and the verdict on a verification run (new unknown failures and regressions roll back; the next
known cause and newly collected tests do not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kb.facts import Failure
from kb.fix import Baseline, Edit, RemedyPlan, gate
from kb.fix.targets import normal_id, resolve, without_selection
from kb.fix.verify import judge
from kb.models import Frame, Run, TestResult


def test_a_lower_case_test_class_is_found_by_collection_not_guessed() -> None:
    # JUnit classname tests.objects.test_x.test_object_x: kb's reader guesses a module test_object_x.py
    guessed = "tests/objects/test_x/test_object_x.py::test_a[1-x.y]"
    collected = ["tests/objects/test_x.py::test_object_x::test_a[1-x.y]", "tests/objects/test_x.py::test_b"]
    targets = resolve([guessed], collected, set())
    assert targets.run == ["tests/objects/test_x.py::test_object_x::test_a[1-x.y]"] and not targets.missing
    assert normal_id(guessed) == normal_id(collected[0])


def test_collection_errors_run_their_module_and_internal_errors_the_whole_command() -> None:
    targets = resolve(["tests/test_y.py"], [], {"pkg/tests/test_y.py"})
    assert targets.run == ["pkg/tests/test_y.py"] and not targets.whole
    assert resolve(["pytest.py::internal"], ["tests/test_a.py::test_a"], set()).whole


def test_targeted_reruns_drop_the_commands_own_selection(tmp_path: Path) -> None:
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    command = ["venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider", "tests/unit", "-c", "setup.cfg", "-q"]
    assert without_selection(command, tmp_path) == ["venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider",
                                                    "-c", "setup.cfg", "-q"]


def _item(risk: str = "low", confidence: float = 0.9, kind: str = "code-edit", tests: list[str] | None = None,
          neighbours: list[str] | None = None) -> RemedyPlan:
    return RemedyPlan("cause-1", "a cause", confidence, {"kind": kind, "risk": risk, "description": "d"},
                      tests=tests or [], neighbours=neighbours or [])


@pytest.mark.parametrize(("risk", "max_risk", "refused"), [
    ("low", "low", False), ("medium", "low", True), ("medium", "medium", False), ("critical", "medium", True)])
def test_yes_applies_up_to_max_risk_and_critical_needs_a_person(risk: str, max_risk: str, refused: bool) -> None:
    why = gate(_item(risk), yes=True, min_confidence=0.8, allow_critical=True, allow_auto_fix=True,
               interactive=False, max_risk=max_risk)
    assert (why is not None) == refused


def test_the_threshold_compares_the_confidence_as_printed() -> None:
    item = _item(confidence=0.7951)  # printed as 0.80
    assert gate(item, yes=True, min_confidence=0.8, allow_critical=False, allow_auto_fix=True,
                interactive=False) is None
    assert "0.79 is below" in gate(_item(confidence=0.794), yes=True, min_confidence=0.8, allow_critical=False,
                                   allow_auto_fix=True, interactive=False)


def _run(order: list[str], failing: dict[str, str]) -> Run:
    results = [TestResult(t, "error" if "::" not in t else "failed", "collect" if "::" not in t else "call")
               for t in failing]
    return Run(tests=len(order), failures=len(failing), passed=len(order) - len(failing), results=results,
               order=order)


def _after(causes: dict[str, list[str]], undiagnosed: dict[str, str]) -> dict[str, Any]:
    return {"root_causes": [{"key": key, "title": f"title of {key}", "tests": tests} for key, tests in causes.items()],
            "undiagnosed": [{"test": t, "exception": "ValueError", "message": m} for t, m in undiagnosed.items()]}


A, B, C = "tests/test_m.py::test_a", "tests/test_m.py::test_b", "tests/test_m.py::test_c"


def test_a_targeted_test_failing_in_a_new_way_rolls_the_fix_back() -> None:
    run = _run([A, B], {A: "x"})
    held, note, _ = judge(_item(tests=[A]), run, _after({}, {A: "too many values to unpack"}), Baseline(),
                          whole=False, neighbours=[B])
    assert not held and "new way (ValueError: too many values to unpack)" in note


def test_the_next_known_cause_is_not_a_failure_of_the_fix() -> None:
    run = _run([A, B], {A: "x"})
    held, note, _ = judge(_item(tests=[A]), run, _after({"cause-2": [A]}, {}), Baseline(), whole=False, neighbours=[B])
    assert held and "next known cause: title of cause-2" in note


def test_the_same_cause_remaining_or_a_broken_neighbour_rolls_back() -> None:
    run = _run([A, B], {A: "x"})
    assert not judge(_item(tests=[A]), run, _after({"cause-1": [A]}, {}), Baseline(), whole=False, neighbours=[])[0]
    run = _run([A, B], {B: "x"})
    held, note, _ = judge(_item(tests=[A]), run, _after({}, {B: "boom"}), Baseline(), whole=False, neighbours=[B])
    assert not held and "passed before now fail" in note


def test_a_whole_run_reports_newly_collected_tests_apart_from_regressions() -> None:
    before = Baseline(frozenset({A, B, "tests/test_n.py"}), frozenset({A, "tests/test_n.py"}), known=True)
    # the pin made tests/test_n.py importable: its tests ran for the first time, one fails
    new = "tests/test_n.py::test_new"
    run = _run([A, B, new], {new: "x"})
    held, note, newly = judge(_item(kind="dependency-pin", tests=[A, "tests/test_n.py"]), run,
                              _after({"cause-9": [new]}, {}), before, whole=True, neighbours=[])
    assert held and newly == [new] and "1 newly collected test(s) fail" in note
    run = _run([A, B, new], {B: "x"})
    held, note, _ = judge(_item(kind="dependency-pin", tests=[A]), run, _after({}, {B: "x"}), before, whole=True,
                          neighbours=[])
    assert not held and "passed before now fail (first: tests/test_m.py::test_b)" in note


def test_a_module_that_collected_before_and_no_longer_does_is_a_regression() -> None:
    run = _run([A], {"tests/test_other.py": "ImportError"})
    held, note, _ = judge(_item(tests=[A]), run, _after({}, {"tests/test_other.py": "x"}), Baseline(), whole=False,
                          neighbours=[])
    assert not held


def _failure(test: str, frames: list[tuple[str, int]], message: str = "boom") -> Failure:
    return Failure(1, test, "call", "ValueError", message, tuple(Frame(f, n, "f") for f, n in frames), None, message,
                   "")


def test_a_new_failure_counts_against_the_fix_only_where_it_ran_the_fixed_lines(tmp_path: Path) -> None:
    """getargspec's four-name unpacking raises on the edited line: the edit is wrong. empyrical on pandas 3:
    freq='M' → 'ME', then the module fails further on (KeyError: 0): the next, unknown layer."""
    module = "tests/test_stats.py"
    (tmp_path / "tests").mkdir()
    (tmp_path / module).write_text("import pandas as pd\nidx = pd.date_range('2000', freq='ME')\nx = {}[0]\n")
    item = _item(tests=[module])
    item.edits = [Edit(module, 2, "idx = pd.date_range('2000', freq='M')", "idx = pd.date_range('2000', freq='ME')")]
    run = _run([module], {module: "x"})
    after = _after({}, {module: "0"})

    def judged(failure: Failure) -> tuple[bool, str, list[str]]:
        return judge(item, run, after, Baseline(), whole=False, neighbours=[], root=tmp_path,
                     evidence={normal_id(module): failure})

    held, note, _ = judged(_failure(module, [(module, 3)]))
    assert held and "1 targeted test(s) get past the fixed lines and fail further on" in note
    held, note, _ = judged(_failure(module, [(module, 2), ("site-packages/pandas/core.py", 10)]))
    assert not held and "new way" in note
    # no traceback (a pytest collection message): it counts against the fix when it names what the fix changed
    assert judged(_failure(module, [], "in parametrize expected a sequence of values"))[0]
    assert not judged(_failure(module, [], "invalid freq: ME"))[0]


def test_a_known_cause_raised_on_a_line_the_fix_wrote_is_the_fixs_doing(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/patch.py").write_text("from botocore.x import connection\nV = connection.HTTPSConnection\n")
    item = _item(tests=[A])
    item.edits = [Edit("pkg/patch.py", 1, "", "from botocore.x import connection")]
    run = _run([A], {A: "x"})
    failure = _failure(A, [("tests/test_m.py", 3), ("pkg/patch.py", 1)], "No module named 'botocore'")
    held, note, _ = judge(item, run, _after({"missing-botocore": [A]}, {}), Baseline(), whole=False, neighbours=[],
                          root=tmp_path, evidence={normal_id(A): failure})
    assert not held and "fail on a line the fix wrote: title of missing-botocore" in note


def test_report_ids_outside_the_root_are_never_run(tmp_path: Path) -> None:
    """A report naming ../outside/x.py or an absolute path cannot make verification import it."""
    targets = resolve(["../outside/test_x.py", "/etc/test_y.py", "../outside/test_x.py::test_a"],
                      ["tests/test_a.py::test_a"], {"tests/test_a.py"})
    assert targets.run == [] and targets.whole  # only the project's own command runs


def test_a_symlinked_kb_folder_is_refused(tmp_path: Path) -> None:
    from kb.errors import FixError
    from kb.journal import Journal

    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "proj"
    root.mkdir()
    (root / ".kb").symlink_to(outside, target_is_directory=True)
    journal = Journal(root)
    with pytest.raises(FixError, match="not a real directory inside the project"):
        journal.begin(cause="c", rule="r", title="t", remedy={}, diff="", changes={"m.py": (b"", b"x")})
    assert not any(outside.iterdir())
