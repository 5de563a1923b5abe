"""Generate benchmark inputs: a big pytest JUnit report and synthetic rule packs.

    python benchmarks/generate.py report OUT.xml --failures 20000 [--passed 0]
    python benchmarks/generate.py pack OUT.yaml --rules 10000

The report mixes failures kb knows (removed stdlib APIs), near misses (names no row knows)
and plain assertion failures, each with a realistic pytest long traceback, so every stage
of ``kb diagnose`` does real work. Seeded: the same arguments give the same bytes.
"""

from __future__ import annotations

import argparse
import random
from xml.sax.saxutils import escape, quoteattr

KNOWN = [
    ("ImportError", "cannot import name 'Mapping' from 'collections' (/usr/lib/python3.11/collections/__init__.py)"),
    ("TypeError", "Lock.__init__() got an unexpected keyword argument 'loop'"),
    ("ModuleNotFoundError", "No module named 'pkg_resources'"),
    ("AttributeError", "module 'inspect' has no attribute 'getargspec'"),
]


def _failure(rng: random.Random, i: int) -> tuple[str, str]:
    roll = rng.random()
    if roll < 0.25:
        return KNOWN[i % len(KNOWN)]
    if roll < 0.45:
        return "ImportError", f"cannot import name 'Thing{i % 997}' from 'pkg{i % 89}.sub' (unknown location)"
    if roll < 0.6:
        return "AttributeError", f"'Widget{i % 53}' object has no attribute 'attr{i % 211}'"
    if roll < 0.7:
        return "ModuleNotFoundError", f"No module named 'missing_mod_{i % 41}'"
    return "AssertionError", f"assert {i % 1000} == {i % 1000 + 1}"


def _traceback(i: int, exc: str, message: str) -> str:
    return (
        f"def test_case_{i}():\n"
        f">       result = module_{i % 300}.run(value={i})\n\n"
        f"tests/test_module_{i % 300}.py:{10 + i % 90}: \n"
        "_ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _\n\n"
        "    def run(value):\n"
        "        helper = make_helper(value)\n"
        ">       return helper.go()\n"
        f"E       {exc}: {message}\n\n"
        f"pkg/module_{i % 300}.py:{20 + i % 50}: {exc}"
    )


def write_report(path: str, failures: int, passed: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">')
        out.write(f'<testsuite name="pytest" errors="0" failures="{failures}" skipped="0" '
                  f'tests="{failures + passed}" time="1.0">')
        for i in range(failures + passed):
            cls = f"tests.test_module_{i % 300}"
            name = f"test_case_{i}"
            if i >= failures:
                out.write(f'<testcase classname="{cls}" name="{name}" time="0.001"/>')
                continue
            exc, message = _failure(rng, i)
            out.write(f'<testcase classname="{cls}" name="{name}" time="0.002">'
                      f'<failure message={quoteattr(f"{exc}: {message}")}>'
                      f"{escape(_traceback(i, exc, message))}</failure></testcase>")
        out.write("</testsuite></testsuites>\n")


def write_pack(path: str, rules: int) -> None:
    """A valid pack of ``rules`` distinct direct rules, each with its own required literal."""
    exceptions = ["ImportError", "AttributeError", "TypeError", "ValueError", "RuntimeError", "KeyError"]
    with open(path, "w", encoding="utf-8") as out:
        out.write(f'pack: synthetic-{rules}\nversion: "1"\nrules:\n')
        for i in range(rules):
            word = f"synthetic condition {i:05d}"
            exc = exceptions[i % len(exceptions)]
            out.write(
                f"  - id: synthetic-{i:05d}\n"
                f"    title: Synthetic rule {i}\n"
                f"    explanation: Generated for benchmarks.\n"
                f"    source: https://example.org/synthetic/{i}\n"
                f"    prior: 0.4\n"
                f"    match:\n"
                f"      exception: [{exc}]\n"
                f"      regex: \"{word} in (?P<where>[a-z_]+)\"\n"
                f"    symptom: direct\n"
                f"    remedies:\n"
                f"      - {{kind: manual, description: Look at it, risk: medium}}\n"
                f"    examples:\n"
                f"      match: [\"{exc}: {word} in place\"]\n"
                f"      no_match: [\"{exc}: other condition\"]\n"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("out")
    rep.add_argument("--failures", type=int, default=20_000)
    rep.add_argument("--passed", type=int, default=0)
    pack = sub.add_parser("pack")
    pack.add_argument("out")
    pack.add_argument("--rules", type=int, default=10_000)
    args = parser.parse_args()
    if args.what == "report":
        write_report(args.out, args.failures, args.passed)
    else:
        write_pack(args.out, args.rules)


if __name__ == "__main__":
    main()
