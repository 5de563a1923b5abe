"""Measure `kb diagnose` against a plain lxml parse of the same generated report (issue 3).

    python benchmarks/bench_diagnose.py [--failures 20000] [--repeat 5]

Prints, as medians over --repeat runs measured in this same process run:
- (a) the baseline: hardened lxml iterparse of the report with element clearing;
- in-process `kb diagnose` (read + facts + engine + report, --no-record and recorded) ÷ (a);
- the cost with 10,000 rules ÷ with 100 rules;
- whole process: `python -m kb diagnose` ÷ a `python -c` process doing (a);
- peak RSS of the whole `kb diagnose` process (ru_maxrss of the child).
No timing is asserted anywhere; these are figures to quote.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402


def lxml_parse(path: str) -> int:
    """The floor (a): hardened lxml iterparse of every testcase, clearing as it goes."""
    from lxml import etree

    n = 0
    for _event, el in etree.iterparse(path, events=("end",), tag="testcase", resolve_entities=False,
                                      no_network=True, load_dtd=False, huge_tree=False):
        n += 1
        el.clear()
        while el.getprevious() is not None:
            del el.getparent()[0]
    return n


def median_time(func, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def child(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(before, after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failures", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--parse", metavar="REPORT", help="only run the baseline parse (used as a child process)")
    args = parser.parse_args()
    if args.parse:
        print(lxml_parse(args.parse))
        return

    from kb.diagnose import diagnose_run
    from kb.engine import Engine
    from kb.ingest import read_reports
    from kb.rulepack import read_pack
    from kb.store import Store

    work = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    report = work / "report.xml"
    generate.write_report(str(report), args.failures, 0)
    print(f"report: {report} ({report.stat().st_size / 1e6:.1f} MB, {args.failures} failures)")

    stores = {}
    for n in (100, 10_000):
        pack = work / f"pack-{n}.yaml"
        generate.write_pack(str(pack), n)
        store = Store(work / f"kb-{n}.sqlite")
        store.load_pack(read_pack(pack))
        stores[n] = store
        print(f"KB with {n} synthetic rules + built-in packs: {store.counts()['rules']} rules")

    base = median_time(lambda: lxml_parse(str(report)), args.repeat)
    print(f"(a) lxml iterparse baseline: {base:.3f} s")

    def diag(n: int, record: bool) -> None:
        run = read_reports([str(report)])
        diagnose_run(run, stores[n], record=record, engine=None)

    results = {}
    for n in (100, 10_000):
        for record in (False, True):
            t = median_time(lambda: diag(n, record), args.repeat)
            results[(n, record)] = t
            label = "recorded" if record else "--no-record"
            print(f"kb diagnose in-process, {n:>6} rules, {label:11}: {t:.3f} s = {t / base:.2f} × (a)")
    print(f"rules 10,000 ÷ 100 (--no-record): {results[(10_000, False)] / results[(100, False)]:.2f}")
    print(f"rules 10,000 ÷ 100 (recorded):    {results[(10_000, True)] / results[(100, True)]:.2f}")

    # whole process
    base_cmd = [sys.executable, str(Path(__file__).resolve()), "--parse", str(report)]
    kb_cmd = [sys.executable, "-m", "kb", "diagnose", str(report), "--db", str(work / "kb-100.sqlite"),
              "--no-record", "--format", "json", "-o", str(work / "out.json")]
    base_walls, kb_walls, peak = [], [], 0
    for _ in range(args.repeat):
        base_walls.append(child(base_cmd)[0])
        wall, rss = child(kb_cmd)
        kb_walls.append(wall)
        peak = max(peak, rss)
    bw, kw = statistics.median(base_walls), statistics.median(kb_walls)
    print(f"whole process: baseline {bw:.3f} s, kb diagnose {kw:.3f} s = {kw / bw:.2f} × baseline process")
    print(f"peak RSS of the processes: {peak / 1024:.0f} MiB (goal ≤ 300 MiB)")
    # Engine construction alone, to see how the index scales
    for n in (100, 10_000):
        rules = stores[n].rules()
        t = median_time(lambda: Engine(rules), args.repeat)
        print(f"Engine index build with {len(rules)} rules: {t * 1000:.1f} ms")


if __name__ == "__main__":
    main()
