"""Start-up figures of issue 18, measured in one run:

- ``kb diagnose`` of a one-test report: CPU time (user + system of the process) against ``python -m pytest
  --version``, paired runs interleaved, medians;
- the first ``kb diagnose`` on a new knowledge base (a file that does not exist yet): wall time, median;
- a rule author's loop on a one-rule pack — ``kb rules lint``, ``kb rules test`` and ``kb rules import`` (into
  a knowledge base that holds the built-in packs, a fresh copy each run) — CPU time, each against the same
  ``python -m pytest --version`` runs (``--no-authoring`` leaves it out).

Both commands run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed), as an installed kb runs.

    python benchmarks/bench_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ONE_TEST = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1"
skipped="0" tests="1" time="0.1"><testcase classname="tests.test_a" name="test_x" time="0.001"><failure
message="ImportError: cannot import name 'Mapping' from 'collections'">E   ImportError: cannot import name 'Mapping'
from 'collections' (/usr/lib/python3.11/collections/__init__.py)</failure></testcase></testsuite></testsuites>
"""


ONE_RULE = """pack: bench
version: '1'
rules:
  - id: bench-boom
    title: Boom names a module
    category: api-change
    source: https://example.org/boom
    explanation: boom names a module and a name that went away
    prior: 0.5
    match:
      exception: [ValueError]
      regex: "boom (?P<module>[a-z]+) (?P<name>[A-Za-z]+)"
    symptom: missing_name
    examples:
      match: ["ValueError: boom abc Def", "ValueError: boom xyz Other"]
      no_match: ["ValueError: nothing"]
"""


def _cpu(cmd: list[str], env: dict[str, str], *, check: bool = False) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=check)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--no-authoring", action="store_true", help="leave out the rule author's loop")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "KB_HOME", "KB_DB")}
    with tempfile.TemporaryDirectory(prefix="kb-startup-") as tmp:
        report = Path(tmp) / "one.xml"
        report.write_text(ONE_TEST)
        pack = Path(tmp) / "bench.yaml"
        pack.write_text(ONE_RULE)
        db = str(Path(tmp) / "kb.sqlite")
        kb = [sys.executable, "-m", "kb"]
        diagnose = [*kb, "diagnose", str(report), "--db", db]
        version = [sys.executable, "-m", "pytest", "--version"]
        loop = {} if args.no_authoring else {
            "kb rules lint": [*kb, "rules", "lint", str(pack), "--db", db],
            "kb rules test": [*kb, "rules", "test", str(pack), "--db", db]}
        _cpu(diagnose, env), _cpu(version, env)  # warm: the KB exists, bytecode is cached
        kb_cpu, pytest_cpu, first = [], [], []
        author: dict[str, list[float]] = {name: [] for name in loop}
        for n in range(args.runs):
            kb_cpu.append(_cpu(diagnose, env))
            pytest_cpu.append(_cpu(version, env))
            fresh = [*diagnose[:-1], str(Path(tmp) / f"new-{n}" / "kb.sqlite")]
            started = time.perf_counter()
            subprocess.run(fresh, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
            first.append(time.perf_counter() - started)
            for name, cmd in loop.items():
                author[name].append(_cpu(cmd, env, check=True))
            if loop:  # into a copy of the seeded KB in a folder of its own (the user packs go beside it)
                into = Path(tmp) / f"import-{n}"
                into.mkdir()
                source, copy = sqlite3.connect(db), sqlite3.connect(into / "kb.sqlite")
                source.backup(copy)  # the KB with its WAL: a bare file copy could miss the seeded rows
                source.close(), copy.close()
                import_ = [*kb, "rules", "import", str(pack), "--db", str(into / "kb.sqlite")]
                author.setdefault("kb rules import", []).append(_cpu(import_, env, check=True))
    k, p = statistics.median(kb_cpu), statistics.median(pytest_cpu)
    print(f"kb diagnose, one-test report: CPU {k * 1000:.0f} ms; python -m pytest --version: CPU {p * 1000:.0f} ms; "
          f"ratio {k / p:.2f} (target <= 1.5)")
    print(f"first kb diagnose on a new KB: {statistics.median(first):.2f} s wall (target <= 0.5 s); "
          f"medians of {args.runs} paired runs")
    for name, times in author.items():
        a = statistics.median(times)
        print(f"{name} of a one-rule pack: CPU {a * 1000:.0f} ms = {a / p:.2f} × python -m pytest --version")


if __name__ == "__main__":
    main()
