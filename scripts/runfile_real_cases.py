"""The kb pytest plugin on each real case: does its run file name the same or better root causes
than the case's report.xml? (issue 7; needs the package registry, 1-3 minutes a case; not in CI)

    python scripts/runfile_real_cases.py CORPUS_REAL_DIR [CASE ...] [--work DIR] [--reuse]

For each case: run its recipe.sh (or --reuse a work folder left by an earlier run), install kb
into the case's venv without dependencies (the plugin needs only the standard library and
pytest), re-run the case's own pytest command with `-p kb --kb=run.jsonl`, and diagnose both the
stored report.xml and the run file. Prints per case: root causes, tests diagnosed and the top
confidence from each, and whether the run file's causes include every cause of the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_real_cases import _rerun_command, cases_arguments, prepared  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _diagnose(path: Path, env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-m", "kb", "diagnose", str(path), "--format", "json", "--no-record"],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(done.stderr.strip())
    return json.loads(done.stdout)


def _summary(doc: dict) -> tuple[set[tuple[str, str]], int, float]:
    causes = {(c["rule"], c.get("api_change") or "") for c in doc["root_causes"]}
    top = max((c["confidence"] for c in doc["root_causes"]), default=0.0)
    return causes, doc["summary"]["diagnosed"], top


def main() -> None:
    args = cases_arguments(__doc__, "kb-runfile-real-")
    print(f"{'case':24} {'report.xml: causes/diagnosed/top':>32} {'run file: causes/diagnosed/top':>31}  verdict")
    for case in args.cases:
        work = prepared(args, case)
        if work is None:
            continue
        pip = subprocess.run([str(work / "venv/bin/python"), "-m", "pip", "install", "-q", "--no-deps", str(ROOT)],
                             capture_output=True, text=True)
        if pip.returncode:
            print(f"{case:24} could not install kb into the case's venv: {pip.stderr.strip()[-160:]}")
            continue
        folder, exports, argv = _rerun_command((work / "rerun.sh").read_text())
        runfile = work / "run.jsonl"
        subprocess.run([*argv, "-p", "kb", f"--kb={runfile}"], cwd=folder, env={**os.environ, **exports},
                       capture_output=True)
        env = {**os.environ, "KB_DB": str(work / "kb-runfile.sqlite")}
        try:
            stored, live = _summary(_diagnose(args.corpus / case / "report.xml", env)), _summary(_diagnose(runfile, env))
        except (RuntimeError, ValueError) as exc:
            print(f"{case:24} kb failed: {str(exc)[-200:]}")
            continue
        same = stored[0] <= live[0]
        better = same and (live[1] > stored[1] or live[2] > stored[2] + 1e-9)
        verdict = "better" if better else "same" if same and live[1] == stored[1] else "WORSE"
        print(f"{case:24} {len(stored[0]):>14}/{stored[1]:>8}/{stored[2]:.2f} {len(live[0]):>13}/{live[1]:>8}/"
              f"{live[2]:.2f}  {verdict}")


if __name__ == "__main__":
    main()
