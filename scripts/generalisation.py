"""Does mined knowledge generalise? (issue 12; needs the package index, not run by the test suite)

Samples mined rows of the shipped pack (kb/packs/mined-python.json.gz) across many libraries; for
each, builds a tiny project that uses the removed name, installs the release that removed it into
a fresh virtual environment, runs the project's test with real pytest, and diagnoses the report
with kb twice, hand-written (curated) rows switched off both times:

- *mined*: the KB as shipped minus its curated rows — is the top cause the mined row for that name?
- *generic*: minus the mined rows too — does kb still name the owner (the distribution) and a pin?

A sample is fair only when the code works on the release before: each trial installs that release
first and imports the name, then upgrades to the release that removed it. A sample that cannot be
installed on this Python (no wheel) or does not import on the older release either (an optional
dependency missing) is reported and replaced by another draw, so the table has --samples fair cases.

    python scripts/generalisation.py --samples 30 --min-libraries 15
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import venv
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from kb.diagnose import diagnose  # noqa: E402
from kb.rulepack import parse_pack  # noqa: E402
from kb.store import SqliteStore  # noqa: E402

PACK = ROOT / "kb" / "packs" / "mined-python.json.gz"
_PUBLIC = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def candidates(pack: Path) -> dict[str, list[dict]]:
    """Mined rows a user's code can meet as an import: a public module-level name (or module) that was
    removed or moved, by library."""
    doc = parse_pack(pack.read_bytes(), str(pack)).doc
    by_lib: dict[str, list[dict]] = {}
    for row in doc["api_changes"]:
        if row["package"] == "python" or row["kind"] not in ("removed", "moved"):
            continue
        if "." in row["name"] or any(not _PUBLIC.match(p) for p in row["module"].split(".")):
            continue
        if row["name"] and not _PUBLIC.match(row["name"]):
            continue
        by_lib.setdefault(row["package"], []).append(row)
    return by_lib


def draw(by_lib: dict[str, list[dict]], rng: random.Random) -> list[dict]:
    """Rows in a random order that spreads over libraries: one per library, round after round."""
    libs = sorted(by_lib)
    rng.shuffle(libs)
    pools = {lib: rng.sample(rows, len(rows)) for lib, rows in by_lib.items()}
    order = []
    while any(pools.values()):
        for lib in libs:
            if pools[lib]:
                order.append(pools[lib].pop())
    return order


def kb_for(tmp: Path, keep_mined: bool) -> Path:
    db = tmp / ("mined.sqlite" if keep_mined else "generic.sqlite")
    if not db.exists():
        with SqliteStore(db) as store:
            with store.write():
                store.query("DELETE FROM api_changes WHERE layer = 'curated'")
                if not keep_mined:
                    store.query("DELETE FROM api_changes WHERE layer = 'mined'")
    return db


def trial(row: dict, work: Path, dbs: dict[str, Path]) -> dict:
    case = work / row["id"]
    shutil.rmtree(case, ignore_errors=True)
    env_dir, project = case / "venv", case / "project"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    version = row["removed_in"]
    old = re.search(r"comparing \S+ (\S+) \(", row["note"])
    result = {"row": row["id"], "library": row["package"], "uses": f"{row['module']}.{row['name']}".rstrip("."),
              "release": version, "before": old.group(1) if old else "?"}
    if row["name"]:
        code = f"from {row['module']} import {row['name']}\n\n\ndef test_uses():\n    assert {row['name']} is not None\n"
    else:
        code = f"import {row['module']}\n\n\ndef test_uses():\n    assert {row['module']}\n"
    # the sample is fair only if the code works on the release before (an optional dependency, a
    # platform-only module would fail for another reason)
    for step, wanted in (("before", result["before"]), ("after", version)):
        done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                               "--only-binary", ":all:", f"{row['package']}=={wanted}"],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            result["verdict"] = "install failed"
            result["why"] = (done.stderr.strip().splitlines() or ["?"])[-1][:160]
            return result
        if step == "before":
            works = subprocess.run([str(python), "-c", code.split("\n\n\n")[0]], capture_output=True, text=True,
                                   timeout=300)
            if works.returncode != 0:
                result["verdict"] = "install failed"
                result["why"] = f"does not import on {wanted} either: " + \
                    (works.stderr.strip().splitlines() or ["?"])[-1][:120]
                return result
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_uses.py").write_text(code)
    report = case / "report.xml"
    subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={report}"],
                   cwd=project, capture_output=True, text=True, timeout=900)
    for layer, db in dbs.items():
        doc = diagnose([report], db=db, record=False, python=str(python), root=project)
        top = doc["root_causes"][0] if doc["root_causes"] else None
        result[f"{layer}_title"] = top["title"] if top else "(no cause) " + \
            (doc["undiagnosed"][0]["message"][:100] if doc["undiagnosed"] else "(tests passed)")
        result[f"{layer}_confidence"] = top["confidence"] if top else 0.0
        if layer == "mined":
            result["mined_ok"] = bool(top and top.get("layer") == "mined" and top["api_change"] and
                                      _names(top, row))
        else:
            owner = (top or {}).get("owner") or {}
            result["generic_ok"] = bool(top and top.get("layer") == "generic" and
                                        owner.get("distribution", "").lower().replace("_", "-")
                                        == row["package"].lower().replace("_", "-"))
    result["verdict"] = "right" if result["mined_ok"] else "wrong"
    shutil.rmtree(env_dir, ignore_errors=True)
    return result


def _names(cause: dict, row: dict) -> bool:
    what = f"{row['module']}.{row['name']}" if row["name"] else row["module"]
    return what in cause["title"] and row["package"] in cause["title"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", type=Path, default=PACK)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--min-libraries", type=int, default=15)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--work", type=Path, default=Path("/tmp/kb-generalisation"))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write every trial here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.pack.resolve() != PACK.resolve():  # try a pack that is not (yet) the shipped one
        import kb.store
        from kb.rulepack import builtin_packs

        shipped = [p for p in builtin_packs() if not p[0].endswith(".json.gz")]
        kb.store.builtin_packs = lambda: [*shipped, (f"builtin:{PACK.name}", args.pack.read_bytes())]
    by_lib = candidates(args.pack)
    order = draw(by_lib, random.Random(args.seed))
    dbs = {"mined": kb_for(args.work, True), "generic": kb_for(args.work, False)}
    results: list[dict] = []
    failed_installs: list[dict] = []
    position = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        while len(results) < args.samples and position < len(order):
            batch = order[position:position + args.jobs]
            position += len(batch)
            for result in pool.map(lambda r: trial(r, args.work, dbs), batch):
                if result["verdict"] == "install failed":
                    failed_installs.append(result)
                elif len(results) < args.samples:
                    results.append(result)
                    print(f"{len(results):2}. {result['library']:<20} {result['uses']:<55} {result['release']:<8} "
                          f"{'right' if result['mined_ok'] else 'WRONG'} ({result['mined_confidence']:.2f}) | "
                          f"generic {'right' if result['generic_ok'] else 'WRONG'} "
                          f"({result['generic_confidence']:.2f})", flush=True)
    libraries = {r["library"] for r in results}
    mined_right = sum(r["mined_ok"] for r in results)
    generic_right = sum(r["generic_ok"] for r in results)
    print()
    print(f"{len(results)} samples from {len(libraries)} libraries ({len(failed_installs)} draws not usable on "
          f"Python {sys.version_info.major}.{sys.version_info.minor} — no wheel, or not importable on the older "
          "release either — replaced)")
    print(f"mined row named as the top cause: {mined_right}/{len(results)}")
    print(f"generic cause names the distribution: {generic_right}/{len(results)}")
    for r in results:
        if not r["mined_ok"]:
            print(f"  miss: {r['library']} {r['uses']} {r['release']}: {r['mined_title'][:140]}")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "not_installable": failed_installs}, indent=1))
    if len(libraries) < args.min_libraries:
        print(f"warning: only {len(libraries)} libraries (wanted {args.min_libraries})")


if __name__ == "__main__":
    main()
