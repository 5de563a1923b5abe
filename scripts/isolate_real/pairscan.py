"""Ground truth for one order-dependent test: run it after every other test, one pair at a time.

For a victim (passes alone): its polluters are the tests T for which `pytest T VICTIM` fails it.
For a brittle test (fails alone): its setters are the tests T for which `pytest T BRITTLE` passes it.
Each pair is one pytest session (-p no:randomly -p no:cacheprovider), ids in argument order,
which pytest keeps. Outcomes are read from a JUnit XML file, not from the terminal.

usage: pairscan.py --python PY --cwd DIR --victim ID [--opt ARG ...] [--json OUT] PATH...
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

BASE = ["-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]


def collect(python: str, cwd: str, paths: list[str], opts: list[str] = (), env: dict | None = None) -> list[str]:
    """The node ids pytest collects, in collection order (--verbosity=-1 beats a verbose addopts)."""
    out = subprocess.run([python, *BASE, "--collect-only", "--verbosity=-1", *opts, *paths],
                         cwd=cwd, capture_output=True, text=True, env=env).stdout
    return [line.strip() for line in out.splitlines() if "::" in line and not line.startswith(" ")]


def _classname(node_id: str) -> str:
    parts = node_id.split("::")
    return parts[0][:-3].replace("/", ".") + "".join("." + p for p in parts[1:-1])


def victim_passed(python: str, cwd: str, ids: list[str], victim: str, opts: list[str] = (),
                  env: dict | None = None, timeout: float = 600) -> bool | None:
    """Run IDS in this order in one pytest session; did VICTIM pass (None: it did not run)?"""
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "r.xml")
        subprocess.run([python, *BASE, "-qq", f"--junitxml={xml}", "-o", "junit_family=xunit2", *opts, *ids],
                       cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
        if not os.path.exists(xml):
            return None
        name, classname = victim.split("::")[-1], _classname(victim)
        cases = [c for c in ET.parse(xml).iter("testcase")
                 if c.get("name") == name and c.get("classname") == classname]
        if not cases:
            return None
        return not any(cases[-1].find(t) is not None for t in ("failure", "error"))


def failures(python: str, cwd: str, args: list[str], env: dict | None = None, timeout: float = 1200) -> set[str]:
    """The tests (classname::name, from JUnit XML) that fail or error in one pytest run of ARGS."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "r.xml")
        subprocess.run([python, *BASE, "-qq", f"--junitxml={xml}", "-o", "junit_family=xunit2", *args],
                       cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
        if not os.path.exists(xml):
            return {"<no report>"}
        return {f"{c.get('classname')}::{c.get('name')}" for c in ET.parse(xml).iter("testcase")
                if any(c.find(t) is not None for t in ("failure", "error"))}


def scan(python: str, cwd: str, victim: str, paths: list[str], opts: list[str] = (),
         env: dict | None = None) -> dict:
    ids = collect(python, cwd, paths, opts, env)
    if victim not in ids:
        raise SystemExit(f"victim not collected ({len(ids)} ids)")
    alone = victim_passed(python, cwd, [victim], victim, opts, env)
    kind = "victim" if alone else "brittle"
    found = []
    others = [t for t in ids if t != victim]
    for i, t in enumerate(others, 1):
        ok = victim_passed(python, cwd, [t, victim], victim, opts, env)
        if (ok is False) if kind == "victim" else (ok is True):
            found.append(t)
        if sys.stderr.isatty():
            print(f"\r{i}/{len(others)} found {len(found)}", end="", file=sys.stderr, flush=True)
    return {"victim": victim, "alone_passed": alone, "kind": kind, "tests": len(ids),
            ("polluters" if kind == "victim" else "setters"): found}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--python", required=True)
    ap.add_argument("--cwd", required=True)
    ap.add_argument("--victim", required=True)
    ap.add_argument("--opt", action="append", default=[], help="a pytest option put before the ids")
    ap.add_argument("--json")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args(argv)
    result = scan(a.python, a.cwd, a.victim, a.paths, a.opt)
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
