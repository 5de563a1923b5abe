"""The kb pytest plugin: one JSON-lines run file per session (``kb.log`` records).

Installed with kb as the ``pytest11`` entry point ``kb``; it does nothing unless asked:
``pytest --kb`` (writes ``kb-run.jsonl``), ``pytest --kb=PATH``, or ``pytest -p kb`` (which
also loads it when plugin autoloading is off). The file holds:

- ``env``: Python version and implementation, platform, executable, rootdir, and every
  installed distribution with its version;
- per test a ``context`` record (its whole duration and outcome) and one ``test`` record per
  phase (setup / call / teardown) with its duration and outcome, and for a failure the message,
  pytest's report text and the full exception chain with the file/line/function of each frame;
- ``log`` records captured from the standard logging module while tests run, each with the
  context it was logged in (session → test → phase);
- ``collect-error`` records for modules that fail to collect and for a conftest.py that fails
  to import — where pytest stops before writing any JUnit XML.

``kb diagnose RUNFILE`` reads it (preferring it over a JUnit XML of the same run). Only the
standard library and pytest are used; records are buffered and written in batches.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path
from typing import Any

import pytest

from .log import DiagnosticLogger, exception_chain

DEFAULT_PATH = "kb-run.jsonl"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kb", "kb run file")
    group.addoption("--kb", action="store", nargs="?", const=DEFAULT_PATH, default=None, metavar="PATH",
                    help=f"write a kb run file (JSON lines) to PATH (give it with '=': --kb=PATH; "
                         f"default {DEFAULT_PATH}); read it with `kb diagnose PATH`")


def _wanted(namespace: Any) -> str | None:
    path = getattr(namespace, "kb", None)
    if path is None and "kb" in (getattr(namespace, "plugins", None) or []):
        path = DEFAULT_PATH
    if path and path != DEFAULT_PATH and (path.endswith(".py") or "::" in path or os.path.isdir(path)):
        raise pytest.UsageError(f"--kb takes its PATH with '=' (--kb=run.jsonl): {path!r} looks like a test path")
    return path


def _environment(rootdir: str) -> dict[str, Any]:
    dists = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            dists[name] = dist.version
    return {"type": "env", "python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "executable": sys.executable, "rootdir": rootdir,
            "distributions": dict(sorted(dists.items(), key=lambda kv: kv[0].lower()))}


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> Any:
    """A conftest.py that fails to import stops pytest before any session (and any JUnit XML): the
    failure is written here, with the exception chain of what the conftest raised."""
    outcome = yield
    if outcome.excinfo is None:
        return
    path = _wanted(early_config.known_args_namespace)
    if not path:
        return
    error = outcome.excinfo[1]
    cause = getattr(error, "cause", None) or getattr(error, "excinfo", (None, None))[1] or error
    where = str(getattr(error, "path", "") or "conftest.py")
    try:
        where = os.path.relpath(where)
    except ValueError:
        pass
    log = DiagnosticLogger(path, run={"argv": sys.argv[1:], "stopped": "conftest import failed"})
    log.write(_environment(str(Path.cwd())))
    chain = exception_chain(cause)
    log.write({"type": "collect-error", "nodeid": where.replace(os.sep, "/"), "context": ["session"],
               "message": f"{chain[-1]['type']}: {chain[-1]['message']}" if chain else str(error), "error": chain})
    log.close()


def pytest_configure(config: pytest.Config) -> None:
    path = _wanted(config.option)
    if path and not hasattr(config, "workerinput"):  # xdist workers report through the controller
        config.pluginmanager.register(RunFile(config, path), "kb-run-file")


class RunFile:
    """Writes the run file of one session."""

    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config = config
        self.path = path
        self.log = DiagnosticLogger(path, run={"argv": list(config.invocation_params.args)}, flush_every=2000)
        self.chains: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.outcomes: dict[str, str] = {}  # nodeid -> failed | skipped while its protocol runs
        self.session_scope: Any = None
        self.counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.log.write(_environment(str(session.config.rootpath)))
        self.log.bridge_logging()
        self.session_scope = self.log.context("session", rootdir=str(session.config.rootpath))
        self.session_attrs: dict[str, Any] = self.session_scope.__enter__()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        with self.log.context("test", nodeid=item.nodeid) as attrs:
            yield
            attrs["outcome"] = self.outcomes.pop(item.nodeid, "passed")

    # plain tryfirst hooks, not wrappers: they run for every test and must stay cheap
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.log.switch_scope("setup")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        self.log.switch_scope("call")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        self.log.switch_scope("teardown")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        if call.excinfo is not None:  # the report is made by pytest; the live exception is only here
            self.chains[(item.nodeid, call.when)] = exception_chain(call.excinfo.value)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record: dict[str, Any] = {"type": "test", "nodeid": report.nodeid, "phase": report.when,
                                  "outcome": report.outcome, "duration": max(0.0, report.duration),
                                  "context": ["session", "test", report.when]}
        if report.location:
            record["file"], record["line"] = report.location[0], (report.location[1] or 0) + 1
        if hasattr(report, "wasxfail"):
            record["xfail"] = True
        chain = self.chains.pop((report.nodeid, report.when), None)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
            record["longrepr"] = str(report.longrepr)[-20000:]
            if chain:
                record["error"] = chain
                record["message"] = f"{chain[-1]['type']}: {chain[-1]['message']}"[:4000]
            self.counts["failed" if report.when == "call" else "errors"] += 1
        elif report.when == "call":
            self.counts["skipped" if report.skipped else "passed"] += 1
        elif report.skipped and report.when == "setup":
            self.counts["skipped"] += 1
        if report.skipped and report.when != "teardown" and report.nodeid not in self.outcomes:
            self.outcomes[report.nodeid] = "skipped"
        self.log.write(record)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longrepr)
            message = next((line[1:].strip() for line in reversed(text.splitlines()) if line.startswith("E ")),
                           text.strip().splitlines()[-1] if text.strip() else "collection failed")
            self.log.write({"type": "collect-error", "nodeid": report.nodeid, "message": message[:4000],
                            "longrepr": text[-20000:]})

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.session_scope is not None:
            self.session_attrs.update(exitstatus=int(exitstatus), **self.counts)
            scope, self.session_scope = self.session_scope, None
            scope.__exit__(None, None, None)
        self.log.close()
