"""Value types shared by ingest, facts, the engine adapter and the reports.

A ``Run`` is what a reader produced from one or more report files. Readers stream: only
non-passing results are kept as ``TestResult`` objects (with their text); passing tests are
counted and their ids kept in ``order`` (the order the suite ran in, for isolation later).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["Frame", "TestResult", "Run", "OUTCOMES", "PHASES"]

OUTCOMES = ("passed", "failed", "error", "skipped")
#: "suite" marks an error/failure outside any testcase (Ant class-level errors, etc.).
PHASES = ("collection", "setup", "call", "teardown", "suite")


@dataclass(frozen=True)
class Frame:
    """One traceback frame as printed by the test tool."""

    file: str
    line: int | None
    function: str | None = None


class TestResult(NamedTuple):
    """One non-passing test (or suite-level error) as read from a report.

    An immutable value, as a frozen dataclass would be, but a reader builds one per failing test (tens of
    thousands in a large report) and a NamedTuple is built four times faster (``_replace`` makes a copy
    with changes)."""

    test_id: str
    outcome: str  # one of OUTCOMES
    phase: str = "call"  # one of PHASES
    classname: str = ""
    name: str = ""
    message: str = ""  # the message attribute / first line the tool gave
    type: str = ""  # the type attribute the tool gave (often the exception class)
    text: str = ""  # body: traceback, captured output of the failure element
    file: str | None = None  # from file=/line= attributes when the producer writes them
    line: int | None = None
    time: float | None = None
    source: str = ""  # the report file this came from
    flaky: bool = False
    #: structured facts from a kb run file (else parsed from ``text``): frames of the raising
    #: exception, innermost last, and the exceptions it was raised from/while handling, oldest first
    frames: tuple[Frame, ...] = ()
    chain: tuple[tuple[str, str], ...] = ()


# not a pytest test class; set here because a NamedTuple body takes fields only (so no B010 fix)
setattr(TestResult, "__test__", False)  # noqa: B010


@dataclass
class Run:
    """All that was read from one or more reports."""

    sources: list[str] = field(default_factory=list)
    format: str = ""
    tests: int = 0
    passed: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    #: non-passing results, in report order (suite-level errors included, phase "suite")
    results: list[TestResult] = field(default_factory=list)
    #: every test id in the order the report lists them
    order: list[str] = field(default_factory=list)
    #: counts exactly as the producer's own summary states them (pytest text: its final line)
    claimed: dict[str, int] = field(default_factory=dict)
    #: environment facts found in the report (e.g. {"python": "3.11.7", "pytest": "9.2.0"})
    environment: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the interpreter and rootdir the tests ran with, when the report says (kb run files do)
    interpreter: str = ""
    rootdir: str = ""
    #: when the tests ran, as the report states it (JUnit ``timestamp``; a kb run file's start, ISO 8601 UTC)
    timestamp: str = ""

    def summary(self) -> dict[str, int]:
        return {
            "tests": self.tests,
            "passed": self.passed,
            "failures": self.failures,
            "errors": self.errors,
            "skipped": self.skipped,
        }

    def add_environment(self, found: Mapping[str, str] | None) -> None:
        """Add environment facts learnt elsewhere; what the report itself says wins."""
        for key, value in (found or {}).items():
            self.environment.setdefault(key, value)

    def merge(self, other: Run) -> None:
        """Add another report's results to this run (several files, a directory)."""
        self.sources.extend(other.sources)
        if self.format and other.format and self.format != other.format:
            self.format = "mixed"
        else:
            self.format = self.format or other.format
        for key in ("tests", "passed", "failures", "errors", "skipped"):
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.results.extend(other.results)
        self.order.extend(other.order)
        for key, value in other.claimed.items():
            self.claimed[key] = self.claimed.get(key, 0) + value
        self.add_environment(other.environment)
        self.warnings.extend(other.warnings)
        self.interpreter = self.interpreter or other.interpreter
        self.rootdir = self.rootdir or other.rootdir
        self.timestamp = self.timestamp or other.timestamp
