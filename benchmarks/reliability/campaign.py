"""The reliability campaign of issue 14, through the real kb command: prints a table of trials and failures.

    python benchmarks/reliability/campaign.py [--scale 1.0] [--seed 0] [--work DIR] [--only KIND]

Kinds and full counts are in trials.KINDS (2,020 trials at --scale 1: 220 SIGKILLs during
``kb fix --apply``, 60 during ``kb undo``, 60 during recording diagnose, run-file and JUnit mutants,
stream and size bombs, a sparse 1 GiB file, hostile packs, damaged KBs). Every failure is listed under the
table with what went wrong. ``tests/test_reliability.py`` runs a few dozen of the same trials.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trials import KINDS, Lab, run_kind  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--only", action="append", help="a kind (substring) to run; repeatable")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kb-campaign-"))
    lab = Lab(work, args.seed)
    print(f"lab: {work} (fix {lab.fix_seconds:.1f} s, undo {lab.undo_seconds:.1f} s uninterrupted)", flush=True)
    rows = []
    for kind, (method, count) in KINDS.items():
        if args.only and not any(o in kind for o in args.only):
            continue
        trials = max(1, round(count * args.scale))
        started = time.monotonic()
        failures = run_kind(lab, method, trials)
        rows.append((kind, trials, failures, time.monotonic() - started))
        print(f"  {kind}: {trials} trials, {len(failures)} failed ({time.monotonic() - started:.0f} s)", flush=True)
    print(f"\n{'trial kind':38} {'trials':>7} {'failed':>7} {'seconds':>8}")
    for kind, trials, failures, seconds in rows:
        print(f"{kind:38} {trials:>7} {len(failures):>7} {seconds:>8.0f}")
    total = sum(t for _, t, _, _ in rows)
    failed = sum(len(f) for _, _, f, _ in rows)
    print(f"{'total':38} {total:>7} {failed:>7}")
    for kind, _, failures, _ in rows:
        for why in sorted(set(failures))[:10]:
            print(f"  FAIL {kind}: {why} (x{failures.count(why)})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
