"""Kill kb with SIGKILL at random moments of a multi-file apply, recover, check every file.

    python benchmarks/crash_trials.py [--trials 50]

Prints how each trial ended (completed / rolled back / untouched) and any damage found.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

from crashtrial import trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=50)
    args = parser.parse_args()
    outcomes: collections.Counter[str] = collections.Counter()
    damaged = []
    with tempfile.TemporaryDirectory(prefix="kb-crash-") as tmp:
        for seed in range(args.trials):
            try:
                outcomes[trial(Path(tmp) / f"t{seed}", seed)] += 1
            except AssertionError as exc:
                damaged.append(f"trial {seed}: {exc}")
    print(f"{args.trials} trials: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items()))
          + f"; {len(damaged)} with a damaged file")
    for line in damaged:
        print("  " + line)


if __name__ == "__main__":
    main()
