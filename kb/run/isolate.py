"""Progressive isolation: why does one test fail — its own code, chance, or another test?

``isolate(target, probe, before, after=…)`` works on a *probe*: a function that runs a list of node ids
(in exactly that order, ending with the target) and says whether the target failed. ``before`` are the
tests that ran before the target in the order it failed in (an order file, a recorded run, or the
command's collection); ``after`` the other tests of that order. The steps:

(a) the target alone. It passes → (b); it fails → (c).
(b) it passes alone: the order before it is run. It fails there → bisect ``before`` for the polluter —
    one probe per halving, the last of which runs the polluter alone and so confirms it (or one more
    probe does) — then remove it and check whether the rest still pollutes; repeat until a probe shows
    none remain (all polluters by default; ``max_polluters`` is a cap, and reaching it with more left is
    said). One polluter among n tests costs at most ⌈log2 n⌉ + 2 probes. When no single test is enough,
    the set is minimised (:func:`minimise`). Then a *cleaner* is looked for: a test that, run between the
    polluters and the target, makes it pass again.
(c) it fails alone: look for a *setter* among all the other tests (before it and after it): run them
    all first; if it passes, bisect for the one it needs (``needs-setup``); else it is ``deterministic``.

Repeats are adaptive: every probe runs once while the outcomes agree with each other; when one
disagrees (the order passes although the target failed in it, a bisection's inferred culprit does not
confirm), the probes from then on run up to ``repeat`` times and count as failing when any run fails,
and the order (or the target alone) is re-run to see whether the same order gives both outcomes — only
that is ``flaky``. A stable suite so costs one run per probe. The verdict carries the runs per step and
a reproducer: the node ids, in order, that show the failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..models import Run, TestResult

__all__ = ["Verdict", "isolate", "find_cleaners", "reconsider", "bisect_one", "minimise", "run_bound", "with_verdicts",
           "VERDICT_TYPE"]

Probe = Callable[[list[str]], bool]  # runs node ids in order; True when the target (last) failed


@dataclass
class Verdict:
    test: str
    kind: str  # deterministic | flaky | order-dependent | needs-setup | passes | environment-dependent
    failed: int = 0  # target failures over `runs` runs of the order that decided
    runs: int = 0
    polluters: list[str] = field(default_factory=list)  # order-dependent: tests that make it fail
    providers: list[str] = field(default_factory=list)  # needs-setup: the setters it needs to run after
    cleaners: list[str] = field(default_factory=list)  # tests that, run after the polluters, make it pass
    probes: int = 0  # test-command runs used in all
    by_step: dict[str, int] = field(default_factory=dict)  # runs per step (alone, order, polluters, …)
    steps: list[str] = field(default_factory=list)
    reproducer: list[str] = field(default_factory=list)  # node ids, in order, that show the failure
    capped: bool = False  # --max-polluters reached with polluting tests left
    #: what the polluter (or the setter) changes, from kb's order plugin: see kb.run.order_plugin.changes
    state: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"test": self.test, "verdict": self.kind, "failed": self.failed, "runs": self.runs,
                "polluters": self.polluters, "providers": self.providers, "cleaners": self.cleaners,
                "probes": self.probes, "by_step": self.by_step, "steps": self.steps, "reproducer": self.reproducer,
                "capped": self.capped, "state": self.state}

    def message(self) -> str:
        """The verdict as a failure message the engine's rules match (``kb.verdict`` facts)."""
        if self.kind == "flaky":
            return f"flaky: failed {self.failed} of {self.runs} runs"
        if self.kind == "order-dependent" and not self.polluters:
            return "order-dependent: fails in the suite's order and passes alone"
        if self.kind == "order-dependent":
            return f"order-dependent: fails after {', '.join(self.polluters)}"
        if self.kind == "needs-setup":
            return f"order-dependent: passes only after {', '.join(self.providers)}"
        if self.kind == "deterministic":
            return f"deterministic: failed {self.failed} of {self.runs} runs alone"
        return f"{self.kind}: failed {self.failed} of {self.runs} runs"


def run_bound(n: int) -> int:
    """The most probes isolation may use to find one polluter among ``n`` earlier tests."""
    return math.ceil(math.log2(max(n, 1))) + 2


class _Search:
    """Runs probes and counts them. Adaptive: each probe runs once until an outcome disagrees with
    another (:meth:`disagree`); from then on a probe runs up to ``repeat`` times and fails when any run
    fails (a polluter that pollutes only sometimes is still found)."""

    def __init__(self, probe: Probe, target: str, repeat: int, progress: Callable[[str, int], None] | None) -> None:
        self.probe, self.target, self.repeat, self.progress = probe, target, repeat, progress
        self.runs = 0
        self.step = ""
        self.careful = False
        self.by_step: dict[str, int] = {}
        self.history: dict[tuple[str, ...], list[bool]] = {}

    def once(self, tests: list[str], step: str) -> bool:
        self.runs += 1
        self.by_step[step] = self.by_step.get(step, 0) + 1
        if self.progress:
            self.progress(self.step, self.runs)
        failed = bool(self.probe([*tests, self.target]))
        self.history.setdefault(tuple(tests), []).append(failed)
        return failed

    def fails(self, tests: list[str], step: str) -> bool:
        for _ in range(self.repeat if self.careful else 1):
            if self.once(tests, step):
                return True
        return False

    def disagree(self, note: str, verdict: Verdict) -> None:
        if not self.careful:
            self.careful = True
            verdict.steps.append(f"{note}: probes are repeated up to {self.repeat} times from here")

    def settle(self, tests: list[str], step: str) -> tuple[int, int]:
        """Re-run ``tests`` + target until ``repeat`` runs of that order are known: (failed, runs)."""
        seen = self.history.setdefault(tuple(tests), [])
        while len(seen) < self.repeat:
            self.once(tests, step)
        return sum(seen), len(seen)


def bisect_one(candidates: Sequence[str], decides: Callable[[list[str]], bool]) -> tuple[str | None, bool]:
    """Halve ``candidates`` down to the one whose presence ``decides`` (True for a subset holding it).

    ⌈log2 n⌉ calls. Returns (candidate, confirmed): confirmed when the last call was on that
    candidate alone; otherwise it was only inferred (the other half did not decide), and the
    caller confirms it — inference is wrong when no single candidate decides.
    """
    pool = list(candidates)
    confirmed = False
    while len(pool) > 1:
        half = pool[: len(pool) // 2]
        if decides(half):
            pool, confirmed = half, len(half) == 1
        else:
            pool, confirmed = pool[len(pool) // 2:], False
    return (pool[0] if pool else None), confirmed


def minimise(candidates: Sequence[str], decides: Callable[[list[str]], bool]) -> list[str]:
    """A minimal subset of ``candidates`` (in their order) for which ``decides`` holds — it holds
    for all of them. ddmin's goal, reached by prefix bisection: the shortest prefix that decides
    ends with a culprit; keep it, bisect the prefix before it with the culprits found so far, until
    those alone decide. k culprits among n cost about k·(⌈log2 n⌉ + 1) probes, where ddmin's
    complement tests need O(n) even for two."""
    found: list[str] = []
    pool = list(candidates)
    while pool and not decides(found):
        low, high = 1, len(pool)  # decides(pool[:high] + found) holds
        while low < high:
            middle = (low + high) // 2
            if decides([*pool[:middle], *found]):
                high = middle
            else:
                low = middle + 1
        found.insert(0, pool[high - 1])
        pool = pool[: high - 1]
    return found


def isolate(target: str, probe: Probe, before: Sequence[str], *, after: Sequence[str] = (), repeat: int = 3,
            progress: Callable[[str, int], None] | None = None, max_polluters: int | None = None,
            cleaners: bool = True, failed_in_order: bool = False) -> Verdict:
    """Classify ``target``: ``before`` ran before it in the order it failed in, ``after`` are the rest of
    that order (see the module docstring). ``failed_in_order``: the target is known to have failed after
    ``before`` (an order file, a recorded run), so that order is not run again before bisecting it — a
    bisection that then finds nothing is the disagreement that re-runs it."""
    search = _Search(probe, target, max(1, repeat), progress)
    verdict = Verdict(target, "passes")
    before = [t for t in before if t != target]
    after = [t for t in after if t != target and t not in before]
    search.step = "a: alone"
    if not search.once([], "alone"):
        verdict.steps.append("passes alone")
        _polluters(verdict, search, before, max_polluters, failed_in_order)
        if verdict.kind == "order-dependent" and cleaners:
            _cleaners(verdict, search, [t for t in [*before, *after] if t not in verdict.polluters])
    else:
        verdict.steps.append("fails alone")
        _setters(verdict, search, [*before, *after])
    verdict.probes, verdict.by_step = search.runs, dict(search.by_step)
    return verdict


def find_cleaners(verdict: Verdict, probe: Probe, candidates: Sequence[str], repeat: int = 3) -> None:
    """Look for a cleaner of an order-dependent ``verdict`` among ``candidates`` (adds to its runs)."""
    search = _Search(probe, verdict.test, max(1, repeat), None)
    _cleaners(verdict, search, [t for t in candidates if t not in verdict.polluters and t != verdict.test])
    _add_runs(verdict, search)


def reconsider(verdict: Verdict, probe: Probe, repeat: int = 3) -> bool:
    """The verdict's reproducer did not show the failure when run again: re-run the orders the verdict rests
    on — what must fail and what must pass — to ``repeat`` runs each; a mix of outcomes in one order makes
    the verdict flaky (a flaky test can look order-dependent in a search whose probes ran once). Returns
    whether it did."""
    search = _Search(probe, verdict.test, max(1, repeat), None)
    search.disagree("the reproducer did not show the failure when run again", verdict)
    orders = {"order-dependent": [list(verdict.polluters), []], "needs-setup": [[], list(verdict.providers)]}
    flaky = _flaky(verdict, search, orders.get(verdict.kind, [[]]))
    if flaky:
        verdict.polluters, verdict.providers, verdict.cleaners = [], [], []
    _add_runs(verdict, search)
    return flaky


def _add_runs(verdict: Verdict, search: _Search) -> None:
    verdict.probes += search.runs
    for step, runs in search.by_step.items():
        verdict.by_step[step] = verdict.by_step.get(step, 0) + runs


def _flaky(verdict: Verdict, search: _Search, orders: list[list[str]]) -> bool:
    """Re-run each order (the target alone is ``[]``) to ``repeat`` runs; the first that gave both outcomes
    makes the verdict flaky. Returns whether one did."""
    for order in orders:
        search.step = "flaky? re-running " + ("the test alone" if not order else f"the order of {len(order) + 1}")
        failed, runs = search.settle(order, "repeats")
        if 0 < failed < runs:
            verdict.kind, verdict.failed, verdict.runs = "flaky", failed, runs
            verdict.reproducer = [*order, verdict.test]
            verdict.steps.append(f"the same order gave both outcomes: failed {failed} of {runs} runs")
            return True
    return False


def _polluters(verdict: Verdict, search: _Search, before: list[str], max_polluters: int | None,
               failed_in_order: bool) -> None:
    """Step (b)."""
    search.step = f"b: the {len(before)} tests before it, then it"
    if not before or (not failed_in_order and not search.fails(before, "order")):
        search.disagree("it passes alone and after the tests before it", verdict)
        if not _flaky(verdict, search, [before, []] if before else [[]]):
            verdict.kind, verdict.runs = "passes", len(search.history.get(tuple(before), []))
            verdict.steps.append("passes alone and after the tests that ran before it")
        return
    verdict.steps.append(f"failed after the {len(before)} test(s) before it" + (
        " (as recorded; not re-run)" if failed_in_order else ""))
    pool = list(before)
    while pool:
        if max_polluters is not None and len(verdict.polluters) >= max_polluters:
            verdict.capped = True
            verdict.steps.append(f"stopped at --max-polluters {max_polluters}: the remaining {len(pool)} test(s) "
                                 f"still make it fail, so more polluters remain")
            break
        search.step = f"b: bisecting {len(pool)} tests for polluter {len(verdict.polluters) + 1}"
        found, confirmed = bisect_one(pool, lambda s: search.fails(s, "polluters"))
        if found is not None and not confirmed:
            confirmed = search.fails([found], "polluters")
        if found is None or not confirmed:
            search.disagree("no single test of the bisection makes it fail alone", verdict)
            search.step = f"b: checking the {len(pool)} tests together"
            if search.fails(pool, "polluters"):
                search.step = f"b: minimising a set of {len(pool)} tests"
                group = minimise(pool, lambda s: search.fails(s, "polluters"))
                verdict.polluters.extend(group)
                verdict.steps.append(f"polluting together: {', '.join(group)}")
            break
        verdict.polluters.append(found)
        verdict.steps.append(f"polluter: {found}")
        pool = [t for t in pool if t != found]
        search.step = "b: checking for another polluter"
        if not pool or not search.fails(pool, "polluters"):
            break
    if not verdict.polluters:
        if not _flaky(verdict, search, [before]):
            verdict.kind = "passes"
            verdict.steps.append("no test of the order makes it fail again" + (
                ": it failed in that order once, so it is flaky or the order lacks what that run had (another "
                "xdist worker, the environment)" if failed_in_order else ""))
        return
    verdict.kind = "order-dependent"
    verdict.failed, verdict.runs = 1, 1
    verdict.reproducer = [*verdict.polluters, verdict.test]


def _cleaners(verdict: Verdict, search: _Search, candidates: list[str]) -> None:
    """A test that, run between the polluters and the target, makes the target pass (its reset code is
    what the target needs). ⌈log2 n⌉ + 2 probes."""
    if not candidates:
        return
    polluters = list(verdict.polluters)
    search.step = f"cleaner: the other {len(candidates)} tests between the polluters and it"

    def cleans(subset: list[str]) -> bool:
        return not search.fails([*polluters, *subset], "cleaners")

    if not cleans(candidates):
        verdict.steps.append("no other test cleans up after the polluters")
        return
    found, confirmed = bisect_one(candidates, cleans)
    if found is not None and (confirmed or cleans([found])):
        verdict.cleaners = [found]
        verdict.steps.append(f"cleaner: {found} (run after the polluters, it makes the test pass)")


def _setters(verdict: Verdict, search: _Search, others: list[str]) -> None:
    """Step (c): fails alone. A setter among all the other tests, or deterministic."""
    verdict.reproducer = [verdict.test]
    verdict.failed = verdict.runs = 1

    def passes(subset: list[str]) -> bool:
        return not search.fails(subset, "setters")

    search.step = f"c: the other {len(others)} tests first, then it"
    if not others or not passes(others):
        verdict.kind = "deterministic"
        verdict.steps.append("fails alone and after all the other tests" if others else "fails alone")
        return
    search.step = f"c: bisecting {len(others)} tests for the setup it needs"
    found, confirmed = bisect_one(others, passes)
    if found is not None and (confirmed or passes([found])):
        verdict.providers = [found]
    else:
        search.disagree("no single test of the bisection makes it pass", verdict)
        search.step = f"c: minimising a set of {len(others)} tests"
        if passes(others):
            verdict.providers = minimise(others, passes)
    if not verdict.providers:
        if not _flaky(verdict, search, [[], others]):
            verdict.kind = "deterministic"
            verdict.steps.append("no test of the order makes it pass again")
        return
    verdict.kind = "needs-setup"
    verdict.failed = 1
    verdict.steps.append(f"passes only after: {', '.join(verdict.providers)}")


VERDICT_TYPE = "KbVerdict"
#: verdicts the engine diagnoses from the verdict itself (the others keep the test's own failure)
AS_FACTS = ("flaky", "order-dependent", "needs-setup")


def with_verdicts(run: Run, verdicts: Sequence[Verdict]) -> Run:
    """``run`` with each flaky / order-dependent test's failure replaced by its verdict — a
    ``KbVerdict`` failure the rules of the test-behaviour pack turn into a cause and remedies."""
    by_test = {v.test: v for v in verdicts if v.kind in AS_FACTS}
    results: list[TestResult] = []
    for result in run.results:
        verdict = by_test.pop(result.test_id, None)
        results.append(result if verdict is None else _verdict_result(verdict, result))
    extra = [_verdict_result(v, None) for v in by_test.values()]  # e.g. kb isolate on a test that passed
    new = replace(run, results=[*results, *extra])
    new.failures += len(extra)
    new.passed = max(0, new.passed - len(extra))
    return new


def _verdict_result(verdict: Verdict, original: TestResult | None) -> TestResult:
    message = verdict.message()
    return TestResult(
        verdict.test, "failed", original.phase if original else "call", original.classname if original else "",
        original.name if original else verdict.test.rsplit("::", 1)[-1], message, VERDICT_TYPE,
        f"{VERDICT_TYPE}: {message}", original.file if original else None, original.line if original else None,
        source=original.source if original else "kb isolate", flaky=verdict.kind == "flaky")
