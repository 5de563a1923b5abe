"""Mining releases into rows, and learning on demand (``kb knowledge mine`` / ``learn``).

``mine(dist, from, to)`` compares each consecutive *minor series* between two versions — the last
release of one series against the first of the next, so ``removed_in`` is the release that did it —
and returns API-change rows. ``mine_stdlib(old_python, new_python)`` does the same for the standard
library of two interpreters. ``learn(report, store)`` takes the generic causes of a diagnosis (a
name missing from an installed distribution that no row explains), mines that distribution between
the release the project declares or locks (else the release before the installed one) and the
installed one, and stores the rows as the *learned* layer with their provenance; the caller
re-diagnoses — :func:`kb.diagnose.diagnose_learning` does both, as ``kb diagnose --learn``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import KbError
from ..pep440 import normalise, parse_version, sort_versions

__all__ = ["MineResult", "mine", "mine_pair", "mine_stdlib", "series_pairs", "learn", "store_rows", "LearnResult",
           "learned_pack", "learn_from", "rediagnosable"]


@dataclass
class MineResult:
    dist: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # pairs or releases that could not be read, with why


def series_pairs(versions: Sequence[str], start: str, end: str) -> list[tuple[str, str]]:
    """Consecutive minor-series pairs from ``start`` to ``end``: (last of series, first of the next).

    ``1.0, 1.1, 1.1.3, 2.0, 2.0.1`` from 1.0 to 2.0.1 → (1.0, 1.1), (1.1.3, 2.0). With two versions of the
    same series, the pair itself.
    """
    lo, hi = parse_version(start), parse_version(end)
    if lo is None or hi is None:
        raise KbError(f"not a version: {start if lo is None else end!r}")
    if lo >= hi:
        raise KbError(f"--from {start} is not older than --to {end}")
    chosen = [v for v in sort_versions(list(versions)) if lo <= parse_version(v) <= hi]  # type: ignore[operator]
    for edge in (start, end):
        if edge not in chosen:
            chosen = sort_versions([*chosen, edge], final_only=False)
    series: dict[tuple[int, ...], list[str]] = {}
    for v in chosen:
        release = parse_version(v).release  # type: ignore[union-attr]
        series.setdefault(tuple(release[:2]), []).append(v)
    keys = list(series)
    if len(keys) == 1:
        return [(chosen[0], chosen[-1])] if chosen[0] != chosen[-1] else []
    return [(series[a][-1], series[b][0]) for a, b in zip(keys, keys[1:], strict=False)]


def mine_pair(dist: str, old_version: str, new_version: str, *, cache: Path | None = None,
              find_links: tuple[Path, ...] = (), prefix: str = "mined") -> list[dict[str, Any]]:
    """Rows for the breaking changes from ``old_version`` to ``new_version`` of ``dist``."""
    from . import mine as griffe_mine
    from .releases import fetch

    old = fetch(dist, old_version, cache=cache, find_links=find_links)
    new = fetch(dist, new_version, cache=cache, find_links=find_links)
    changes = griffe_mine.compare_releases(griffe_mine.importable_tops(old.root),
                                           griffe_mine.importable_tops(new.root))
    return griffe_mine.rows_for(changes, package=dist, old_version=old_version, new_version=new_version,
                                old_url=old.url, new_url=new.url, prefix=prefix,
                                files=(old.filename, new.filename) if old.local or new.local else None)


def mine(dist: str, start: str, end: str, *, cache: Path | None = None, find_links: tuple[Path, ...] = (),
         prefix: str = "mined", progress: Callable[[str], None] | None = None) -> MineResult:
    """Rows for every consecutive minor-series pair of ``dist`` from ``start`` to ``end``."""
    from .releases import versions

    result = MineResult(dist)
    known = versions(dist, find_links=find_links)
    for old, new in series_pairs(known, start, end):
        if progress:
            progress(f"{dist} {old} → {new}")
        try:
            rows = mine_pair(dist, old, new, cache=cache, find_links=find_links, prefix=prefix)
        except KbError as exc:
            if type(exc).__name__ == "OfflineError":
                raise
            result.skipped.append(f"{old} → {new}: {exc}")
            continue
        result.pairs.append((old, new))
        result.rows.extend(rows)
    return result


_STDLIB_PROBE = ("import json, sys, sysconfig, platform, os\n"
                 "d = sysconfig.get_paths()['stdlib']\n"
                 "names = getattr(sys, 'stdlib_module_names', None) or sorted({n[:-3] if n.endswith('.py') else n "
                 "for n in os.listdir(d) if n.endswith('.py') or os.path.isfile(os.path.join(d, n, '__init__.py'))})\n"
                 "print(json.dumps({'version': '%d.%d' % sys.version_info[:2], 'dir': d, 'names': sorted(names)}))\n")
#: standard-library packages that are tools or test data, not APIs code imports
_STDLIB_SKIP = frozenset({"test", "idlelib", "turtledemo", "ensurepip", "pydoc_data", "lib2to3", "tkinter",
                          "turtle", "antigravity", "this", "__phello__", "venv", "pydoc", "xxsubtype"})


def _python_facts(python: str) -> dict[str, Any]:
    try:
        done = subprocess.run([python, "-c", _STDLIB_PROBE], capture_output=True, text=True, timeout=60)
        return json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise KbError(f"{python}: cannot ask it for its standard library ({exc})") from None


def _sources(facts: dict[str, Any]) -> dict[str, Path]:
    """The public standard-library modules of one interpreter that have a Python source → its folder."""
    folder = Path(facts["dir"])
    return {top: folder for top in facts["names"] if not top.startswith("_") and top not in _STDLIB_SKIP
            and ((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file())}


def mine_stdlib(old_python: str, new_python: str, *, prefix: str = "mined") -> list[dict[str, Any]]:
    """Rows for what the standard library lost between two interpreters (modules written in Python;
    C modules have no source griffe can read statically)."""
    from . import mine as griffe_mine

    old, new = _python_facts(old_python), _python_facts(new_python)
    changes = griffe_mine.compare_releases(_sources(old), _sources(new), private=False,
                                           present=frozenset(new["names"]))
    url = f"https://docs.python.org/3/whatsnew/{new['version']}.html"
    return griffe_mine.rows_for(changes, package="python", old_version=old["version"], new_version=new["version"],
                                old_url=f"https://docs.python.org/3/whatsnew/{old['version']}.html", new_url=url,
                                stdlib=True, prefix=prefix)


def learned_pack(dist: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mined rows of ``dist`` as a pack document of the learned layer (``kb knowledge mine -o``)."""
    return {"pack": f"learned-{dist.lower()}", "version": "1", "layer": "learned", "api_changes": rows}


def store_rows(store: Any, dist: str, rows: list[dict[str, Any]], *, layer: str = "learned",
               provenance: str = "") -> int:
    """Add ``rows`` to the KB as the ``learned-DIST`` pack (merged with what it held), validated by the
    pack schema like any pack. Returns how many rows the pack holds now."""
    from ..rulepack import dump_pack, parse_pack

    name = f"{layer}-{normalise(dist) if dist != 'python' else 'python'}"
    held = {row["id"]: row for row in store.pack_rows(name)}
    held.update((row["id"], row) for row in rows)
    doc = {"pack": name, "version": datetime.now(timezone.utc).strftime("%Y.%m.%d"), "layer": layer,
           "description": provenance or f"API changes of {dist} mined from its releases by kb",
           "api_changes": sorted(held.values(), key=lambda r: r["id"])}
    store.load_pack(parse_pack(dump_pack(doc).encode("utf-8"), f"{layer}:{name}"))
    return len(held)


@dataclass
class LearnResult:
    learned: list[str] = field(default_factory=list)  # one line per distribution mined
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    #: why nothing could be mined at all (offline, no griffe, a release that cannot be read), for learn_from
    error: str | None = None


def learn(report: dict[str, Any], store: Any, *, root: Path | None = None, cache: Path | None = None,
          find_links: tuple[Path, ...] = (), progress: Callable[[str], None] | None = None) -> LearnResult:
    """Mine the distributions behind a report's generic causes and store the rows as learned."""
    from ..declared import declared
    from .releases import versions

    result = LearnResult()
    project = declared(root)  # the release the project locks or declares is where mining starts
    wanted: dict[str, str] = {}
    for cause in report.get("root_causes", []):
        owner = cause.get("owner") or {}
        if cause.get("layer") == "generic" and owner.get("kind") == "distribution":
            if owner.get("version"):
                wanted.setdefault(owner["distribution"], owner["version"])
            else:
                result.problems.append(f"{owner['distribution']}: its installed version is not known (give the "
                                       "tests' interpreter with --python): nothing to compare it with")
    if not wanted and not result.problems:
        result.problems.append("no cause reasoned from an installed distribution: nothing to mine")
    for dist, installed in sorted(wanted.items()):
        current = parse_version(installed)
        if current is None:
            result.problems.append(f"{dist}: the installed version {installed!r} is not a PEP 440 version: "
                                   "there is no release range to compare")
            continue
        start = project.wanted.get(normalise(dist))
        if not start or (floor := parse_version(start)) is None or floor >= current:
            known = versions(dist, find_links=find_links)  # valid versions only (sort_versions)
            earlier = [v for v in known if (release := parse_version(v)) is not None and release < current]
            if not earlier:
                result.problems.append(f"{dist}: no release before the installed {installed} to compare with")
                continue
            start = _series_start(earlier, installed)
        mined = mine(dist, start, installed, cache=cache, find_links=find_links, prefix="learned", progress=progress)
        result.problems.extend(f"{dist} {line}" for line in mined.skipped)
        pairs = ", ".join(f"{a} → {b}" for a, b in mined.pairs) or "nothing comparable"
        total = store_rows(store, dist, mined.rows, provenance=f"mined by kb knowledge learn: {dist} {pairs}")
        result.rows += len(mined.rows)
        result.learned.append(f"{dist}: {len(mined.rows)} row(s) from {pairs} (the learned pack holds {total})")
    return result


def learn_from(report: dict[str, Any], db: str | Path | None = None, *, root: str | Path | None = None,
               find_links: Sequence[str | Path] = (), progress: Callable[[str], None] | None = None) -> LearnResult:
    """:func:`learn` from ``report`` into the knowledge base at ``db``; when mining cannot be done at all
    (offline, no griffe, a release that cannot be read) that is the result's ``error``, nothing is stored
    and the diagnosis stands."""
    from ..store import open_store

    with open_store(db) as store:
        try:
            return learn(report, store, root=Path(root) if root else None,
                         find_links=tuple(Path(p) for p in find_links), progress=progress)
        except KbError as exc:
            return LearnResult(error=str(exc))


def rediagnosable(report: dict[str, Any]) -> list[str]:
    """The sources of a recorded report that kb can read again (files still there; not standard input)."""
    return [s for s in report.get("sources", []) if s != "-" and os.path.exists(s)]


def _series_start(earlier: list[str], installed: str) -> str:
    """The last release of the series before the installed one's (the previous minor series)."""
    now = parse_version(installed).release[:2]  # type: ignore[union-attr]
    before = [v for v in earlier if parse_version(v).release[:2] < now]  # type: ignore[union-attr]
    return before[-1] if before else earlier[-1]
