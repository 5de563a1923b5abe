"""What the shipped mined pack costs (issue 12): seed time of a new KB and `kb diagnose` time, with
and without it, measured in the same run (medians; ratios against "without").

    python benchmarks/bench_mined_pack.py [--repeat 5] [--failures 20000]

"Without" seeds the built-in packs minus kb/packs/mined-python.json.gz; diagnosis "without" runs
against a KB whose mined rows were deleted, so both sides share everything else. The reports: the
12 real cases of tests/corpus/real (each diagnosed in turn) and a generated report with
--failures failures (benchmarks/generate.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.generate import write_report  # noqa: E402
from kb.diagnose import diagnose  # noqa: E402
from kb.rulepack import builtin_packs  # noqa: E402
from kb.store import SqliteStore  # noqa: E402

MINED = "builtin:mined-python.json.gz"


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def seed_times(tmp: Path, repeat: int) -> tuple[float, float]:
    everything = builtin_packs()
    without = [p for p in everything if p[0] != MINED]
    out = []
    for packs in (everything, without):
        samples = []
        for i in range(repeat):
            path = tmp / f"seed-{len(packs)}-{i}.sqlite"
            with mock.patch("kb.store.builtin_packs", lambda packs=packs: packs):
                started = time.perf_counter()
                SqliteStore(path).close()
                samples.append(time.perf_counter() - started)
        out.append(_median(samples))
    return out[0], out[1]


def diagnose_times(tmp: Path, reports: list[list[Path]], repeat: int) -> tuple[float, float]:
    with_db, without_db = tmp / "with.sqlite", tmp / "without.sqlite"
    SqliteStore(with_db).close()
    with SqliteStore(without_db) as store, store.write():
        store.query("DELETE FROM api_changes WHERE layer = 'mined'")
    out = []
    for db in (with_db, without_db):
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            for paths in reports:
                diagnose(paths, db=db, record=False)
            samples.append(time.perf_counter() - started)
        out.append(_median(samples))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--failures", type=int, default=20000)
    args = parser.parse_args()
    pack = ROOT / "kb" / "packs" / "mined-python.json.gz"
    doc = json.loads(gzip.decompress(pack.read_bytes()))
    libraries = {row["package"] for row in doc["api_changes"]}
    print(f"mined pack: {len(doc['api_changes'])} rows, {len(libraries)} libraries (python = the standard library), "
          f"{pack.stat().st_size / 1024:.0f} KiB compressed")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        with_seed, without_seed = seed_times(tmp, args.repeat)
        print(f"seed a new KB: {with_seed:.2f} s with the mined pack, {without_seed:.2f} s without "
              f"({with_seed / without_seed:.2f}x)")
        real = sorted((ROOT / "tests" / "corpus" / "real").glob("*/report.xml"))
        with_real, without_real = diagnose_times(tmp, [[p] for p in real], args.repeat)
        print(f"diagnose the {len(real)} real cases: {with_real:.3f} s with, {without_real:.3f} s without "
              f"({with_real / without_real:.2f}x)")
        big = tmp / "big.xml"
        write_report(str(big), args.failures, 0)
        with_big, without_big = diagnose_times(tmp, [[big]], max(1, args.repeat // 2))
        print(f"diagnose {args.failures} failures: {with_big:.2f} s with, {without_big:.2f} s without "
              f"({with_big / without_big:.2f}x)")


if __name__ == "__main__":
    main()
