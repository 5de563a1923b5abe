"""Measure `kb batch` on Dask against a plain loop of `kb.diagnose` over the same archive (issue 17).

    python benchmarks/bench_batch.py [--files 2000] [--failures 200] [--passed 300] [--rounds 2]

Generates --files JUnit reports (benchmarks/generate.py, a seed each: ~--failures failures in
--failures + --passed tests) into a temporary archive of 20 repositories, then measures, in this same
run, round by round (every other round in reverse order, so a change of load on a shared machine hits
every variant alike):

- loop: one process (a child of this one, so its peak RSS is its own) calling
  ``kb.diagnose.diagnose([path], record=False)`` for each file — a loop of ``kb diagnose`` without the
  process start-ups;
- in-process: ``kb.batch.diagnose_files`` in one process without Dask — one snapshot of the knowledge,
  one engine for every file: what a batch worker does, without the parallelism;
- batch-1, batch-2: ``kb.batch.diagnose_batch`` on a LocalCluster of 1 and 2 worker processes (one thread
  each), end to end — snapshot, broadcast, diagnosis, rows and causes table written. The cluster is
  started before the clock starts (its start-up is quoted apart: a real cluster is already running).

Quotes files/s (the median over rounds), speed-ups over the loop, CPU time per file (of the process
doing the work; for a batch, of its worker processes: less disturbed than wall time by other load on a
shared machine), and peak RSS: of the loop's process, and of each worker process (``ru_maxrss``, asked of
the workers when the batch ends). Checks that every
variant found the same causes for every file. No timing is asserted anywhere; these are figures to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

REPOSITORIES = 20


def make_archive(folder: Path, files: int, failures: int, passed: int) -> list[str]:
    paths = []
    for i in range(files):
        path = folder / f"repo-{i % REPOSITORIES:02d}" / f"run-{i:05d}.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        generate.write_report(str(path), failures, passed, seed=i + 1)
        paths.append(str(path))
    return paths


def _keys_digest(found: dict[str, list[str]]) -> str:
    """One value for "these files got these causes" (path → cause keys), to compare the variants."""
    import hashlib

    return hashlib.sha256(json.dumps(sorted(found.items())).encode()).hexdigest()[:16]


# -- the single-process variants, each run in a child process (``--child``) so its peak RSS is its own


def child(kind: str, list_path: str, db: str) -> None:
    from kb.batch import peak_rss

    paths = Path(list_path).read_text(encoding="utf-8").split("\n")
    start, cpu = time.perf_counter(), time.process_time()
    if kind == "loop":
        from kb.diagnose import diagnose

        keys = {p: [c["key"] for c in diagnose([p], db=db, record=False)["root_causes"]] for p in paths}
    else:
        from kb.batch import diagnose_files
        from kb.knowledge.snapshot import Snapshot
        from kb.store import open_store

        with open_store(db) as store:
            snapshot = Snapshot.of(store)
        rows = diagnose_files([(p, "") for p in paths], snapshot)
        keys = {row["path"]: [c["key"] for c in row["causes"]] for row in rows}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_rss": peak_rss(), "keys": _keys_digest(keys)}))


def run_child(kind: str, list_path: Path, db: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(list_path), db], capture_output=True,
                          text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_batch(workers: int, pattern: str, out: Path, db: str) -> dict[str, Any]:
    from kb.batch import diagnose_batch, local_cluster, read_table

    started = time.perf_counter()
    with local_cluster(workers) as address:
        startup = time.perf_counter() - started
        start = time.perf_counter()
        result = diagnose_batch([pattern], scheduler=address, output=out, db=db)
        seconds = time.perf_counter() - start
    rows = read_table(out)
    assert result.errors == 0 and len(rows) == result.files
    return {"seconds": seconds, "startup": startup, "cpu": result.worker_cpu_seconds, "worker_peak_rss": sorted(result.worker_peak_rss.values()),
            "keys": _keys_digest({row["path"]: [c["key"] for c in row["causes"]] for row in rows}),
            "causes": len(result.causes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--failures", type=int, default=200)
    parser.add_argument("--passed", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from kb.store import open_store

    with tempfile.TemporaryDirectory(prefix="kb-bench-batch-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        paths = make_archive(folder / "archive", args.files, args.failures, args.passed)
        size = sum(os.path.getsize(p) for p in paths)
        print(f"generated {len(paths)} reports ({size / 2**20:.0f} MiB, {args.failures} failures and "
              f"{args.passed} passed tests each) in {time.perf_counter() - started:.1f} s", flush=True)
        db = str(folder / "kb.sqlite")
        open_store(db).close()  # created and seeded once, outside every measurement
        listing = folder / "files.txt"
        listing.write_text("\n".join(paths), encoding="utf-8")
        pattern = str(folder / "archive" / "*" / "*.xml")

        variants = ["loop", "in-process", "batch-1", "batch-2"]
        results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        loads = [os.getloadavg()[0]]
        for round_ in range(args.rounds):
            for variant in variants if round_ % 2 == 0 else variants[::-1]:
                if variant.startswith("batch"):
                    found = run_batch(int(variant[-1]), pattern, folder / f"{variant}.jsonl", db)
                else:
                    found = run_child(variant, listing, db)
                results[variant].append(found)
                print(f"round {round_ + 1} {variant:10} {found['seconds']:7.1f} s "
                      f"{len(paths) / found['seconds']:7.1f} files/s  CPU {found['cpu']:7.1f} s", flush=True)
                loads.append(os.getloadavg()[0])

        digests = {v: {r["keys"] for r in rs} for v, rs in results.items()}
        same = len(set().union(*digests.values())) == 1
        if not same:
            print("causes per file differ: " + "; ".join(f"{v}: {', '.join(r['keys'] for r in rs)}"
                                                         for v, rs in results.items()))
        loop = statistics.median(r["seconds"] for r in results["loop"])
        print()
        print(f"{len(paths)} files, {args.rounds} round(s), {os.cpu_count()} cores, load average (1 min) "
              f"{min(loads):.2f}–{max(loads):.2f}; every variant found the same causes per file: {same}")
        print()
        print("| variant | median s | files/s | speed-up vs loop | CPU ms/file | peak RSS |")
        print("|---|---:|---:|---:|---:|---|")
        for variant in variants:
            rs = results[variant]
            seconds = statistics.median(r["seconds"] for r in rs)
            if variant.startswith("batch"):
                peaks = [p for r in rs for p in r["worker_peak_rss"]]
                memory = f"per worker: {max(peaks) / 2**20:.0f} MiB max" if peaks else "n/a"
                memory += f" (cluster start-up {statistics.median(r['startup'] for r in rs):.1f} s, not timed)"
            else:
                memory = f"process: {max(r['peak_rss'] for r in rs) / 2**20:.0f} MiB"
            cpu = statistics.median(r["cpu"] for r in rs) * 1000 / len(paths)
            print(f"| {variant} | {seconds:.1f} | {len(paths) / seconds:.1f} | {loop / seconds:.2f}× | {cpu:.1f} | "
                  f"{memory} |")
        print()
        print("all rounds (s): " + "; ".join(f"{v} " + ", ".join(f"{r['seconds']:.1f}" for r in rs)
                                            for v, rs in results.items()))


if __name__ == "__main__":
    main()
