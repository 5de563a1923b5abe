"""Test runs in an exact order, read back structured, through kb's order plugin (:mod:`kb.run.order_plugin`).

``run_order(ids, root, command)`` runs those node ids in that order with the user's pytest command and
returns each test's outcome; ``collect_order(command, root)`` is the order the command would run its
tests in. The command keeps its options and the project's ``addopts``; its own path selection is
replaced by the files of the ids (so pytest collects only what the probe needs and the order file picks
and orders the items). kb never appends node ids and never parses the terminal output.

The plugin is one file that needs only pytest: it is copied into a temporary folder that goes first on
``PYTHONPATH``, so it loads (``-p _kb_order``) in any interpreter the command names, kb installed there
or not. pytest-randomly is switched off (``-p no:randomly``): the order file is the order.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FixError
from .command import DEFAULT_TIMEOUT, execute, without_selection

__all__ = ["OrderRun", "run_order", "collect_order", "read_outcomes", "plugin_env", "PLUGIN", "PLUGIN_ARGS"]

PLUGIN = "_kb_order"
#: what every run through the plugin adds to the command
PLUGIN_ARGS = ("-p", PLUGIN, "-p", "no:randomly", "-p", "no:cacheprovider")
_plugin_dir: str | None = None


def plugin_env() -> dict[str, str]:
    """``PYTHONPATH`` with the folder holding the plugin first (the folder lives as long as this process)."""
    global _plugin_dir
    if _plugin_dir is None or not Path(_plugin_dir, f"{PLUGIN}.py").exists():
        _plugin_dir = tempfile.mkdtemp(prefix="kb-order-")
        atexit.register(shutil.rmtree, _plugin_dir, True)
        shutil.copyfile(Path(__file__).with_name("order_plugin.py"), Path(_plugin_dir, f"{PLUGIN}.py"))
    rest = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": _plugin_dir + (os.pathsep + rest if rest else "")}


@dataclass
class OrderRun:
    """What one run through the plugin showed."""

    command: list[str]
    returncode: int | None
    output: str
    outcomes: dict[str, str] = field(default_factory=dict)  # node id -> passed | failed | skipped
    collected: list[str] = field(default_factory=list)  # the ids in the order they ran
    missing: list[str] = field(default_factory=list)  # ids asked for that pytest did not collect
    seed: int | None = None  # pytest-randomly's seed, when that plugin was active
    workers: dict[str, str] = field(default_factory=dict)  # node id -> xdist worker
    state: list[dict[str, Any]] | None = None  # what --kb-state-around's test changed
    problem: str | None = None

    def failed(self, test: str) -> bool | None:
        """Whether ``test`` failed (None: it did not run)."""
        outcome = self.outcomes.get(test)
        return None if outcome is None else outcome == "failed"


def read_outcomes(path: Path, result: OrderRun | None = None) -> OrderRun:
    """The plugin's records in ``path`` (into ``result``, or a new OrderRun)."""
    result = result if result is not None else OrderRun([], None, "")
    if not path.exists():
        return result
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        kind = record.get("type")
        if kind == "collected":
            result.collected, result.seed = list(record.get("ids") or []), record.get("seed")
        elif kind == "missing":
            result.missing.append(str(record.get("nodeid")))
        elif kind == "test":
            result.outcomes[str(record.get("nodeid"))] = str(record.get("outcome"))
            if record.get("worker"):
                result.workers[str(record["nodeid"])] = str(record["worker"])
        elif kind == "state":
            result.state = list(record.get("changes") or [])
    return result


def _files_of(ids: Sequence[str], root: str | Path) -> list[str]:
    files = list(dict.fromkeys(i.split("::", 1)[0] for i in ids))
    return files if all(Path(root, f).is_file() for f in files) else []


def run_order(ids: Sequence[str], root: str | Path, command: Sequence[str], timeout: float = DEFAULT_TIMEOUT,
              *, state_around: str | None = None, seed: int | None = None) -> OrderRun:
    """Run ``ids`` in exactly that order (see the module docstring). With ``seed`` (a recorded run's
    pytest-randomly seed) pytest-randomly stays on with that seed, for the random state it resets before
    each test; the order is still the file's (kb's plugin orders last)."""
    with tempfile.TemporaryDirectory(prefix="kb-probe-") as tmp:
        order, outcomes = Path(tmp, "order.txt"), Path(tmp, "outcomes.jsonl")
        order.write_text("".join(f"{i}\n" for i in ids), "utf-8")
        plugin = [*PLUGIN_ARGS] if seed is None else ["-p", PLUGIN, "-p", "no:cacheprovider", f"--randomly-seed={seed}"]
        cmd = [*without_selection(list(command), root), *plugin, f"--kb-order={order}", f"--kb-outcomes={outcomes}"]
        if state_around:
            cmd.append(f"--kb-state-around={state_around}")
        cmd += _files_of(ids, root)
        status, output, _, problem, killed = execute(cmd, root, timeout, None, plugin_env())
        if status is None and not killed:
            raise FixError(f"test command {command[0]}: {problem}")
        result = OrderRun(cmd, status, output, problem=problem)
        read_outcomes(outcomes, result)
        return result


def collect_order(command: Sequence[str], root: str | Path, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """The node ids the command runs, in the order it runs them (collected through the plugin, so the
    project's ``addopts`` — ``--verbose``, say — change nothing)."""
    with tempfile.TemporaryDirectory(prefix="kb-collect-") as tmp:
        outcomes = Path(tmp, "outcomes.jsonl")
        cmd = [*command, *PLUGIN_ARGS, f"--kb-outcomes={outcomes}", "--collect-only", "-q"]
        status, output, _, problem, _ = execute(cmd, root, timeout, None, plugin_env())
        if problem:
            raise FixError(f"collecting the tests: {problem}")
        result = OrderRun(cmd, status, output)
        read_outcomes(outcomes, result)
        if not result.collected and status not in (0, 5):
            raise FixError(f"collecting the tests failed (exit {status}): "
                           + " ".join(output.strip().splitlines()[-1:]))
        return result.collected
