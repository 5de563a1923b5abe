"""Build the shipped mined pack (kb/packs/mined-python.json.gz): griffe's breaking changes over each
consecutive minor-series pair of the last five years of the libraries in
scripts/mined_libraries.txt, plus the standard library from Python 3.8 to the newest interpreter
pyenv has. Needs the package index and griffe (pip install -e '.[mine]').

Resumable: each library's rows go to WORK/<dist>.json as soon as it is done (one library at a time,
each in its own process with a time limit), and a finished library is not mined again; the release
files stay in the download cache. The last step gathers every WORK file into the pack, validates it
with the pack schema like any pack, and writes it deterministically (sorted rows, gzip without a
timestamp).

    python scripts/build_mined_pack.py                 # everything (resumes)
    python scripts/build_mined_pack.py --only requests # one library
    python scripts/build_mined_pack.py --assemble      # only gather WORK/ into the pack
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

LIBRARIES = HERE / "mined_libraries.txt"
PACK = ROOT / "kb" / "packs" / "mined-python.json.gz"
DEFAULT_WORK = ROOT / "build" / "mined"
#: a library whose mining takes longer than this is recorded as skipped (and retried on the next run)
LIBRARY_TIMEOUT_S = 900
#: distributions of the import-name map that are not mined: compiled or platform-only code griffe cannot
#: read statically (its wheels hold binaries), or releases too large to fetch on every build (10-70 MB each)
NOT_MINED = {"botocore", "opencv-python", "wxpython", "pygobject", "pycairo", "faiss-cpu", "sentencepiece",
             "pymupdf", "pywin32", "mysqlclient", "python-ldap", "pyusb", "levenshtein", "scikit-image",
             "biopython", "python-igraph", "faker"}


def library_list(path: Path) -> list[str]:
    names = []
    for line in path.read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return list(dict.fromkeys(names))


def import_map_distributions() -> list[str]:
    """Every distribution the built-in import-name map names."""
    from kb.rulepack import builtin_packs, parse_pack

    found = []
    for origin, data in builtin_packs():
        if origin.endswith((".yaml", ".yml")):
            found.extend(d["distribution"] for d in parse_pack(data, origin).doc.get("distributions") or [])
    return found


def mine_one(dist: str, since: str, cache: Path) -> dict:
    """Mine one library (in this process): its rows, the pairs compared, what was skipped."""
    from kb.knowledge.learn import mine
    from kb.knowledge.releases import versions
    from kb.pep440 import parse_version

    started = time.monotonic()
    every = versions(dist)
    recent = versions(dist, since=since)
    if not recent:
        return {"dist": dist, "rows": [], "pairs": [], "skipped": ["no release in the window"], "seconds": 0.0}
    first = parse_version(recent[0])
    before = [v for v in every if parse_version(v) < first and parse_version(v).release[:2] != first.release[:2]]
    start = before[-1] if before else recent[0]
    result = mine(dist, start, recent[-1], cache=cache, prefix="mined")
    return {"dist": dist, "rows": result.rows, "pairs": result.pairs, "skipped": result.skipped,
            "seconds": round(time.monotonic() - started, 1)}


def mine_stdlib_pairs(work: Path) -> None:
    from kb.knowledge.learn import mine_stdlib

    pyenv = Path(os.path.expanduser("~/.pyenv/versions"))
    found: dict[str, str] = {}
    for python in sorted(pyenv.glob("3.*/bin/python3.*")):
        minor = python.name.removeprefix("python")
        if re.fullmatch(r"3\.\d+", minor) and int(minor.split(".")[1]) >= 8 and os.access(python, os.X_OK):
            found[minor] = str(python)
    minors = sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))
    for old, new in zip(minors, minors[1:], strict=False):
        target = work / f"python-{old}-{new}.json"
        if target.exists():
            continue
        started = time.monotonic()
        rows = mine_stdlib(found[old], found[new], prefix="mined")
        target.write_text(json.dumps({"dist": "python", "rows": rows, "pairs": [[old, new]], "skipped": [],
                                      "seconds": round(time.monotonic() - started, 1)}))
        print(f"python {old} → {new}: {len(rows)} rows ({time.monotonic() - started:.0f}s)", flush=True)


def run_library(dist: str, work: Path, since: str, cache: Path) -> str:
    target = work / f"{dist.lower()}.json"
    if target.exists():
        return f"{dist}: done before"
    try:
        done = subprocess.run([sys.executable, __file__, "--one", dist, "--since", since, "--cache", str(cache),
                               "--work", str(work)], capture_output=True, text=True, timeout=LIBRARY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"{dist}: skipped (over {LIBRARY_TIMEOUT_S}s; retried next run)"
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return f"{dist}: failed ({tail})"
    return done.stdout.strip()


def name_map(docs: list[dict], cache: Path, taken: set[str]) -> list[dict]:
    """The mined import-name → distribution map: the top-level packages of each library's newest mined
    release (read from the download cache), in the order the libraries are listed (the more widely used
    first wins a shared name); names the curated map already has are left to it."""
    from kb.knowledge.mine import importable_tops
    from kb.knowledge.releases import fetch, release_url

    found: dict[str, dict] = {}
    for doc in docs:
        if doc["dist"] == "python" or not doc["pairs"]:
            continue
        newest = doc["pairs"][-1][1]
        try:
            release = fetch(doc["dist"], newest, cache=cache)
        except Exception as exc:  # noqa: BLE001 - a release not in the cache any more is left out of the map
            print(f"name map: {doc['dist']} {newest}: {exc}", flush=True)
            continue
        for top in importable_tops(release.root):
            if top not in taken and top not in found:  # private tops too: _pytest is pytest's
                found[top] = {"import": top, "distribution": doc["dist"], "source": release_url(doc["dist"], newest)}
    return sorted(found.values(), key=lambda d: d["import"])


def assemble(work: Path, out: Path, cache: Path, order: list[str]) -> None:
    from kb.rulepack import builtin_packs, parse_pack

    rows: dict[str, dict] = {}
    libraries, pairs, seconds = set(), 0, 0.0
    docs = [json.loads(path.read_text("utf-8")) for path in sorted(work.glob("*.json"))]
    rank = {name.lower(): i for i, name in enumerate(order)}
    docs.sort(key=lambda d: (rank.get(d["dist"].lower(), len(rank)), d["dist"]))
    for doc in docs:
        libraries.add(doc["dist"])
        pairs += len(doc["pairs"])
        seconds += doc.get("seconds", 0.0)
        for row in doc["rows"]:
            # the index's file names add nothing to the two release pages a row cites (work files mined
            # before the miner left them out still carry them)
            row["note"] = re.sub(r", read from \S+ and \S+:", ":", row["note"])
            rows.setdefault(row["id"], row)
    curated = {d["import"] for origin, data in builtin_packs() if origin.endswith(".yaml")
               for d in parse_pack(data, origin).doc.get("distributions") or []}
    pack = {"pack": "mined-python", "version": date.today().isoformat().replace("-", "."), "layer": "mined",
            "description": (f"Breaking changes griffe found between consecutive minor releases of {len(libraries)} "
                            f"libraries and of the standard library ({pairs} release pairs), and the import names "
                            "those libraries provide; built by scripts/build_mined_pack.py. Lower prior than "
                            "curated rows; curated rows win."),
            "api_changes": sorted(rows.values(), key=lambda r: r["id"]),
            "distributions": name_map(docs, cache, curated)}
    data = json.dumps(pack, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    compressed = gzip.compress(data, compresslevel=9, mtime=0)
    parse_pack(data, f"builtin:{out.name}")  # validated like any pack, refused whole if invalid
    out.write_bytes(compressed)
    print(f"{out}: {len(rows)} rows from {len(libraries)} libraries, {pairs} release pairs, "
          f"{len(pack['distributions'])} import names; "
          f"{len(compressed) / 1024:.0f} KiB ({len(data) / 1024 / 1024:.1f} MiB unpacked); "
          f"mining time {seconds / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--since", default=(date.today() - timedelta(days=5 * 365)).isoformat())
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", action="append")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--assemble", action="store_true")
    parser.add_argument("--no-stdlib", action="store_true")
    parser.add_argument("--out", type=Path, default=PACK)
    args = parser.parse_args()
    from kb.knowledge.releases import default_cache

    cache = args.cache or default_cache()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.one:
        doc = mine_one(args.one, args.since, cache)
        (args.work / f"{args.one.lower()}.json").write_text(json.dumps(doc))
        print(f"{args.one}: {len(doc['rows'])} rows from {len(doc['pairs'])} pairs in {doc['seconds']}s"
              + (f"; skipped {len(doc['skipped'])}" if doc["skipped"] else ""))
        return
    everything = [name for name in dict.fromkeys([*library_list(LIBRARIES), *import_map_distributions()])
                  if name.lower() not in NOT_MINED]
    if not args.assemble:
        started = time.monotonic()
        names = args.only or everything
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for line in pool.map(lambda d: run_library(d, args.work, args.since, cache), names):
                print(line, flush=True)
        if not args.no_stdlib and not args.only:
            mine_stdlib_pairs(args.work)
        print(f"mining took {(time.monotonic() - started) / 60:.1f} min", flush=True)
    assemble(args.work, args.out, cache, everything)


if __name__ == "__main__":
    main()
