"""The isolation search (kb.run.isolate) on modelled suites: a probe that replays the state a sequence of
tests leaves behind (polluters set a flag, cleaners reset it, setters provide what a brittle test needs),
so every verdict and the runs it costs are checked exactly and fast. The real-pytest side is in
test_isolate_order.py."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from kb.run.isolate import isolate, reconsider, run_bound


def suite(target: str, *, polluters: set[str] = frozenset(), cleaners: set[str] = frozenset(),
          setters: set[str] = frozenset(), group: set[str] = frozenset(), flaky: float = 0.0,
          seed: int = 3) -> tuple[Callable[[list[str]], bool], list[list[str]]]:
    """A probe over a modelled suite, and the list of the orders it was asked to run."""
    rng = random.Random(seed)
    asked: list[list[str]] = []

    def probe(tests: list[str]) -> bool:
        assert tests[-1] == target
        asked.append(tests)
        polluted, ready, seen = False, False, set()
        for test in tests[:-1]:
            seen.add(test)
            polluted = (polluted or test in polluters or (bool(group) and group <= seen)) and test not in cleaners
            ready = ready or test in setters
        if flaky and rng.random() < flaky:
            return True
        return polluted or (bool(setters) and not ready)

    return probe, asked


TESTS = [f"t{n:03d}" for n in range(200)]


@pytest.mark.parametrize("where", [0, 57, 198])
def test_one_polluter_costs_one_run_per_probe_within_the_bound(where: int) -> None:
    probe, asked = suite("victim", polluters={TESTS[where]})
    verdict = isolate("victim", probe, TESTS, cleaners=False)
    assert verdict.kind == "order-dependent" and verdict.polluters == [TESTS[where]]
    assert verdict.by_step["alone"] == 1 and verdict.by_step["order"] == 1
    assert verdict.by_step["polluters"] <= run_bound(len(TESTS))
    assert verdict.reproducer == [TESTS[where], "victim"]
    assert "repeats" not in verdict.by_step  # a stable suite: nothing repeated


def test_three_polluters_are_all_named_and_a_cap_is_said() -> None:
    polluters = {TESTS[10], TESTS[90], TESTS[150]}
    probe, _ = suite("victim", polluters=polluters)
    verdict = isolate("victim", probe, TESTS, cleaners=False)
    assert set(verdict.polluters) == polluters and not verdict.capped
    assert verdict.by_step["polluters"] <= 3 * run_bound(len(TESTS))
    probe, _ = suite("victim", polluters=polluters)
    capped = isolate("victim", probe, TESTS, max_polluters=2, cleaners=False)
    assert len(capped.polluters) == 2 and capped.capped
    assert any("--max-polluters 2" in step and "more polluters remain" in step for step in capped.steps)


def test_a_brittle_test_before_its_setter_needs_setup() -> None:
    # the setter runs *after* the victim in the order: only a search among all the other tests finds it
    probe, _ = suite("victim", setters={TESTS[150]})
    verdict = isolate("victim", probe, TESTS[:100], after=TESTS[100:])
    assert verdict.kind == "needs-setup" and verdict.providers == [TESTS[150]]
    assert verdict.reproducer == ["victim"]  # what shows the failure: the test alone


def test_a_test_failing_everywhere_is_deterministic_in_two_runs() -> None:
    probe, asked = suite("victim", polluters={"victim-itself"})

    def always(tests: list[str]) -> bool:
        asked.append(tests)
        return True

    verdict = isolate("victim", always, TESTS[:50], after=TESTS[50:])
    assert verdict.kind == "deterministic" and verdict.probes == 2  # alone, after all the others


def test_a_cleaner_is_found_between_polluter_and_victim() -> None:
    probe, _ = suite("victim", polluters={TESTS[20]}, cleaners={TESTS[120]})
    verdict = isolate("victim", probe, TESTS[:100], after=TESTS[100:])
    assert verdict.polluters == [TESTS[20]] and verdict.cleaners == [TESTS[120]]


def test_polluters_that_only_pollute_together() -> None:
    probe, _ = suite("victim", group={TESTS[30], TESTS[160]})
    verdict = isolate("victim", probe, TESTS, cleaners=False)
    assert verdict.kind == "order-dependent" and verdict.polluters == [TESTS[30], TESTS[160]]
    assert any("repeated up to" in step for step in verdict.steps)  # the bisection disagreed: careful mode


def test_a_flaky_test_that_looks_order_dependent_is_reconsidered() -> None:
    # alone passes, the order fails, [a] fails, [b] passes: a looks like the polluter
    outcomes = iter([False, True, True, False])
    verdict = isolate("victim", lambda tests: next(outcomes), ["a", "b"], repeat=4, cleaners=False)
    assert verdict.kind == "order-dependent" and verdict.polluters == ["a"]
    # … until its reproducer passes once when run again (kb.run.investigate's check): both orders re-run
    again = iter([False, True, False, False])  # [a] re-run to 4 runs: pass, fail, pass, pass
    assert reconsider(verdict, lambda tests: next(again), repeat=4)
    assert verdict.kind == "flaky" and not verdict.polluters and (verdict.failed, verdict.runs) == (1, 4)


def test_a_recorded_failing_order_is_not_run_again_before_bisecting() -> None:
    probe, asked = suite("victim", polluters={TESTS[57]})
    verdict = isolate("victim", probe, TESTS, cleaners=False, failed_in_order=True)
    assert verdict.polluters == [TESTS[57]] and "order" not in verdict.by_step
    assert verdict.probes <= 1 + run_bound(len(TESTS))  # what detect-test-pollution needs for one polluter
    wrong, _ = suite("victim")  # the "failing" order does not fail: the bisection's end disagrees
    verdict = isolate("victim", wrong, TESTS, cleaners=False, failed_in_order=True, repeat=2)
    assert verdict.kind == "passes" and "failed in that order once" in verdict.steps[-1]


def test_flaky_only_when_the_same_order_gives_both_outcomes() -> None:
    script = iter([False, True, False])  # the suite's order: passes, fails, passes; alone it always passes

    def probe(tests: list[str]) -> bool:
        return next(script) if len(tests) > 1 else False

    verdict = isolate("victim", probe, TESTS[:20], repeat=3)
    assert (verdict.kind, verdict.failed, verdict.runs) == ("flaky", 1, 3)
    assert verdict.reproducer == [*TESTS[:20], "victim"]
    stable, _ = suite("victim")  # never fails: passes, after re-running the order and the test alone
    verdict = isolate("victim", stable, TESTS[:20], repeat=3)
    assert verdict.kind == "passes" and verdict.by_step["repeats"] == 4


def test_several_polluters_are_all_named_in_the_cause(tmp_path) -> None:
    from kb.diagnose import diagnose_run
    from kb.models import Run
    from kb.run.isolate import Verdict, with_verdicts
    from kb.store import SqliteStore

    polluters = ["tests/test_a.py::test_x[1-2]", "tests/test_b.py::test_y", "tests/test_c.py::TestZ::test_z"]
    verdict = Verdict("tests/test_v.py::test_v", "order-dependent", 1, 1, polluters=polluters)
    with SqliteStore(tmp_path / "kb.sqlite") as store:
        report = diagnose_run(with_verdicts(Run(sources=["kb isolate"], format="kb-isolate"), [verdict]), store,
                              record=False)
    cause = report["root_causes"][0]
    assert cause["rule"] == "verdict-order-dependent"
    assert cause["title"] == f"The test fails only after {', '.join(polluters)}, which leaves shared state behind"
