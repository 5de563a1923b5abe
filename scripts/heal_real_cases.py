"""Heal the real breakages with `kb fix --apply --yes` and print a table (issue 5's evidence).

    python scripts/heal_real_cases.py CORPUS_REAL_DIR [CASE ...] [--work DIR]

For each case: run its recipe.sh (needs python3.11 and the package registry; 1-3 minutes each),
then `kb fix <fresh report.xml> --root <src> --apply --yes` with the case's own venv as the test
command, then the case's rerun.sh to count what still fails. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="kb-heal-")))
    args = parser.parse_args()
    cases = args.cases or sorted(p.name for p in args.corpus.iterdir() if (p / "recipe.sh").exists())
    rows = []
    for case in cases:
        label = json.loads((args.corpus / case / "label.json").read_text())
        work = args.work / case
        recipe = subprocess.run(["bash", str(args.corpus / case / "recipe.sh"), str(work)], capture_output=True, text=True)
        report = work / "report.xml"
        if not report.exists():
            rows.append((case, "recipe failed", "", "", "", " ".join(recipe.stderr.strip().splitlines()[-1:])))
            continue
        before = _counts(report)
        env = {**os.environ, "KB_DB": str(work / "kb.sqlite")}
        fix = subprocess.run([sys.executable, "-m", "kb", "fix", str(report), "--root", str(work / "src"), "--apply", "--yes",
                              "--test-command", f"{work / 'venv/bin/python'} -m pytest"],
                             capture_output=True, text=True, env=env)
        verdicts = [line.strip().split(":", 1)[0] for line in fix.stdout.splitlines()
                    if line.strip().startswith(("verified:", "plausible:", "rolled back:"))]
        skipped = [line.strip() for line in fix.stdout.splitlines() if "not applied:" in line or "not planned:" in line]
        if fix.returncode:
            skipped.append(f"kb exit {fix.returncode}: {' '.join(fix.stderr.strip().splitlines()[-1:])}")
        subprocess.run(["bash", str(work / "rerun.sh")], capture_output=True)
        after = _counts(report)
        expected = "; ".join(f"{c['fix_kind']}{' (mechanical)' if c.get('mechanical') else ''}" for c in label["root_causes"])
        by_hand = label.get("tests_after_fix") or {}
        label_after = by_hand.get("failed", 0) + by_hand.get("errors", 0)
        rows.append((case, expected, f"{before}", f"{after}", f"{label_after}",
                     ", ".join(verdicts) + ("; " if verdicts and skipped else "") + "; ".join(skipped)[:140]))
    print(f"{'case':24} {'label fix':36} {'failing before':>14} {'after kb':>8} {'after the label fix':>19}  kb")
    for case, expected, before, after, label_after, note in rows:
        print(f"{case:24} {expected:36} {before:>14} {after:>8} {label_after:>19}  {note}")


def _counts(report: Path) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kb.ingest import read_report

    run = read_report(report)
    return run.failures + run.errors


if __name__ == "__main__":
    main()
