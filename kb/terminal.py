"""Text that reaches a terminal (or a Markdown file) from reports is shown, never obeyed.

Test names, messages and file names come from the reports kb reads, and pytest output can carry ANSI
sequences (CSI colours, OSC titles and hyperlinks, DCS…) or forged lines. :func:`safe_text` escapes
every control character except line breaks and tabs (``\\x1b]0;title\\x07`` → ``\\x1b]0;title\\x07`` as
visible text); :func:`one_line` also escapes line breaks, for error lines that must stay one line.
"""

from __future__ import annotations

import re

__all__ = ["safe_text", "one_line", "MAX_LINE"]

#: an error line is cut here (a report can put megabytes into one message)
MAX_LINE = 2000

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(found: re.Match[str]) -> str:
    char = found.group(0)
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def safe_text(text: str) -> str:
    """``text`` with every control character but newline and tab escaped (carriage returns too: a
    ``\\r`` can overwrite what a line showed; bidirectional overrides: they reorder what is shown)."""
    return _CONTROLS.sub(_escape, text)


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` as one line: control characters and line breaks escaped, cut at ``limit`` characters."""
    line = safe_text(text).replace("\n", "\\n").replace("\t", " ")
    return line if len(line) <= limit else line[: limit - 1] + "…"
