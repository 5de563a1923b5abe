"""Reader for kb run files: the JSON lines the kb pytest plugin writes (see :mod:`kb.log`).

Richer than JUnit XML: the exception chain and frames come structured (no parsing of tracebacks),
frames in the project become paths relative to pytest's rootdir, collection errors include a
conftest.py that failed to import (pytest writes no XML then), and the ``env`` record gives every
installed distribution's version, which makes version-aware rules precise.

Lines are streamed, each read with a cap (``MAX_LINE`` bytes) before it is buffered. Every record
kb uses is checked for its shape; a malformed file is a ReportError naming the line and the reason,
never another exception. Harmless damage is skipped with a warning in ``Run.warnings``: a truncated
last line (the writer was killed), a repeated ``test`` record for the same test and phase, a second
``collect-error`` for the same node. Record types kb does not use (``context``, ``log``...) are skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, BinaryIO

from ..errors import ReportError
from ..models import Frame, Run, TestResult
from . import Budget, bounded, reader

FORMAT = b'"format": "kb-run"'
MAX_LINE = 4 * 1024 * 1024
#: of a longer exception chain or traceback, the last exceptions / the first and last frames are kept
MAX_CHAIN = 20
MAX_FRAMES = 200
MAX_LINENO = 2**31
_PHASES = ("setup", "call", "teardown")
_OUTCOMES = ("passed", "failed", "skipped")


class _Bad(Exception):
    """A record of the wrong shape: the reason, turned into a ReportError naming the line."""


def _sniff(head: bytes) -> bool:
    first = head.lstrip()[:400]
    return first.startswith(b'{"type": "run"') and FORMAT in first


def _relative(path: str, rootdir: str) -> str:
    if rootdir and path.startswith(rootdir.rstrip("/\\") + os.sep):
        return os.path.relpath(path, rootdir).replace(os.sep, "/")
    return path


def _started(ts: Any) -> str:
    """The run record's start (seconds since the epoch) as ISO 8601 UTC; "" when it is not a usable number."""
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        return ""
    try:
        return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return ""


def _clean(text: str) -> str:
    """JSON may carry lone surrogates (``"\\ud800"``), which no file or database can take."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _text(record: dict[str, Any], key: str, where: str, *, required: bool = False) -> str:
    value = record.get(key)
    if value is None:
        if required:
            raise _Bad(f"{where} has no {key!r}")
        return ""
    if not isinstance(value, str):
        raise _Bad(f"{where}: {key!r} must be a string, not {_kind(value)}")
    return _clean(value)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), "null" if value is None else type(value).__name__)


def _lineno(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_LINENO:
        raise _Bad(f"{where}: 'line' must be null or a line number, not {_kind(value)}"
                   + (f" {value}" if isinstance(value, int | float) and not isinstance(value, bool) else ""))
    return value


def _frames(value: object, where: str) -> tuple[Frame, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad(f"{where}: 'frames' must be a list, not {_kind(value)}")
    if len(value) > MAX_FRAMES:
        value = value[: MAX_FRAMES // 2] + value[-MAX_FRAMES // 2:]
    frames = []
    for number, frame in enumerate(value):
        at = f"{where} frame {number}"
        if not isinstance(frame, dict):
            raise _Bad(f"{at} must be an object, not {_kind(frame)}")
        frames.append(Frame(_text(frame, "file", at, required=True), _lineno(frame.get("line"), at),
                            _text(frame, "function", at) or None))
    return tuple(frames)


def _chain(value: object, where: str) -> list[tuple[str, str, tuple[Frame, ...]]]:
    """The ``error`` list of a record: (type, message, frames) per exception, oldest first."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(f"{where}: 'error' must be a list, not {_kind(value)}")
    chain = []
    for number, item in enumerate(value[-MAX_CHAIN:]):
        at = f"{where} exception {number}"
        if not isinstance(item, dict):
            raise _Bad(f"{at} must be an object, not {_kind(item)}")
        chain.append((_text(item, "type", at, required=True), _text(item, "message", at),
                      _frames(item.get("frames"), at)))
    return chain


def _result(record: dict[str, Any], nodeid: str, name: str, outcome: str, phase: str, where: str) -> TestResult:
    chain = _chain(record.get("error"), where)
    last = chain[-1] if chain else ("", "", ())
    message = _text(record, "message", where) or (f"{last[0]}: {last[1]}" if chain else "")
    frames = last[2]
    if chain and not frames:  # an exception without a traceback: place it at its module
        frames = (Frame(nodeid.partition("::")[0], None, None),)
    module, _, rest = nodeid.partition("::")
    return TestResult(
        test_id=nodeid, outcome=outcome, phase=phase, classname=module, name=rest or module,
        message=bounded(message), type=last[0], text=bounded(_text(record, "longrepr", where) or message),
        source=name, frames=frames, chain=tuple((kind, bounded(text)) for kind, text, _ in chain[:-1]),
    )


class _State:
    def __init__(self, name: str) -> None:
        self.name = name
        self.run = Run(sources=[name], format="kb-run")
        self.budget = Budget(name)
        self.outcomes: dict[str, str] = {}  # nodeid -> passed | failed | error | skipped
        self.phases: set[tuple[str, str]] = set()  # (nodeid, phase) of every test record seen
        self.envs = self.runs = 0

    def warn(self, number: int, reason: str) -> None:
        if len(self.run.warnings) < 100:
            self.run.warnings.append(f"{self.name}: line {number}: {reason}")

    def record(self, record: dict[str, Any], number: int) -> None:
        kind = record.get("type")
        if not isinstance(kind, str):
            raise _Bad("'type' must be a string" if "type" in record else "a record without 'type'")
        if kind == "run":
            self.runs += 1
            if self.runs > 1:
                raise _Bad("a second 'run' record (two run files joined into one?)")
            self.run.timestamp = _started(record.get("ts"))
        elif kind == "env":
            self.env(record)
        elif kind == "test":
            self.test(record, number)
        elif kind == "collect-error":
            self.collect_error(record, number)

    def env(self, record: dict[str, Any]) -> None:
        where = "'env' record"
        run = self.run
        self.envs += 1
        rootdir = _text(record, "rootdir", where)
        run.rootdir = run.rootdir or rootdir
        run.interpreter = run.interpreter or _text(record, "executable", where)
        python = _text(record, "python", where)
        if python:
            run.environment.setdefault("python", python)
        dists = record.get("distributions")
        if dists is None:
            return
        if not isinstance(dists, dict):
            raise _Bad(f"{where}: 'distributions' must be an object, not {_kind(dists)}")
        for dist, version in dists.items():
            if not isinstance(version, str):
                raise _Bad(f"{where}: the version of {_clean(dist)[:80]!r} must be a string, not {_kind(version)}")
            self.budget.keep(len(dist) + len(version))
            run.environment.setdefault(_clean(dist).lower(), _clean(version))

    def _node(self, nodeid: str) -> None:
        if nodeid not in self.outcomes:
            self.budget.test(nodeid)
            self.run.order.append(nodeid)
            self.outcomes[nodeid] = "passed"

    def test(self, record: dict[str, Any], number: int) -> None:
        where = "'test' record"
        nodeid = _nodeid(record, where)
        phase, outcome = record.get("phase"), record.get("outcome")
        if phase not in _PHASES:
            raise _Bad(f"{where}: 'phase' must be one of {', '.join(_PHASES)}, not {_show(phase)}")
        if outcome not in _OUTCOMES:
            raise _Bad(f"{where}: 'outcome' must be one of {', '.join(_OUTCOMES)}, not {_show(outcome)}")
        if (nodeid, phase) in self.phases:
            self.warn(number, f"a second {phase!r} record for {nodeid[:200]!r} (ignored)")
            return
        self.phases.add((nodeid, phase))
        self._node(nodeid)
        if outcome == "failed":
            status = "failed" if phase == "call" else "error"
            result = _result(record, nodeid, self.name, status, phase, where)
            self.budget.result(result.message, result.text, *(text for _, text in result.chain))
            self.run.results.append(result)
            if self.outcomes[nodeid] in ("passed", "skipped"):
                self.outcomes[nodeid] = status
        elif outcome == "skipped" and phase != "teardown" and self.outcomes[nodeid] == "passed":
            self.outcomes[nodeid] = "skipped"

    def collect_error(self, record: dict[str, Any], number: int) -> None:
        where = "'collect-error' record"
        nodeid = _nodeid(record, where)
        if (nodeid, "collection") in self.phases:
            self.warn(number, f"a second collection error for {nodeid[:200]!r} (ignored)")
            return
        self.phases.add((nodeid, "collection"))
        result = _result(record, nodeid, self.name, "error", "collection", where)
        self.budget.result(result.message, result.text, *(text for _, text in result.chain))
        self.run.results.append(result)
        self._node(nodeid)
        self.outcomes[nodeid] = "error"

    def finish(self) -> Run:
        run = self.run
        if not self.outcomes and not run.results and not self.envs:
            raise ReportError(self.name, "a kb run file with no tests, no collection errors and no environment")
        if run.rootdir:  # an env record after the tests (out of order) still makes their frames relative
            run.results = [r._replace(frames=tuple(
                Frame(_relative(f.file, run.rootdir), f.line, f.function) for f in r.frames)) for r in run.results]
        counts = list(self.outcomes.values())
        run.tests = len(counts)
        run.passed, run.skipped = counts.count("passed"), counts.count("skipped")
        run.failures, run.errors = counts.count("failed"), counts.count("error")
        return run


def _nodeid(record: dict[str, Any], where: str) -> str:
    nodeid = _text(record, "nodeid", where, required=True)
    if not nodeid.strip():
        raise _Bad(f"{where}: 'nodeid' is empty")
    return nodeid


def _show(value: object) -> str:
    return repr(value[:40]) if isinstance(value, str) else _kind(value)


def _lines(data: BinaryIO, name: str) -> Iterator[tuple[int, bytes, bool]]:
    """(number, line, last) of the stream; each line is read with a cap before it is buffered."""
    number = 0
    raw = data.readline(MAX_LINE + 1)
    while raw:
        number += 1
        if len(raw) > MAX_LINE:
            raise ReportError(name, f"line {number} is longer than {MAX_LINE} bytes")
        following = data.readline(MAX_LINE + 1) if raw.endswith(b"\n") else b""
        yield number, raw, not following
        raw = following


@reader("kb-run", sniff=_sniff, label="kb run file")
def read_runfile(data: BinaryIO, name: str) -> Run:
    state = _State(name)
    for number, raw, last in _lines(data, name):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            reason = f"line {number} is not UTF-8 ({exc.reason} at byte {exc.start})"
        except RecursionError:
            reason = f"line {number} is nested too deeply"
        except ValueError as exc:
            reason = f"line {number} is not JSON ({str(exc)[:200]})"
        else:
            if not isinstance(record, dict):
                raise ReportError(name, f"line {number} is not a run-file record (a JSON {_kind(record)})")
            try:
                state.record(record, number)
            except _Bad as exc:
                raise ReportError(name, f"line {number}: {exc}") from None
            continue
        if last and not raw.endswith(b"\n") and number > 1:
            state.warn(number, "a truncated last line (the run was interrupted?) was ignored")
            continue
        raise ReportError(name, reason)
    return state.finish()
