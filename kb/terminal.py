"""Text that reaches a terminal (or a Markdown file) from reports is shown, never obeyed.

Test names, messages and file names come from the reports kb reads, and pytest output can carry ANSI
sequences (CSI colours, OSC titles and hyperlinks, DCS…) or forged lines. :func:`safe_text` escapes
every control character except line breaks and tabs (``\\x1b]0;title\\x07`` → ``\\x1b]0;title\\x07`` as
visible text); :func:`one_line` also escapes line breaks, for error lines that must stay one line.

kb's own colour is added after escaping (:func:`style`), and only where :func:`colour_wanted` says so.
"""

from __future__ import annotations

import os
import re
from typing import IO, Any

__all__ = ["safe_text", "one_line", "MAX_LINE", "colour_wanted", "style", "fit", "BOLD", "DIM", "RED", "GREEN",
           "YELLOW", "CYAN"]

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


# SGR codes for :func:`style`
BOLD, DIM, RED, GREEN, YELLOW, CYAN = "1", "2", "31", "32", "33", "36"


def colour_wanted(stream: IO[Any] | None, environ: dict[str, str] | None = None) -> bool:
    """Whether kb colours what it writes to ``stream``: ``FORCE_COLOR`` set and not empty forces it (even
    piped; it wins over ``NO_COLOR``, as force-color.org's reference code does), ``NO_COLOR`` set and not
    empty turns it off (no-color.org), otherwise only on a terminal that is not ``TERM=dumb``."""
    env = os.environ if environ is None else environ
    if env.get("FORCE_COLOR"):
        return True
    if env.get("NO_COLOR") or env.get("TERM") == "dumb" or stream is None:
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def style(text: str, *codes: str) -> str:
    """``text`` in the SGR ``codes`` (:data:`BOLD`, :data:`RED`…), reset after it."""
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


def fit(line: str, width: int) -> str:
    """``line`` cut to ``width`` characters (the last one an ellipsis when cut), for a line that overwrites
    itself: one that wraps can no longer be overwritten."""
    if width <= 0:
        return ""
    return line if len(line) <= width else line[: width - 1] + "…"
