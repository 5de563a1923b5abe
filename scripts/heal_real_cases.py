"""Heal the real breakages with `kb heal` and print a table (issue 13's evidence).

    python scripts/heal_real_cases.py CORPUS_REAL_DIR [CASE ...] [--work DIR] [--reuse] [--max-risk medium]

For each case: run its recipe.sh into WORK/CASE (needs python3.11 and the package registry; 1-3 minutes
each) — or, with --reuse and a work dir made before, put back the pristine src/ and the venv's recorded
versions — then `kb heal --yes --max-risk RISK --root src -- venv/bin/python -m pytest <the recipe's
arguments>`, then the case's rerun.sh to count what still fails, and check every file kb changed:
Python files must parse, packaging files must still build metadata (`setup.py --version`). Not part
of the test suite.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _pytest_args(rerun: Path) -> list[str]:
    """The pytest arguments of the recipe's rerun.sh, without its report and output redirection."""
    line = next(line for line in rerun.read_text().splitlines() if " -m pytest " in line)
    words = shlex.split(line.split(" > ", 1)[0])
    args = words[words.index("pytest") + 1:]
    return [a for a in args if not a.startswith("--junitxml")]


def _prepare(corpus: Path, case: str, work: Path, reuse: bool) -> str | None:
    if reuse and (work / "src.orig").is_dir() and (work / "venv.freeze").is_file():
        shutil.rmtree(work / "src")
        shutil.copytree(work / "src.orig", work / "src", symlinks=True)
        subprocess.run([str(work / "venv/bin/python"), "-m", "pip", "install", "-q", "-r", str(work / "venv.freeze")],
                       capture_output=True)
        subprocess.run(["bash", str(work / "rerun.sh")], capture_output=True)
        return None
    recipe = subprocess.run(["bash", str(corpus / case / "recipe.sh"), str(work)], capture_output=True, text=True)
    if not (work / "report.xml").exists():
        return " ".join(recipe.stderr.strip().splitlines()[-1:])
    shutil.copytree(work / "src", work / "src.orig", symlinks=True, dirs_exist_ok=True)
    freeze = subprocess.run([str(work / "venv/bin/python"), "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            capture_output=True, text=True)
    (work / "venv.freeze").write_text(freeze.stdout)
    return None


def _damaged(work: Path) -> list[str]:
    """Files kb changed that no longer parse or build metadata."""
    bad = []
    for path in (work / "src").rglob("*.py"):
        orig = work / "src.orig" / path.relative_to(work / "src")
        if orig.exists() and orig.read_bytes() == path.read_bytes():
            continue
        try:
            ast.parse(path.read_bytes())
        except SyntaxError:
            bad.append(f"{path.relative_to(work / 'src')} does not parse")
    if (work / "src/setup.py").exists():
        done = subprocess.run([str(work / "venv/bin/python"), "setup.py", "--version"], cwd=work / "src",
                              capture_output=True, text=True)
        if done.returncode:
            bad.append("setup.py --version fails")
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--work", type=Path, default=Path(tempfile.mkdtemp(prefix="kb-heal-")))
    parser.add_argument("--reuse", action="store_true", help="reuse the work dirs of an earlier run")
    parser.add_argument("--max-risk", default="medium", choices=["low", "medium"])
    args = parser.parse_args()
    cases = args.cases or sorted(p.name for p in args.corpus.iterdir() if (p / "recipe.sh").exists())
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from kb.ingest import read_report

    def failing(report: Path) -> int:
        run = read_report(report)
        return run.failures + run.errors

    rows = []
    for case in cases:
        label = json.loads((args.corpus / case / "label.json").read_text())
        work = (args.work / case).resolve()
        problem = _prepare(args.corpus, case, work, args.reuse)
        expected = "; ".join(f"{c['fix_kind']}{' (mechanical)' if c.get('mechanical') else ''}"
                             for c in label["root_causes"])
        if problem:
            rows.append((case, expected, "", "", "", "recipe failed: " + problem))
            continue
        before = failing(work / "report.xml")
        env = {**os.environ, "KB_DB": str(work / "kb.sqlite")}
        Path(work / "kb.sqlite").unlink(missing_ok=True)
        command = [str(work / "venv/bin/python"), "-m", "pytest", *_pytest_args(work / "rerun.sh")]
        heal = subprocess.run([sys.executable, "-m", "kb", "heal", "--yes", "--max-risk", args.max_risk,
                               "--root", str(work / "src"), "--", *command], capture_output=True, text=True, env=env)
        (work / "heal.txt").write_text(heal.stdout + heal.stderr)
        verdicts = re.findall(r"^   (verified|rolled back|plausible): ", heal.stdout, re.M)
        refused = [line.strip() for line in heal.stdout.splitlines() if "not applied:" in line or "not planned:" in line]
        subprocess.run(["bash", str(work / "rerun.sh")], capture_output=True)
        after = failing(work / "report.xml")
        by_hand = label.get("tests_after_fix") or {}
        label_after = by_hand.get("failed", 0) + by_hand.get("errors", 0)
        damaged = _damaged(work)
        note = ", ".join(f"{verdicts.count(v)} {v}" for v in dict.fromkeys(verdicts))
        if refused:
            note += ("; " if note else "") + refused[0][:90]
        if heal.returncode not in (0, 1) or "Traceback" in heal.stderr:
            note += f"; kb exit {heal.returncode}: {' '.join(heal.stderr.strip().splitlines()[-1:])}"
        rows.append((case, expected, str(before), str(after), str(label_after),
                     ("DAMAGED: " + "; ".join(damaged) + "; " if damaged else "") + note))
    print(f"{'case':22} {'label fix':34} {'failing before':>14} {'after kb heal':>13} {'after the label fix':>19}  kb")
    for case, expected, before, after, label_after, note in rows:
        print(f"{case:22} {expected:34} {before:>14} {after:>13} {label_after:>19}  {note}")


if __name__ == "__main__":
    main()
