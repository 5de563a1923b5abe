"""Line-level source edits the fix templates compose (exposed to Jinja as filters).

Each takes one line of Python source (no newline) and returns it edited, or unchanged when
the construct is not on that line — the caller compares and refuses a no-op plan.
Plain string scanning, bracket- and string-aware enough for one logical line; no regex
with nested quantifiers.
"""

from __future__ import annotations

import re

__all__ = ["drop_kwarg", "add_kwarg", "replace_import", "rename_attr", "replace_kwarg_value", "rename_def", "xfail_until", "regex_escape"]

_OPEN, _CLOSE = "([{", ")]}"


def _value_end(line: str, start: int) -> int:
    """Index just past the argument value starting at ``start`` (depth- and quote-aware)."""
    depth, quote, i = 0, "", start
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            if depth == 0:
                return i
            depth -= 1
        elif ch == "," and depth == 0:
            return i
        i += 1
    return i


def _call_spans(line: str, callable: str) -> list[tuple[int, int]]:
    """(start, end) of the argument text of each call of ``callable`` on the line.

    ``callable`` may be dotted (``asyncio.Lock``): the full name matches, and so does the bare
    last name when the code imported it directly (``from asyncio import Lock``).
    """
    names = {callable, callable.rsplit(".", 1)[-1]}
    spans = []
    for name in names:
        for found in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", line):
            end = found.end()
            while True:
                end = _value_end(line, end)
                if end >= len(line) or line[end] != ",":
                    break
                end += 1
            if end < len(line) and line[end] == ")":
                spans.append((found.end(), end))
    return sorted(set(spans))


def drop_kwarg(line: str, param: str, callable: str | None = None) -> str:
    """Remove ``param=value`` keyword arguments — only from calls of ``callable`` when it is given."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(param)}\s*=(?!=)")
    start = 0
    while True:
        spans = _call_spans(line, callable) if callable else [(0, len(line))]
        found = None
        for low, high in spans:
            candidate = pattern.search(line, max(low, start), high)
            if candidate and (found is None or candidate.start() < found.start()):
                found = candidate
        if not found:
            return line
        end = _value_end(line, found.end())
        before = line[: found.start()]
        after = line[end:]
        stripped = before.rstrip()
        if stripped.endswith(","):  # f(a, loop=x) → f(a)
            before = stripped[:-1]
        elif after.startswith(","):  # f(loop=x, a) → f(a)
            after = after[1:].lstrip()
        line = before + after
        start = len(before)


def add_kwarg(line: str, callable: str, param: str, value: str) -> str:
    """Add ``param=value`` to the first call of ``callable`` on ``line`` that lacks it."""
    found = re.search(rf"(?<![\w.]){re.escape(callable)}\s*\(", line)
    if not found:
        return line
    end = _value_end(line, found.end())
    while end < len(line) and line[end] == ",":
        end = _value_end(line, end + 1)
    if end >= len(line) or line[end] != ")":
        return line
    inside = line[found.end():end]
    if re.search(rf"(?<![\w.]){re.escape(param)}\s*=", inside):
        return line
    sep = ", " if inside.strip() else ""
    return f"{line[:end].rstrip() if inside.strip() else line[:end]}{sep}{param}={value}{line[end:]}"


def replace_import(line: str, module: str, name: str, new_module: str, new_name: str | None = None) -> str:
    """Move ``name`` in ``from module import ...`` to ``from new_module import name`` (same indent).

    With ``new_name`` the moved name was renamed too: it is imported under its new name and bound
    to the old one (``from urllib.parse import urlencode as url_encode``) so the code using it
    needs no change; an existing ``as`` alias is kept.
    """
    found = re.match(rf"(\s*)from\s+{re.escape(module)}\s+import\s+(\(?)([^()#]*)(\)?)(\s*(#.*)?)$", line)
    if not found:
        return line
    indent, names_text, comment = found.group(1), found.group(3), found.group(6)
    tail = f"  {comment}" if comment else ""
    names = [n.strip() for n in names_text.split(",") if n.strip()]
    moved = [n for n in names if n.split(" as ")[0].strip() == name]
    if not moved:
        return line
    rest = [n for n in names if n not in moved]
    if new_name and new_name != name:
        moved = [f"{new_name} as {n.split(' as ')[1].strip() if ' as ' in n else name}" for n in moved]
    new = f"{indent}from {new_module} import {', '.join(moved)}"
    if rest:
        return f"{indent}from {module} import {', '.join(rest)}{tail}\n{new}"
    return new + tail


#: conventional import aliases: a qualified name is found under either spelling (np.bool, numpy.bool)
ALIASES = {"np": "numpy", "pd": "pandas"}


def rename_attr(line: str, old: str, new: str) -> str:
    """Rename attribute or qualified name ``old`` (``tostring`` or ``collections.Mapping``) to ``new``.

    A qualified name under a conventional alias is also renamed in its other spelling
    (``np.float`` → ``np.float64`` also turns ``numpy.float`` into ``numpy.float64``).
    """
    if "." in old:
        head = old.split(".", 1)[0]
        other = ALIASES.get(head) or next((a for a, m in ALIASES.items() if m == head), None)
        if other:
            swapped_new = other + new[len(head):] if new.startswith(head + ".") else new
            line = re.sub(rf"(?<![\w.]){re.escape(other + old[len(head):])}(?!\w)", swapped_new, line)
        return re.sub(rf"(?<![\w.]){re.escape(old)}(?!\w)", new, line)
    return re.sub(rf"\.{re.escape(old)}(?!\w)", f".{new}", line)


def replace_kwarg_value(line: str, param: str, old: str, new: str) -> str:
    """``param='old'`` → ``param='new'`` (a string literal keyword value; the quote style is kept)."""
    return re.sub(rf"(?<![\w.])({re.escape(param)}\s*=\s*)([\"'])({re.escape(old)})\2", rf"\g<1>\g<2>{new}\g<2>", line)


def rename_def(line: str, old: str, new: str) -> str:
    """``def old(`` → ``def new(`` (the planner decides which definitions qualify)."""
    return re.sub(rf"^(\s*(?:async\s+)?def\s+){re.escape(old)}(\s*\()", rf"\g<1>{new}\g<2>", line)


def xfail_until(line: str, until: str, reason: str) -> str:
    """Put an expiring xfail mark above the test definition on ``line`` (quarantine).

    The condition compares today's ISO date with ``until``, so the mark lapses by itself on that
    day and the test counts again; ``strict=False`` because a quarantined flaky test may pass.
    """
    found = re.match(r"(\s*)(?:async\s+)?def\s+test", line)
    if not found or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", until):
        return line
    indent = found.group(1)
    condition = f"__import__('datetime').date.today().isoformat() < {until!r}"
    return f"{indent}@pytest.mark.xfail({condition!r}, reason={reason!r}, strict=False)\n{line}"


def regex_escape(text: str) -> str:
    """``text`` as a regex that matches it literally (a filterwarnings message field): only the
    characters special to a regex are escaped, so the entry stays readable."""
    return re.sub(r"([.^$*+?{}\[\]\\|()])", r"\\\1", text)
