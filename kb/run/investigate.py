"""``kb isolate`` through real runs: where the failing order comes from, the probes, the state the polluter
(or setter) changes, and a reproducer that is checked before it is printed.

The order, in this order of preference: ``--order-file FILE`` (one node id per line, ``#`` comments);
a recorded run (``--run ID``; without either, the last recorded run in this folder in which the test
failed — ``kb run`` records the order its tests executed in, pytest-randomly's seed and each test's
xdist worker); else the command's collection order. Under xdist only the tests of the target's worker
count: they are the ones that shared its process. Every probe goes through kb's order plugin
(:mod:`kb.run.ordered`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FixError
from ..models import Run
from .command import DEFAULT_TIMEOUT, without_selection
from .isolate import Verdict, find_cleaners, isolate, reconsider
from .orchestrate import run_tests
from .ordered import collect_order, run_order

__all__ = ["Order", "order_for", "isolate_test", "Isolation", "reproducer"]

#: environment variables that change how a pytest run behaves, carried into the reproducer when set
REPRODUCER_ENV = ("PYTHONPATH", "PYTHONHASHSEED", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")


@dataclass
class Order:
    tests: list[str]
    source: str  # in words, for the output
    seed: int | None = None
    failed: bool = False  # the target is known to have failed in this order (an order file, a recorded run)


def _read_order_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read(16 * 1024 * 1024).splitlines()
    except OSError as exc:
        raise FixError(f"{path}: cannot read the order file: {exc.strerror or exc}") from None
    tests = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not tests:
        raise FixError(f"{path}: the order file names no test (one node id per line)")
    return tests


def _recorded(store: Any, run_id: int, target: str) -> Order:
    doc = store.run_order(run_id)
    if doc is None:
        raise FixError(f"run {run_id}: kb has no test order for it (record one with kb run -- python -m pytest)")
    tests = list(doc["tests"])
    worker = doc["workers"].get(target) or next(
        (w for t, w in doc["workers"].items() if t.endswith(target)), None)
    if worker:
        tests = [t for t in tests if doc["workers"].get(t) == worker]
    seed = doc.get("seed")
    what = f"recorded run {run_id}" + (f" (pytest-randomly seed {seed})" if seed is not None else "")
    return Order(tests, what + (f", xdist worker {worker}" if worker else ""), seed, failed=True)


def order_for(target: str, root: str | Path, command: Sequence[str], store: Any, *, order_file: str | None = None,
              run_id: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> Order:
    """The order the target failed in (see the module docstring)."""
    if order_file:
        return Order(_read_order_file(order_file), f"order file {order_file}", failed=True)
    if run_id is not None:
        return _recorded(store, run_id, target)
    last = store.last_failing_order(target, str(Path(root).resolve()))
    if last is not None:
        return _recorded(store, last, target)
    return Order(collect_order(command, root, timeout), "the command's collection order")


def _resolve(target: str, tests: list[str], source: str) -> str:
    if target in tests:
        return target
    near = [t for t in tests if t.endswith(target) or target.endswith(t)]
    if len(near) != 1:
        raise FixError(f"{target}: not among the {len(tests)} tests of {source}")
    return near[0]


@dataclass
class Isolation:
    verdict: Verdict
    order: Order
    before: int  # tests before the target in that order
    alone: Run | None = None  # the target's own failure (deterministic verdicts), for the diagnosis
    reproduce: str = ""
    reproduced: str = ""  # what running the reproducer from a plain shell showed
    notes: list[str] = field(default_factory=list)
    guard: dict[str, list[str]] = field(default_factory=dict)  # the module's tests a fix must leave passing


def isolate_test(target: str, root: str | Path, command: Sequence[str], store: Any, *, order_file: str | None = None,
                 run_id: int | None = None, repeat: int = 3, timeout: float = DEFAULT_TIMEOUT,
                 progress: Callable[[str, int], None] | None = None, max_polluters: int | None = None) -> Isolation:
    """Progressive isolation of one test through real runs (:func:`kb.run.isolate.isolate`)."""
    command = list(command)
    order = order_for(target, root, command, store, order_file=order_file, run_id=run_id, timeout=timeout)
    target = _resolve(target, order.tests, order.source)
    at = order.tests.index(target)
    before, after = order.tests[:at], order.tests[at + 1:]
    missing: set[str] = set()
    states: dict[str, list[dict[str, Any]]] = {}

    def probe(tests: list[str]) -> bool:
        # a probe with one test before the target also snapshots the state that test changes: the polluter's
        # (or setter's) confirmation run tells what it leaves behind at no extra run
        around = tests[0] if len(tests) == 2 else None
        result = run_order(tests, root, command, timeout, seed=order.seed, state_around=around)
        missing.update(result.missing)
        if around is not None and result.state is not None:
            states[around] = result.state
        state = result.failed(target)
        if state is None:
            last = " ".join(result.output.strip().splitlines()[-1:])
            raise FixError(f"{target} did not run ({shlex.join(result.command[:3])} …): {last}")
        return state

    verdict = isolate(target, probe, before, after=after, repeat=repeat, progress=progress,
                      max_polluters=max_polluters, cleaners=False, failed_in_order=order.failed)
    done = Isolation(verdict, order, len(before))
    others = verdict.polluters if verdict.kind == "order-dependent" else verdict.providers
    verdict.state = _merged([states.get(other, []) for other in others])
    if verdict.kind == "order-dependent" and not _fixable(verdict.state):
        find_cleaners(verdict, probe, [*before, *after], repeat)  # the other way to heal it
    if verdict.kind in ("order-dependent", "needs-setup", "deterministic", "flaky"):
        done.reproduce, done.reproduced, failed = check_reproducer(command, root, verdict.reproducer, order.seed,
                                                                   timeout)
        verdict.by_step["reproducer check"] = 1
        if failed is False and verdict.kind != "flaky" and reconsider(verdict, probe, repeat):
            done.reproduce, done.reproduced, _ = check_reproducer(command, root, verdict.reproducer, order.seed,
                                                                  timeout)
    if verdict.kind in ("order-dependent", "needs-setup") and _fixable(verdict.state):
        done.guard = _guard(target, root, command, timeout)
    if verdict.kind == "deterministic":
        done.alone = run_tests([target], root, without_selection(command, root), timeout).run
    if missing:
        done.notes.append(f"{len(missing)} test(s) of the order were not collected and did not run")
    return done


def _merged(states: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The changes of several polluters (or setters), in their order: per thing changed, the value before the
    first and after the last."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for state in states:
        for change in state:
            key = (change.get("kind"), change.get("module"), change.get("name"))
            if key in merged:
                merged[key]["after"] = change.get("after")
            else:
                merged[key] = dict(change)
    return [c for c in merged.values() if c.get("before") != c.get("after") or c.get("kind") == "module"]


def _fixable(state: list[dict[str, Any]]) -> bool:
    """Whether the state a polluter or setter changes holds something kb's isolation fixture can set."""
    return any(c.get("kind") in ("global", "environ") for c in state)


def _guard(target: str, root: str | Path, command: Sequence[str], timeout: float) -> dict[str, list[str]]:
    """The target's module in its usual (collection) order and the tests that pass there: a fix kb offers must
    leave them passing (two runs: collecting the module, running it)."""
    module = target.split("::", 1)[0]
    if not Path(root, module).is_file():
        return {}
    try:
        order = [t for t in collect_order([*without_selection(list(command), root), module], root, timeout)
                 if t.split("::", 1)[0] == module]
        done = run_order(order, root, command, timeout)
    except FixError:
        return {}
    return {"order": order, "passed": [t for t in order if done.outcomes.get(t) == "passed"]}


def reproducer(command: Sequence[str], root: str | Path, tests: Sequence[str], seed: int | None = None) -> str:
    """``cd ROOT && [ENV=…] COMMAND … IDS``: pasted into a shell it runs ``tests`` in that order with the
    command's interpreter (an absolute path), the variables that change a pytest run, and no random order."""
    command = without_selection(list(command), root)
    command[0] = _real_program(command[0])
    env = [f"{name}={shlex.quote(os.environ[name])}" for name in REPRODUCER_ENV if os.environ.get(name)]
    # with a recorded seed pytest-randomly stays on for the random state it seeds, but must not reorder the ids
    randomly = ["-p", "no:randomly"] if seed is None else [f"--randomly-seed={seed}", "--randomly-dont-reorganize"]
    return " ".join([f"cd {shlex.quote(str(Path(root).resolve()))} &&", *env,
                     shlex.join([*command, "-p", "no:cacheprovider", *randomly, *tests])])


def _real_program(program: str) -> str:
    """An absolute path for the command's program; for a Python interpreter, the one it really is (a pyenv
    shim or ``python`` on PATH picks an interpreter by the shell's environment, which a pasted line lacks)."""
    found = shutil.which(program) or program
    if Path(program).name.startswith("python"):
        try:
            done = subprocess.run([found, "-c", "import sys; print(sys.executable)"], capture_output=True,
                                  text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return found
        executable = done.stdout.strip()
        if done.returncode == 0 and executable and os.path.isabs(executable):
            return executable
    return found


def check_reproducer(command: Sequence[str], root: str | Path, tests: Sequence[str], seed: int | None,
                     timeout: float) -> tuple[str, str, bool | None]:
    """The reproducer, what running it once from a plain shell (``env -i`` with only PATH and HOME) showed,
    and whether it failed (None: it could not run) — it must fail, since it shows the failure."""
    text = reproducer(command, root, tests, seed)
    plain = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    try:
        done = subprocess.run(["/bin/sh", "-c", text], env=plain, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return text, f"could not be checked: {exc}", None
    if done.returncode == 1:
        return text, "checked: run once from a plain shell, it fails as shown", True
    if done.returncode == 0:
        return text, "run once from a plain shell it passed: the failure did not show", False
    return text, f"run once from a plain shell it exited {done.returncode}, not with a test failure (1)", None
