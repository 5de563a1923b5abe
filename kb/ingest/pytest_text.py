"""pytest terminal output (no XML needed: pytest writes none when a conftest fails to import).

Reads the header (Python and pytest versions), every section under ``= FAILURES =`` and
``= ERRORS =``, the "short test summary info" lines (for node ids) and the final summary
line, whose counts it keeps exactly as pytest states them in ``Run.claimed``. ANSI colour
codes are stripped; a Python-escaped one-line capture (literal ``\\x1b`` and ``\\n``) is
unescaped first.
"""

from __future__ import annotations

import codecs
import re
from typing import BinaryIO

from ..errors import ReportError
from ..models import Run, TestResult
from . import reader

__all__ = ["read_pytest_text", "parse_pytest_text", "looks_like_pytest"]

MAX_TEXT_BYTES = 512 * 1024**2
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BANNER = re.compile(r"^={3,} (.+?) ={3,}$")
_SECTION = re.compile(r"^_{3,} (.+?) _{3,}$")
_SUMMARY = re.compile(r"^=+ (.+?) in [\d.,]+s(?: \([^)]*\))? =+$")
_COUNT = re.compile(r"(\d+) (\w+)")
_HEADER = re.compile(r"^platform \S+ -- Python (\d+\.\d+(?:\.\d+)?)\S*, pytest-(\d+(?:\.\d+)*)")
_SHORT = re.compile(r"^(FAILED|ERROR) (\S+)(?: - (.*))?$")
_CONFTEST = re.compile(r"^ImportError while loading conftest '([^']+)'")
_NAMES = {"error": "errors", "warning": "warnings", "failed": "failed", "passed": "passed",
          "skipped": "skipped", "xfailed": "xfailed", "xpassed": "xpassed", "deselected": "deselected",
          "errors": "errors", "warnings": "warnings", "rerun": "rerun"}
_MARKERS = (b"test session starts", b"short test summary info", b"= FAILURES =", b"= ERRORS =",
            b"while loading conftest", b"_ ERROR collecting ")


def looks_like_pytest(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of a file or of captured output) is pytest's terminal output."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            head = head.decode("utf-16", errors="ignore").encode("utf-8")
        except UnicodeError:
            return False
    return any(marker in head for marker in _MARKERS) or bool(
        re.search(rb"(?m)^=+ [^=\n]*\b(passed|failed|errors?)\b[^=\n]* in [\d.]+s", head)
        or re.search(rb"(?m)^\S+::\S+ (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b", head))


def _decode(data: bytes, name: str) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ReportError(name, f"cannot decode as {encoding.upper().replace('-SIG', '')}: "
                                f"{exc.reason} at byte {exc.start}") from None


def _unescape(text: str) -> str:
    """A capture stored as a Python-escaped one-liner (literal \\n, \\x1b) becomes real text."""
    if text.count("\n") <= 2 and "\\n" in text and ("\\x1b" in text or "=====" in text):
        try:
            return text.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            return text
    return text


def _phase_and_title(title: str) -> tuple[str, str]:
    for prefix, phase in (("ERROR collecting ", "collection"), ("ERROR at setup of ", "setup"),
                          ("ERROR at teardown of ", "teardown")):
        if title.startswith(prefix):
            return phase, title[len(prefix):]
    return "call", title


def _match_id(title: str, phase: str, ids: list[str]) -> str:
    """The node id from the short summary that this section title names, else the title."""
    if phase == "collection":
        return title
    wanted = "::" + title.replace(".", "::")
    for node in ids:
        if node.endswith(wanted) or node.endswith("::" + title):
            return node
    return title


def parse_pytest_text(text: str, name: str) -> Run:
    text = _ANSI.sub("", _unescape(text)).replace("\r\n", "\n")
    lines = text.split("\n")
    run = Run(format="pytest-text")
    short: list[tuple[str, str, str]] = []
    sections: list[tuple[str, str, list[str], str]] = []  # (phase, title, body, banner)
    banner = ""
    current: tuple[str, str, list[str], str] | None = None
    summary = None
    conftest: tuple[str, list[str]] | None = None
    for line in lines:
        head = _HEADER.match(line)
        if head:
            run.environment.setdefault("python", head.group(1))
            run.environment.setdefault("pytest", head.group(2))
            continue
        found = _SUMMARY.match(line)
        if found and _COUNT.search(found.group(1)):
            summary = found.group(1)
            current = None
            continue
        found = _BANNER.match(line)
        if found:
            banner = found.group(1).strip().upper()
            current = None
            continue
        found = _CONFTEST.match(line)
        if found:
            conftest = (found.group(1), [line])
            current = None
            continue
        if banner in ("FAILURES", "ERRORS"):
            found = _SECTION.match(line)
            if found:
                phase, title = _phase_and_title(found.group(1).strip())
                current = (phase, title, [], banner)
                sections.append(current)
                continue
            if current is not None:
                current[2].append(line)
            continue
        if banner == "SHORT TEST SUMMARY INFO":
            found = _SHORT.match(line)
            if found:
                short.append((found.group(1), found.group(2), found.group(3) or ""))
            continue
        if conftest is not None and line.strip() and not line.startswith(("=", "-")):
            conftest[1].append(line)
    ids = [node for _kind, node, _msg in short]
    seen: set[str] = set()
    for phase, title, body, section_banner in sections:
        test_id = _match_id(title, phase, ids)
        outcome = "error" if section_banner == "ERRORS" else "failed"
        run.results.append(TestResult(test_id=test_id, outcome=outcome, phase=phase, name=title,
                                      text="\n".join(body).strip("\n"), source=name))
        seen.add(test_id)
    for kind, node, message in short:
        if node not in seen:
            seen.add(node)
            run.results.append(TestResult(test_id=node, outcome="error" if kind == "ERROR" else "failed",
                                          phase="collection" if kind == "ERROR" and "::" not in node else "call",
                                          name=node, message=message, source=name))
    if conftest is not None:
        run.results.insert(0, TestResult(test_id=conftest[0], outcome="error", phase="collection",
                                         name=conftest[0], text="\n".join(conftest[1]), source=name))
    if summary:
        for number, word in _COUNT.findall(summary):
            key = _NAMES.get(word.lower())
            if key:
                run.claimed[key] = run.claimed.get(key, 0) + int(number)
        claimed = run.claimed
        run.failures = claimed.get("failed", 0)
        run.errors = claimed.get("errors", 0)
        run.passed = claimed.get("passed", 0) + claimed.get("xpassed", 0)
        run.skipped = claimed.get("skipped", 0) + claimed.get("xfailed", 0)
    else:
        run.failures = sum(1 for r in run.results if r.outcome == "failed")
        run.errors = sum(1 for r in run.results if r.outcome == "error")
        run.warnings.append(f"{name}: no pytest summary line (interrupted run?); counts are from the sections")
    run.tests = run.passed + run.failures + run.errors + run.skipped
    run.order = [r.test_id for r in run.results]
    if not run.results and not summary:
        raise ReportError(name, "pytest output without a summary line or any failure section")
    return run


@reader("pytest-text", sniff=looks_like_pytest)
def read_pytest_text(data: BinaryIO, name: str) -> Run:
    raw = data.read(MAX_TEXT_BYTES + 1)
    if len(raw) > MAX_TEXT_BYTES:
        raise ReportError(name, f"pytest output larger than {MAX_TEXT_BYTES // 1024**2} MiB")
    return parse_pytest_text(_decode(raw, name), name)
