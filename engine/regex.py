r"""Rule regexes, run by RE2 (google-re2): time linear in the text, whatever the pattern — the only re2 importer.

A pack's regex is data from possibly shared packs. Python's backtracking ``re`` can take exponential
(``(a+)+$``) or high-polynomial (``boom.*.*.*.*.*.*!``) time on one long message, and no syntactic check
finds every such shape. RE2 does not backtrack; what it cannot run in linear time (lookarounds,
backreferences, conditionals, atomic groups) it refuses to compile, and the pack is refused with it.

The dialect is the one RE2 and Python share (the index extracts required literals with Python's
parser): ``(?P<name>...)``, ``(?i)``, classes, bounded repeats up to 1,000. Unlike Python's, ``\w \d \s
\b`` are ASCII-only and ``$`` matches only at the very end of the text (not before a final newline).

``backtracking`` is Python ``re``, for the few vetted built-in regexes RE2 cannot express.
"""

from __future__ import annotations

import re
import warnings
from functools import lru_cache
from typing import Any, Protocol

import re2

try:  # Python 3.11+
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse  # type: ignore[no-redef,unused-ignore]

__all__ = ["Pattern", "Match", "RegexError", "compile", "backtracking", "unsupported", "python_parse", "sre_parse"]


class Match(Protocol):
    def groupdict(self) -> dict[str, str | None]: ...

    def group(self, *groups: Any) -> Any: ...


class Pattern(Protocol):
    """What the matcher and the lint use of a compiled regex (both engines provide it)."""

    @property
    def pattern(self) -> Any: ...

    @property
    def groupindex(self) -> Any: ...

    def search(self, text: str) -> Match | None: ...

    def captures(self, text: str) -> dict[str, str] | None:
        """The named groups that took part in the first match (``groupdict()`` without the Nones), or
        None when there is no match: the one question the matcher asks."""
        ...


class _Wrapped:
    """What both kinds of compiled pattern answer the same way: the compiled pattern's own attributes."""

    __slots__ = ("_compiled",)
    _compiled: Any

    @property
    def pattern(self) -> Any:
        return self._compiled.pattern

    @property
    def groupindex(self) -> Any:
        return self._compiled.groupindex


class _Linear(_Wrapped):
    """A pattern RE2 runs. ``captures`` asks the binding directly, over the UTF-8 bytes: google-re2's
    Python wrapper re-encodes the text and maps every offset back to characters on each search, which
    was most of the matcher's time on a large report (measured: 14 µs a search through the wrapper,
    2.5 µs here). ``search`` is the wrapper's (lint, authoring)."""

    __slots__ = ("_match", "_groups")

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        self._match = compiled._regexp.Match  # the binding call the wrapper's own search makes
        self._groups: tuple[tuple[str, int], ...] = tuple(compiled.groupindex.items())

    def search(self, text: str) -> Match | None:
        return self._compiled.search(text)  # type: ignore[no-any-return]

    def captures(self, text: str) -> dict[str, str] | None:
        data = text.encode("utf-8")
        spans = self._match(_UNANCHORED, data, 0, len(data))
        if spans[0][0] < 0:
            return None
        if len(data) == len(text):  # ASCII: byte offsets are character offsets
            return {name: text[spans[i][0]:spans[i][1]] for name, i in self._groups if spans[i][0] >= 0}
        return {name: data[spans[i][0]:spans[i][1]].decode("utf-8") for name, i in self._groups if spans[i][0] >= 0}


class _Backtracking(_Wrapped):
    """A pattern Python's ``re`` runs (vetted built-in regexes RE2 cannot express)."""

    __slots__ = ()
    _compiled: re.Pattern[str]

    def __init__(self, compiled: re.Pattern[str]) -> None:
        self._compiled = compiled

    def search(self, text: str) -> Match | None:
        return self._compiled.search(text)

    def captures(self, text: str) -> dict[str, str] | None:
        found = self._compiled.search(text)
        return None if found is None else {k: v for k, v in found.groupdict().items() if v is not None}


_UNANCHORED = re2._Anchor.UNANCHORED


#: ``x{,3}``: an unescaped ``{,n}`` (outside a class it is the only construct the two dialects read differently)
_EMPTY_LOW = re.compile(r"(?<!\\)(?:\\\\)*\{,\d+\}")


class RegexError(ValueError):
    """A pattern the engine will not run; the message is the reason, one line."""


def _options(ignore_case: bool) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print each refusal on stderr
    options.case_sensitive = not ignore_case
    return options


def compile(pattern: str, ignore_case: bool = False) -> Pattern:  # noqa: A001 - the module's verb
    """``pattern`` compiled by RE2; RegexError (why) if RE2 cannot run it in linear time or Python's
    ``re`` cannot parse it (the dialect is what both accept)."""
    try:
        compiled = re2.compile(pattern, _options(ignore_case))
    except re2.error as exc:
        raise RegexError(_reason(exc)) from None
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # "possible nested set": [[:alpha:]] differs
        try:
            python_parse(pattern)
        except re.error as exc:
            raise RegexError(f"not valid Python regex syntax: {exc}") from None
        except FutureWarning as exc:
            raise RegexError(f"Python and RE2 read it differently ({exc}): escape the [") from None
    if _EMPTY_LOW.search(pattern):
        raise RegexError("{,n} is a repeat for Python but literal text for RE2: write {0,n}")
    return _Linear(compiled)


@lru_cache(maxsize=1024)
def python_parse(pattern: str, flags: int = 0) -> Any:
    """Python's parse tree of ``pattern`` (re.error if it has none), cached: the syntax check, the
    hazard check and the required-literal extraction of one rule each need it."""
    return sre_parse.parse(pattern, flags)


def unsupported(pattern: str) -> str | None:
    """Why ``pattern`` cannot run on RE2 (one line), or None."""
    try:
        compile(pattern)
    except RegexError as exc:
        return str(exc)
    return None


def backtracking(pattern: str, ignore_case: bool = False) -> Pattern:
    """Python ``re`` — only for vetted built-in regexes RE2 cannot express (a lookahead, a backreference)."""
    try:
        return _Backtracking(re.compile(pattern, re.IGNORECASE if ignore_case else 0))
    except re.error as exc:
        raise RegexError(f"does not compile: {exc}") from None


def _reason(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else exc
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = " ".join(text.split())[:200]
    if "invalid perl operator" in text or "invalid escape sequence: \\" in text and text[-1:].isdigit():
        hint = "lookarounds, backreferences and conditionals have no linear-time form"
    elif "invalid named capture group" in text and "(?P=" in text:
        hint = "backreferences have no linear-time form"
    elif "invalid escape sequence: \\Z" in text:
        hint = "use $ (RE2's $ is the very end of the text)"
    elif "repetition" in text:
        hint = "RE2 bounds counted repeats at 1,000 (nested ones multiply): matching is linear anyway, so write * or {0,1000}"
    else:
        hint = ""
    return f"RE2 cannot compile it ({text})" + (f": {hint}" if hint else "")
