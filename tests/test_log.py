"""kb.log (the DiagnosticLogger) and the kb pytest plugin: nesting, durations, state changes,
threads, asyncio, the stdlib logging bridge, the schema of every line, and run files from real
pytest sessions read by kb diagnose.

The plugin's sessions run in-process with pytest's ``pytester`` (``runpytest_inprocess``): the plugin is
loaded as pytest loads it (its ``pytest11`` entry point, or ``-p kb``) and writes from pytest's hooks, so
an in-process session is a real one, without a pytest start per test."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import threading
import time
from pathlib import Path

import pytest

from kb.diagnose import diagnose
from kb.log import DiagnosticLogger, current_context, read_records, timeline
from kb.validate import errors


def _records(buffer: io.StringIO) -> list[dict]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    for line in lines:
        assert errors(line, "log-record") == [], line
    return lines


def _by_name(records: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in records if r["type"] == "context"}


def test_contexts_nest_and_record_durations_and_outcomes() -> None:
    out = io.StringIO()
    log = DiagnosticLogger(out)
    with log.context("phase", name="load") as attrs:
        with log.context("step", file="a.csv") as step:
            time.sleep(0.02)
            step["rows"] = 3
            assert current_context() == ["phase", "step"]
        attrs["done"] = True
    with pytest.raises(KeyError):
        with log.context("failing"):
            {}["missing"]
    log.close()
    records = _records(out)
    assert records[0]["type"] == "run" and records[0]["format"] == "kb-run"
    contexts = _by_name(records)
    phase, step = contexts["phase"], contexts["step"]
    assert step["parent"] == phase["id"] and phase["parent"] is None and step["context"] == ["phase"]
    assert step["attrs"] == {"file": "a.csv", "rows": 3} and phase["attrs"] == {"name": "load", "done": True}
    assert 0.02 <= step["duration"] <= phase["duration"] and step["outcome"] == "ok"
    failing = contexts["failing"]
    assert failing["outcome"] == "error" and failing["error"][-1]["type"] == "KeyError"
    assert failing["error"][-1]["frames"][-1]["function"] == "test_contexts_nest_and_record_durations_and_outcomes"
    assert current_context() == []


def test_state_changes_and_errors_carry_their_context_and_chain() -> None:
    out = io.StringIO()
    log = DiagnosticLogger(out)
    with log.context("migrate"):
        log.state_change("schema", "version", 3, 4, table="runs")
        try:
            try:
                int("x")
            except ValueError as inner:
                raise RuntimeError("migration failed") from inner
        except RuntimeError as exc:
            log.error(exc)
    log.close()
    records = _records(out)
    state = next(r for r in records if r["type"] == "state")
    assert (state["subject"], state["field"], state["before"], state["after"]) == ("schema", "version", 3, 4)
    assert state["context"] == ["migrate"] and state["attrs"] == {"table": "runs"}
    error = next(r for r in records if r["type"] == "error")
    assert [c["type"] for c in error["chain"]] == ["ValueError", "RuntimeError"]
    assert error["cid"] == _by_name(records)["migrate"]["id"]


def test_threads_have_their_own_stacks() -> None:
    out = io.StringIO()
    log = DiagnosticLogger(out)
    seen: dict[str, list[str]] = {}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        with log.context(name):
            barrier.wait()  # both threads are inside their context at once
            seen[name] = current_context()
            with log.context(f"{name}-inner"):
                seen[f"{name}-inner"] = current_context()

    with log.context("main"):
        threads = [threading.Thread(target=work, args=(n,)) for n in ("t1", "t2")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert current_context() == ["main"]
    log.close()
    assert seen == {"t1": ["t1"], "t2": ["t2"], "t1-inner": ["t1", "t1-inner"], "t2-inner": ["t2", "t2-inner"]}
    contexts = _by_name(_records(out))
    assert contexts["t1-inner"]["parent"] == contexts["t1"]["id"] and contexts["t1"]["parent"] is None


def test_asyncio_tasks_inherit_but_do_not_leak() -> None:
    out = io.StringIO()
    log = DiagnosticLogger(out)
    seen: dict[str, list[str]] = {}

    async def task(name: str, delay: float) -> None:
        with log.context(name):
            await asyncio.sleep(delay)  # interleave with the other task
            seen[name] = current_context()

    async def main() -> None:
        with log.context("request"):
            await asyncio.gather(task("a", 0.02), task("b", 0.01))
            seen["after"] = current_context()

    asyncio.run(main())
    log.close()
    assert seen == {"a": ["request", "a"], "b": ["request", "b"], "after": ["request"]}
    contexts = _by_name(_records(out))
    assert contexts["a"]["parent"] == contexts["b"]["parent"] == contexts["request"]["id"]


def test_stdlib_logging_records_are_stamped_with_the_context() -> None:
    out = io.StringIO()
    log = DiagnosticLogger(out)
    logger = logging.getLogger("kb.tests.bridge")
    logger.setLevel(logging.INFO)
    log.bridge_logging(logger)
    with log.context("import", source="a.csv"):
        logger.info("loaded %d rows", 3)
        try:
            1 / 0  # noqa: B018 - raises the error logged below
        except ZeroDivisionError:
            logger.exception("bad row")
    logger.warning("outside")
    log.close()
    logger.warning("after close: not written, no error")
    logs = [r for r in _records(out) if r["type"] == "log"]
    assert [(r["message"], r["context"], r["level"]) for r in logs] == [
        ("loaded 3 rows", ["import"], "INFO"), ("bad row", ["import"], "ERROR"), ("outside", [], "WARNING")]
    assert logs[1]["error"][-1]["type"] == "ZeroDivisionError"
    assert logger.handlers == []  # close() detached the bridge


def test_a_file_sink_and_the_timeline(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    with DiagnosticLogger(path) as log:
        with log.context("phase"):
            with log.context("slow"):
                time.sleep(0.01)
            log.state_change("cache", "size", 0, 1)
    records = list(read_records(path))
    lines = timeline(records)
    assert len(lines) == 4 and lines[0].startswith("run file v1")
    assert lines[1].startswith("phase  ") and lines[2].startswith("  · cache.size: 0 → 1")
    assert lines[3].startswith("  slow  ")
    assert timeline(records, slowest=1)[0].endswith("phase  ok")


def _pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in-process in ``pytester.path`` (the project), as ``pytest -p no:cacheprovider -q ARGS``. The
    project's test modules sit at its top (``test_*.py``), not in a ``tests`` package: in-process that name is
    this suite's own package."""
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", *args)


PASSING = "\n\n".join(f"def test_{n}():\n    assert {n} + 1 == {n + 1}\n" for n in range(6))
CHAIN = """
import logging
import collections


def helper():
    return collections.Mapping


def test_chain():
    logging.getLogger('app').warning('about to fail')
    try:
        helper()
    except AttributeError as exc:
        raise ValueError('wrapped') from exc
"""


def test_the_plugin_writes_a_run_file_kb_diagnoses(pytester: pytest.Pytester, tmp_path: Path) -> None:
    root = pytester.path
    pytester.makepyfile(test_passing=PASSING, test_chain=CHAIN)
    done = _pytest(pytester, "--kb=run.jsonl", "--junitxml=report.xml")
    assert done.ret == 1, done.stdout.str() + done.stderr.str()
    records = list(read_records(root / "run.jsonl"))
    for record in records:
        assert errors(record, "log-record") == [], record
    env = next(r for r in records if r["type"] == "env")
    assert env["distributions"].get("pytest") and env["python"] == ".".join(map(str, sys.version_info[:3]))
    phases = [(r["nodeid"], r["phase"]) for r in records if r["type"] == "test"]
    assert len(phases) == 7 * 3 and ("test_chain.py::test_chain", "teardown") in phases
    failed = next(r for r in records if r["type"] == "test" and r["outcome"] == "failed")
    assert [c["type"] for c in failed["error"]] == ["AttributeError", "ValueError"]
    assert failed["error"][0]["frames"][-1]["function"] == "helper"
    log = next(r for r in records if r["type"] == "log")
    assert log["message"] == "about to fail" and log["context"] == ["session", "test", "call"]
    # kb diagnose: the run file alone, and with the JUnit XML of the same session (the run file wins)
    for sources in ([root / "run.jsonl"], [root / "report.xml", root / "run.jsonl"]):
        report = diagnose(sources, db=tmp_path / "kb.sqlite", record=False)
        cause = report["root_causes"][0]
        assert "collections.Mapping" in cause["title"] and cause["tests"] == ["test_chain.py::test_chain"]
        assert report["summary"]["tests"] == 7
        assert any("environment: python" in e for e in cause["evidence"])  # the env record's versions
        assert cause["locations"][0]["file"] == "test_chain.py"


def test_a_conftest_that_fails_to_import_is_diagnosed_from_the_run_file(pytester: pytest.Pytester,
                                                                        tmp_path: Path) -> None:
    root = pytester.path
    pytester.makepyfile(test_passing=PASSING)
    pytester.makeconftest("import cv2\n")
    done = _pytest(pytester, "-p", "kb", "--junitxml=report.xml")
    assert done.ret == 4 and not (root / "report.xml").exists()  # pytest wrote no XML
    report = diagnose([root / "kb-run.jsonl"], db=tmp_path / "kb.sqlite", record=False)
    cause = report["root_causes"][0]
    assert "module 'cv2' is not installed" in cause["title"] and cause["tests"] == ["conftest.py"]


def test_the_plugin_is_off_unless_asked_and_refuses_a_test_path_as_its_file(pytester: pytest.Pytester) -> None:
    root = pytester.path
    pytester.makepyfile(test_passing=PASSING)
    assert _pytest(pytester).ret == 0 and not list(root.glob("*.jsonl"))
    (root / "tests").mkdir()
    for path in ("tests/", "test_passing.py"):  # a folder of tests, a test module
        done = _pytest(pytester, "--kb", path)
        assert done.ret == 4 and "--kb takes its PATH with '='" in done.stderr.str(), path
