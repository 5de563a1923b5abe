"""kb's order plugin: run the tests in a given order and say, structured, what happened.

Loaded by kb into the *test command's* interpreter, which may not have kb installed: kb copies this
file into a temporary folder on ``PYTHONPATH`` and adds ``-p _kb_order`` (so it needs only the standard
library and pytest). It does nothing unless one of its options is given:

- ``--kb-order=FILE``: one node id per line. After every other plugin has ordered the items
  (``trylast``), the items are rebuilt in exactly that order; the rest are deselected. Ids that were
  not collected are reported as ``missing``. pytest-randomly is switched off by kb's ``-p no:randomly``,
  and xdist is kept to one process, because an order only means something in one process.
- ``--kb-outcomes=FILE``: JSON lines: ``collected`` (the ids in the order they will run, and the
  pytest-randomly seed when that plugin is active), ``missing``, one ``test`` record per test with its
  final outcome (failed if any phase failed; ``worker`` is the xdist worker under xdist), and ``state``.
- ``--kb-state-around=NODEID``: snapshot the process's state before and after that test (environment
  variables, the project's modules in ``sys.modules``, plain values in the globals — and the class
  attributes — of the project's own modules and of installed third-party ones that are not test
  infrastructure, the files in the working directory) and write what changed as a ``state`` record — what a polluter leaves behind, or
  the side effect a setter provides.

This is how detect-test-pollution orders tests, and robust where command-line order is not: the
user's command may name paths, options and ``addopts`` (``--verbose`` included); kb never parses the
terminal output.
"""

from __future__ import annotations

import json
import os
import sys
import types
from typing import Any

import pytest

_REPR_LIMIT = 2000


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("kb-order", "kb: run tests in a given order")
    group.addoption("--kb-order", default=None, metavar="FILE", help="run the node ids in FILE in that order")
    group.addoption("--kb-outcomes", default=None, metavar="FILE", help="write outcomes as JSON lines to FILE")
    group.addoption("--kb-state-around", default=None, metavar="NODEID",
                    help="record the state NODEID changes (with --kb-outcomes)")


class _Writer:
    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed at session end)

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record, default=str) + "\n")
        self.file.flush()


_writer: _Writer | None = None


def pytest_configure(config: Any) -> None:
    global _writer
    path = config.getoption("kb_outcomes", None)
    if path and not hasattr(config, "workerinput"):
        _writer = _Writer(path)
    if config.getoption("kb_order", None) and hasattr(config.option, "dist"):
        config.option.dist, config.option.numprocesses, config.option.tx = "no", None, []


def pytest_unconfigure(config: Any) -> None:
    global _writer
    if _writer is not None:
        _writer.file.close()
        _writer = None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    path = config.getoption("kb_order", None)
    if path:
        with open(path, encoding="utf-8") as handle:
            wanted = [line.strip() for line in handle if line.strip()]
        by_id = {item.nodeid: item for item in items}
        chosen = [by_id[i] for i in wanted if i in by_id]
        picked = {id(item) for item in chosen}
        dropped = [item for item in items if id(item) not in picked]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = chosen
        if _writer is not None:
            for missing in (i for i in wanted if i not in by_id):
                _writer.write({"type": "missing", "nodeid": missing})
    if _writer is not None:
        seed = getattr(config.option, "randomly_seed", None)
        _writer.write({"type": "collected", "ids": [item.nodeid for item in items],
                       "seed": seed if isinstance(seed, int) else None})


_outcomes: dict[str, str] = {}


def pytest_runtest_logreport(report: Any) -> None:
    if _writer is None:
        return
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and report.when != "teardown":
        _outcomes.setdefault(report.nodeid, "skipped")
    if report.when == "teardown":
        outcome = _outcomes.pop(report.nodeid, "passed")
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        record = {"type": "test", "nodeid": report.nodeid, "outcome": outcome}
        if gateway is not None:
            record["worker"] = str(getattr(gateway, "id", ""))
        _writer.write(record)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: Any, nextitem: Any) -> Any:
    around = item.config.getoption("kb_state_around", None)
    if _writer is None or around != item.nodeid:
        yield
        return
    root = str(item.config.rootpath)
    before = snapshot(root)
    yield
    _writer.write({"type": "state", "nodeid": item.nodeid, "changes": changes(before, snapshot(root))})


# ---------------------------------------------------------------- state snapshots


#: test infrastructure whose state is not the project's (top-level package names)
_INFRASTRUCTURE = {"pytest", "_pytest", "pluggy", "py", "iniconfig", "packaging", "kb", "xdist", "execnet",
                   "pytest_randomly", "hypothesis", "_hypothesis_ftz_detector", "coverage", "pygments", "colorama",
                   "exceptiongroup", "tomli", "_kb_order"}


def _own_module(module: Any, root: str) -> bool:
    path = getattr(module, "__file__", None) or ""
    path = os.path.abspath(path) if path else ""
    return bool(path) and path.startswith(root + os.sep) and "site-packages" not in path


def _watched(name: str, module: Any, root: str) -> bool:
    """The project's own modules, and installed third-party ones that are not test infrastructure (the
    package under test is often installed, not in the checkout). The standard library is left out."""
    top = name.split(".", 1)[0]
    if top in _INFRASTRUCTURE or top.startswith(("pytest_", "_pytest")) or name == __name__:
        return False
    if _own_module(module, root):
        return True
    stdlib = getattr(sys, "stdlib_module_names", ())
    path = getattr(module, "__file__", None) or ""
    return top not in stdlib and "site-packages" in path


def _plain(value: Any) -> bool:
    return not isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type,
                                  types.MethodType))


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception as exc:  # a repr that raises is still a fingerprint
        text = f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT] + "…"


def _values(module: Any, name: str) -> dict[str, str]:
    """Fingerprints of a module's plain globals, and of the plain attributes of the classes it defines
    (``Class.attr``: a polluter often sets a class attribute, mccabe's ``McCabeChecker.max_complexity``)."""
    try:
        values = dict(vars(module))
    except TypeError:
        return {}
    found: dict[str, str] = {}
    for key, value in values.items():
        if key.startswith("__"):
            continue
        if _plain(value):
            found[key] = _repr(value)
        elif isinstance(value, type) and getattr(value, "__module__", None) == name:
            for attr, inner in list(vars(value).items()):
                if not attr.startswith("__") and _plain(inner) and not isinstance(inner, (classmethod, staticmethod,
                                                                                         property)):
                    found[f"{key}.{attr}"] = _repr(inner)
    return found


def snapshot(root: str) -> dict[str, Any]:
    """The state a test can leave behind, as text fingerprints (``repr`` of each plain value)."""
    modules = dict(sys.modules)
    globals_: dict[str, dict[str, str]] = {}
    own: list[str] = []
    for name, module in modules.items():
        if module is None or not _watched(name, module, root):
            continue
        globals_[name] = _values(module, name)
        if _own_module(module, root):
            own.append(name)
    try:
        files = sorted(os.listdir("."))
    except OSError:
        files = []
    return {"environ": dict(os.environ), "modules": sorted(own), "globals": globals_, "cwd": os.getcwd(),
            "files": files}


def _fresh_globals(name: str) -> dict[str, str] | None:
    """The globals a fresh import of ``name`` starts with (what a test that runs alone sees), by running the
    module's code again into a throwaway module object (this is a probe process; nothing else runs after)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:  # a module that cannot be run twice keeps its changes unreported
        return None
    return _values(module, name)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between two snapshots: one dict per change, ``kind`` environ | global | module | file | cwd."""
    found: list[dict[str, Any]] = []
    for key in sorted(set(before["environ"]) | set(after["environ"])):
        old, new = before["environ"].get(key), after["environ"].get(key)
        if old != new and not key.startswith("PYTEST_"):
            found.append({"kind": "environ", "name": key, "before": old, "after": new})
    for module, names in sorted(after["globals"].items()):
        old_names = before["globals"].get(module)
        if old_names is None:  # imported during the test: compare with what a fresh import gives
            old_names = _fresh_globals(module)
            if old_names is None:
                continue
        for name in sorted(set(old_names) | set(names)):
            old, new = old_names.get(name), names.get(name)
            if old != new:
                found.append({"kind": "global", "module": module, "name": name, "before": old, "after": new})
    for module in sorted(set(after["modules"]) - set(before["modules"])):
        found.append({"kind": "module", "name": module, "before": None, "after": "imported"})
    if before["cwd"] != after["cwd"]:
        found.append({"kind": "cwd", "name": "", "before": before["cwd"], "after": after["cwd"]})
    else:
        for name in sorted(set(before["files"]) ^ set(after["files"])):
            found.append({"kind": "file", "name": name, "before": "present" if name in before["files"] else None,
                          "after": "present" if name in after["files"] else None})
    return found
