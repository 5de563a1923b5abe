"""Start-up figures of issue 18, measured in one run:

- ``kb diagnose`` of a one-test report: CPU time (user + system of the process) against ``python -m pytest
  --version``, paired runs interleaved, medians;
- the first ``kb diagnose`` on a new knowledge base (a file that does not exist yet): wall time, median.

Both commands run with bytecode caching on (PYTHONDONTWRITEBYTECODE removed), as an installed kb runs.

    python benchmarks/bench_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
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


def _cpu(cmd: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "KB_HOME")}
    with tempfile.TemporaryDirectory(prefix="kb-startup-") as tmp:
        report = Path(tmp) / "one.xml"
        report.write_text(ONE_TEST)
        db = str(Path(tmp) / "kb.sqlite")
        diagnose = [sys.executable, "-m", "kb", "diagnose", str(report), "--db", db]
        version = [sys.executable, "-m", "pytest", "--version"]
        _cpu(diagnose, env), _cpu(version, env)  # warm: the KB exists, bytecode is cached
        kb_cpu, pytest_cpu, first = [], [], []
        for n in range(args.runs):
            kb_cpu.append(_cpu(diagnose, env))
            pytest_cpu.append(_cpu(version, env))
            fresh = [*diagnose[:-1], str(Path(tmp) / f"new-{n}" / "kb.sqlite")]
            started = time.perf_counter()
            subprocess.run(fresh, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
            first.append(time.perf_counter() - started)
    k, p = statistics.median(kb_cpu), statistics.median(pytest_cpu)
    print(f"kb diagnose, one-test report: CPU {k * 1000:.0f} ms; python -m pytest --version: CPU {p * 1000:.0f} ms; "
          f"ratio {k / p:.2f} (target <= 1.5)")
    print(f"first kb diagnose on a new KB: {statistics.median(first):.2f} s wall (target <= 0.5 s); "
          f"medians of {args.runs} paired runs")


if __name__ == "__main__":
    main()
