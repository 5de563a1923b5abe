"""Measure `kb diagnose` against a plain lxml parse of the same generated report (issues 3 and 18).

    python benchmarks/bench_diagnose.py [--failures 20000] [--repeat 5]

Prints, as medians over --repeat rounds measured in this same process run, every figure issue 18's
"Done when" names for item 1:
- (a) the baseline: hardened lxml iterparse of the report with element clearing (and (a'): the same
  parse reading every failure's message and text);
- in-process `kb diagnose` (read + facts + engine + report; --no-record and recorded) ÷ (a), with 100 and
  with 10,000 synthetic rules, and the growth 10,000 ÷ 100;
- whole process: `python -m kb diagnose` ÷ a `python` process doing (a), with 100 and 10,000 rules,
  in wall time and in CPU time (user + system of the child: less disturbed by other load on the machine);
- peak RSS of each whole `kb diagnose` process (its own VmHWM) beside the baseline process's;
- where in-process `kb diagnose` spends its time, stage by stage (read, facts, engine, build), × (a), and
  the lower bound those stages set: (a'') + engine + build, what kb would cost with a reader no dearer
  than keeping one tuple per failure and a traceback parser that cost nothing.

Each round runs the baseline and every kb variant one after the other, so a change of load on a shared
machine hits both sides of a ratio alike. The first in-process round of each KB also builds the compiled
rule index (later rounds reuse it, as any process diagnosing several runs does); it is quoted apart.
No timing is asserted anywhere; these are figures to quote.

    python benchmarks/bench_diagnose.py --dump-corpus OUT.json

writes the report document of every file of tests/corpus instead (run once before and once after a
change that must not alter any report, then compare the two files: ``cmp before.json after.json``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import generate  # noqa: E402

RULES = (100, 10_000)


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


def lxml_parse_keeping_failures(path: str) -> list[tuple[str, ...]]:
    """(a''): the same parse keeping one tuple per failing testcase (its id, message, type and text): the
    least a reader costs that hands each failure on as an object, before any check, fact or match."""
    from lxml import etree

    kept: list[tuple[str, ...]] = []
    for _event, el in etree.iterparse(path, events=("end",), tag="testcase", resolve_entities=False,
                                      no_network=True, load_dtd=False, huge_tree=False):
        for child in el:
            if child.tag in ("failure", "error"):
                kept.append((f"{el.get('classname')}::{el.get('name')}", child.get("message") or "",
                             child.get("type") or "", child.text or ""))
        el.clear()
        while el.getprevious() is not None:
            del el.getparent()[0]
    return kept


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def peak_kib() -> int:
    """This process's own peak RSS (VmHWM). ru_maxrss is not used: it survives exec and would
    count the memory of the forking parent."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))


def child(cmd: list[str], report_to: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (KiB) of one child process, which writes
    its VmHWM to ``report_to``."""
    before = os.times()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, int(report_to.read_text())


def dump_corpus(out: Path) -> None:
    """Every file of tests/corpus diagnosed against one fresh KB (not recorded): its report document, or
    the error kb gives for it, by path. The same bytes before and after a change means no report changed."""
    import json

    from kb.diagnose import diagnose
    from kb.errors import KbError

    corpus = HERE.parent / "tests" / "corpus"
    docs: dict[str, dict[str, object]] = {}
    refused = 0
    with tempfile.TemporaryDirectory(prefix="kb-corpus-") as work:
        for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
            try:
                docs[str(path.relative_to(corpus))] = diagnose([path], db=Path(work) / "kb.sqlite", record=False)
            except KbError as exc:
                docs[str(path.relative_to(corpus))] = {"error": str(exc)}
                refused += 1
    out.write_text(json.dumps(docs, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"{out}: {len(docs)} files, {len(docs) - refused} diagnosed, {refused} refused")


def stages(report: str, db: Path, repeat: int, base: list[float]) -> None:
    """Where in-process `kb diagnose --no-record` spends its time, stage by stage (medians, ms and × (a)),
    beside (a), (a') and (a'') measured in the same rounds: reading the report into a Run, the failure facts (each
    failure's traceback parsed: its exception, message, frames and location), the engine (stage-1 matching,
    owner facts, stage 2) and building the report document."""
    import gc

    from kb import diagnose as kd
    from kb.engine import Engine
    from kb.facts import failures_from_run
    from kb.ingest import read_reports
    from kb.store import open_store

    names = ("(a')", "(a'')", "read", "facts", "engine", "build")
    spent: dict[str, list[float]] = {name: [] for name in names}
    store = open_store(db)
    try:
        for _ in range(repeat):
            was = gc.isenabled()
            gc.disable()  # as kb.diagnose does
            try:
                spent["(a')"].append(timed(lambda: lxml_parse_reading_failures(report)))
                spent["(a'')"].append(timed(lambda: lxml_parse_keeping_failures(report)))
                t0 = time.perf_counter()
                run = read_reports([report])
                t1 = time.perf_counter()
                failures = failures_from_run(run)
                t2 = time.perf_counter()
                engine = Engine.cached(store.rules_digest(), store.rules)
                result = engine.run(failures, store, {k.lower(): v for k, v in run.environment.items()},
                                    owners=kd.owner_resolver(failures, run, store))
                t3 = time.perf_counter()
                kd.build_report(run, failures, result, None)
                t4 = time.perf_counter()
            finally:
                if was:
                    gc.enable()
            for name, took in zip(names[2:], (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                spent[name].append(took)
    finally:
        store.close()
    a = statistics.median(base)
    print("stages of in-process kb diagnose --no-record (100 rules), median ms and × (a):")
    for name in names:
        t = statistics.median(spent[name])
        print(f"  {name:7} {t * 1000:7.1f} ms  {t / a:5.2f} ×")
    total = sum(statistics.median(spent[name]) for name in names[2:])
    print(f"  {'sum':7} {total * 1000:7.1f} ms  {total / a:5.2f} ×")
    # what kb would cost if reading cost no more than (a'') and parsing every traceback cost nothing:
    # the floor the 3× target is up against while the engine's work stays per distinct symptom
    bound = sum(statistics.median(spent[name]) for name in ("(a'')", "engine", "build"))
    print(f"  lower bound with the reader at (a'') and free traceback facts: (a'') + engine + build = "
          f"{bound * 1000:.1f} ms  {bound / a:.2f} ×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--failures", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--parse", metavar="REPORT", help="only run the baseline parse (used as a child process)")
    parser.add_argument("--peak-to", metavar="FILE", help="child mode: write this process's peak RSS here at exit")
    parser.add_argument("--kb", nargs=argparse.REMAINDER, help="child mode: run `kb` with these arguments")
    parser.add_argument("--dump-corpus", metavar="OUT", help="write every tests/corpus file's report document")
    args = parser.parse_args()
    if args.dump_corpus:
        dump_corpus(Path(args.dump_corpus))
        return
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
    from kb.store import SqliteStore

    work = Path(tempfile.mkdtemp(prefix="kb-bench-"))
    report = work / "report.xml"
    generate.write_report(str(report), args.failures, 0)
    print(f"report: {report} ({report.stat().st_size / 1e6:.1f} MB, {args.failures} failures)")

    for n in RULES:
        pack = work / f"pack-{n}.yaml"
        generate.write_pack(str(pack), n)
        with SqliteStore(work / f"kb-{n}.sqlite") as store:
            store.load_pack(read_pack(pack))
            print(f"KB with {n} synthetic rules + built-in packs: {store.counts()['rules']} rules")

    # in-process: each round times the baselines and every kb variant back to back
    variants = [(n, record) for n in RULES for record in (False, True)]
    base: list[float] = []
    base2: list[float] = []
    kb: dict[tuple[int, bool], list[float]] = {v: [] for v in variants}
    for _ in range(args.repeat + 1):  # round 0 builds each KB's rule index: quoted apart
        base.append(timed(lambda: lxml_parse(str(report))))
        base2.append(timed(lambda: lxml_parse_reading_failures(str(report))))
        for n, record in variants:
            kb[(n, record)].append(timed(
                lambda n=n, record=record: diagnose([str(report)], db=work / f"kb-{n}.sqlite", record=record)))
    a, a2 = statistics.median(base[1:]), statistics.median(base2[1:])
    print(f"(a) lxml iterparse baseline: {a:.3f} s")
    print(f"(a') lxml iterparse also reading every failure's message and text: {a2:.3f} s")
    median = {v: statistics.median(times[1:]) for v, times in kb.items()}
    for (n, record), t in median.items():
        label = "recorded" if record else "--no-record"
        print(f"kb diagnose in-process, {n:>6} rules, {label:11}: {t:.3f} s = {t / a:.2f} × (a), {t / a2:.2f} × (a')")
    for n in RULES:
        first = kb[(n, False)][0]
        print(f"  first run on the {n}-rule KB (reads the rules, builds the index): {first / base[0]:.2f} × (a)")
    for record in (False, True):
        label = "recorded" if record else "--no-record"
        print(f"rules 10,000 ÷ 100 in-process ({label}): {median[(RULES[1], record)] / median[(RULES[0], record)]:.2f}")

    stages(str(report), work / f"kb-{RULES[0]}.sqlite", args.repeat, base[1:])

    # whole process: the baseline process and `kb diagnose` at each KB size, per round
    me = str(Path(__file__).resolve())
    peak_file = work / "peak.txt"
    commands = {"base": [sys.executable, me, "--peak-to", str(peak_file), "--parse", str(report)]}
    for n in RULES:
        kb_cmd = [sys.executable, me, "--peak-to", str(peak_file), "--kb", "diagnose", str(report),
                  "--db", str(work / f"kb-{n}.sqlite"), "--format", "json", "-o", str(work / "out.json")]
        commands[f"kb-{n}"] = [*kb_cmd, "--no-record"]
        commands[f"rec-{n}"] = kb_cmd
    walls: dict[str, list[float]] = {key: [] for key in commands}
    cpus: dict[str, list[float]] = {key: [] for key in commands}
    peaks: dict[str, int] = dict.fromkeys(commands, 0)
    for _ in range(args.repeat):
        for key, cmd in commands.items():
            wall, cpu, peak = child(cmd, peak_file)
            walls[key].append(wall)
            cpus[key].append(cpu)
            peaks[key] = max(peaks[key], peak)
    bw, bc = statistics.median(walls["base"]), statistics.median(cpus["base"])
    print(f"baseline process: {bw:.3f} s wall, {bc:.3f} s CPU, peak RSS {peaks['base'] / 1024:.0f} MiB")
    for n in RULES:
        for key, label in ((f"kb-{n}", "--no-record"), (f"rec-{n}", "recorded")):
            kw, kc = statistics.median(walls[key]), statistics.median(cpus[key])
            print(f"whole process, {n:>6} rules, {label:11}: kb diagnose {kw:.3f} s = {kw / bw:.2f} × baseline "
                  f"process (CPU {kc / bc:.2f} ×); peak RSS {peaks[key] / 1024:.0f} MiB")
    for key, label in (("kb", "--no-record"), ("rec", "recorded")):
        grow = statistics.median(walls[f"{key}-{RULES[1]}"]) / statistics.median(walls[f"{key}-{RULES[0]}"])
        print(f"rules 10,000 ÷ 100 whole process ({label}): {grow:.2f}")

    # the index alone, to see how it scales
    for n in RULES:
        with SqliteStore(work / f"kb-{n}.sqlite") as store:
            rules = store.rules()
        t = statistics.median(timed(lambda rules=rules: Engine(rules)) for _ in range(args.repeat))
        print(f"Engine index build with {len(rules)} rules: {t * 1000:.1f} ms")


if __name__ == "__main__":
    main()
