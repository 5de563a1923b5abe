"""Reading test reports: a registry of readers, the format sniffed from the content.

``read_reports(paths)`` takes files, directories (every file in them that sniffs as a
supported report, in sorted order) and ``-`` for standard input, and returns one merged
:class:`kb.models.Run`. A reader is one decorated function::

    @reader("junit", sniff=lambda head: head.lstrip().startswith(b"<"))
    def read_junit(data: BinaryIO, name: str) -> Run: ...

Anything wrong with a report is a :class:`kb.errors.ReportError` naming the file and the reason.

Every read is bounded before anything is buffered: a regular file larger than
``MAX_REPORT_BYTES`` (2 GiB, or its reader's own ``max_bytes``, e.g. 512 MiB for pytest output) is
refused from its ``st_size`` without reading it; standard input, FIFOs and other non-regular files
(whose size is unknown) are read through a counter that refuses the stream once it passes the same
cap, having read at most cap + 1 bytes. Readers bound their lines and what they keep themselves.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ReportError
from ..models import Run

__all__ = ["reader", "read_report", "read_reports", "sniff", "size_text", "bounded", "one_line", "Budget",
           "MAX_REPORT_BYTES", "MAX_TESTS", "MAX_RESULTS", "MAX_KEPT_CHARS", "TEXT_LIMIT"]

#: a report larger than this is refused (streamed readers never hold it whole)
MAX_REPORT_BYTES = 2 * 1024**3
#: what a reader keeps of one report is bounded whatever its byte size (an endless stream is refused
#: in bounded memory too): test ids (one per test, ``Run.order``), non-passing results, and the
#: characters of ids and failure texts together; a report past any of these is refused
MAX_TESTS = 1_000_000
MAX_RESULTS = 100_000
MAX_KEPT_CHARS = 64 * 1024**2
#: text kept per failure: head and tail of longer bodies
TEXT_LIMIT = 64 * 1024
HEAD_BYTES = 64 * 1024

Reader = Callable[[BinaryIO, str], Run]


@dataclass(frozen=True)
class _Entry:
    name: str
    sniff: Callable[[bytes], bool]
    read: Reader
    max_bytes: int | None
    label: str


_READERS: list[_Entry] = []


def size_text(size: int) -> str:
    """``2 GiB``, ``512 MiB``, ``4 MiB``, ``300 bytes``: a cap as error messages state it."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def one_line(text: str, limit: int = 200) -> str:
    """``text`` fit for one line of an error message: control characters and line breaks escaped as
    ``repr`` escapes them (so a forged "\\nkb: ..." stays on the line), at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit * 2])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text``, or its head and tail when longer than ``limit`` characters."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + "\n[... kb cut the middle of a long report body ...]\n" + text[-half:]


class Budget:
    """Counts what a reader keeps of one report and refuses the report past ``MAX_TESTS`` test ids,
    ``MAX_RESULTS`` non-passing results or ``MAX_KEPT_CHARS`` characters of ids and texts."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tests = self.results = self.chars = 0
        #: the caps, as they are when the report is read (a reader's inline checks compare with these)
        self.max_tests, self.max_results, self.max_chars = MAX_TESTS, MAX_RESULTS, MAX_KEPT_CHARS

    def test(self, test_id: str) -> None:
        self.tests += 1
        self.chars += len(test_id)
        self.check()

    def result(self, *texts: str) -> None:
        self.results += 1
        self.chars += sum(map(len, texts))
        self.check()

    def keep(self, chars: int) -> None:
        self.chars += chars
        self.check()

    def check(self) -> None:
        """Refuse the report if a count is past its cap (readers that count inline call this when one is)."""
        if self.tests > self.max_tests:
            raise ReportError(self.name, f"more than {self.max_tests:,} tests")
        if self.results > self.max_results:
            raise ReportError(self.name, f"more than {self.max_results:,} failing tests")
        if self.chars > self.max_chars:
            raise ReportError(self.name, f"more than {size_text(self.max_chars)} of test ids and failure texts")


def reader(name: str, *, sniff: Callable[[bytes], bool], max_bytes: int | None = None,
           label: str = "") -> Callable[[Reader], Reader]:
    """Register a reader; ``sniff`` sees the first 64 KiB and says whether the reader applies.

    A report of this format larger than ``max_bytes`` is refused ("<label> larger than <cap>")
    before the reader sees it (regular files) or as soon as the stream passes the cap (others)."""

    def register(func: Reader) -> Reader:
        _READERS.append(_Entry(name, sniff, func, max_bytes, label))
        return func

    return register


def _too_big(entry: _Entry | None, cap: int) -> str:
    label = entry.label if entry is not None and entry.label else ""
    return f"{label} larger than {size_text(cap)}".strip()


def sniff(head: bytes) -> str | None:
    """The name of the first registered reader that recognises ``head``, or None."""
    for entry in _READERS:
        if entry.sniff(head):
            return entry.name
    return None


def _read_stream(stream: BinaryIO, name: str, size: int | None = None) -> Run:
    """Sniff and read ``stream``; ``size`` is a regular file's ``st_size`` (None: unknown, e.g. stdin)."""
    head = stream.read(HEAD_BYTES)
    if not head:
        raise ReportError(name, "empty file")
    for entry in _READERS:
        if entry.sniff(head):
            cap = min(entry.max_bytes or MAX_REPORT_BYTES, MAX_REPORT_BYTES)
            if size is not None and size > cap:
                raise ReportError(name, _too_big(entry, cap))
            rest = io.BufferedReader(_Bounded(head, stream, name, cap, _too_big(entry, cap)))
            run = entry.read(rest, name)
            run.sources = [name]
            run.format = run.format or entry.name
            return run
    raise ReportError(name, "not a test report kb can read (expected JUnit XML or pytest terminal output)")


class _Bounded(io.RawIOBase):
    """A raw stream that replays ``head`` before the rest of ``stream`` (stdin can't seek) and
    refuses the report once more than ``cap`` bytes came through: it never asks ``stream`` for more
    than cap + 1 bytes in all, so an endless pipe or a file that grows while read ends."""

    def __init__(self, head: bytes, stream: BinaryIO, name: str, cap: int, too_big: str) -> None:
        self._head = memoryview(head)
        self._stream = stream
        self._name = name
        self._left = cap + 1 - len(head)
        self._too_big = too_big
        if self._left <= 0:
            raise ReportError(name, too_big)

    def readable(self) -> bool:
        return True

    # BufferedReader, our only caller, passes a memoryview; RawIOBase declares any writable buffer
    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head.nbytes:
            n = min(len(buffer), self._head.nbytes)
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        try:
            chunk = self._stream.read(min(len(buffer), self._left))
        except OSError as exc:
            raise ReportError(self._name, f"cannot read: {one_line(exc.strerror or str(exc))}") from None
        self._left -= len(chunk)
        if self._left <= 0:
            raise ReportError(self._name, self._too_big)
        buffer[: len(chunk)] = chunk
        return len(chunk)


def read_report(path: str | os.PathLike[str], stdin: BinaryIO | None = None) -> Run:
    """Read one report file (or ``-``: standard input)."""
    name = os.fspath(path)
    if name == "-":
        return _read_stream(stdin or sys.stdin.buffer, "<stdin>")
    try:
        info = os.stat(name)
        if stat.S_ISDIR(info.st_mode):
            raise ReportError(name, "is a directory")
        regular = stat.S_ISREG(info.st_mode)
        if regular and info.st_size > MAX_REPORT_BYTES:
            raise ReportError(name, _too_big(None, MAX_REPORT_BYTES))
        with open(name, "rb") as handle:
            info = os.fstat(handle.fileno())  # again: the path may have been replaced since
            regular = stat.S_ISREG(info.st_mode)
            if regular and info.st_size > MAX_REPORT_BYTES:
                raise ReportError(name, _too_big(None, MAX_REPORT_BYTES))
            return _read_stream(handle, name, info.st_size if regular else None)
    except OSError as exc:
        raise ReportError(name, one_line(exc.strerror or str(exc))) from None


def _directory(folder: Path) -> list[str]:
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        try:
            with open(path, "rb") as handle:
                head = handle.read(HEAD_BYTES)
        except OSError:
            continue
        if head and sniff(head) is not None:
            found.append(str(path))
    if not found:
        raise ReportError(str(folder), "no test reports in this directory")
    return found


def read_reports(paths: list[str], stdin: BinaryIO | None = None) -> Run:
    """Read and merge every report named by ``paths`` (files, directories, ``-``)."""
    files: list[str] = []
    for path in paths:
        if path != "-" and os.path.isdir(path):
            files.extend(_directory(Path(path)))
        else:
            files.append(path)
    runs = [read_report(name, stdin=stdin) for name in files]
    return _merge(runs)


def _merge(runs: list[Run]) -> Run:
    """One run of several reports. A kb run file's facts are richer than any other report's, so the
    tests it covers are taken from it alone (a JUnit XML of the same session adds nothing new)."""
    covered = {test for r in runs if r.format == "kb-run" for test in r.order}
    run = Run()
    for part in runs:
        if covered and part.format != "kb-run":
            kept = [t for t in part.order if t not in covered]
            dropped = len(part.order) - len(kept)
            if dropped:
                part.results = [r for r in part.results if r.test_id not in covered]
                part.order = kept
                part.tests = len(kept)
                failing = {r.test_id for r in part.results if r.outcome in ("failed", "error")}
                part.failures = sum(1 for r in part.results if r.outcome == "failed")
                part.errors = sum(1 for r in part.results if r.outcome == "error")
                part.skipped = min(part.skipped, len(kept) - len(failing))
                part.passed = max(0, len(kept) - len(failing) - part.skipped)
                part.warnings.append(f"{dropped} test(s) of {part.sources[0]} taken from the kb run file instead")
        run.merge(part)
    return run


# the built-in readers register themselves on import (JUnit first: it claims '<'; the run file's
# first line is a JSON object; pytest's terminal output last)
from . import junit, pytest_text, runfile  # noqa: E402,F401  (sniffed in this order)
