"""Failure facts: one per failing or erroring test and per collection/suite-level error.

Producers rarely say where a failure happened: pytest's default XML has no file/line, so
frames, the exception type and its message are parsed from the traceback text — pytest's
long/short/line styles (``path.py:12: in func``, the final ``path.py:39: TypeError`` and the
``E   Type: message`` lines) and Python's native one (``File "x.py", line 3, in f``).
Every regex here is anchored and linear; texts are scanned only up to ``SCAN_BYTES``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .models import Frame, Run, TestResult

__all__ = ["Failure", "failures_from_run", "parse_traceback", "parse_chain", "MESSAGE_LIMIT"]

MESSAGE_LIMIT = 4000
#: the head and tail of a traceback this long are scanned (the raise site is at the end)
SCAN_BYTES = 64 * 1024
MAX_FRAMES = 200

# anchored on the ":LINE:" part (a fast literal scan); the path is the text before it on its line
_PYTEST_FRAME = re.compile(r":(\d{1,9}): ?(?:in (\S{1,300}))?([^\n]{0,300})$", re.M)
_NATIVE_FRAME = re.compile(r'^\s{0,40}File "([^"\n]{1,500})", line (\d{1,9})(?:, in (\S{1,300}))?', re.M)
_E_LINE = re.compile(r"\nE {1,20}([^\n]{0,2000})")
_TYPED = re.compile(r"^([A-Za-z_][\w.]{0,200}): ?(.*)$", re.S)
_NATIVE_LAST = re.compile(r"^([A-Za-z_][\w.]{0,200}(?:Error|Exception|Warning|Exit|Interrupt|Iteration))(?:: (.*))?$")


class Failure(NamedTuple):
    """One failing test's facts. An immutable value, as a frozen dataclass would be, but a report has one
    per failing test (tens of thousands): a NamedTuple is built four times faster."""

    id: int
    test: str
    phase: str
    exception: str
    message: str
    frames: tuple[Frame, ...]
    location: Frame | None
    text: str
    source: str
    #: earlier exceptions of a chain ("During handling of the above exception ..."), oldest first
    chain: tuple[tuple[str, str], ...] = ()


def _is_type(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return bool(last) and last[0].isupper() and last.isidentifier()


def _scan_window(text: str) -> str:
    if len(text) <= SCAN_BYTES:
        return text
    return text[: SCAN_BYTES // 4] + "\n" + text[-(SCAN_BYTES * 3 // 4):]


def _e_blocks(window: str) -> list[list[str]]:
    """pytest's ``E   `` lines, grouped into runs of consecutive lines (one per exception shown)."""
    blocks: list[list[str]] = []
    last_end = -1
    for found in _E_LINE.finditer(window):
        if found.start() != last_end:
            blocks.append([])
        blocks[-1].append(found.group(1))
        last_end = found.end()
    return blocks


def _typed(lines: list[str], expected: str = "") -> tuple[str, str] | None:
    """(type, message) from the first ``Type: message`` line of an E block (of type ``expected`` if given)."""
    dotted = "." + expected
    for i, line in enumerate(lines):
        typed = _TYPED.match(line.strip())
        if typed is None:
            continue
        name, first = typed.groups()
        if _is_type(name) and (not expected or name == expected or name.endswith(dotted)):
            if i + 1 == len(lines):  # the usual one-line message
                return name, first.strip()[:MESSAGE_LIMIT]
            message = "\n".join([first, *(rest.strip() for rest in lines[i + 1:])]).strip()
            return name, message[:MESSAGE_LIMIT]
    return None


class _Seen:
    """What one run's failures share, parsed once: a report repeats the same few files and lines (one
    Frame value each) and failures of one cause print the same E block. Kept for one run only, and
    bounded, so a long-lived process holds nothing and a huge report of distinct texts adds little."""

    __slots__ = ("frames", "blocks")

    def __init__(self) -> None:
        self.frames: dict[tuple[str, str, str | None], Frame] = {}
        self.blocks: dict[tuple[tuple[str, ...], str], tuple[str, str]] = {}

    def new_frame(self, key: tuple[str, str, str | None]) -> Frame:
        """The Frame of a (path, line, function) not seen yet (the lookup itself is inline in the parser)."""
        frame = Frame(key[0], int(key[1]), key[2])
        if len(self.frames) < MAX_SEEN:
            self.frames[key] = frame
        return frame

    def new_block(self, key: tuple[tuple[str, ...], str]) -> tuple[str, str]:
        said = _block_facts(list(key[0]), key[1])
        if len(self.blocks) < MAX_SEEN and sum(map(len, key[0])) <= MAX_SEEN_BLOCK:
            self.blocks[key] = said
        return said


#: at most this many frames and E blocks are remembered per run, E blocks of at most this many characters
MAX_SEEN = 65_536
MAX_SEEN_BLOCK = 1024


def _last_e_block(window: str) -> list[str]:
    """``_e_blocks(window)[-1]`` (or ``[]``), found from the end: only the last block's lines are matched.

    Every ``\\nE `` starts an ``E`` line (a match never spans a line break), and two lines are in one
    block when the earlier one's match ends where the later one starts (a line cut at its 2,000
    characters ends its block)."""
    at = window.rfind("\nE ")
    if at < 0:
        return []
    found = _E_LINE.match(window, at)
    if found is None:  # pragma: no cover - "\nE " always starts a match
        return []
    lines = [found.group(1)]
    while True:
        before = window.rfind("\n", 0, at)
        if before < 0 or not window.startswith("\nE ", before):
            break
        earlier = _E_LINE.match(window, before)
        if earlier is None or earlier.end() != at:
            break
        lines.append(earlier.group(1))
        at = before
    lines.reverse()
    return lines


def _block_facts(block: list[str], final_type: str) -> tuple[str, str]:
    """(exception, message) of the last E block: its ``Type: message`` line, else the final frame's type."""
    typed = _typed(block, final_type)
    if typed:
        return typed
    return final_type, "\n".join(line.strip() for line in block).strip()


def _tail_lines(text: str, count: int) -> list[str]:
    """``text.splitlines()[-count:]`` without splitting all of ``text``: the suffix after the
    (count + 1)-th ``\\n`` from the end starts a line and holds at least ``count`` lines."""
    at = len(text)
    for _ in range(count + 1):
        at = text.rfind("\n", 0, at)
        if at < 0:
            return text.splitlines()[-count:]
    return text[at + 1:].splitlines()[-count:]


def parse_traceback(text: str) -> tuple[str, str, list[Frame]]:
    """(exception type, message, frames) found in a traceback text; empty strings if none."""
    return _parse(text, _Seen())


def _parse(text: str, seen: _Seen) -> tuple[str, str, list[Frame]]:
    window = "\n" + _scan_window(text)
    frames: list[Frame] = []
    final_type = ""
    line_start = window.rfind
    seen_frame = seen.frames.get
    for found in _PYTEST_FRAME.finditer(window):
        at = found.start()
        start = line_start("\n", 0, at) + 1
        path = window[start:at]
        if not path or path[0].isspace() or ":" in path or len(path) > 500:
            continue
        line, func, rest = found.groups()
        if func is None:
            rest = rest.strip()
            if rest:
                if not _is_type(rest):
                    continue  # "path:12: something else" is not a frame line
                final_type = rest
        key = (path, line, func)
        frames.append(seen_frame(key) or seen.new_frame(key))
    if not frames:
        for found in _NATIVE_FRAME.finditer(window):
            path, line, func = found.groups()
            key = (path, line, func)
            frames.append(seen_frame(key) or seen.new_frame(key))
    exception, message = "", ""
    block = _last_e_block(window)
    if block:
        said = (tuple(block), final_type)
        exception, message = seen.blocks.get(said) or seen.new_block(said)
    elif text and not text.isspace():
        stripped = window.strip()
        for line in reversed(_tail_lines(stripped, 20)):
            native = _NATIVE_LAST.match(line.strip())
            if native:
                exception, message = native.group(1), (native.group(2) or "")
                break
    if not exception and final_type:
        exception = final_type
    return exception, message[:MESSAGE_LIMIT], frames[-MAX_FRAMES:]


_CHAIN_MARKERS = ("During handling of the above exception", "The above exception was the direct cause")
MAX_CHAIN = 5


def parse_chain(text: str) -> list[tuple[str, str]]:
    """The earlier exceptions of a chained traceback, oldest first (the last one is not included)."""
    if _CHAIN_MARKERS[0] not in text and _CHAIN_MARKERS[1] not in text:
        return []
    chain = [typed for typed in (_typed(lines) for lines in _e_blocks("\n" + _scan_window(text))[:-1]) if typed]
    return chain[-MAX_CHAIN:]


def _project_frame(frames: list[Frame]) -> Frame | None:
    """The innermost frame in the project's own code, else the innermost frame.

    pytest prints project files relative to its rootdir and installed packages / the standard
    library as absolute paths (or compiled sources such as ``.pyx``).
    """
    for frame in reversed(frames):
        path = frame.file
        if not path.startswith(("/", "\\")) and path[1:3] != ":\\" and "site-packages" not in path \
                and path.endswith(".py"):
            return frame
    return frames[-1] if frames else None


def _from_attributes(result: TestResult) -> tuple[str, str]:
    message = result.message.strip()
    typed = _TYPED.match(message)
    if typed and _is_type(typed.group(1)) and " " not in typed.group(1):
        return typed.group(1), typed.group(2)
    return result.type.strip(), message


def _failure(fid: int, result: TestResult, seen: _Seen) -> Failure:
    if result.frames or result.chain:  # structured facts (a kb run file): nothing to guess from text
        exception, message = _from_attributes(result)
        frames = list(result.frames)
        return Failure(id=fid, test=result.test_id, phase=result.phase, exception=exception,
                       message=message[:MESSAGE_LIMIT], frames=tuple(frames[-MAX_FRAMES:]),
                       location=_project_frame(frames), text=result.text or result.message, source=result.source,
                       chain=result.chain[-MAX_CHAIN:])
    text = result.text
    exception, message, frames = _parse(text, seen) if text else ("", "", [])
    if not exception or not message:  # the attributes only fill what the traceback did not say
        attr_type, attr_message = _from_attributes(result)
        if not exception:
            exception, message = attr_type, message or attr_message
        else:
            message = attr_message
    if not exception and message.lower() in ("", "collection failure") and text and not text.isspace():
        # e.g. pytest collection errors that print a bare sentence instead of an exception
        message = text.strip().splitlines()[0]
    if result.file:
        location: Frame | None = Frame(result.file, result.line, None)
    else:
        location = _project_frame(frames)
    # positional: a frozen dataclass's keyword call costs twice as much, and a report has thousands
    return Failure(fid, result.test_id, result.phase, exception, message[:MESSAGE_LIMIT], tuple(frames), location,
                   text or result.message, result.source, tuple(parse_chain(text)) if text else ())


def failures_from_run(run: Run) -> list[Failure]:
    """One Failure per failed/erroring result (suite-level errors included), in report order."""
    seen = _Seen()
    return [_failure(i, r, seen) for i, r in enumerate(r for r in run.results if r.outcome in ("failed", "error"))]
