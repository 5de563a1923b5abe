"""Verification: a fix is kept only when it is proven.

It holds when its targeted tests pass, or still fail only with a *known next-layer* cause (another
root cause a later round takes). It is rolled back when the targeted cause remains, when a targeted
test now fails in a new, unknown way (the edit is wrong), or when a test that passed before now fails
(a regression; a module that collected before and no longer does is one too). Code edits re-run the
targeted tests (matched to pytest's collected node ids, :mod:`kb.fix.targets`) and some passing
neighbours; pins and test-configuration changes, and causes pytest cannot run by id, re-run the whole
test command — and tests that were not collected before (a pin that makes a module importable) are
reported apart from regressions: their failures are new knowledge, not damage.
An order-dependent test's fix (kb isolate's fixture) carries the exact orders that prove it: the
failing order and the test alone, re-run through kb's order plugin (:func:`verify_orders`).

"A new, unknown way" means one the fix caused (:func:`implicated`): the failure's traceback runs a line
the fix wrote, or, without a traceback, its message names what the fix changed. A targeted test that
gets past the edited lines and fails further on has met the next, unknown layer the fix uncovered (the
real cases have several: pandas 3's next change behind a fixed alias, a pytest-4 parametrize mark behind
a fixed import); the fix holds and the note names that layer. The limit, by design: a wrong result that
travels from an edited line and breaks code elsewhere looks like a next layer.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FixError
from ..facts import Failure, failures_from_run
from ..models import Run
from .sources import python_files
from .targets import is_module_id, normal_id, resolve, without_selection
from .types import Baseline, FixOptions, RemedyPlan

__all__ = ["Verification", "verify", "verify_orders", "judge"]


@dataclass
class Verification:
    held: bool
    note: str
    run: Run | None = None
    after: dict[str, Any] | None = None
    newly_failing: list[str] = field(default_factory=list)
    scope: str = "targeted"  # or "whole command", or "orders"


def _command(options: FixOptions) -> list[str]:
    return list(options.test_command) if options.test_command else [sys.executable, "-m", "pytest"]


def verify(item: RemedyPlan, root: str | Path, store: Any, options: FixOptions) -> Verification:
    """Re-run what proves ``item`` (already written to disk) and judge the result."""
    from ..diagnose import diagnose_run
    from ..run.command import DEFAULT_TIMEOUT
    from ..run.orchestrate import run_command, run_tests
    from ..run.ordered import collect_order
    from ..testenv import test_python

    root = Path(root)
    command = _command(options)
    timeout = options.timeout or DEFAULT_TIMEOUT
    if item.orders:
        return verify_orders(item.orders, root, command, timeout, item.guard)
    whole = item.changes_environment
    neighbours: list[str] = []
    run_ids: list[str] = []
    if not whole:
        try:
            collected = collect_order(command, root, timeout)
        except FixError:
            collected = []
        files = {p.relative_to(root).as_posix() for p in python_files(root)}
        targets = resolve(item.tests, collected, files)
        near = resolve(item.neighbours, collected, files)
        neighbours = [t for t in item.neighbours if normal_id(t) in near.found]
        run_ids = [*targets.run, *(t for t in near.run if t not in targets.run)]
        whole = targets.whole or not targets.run
    if whole:
        done = run_command(command, root, timeout=timeout)
        run, problem = done.run, done.problem
        output = done.output
    else:
        result = run_tests(run_ids, root, without_selection(command, root), timeout)
        run, problem, output = result.run, None, result.output
    scope = "whole command" if whole else "targeted"
    if run is None:
        last = problem or " ".join(output.strip().splitlines()[-1:]) or "no output"
        return Verification(False, f"the test command wrote no report: {last}", scope=scope)
    run.add_environment(options.environment)
    after = diagnose_run(run, store, record=False, python=test_python(command), root=root)
    evidence = {normal_id(f.test): f for f in failures_from_run(run)}
    held, note, newly = judge(item, run, after, options.baseline, whole=whole, neighbours=neighbours, root=root,
                              evidence=evidence)
    how = f"re-ran the whole command: {run.tests} test(s)" if whole else f"re-ran {run.tests} test(s) by node id"
    return Verification(held, f"{note}; {how}", run, after, newly, scope)


def verify_orders(orders: list[list[str]], root: Path, command: list[str], timeout: float,
                  guard: dict[str, list[str]] | None = None) -> Verification:
    """An order-dependent test's fix holds when that test (the last of each order) runs and passes in every
    order — the failing order and alone, run exactly through kb's order plugin — and, with a ``guard``, no
    test that passed in the guard's order before the fix fails there now (the test's module neighbours in
    their usual order: a fixture that fixes the victim must not break the test after it)."""
    from ..run.ordered import run_order

    orders = [list(order) for order in orders if order]
    if not orders:
        return Verification(False, "no test order to re-run", scope="orders")
    for order in orders:
        victim = order[-1]
        try:
            done = run_order(order, root, command, timeout)
        except FixError as exc:
            return Verification(False, f"the order {_shown(order)} did not run: {exc}", scope="orders")
        outcome = done.outcomes.get(victim) or next(
            (o for t, o in done.outcomes.items() if normal_id(t) == normal_id(victim)), None)
        if outcome != "passed":
            what = {"failed": "still fails", "skipped": "is skipped"}.get(str(outcome), "did not run")
            return Verification(False, f"{victim} {what} in the order {_shown(order)}", scope="orders")
    checked = ""
    if guard and guard.get("order"):
        try:
            done = run_order(list(guard["order"]), root, command, timeout)
        except FixError as exc:
            return Verification(False, f"the test's module did not run: {exc}", scope="orders")
        broken = [t for t in guard.get("passed", []) if done.outcomes.get(t) == "failed"]
        if broken:
            return Verification(False, f"{len(broken)} test(s) of its module that passed before now fail in their "
                                       f"usual order (first: {broken[0]})", scope="orders")
        checked = f", and its module's {len(guard['order'])} tests still pass as before"
    longer = [len(order) for order in orders if len(order) > 1]
    where = [f"after the tests that make it fail ({longer[0]} tests)"] if longer else []
    where += [f"in the whole order it failed in ({n} tests)" for n in longer[1:2]]
    if len(longer) > 2:
        where.append(f"in {len(longer) - 2} other order(s)")
    if len(longer) < len(orders):
        where.append("alone")
    said = " and ".join([", ".join(where[:-1]), where[-1]] if len(where) > 1 else where)
    return Verification(True, f"the victim passes {said}{checked}; re-ran {len(orders) + bool(checked)} order(s) "
                              f"through kb's order plugin", scope="orders")


def _shown(order: list[str]) -> str:
    return " ".join(order) if len(order) <= 4 else f"{' '.join(order[:2])} … {order[-1]} ({len(order)} tests)"


def _touched_names(item: RemedyPlan) -> set[str]:
    """Identifiers the fix removed or added (``getargspec``, ``getfullargspec``)."""
    before = {w for edit in item.edits for w in re.findall(r"[A-Za-z_]\w+", edit.before)}
    after = {w for edit in item.edits for w in re.findall(r"[A-Za-z_]\w+", edit.after)}
    return before ^ after


def implicated(item: RemedyPlan, failure: Failure | None, root: Path | None) -> bool:
    """Whether a new, unknown failure of a targeted test is the fix's doing: a frame of its traceback runs a
    line the fix wrote (``args, varargs, kw, defaults = inspect.getfullargspec(f)`` raising "too many values
    to unpack"), or — with no traceback to look at — its message names what the fix changed. Otherwise the
    edited lines ran and the test failed further on: the next, unknown layer (pandas 3's next behaviour
    change behind a fixed alias), which the fix uncovered and a later round or a person takes."""
    if failure is None:
        return True
    if not failure.frames:
        text = f"{failure.message}\n{failure.text}"
        return any(re.search(rf"\b{re.escape(name)}\b", text) for name in _touched_names(item)) or not text.strip()
    written = {line.strip() for edit in item.edits for line in edit.after.splitlines() if line.strip()}
    paths = {edit.path for edit in item.edits}
    for frame in failure.frames:
        name = frame.file.replace("\\", "/")
        rel = next((p for p in paths if name == p or name.endswith("/" + p) or p.endswith("/" + name)), None)
        if rel is None or root is None or not frame.line:
            continue
        try:
            text = Path(root, rel).read_text("utf-8", errors="replace").splitlines()[frame.line - 1]
        except (OSError, IndexError):
            return True
        if text.strip() in written:
            return True
    return False


def judge(item: RemedyPlan, run: Run, after: dict[str, Any], baseline: Baseline, *, whole: bool,
          neighbours: list[str], root: Path | None = None, evidence: dict[str, Failure] | None = None
          ) -> tuple[bool, str, list[str]]:
    """(held, note, newly collected tests that fail) for the verification run of ``item``; ``evidence``
    holds the run's failures (frames, text) by normal test id."""
    if run.tests == 0 and not run.results:
        return False, "no test ran (the affected tests were not found)", []
    failing = {normal_id(r.test_id): r for r in run.results if r.outcome in ("failed", "error")}
    ran = {normal_id(t) for t in run.order} | set(failing)
    cause_of = {normal_id(t): c for c in after["root_causes"] for t in c["tests"]}
    unknown = {normal_id(u["test"]): u for u in after.get("undiagnosed", [])}
    if any(c.get("key") == item.cause for c in after["root_causes"]):
        return False, "the targeted failures remain", []
    targeted = [normal_id(t) for t in item.tests]
    real = [t for t, raw in zip(targeted, item.tests, strict=False) if not is_module_id(raw)]
    if real and not whole and not any(t in ran for t in real):
        return False, "none of the targeted tests ran", []
    # a known cause raised on a line the fix wrote is the fix's own doing (an import it added, say)
    caused = [t for t in targeted if t in failing and t in cause_of and evidence is not None and evidence.get(t) is not None
              and evidence[t].frames and implicated(item, evidence[t], root)]
    if caused:
        return False, (f"{len(caused)} targeted test(s) now fail on a line the fix wrote: "
                       f"{cause_of[caused[0]]['title']}"), []
    wrong = [t for t in targeted if t in failing and t not in cause_of]
    further = [t for t in wrong if not implicated(item, (evidence or {}).get(t), root)]
    wrong = [t for t in wrong if t not in further]
    if wrong:
        first = unknown.get(wrong[0], {})
        what = f"{first.get('exception', '')}: {first.get('message', '')}".strip(": ")
        return False, (f"{len(wrong)} targeted test(s) now fail in a new way ({what or 'unknown failure'}): "
                       f"the edit is wrong"), []
    before_failing = {normal_id(t) for t in baseline.failing}
    before_ran = {normal_id(t) for t in baseline.ran}
    regressions: list[str] = []
    newly: list[str] = []
    for test, result in failing.items():
        if test in targeted or test in before_failing:
            continue
        if is_module_id(result.test_id) or result.phase == "suite":
            regressions.append(result.test_id)  # something that collected before no longer does
        elif not whole:
            if test in {normal_id(n) for n in neighbours}:
                regressions.append(result.test_id)
        elif baseline.known and test not in before_ran:
            newly.append(result.test_id)
        else:
            regressions.append(result.test_id)
    if regressions:
        return False, f"{len(regressions)} test(s) that passed before now fail (first: {regressions[0]})", newly
    next_layer = sorted({cause_of[t]["title"] for t in targeted if t in failing and t in cause_of})
    modules = [t for t, raw in zip(targeted, item.tests, strict=False) if is_module_id(raw) and t not in further]
    passing = [t for t in real if t in ran and t not in failing]
    gone = "; ".join(part for part in (
        f"{len(modules)} module(s) that failed to collect now collect" if modules else "",
        f"{len(passing)} targeted test(s) pass" if passing else "") if part) or "the targeted failures are gone"
    if further:
        first = unknown.get(further[0], {})
        gone = (f"{len(further)} targeted test(s) get past the fixed lines and fail further on with an unknown "
                f"next layer ({first.get('exception', '')}: {first.get('message', '')})".replace("(: ", "("))
    parts = [("the targeted tests now fail only with the next known cause: " + "; ".join(next_layer[:2]))
             if next_layer else gone]
    others = [t for t in failing if t not in targeted and failing[t].test_id not in newly]
    if others:
        parts.append(f"{len(others)} other failure(s) remain")
    if newly:
        titles = sorted({cause_of[normal_id(t)]["title"] for t in newly if normal_id(t) in cause_of})
        parts.append(f"{len(newly)} newly collected test(s) fail (they did not run before; not regressions)"
                     + (f": {'; '.join(titles[:2])}" if titles else ""))
    return True, "; ".join(parts), newly
