"""TestFailureAnalyzer: collect → match → report, as one library call.

``diagnose(paths)`` reads the reports, turns each failing test into a Failure fact, runs the
engine against the knowledge base and returns the report document (the shape of
``schemas/diagnosis.schema.json``), recording the run in the KB unless ``record=False``.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import __version__
from .engine import Engine, Owner
from .errors import KbError
from .facts import Failure, failures_from_run
from .ingest import read_reports
from .knowledge.snapshot import Snapshot
from .models import Run
from .owners import OwnerResolver
from .store import Store, open_store

if TYPE_CHECKING:
    from .knowledge.learn import LearnResult

__all__ = ["diagnose", "diagnose_run", "analyse_run", "record_args", "build_report", "diagnose_learning"]

#: at most this many locations are listed per root cause
MAX_LOCATIONS = 10
MESSAGE_LIMIT = 500


def _location(failure: Failure) -> dict[str, Any] | None:
    loc = failure.location
    if loc is None:
        return None
    return {"file": loc.file, "line": loc.line, "function": loc.function}


def _short(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: passing tests from the same files that a fix's verification re-runs as well (overfitting check)
NEIGHBOURS = 10


def _neighbour_index(order: list[str], failing: set[str]) -> dict[str, list[tuple[int, str]]]:
    """The first ``NEIGHBOURS`` passing tests of each file, with their place in the run's order: one pass
    over the order for the whole report, not one per root cause."""
    index: dict[str, list[tuple[int, str]]] = {}
    for place, test in enumerate(order):
        if "::" in test and test not in failing:
            found = index.setdefault(test.split("::", 1)[0], [])
            if len(found) < NEIGHBOURS:
                found.append((place, test))
    return index


def _neighbours(tests: list[str], index: dict[str, list[tuple[int, str]]]) -> list[str]:
    """The first ``NEIGHBOURS`` passing tests, in the run's order, from the files of ``tests``."""
    found = sorted(item for file in {t.split("::", 1)[0] for t in tests} for item in index.get(file, ()))
    return [test for _place, test in found[:NEIGHBOURS]]


def _owner_doc(owner: Owner) -> dict[str, Any]:
    return {"module": owner.module, "kind": owner.kind, "distribution": owner.distribution,
            "version": owner.version, "declared": owner.declared, "python": owner.python}


def build_report(run: Run, failures: Sequence[Failure], result: Any, run_id: int | None) -> dict[str, Any]:
    """The report document for a run and its engine result."""
    by_id = {f.id: f for f in failures}
    failing = {f.test for f in failures}
    neighbours = _neighbour_index(run.order, failing) if result.causes else {}
    root_causes = []
    for cause in result.causes:
        mine = [by_id[i] for i in cause.failures]
        where = Counter((f.location.file, f.location.line, f.location.function) for f in mine if f.location)
        root_causes.append({
            "key": cause.key,
            "rule": cause.rule.id,
            "title": cause.title,
            "category": cause.category,
            "explanation": cause.explanation,
            "source": cause.source,
            "api_change": cause.api.id if cause.api else None,
            "layer": cause.layer,
            **({"owner": _owner_doc(cause.owner)} if cause.owner else {}),
            "confidence": cause.confidence,
            "confidence_breakdown": cause.breakdown,
            "tests": [f.test for f in mine],
            "evidence": cause.evidence,
            "locations": [{"file": file, "line": line, "function": func, "count": n}
                          for (file, line, func), n in where.most_common(MAX_LOCATIONS)],
            "remedies": [r.to_dict() for r in cause.remedies],
            "also_considered": cause.also_considered,
            "neighbours": _neighbours([f.test for f in mine], neighbours),
        })
    undiagnosed = [{
        "test": by_id[i].test,
        "phase": by_id[i].phase,
        "exception": by_id[i].exception,
        "message": _short(by_id[i].message),
        "location": _location(by_id[i]),
    } for i in result.undiagnosed]
    summary = run.summary()
    summary["suite_errors"] = sum(1 for r in run.results if r.phase == "suite")
    summary["diagnosed"] = sum(len(c["tests"]) for c in root_causes)
    summary["undiagnosed"] = len(undiagnosed)
    return {
        "kb_version": __version__,
        "run_id": run_id,
        "sources": list(run.sources),
        "format": run.format,
        "summary": summary,
        "claimed": dict(run.claimed),
        "environment": dict(run.environment),
        "warnings": list(run.warnings),
        "root_causes": root_causes,
        "undiagnosed": undiagnosed,
        "stats": dict(result.stats),
    }


def owner_resolver(failures: Sequence[Failure], run: Run, store: Store | Snapshot, *, python: str | None = None,
                   root: str | Path | None = None, local: bool = True) -> OwnerResolver:
    """Owner facts for this run's symptoms, asked of the tests' interpreter (cached beside the KB).
    ``local=False``: the report was made elsewhere (an archive): only what it says counts (kb.owners)."""
    def import_map(names: list[str]) -> dict[str, str]:
        return {d.import_name: d.distribution for d in store.distributions(names)}

    return OwnerResolver(failures, run, python=python, root=Path(root) if root else None, import_map=import_map,
                         cache_dir=store.cache_dir if isinstance(store, Store) else None, local=local)


def analyse_run(run: Run, knowledge: Store | Snapshot, *, engine: Engine | None = None, python: str | None = None,
                root: str | Path | None = None, local: bool = True) -> tuple[dict[str, Any], list[Failure]]:
    """The report document for ``run`` (not recorded, ``run_id`` None) and the failures it was built from."""
    failures = failures_from_run(run)
    engine = engine or Engine.cached(knowledge.rules_digest(), knowledge.rules)
    environment = {k.lower(): v for k, v in run.environment.items()}
    result = engine.run(failures, knowledge, environment,
                        owners=owner_resolver(failures, run, knowledge, python=python, root=root, local=local))
    return build_report(run, failures, result, None), failures


def record_args(run: Run, failures: Sequence[Failure], report: Mapping[str, Any],
                run_meta: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                   list[dict[str, Any]]]:
    """What :meth:`Store.record_run` takes for a diagnosed run: the run, its failures, its root causes."""
    return (
        {"format": run.format, "sources": list(run.sources), **run.summary(),
         "environment": dict(run.environment), "diagnosed": report["summary"]["diagnosed"],
         "undiagnosed": report["summary"]["undiagnosed"], **(run_meta or {})},
        [{"test": f.test, "phase": f.phase, "exception": f.exception, "message": f.message,
          "file": f.location.file if f.location else None, "line": f.location.line if f.location else None,
          "frames": [[fr.file, fr.line, fr.function] for fr in f.frames], "source": f.source}
         for f in failures],
        list(report["root_causes"]),
    )


def diagnose_run(run: Run, store: Store | Snapshot, *, record: bool = True, engine: Engine | None = None,
                 run_meta: Mapping[str, Any] | None = None, python: str | None = None,
                 root: str | Path | None = None, amend: Callable[[dict[str, Any]], None] | None = None,
                 local: bool = True) -> dict[str, Any]:
    """Diagnose an already-read run against ``store`` (or a read-only :class:`Snapshot`, which cannot record);
    ``run_meta`` (the command kb ran, its exit status, problem and duration) is recorded with the run.
    ``python`` is the interpreter the tests ran with and ``root`` the project (both found from the report
    when not given): owner facts; ``local=False``: the report was made on another machine, ask nothing here.
    ``amend`` may add to the report before it is recorded (kb isolate adds the remedies it builds from
    the state a polluter changes)."""
    report, failures = analyse_run(run, store, engine=engine, python=python, root=root, local=local)
    if amend is not None:
        amend(report)
    if record:
        if not isinstance(store, Store):
            raise TypeError("a run is recorded into a Store, not into a read-only snapshot")
        report["run_id"] = store.record_run(*record_args(run, failures, report, run_meta))
    return report


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Reading and diagnosing allocate many small acyclic objects; the cyclic collector's passes
    over them cost ~20% of a large run (measured) and free nothing. Reference counting still frees."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def diagnose(
    paths: Sequence[str | Path],
    *,
    db: str | Path | None = None,
    record: bool = True,
    stdin: BinaryIO | None = None,
    environment: Mapping[str, str] | None = None,
    python: str | None = None,
    root: str | Path | None = None,
) -> dict[str, Any]:
    """Read the reports at ``paths`` ("-" for stdin) and diagnose them against the KB.

    ``environment`` (distribution → version, "python" → version) adds to what the reports say
    about the environment the tests ran in; the reports' own facts win. ``python`` is the
    interpreter the tests ran with and ``root`` the project's root (owner facts, ``kb.owners``).
    """
    with _no_cyclic_gc():
        run = read_reports([str(p) for p in paths], stdin=stdin)
        run.add_environment(environment)
        store = open_store(db)
        try:
            return diagnose_run(run, store, record=record, python=python, root=root)
        finally:
            store.close()


def diagnose_learning(reports: Sequence[str | Path], *, db: str | Path | None = None, record: bool = True,
                      environment: dict[str, str] | None = None, python: str | None = None,
                      root: str | Path | None = None, find_links: Sequence[str | Path] = (),
                      progress: Callable[[str], None] | None = None,
                      learned: Callable[[LearnResult], None] | None = None) -> dict[str, Any]:
    """Diagnose ``reports`` (files: they are read twice, so not ``-``), learn from the diagnosis's generic
    causes (:func:`kb.knowledge.learn.learn_from`; ``learned`` is told what came of it) and diagnose them again when rows
    were learned. ``record`` records the run once, with the last diagnosis."""
    from .knowledge.learn import learn_from

    if any(str(r) == "-" for r in reports):
        raise KbError("diagnosing again after learning reads the reports twice: give files, not -")
    doc = diagnose(reports, db=db, record=False, environment=environment, python=python, root=root)
    result = learn_from(doc, db, root=root, find_links=find_links, progress=progress)
    if learned is not None:
        learned(result)
    if result.rows or record:  # with what was learned, or only to record it
        doc = diagnose(reports, db=db, record=record, environment=environment, python=python, root=root)
    return doc
