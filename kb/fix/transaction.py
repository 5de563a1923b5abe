"""One fix as a transaction: journal and back up → write atomically → install → check the packaging
files still build metadata → verify → keep, or roll back files and installed versions → record.

Every outcome is recorded in the KB (``fix_outcomes``), which moves the rule's learned confidence.
``undo_fix`` puts back every byte and every installed version a fix changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FixError
from .types import FixOptions, Outcome, RemedyPlan

__all__ = ["apply_fix", "undo_fix", "restore_environment", "recover", "PACKAGING_FILES"]

#: files whose edit must leave the project able to build its metadata
PACKAGING_FILES = ("setup.py", "setup.cfg", "pyproject.toml")


def apply_fix(item: RemedyPlan, root: str | Path, store: Any, options: FixOptions | None = None) -> Outcome:
    """Apply one planned remedy (see the module docstring); the verdict is ``verified`` (proven),
    ``plausible`` (only with ``options.verify`` off) or ``rolled back``. The project's journal lock is held
    from the journal entry to the verdict, so a kill anywhere in between is recovered at the next start."""
    from ..journal import Journal

    if item.remedy is None or not (item.changes or item.install):
        raise FixError(f"nothing planned for {item.title}")
    journal = Journal(root)
    with journal.lock():
        return _apply(item, root, store, options or FixOptions(), journal)


def _apply(item: RemedyPlan, root: str | Path, store: Any, options: FixOptions, journal: Any) -> Outcome:
    from ..testenv import test_python
    from .verify import verify

    for rel, (old, _new) in item.changes.items():
        if journal._target(rel).read_bytes() != old:
            raise FixError(f"{rel} changed since the fix was planned; plan again")
    entry = journal.begin(cause=item.cause, rule=item.rule, title=item.title, remedy=item.remedy,
                          diff=item.diff, changes=item.changes)
    try:
        journal.write(entry, item.changes)
    except BaseException:
        journal.restore(entry, "rolled back", "the write failed")
        raise
    python = test_python(options.test_command)

    def roll_back(note: str, tests_after: dict[str, int] | None = None) -> Outcome:
        restore_environment(entry)
        journal.restore(entry, "rolled back", note)
        store.record_outcome(item.cause, item.rule, "rolled back", {
            "fix": entry.id, "title": item.title, "remedy": item.remedy, "diff": item.diff, "note": note,
            "tests_before": len(item.tests), "tests_after": tests_after})
        return Outcome(entry.id, "rolled back", note, len(item.tests), tests_after)

    if item.install:
        problem = _install(item, entry, journal, python)
        if problem:
            return roll_back(problem)
    packaging = sorted(rel for rel in item.changes if Path(rel).name in PACKAGING_FILES and "/" not in rel)
    if packaging:
        from .metadata import check_metadata

        problem = check_metadata(Path(root), python, packaging)
        if problem:
            return roll_back(f"the edited {', '.join(packaging)} no longer build(s) metadata: {problem}")
    if not options.verify:
        note = "not verified (--no-verify)"
        journal.set_state(entry, "plausible", note)
        store.record_outcome(item.cause, item.rule, "plausible", {
            "fix": entry.id, "title": item.title, "remedy": item.remedy, "diff": item.diff, "note": note,
            "tests_before": len(item.tests), "tests_after": None})
        return Outcome(entry.id, "plausible", note, len(item.tests))
    checked = verify(item, root, store, options)
    counts = checked.run.summary() if checked.run is not None else None
    entry.tests = {"before": item.tests, "after": counts, "scope": checked.scope,
                   "newly_failing": checked.newly_failing[:200]}
    if not checked.held:
        return roll_back(checked.note, counts)
    journal.set_state(entry, "verified", checked.note)
    store.record_outcome(item.cause, item.rule, "verified", {
        "fix": entry.id, "title": item.title, "remedy": item.remedy, "diff": item.diff, "note": checked.note,
        "tests_before": len(item.tests), "tests_after": counts, "scope": checked.scope,
        "newly_failing": len(checked.newly_failing)})
    failing = counts is not None and (counts.get("failures", 0) or counts.get("errors", 0))
    return Outcome(entry.id, "verified", checked.note, len(item.tests), counts,
                   checked.after if failing else None, checked.newly_failing)


def _install(item: RemedyPlan, entry: Any, journal: Any, python: str) -> str | None:
    """Install the planned requirements into the tests' environment, remembering what was there."""
    from ..pep440 import requirement_name
    from ..testenv import conflicts, install, installed_version

    names = [n for n in (requirement_name(r) for r in item.install) if n]
    entry.env = {"python": python, "requirements": list(item.install),
                 "previous": {name: installed_version(python, name) for name in names}}
    journal.save(entry)
    broken_before = conflicts(python)
    problem = install(python, list(item.install))
    if problem:
        return f"pip could not install {' '.join(item.install)}: {problem}"
    broken = sorted(conflicts(python) - broken_before)
    if broken:  # e.g. Werkzeug<3 under Flask 3: pip installs it and only warns
        return f"installing {' '.join(item.install)} breaks what other installed distributions require: {broken[0]}"
    return None


def restore_environment(entry: Any) -> None:
    """Put back the distributions a fix installed as they were before it: the earlier version, or none."""
    from ..testenv import install, uninstall

    env = getattr(entry, "env", None) or {}
    previous = env.get("previous")
    if isinstance(previous, str):  # journals written before dependents were pinned along
        previous = {env.get("dist", ""): previous}
    wanted = [f"{dist}=={version}" for dist, version in (previous or {}).items() if dist and version]
    absent = [dist for dist, version in (previous or {}).items() if dist and not version]
    if wanted:
        install(env["python"], wanted)
    if absent:  # installed by the fix: not there before it
        uninstall(env["python"], absent)


def undo_fix(root: str | Path, store: Any, fix_id: str | None = None, *, force: bool = False) -> tuple[str, list[str]]:
    """Undo a fix (the last one still in place when ``fix_id`` is None): files, installed versions,
    and an "undone" outcome in the KB. Returns the fix id and the files restored."""
    from ..journal import Journal

    journal = Journal(root)
    recover(root)
    with journal.lock():
        return _undo(journal, store, fix_id, force)


def _undo(journal: Any, store: Any, fix_id: str | None, force: bool) -> tuple[str, list[str]]:
    if fix_id is None:
        live = [e for e in journal.entries() if e.state in ("applied", "verified", "plausible")]
        if not live:
            raise FixError(f"{journal.folder}: no applied fix to undo")
        fix_id = live[-1].id
    entry = journal.load(fix_id)
    restored = journal.undo(fix_id, force=force)
    restore_environment(entry)
    store.record_outcome(entry.cause, entry.rule, "undone", {"fix": fix_id, "title": entry.title})
    return fix_id, restored


def recover(root: str | Path) -> list[Any]:
    """Finish what a killed kb left in this project (:meth:`kb.journal.Journal.recover`), and put back the
    installed versions of a pin that was interrupted before its verdict. Returns the entries recovered."""
    from ..journal import Journal

    recovered = Journal(root).recover()
    for entry in recovered:
        if getattr(entry, "env", None):
            restore_environment(entry)
    return recovered
