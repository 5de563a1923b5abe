"""Time planning fixes over a generated project (issue 13): LibCST codemods against the plain parse floor.

    python benchmarks/bench_plan.py [--files 400] [--out DIR]

Generates a project of FILES modules (about 120 lines each; one in eight uses removed APIs kb fixes:
``collections.Mapping``, ``np.float``, ``yaml.load`` without Loader, ``inspect.getargspec``), then times, in
this process, ``kb.fix.plan_fix`` for a report with those four causes against the floor — reading and
``ast.parse``-ing every file once. Prints medians of 5 runs and the ratio. For an A/B against another
checkout of kb, run this script from each with farm-bench (``--plan-only`` prints nothing but plans once).
"""

from __future__ import annotations

import argparse
import ast
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BODY = '''"""Module {n}."""
import inspect
import numpy as np
import yaml
from collections import OrderedDict{extra_import}


class Thing{n}:
    def __init__(self, value):
        self.value = value
        self.items = OrderedDict()

    def load(self, stream):
        return {load}

    def names(self, func):
        {spec}
        return args
'''
FILLER = "\n\ndef helper_{n}_{i}(x, y=1):\n    total = 0\n    for k in range(x):\n        total += k * y\n    return total\n"


def generate(root: Path, files: int) -> None:
    for n in range(files):
        broken = n % 8 == 0
        text = BODY.format(
            n=n, extra_import=", Mapping" if broken else "",
            load="yaml.load(stream)" if broken else "yaml.safe_load(stream)",
            spec=("args, varargs, keywords, defaults = inspect.getargspec(func)" if broken
                  else "args = inspect.signature(func).parameters"),
        ) + "".join(FILLER.format(n=n, i=i) for i in range(14))
        if broken:
            text += "\n\nFLOAT = np.float\n"
        path = root / "pkg" / f"mod_{n:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _cause(key: str, template: str, params: dict) -> dict:
    return {"key": key, "rule": key, "title": key, "confidence": 0.9, "tests": [], "neighbours": [],
            "remedies": [{"kind": "code-edit", "template": template, "risk": "low", "description": key,
                          "params": params}]}


REPORT = {"root_causes": [
    _cause("mapping", "replace-import", {"module": "collections", "name": "Mapping", "new_module": "collections.abc"}),
    _cause("np-float", "rename-attribute", {"old": "np.float", "new": "float"}),
    _cause("yaml-load", "add-kwarg", {"callable": "yaml.load", "param": "Loader", "value": "yaml.FullLoader"}),
    _cause("getargspec", "rename-attribute", {"old": "getargspec", "new": "getfullargspec", "arity": 4}),
]}


def floor(root: Path) -> None:
    for path in sorted(root.rglob("*.py")):
        ast.parse(path.read_bytes())


def plan(root: Path) -> int:
    from kb.fix import plan_fix

    return sum(len(p.edits) for p in plan_fix(REPORT, root).plans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--plan-only", action="store_true")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="kb-bench-plan-"))
    if not (root / "pkg").is_dir():
        generate(root, args.files)
    if args.plan_only:
        plan(root)
        return
    edits = plan(root)  # warm-up (imports)
    timings: dict[str, list[float]] = {"floor": [], "plan": []}
    for _ in range(5):
        for name, func in (("floor", floor), ("plan", plan)):
            started = time.perf_counter()
            func(root)
            timings[name].append(time.perf_counter() - started)
    a, b = statistics.median(timings["plan"]), statistics.median(timings["floor"])
    print(f"{args.files} files, {edits} edits planned")
    print(f"plan_fix {a:.3f} s, read + ast.parse floor {b:.3f} s: {a / b:.1f}x (medians of 5)")


if __name__ == "__main__":
    main()
