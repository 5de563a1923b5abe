"""Overhead of the kb pytest plugin: a generated 2,000-test suite with and without --kb (issue 7).

    python benchmarks/bench_plugin.py [--tests 2000] [--runs 7]

Runs `python -m pytest -q -p no:cacheprovider` (B, the baseline) and the same with `--kb=FILE` (A)
alternately, A B A B ..., as whole processes; prints each one's median wall time and the median of
the pairwise ratios A/B (pairing keeps the ratio honest when the machine's speed drifts). The
goal is A/B <= 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.faults import make_project  # noqa: E402


def _time(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kb-plugin-bench-") as tmp:
        root = Path(tmp) / "suite"
        make_project(root, tests=args.tests, per_file=50)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        with_kb = [*base, f"--kb={Path(tmp) / 'run.jsonl'}"]
        _time(base, root), _time(with_kb, root)  # warm-up: imports and bytecode caches
        a_times, b_times, ratios = [], [], []
        for _ in range(args.runs):
            a = _time(with_kb, root)
            b = _time(base, root)
            a_times.append(a)
            b_times.append(b)
            ratios.append(a / b)
        lines = (Path(tmp) / "run.jsonl").read_text().count("\n")
    print(f"{args.tests} tests, {args.runs} pairs; the run file had {lines} lines")
    print(f"B  pytest            median {statistics.median(b_times):.3f} s  (min {min(b_times):.3f}, max {max(b_times):.3f})")
    print(f"A  pytest --kb=FILE  median {statistics.median(a_times):.3f} s  (min {min(a_times):.3f}, max {max(a_times):.3f})")
    print(f"A/B median of pairwise ratios: {statistics.median(ratios):.3f}  (goal <= 1.10)")


if __name__ == "__main__":
    main()
