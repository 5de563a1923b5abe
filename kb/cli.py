"""The ``kb`` command: parses options, calls the library, formats. No logic lives here.

Exit status (the README's table lists every command's): 0 when the command did its job (``kb diagnose``
exits 0 even when the tests it read had failed — it diagnosed them — unless ``--fail-on`` asks otherwise);
1 when kb could not (a bad report, a bad pack, a KB problem: one line naming the file and the reason, no
traceback unless ``--debug``) or a gate tripped; 2 for usage errors (click's convention). ``kb run`` exits
with the test command's own status unless ``--fail-on`` says otherwise; ``kb fix`` exits 1 when a fix was
rolled back and 3 when ``--apply`` applied nothing although there were causes to fix.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .errors import KbError
from .report import formats
from .report.gate import FAIL_ON, RUN_FAIL_ON, gate_status
from .terminal import BOLD, GREEN, RED, YELLOW, colour_wanted, fit, one_line, safe_text, style

if TYPE_CHECKING:
    from .fix.tally import Tally
    from .knowledge.learn import LearnResult

__all__ = ["main", "cli"]


class _State:
    debug = False


def _debug_option(func: Any) -> Any:
    def set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            _State.debug = True
        return value

    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=set_debug,
                        help="Show tracebacks for errors.")(func)


def _db_option(func: Any) -> Any:
    return click.option("--db", "db", type=click.Path(dir_okay=False), envvar="KB_DB",
                        help="Knowledge base: a SQLite file or a postgresql:// URL (default: .kb/kb.sqlite found upward, like "
                        "git; env KB_DB).")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kb")
@_debug_option
def cli() -> None:
    """kb: says why tests fail — root causes with confidence and evidence — and how to fix them."""
    from .journal import project_of

    _RECOVERED.clear()  # a new command (in-process callers run several)
    project = project_of(Path.cwd().resolve())
    if project is not None:  # an interrupted fix or undo is finished before anything else
        _recover(project)


def _format_option(func: Any) -> Any:
    return click.option("--format", "fmt", type=click.Choice(formats()), default="text", show_default=True,
                        help="Output format: text, markdown and json for people and scripts; sarif (code scanning), "
                             "github (workflow-command annotations) and gitlab (code-quality report) for CI.")(func)


def _echo_report(doc: dict[str, Any], fmt: str) -> None:
    """The report on stdout, coloured when stdout wants colour (a terminal, or FORCE_COLOR)."""
    from .report import render

    colour = colour_wanted(sys.stdout)
    click.echo(render(doc, fmt, colour=colour), nl=False, color=colour)


@cli.command()
@click.argument("reports", nargs=-1, required=True)
@_format_option
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="never", show_default=True,
              help="Exit 1 when: some failure has no known cause (undiagnosed), a root cause was found (cause), "
                   "any test failed (any); never: exit 0 once the report is diagnosed.")
@click.option("--no-record", is_flag=True, help="Do not record this run in the knowledge base.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this file instead of standard output.")
@click.option("--python", "python", type=click.Path(dir_okay=False, exists=True),
              help="Interpreter the tests ran with: its installed versions make version-aware rules precise and "
                   "its packages resolve who owns a missing name.")
@click.option("--root", type=click.Path(file_okay=False, exists=True),
              help="The project's root (its declared dependencies; default: found from the report).")
@click.option("--learn", is_flag=True,
              help="When a cause is only reasoned from the environment, mine that distribution's releases for "
                   "the exact change (needs the package index and griffe), store it as learned, diagnose again.")
@_db_option
@_debug_option
def diagnose(reports: tuple[str, ...], fmt: str, fail_on: str, no_record: bool, output: str | None,
             python: str | None, root: str | None, learn: bool, db: str | None) -> None:
    """Diagnose test REPORTS: JUnit XML files, pytest terminal output, directories, or - for stdin."""
    from .diagnose import diagnose as run_diagnose
    from .report import render

    environment = None
    if python:
        from .store import kb_cache
        from .testenv import environment as read_environment

        environment = read_environment(python, kb_cache(db))
        if not environment:
            raise click.UsageError(f"{python}: could not read its installed versions")
    if learn:
        from .diagnose import diagnose_learning

        if "-" in reports:
            raise click.UsageError("--learn diagnoses the reports again after learning: give files, not -")
        doc = diagnose_learning(list(reports), db=db, record=not no_record, environment=environment, python=python,
                                root=root, progress=_show_mining, learned=_show_learned)
    else:
        doc = run_diagnose(list(reports), db=db, record=not no_record, stdin=sys.stdin.buffer,
                           environment=environment, python=python, root=root)
    if output:
        from .safeio import write_text_atomic

        write_text_atomic(output, render(doc, fmt))
    else:
        _echo_report(doc, fmt)
    status = gate_status(doc, fail_on)
    if status:
        sys.exit(status)


def _fix_and_heal_options(func: Any) -> Any:
    """The options ``kb fix`` and ``kb heal`` share: approval, rounds, the per-run timeout, the patch file."""
    for option in reversed([
        click.option("--yes", is_flag=True, help="Apply fixes unasked up to --max-risk, at or above --min-confidence "
                                                 "(no terminal needed: for CI bots and scheduled jobs)."),
        click.option("--max-risk", type=click.Choice(["low", "medium"]), default="low", show_default=True,
                     help="With --yes: the highest risk applied unasked (critical always needs a person)."),
        click.option("--min-confidence", type=click.FloatRange(0, 1), default=None,
                     help="With --yes: the least confidence, as printed, to apply (default 0.8, or "
                          "min_confidence in the config)."),
        click.option("--allow-critical", is_flag=True, help="Allow critical-risk fixes (still asks at the terminal)."),
        click.option("--max-rounds", type=click.IntRange(1, 50), default=8, show_default=True,
                     help="Rounds of fixing what the previous fixes revealed, at most."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=900, show_default=True,
                     help="Seconds per test-command run."),
        click.option("--patch", "patch", type=click.Path(dir_okay=False),
                     help="Write the combined patch to this file."),
    ]):
        func = option(func)
    return func


#: a fix's verdict on a terminal: held (green), undone by kb (red), anything else (yellow)
_VERDICT_COLOUR = {"verified": GREEN, "plausible": YELLOW, "rolled back": RED, "failed": RED}


def _show_events(events: Any, patches: list[str]) -> Tally:
    """Print what happened to each planned fix; the tally of outcomes (for the closing line and exit status)."""
    from .fix.tally import Tally

    tally = Tally()
    number = 0
    for event in events:
        tally.add(event)
        item = event.item
        if event.kind == "plan":
            number += 1
            click.echo(safe_text(f"{number}. {item.title}  (confidence {item.confidence:.2f})"))
            if item.remedy is None:
                click.echo(safe_text(f"   not planned: {item.skipped}"))
                continue
            remedy = item.remedy
            files = sorted({e.path for e in item.edits})
            where = f" in {', '.join(item.where)}" if item.where else ""
            install = f"; installs {' '.join(item.install)}" if item.install else ""
            click.echo(f"   [{remedy['kind']}, {remedy['risk']} risk] {remedy['description']} "
                       f"— {len(item.edits)} change(s) in {len(files)} file(s){where}{install}, "
                       f"{len(item.tests)} affected test(s)")
            click.echo(item.diff, nl=False)
            patches.append(item.diff)
        elif event.kind in ("refused", "declined"):
            click.echo(safe_text(f"   not applied: {event.note}") if event.kind == "refused" else "   skipped")
        elif event.kind == "outcome":
            outcome = event.outcome
            colour = colour_wanted(sys.stdout)
            verdict = style(outcome.verdict, BOLD, _VERDICT_COLOUR.get(outcome.verdict, YELLOW)) if colour \
                else outcome.verdict
            click.echo(f"   {verdict}: " + safe_text(f"{outcome.note} (fix {outcome.fix_id}; undo with kb undo "
                                                    f"{outcome.fix_id})"), color=colour)
        elif event.kind != "nothing":  # "nothing to fix" is the closing line's to say
            click.echo(safe_text(event.note))
    return tally


def _closing_line(counts: Tally, applying: bool) -> str:
    if not counts["planned"] and not counts["not planned"]:
        return "nothing to fix: no known root cause"
    if not applying:
        return (f"dry run: nothing was changed ({counts['planned']} fix(es) planned, "
                f"{counts['not planned']} cause(s) without a fix kb can apply)")
    return (f"{counts['verified']} fix(es) verified, {counts['rolled back']} rolled back, "
            f"{counts['not applied']} not applied, {counts['not planned']} cause(s) without a fix kb can apply"
            + (f", {counts['plausible']} applied unverified" if counts["plausible"] else ""))


def _write_patch(patch: str | None, text: str) -> None:
    if patch:
        from .safeio import write_text_atomic

        if not text:
            click.echo(f"no patch written to {patch}: nothing changed")
            return
        write_text_atomic(patch, text)
        click.echo(f"patch written to {patch} (apply with: git apply {patch})")


def _interactive() -> bool:
    """Whether a person can approve fixes at this terminal."""
    return sys.stdin.isatty() and sys.stdout.isatty()


#: projects already recovered by this command (the group's cwd project and its --root are often one)
_RECOVERED: set[Path] = set()


def _recover(root: str | Path) -> None:
    """Finish what a killed kb left in the project at ``root`` (every command does this first, once per
    project and command)."""
    from .fix.transaction import recover

    project = Path(root).resolve()
    if project in _RECOVERED:
        return
    _RECOVERED.add(project)
    for entry in recover(project):
        was = entry.history[-2][0] if len(entry.history) > 1 else "applying"
        done = "the undo was completed" if entry.state == "undone" else "its files were restored"
        click.echo(f"recovered: fix {entry.id} was interrupted ({was}); {done}", err=True)


@cli.command()
@click.argument("reports", nargs=-1)
@click.option("--last", is_flag=True, help="Use the last recorded run's diagnoses instead of REPORTS.")
@click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", show_default=True,
              help="The project whose files the fixes edit.")
@click.option("--apply", "apply_", is_flag=True, help="Apply the fixes (each approved at the terminal unless --yes).")
@click.option("--no-verify", is_flag=True, help="Do not re-run tests after applying (the verdict is then 'plausible').")
@click.option("--test-command", help="Command that runs the tests, e.g. 'venv/bin/python -m pytest'.")
@_fix_and_heal_options
@_db_option
@_debug_option
def fix(reports: tuple[str, ...], last: bool, root: str, patch: str | None, apply_: bool, yes: bool, max_risk: str,
        min_confidence: float | None, allow_critical: bool, no_verify: bool, test_command: str | None,
        max_rounds: int, timeout: float, db: str | None) -> None:
    """Plan fixes for the root causes of REPORTS and show each diff; --apply applies them.

    Applying journals and backs up every file first (.kb/journal, .kb/backups), writes atomically,
    re-runs what proves the fix (the targeted tests; the whole test command for pins and pytest
    configuration), rolls back when it does not hold, and records the outcome so the rule's confidence
    learns from it. Undo with `kb undo`. To run the tests, fix and re-run until green: `kb heal`.
    """
    import shlex

    from .fix import fix_rounds
    from .fix.options import diagnose_for_fix, fix_options
    from .store import kb_cache, open_store

    if bool(reports) == last:
        raise click.UsageError("give REPORTS or --last (not both)")
    if yes and not apply_:
        raise click.UsageError("--yes only makes sense with --apply")
    _recover(root)
    options = fix_options(root, shlex.split(test_command) if test_command else None, apply=apply_, yes=yes,
                          max_risk=max_risk, min_confidence=min_confidence, allow_critical=allow_critical,
                          verify=not no_verify, max_rounds=max_rounds, timeout=timeout, interactive=_interactive(),
                          cache_dir=kb_cache(db))
    store = open_store(db)
    patches: list[str] = []
    try:
        if last:
            report = store.last_report()
        else:
            report = diagnose_for_fix(list(reports), store, options, root, stdin=sys.stdin.buffer)
        approve = lambda item: click.confirm("   apply this fix?", default=False)  # noqa: E731
        counts = _show_events(fix_rounds(report, root, store, options, approve), patches)
    finally:
        store.close()
    _write_patch(patch, "".join(patches))
    click.echo(_closing_line(counts, apply_))
    status = counts.status(apply_)
    if status:
        sys.exit(status)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", show_default=True,
              help="The project: where the command runs and whose files the fixes edit.")
@_fix_and_heal_options
@_db_option
@_debug_option
def heal(command: tuple[str, ...], root: str, patch: str | None, yes: bool, max_risk: str,
         min_confidence: float | None, allow_critical: bool, max_rounds: int, timeout: float,
         db: str | None) -> None:
    """Run the test COMMAND (after --), diagnose, fix, and run it again until green: kb heal -- python -m pytest

    Each round runs the whole command, so causes in tests that collection never reached come up in
    the next round. Stops when the tests pass, no known cause is left untried, no fix held, or after
    --max-rounds. Every fix is proven before it is kept (see kb fix). Prints a round-by-round summary
    and one combined patch (--patch FILE writes it). Without COMMAND: test_command from the config,
    else `python -m pytest`.
    """
    from .fix import HealRound, heal as run_heal
    from .fix.options import fix_options
    from .fix.tally import heal_status
    from .store import kb_cache, open_store

    _recover(root)
    options = fix_options(root, list(command) or None, apply=True, yes=yes, max_risk=max_risk,
                          min_confidence=min_confidence, allow_critical=allow_critical, verify=True,
                          max_rounds=max_rounds, timeout=timeout, interactive=_interactive(),
                          cache_dir=kb_cache(db))
    store = open_store(db)
    rounds: list[HealRound] = []
    approve = lambda item: click.confirm("   apply this fix?", default=False)  # noqa: E731
    try:
        counts = _show_events(run_heal(root, store, options, approve, rounds), [])
    finally:
        store.close()
    from .fix.rounds import combined_patch

    click.echo("")
    click.echo(f"{'round':>5} {'tests':>6} {'failing':>8} {'causes':>7} {'undiagnosed':>11} {'verified':>9} "
               f"{'rolled back':>11} {'not applied':>11}")
    for r in rounds:
        click.echo(f"{r.number:>5} {r.tests:>6} {r.failing:>8} {r.causes:>7} {r.undiagnosed:>11} "
                   f"{len(r.verified):>9} {r.rolled_back:>11} {r.not_applied:>11}" + (f"  {r.problem}" if r.problem else ""))
    text = combined_patch(root, [fix_id for r in rounds for fix_id in r.verified])
    if text:
        click.echo("\ncombined patch of the fixes kept:")
        click.echo(text, nl=False)
    _write_patch(patch, text)
    click.echo(_closing_line(counts, True))
    sys.exit(heal_status(rounds))


class _Progress:
    """One self-overwriting status line on a terminal (step, runs so far, elapsed); silent otherwise."""

    def __init__(self) -> None:
        import time

        self.started = time.monotonic()
        self.live = sys.stderr.isatty()
        self.shown = False

    @staticmethod
    def width() -> int:
        """The terminal's columns less one (a line that fills the last column wraps on some terminals, and a
        wrapped line can no longer be overwritten); asked at every update, so a resize is followed."""
        import shutil

        return max(shutil.get_terminal_size((80, 24)).columns - 1, 1)

    def __call__(self, step: str, runs: int) -> None:
        import time

        if self.live:
            width = self.width()
            line = fit(f"kb: {step} · {runs} run(s) · {time.monotonic() - self.started:.1f} s", width)
            click.echo(f"\r{line:{width}}", nl=False, err=True)
            self.shown = True

    def done(self) -> None:
        if self.shown:
            click.echo(f"\r{'':{self.width()}}\r", nl=False, err=True)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", show_default=True,
              help="Where the command runs.")
@click.option("--report", "report_path", help="The report file a non-pytest command writes (JUnit XML or pytest output).")
@click.option("--repeat", type=click.IntRange(0, 1000), default=0, show_default=True,
              help="Re-run each failing test this many times alone and in the suite's order: flaky when the same "
                   "order gives both outcomes, order-dependent when it fails only in the suite's order.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=900, show_default=True,
              help="Seconds before the command (and everything it started) is killed.")
@click.option("--fail-on", type=click.Choice(RUN_FAIL_ON), default="status", show_default=True,
              help="Exit status: the command's (status); 1 if a failure is undiagnosed, if a root cause was found "
                   "(cause), if any test failed (any); or 0 (never).")
@_format_option
@click.option("--quiet", is_flag=True, help="Do not echo the command's own output.")
@_db_option
@_debug_option
def run(command: tuple[str, ...], root: str, report_path: str | None, repeat: int, timeout: float, fail_on: str,
        fmt: str, quiet: bool, db: str | None) -> None:
    """Run a test COMMAND (after --), record and diagnose it: kb run -- python -m pytest tests/

    pytest gets --junitxml to a temporary file (its own output is kept); other commands name their
    report with --report. Exits with the command's status unless --fail-on says otherwise; when
    the command cannot run, hangs past --timeout, or writes no report, kb says so in one line,
    records the run, and exits 1.
    """
    _recover(root)
    from .run.orchestrate import run_suite
    from .store import open_store
    from .testenv import command_python, environment

    progress = _Progress()
    store = open_store(db)
    # the command's output is echoed on stderr: pytest colours it when that is a terminal (or FORCE_COLOR)
    colour = not quiet and colour_wanted(sys.stderr)
    try:
        python = command_python(command)
        env = environment(python, store.cache_dir) if python else {}
        result = run_suite(list(command), root, store, timeout=timeout, report=report_path, repeat=repeat,
                           echo=None if quiet else (lambda text: click.echo(text, nl=False, err=True, color=colour)),
                           progress=progress, environment=env, python=python, colour=colour)
    finally:
        progress.done()
        store.close()
    done = result.command
    if result.report is None:
        raise KbError(f"{' '.join(command)}: {done.problem} (run {result.run_id} recorded)")
    if done.problem:
        click.echo(f"kb: warning: {done.problem}", err=True)
    if fmt == "json":
        import json

        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        _echo_report(result.report, fmt)
        for verdict in (result.verdicts if fmt in ("text", "markdown") else []):
            if verdict.kind == "flaky":
                click.echo(safe_text(f"flaky: {verdict.test} failed {verdict.failed} of {verdict.runs} runs"))
            elif verdict.kind == "order-dependent":
                click.echo(safe_text(f"order-dependent: {verdict.test} fails in the suite's order and passes alone: "
                                     f"kb isolate {verdict.test} --run {result.run_id} names the polluter"))
    sys.exit(gate_status(result.report, fail_on, done.returncode))


@cli.command()
@click.argument("node_id")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", show_default=True)
@click.option("--order-file", type=click.Path(dir_okay=False), default=None,
              help="The order the test failed in: one node id per line (e.g. from CI's log).")
@click.option("--run", "run_id", type=int, default=None,
              help="Take the order of this recorded kb run (default: the last run here in which NODE_ID failed).")
@click.option("--repeat", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Runs per probe once outcomes disagree (a stable suite needs one run per probe).")
@click.option("--max-polluters", type=click.IntRange(min=1), default=None,
              help="Stop after this many polluters (default: all of them); reaching it is said.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=900, show_default=True,
              help="Seconds per test-command run.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict and its diagnosis as JSON.")
@_db_option
@_debug_option
def isolate(node_id: str, command: tuple[str, ...], root: str, order_file: str | None, run_id: int | None,
            repeat: int, max_polluters: int | None, timeout: float, as_json: bool, db: str | None) -> None:
    """Find out why NODE_ID fails: its own code, chance (flaky), or another test (order-dependent).

    COMMAND (after --) is the pytest command, default this Python's -m pytest; it may name paths and
    options. The order the test failed in comes from --order-file, a recorded run (--run, or the last
    one here in which it failed) or the command's collection order, and is said. Prints the verdict,
    the polluters (or the setter it needs), the state they change, the runs used and a reproducer that
    kb ran once from a plain shell.
    """
    _recover(root)
    from .run.investigate import isolate_test
    from .run.isolation_report import describe_change, diagnose_isolation
    from .store import open_store

    cmd = list(command) or [sys.executable, "-m", "pytest"]
    progress = _Progress()
    with open_store(db) as store:
        try:
            done = isolate_test(node_id, root, cmd, store, order_file=order_file, run_id=run_id, repeat=repeat,
                                timeout=timeout, progress=progress, max_polluters=max_polluters)
        finally:
            progress.done()
        found = diagnose_isolation(done, store, root)
    verdict = found.verdict
    if as_json:
        import json

        click.echo(json.dumps(found.as_dict(), indent=2))
        return
    click.echo(f"{verdict.test}: {verdict.kind}")
    click.echo(f"  order: {done.order.source} ({done.before} test(s) before it)")
    for step in [*verdict.steps, *done.notes]:
        click.echo(f"  - {safe_text(step)}")
    for change in verdict.state[:5]:
        click.echo(f"  state: {safe_text(describe_change(change))}")
    runs = ", ".join(f"{k} {v}" for k, v in verdict.by_step.items() if k != "reproducer check")
    check = " and 1 more to check the reproducer" if "reproducer check" in verdict.by_step else ""
    click.echo(f"  {verdict.probes} test run(s) used ({runs}){check}")
    if done.reproduce:
        click.echo(f"  reproduce: {safe_text(done.reproduce)}")
        click.echo(f"    ({done.reproduced})")
    for cause in found.root_causes[:1]:
        click.echo(f"  cause: {cause['title']} (confidence {cause['confidence']:.2f})")
        for remedy in cause["remedies"][:2]:
            click.echo(f"  fix: [{remedy['kind']}, {remedy['risk']} risk] {safe_text(remedy['description'])}")


@cli.command()
@click.argument("fix_id", required=False)
@click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", show_default=True)
@click.option("--force", is_flag=True, help="Restore even files that changed since the fix.")
@_db_option
@_debug_option
def undo(fix_id: str | None, root: str, force: bool, db: str | None) -> None:
    """Restore every byte a fix changed (the last applied fix when no FIX_ID is given)."""
    from .fix import undo_fix
    from .store import open_store

    with open_store(db) as store:
        fix_id, restored = undo_fix(root, store, fix_id, force=force)
    click.echo(f"undone {fix_id}: restored {', '.join(restored) or 'nothing (files already as before)'}")


@cli.command()
@click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", show_default=True)
@_debug_option
def history(root: str) -> None:
    """List the fixes kb made in this project and what became of them."""
    from .journal import Journal

    _recover(root)
    entries = Journal(root).entries()
    if not entries:
        click.echo("no fixes recorded")
    for entry in entries:
        click.echo(f"{entry.id}  {entry.state:11}  {entry.title}  [{', '.join(f.path for f in entry.files)}]")
        if entry.history and entry.history[-1][2]:
            click.echo(f"    {entry.history[-1][2]}")


@cli.group()
def log() -> None:
    """Read kb run files (written by kb.log or pytest --kb)."""


@log.command("show")
@click.argument("runfile", type=click.Path(dir_okay=False))
@click.option("--slowest", type=click.IntRange(1, 10_000), help="Only the N slowest contexts, slowest first.")
@_debug_option
def log_show(runfile: str, slowest: int | None) -> None:
    """Print RUNFILE as a timeline: contexts as an indented tree with durations and outcomes."""
    from .log import read_run_file, timeline

    for line in timeline(read_run_file(runfile), slowest=slowest):
        click.echo(line)


@cli.group()
def db() -> None:
    """Inspect the knowledge base."""


@db.command("check")
@_db_option
@_debug_option
def db_check(db: str | None) -> None:
    """Verify the knowledge base: integrity, schema version, every stored document."""
    from .store import open_store

    with open_store(db, strict=False) as store:
        problems = store.check()
        try:
            counts = store.counts()
        except store.damage:
            counts = {}
        version = store.user_version
    click.echo(f"{store.location}: schema {version}, " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if problems:
        for problem in problems:
            click.echo(f"problem: {problem}", err=True)
        raise KbError(f"{store.location}: {len(problems)} problem(s) found")
    click.echo("ok")


@db.command("copy")
@click.argument("source")
@click.argument("target")
@_debug_option
def db_copy(source: str, target: str) -> None:
    """Copy the knowledge base SOURCE into TARGET (each a SQLite file or a postgresql:// URL): its history
    (runs, failures, diagnoses, fix outcomes, verdicts) and its packs that are not built in. Rows TARGET
    already has are left alone, so copying again changes nothing and several projects can be merged into
    one shared database."""
    from .store import copy_store, open_store

    with open_store(source, existing=True) as src, open_store(target) as dst:
        copied = copy_store(src, dst)
        where = (src.location, dst.location)
    added = ", ".join(f"{n} {table}" for table, n in copied.items() if n) or "nothing new"
    click.echo(f"copied {where[0]} into {where[1]}: {added}")


def _show_mining(step: str) -> None:
    click.echo(f"kb: mining {step}", err=True)


def _show_learned(result: LearnResult) -> None:
    """What learning did, on stderr: the rows learned, the problems, or why nothing could be mined."""
    if result.error is not None:
        click.echo(f"kb: learn: {result.error}; the diagnosis is unchanged", err=True)
        return
    for line in result.learned:
        click.echo(f"kb: learned {line}", err=True)
    for line in result.problems:
        click.echo(f"kb: learn: {line}", err=True)


@cli.group()
def knowledge() -> None:
    """Fill the knowledge base from releases: mine breaking changes, learn on demand."""


@knowledge.command("mine")
@click.argument("dist")
@click.option("--from", "start", required=True, help="The older release (for python: an interpreter or 3.X).")
@click.option("--to", "end", required=True, help="The newer release; each minor series in between is compared.")
@click.option("--find-links", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A folder of wheels/sdists to take releases from before the index (repeatable).")
@click.option("--cache", type=click.Path(file_okay=False), help="Where releases are unpacked (default ~/.cache/kb).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the rows as a pack file instead of storing them in the KB.")
@_db_option
@_debug_option
def knowledge_mine(dist: str, start: str, end: str, find_links: tuple[str, ...], cache: str | None,
                   output: str | None, db: str | None) -> None:
    """Mine DIST's breaking changes between two releases with griffe and store them as learned rows.

    `kb knowledge mine python --from 3.11 --to 3.12` compares the standard libraries of two interpreters.
    """
    from .knowledge.learn import learned_pack, mine, mine_stdlib, store_rows

    if dist.lower() == "python":
        rows = mine_stdlib(_interpreter(start), _interpreter(end), prefix="learned")
        pairs = f"Python {start} → {end}"
    else:
        result = mine(dist, start, end, cache=Path(cache) if cache else None,
                      find_links=tuple(Path(p) for p in find_links), prefix="learned",
                      progress=lambda step: click.echo(f"mining {step}", err=True))
        for line in result.skipped:
            click.echo(f"skipped {line}", err=True)
        rows = result.rows
        pairs = ", ".join(f"{a} → {b}" for a, b in result.pairs) or "no comparable releases"
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no breaking changes"
    if output:
        from .rulepack import dump_pack
        from .safeio import write_text_atomic

        write_text_atomic(output, dump_pack(learned_pack(dist, rows)))
        click.echo(f"{dist} {pairs}: {len(rows)} row(s) ({summary}) written to {output}")
        return
    from .store import open_store

    with open_store(db) as store:
        total = store_rows(store, dist, rows, provenance=f"mined by kb knowledge mine: {dist} {pairs}")
    click.echo(f"{dist} {pairs}: {len(rows)} row(s) ({summary}); stored as learned ({total} in the pack)")


def _interpreter(text: str) -> str:
    """``--from``/``--to`` of ``kb knowledge mine python``: an interpreter (a usage error when there is none)."""
    from .testenv import find_python

    found = find_python(text)
    if found is None:
        raise click.UsageError(f"no python{text} found on PATH or in pyenv")
    return found


@knowledge.command("learn")
@click.option("--last", is_flag=True, required=True, help="Learn from the last recorded run's diagnosis.")
@click.option("--root", type=click.Path(file_okay=False, exists=True),
              help="The project (the release it declares or locks is where mining starts).")
@click.option("--find-links", multiple=True, type=click.Path(file_okay=False, exists=True),
              help="A folder of wheels/sdists to take releases from before the index (repeatable).")
@_format_option
@_db_option
@_debug_option
def knowledge_learn(last: bool, root: str | None, find_links: tuple[str, ...], fmt: str, db: str | None) -> None:
    """Mine the distributions behind the last diagnosis's generic causes, store the rows as learned and
    diagnose the same reports again."""
    from .diagnose import diagnose as run_diagnose
    from .knowledge.learn import learn_from, rediagnosable
    from .store import open_store

    with open_store(db) as store:
        report = store.last_report()
    result = learn_from(report, db, root=root, find_links=find_links, progress=_show_mining)
    _show_learned(result)
    if not result.rows:
        return
    sources = rediagnosable(report)
    if not sources:
        click.echo("the last run's reports are not files kb can read again: diagnose them again to see the change")
        return
    _echo_report(run_diagnose(sources, db=db, root=root), fmt)


@cli.group()
def rules() -> None:
    """Work with rule packs."""


@rules.command("test")
@click.argument("packs", nargs=-1)
@_db_option
@_debug_option
def rules_test(packs: tuple[str, ...], db: str | None) -> None:
    """Run every rule's match/no_match examples and the fix templates' golden cases (without PACKS:
    the built-in packs and the user packs beside the KB)."""
    from .ruletest import format_results, test_packs

    extra: list[str] = []
    if not packs:
        from .authoring import user_pack_files

        extra = user_pack_files(db)
    results = test_packs(list(packs), user=extra)
    click.echo(format_results(results), nl=False)
    failed = sum(1 for r in results if not r.ok)
    if failed:
        raise KbError(f"{failed} rule(s) failed their examples")


@rules.command("new")
@click.option("--from-failure", "failure", type=int, help="A recorded failure's id (kb suggest lists them): its "
              "real text becomes the match example.")
@click.option("--id", "rule_id", help="The new rule's id.")
@click.option("--pack", "pack_name", default="my-rules", show_default=True, help="The pack's name.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the pack here (default: stdout).")
@_db_option
@_debug_option
def rules_new(failure: int | None, rule_id: str | None, pack_name: str, output: str | None, db: str | None) -> None:
    """Scaffold a rule pack with one rule (id, title, explanation, source, prior, pattern, examples, remedy)."""
    from .authoring import scaffold
    from .store import open_store

    store = open_store(db) if failure is not None else None
    try:
        text = scaffold(store, failure=failure, rule_id=rule_id, pack_name=pack_name)
    finally:
        if store is not None:
            store.close()
    if output:
        from .safeio import write_text_atomic

        if Path(output).exists():
            raise KbError(f"{output}: already exists (kb rules new never overwrites)")
        write_text_atomic(output, text)
        click.echo(f"wrote {output}: fill in the TODOs, then kb rules lint {output} && kb rules test {output}")
    else:
        click.echo(text, nl=False)


@rules.command("lint")
@click.argument("packs", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@_db_option
@_debug_option
def rules_lint(packs: tuple[str, ...], strict: bool, db: str | None) -> None:
    """Check PACKS (default: the user packs, else the built-in ones): schema, regex safety, duplicate
    ids (errors); placeholders, unused captures, thin examples, shadowed rules (warnings)."""
    from .authoring import lint_packs
    from .store import open_store

    with open_store(db) as store:
        found = lint_packs(store, packs)
    for warning in found.warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"{len(found.packs)} pack(s), {found.rules} rule(s): valid, {len(found.warnings)} warning(s)"
               + (f" (no user packs in {found.user_dir}; linted the built-in ones)" if found.builtin_only else ""))
    if strict and found.warnings:
        raise KbError(f"{len(found.warnings)} warning(s) with --strict")


@rules.command("impact")
@click.argument("pack_path", type=click.Path(dir_okay=False))
@click.option("--show", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="List at most this many failures per section.")
@_db_option
@_debug_option
def rules_impact(pack_path: str, show: int, db: str | None) -> None:
    """Replay the recorded failures with and without PACK_PATH: what it newly explains, what it no
    longer explains, which diagnoses change; warns when a rule looks over-broad."""
    from .authoring import impact
    from .rulepack import read_pack
    from .store import open_store

    pack = read_pack(pack_path)
    with open_store(db) as store:
        found = impact(store, pack)
    click.echo(f"replayed {found.failures} recorded failure(s) with {pack_path}")
    for title, items, line in (
            ("newly explained", found.newly, lambda e: f"{e['test']}  {e['message']}  → {e['cause']}"),
            ("no longer explained", found.lost, lambda e: f"{e['test']}  {e['message']}  (was: {e['cause']})"),
            ("explained differently", found.changed, lambda e: f"{e['test']}  {e['before']}  → {e['after']}")):
        click.echo(f"{title}: {len(items)}")
        for entry in items[:show]:
            click.echo(f"  #{entry['failure']} (run {entry['run']})  {line(entry)}")
        if len(items) > show:
            click.echo(f"  … and {len(items) - show} more")
    for warning in found.warnings:
        click.echo(f"warning: {warning}")


@rules.command("stats")
@_db_option
@_debug_option
def rules_stats(db: str | None) -> None:
    """Per rule: diagnoses made, what became of its fixes, and how its confidence moved."""
    from .authoring import rule_stats
    from .store import open_store

    with open_store(db) as store:
        rows = rule_stats(store)
    if not rows:
        click.echo("no diagnoses or fixes recorded yet")
        return
    click.echo(f"{'rule':34} {'hits':>5} {'verified':>8} {'plausible':>9} {'rolled back':>11} {'undone':>6}  confidence")
    for row in rows:
        o = row["outcomes"]
        moved = "" if row["first"] is None else f"{row['first']:.2f} → {row['last']:.2f}"
        click.echo(f"{row['rule'][:34]:34} {row['hits']:>5} {o['verified']:>8} {o['plausible']:>9} "
                   f"{o['rolled back'] + o['failed']:>11} {o['undone']:>6}  {moved}")


@rules.command("list")
@_db_option
@_debug_option
def rules_list(db: str | None) -> None:
    """Every loaded rule: pack, id, title."""
    from .store import open_store

    with open_store(db) as store:
        rows = store.rule_list()
    for pack, rule_id, title in rows:
        click.echo(f"{pack:20} {rule_id:40} {title}")


@rules.command("show")
@click.argument("rule_id")
@_db_option
@_debug_option
def rules_show(rule_id: str, db: str | None) -> None:
    """A loaded rule as YAML (as it would appear in a pack)."""
    from .rulepack import dump_pack
    from .store import open_store

    with open_store(db) as store:
        found = store.rule_doc(rule_id)
    if found is None:
        raise KbError(f"no rule {rule_id!r} (kb rules list shows them)")
    pack, doc = found
    click.echo(f"# pack: {pack}")
    click.echo(dump_pack(doc), nl=False)


@rules.command("import")
@click.argument("pack_path", type=click.Path(dir_okay=False))
@_db_option
@_debug_option
def rules_import(pack_path: str, db: str | None) -> None:
    """Validate a pack and add it to the user packs (rules/ beside the KB; they win over built-ins)."""
    from .authoring import import_pack
    from .store import open_store

    with open_store(db) as store:
        target, _created = import_pack(pack_path, store)
    click.echo(f"imported {pack_path} as {target}")


@rules.command("export")
@click.argument("pack_name")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here (default: stdout).")
@_db_option
@_debug_option
def rules_export(pack_name: str, output: str | None, db: str | None) -> None:
    """Write a loaded pack (built-in or user) as YAML."""
    from .authoring import find_pack
    from .rulepack import dump_pack
    from .store import open_store

    with open_store(db) as store:
        pack = find_pack(store, pack_name)

    text = dump_pack(pack.doc)
    if output:
        from .safeio import write_text_atomic

        write_text_atomic(output, text)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@_db_option
@_debug_option
def suggest(limit: int, db: str | None) -> None:
    """Cluster the recorded failures no rule explains by message template, and draft a rule per
    cluster (kb rules new --from-failure ID writes one)."""
    from .authoring import clusters, drafts
    from .rulepack import dump_pack
    from .store import open_store

    with open_store(db) as store:
        found = clusters(store, limit=limit)
    if not found:
        click.echo("no undiagnosed failures recorded")
        return
    for n, (cluster, draft) in enumerate(zip(found, drafts(found), strict=True), 1):
        click.echo(f"{n}. {len(cluster.failures)} failure(s) in {len(cluster.tests)} test(s): "
                   f"{cluster.exception}: {cluster.template}")
        click.echo(f"   e.g. failure #{cluster.failures[0]} ({cluster.tests[0]}); "
                   f"kb rules new --from-failure {cluster.failures[0]} -o FILE")
        for line in dump_pack({"rules": [draft]}).splitlines()[1:]:
            click.echo(f"   {line}")


@cli.group()
def export() -> None:
    """Export kb's history for other tools."""


@export.command("datasette")
@click.argument("out", type=click.Path(dir_okay=False))
@_db_option
@_debug_option
def export_datasette_cmd(out: str, db: str | None) -> None:
    """Write OUT (a clean SQLite database) and OUT's .metadata.json for datasette."""
    from .export import export_datasette
    from .store import open_store

    with open_store(db) as store:
        database, meta = export_datasette(store, out)
    click.echo(f"wrote {database} and {meta}; browse with: kb serve {database}")


@cli.command()
@click.argument("database", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--port", type=click.IntRange(1, 65535), default=8001, show_default=True)
@click.option("--open", "open_browser", is_flag=True, help="Open a browser on it.")
@_db_option
@_debug_option
def serve(database: str | None, port: int, open_browser: bool, db: str | None) -> None:
    """Browse kb's history in datasette on 127.0.0.1 (DATABASE: an export; default: export the KB now)."""
    import tempfile

    from .export import export_datasette, metadata_of, require_datasette, serve as run_datasette
    from .store import open_store

    require_datasette()
    with tempfile.TemporaryDirectory(prefix="kb-serve-") as tmp:
        if database is None:
            with open_store(db) as store:
                path, meta = export_datasette(store, Path(tmp) / "kb.db")
        else:
            path, meta = Path(database), metadata_of(database)
        click.echo(f"serving {path} on http://127.0.0.1:{port}/ (Ctrl-C stops it)", err=True)
        sys.exit(run_datasette(path, meta, port=port, open_browser=open_browser))


def _database_errors() -> tuple[type[BaseException], ...]:
    """The database errors of the backends loaded in this process (evaluated only when an exception
    reaches :func:`main`, so no store is imported for a command that needs none)."""
    from .store import DAMAGE

    return tuple(DAMAGE)


class _BatchProgress(_Progress):
    """kb batch's progress bar on a terminal: files done of all, bad files, rate; silent otherwise."""

    BAR = 24

    def files(self, done: int, total: int, bad: int) -> None:
        import time

        if not self.live:
            return
        width = self.width()
        elapsed = time.monotonic() - self.started
        filled = self.BAR * done // max(total, 1)
        rate = f" · {done / elapsed:.1f} files/s" if elapsed > 0 else ""
        line = fit(f"kb batch [{'#' * filled}{'.' * (self.BAR - filled)}] {done}/{total} files"
                   f"{f' · {bad} bad' if bad else ''}{rate} · {elapsed:.0f} s", width)
        click.echo(f"\r{line:{width}}", nl=False, err=True)
        self.shown = True


@cli.group()
def batch() -> None:
    """Diagnose many archived reports at once, in parallel on a Dask cluster."""


@batch.command("diagnose")
@click.argument("globs", nargs=-1, required=True)
@click.option("--scheduler", default="local", show_default=True,
              help="local: start a cluster of worker processes here; else a running Dask scheduler's address, "
                   "e.g. tcp://host:8786 (its workers need kb installed and the files at the same paths).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes of the local cluster (default: one per core); with an address, wait until "
                   "this many workers have joined.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="OUT",
              help="One row per file: JSON lines, or Parquet when it ends in .parquet (needs pyarrow). The table "
                   "of causes goes beside it: OUT's name with .causes before its suffix.")
@click.option("--record", is_flag=True, help="Record each diagnosed file's run into the knowledge base.")
@click.option("--repo-base", type=click.Path(file_okay=False),
              help="A file's repository is named by the folders below this one (default: the common folder the "
                   "globs start in).")
@click.option("--repo-depth", type=click.IntRange(1, 100), default=1, show_default=True,
              help="How many folders below the base name a repository (2: owner/name).")
@click.option("--partition-size", type=click.IntRange(1, 100_000),
              help="Files per task (default: about 4 tasks per worker, at most 32 files each).")
@_db_option
@_debug_option
def batch_diagnose(globs: tuple[str, ...], scheduler: str, workers: int | None, output: str, record: bool,
                   repo_base: str | None, repo_depth: int, partition_size: int | None, db: str | None) -> None:
    """Diagnose every report file GLOBS match (quote them: ** crosses folders), in parallel: one row per file
    (its causes, or why it could not be read) and a table of causes across all files."""
    from .batch import diagnose_batch

    progress = _BatchProgress()
    try:
        result = diagnose_batch(list(globs), scheduler=scheduler, workers=workers, output=output, record=record,
                                db=db, repo_base=repo_base, repo_depth=repo_depth, partition_size=partition_size,
                                progress=progress.files)
    finally:
        progress.done()
    bad = f", {result.errors} could not be read" if result.errors else ""
    click.echo(f"kb batch: {result.files} file(s) on {result.workers} worker(s) in {result.seconds:.1f} s "
               f"({result.files_per_second:.1f} files/s): {result.ok} diagnosed{bad}")
    click.echo(f"wrote {one_line(str(result.output))} (one row per file) and "
               f"{one_line(str(result.aggregate_output))} ({len(result.causes)} cause(s))")
    if result.worker_peak_rss:
        click.echo(f"peak memory of a worker process: {max(result.worker_peak_rss.values()) / 2**20:.0f} MiB")
    if result.retried:
        click.echo(f"{result.retried} partition(s) lost with their worker were diagnosed again file by file")
    if record:
        click.echo(f"recorded {result.recorded} run(s) in the knowledge base")
    if result.causes:
        click.echo(f"{'runs':>6} {'repos':>5} {'tests':>7}  cause")
        for cause in result.causes[:10]:
            click.echo(f"{cause['runs']:>6} {cause['repositories']:>5} {cause['tests']:>7}  "
                       f"{one_line(cause['title'], 200)} [{one_line(cause['key'], 120)}]")
        if len(result.causes) > 10:
            click.echo(f"  … and {len(result.causes) - 10} more in {one_line(str(result.aggregate_output))}")
    for path, reason in result.bad[:5]:
        click.echo(f"kb: could not read {one_line(reason if reason.startswith(path) else f'{path}: {reason}')}",
                   err=True)
    if result.errors > 5:
        click.echo(f"kb: … and {result.errors - 5} more (rows with status \"error\" in "
                   f"{one_line(str(result.output))})", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: KbError → one line on stderr and exit 1; --debug shows the traceback."""
    try:
        cli.main(args=argv, prog_name="kb", standalone_mode=False)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C inside a command into Abort
            click.echo("kb: interrupted", err=True)
            sys.exit(130)
        click.echo("kb: aborted", err=True)  # end of input at a prompt
        sys.exit(1)
    except click.ClickException as exc:
        # click (8.2+) types message Final, yet it is a plain attribute that format_message() and every
        # subclass's show() read: rewriting it is how a report-borne message reaches the terminal as one line
        exc.message = one_line(exc.message)  # type: ignore[misc]
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KbError as exc:
        if _State.debug:
            traceback.print_exc()
        click.echo(f"kb: error: {one_line(str(exc))}", err=True)
        sys.exit(1)
    except _database_errors() as exc:  # a page that cannot be read, a lost server, after the KB was opened
        from .store import OPENED

        where = f"{OPENED[-1]}: " if OPENED else ""
        click.echo(f"kb: error: {where}the knowledge base is damaged or unreadable: {one_line(str(exc))} "
                   f"(kb db check lists the problems)", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("kb: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug in kb: still one line unless --debug
        if _State.debug:
            traceback.print_exc()
        click.echo(f"kb: internal error: {type(exc).__name__}: {one_line(str(exc))} (run with --debug for the "
                   f"traceback)", err=True)
        sys.exit(1)
