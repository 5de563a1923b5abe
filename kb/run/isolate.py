"""Progressive isolation: why does one test fail — its own code, chance, or another test?

``isolate(target, probe, before)`` works on a *probe*: a function that runs a list of node ids
(in that order, ending with the target) and says whether the target failed. The steps:

(a) the target alone, ``repeat`` times: fails every time → deterministic; sometimes → flaky
    (with the observed rate); never → (b).
(b) it passes alone: bisect the tests that ran before it in the suite for the polluter — one
    probe per halving, the last of which runs the polluter alone and so confirms it (or one more
    probe does) — then remove it and check for a second one. One polluter among n tests costs
    at most ⌈log2 n⌉ + 2 probes per repeat in step (b). When no single test is enough, the set is
    minimised (:func:`minimise`, ddmin's goal by prefix bisection); when even all of them together
    do not make it fail, it "passes".
(c) the reverse, when it fails alone but passes in the suite: bisect for the test it needs to run
    after (a missing setup dependency).

Every probe is repeated ``repeat`` times and counts as failing when the target fails in any of
them, so a polluter that pollutes only sometimes is still found. The verdict carries the number
of runs used and a minimal reproducer (the node ids to run, in order).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..models import Run, TestResult

__all__ = ["Verdict", "isolate", "bisect_one", "minimise", "run_bound", "with_verdicts", "VERDICT_TYPE"]

Probe = Callable[[list[str]], bool]  # runs node ids in order; True when the target (last) failed


@dataclass
class Verdict:
    test: str
    kind: str  # deterministic | flaky | order-dependent | needs-setup | passes | environment-dependent
    failed: int = 0  # target failures over `runs` repeats of the step that decided
    runs: int = 0
    polluters: list[str] = field(default_factory=list)  # order-dependent: tests that make it fail
    providers: list[str] = field(default_factory=list)  # needs-setup: tests it needs to run after
    probes: int = 0  # test-command runs used in all
    steps: list[str] = field(default_factory=list)
    reproducer: list[str] = field(default_factory=list)  # node ids, in order, that show the verdict

    def as_dict(self) -> dict[str, Any]:
        return {"test": self.test, "verdict": self.kind, "failed": self.failed, "runs": self.runs,
                "polluters": self.polluters, "providers": self.providers, "probes": self.probes,
                "steps": self.steps, "reproducer": self.reproducer}

    def message(self) -> str:
        """The verdict as a failure message the engine's rules match (``kb.verdict`` facts)."""
        if self.kind == "flaky":
            return f"flaky: failed {self.failed} of {self.runs} runs"
        if self.kind == "order-dependent":
            return f"order-dependent: fails after {', '.join(self.polluters)}"
        if self.kind == "needs-setup":
            return f"order-dependent: passes only after {', '.join(self.providers)}"
        if self.kind == "deterministic":
            return f"deterministic: failed {self.failed} of {self.runs} runs alone"
        return f"{self.kind}: failed {self.failed} of {self.runs} runs"


def run_bound(n: int) -> int:
    """The most probes (per repeat) isolation may use for one polluter among ``n`` earlier tests."""
    return math.ceil(math.log2(max(n, 1))) + 2


class _Counter:
    def __init__(self, probe: Probe, target: str, repeat: int, progress: Callable[[str, int], None] | None) -> None:
        self.probe, self.target, self.repeat, self.progress = probe, target, repeat, progress
        self.runs = 0
        self.step = ""

    def count(self, tests: list[str]) -> int:
        """How many of ``repeat`` runs of ``tests`` + target the target failed (stops at no early exit:
        the rate is the point)."""
        failed = 0
        for _ in range(self.repeat):
            self.runs += 1
            if self.progress:
                self.progress(self.step, self.runs)
            failed += bool(self.probe([*tests, self.target]))
        return failed

    def fails(self, tests: list[str]) -> bool:
        """Whether the target fails after ``tests`` in any of ``repeat`` runs (stops at the first)."""
        for _ in range(self.repeat):
            self.runs += 1
            if self.progress:
                self.progress(self.step, self.runs)
            if self.probe([*tests, self.target]):
                return True
        return False


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


def isolate(target: str, probe: Probe, before: Sequence[str], *, repeat: int = 3,
            progress: Callable[[str, int], None] | None = None, max_polluters: int = 2) -> Verdict:
    """Classify ``target``; ``before`` are the tests that ran before it in the suite, in order."""
    counter = _Counter(probe, target, max(1, repeat), progress)
    verdict = Verdict(target, "passes")
    counter.step = "a: alone"
    alone = counter.count([])
    verdict.steps.append(f"alone: failed {alone} of {counter.repeat}")
    before = [t for t in before if t != target]
    if 0 < alone < counter.repeat:
        verdict.kind, verdict.failed, verdict.runs, verdict.reproducer = "flaky", alone, counter.repeat, [target]
    elif alone == counter.repeat:
        _needs_setup(verdict, counter, before)
    else:
        _polluters(verdict, counter, before, max_polluters)
    verdict.probes = counter.runs
    return verdict


def _polluters(verdict: Verdict, counter: _Counter, before: list[str], max_polluters: int) -> None:
    """Step (b). One polluter among n costs ⌈log2 n⌉ probes for the halvings (the last one confirms
    it, or one more does), plus one to check that nothing else pollutes once it is removed."""
    pool = list(before)
    while len(verdict.polluters) < max_polluters and pool:
        counter.step = f"b: bisecting {len(pool)} tests for polluter {len(verdict.polluters) + 1}"
        found, confirmed = bisect_one(pool, counter.fails)
        if found is not None and not confirmed:
            confirmed = counter.fails([found])
        if found is None or not confirmed:
            counter.step = f"b: no single polluter; checking the {len(pool)} tests together"
            if counter.fails(pool):
                counter.step = f"b: minimising a set of {len(pool)} tests"
                group = minimise(pool, counter.fails)
                verdict.polluters.extend(group)
                verdict.steps.append(f"polluting together: {', '.join(group)}")
            break
        verdict.polluters.append(found)
        verdict.steps.append(f"polluter: {found}")
        pool = [t for t in pool if t != found]
        counter.step = "b: checking for another polluter"
        if not pool or not counter.fails(pool):
            break
    if not verdict.polluters:
        verdict.kind, verdict.runs = "passes", counter.repeat
        verdict.steps.append("passes alone and after the tests that ran before it")
        return
    verdict.kind = "order-dependent"
    verdict.failed, verdict.runs = 1, counter.repeat
    together = len(verdict.steps) and verdict.steps[-1].startswith("polluting together")
    verdict.reproducer = [*(verdict.polluters if together else verdict.polluters[:1]), verdict.test]


def _needs_setup(verdict: Verdict, counter: _Counter, before: list[str]) -> None:
    counter.step = "c: after the tests before it"
    verdict.failed = verdict.runs = counter.repeat
    if not before or counter.fails(before):
        verdict.kind, verdict.reproducer = "deterministic", [verdict.test]
        verdict.steps.append("fails alone and in the suite")
        return

    def passes(subset: list[str]) -> bool:
        return not counter.fails(subset)

    counter.step = f"c: bisecting {len(before)} tests for the setup it needs"
    found, confirmed = bisect_one(before, passes)
    if found is not None and (confirmed or passes([found])):
        verdict.providers = [found]
    else:
        counter.step = f"c: minimising a set of {len(before)} tests"
        verdict.providers = minimise(before, passes)
    verdict.kind = "needs-setup"
    verdict.failed = 0
    verdict.steps.append(f"passes only after: {', '.join(verdict.providers)}")
    verdict.reproducer = [*verdict.providers, verdict.test]


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
