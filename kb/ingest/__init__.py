"""Reading test reports: a registry of readers, the format sniffed from the content.

``read_reports(paths)`` takes files, directories (every file in them that sniffs as a
supported report, in sorted order) and ``-`` for standard input, and returns one merged
:class:`kb.models.Run`. A reader is one decorated function::

    @reader("junit", sniff=lambda head: head.lstrip().startswith(b"<"))
    def read_junit(data: BinaryIO, name: str) -> Run: ...

Anything wrong with a report is a :class:`kb.errors.ReportError` naming the file and the reason.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ReportError
from ..models import Run

__all__ = ["reader", "read_report", "read_reports", "sniff", "MAX_REPORT_BYTES"]

#: a report larger than this is refused (streamed readers never hold it whole)
MAX_REPORT_BYTES = 2 * 1024**3
HEAD_BYTES = 64 * 1024

Reader = Callable[[BinaryIO, str], Run]


@dataclass(frozen=True)
class _Entry:
    name: str
    sniff: Callable[[bytes], bool]
    read: Reader


_READERS: list[_Entry] = []


def reader(name: str, *, sniff: Callable[[bytes], bool]) -> Callable[[Reader], Reader]:
    """Register a reader; ``sniff`` sees the first 64 KiB and says whether the reader applies."""

    def register(func: Reader) -> Reader:
        _READERS.append(_Entry(name, sniff, func))
        return func

    return register


def sniff(head: bytes) -> str | None:
    """The name of the first registered reader that recognises ``head``, or None."""
    for entry in _READERS:
        if entry.sniff(head):
            return entry.name
    return None


def _read_stream(stream: BinaryIO, name: str) -> Run:
    head = stream.read(HEAD_BYTES)
    if not head:
        raise ReportError(name, "empty file")
    rest = io.BufferedReader(_Prepend(head, stream))  # type: ignore[arg-type]
    for entry in _READERS:
        if entry.sniff(head):
            run = entry.read(rest, name)
            run.sources = [name]
            run.format = run.format or entry.name
            return run
    raise ReportError(name, "not a test report kb can read (expected JUnit XML or pytest terminal output)")


class _Prepend(io.RawIOBase):
    """A raw stream that replays ``head`` before the rest of ``stream`` (stdin can't seek)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        if self._head.nbytes:
            n = min(len(buffer), self._head.nbytes)
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        chunk = self._stream.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def read_report(path: str | os.PathLike[str], stdin: BinaryIO | None = None) -> Run:
    """Read one report file (or ``-``: standard input)."""
    name = os.fspath(path)
    if name == "-":
        return _read_stream(stdin or sys.stdin.buffer, "<stdin>")
    try:
        size = os.path.getsize(name)
        if os.path.isdir(name):
            raise ReportError(name, "is a directory")
        if size > MAX_REPORT_BYTES:
            raise ReportError(name, f"larger than {MAX_REPORT_BYTES // 1024**3} GiB")
        with open(name, "rb") as handle:
            return _read_stream(handle, name)
    except OSError as exc:
        raise ReportError(name, exc.strerror or str(exc)) from None


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
from . import junit, runfile, pytest_text  # noqa: E402,F401  (sniffed in this order)
