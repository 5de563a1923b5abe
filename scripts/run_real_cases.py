"""`kb run -- pytest …` on each real case's unpacked source vs `kb diagnose` on its stored report (issue 6).

    python scripts/run_real_cases.py CORPUS_REAL_DIR [CASE ...] [--work DIR] [--reuse]

For each case: run its recipe.sh (needs python3.11 and the package registry; 1-3 minutes each;
--reuse keeps a work folder a previous run left), then run the case's own pytest command (from
its rerun.sh: folder, environment, arguments) under `kb run`, and compare the root causes — rule,
API-change row and the tests each explains — with `kb diagnose` of the report stored in the
corpus. Prints a table; not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path


def _causes(doc: dict) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(c["rule"], c.get("api_change") or "", tuple(sorted(c["tests"]))) for c in doc["root_causes"]}


def _rerun_command(rerun: str) -> tuple[str, dict[str, str], list[str]]:
    """(folder, exported variables, pytest argv without --junitxml and redirections) from rerun.sh."""
    folder = re.search(r'^cd "([^"]+)"', rerun, re.M).group(1)
    env = dict(re.findall(r"^export (\w+)=(\S+)", rerun, re.M))
    line = next(line for line in rerun.splitlines() if " -m pytest " in line)
    argv = shlex.split(line.split(" > ", 1)[0])
    return folder, env, [a for a in argv if not a.startswith("--junitxml")]


def cases_arguments(doc: str, prefix: str) -> argparse.Namespace:
    """The arguments these scripts share: CORPUS_REAL_DIR [CASE ...] [--work DIR] [--reuse]."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix=prefix)))
    parser.add_argument("--reuse", action="store_true", help="keep a work folder an earlier run left")
    args = parser.parse_args()
    args.cases = args.cases or sorted(p.name for p in args.corpus.iterdir() if (p / "recipe.sh").exists())
    return args


def prepared(args: argparse.Namespace, case: str) -> Path | None:
    """The case's work folder after its recipe ran (or was reused); None when the recipe failed."""
    work = args.work / case
    if not (args.reuse and (work / "rerun.sh").exists()):
        subprocess.run(["bash", str(args.corpus / case / "recipe.sh"), str(work)], capture_output=True)
    if not (work / "rerun.sh").exists():
        print(f"{case:24} recipe failed")
        return None
    return work


def main() -> None:
    args = cases_arguments(__doc__, "kb-run-real-")
    print(f"{'case':24} {'stored: causes':>14} {'kb run: causes':>14} {'same':>5}  exit  note")
    for case in args.cases:
        work = prepared(args, case)
        if work is None:
            continue
        env = {**os.environ, "KB_DB": str(work / "kb-run.sqlite")}
        stored = subprocess.run([sys.executable, "-m", "kb", "diagnose", str(args.corpus / case / "report.xml"),
                                 "--format", "json", "--no-record"], capture_output=True, text=True, env=env)
        folder, exports, argv = _rerun_command((work / "rerun.sh").read_text())
        live = subprocess.run([sys.executable, "-m", "kb", "run", "--quiet", "--format", "json", "--", *argv],
                              capture_output=True, text=True, cwd=folder, env={**env, **exports})
        try:
            want, got = _causes(json.loads(stored.stdout)), _causes(json.loads(live.stdout))
        except ValueError:
            print(f"{case:24} kb failed: {(stored.stderr + live.stderr).strip()[-200:]}")
            continue
        note = "" if want == got else f"only stored: {sorted(want - got)[:2]}; only live: {sorted(got - want)[:2]}"
        print(f"{case:24} {len(want):>14} {len(got):>14} {str(want == got):>5}  {live.returncode:>4}  {note[:200]}")


if __name__ == "__main__":
    main()
