"""Reader for kb run files: the JSON lines the kb pytest plugin writes (see :mod:`kb.log`).

Richer than JUnit XML: the exception chain and frames come structured (no parsing of tracebacks),
frames in the project become paths relative to pytest's rootdir, collection errors include a
conftest.py that failed to import (pytest writes no XML then), and the ``env`` record gives every
installed distribution's version, which makes version-aware rules precise. Lines are streamed;
a line that is not JSON is a ReportError naming the line.
"""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO

from ..errors import ReportError
from ..models import Frame, Run, TestResult
from . import reader

FORMAT = b'"format": "kb-run"'
MAX_LINE = 4 * 1024 * 1024


def _sniff(head: bytes) -> bool:
    first = head.lstrip()[:400]
    return first.startswith(b'{"type": "run"') and FORMAT in first


def _relative(path: str, rootdir: str) -> str:
    if rootdir and path.startswith(rootdir.rstrip("/\\") + os.sep):
        return os.path.relpath(path, rootdir).replace(os.sep, "/")
    return path


def _result(record: dict[str, Any], rootdir: str, name: str, outcome: str, phase: str) -> TestResult:
    chain = record.get("error") or []
    last = chain[-1] if chain else {}
    message = record.get("message") or (f"{last['type']}: {last['message']}" if last else "")
    frames = tuple(Frame(_relative(f["file"], rootdir), f.get("line"), f.get("function"))
                   for f in last.get("frames", []))
    if chain and not frames:  # an exception without a traceback: place it at its module
        frames = (Frame(record["nodeid"].partition("::")[0], None, None),)
    nodeid = str(record["nodeid"])
    module, _, rest = nodeid.partition("::")
    return TestResult(
        test_id=nodeid, outcome=outcome, phase=phase, classname=module, name=rest or module,
        message=message, type=str(last.get("type", "")), text=str(record.get("longrepr") or message),
        source=name, frames=frames,
        chain=tuple((str(c["type"]), str(c["message"])) for c in chain[:-1]),
    )


@reader("kb-run", sniff=_sniff)
def read_runfile(data: BinaryIO, name: str) -> Run:
    run = Run(sources=[name], format="kb-run")
    rootdir = ""
    outcomes: dict[str, str] = {}  # nodeid -> passed | failed | error | skipped
    for number, raw in enumerate(data, 1):
        if len(raw) > MAX_LINE:
            raise ReportError(name, f"line {number} is longer than {MAX_LINE} bytes")
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReportError(name, f"line {number} is not JSON ({exc})") from None
        if not isinstance(record, dict) or "type" not in record:
            raise ReportError(name, f"line {number} is not a run-file record")
        kind = record["type"]
        if kind == "env":
            rootdir = str(record.get("rootdir", ""))
            run.rootdir = rootdir
            run.interpreter = str(record.get("executable", "") or "")
            run.environment["python"] = str(record.get("python", ""))
            for dist, version in (record.get("distributions") or {}).items():
                run.environment.setdefault(str(dist).lower(), str(version))
        elif kind == "test":
            nodeid, phase, outcome = str(record["nodeid"]), record["phase"], record["outcome"]
            if nodeid not in outcomes:
                run.order.append(nodeid)
                outcomes[nodeid] = "passed"
            if outcome == "failed":
                status = "failed" if phase == "call" else "error"
                run.results.append(_result(record, rootdir, name, status, phase))
                if outcomes[nodeid] in ("passed", "skipped"):
                    outcomes[nodeid] = status
            elif outcome == "skipped" and phase != "teardown" and outcomes[nodeid] == "passed":
                outcomes[nodeid] = "skipped"
        elif kind == "collect-error":
            run.results.append(_result(record, rootdir, name, "error", "collection"))
            outcomes.setdefault(str(record["nodeid"]), "error")
            run.order.append(str(record["nodeid"]))
    if not outcomes and not run.results and not run.environment:
        raise ReportError(name, "a kb run file with no tests, no collection errors and no environment")
    counts = list(outcomes.values())
    run.tests = len(counts)
    run.passed, run.skipped = counts.count("passed"), counts.count("skipped")
    run.failures, run.errors = counts.count("failed"), counts.count("error")
    return run
