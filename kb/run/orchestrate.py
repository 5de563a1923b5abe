"""IntegrationTestOrchestrator: run test commands, re-run chosen tests, record the order the tests ran in.

``run_command(cmd, root)`` runs any test command. pytest is first-class: kb adds ``--junitxml``
to a temporary file (copied to the user's own ``--junitxml`` afterwards) and ``-p no:cacheprovider``
so runs leave no cache behind, and keeps the terminal output; when pytest wrote no XML (a conftest
that fails to import stops it before any report) the terminal output is read instead. Another command names its report with ``report``.
A command that is missing, killed, hangs past ``timeout`` or writes no report gives a
:class:`CommandRun` whose ``problem`` says so in one line — never a traceback.

``run_tests(node_ids, root)`` re-runs just those pytest node ids, in the order given (pytest
keeps the command line's order), which is what verification and isolation are built from.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import FixError, KbError, ReportError
from ..ingest import read_report, read_reports
from ..models import Run
from .command import DEFAULT_TIMEOUT, execute, is_pytest, without_selection
from .isolate import Verdict, with_verdicts
from .ordered import PLUGIN, plugin_env, read_outcomes, run_order

if TYPE_CHECKING:  # kb.store is imported where a store is opened, not by every kb run import
    from ..store import Store

__all__ = ["TestRun", "CommandRun", "SuiteRun", "run_tests", "run_command", "run_suite", "rerun_failing",
           "split_junitxml"]


@dataclass
class TestRun:
    __test__ = False  # not a pytest test class

    returncode: int
    run: Run | None
    output: str
    command: list[str]


@dataclass
class CommandRun:
    """One run of a test command: its status, what kb read from its report, and what went wrong."""

    command: list[str]
    returncode: int | None  # None: it never ran or was killed by kb (timeout)
    run: Run | None
    output: str
    seconds: float
    problem: str | None = None  # one line: why there is no (complete) report
    report_source: str = ""  # "junit", "terminal", or the --report path
    signal: str | None = None  # the signal that killed the command, if one did
    extra: dict[str, str] = field(default_factory=dict)
    #: pytest: the order the tests executed in, pytest-randomly's seed, each test's xdist worker (kb's plugin)
    order: list[str] = field(default_factory=list)
    seed: int | None = None
    workers: dict[str, str] = field(default_factory=dict)


_JUNITXML = ("--junitxml", "--junit-xml")


def split_junitxml(cmd: Sequence[str]) -> tuple[list[str], str | None]:
    """``cmd`` without the user's own ``--junitxml``/``--junit-xml`` (``=PATH`` or ``PATH`` as the next
    argument), and the path it named — the last one, as pytest takes it."""
    kept: list[str] = []
    path: str | None = None
    args = iter(cmd)
    for arg in args:
        if arg in _JUNITXML:
            path = next(args, path)
        elif arg.startswith(tuple(f"{o}=" for o in _JUNITXML)):
            path = arg.split("=", 1)[1]
        else:
            kept.append(arg)
    return kept, path


def _gives_colour(cmd: Sequence[str]) -> bool:
    """Whether the command (or PYTEST_ADDOPTS) already says how pytest should colour."""
    addopts = os.environ.get("PYTEST_ADDOPTS", "").split()
    return any(a == "--color" or a.startswith("--color=") for a in [*cmd, *addopts])


def _copy_report(junit: Path, root: str | Path, wanted: str) -> str | None:
    """Write kb's JUnit XML where the user's ``--junitxml`` asked (relative to ``root``, where pytest ran;
    its folder created as pytest would); the problem in one line, or None."""
    from ..safeio import write_bytes_atomic

    target = Path(root, wanted)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, junit.read_bytes())
    except (OSError, KbError) as exc:
        return f"could not write --junitxml {wanted}: {exc}"
    return None


def run_command(cmd: Sequence[str], root: str | Path = ".", *, timeout: float = DEFAULT_TIMEOUT,
                report: str | Path | None = None, echo: Callable[[str], None] | None = None,
                colour: bool = False) -> CommandRun:
    """Run a test command and read its results (see the module docstring).

    pytest writes its JUnit XML to kb's temporary file; a ``--junitxml=PATH`` of the user's is taken off
    the command (pytest keeps only one) and kb's report is copied there afterwards, so the user still
    gets theirs. ``colour``: the output goes to a terminal, so pytest gets ``--color=yes`` (unless the
    command says how to colour) — piped into kb it would otherwise print plain text."""
    cmd = list(cmd)
    if not cmd:
        raise FixError("no test command given")
    with tempfile.TemporaryDirectory(prefix="kb-run-") as tmp:
        junit, outcomes = Path(tmp) / "report.xml", Path(tmp) / "outcomes.jsonl"
        full, env, wanted = cmd, None, None
        if report is None and is_pytest(cmd):
            base, wanted = split_junitxml(cmd)
            if colour and not _gives_colour(cmd):
                base.append("--color=yes")
            full = [*base, "-p", "no:cacheprovider", f"--junitxml={junit}", "-p", PLUGIN, f"--kb-outcomes={outcomes}"]
            env = plugin_env()
        status, output, seconds, problem, killed = execute(full, root, timeout, echo, env)
        if env is not None and f'importing plugin "{PLUGIN}"' in output:
            # an interpreter that ignores PYTHONPATH (python -I / -E): run the command without kb's order plugin
            full, env = full[:-3], None
            status, output, seconds, problem, killed = execute(full, root, timeout, echo)
        result = CommandRun(full, status, None, output, seconds, problem, signal=killed)
        if env is not None:
            ordered = read_outcomes(outcomes)
            result.order, result.seed, result.workers = list(ordered.outcomes), ordered.seed, ordered.workers
        if status is None and problem and not killed:
            return result  # it never started
        if report is not None:
            path = Path(root, report)
            if not path.exists():
                result.problem = result.problem or f"the command wrote no report at {report}"
                return result
            result.run, result.report_source = _read(lambda: read_reports([str(path)]), result), str(report)
        elif is_pytest(cmd) and junit.exists() and junit.stat().st_size:
            if wanted:
                result.problem = result.problem or _copy_report(junit, root, wanted)
            result.run, result.report_source = _read(lambda: read_report(junit), result), "junit"
        if result.run is None and is_pytest(cmd) and output.strip():
            from ..ingest.pytest_text import looks_like_pytest, parse_pytest_text

            if looks_like_pytest(output.encode("utf-8", "replace")[:65536]):
                result.run = _read(lambda: parse_pytest_text(output, "<terminal output>"), result)
                result.report_source = "terminal" if result.run is not None else ""
        if result.run is None and not result.problem:
            if is_pytest(cmd) and "No module named pytest" in output:
                result.problem = "pytest is not installed in the test command's environment"
            else:
                result.problem = "the command wrote no report kb can read" + (
                    "" if is_pytest(cmd) or report else " (name it with --report PATH)")
        return result


def _read(read: Callable[[], Run], result: CommandRun) -> Run | None:
    try:
        return read()
    except ReportError as exc:
        result.problem = result.problem or f"its report could not be read: {exc.reason}"
        return None


def run_tests(node_ids: Sequence[str], root: str | Path, command: Sequence[str] | None = None,
              timeout: float = DEFAULT_TIMEOUT) -> TestRun:
    """Run ``node_ids`` with the test command in ``root``; the JUnit report is read back with kb's reader."""
    base = list(command) if command else [sys.executable, "-m", "pytest"]
    with tempfile.TemporaryDirectory(prefix="kb-run-") as tmp:
        report = Path(tmp) / "report.xml"
        cmd = [*base, "-p", "no:cacheprovider", "-q", f"--junitxml={report}", *node_ids]
        status, output, _, problem, killed = execute(cmd, root, timeout, None)
        if status is None and not killed:
            raise FixError(f"test command not found: {base[0]}" if "not found" in (problem or "") else
                           f"test command {base[0]}: {problem}")
        if killed == "SIGKILL" and status is None:
            return TestRun(-1, None, f"timed out after {timeout:.0f} s", cmd)
        try:
            run = read_report(report) if report.exists() else None
        except ReportError:
            run = None
        return TestRun(status if status is not None else -1, run, output, cmd)


def _failed(run: Run | None, test: str) -> bool | None:
    """Whether ``test`` failed or errored in ``run`` (None: it is not in the run at all)."""
    if run is None:
        return None
    if any(r.test_id == test and r.outcome in ("failed", "error") for r in run.results):
        return True
    return False if test in run.order else None


def rerun_failing(node_ids: Sequence[str], repeat: int, root: str | Path, command: Sequence[str] | None = None,
                  timeout: float = DEFAULT_TIMEOUT, progress: Callable[[str, int], None] | None = None,
                  order: Sequence[str] = (), seed: int | None = None) -> list[Verdict]:
    """Re-run the failing tests ``repeat`` times, each alone *and* (when the run's order is known) in the
    order the suite ran them, through kb's order plugin. The original failure counts as one failed run
    in that order. A test that fails in the order every time but passes alone every time is
    order-dependent (``kb isolate`` finds the polluter), not flaky; flaky is the same order giving both
    outcomes. Without an order, the failing tests are re-run together by node id."""
    command = list(command) if command else [sys.executable, "-m", "pytest"]
    in_order = {t: [True] for t in node_ids}
    alone: dict[str, list[bool]] = {t: [] for t in node_ids}
    known = [t for t in order if t in in_order]
    last = max((order.index(t) for t in known), default=-1)
    for attempt in range(1, repeat + 1):
        if progress:
            progress(f"re-running {len(node_ids)} failing test(s) alone and in the suite's order", attempt)
        if known:
            again = run_order(list(order[: last + 1]), root, command, timeout, seed=seed)
            for test in known:
                in_order[test].append(again.failed(test) is not False)  # did not run: not a pass
            for test in node_ids:
                alone[test].append(run_order([test], root, command, timeout).failed(test) is not False)
        else:
            result = run_tests(list(node_ids), root, without_selection(command, root), timeout)
            for test in node_ids:
                in_order[test].append(_failed(result.run, test) is not False)
    return [_rerun_verdict(test, in_order[test], alone[test], bool(known)) for test in node_ids]


def _rerun_verdict(test: str, in_order: list[bool], alone: list[bool], ordered: bool) -> Verdict:
    where = "in the suite's order" if ordered else "re-run by node id"
    steps = [f"failed {sum(in_order)} of {len(in_order)} runs {where} (the suite run and its re-runs)"]
    if alone:
        steps.append(f"failed {sum(alone)} of {len(alone)} runs alone")
    probes = len(in_order) - 1 + len(alone)
    if 0 < sum(in_order) < len(in_order):
        return Verdict(test, "flaky", sum(in_order), len(in_order), probes=probes, steps=steps,
                    reproducer=[test])
    if alone and 0 < sum(alone) < len(alone):
        return Verdict(test, "flaky", sum(alone), len(alone), probes=probes, steps=steps, reproducer=[test])
    if alone and not any(alone):
        steps.append(f"fails only after other tests: kb isolate {test} finds which")
        return Verdict(test, "order-dependent", sum(in_order), len(in_order), probes=probes, steps=steps,
                    reproducer=[test])
    return Verdict(test, "deterministic", sum(in_order), len(in_order), probes=probes, steps=steps, reproducer=[test])


@dataclass
class SuiteRun:
    """What ``kb run`` did: the command's run, the diagnosis (None without a report), the verdicts."""

    command: CommandRun
    report: dict | None
    verdicts: list[Verdict]
    run_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """``kb run --format json``: the report document, the verdicts and the command that ran."""
        done = self.command
        return {**(self.report or {}), "verdicts": [v.as_dict() for v in self.verdicts],
                "command": {"argv": done.command, "exit_status": done.returncode, "seconds": round(done.seconds, 3)}}


def run_suite(cmd: Sequence[str], root: str | Path, store: Store, *, timeout: float = DEFAULT_TIMEOUT,
              report: str | Path | None = None, repeat: int = 0, echo: Callable[[str], None] | None = None,
              progress: Callable[[str, int], None] | None = None,
              environment: dict[str, str] | None = None, python: str | None = None,
              colour: bool = False) -> SuiteRun:
    """Run the test command, re-run its failures ``repeat`` times (pytest), diagnose with the verdicts as
    facts, and record the run — also when there is no report (then with the problem, no failures).
    ``colour``: the command's echoed output reaches a terminal (see :func:`run_command`)."""
    from ..diagnose import diagnose_run

    done = run_command(cmd, root, timeout=timeout, report=report, echo=echo, colour=colour)
    meta = {"command": done.command, "exit_status": done.returncode, "problem": done.problem,
            "seconds": round(done.seconds, 3)}
    if done.run is None:
        run_id = store.record_run({"sources": [], "format": "", "tests": 0, "passed": 0, "failures": 0, "errors": 0,
                                   "skipped": 0, "environment": dict(environment or {}), "diagnosed": 0,
                                   "undiagnosed": 0, **meta}, [], [])
        return SuiteRun(done, None, [], run_id)
    run = done.run
    run.add_environment(environment)
    verdicts: list[Verdict] = []
    failing = list(dict.fromkeys(r.test_id for r in run.results if r.outcome in ("failed", "error")
                                 and r.phase != "suite"))
    if repeat and failing and is_pytest(cmd) and not done.problem:
        base, _ = split_junitxml(cmd)  # re-runs must not overwrite the user's report with a few tests
        verdicts = rerun_failing(failing, repeat, root, base, timeout, progress, order=done.order, seed=done.seed)
        run = with_verdicts(run, verdicts)
    diagnosis = diagnose_run(run, store, record=True, run_meta=meta, python=python, root=root)
    if done.order and diagnosis.get("run_id"):
        store.record_order(diagnosis["run_id"], str(Path(root).resolve()), done.order, done.seed, done.workers)
    if verdicts:
        store.record_verdicts(diagnosis.get("run_id"), [v.as_dict() for v in verdicts])
    return SuiteRun(done, diagnosis, verdicts, diagnosis.get("run_id"))
