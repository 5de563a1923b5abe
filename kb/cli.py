"""The ``kb`` command: parses options, calls the library, formats. No logic lives here.

Exit status: 0 when the command did its job (``kb diagnose`` exits 0 even when the tests it
read had failed — it diagnosed them); 1 when kb could not (a bad report, a bad pack, a KB
problem: one line naming the file and the reason, no traceback unless ``--debug``); 2 for
usage errors (click's convention).
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click

from . import __version__
from .errors import KbError

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
                        help="Knowledge base file (default: .kb/kb.sqlite found upward, like git; env KB_DB).")(func)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kb")
@_debug_option
def cli() -> None:
    """kb: says why tests fail — root causes with confidence and evidence — and how to fix them."""


@cli.command()
@click.argument("reports", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text",
              show_default=True, help="Output format.")
@click.option("--no-record", is_flag=True, help="Do not record this run in the knowledge base.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this file instead of standard output.")
@_db_option
@_debug_option
def diagnose(reports: tuple[str, ...], fmt: str, no_record: bool, output: str | None, db: str | None) -> None:
    """Diagnose test REPORTS: JUnit XML files, pytest terminal output, directories, or - for stdin."""
    from .diagnose import diagnose as run_diagnose
    from .report import render

    doc = run_diagnose(list(reports), db=db, record=not no_record, stdin=sys.stdin.buffer)
    text = render(doc, fmt)
    if output:
        from .safeio import write_text_atomic

        write_text_atomic(output, text)
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("reports", nargs=-1)
@click.option("--last", is_flag=True, help="Use the last recorded run's diagnoses instead of REPORTS.")
@click.option("--root", type=click.Path(file_okay=False, exists=True), default=".", show_default=True,
              help="The project whose files the fixes edit.")
@click.option("--patch", "patch", type=click.Path(dir_okay=False), help="Write the combined patch to this file.")
@_db_option
@_debug_option
def fix(reports: tuple[str, ...], last: bool, root: str, patch: str | None, db: str | None) -> None:
    """Plan fixes for the root causes of REPORTS (dry run): show each remedy's diff, write nothing."""
    from .diagnose import diagnose as run_diagnose
    from .fix import plan_fix
    from .store import open_store

    if bool(reports) == last:
        raise click.UsageError("give REPORTS or --last (not both)")
    if last:
        store = open_store(db)
        try:
            report = store.last_report()
        finally:
            store.close()
    else:
        report = run_diagnose(list(reports), db=db, record=True, stdin=sys.stdin.buffer)
    plan = plan_fix(report, root)
    for n, item in enumerate(plan.plans, 1):
        click.echo(f"{n}. {item.title}  (confidence {item.confidence:.2f})")
        if item.remedy is None:
            click.echo(f"   not planned: {item.skipped}")
            continue
        remedy = item.remedy
        files = sorted({e.path for e in item.edits})
        click.echo(f"   [{remedy['kind']}, {remedy['risk']} risk] {remedy['description']} "
                   f"— {len(item.edits)} line(s) in {len(files)} file(s)")
        click.echo(item.diff, nl=False)
    if patch:
        from .safeio import write_text_atomic

        write_text_atomic(patch, plan.diff())
        click.echo(f"patch written to {patch} (apply with: git apply {patch})")
    click.echo("dry run: nothing was changed")


@cli.group()
def db() -> None:
    """Inspect the knowledge base."""


@db.command("check")
@_db_option
@_debug_option
def db_check(db: str | None) -> None:
    """Verify the knowledge base: integrity, schema version, every stored document."""
    from .store import open_store

    store = open_store(db)
    try:
        problems = store.check()
        counts = store.counts()
        version = store.user_version
    finally:
        store.close()
    click.echo(f"{store.path}: schema {version}, " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if problems:
        for problem in problems:
            click.echo(f"problem: {problem}", err=True)
        raise KbError(f"{store.path}: {len(problems)} problem(s) found")
    click.echo("ok")


@cli.group()
def rules() -> None:
    """Work with rule packs."""


@rules.command("test")
@click.argument("packs", nargs=-1)
@_debug_option
def rules_test(packs: tuple[str, ...]) -> None:
    """Run every rule's match/no_match examples (built-in packs when no PACKS are given)."""
    from .ruletest import format_results, test_packs

    results = test_packs(list(packs))
    click.echo(format_results(results), nl=False)
    failed = sum(1 for r in results if not r.ok)
    if failed:
        raise KbError(f"{failed} rule(s) failed their examples")


def main(argv: list[str] | None = None) -> None:
    """Entry point: KbError → one line on stderr and exit 1; --debug shows the traceback."""
    try:
        cli.main(args=argv, prog_name="kb", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("kb: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KbError as exc:
        if _State.debug:
            traceback.print_exc()
        click.echo(f"kb: error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("kb: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug in kb: still one line unless --debug
        if _State.debug:
            traceback.print_exc()
        click.echo(f"kb: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                   err=True)
        sys.exit(1)
