"""The rounds loop: plan, gate, apply and verify every root cause; then go on with what the fixes reveal.

``fix_rounds`` works from one report (``kb fix``): after fixes that hold, the verification runs'
diagnoses give the next round's causes (an import fix reveals the module's next removed API).
``heal`` works from the test command (``kb heal``): it runs the whole command, diagnoses, fixes,
and runs the whole command again — so causes in tests that collection never reached come up too —
until the suite is green, nothing known remains, no fix holds, or ``max_rounds``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..models import Run
from .gate import gate
from .plan import plan_fix
from .transaction import apply_fix
from .types import Baseline, Event, FixOptions, RemedyPlan

__all__ = ["fix_rounds", "heal", "baseline_of", "combined_patch", "HealRound"]

Approve = Callable[[RemedyPlan], bool]


def baseline_of(run: Run) -> Baseline:
    """What a run says about the tests before a fix: those that ran and those that failed."""
    failing = frozenset(r.test_id for r in run.results if r.outcome in ("failed", "error"))
    return Baseline(frozenset(run.order) | failing, failing, known=bool(run.order))


def _stale(item: RemedyPlan, root: Path) -> bool:
    for rel, (old, _new) in item.changes.items():
        try:
            if (root / rel).read_bytes() != old:
                return True
        except OSError:
            return True
    return False


def _one_round(report: dict[str, Any], root: str | Path, store: Any, options: FixOptions,
               approve: Approve | None, held: list[Any]) -> Iterator[Event]:
    """Plan every cause of ``report``; with ``options.apply`` gate, apply and verify each. Outcomes that
    hold are appended to ``held``."""
    from ..testenv import test_python

    python = test_python(options.test_command)
    plan = plan_fix(report, root, python=python, test_command=options.test_command)
    causes = {c.get("key", c["rule"]): c for c in report["root_causes"]}
    if not plan.plans:
        yield Event("nothing", note="nothing to fix: the report has no known root cause")
        return
    for item in plan.plans:
        if item.remedy is not None and options.apply and _stale(item, plan.root):
            # an earlier fix of this round edited the same file: plan this one on the new bytes
            item = plan_fix({"root_causes": [causes[item.cause]]}, root, python=python,
                            test_command=options.test_command).plans[0]
        yield Event("plan", item)
        if item.remedy is None or not options.apply:
            continue
        refused = gate(item, yes=options.yes, min_confidence=options.min_confidence,
                       allow_critical=options.allow_critical, allow_auto_fix=options.allow_auto_fix,
                       interactive=options.interactive, max_risk=options.max_risk)
        if refused:
            yield Event("refused", item, refused)
            continue
        if not options.yes and not (approve and approve(item)):
            yield Event("declined", item)
            continue
        outcome = apply_fix(item, root, store, options)
        yield Event("outcome", item, outcome=outcome)
        if outcome.verdict in ("verified", "plausible"):
            held.append(outcome)


def fix_rounds(report: dict[str, Any], root: str | Path, store: Any, options: FixOptions,
               approve: Approve | None = None) -> Iterator[Event]:
    """Plan (and with ``options.apply``, gate, apply and verify) the fixes of a report, round by round.
    ``approve`` is asked for each fix when ``options.yes`` is not set."""
    for round_no in range(1, options.max_rounds + 1):
        held: list[Any] = []
        yield from _one_round(report, root, store, options, approve, held)
        layered: dict[str, dict[str, Any]] = {}
        for outcome in held:
            for cause in (outcome.after or {}).get("root_causes", []):
                layered.setdefault(cause["key"], cause)
        if not options.apply or not layered:
            return
        if round_no == options.max_rounds:
            yield Event("stop", note=f"stopping after {options.max_rounds} rounds; {len(layered)} known cause(s) remain")
            return
        yield Event("round", note=f"round {round_no + 1}: the fixes revealed {len(layered)} further known cause(s)")
        report = {"root_causes": sorted(layered.values(), key=lambda c: -c["confidence"])}


@dataclass
class HealRound:
    """One round of ``kb heal``: the whole command's run before the fixes, and what the fixes did."""

    number: int
    tests: int = 0
    failing: int = 0
    causes: int = 0
    undiagnosed: int = 0
    verified: list[str] = field(default_factory=list)  # fix ids
    rolled_back: int = 0
    not_applied: int = 0
    problem: str | None = None


def heal(root: str | Path, store: Any, options: FixOptions, approve: Approve | None = None,
         rounds: list[HealRound] | None = None, echo: Callable[[str], None] | None = None) -> Iterator[Event]:
    """Run → diagnose → fix → run again, until green, nothing known remains or ``options.max_rounds``
    (see the module docstring). Each round is appended to ``rounds`` as it ends."""
    from ..diagnose import diagnose_run
    from ..run.command import DEFAULT_TIMEOUT
    from ..run.orchestrate import run_command
    from ..testenv import test_python
    from .verify import _command

    command = _command(options)
    python = test_python(options.test_command)
    rounds = rounds if rounds is not None else []
    tried: set[str] = set()
    for number in range(1, options.max_rounds + 2):
        done = run_command(command, root, timeout=options.timeout or DEFAULT_TIMEOUT, echo=echo)
        current = HealRound(number)
        rounds.append(current)
        if done.run is None:
            current.problem = done.problem or "the test command wrote no report"
            yield Event("stop", note=f"round {number}: {current.problem}")
            return
        run = done.run
        run.add_environment(options.environment)
        report = diagnose_run(run, store, record=True, python=python, root=root,
                              run_meta={"command": done.command, "exit_status": done.returncode,
                                        "problem": done.problem, "seconds": round(done.seconds, 3)})
        current.tests, current.failing = run.tests, run.failures + run.errors
        current.causes, current.undiagnosed = len(report["root_causes"]), report["summary"]["undiagnosed"]
        if current.failing == 0:
            yield Event("stop", note=f"round {number}: all {run.tests} test(s) pass")
            return
        fresh = [c for c in report["root_causes"] if c["key"] not in tried]
        if not fresh:
            yield Event("stop", note=(f"round {number}: {current.failing} failure(s) remain; "
                                      + (f"no known cause kb has not tried already ({current.undiagnosed} undiagnosed)"
                                         if report["root_causes"] else "none has a known cause")))
            return
        if number > options.max_rounds:
            yield Event("stop", note=f"stopping after {options.max_rounds} round(s); {len(fresh)} known cause(s) remain")
            return
        yield Event("round", note=f"round {number}: {run.tests} test(s), {current.failing} failing, "
                                  f"{len(fresh)} known cause(s) to fix")
        options.baseline = baseline_of(run)
        held: list[Any] = []
        for event in _one_round({"root_causes": fresh}, root, store, options, approve, held):
            if event.kind == "outcome" and event.outcome is not None:
                if event.outcome.verdict == "rolled back":
                    current.rolled_back += 1
            elif event.kind in ("refused", "declined") or (event.kind == "plan" and event.item
                                                          and event.item.remedy is None):
                current.not_applied += 1
            yield event
        tried.update(c["key"] for c in fresh)
        current.verified = [o.fix_id for o in held]
        if not held:
            yield Event("stop", note=f"round {number}: no fix held; {current.failing} failure(s) remain")
            return


def combined_patch(root: str | Path, fix_ids: list[str]) -> str:
    """One ``git apply``-compatible patch of what the fixes ``fix_ids`` (in order) changed: each file from
    its bytes before the first of them to its bytes now."""
    from ..journal import Journal
    from .sources import unified_diff

    journal = Journal(root)
    first: dict[str, bytes] = {}
    for fix_id in fix_ids:
        for change in journal.load(fix_id).files:
            if change.path not in first:
                before = journal.backup_bytes(fix_id, change.path)
                if before is not None:
                    first[change.path] = before
    parts = []
    for rel, before in sorted(first.items()):
        try:
            now = (journal.root / rel).read_bytes()
        except OSError:
            continue
        old = before.decode("utf-8", "surrogateescape").splitlines(keepends=True)
        new = now.decode("utf-8", "surrogateescape").splitlines(keepends=True)
        parts.append(unified_diff(rel, old, new))
    return "".join(parts)
