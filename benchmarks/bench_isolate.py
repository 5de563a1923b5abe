"""Isolation cost on a generated 1,000-test suite: runs used vs the bound ⌈log2 n⌉ + 2 per polluter
(issues 6 and 15).

    python benchmarks/bench_isolate.py [--tests 1000] [--repeat 3] [--seed 1]

Generates throwaway pytest projects (tests/faults.py) with one, two and three polluters at random
positions, runs `kb isolate VICTIM --json -- python -m pytest` on each through real pytest, and prints
the runs of the polluter search against the bound, the other runs by step (the test alone, the order,
the cleaner search, the confirmation, the state snapshot), whether the polluters found are the injected
ones, and the wall time. Repeats are adaptive (--repeat is what a probe may use once outcomes
disagree): on this stable suite each probe should run once, so the bound holds with any --repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kb.run.isolate import run_bound  # noqa: E402
from tests.faults import make_project  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n = args.tests
    cases = [("one polluter", ("polluter",), {"polluter": rng.randrange(0, n - 1)}),
             ("two polluters", ("two-polluters",), {"polluter": rng.randrange(0, n // 2),
                                                    "polluter2": rng.randrange(n // 2, n - 1)}),
             ("three polluters", ("three-polluters",), {"polluter": rng.randrange(0, n // 3),
                                                        "polluter2": rng.randrange(n // 3, 2 * n // 3),
                                                        "polluter3": rng.randrange(2 * n // 3, n - 1)})]
    print(f"{'case':15} {'n before':>8} {'search runs':>11} {'bound':>6} {'other runs':>40} "
          f"{'found = injected':>16} {'seconds':>8}")
    with tempfile.TemporaryDirectory(prefix="kb-isolate-bench-") as tmp:
        for name, faults, positions in cases:
            root = Path(tmp) / name.replace(" ", "-")
            info = make_project(root, tests=n, per_file=50, faults=faults, positions=positions)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "kb", "isolate", str(info["victim"]), "--repeat",
                                   str(args.repeat), "--json", "--", sys.executable, "-m", "pytest"],
                                  cwd=root, capture_output=True, text=True,
                                  env={**os.environ, "KB_DB": str(Path(tmp) / "kb.sqlite")})
            seconds = time.perf_counter() - started
            if done.returncode:
                print(f"{name:14} failed: {done.stderr.strip()}")
                continue
            found = json.loads(done.stdout)
            before = found["tests_before"]
            steps = dict(found["by_step"])
            search = steps.pop("polluters", 0)
            bound = run_bound(before) * max(1, len(info["polluters"]))
            ok = sorted(found["polluters"]) == sorted(info["polluters"])
            other = ", ".join(f"{k} {v}" for k, v in steps.items())
            print(f"{name:15} {before:>8} {search:>11} {bound:>6} {other:>40} {str(ok):>16} {seconds:>8.1f}")


if __name__ == "__main__":
    main()
