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


def lxml_parse_reading_failures(path: str) -> int:
    """(a'): the same parse, also reading each failure's message and body — what any consumer does."""
    from lxml import etree

    n = 0
    for _event, el in etree.iterparse(path, events=("end",), tag="testcase", resolve_entities=False,
                                      no_network=True, load_dtd=False, huge_tree=False):
        for child in el:
            if child.tag in ("failure", "error"):
                n += len(child.get("message") or "") + len(child.text or "")
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


def peak_kib() -> int:
    """This process's own peak RSS (VmHWM). ru_maxrss is not used: it survives exec and would
    count the memory of the forking parent."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def child(cmd: list[str], report_to: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process, which writes its VmHWM to ``report_to``."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return wall, int(report_to.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failures", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--parse", metavar="REPORT", help="only run the baseline parse (used as a child process)")
    parser.add_argument("--peak-to", metavar="FILE", help="child mode: write this process's peak RSS here at exit")
    parser.add_argument("--kb", nargs=argparse.REMAINDER, help="child mode: run `kb` with these arguments")
    args = parser.parse_args()
    if args.peak_to:
        import atexit

        atexit.register(lambda: Path(args.peak_to).write_text(str(peak_kib())))
    if args.parse:
        print(lxml_parse(args.parse))
        return
    if args.kb is not None:
        from kb.cli import main as kb_main

        kb_main(args.kb)
        return

    from kb.diagnose import diagnose
    from kb.engine import Engine
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
        stores[n] = store  # kept open for the index-build figures below
        print(f"KB with {n} synthetic rules + built-in packs: {store.counts()['rules']} rules")

    base = median_time(lambda: lxml_parse(str(report)), args.repeat)
    print(f"(a) lxml iterparse baseline: {base:.3f} s")
    base2 = median_time(lambda: lxml_parse_reading_failures(str(report)), args.repeat)
    print(f"(a') lxml iterparse also reading every failure's message and text: {base2:.3f} s")

    def diag(n: int, record: bool) -> None:
        diagnose([str(report)], db=work / f"kb-{n}.sqlite", record=record)

    results = {}
    for n in (100, 10_000):
        for record in (False, True):
            t = median_time(lambda n=n, record=record: diag(n, record), args.repeat)
            results[(n, record)] = t
            label = "recorded" if record else "--no-record"
            print(f"kb diagnose in-process, {n:>6} rules, {label:11}: {t:.3f} s = {t / base:.2f} × (a), "
                  f"{t / base2:.2f} × (a')")
    print(f"rules 10,000 ÷ 100 (--no-record): {results[(10_000, False)] / results[(100, False)]:.2f}")
    print(f"rules 10,000 ÷ 100 (recorded):    {results[(10_000, True)] / results[(100, True)]:.2f}")

    # whole process
    me = str(Path(__file__).resolve())
    peak_file = work / "peak.txt"
    base_cmd = [sys.executable, me, "--peak-to", str(peak_file), "--parse", str(report)]
    kb_cmd = [sys.executable, me, "--peak-to", str(peak_file), "--kb", "diagnose", str(report),
              "--db", str(work / "kb-100.sqlite"), "--no-record", "--format", "json", "-o", str(work / "out.json")]
    rec_cmd = [part for part in kb_cmd if part != "--no-record"]
    walls: dict[str, list[float]] = {"base": [], "kb": [], "rec": []}
    peaks: dict[str, int] = {"base": 0, "kb": 0, "rec": 0}
    for _ in range(args.repeat):
        for key, cmd in (("base", base_cmd), ("kb", kb_cmd), ("rec", rec_cmd)):
            wall, peak = child(cmd, peak_file)
            walls[key].append(wall)
            peaks[key] = max(peaks[key], peak)
    bw = statistics.median(walls["base"])
    for key, label in (("kb", "--no-record"), ("rec", "recorded")):
        kw = statistics.median(walls[key])
        print(f"whole process {label:11}: kb diagnose {kw:.3f} s = {kw / bw:.2f} × baseline process ({bw:.3f} s); "
              f"peak RSS {peaks[key] / 1024:.0f} MiB (baseline process {peaks['base'] / 1024:.0f} MiB; goal ≤ 300 MiB)")
    # Engine construction alone, to see how the index scales
    for n in (100, 10_000):
        rules = stores[n].rules()
        t = median_time(lambda rules=rules: Engine(rules), args.repeat)
        print(f"Engine index build with {len(rules)} rules: {t * 1000:.1f} ms")


if __name__ == "__main__":
    main()
