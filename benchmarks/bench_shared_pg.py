"""32 kb processes writing one shared knowledge base at once (issue 17): half ``kb diagnose`` of real
reports, half ``kb fix --apply --yes`` healing a broken project (two layered causes, each fix verified by
re-running pytest), every process on its own project, all started together against one PostgreSQL
database nobody has migrated yet — and, as the baseline in the same run, against one fresh SQLite file.

Afterwards: every run and every fix outcome the processes reported is in the database, no process
failed, ``kb db check`` is clean. Prints the wall time of each backend.

    python benchmarks/bench_shared_pg.py [--writers 32]

Needs the PostgreSQL server binaries (``initdb``, ``pg_ctl``); as root the server runs as ``nobody``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kb.store import open_store  # noqa: E402
from tests.pgserver import PgServer, pg_bindir  # noqa: E402
from tests.projects import pytest_report, write_project  # noqa: E402

REAL = ROOT / "tests" / "corpus" / "real"
BROKEN = {
    "pkg/__init__.py": "",
    "pkg/core.py": "from collections import Mapping\nfrom collections import Sequence\n\n\n"
                   "def kind(x):\n    return 'map' if isinstance(x, Mapping) else 'seq' if isinstance(x, Sequence) else '?'\n",
    "tests/test_core.py": "from pkg.core import kind\n\n\ndef test_map():\n    assert kind({}) == 'map'\n\n\n"
                          "def test_seq():\n    assert kind([]) == 'seq'\n",
}


def _commands(work: Path, writers: int) -> list[tuple[str, list[str], Path]]:
    """(kind, argv, cwd) of each writer: even ones diagnose a real report, odd ones fix a project."""
    reports = sorted(REAL.glob("*/report.xml"))
    out = []
    for n in range(writers):
        folder = work / f"project-{n:02d}"
        folder.mkdir(parents=True)
        (folder / ".git").mkdir()  # each its own repository: its own .kb (journal, caches)
        if n % 2 == 0:
            out.append(("diagnose", ["diagnose", str(reports[n // 2 % len(reports)]), "--format", "json"], folder))
        else:
            report = pytest_report(write_project(folder / "project", BROKEN))
            out.append(("fix", ["fix", str(report), "--root", str(folder / "project"), "--apply", "--yes"], folder))
    return out


def _round(db: str, commands: list[tuple[str, list[str], Path]]) -> dict[str, object]:
    env = {**os.environ, "KB_DB": db}
    env.pop("KB_HOME", None)
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "kb", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
             for _kind, argv, cwd in commands]
    results = [(p.communicate(timeout=900), p.returncode) for p in procs]
    seconds = time.perf_counter() - started
    failed = [(kind, code, err.strip()[-300:]) for (kind, _a, _c), ((_out, err), code) in zip(commands, results,
                                                                                                strict=True)
              if code != 0]
    runs = len(commands)  # kb diagnose records its run; kb fix records the run it diagnosed
    verified = sum(out.count("verified:") for (kind, _a, _c), ((out, _e), _code) in zip(commands, results, strict=True)
                   if kind == "fix")
    with open_store(db) as store:
        counts = store.counts()
        problems = store.check()
        outcomes = store.query("SELECT verdict, COUNT(*) FROM fix_outcomes GROUP BY verdict")
    return {"seconds": seconds, "failed": failed, "runs expected": runs, "runs": counts["runs"],
            "fix outcomes": dict(outcomes), "verified fixes reported": verified, "problems": problems}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=32)
    args = parser.parse_args()
    bindir = pg_bindir()
    if bindir is None:
        print("no PostgreSQL server binaries (initdb, pg_ctl)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="kb-bench-shared-") as tmp:
        work = Path(tmp)
        commands = _commands(work / "pg", args.writers)
        sqlite_commands = _commands(work / "sqlite", args.writers)
        server = PgServer(bindir)
        try:
            server.start()
            pg = _round(server.new_database(template=None), commands)
        finally:
            server.stop()
        lite = _round(str(work / "shared.sqlite"), sqlite_commands)
    print(f"{args.writers} concurrent writers ({args.writers // 2} kb diagnose, {args.writers - args.writers // 2} "
          f"kb fix --apply), each on its own project, one fresh shared KB:")
    ok = True
    for name, result in (("PostgreSQL", pg), ("SQLite", lite)):
        print(f"  {name:10} {result['seconds']:6.1f} s  " + json.dumps({k: v for k, v in result.items()
                                                                       if k != "seconds"}))
        expected_outcomes = 2 * (args.writers - args.writers // 2)  # two layered causes per project
        ok &= (not result["failed"] and result["runs"] == result["runs expected"] and not result["problems"]
               and sum(result["fix outcomes"].values()) == expected_outcomes  # type: ignore[attr-defined]
               and result["verified fixes reported"] == expected_outcomes)
    print("every run and outcome present, kb db check clean" if ok else "MISSING ROWS OR FAILURES (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
