"""IntegrationTestOrchestrator: run test commands, re-run chosen tests, collect the suite's order.

``run_command(cmd, root)`` runs any test command. pytest is first-class: kb adds ``--junitxml``
to a temporary file (and ``-p no:cacheprovider`` so runs leave no cache behind) and keeps the
terminal output; when pytest wrote no XML (a conftest that fails to import stops it before any
report) the terminal output is read instead. Another command names its report with ``report``.
A command that is missing, killed, hangs past ``timeout`` or writes no report gives a
:class:`CommandRun` whose ``problem`` says so in one line — never a traceback.

``run_tests(node_ids, root)`` re-runs just those pytest node ids, in the order given (pytest
keeps the command line's order), which is what verification and isolation are built from.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FixError, ReportError
from .ingest import read_report, read_reports
from .models import Run

__all__ = ["TestRun", "CommandRun", "run_tests", "run_command", "collect", "is_pytest", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 900


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


def is_pytest(cmd: Sequence[str]) -> bool:
    """``pytest …``, ``py.test …``, ``python -m pytest …`` (any interpreter path)."""
    if not cmd:
        return False
    if Path(cmd[0]).name in ("pytest", "py.test"):
        return True
    return Path(cmd[0]).name.startswith("python") and len(cmd) > 2 and cmd[1] == "-m" and cmd[2] == "pytest"


def _execute(cmd: list[str], root: str | Path, timeout: float, echo: Callable[[str], None] | None
             ) -> tuple[int | None, str, float, str | None, str | None]:
    """(status, output, seconds, problem, signal name). The command gets its own process group so a
    timeout kills everything it started."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True,
                                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    except FileNotFoundError:
        return None, "", 0.0, f"command not found: {cmd[0]}", None
    except PermissionError:
        return None, "", 0.0, f"command not executable: {cmd[0]}", None
    chunks: list[str] = []
    deadline = started + timeout
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    timed_out = False
    while True:
        piece = proc.stdout.read()
        if piece:
            chunks.append(piece)
            if echo:
                echo(piece)
        if proc.poll() is not None:
            rest = proc.stdout.read() or ""
            chunks.append(rest)
            if echo and rest:
                echo(rest)
            break
        if time.monotonic() > deadline:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            break
        time.sleep(0.02)
    seconds = time.monotonic() - started
    output = "".join(chunks)
    if timed_out:
        return None, output, seconds, f"timed out after {timeout:g} s (killed)", "SIGKILL"
    status = proc.returncode
    if status < 0:
        name = signal.Signals(-status).name if -status in signal.Signals._value2member_map_ else str(-status)
        return status, output, seconds, f"killed by {name}", name
    return status, output, seconds, None, None


def run_command(cmd: Sequence[str], root: str | Path = ".", *, timeout: float = DEFAULT_TIMEOUT,
                report: str | Path | None = None, echo: Callable[[str], None] | None = None) -> CommandRun:
    """Run a test command and read its results (see the module docstring)."""
    cmd = list(cmd)
    if not cmd:
        raise FixError("no test command given")
    with tempfile.TemporaryDirectory(prefix="kb-run-") as tmp:
        junit = Path(tmp) / "report.xml"
        full = cmd
        if report is None and is_pytest(cmd):
            full = [*cmd, "-p", "no:cacheprovider", f"--junitxml={junit}"]
        status, output, seconds, problem, killed = _execute(full, root, timeout, echo)
        result = CommandRun(full, status, None, output, seconds, problem, signal=killed)
        if status is None and problem and not killed:
            return result  # it never started
        if report is not None:
            path = Path(root, report)
            if not path.exists():
                result.problem = result.problem or f"the command wrote no report at {report}"
                return result
            result.run, result.report_source = _read(lambda: read_reports([str(path)]), result), str(report)
        elif is_pytest(cmd) and junit.exists() and junit.stat().st_size:
            result.run, result.report_source = _read(lambda: read_report(junit), result), "junit"
        if result.run is None and is_pytest(cmd) and output.strip():
            from .ingest.pytest_text import looks_like_pytest, parse_pytest_text

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
        try:
            done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        except FileNotFoundError:
            raise FixError(f"test command not found: {base[0]}") from None
        except subprocess.TimeoutExpired:
            return TestRun(-1, None, f"timed out after {timeout:.0f} s", cmd)
        output = (done.stdout or "") + (done.stderr or "")
        try:
            run = read_report(report) if report.exists() else None
        except ReportError:
            run = None
        return TestRun(done.returncode, run, output, cmd)


def collect(command: Sequence[str], root: str | Path, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """The suite's node ids in the order pytest runs them (``--collect-only -q``)."""
    cmd = [*command, "-p", "no:cacheprovider", "--collect-only", "-q"]
    status, output, _, problem, _ = _execute(cmd, root, timeout, None)
    if problem:
        raise FixError(f"collecting the tests: {problem}")
    ids = [line.strip() for line in output.splitlines() if "::" in line and not line.startswith(("=", " "))]
    if not ids and status not in (0, 5):
        raise FixError(f"collecting the tests failed (exit {status}): "
                       + " ".join(output.strip().splitlines()[-1:]))
    return ids
