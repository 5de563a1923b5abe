"""pytest terminal output (no XML needed: pytest writes none when a conftest fails to import).

Reads the header (Python and pytest versions), every section under ``= FAILURES =`` and
``= ERRORS =``, the "short test summary info" lines (for node ids) and the final summary
line, whose counts it keeps exactly as pytest states them in ``Run.claimed``. ANSI colour
codes are stripped; a Python-escaped one-line capture (literal ``\\x1b`` and ``\\n``) is
unescaped first.

Streamed: the output is read line by line (each line with a byte cap before it is buffered) and only
what the Run needs is kept — section bodies bounded to their head and tail, ids and texts counted
against the caps in :class:`kb.ingest.Budget`, bodies past half of ``MAX_KEPT_CHARS`` cut to 1 KiB
each — so memory stays flat however long the output is (a
450 MiB output peaks near 30 MiB). Output larger than ``MAX_TEXT_BYTES`` (512 MiB) is refused, from
a regular file's size before it is read.
"""

from __future__ import annotations

import codecs
import io
import itertools
import re
from collections import deque
from collections.abc import Iterator
from typing import BinaryIO

from ..errors import ReportError
from ..models import Run, TestResult
from . import MAX_KEPT_CHARS, TEXT_LIMIT, Budget, reader, size_text

__all__ = ["read_pytest_text", "parse_pytest_text", "looks_like_pytest"]

#: pytest output larger than this is refused (a regular file from its size, before reading it)
MAX_TEXT_BYTES = 512 * 1024**2
#: a line is read with this cap; of a longer one the start is kept and the rest read and dropped
MAX_LINE_BYTES = 16 * 1024**2
#: of each failure body after the first ``MAX_KEPT_CHARS / 2`` characters of them, this much is kept
SHORT_TEXT_LIMIT = 1024
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



def _suffixes(ids: list[str]) -> dict[str, int]:
    """Every tail of a node id after a ``::`` → the position of the first id that ends so."""
    index: dict[str, int] = {}
    for position, node in enumerate(ids):
        at = node.find("::")
        while at != -1:
            index.setdefault(node[at + 2:], position)
            at = node.find("::", at + 1)
    return index


def _match_id(title: str, phase: str, ids: list[str], index: dict[str, int]) -> str:
    """The node id from the short summary that this section title names, else the title."""
    if phase == "collection":
        return title
    found = [index[key] for key in (title.replace(".", "::"), title) if key in index]
    return ids[min(found)] if found else title


class _Body:
    """The lines of one failure section, bounded: the first and last ``TEXT_LIMIT / 2`` characters."""

    def __init__(self, first: str | None = None, limit: int = TEXT_LIMIT) -> None:
        self.limit = limit
        self.head: list[str] = []
        self.tail: deque[str] = deque()
        self.head_chars = self.tail_chars = 0
        self.cut = False
        if first is not None:
            self.add(first)

    def add(self, line: str) -> int:
        """Keep ``line``; returns how many more characters are kept now."""
        half = self.limit // 2
        before = self.head_chars + self.tail_chars
        if self.head_chars < half and not self.cut:
            kept = line[: half - self.head_chars]
            self.head.append(kept)
            self.head_chars += len(kept) + 1
            if len(kept) == len(line):
                return self.head_chars + self.tail_chars - before
            line = line[len(kept):]
        self.cut = self.cut or self.head_chars >= half
        line = line[-half:]
        self.tail.append(line)
        self.tail_chars += len(line) + 1
        while self.tail_chars > half and len(self.tail) > 1:
            self.tail_chars -= len(self.tail.popleft()) + 1
        return max(0, self.head_chars + self.tail_chars - before)

    def text(self) -> str:
        if not self.tail:
            return "\n".join(self.head)
        return "\n".join(self.head) + "\n[... kb cut the middle of a long report body ...]\n" + "\n".join(self.tail)


class _Parser:
    """pytest's terminal output, fed one line at a time; keeps only what the Run needs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.run = Run(format="pytest-text")
        self.budget = Budget(name)
        self.short: list[tuple[str, str, str]] = []
        self.sections: list[tuple[str, str, _Body, str]] = []  # (phase, title, body, banner)
        self.banner = ""
        self.current: _Body | None = None
        self.summary: str | None = None
        self.conftest: tuple[str, _Body] | None = None
        self.body_limit = TEXT_LIMIT
        self.body_chars = 0

    def _kept(self, chars: int) -> None:
        """Section bodies are not refused: past half of ``MAX_KEPT_CHARS`` each further one is cut shorter."""
        self.body_chars += chars
        if self.body_chars > MAX_KEPT_CHARS // 2 and self.body_limit > SHORT_TEXT_LIMIT:
            self.body_limit = SHORT_TEXT_LIMIT
            self.run.warnings.append(f"{self.name}: more than {size_text(MAX_KEPT_CHARS // 2)} of failure texts; "
                                     f"kb keeps {size_text(SHORT_TEXT_LIMIT)} of each further one")

    def feed(self, line: str) -> None:
        if "\x1b" in line:
            line = _ANSI.sub("", line)
        first = line[:1]
        if first == "p":
            head = _HEADER.match(line)
            if head:
                self.run.environment.setdefault("python", head.group(1))
                self.run.environment.setdefault("pytest", head.group(2))
                return
        elif first == "=":
            found = _SUMMARY.match(line)
            if found and _COUNT.search(found.group(1)):
                self.summary = found.group(1)[:4096]
                self.current = None
                return
            found = _BANNER.match(line)
            if found:
                self.banner = found.group(1).strip().upper()
                self.current = None
                return
        elif first == "I":
            found = _CONFTEST.match(line)
            if found:
                self.conftest = (found.group(1), _Body(line))
                self.budget.keep(len(found.group(1)) + min(len(line), TEXT_LIMIT))
                self.current = None
                return
        if self.banner in ("FAILURES", "ERRORS"):
            found = _SECTION.match(line) if first == "_" else None
            if found:
                phase, title = _phase_and_title(found.group(1).strip())
                self.current = _Body(limit=self.body_limit)
                self.sections.append((phase, title, self.current, self.banner))
                self.budget.result(title)
                return
            if self.current is not None:
                self._kept(self.current.add(line))
            return
        if self.banner == "SHORT TEST SUMMARY INFO":
            found = _SHORT.match(line) if first in ("F", "E") else None
            if found:
                message = (found.group(3) or "")[:TEXT_LIMIT]
                self.short.append((found.group(1), found.group(2), message))
                self.budget.result(found.group(2), message)
            return
        if self.conftest is not None and line.strip() and not line.startswith(("=", "-")):
            self._kept(self.conftest[1].add(line))

    def finish(self) -> Run:
        run, name, summary = self.run, self.name, self.summary
        ids = [node for _kind, node, _msg in self.short]
        index = _suffixes(ids)
        seen: set[str] = set()
        for phase, title, body, section_banner in self.sections:
            test_id = _match_id(title, phase, ids, index)
            outcome = "error" if section_banner == "ERRORS" else "failed"
            run.results.append(TestResult(test_id=test_id, outcome=outcome, phase=phase, name=title,
                                          text=body.text().strip("\n"), source=name))
            seen.add(test_id)
        for kind, node, message in self.short:
            if node not in seen:
                seen.add(node)
                run.results.append(TestResult(test_id=node, outcome="error" if kind == "ERROR" else "failed",
                                              phase="collection" if kind == "ERROR" and "::" not in node else "call",
                                              name=node, message=message, source=name))
        if self.conftest is not None:
            where, body = self.conftest
            run.results.insert(0, TestResult(test_id=where, outcome="error", phase="collection",
                                             name=where, text=body.text(), source=name))
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


def _feed_all(parser: _Parser, lines: Iterator[tuple[str, bool]]) -> None:
    """Feed ``lines`` (text, ended by a newline); a Python-escaped one-line capture of at most three
    lines is unescaped first (only such a short file can be one: the first lines are looked at)."""
    first: list[tuple[str, bool]] = []
    for item in lines:
        first.append(item)
        if sum(ended for _, ended in first) > 2:
            break
    else:
        text = _unescape("".join(line + "\n" * ended for line, ended in first))
        pieces = text.split("\n")
        for number, piece in enumerate(pieces):
            parser.feed(piece[:-1] if piece.endswith("\r") and number < len(pieces) - 1 else piece)
        return
    for line, ended in itertools.chain(first, lines):
        parser.feed(line[:-1] if ended and line.endswith("\r") else line)


def parse_pytest_text(text: str, name: str) -> Run:
    """Parse pytest's terminal output held in memory (e.g. captured by ``kb heal``)."""
    parser = _Parser(name)
    pieces = text.split("\n")
    _feed_all(parser, iter([(piece, number < len(pieces) - 1) for number, piece in enumerate(pieces)]))
    return parser.finish()


def _utf8_lines(data: BinaryIO, name: str, run: Run) -> Iterator[tuple[str, bool]]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    offset = number = 0
    try:
        while True:
            raw = data.readline(MAX_LINE_BYTES)
            if not raw:
                decoder.decode(b"", final=True)
                return
            number += 1
            line = decoder.decode(raw)
            offset += len(raw)
            ended = raw.endswith(b"\n")
            if not ended and len(raw) == MAX_LINE_BYTES:  # a longer line: the rest is read and dropped
                if len(run.warnings) < 100:
                    run.warnings.append(f"{name}: line {number} is longer than {size_text(MAX_LINE_BYTES)}; "
                                        "kb kept its start")
                while not ended:
                    raw = data.readline(MAX_LINE_BYTES)
                    if not raw:
                        break
                    decoder.decode(raw)
                    offset += len(raw)
                    ended = raw.endswith(b"\n")
            yield (line[:-1] if line.endswith("\n") else line), ended
    except UnicodeDecodeError as exc:
        raise ReportError(name, f"cannot decode as UTF-8: {exc.reason} at byte {offset + exc.start}") from None


def _utf16_lines(data: BinaryIO, name: str, run: Run) -> Iterator[tuple[str, bool]]:
    text = io.TextIOWrapper(data, encoding="utf-16", errors="strict", newline="\n")
    limit = MAX_LINE_BYTES // 2
    try:
        while True:
            line = text.readline(limit)
            if not line:
                return
            ended = line.endswith("\n")
            rest = line
            while not rest.endswith("\n") and len(rest) == limit:
                rest = text.readline(limit)
            yield (line[:-1] if ended else line), ended or rest.endswith("\n")
    except UnicodeError as exc:
        raise ReportError(name, f"cannot decode as UTF-16: {getattr(exc, 'reason', exc)}") from None
    finally:
        text.detach()


@reader("pytest-text", sniff=looks_like_pytest, max_bytes=MAX_TEXT_BYTES, label="pytest output")
def read_pytest_text(data: BinaryIO, name: str) -> Run:
    """Stream pytest's output line by line (each line read with a cap, ``MAX_LINE_BYTES``), keeping only
    what the Run needs, each failure body bounded: memory stays flat however long the output is."""
    parser = _Parser(name)
    utf16 = data.peek(2)[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # type: ignore[attr-defined]
    _feed_all(parser, (_utf16_lines if utf16 else _utf8_lines)(data, name, parser.run))
    return parser.finish()
