"""The values the fix stage passes around: planned edits, plans, outcomes, options and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Edit", "Planned", "RemedyPlan", "FixPlan", "Outcome", "FixOptions", "Event", "Baseline", "RISKS"]

#: risk levels in increasing order (a remedy's ``risk``; ``--max-risk`` caps what ``--yes`` applies)
RISKS = ("low", "medium", "critical")


@dataclass(frozen=True)
class Edit:
    """One changed line of a planned fix (for display: the diff is the authority)."""

    path: str  # relative to the root, "/"-separated
    line: int  # 1-based, in the file before the change
    before: str
    after: str


@dataclass
class Planned:
    """What one remedy would change: file bytes, and requirements to install into the tests' environment."""

    edits: list[Edit] = field(default_factory=list)
    diff: str = ""
    #: relative path -> (bytes before, bytes after)
    changes: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    #: requirements to pip-install where the tests run (a pin and the dependents pinned along with it)
    install: tuple[str, ...] = ()
    #: where the change goes, in words ("setup.py install_requires", "tox.ini [testenv] deps")
    where: tuple[str, ...] = ()
    refused: str | None = None  # why nothing can be planned

    @property
    def ok(self) -> bool:
        return self.refused is None and bool(self.changes or self.install)


@dataclass
class RemedyPlan:
    """One root cause and the first of its remedies kb can carry out (``remedy`` None: none)."""

    cause: str
    title: str
    confidence: float
    remedy: dict[str, Any] | None
    edits: list[Edit] = field(default_factory=list)
    diff: str = ""
    skipped: str | None = None  # why nothing is planned for this cause
    rule: str = ""
    tests: list[str] = field(default_factory=list)  # the failing tests this cause explains
    neighbours: list[str] = field(default_factory=list)  # passing tests re-run too, to catch overfitting
    changes: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    install: tuple[str, ...] = ()
    where: tuple[str, ...] = ()
    #: exact test orders that prove the fix (an order-dependent test last in each): verification re-runs
    #: them through kb's order plugin instead of the targeted tests
    orders: list[list[str]] = field(default_factory=list)
    #: the test's neighbours in their usual order and those that passed there before the fix: none may fail
    #: after it (``{"order": [ids], "passed": [ids]}``; kb isolate records it before offering its fixture)
    guard: dict[str, list[str]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return str((self.remedy or {}).get("kind", ""))

    @property
    def risk(self) -> str:
        return str((self.remedy or {}).get("risk", "critical"))

    @property
    def changes_environment(self) -> bool:
        """A pin or a test-configuration change: verification re-runs the whole command."""
        return self.kind in ("dependency-pin", "test-config")

    def take(self, remedy: dict[str, Any], planned: Planned) -> None:
        self.remedy, self.edits, self.diff, self.changes = remedy, planned.edits, planned.diff, planned.changes
        self.install, self.where = planned.install, planned.where


@dataclass
class FixPlan:
    root: Path
    plans: list[RemedyPlan]

    def diff(self) -> str:
        return "".join(p.diff for p in self.plans if p.diff)


@dataclass(frozen=True)
class Baseline:
    """What the run before a fix showed: every test that ran, and those that failed (ids as the report
    spelled them; compared through :func:`kb.fix.tests.normal_id`)."""

    ran: frozenset[str] = frozenset()
    failing: frozenset[str] = frozenset()
    known: bool = False  # False: only the failing tests are known (a report without its passing tests)


@dataclass
class Outcome:
    fix_id: str
    verdict: str  # verified | plausible (only unverified) | rolled back
    note: str
    tests_before: int
    tests_after: dict[str, int] | None = None
    #: the diagnosis of the verification run: where the next (layered) causes come from
    after: dict[str, Any] | None = None
    #: tests that were not collected before and fail now (reported apart from regressions)
    newly_failing: list[str] = field(default_factory=list)


@dataclass
class FixOptions:
    apply: bool = False
    yes: bool = False
    #: the highest risk ``yes`` applies unasked: "low" or "medium" (critical always needs a person)
    max_risk: str = "low"
    min_confidence: float = 0.8
    allow_critical: bool = False
    allow_auto_fix: bool = True
    interactive: bool = False
    verify: bool = True
    test_command: list[str] | None = None
    max_rounds: int = 8
    timeout: float | None = None
    #: installed versions where the tests run (layered causes are diagnosed with them too)
    environment: dict[str, str] = field(default_factory=dict)
    #: the run the report came from (regressions are judged against it)
    baseline: Baseline = field(default_factory=Baseline)


@dataclass
class Event:
    """What happened to one planned fix, or between rounds (for the CLI to show)."""

    kind: str  # plan | refused | declined | outcome | round | stop | nothing
    item: RemedyPlan | None = None
    note: str = ""
    outcome: Outcome | None = None
