"""Format-preserving edits of TOML and INI files (pyproject.toml, pytest.toml, setup.cfg, tox.ini,
pytest.ini) — the only module that imports ``tomlkit`` and ``configupdater``.

Each helper takes the file's text and returns the new text; comments, order, quoting, indentation and
the newline style (CRLF files stay CRLF) stay as they were, and only the lines that change differ.
TOML goes through tomlkit's document model. INI goes through configupdater for its *structure* (which
raw lines belong to which option of which section) and is then edited line by line, because
configupdater rewrites a changed option's whole value, dropping the comments and blank lines in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tomlkit
from configupdater import ConfigUpdater, Option, Section
from configupdater.parser import ParsingError
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Array, String, StringType, Table

__all__ = ["toml_read", "toml_list", "toml_map_strings", "toml_append_string", "ini_read", "ini_list", "ini_sections",
           "ini_map_list", "ini_append_list", "newline"]


def newline(text: str) -> str:
    """The text's newline: ``"\\r\\n"`` when it uses CRLF, else ``"\\n"``."""
    return "\r\n" if "\r\n" in text else "\n"


def _lf(text: str) -> tuple[str, str]:
    return text.replace("\r\n", "\n"), newline(text)


def _back(text: str, ending: str) -> str:
    return text.replace("\n", ending) if ending != "\n" else text


# --- TOML ---------------------------------------------------------------------------------------

def _parse_toml(text: str) -> Any:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ValueError(f"not valid TOML: {exc}") from exc


def toml_read(text: str) -> dict[str, Any]:
    """The document as plain Python values; ValueError when it is not valid TOML."""
    return dict(_parse_toml(_lf(text)[0]).unwrap())


def _arrays(node: Any, path: tuple[str, ...]) -> list[Any]:
    """The arrays at ``path`` under ``node``; a ``"*"`` step matches every key of a table."""
    if not path:
        return [node] if isinstance(node, Array) else []
    if not isinstance(node, (dict, Table)) or isinstance(node, AoT):
        return []
    head, rest = path[0], path[1:]
    keys = list(node.keys()) if head == "*" else [head] if head in node else []
    return [found for key in keys for found in _arrays(node[key], rest)]


def _string(value: str, like: Any) -> Any:
    """A TOML string for ``value`` quoted as ``like`` is (a literal '...' string stays literal)."""
    literal = "'" not in value and "\n" not in value and (
        (isinstance(like, String) and like.type in (StringType.SLL, StringType.MLL)) or "\\" in value)
    return tomlkit.string(value, literal=literal)


def toml_map_strings(text: str, path: tuple[str, ...], fn: Callable[[str], str | None]) -> str:
    """Every string in the arrays at ``path`` (``("project", "optional-dependencies", "*")``) replaced
    by ``fn(string)`` where that is not None; the text unchanged when nothing was replaced."""
    body, ending = _lf(text)
    document = _parse_toml(body)
    changed = False
    for array in _arrays(document, path):
        for index, item in enumerate(list(array)):
            if isinstance(item, str) and (new := fn(str(item))) is not None and new != str(item):
                array[index] = _string(new, item)
                changed = True
    return _back(tomlkit.dumps(document), ending) if changed else text


def toml_append_string(text: str, path: tuple[str, ...], value: str) -> str:
    """``value`` appended to the array at ``path`` (``("tool", "pytest", "markers")``), the array and
    the tables above it created when missing (new tables are written as ``[a.b]`` headers).
    ValueError when something on the path is not a table / the array is not an array."""
    body, ending = _lf(text)
    document = _parse_toml(body)
    node: Any = document
    created = False
    for step in path[:-1]:
        if step not in node:
            node.append(step, tomlkit.table())
            created = True
        node = node[step]
        if not isinstance(node, (dict, Table)) or isinstance(node, AoT):
            raise ValueError(f"{'.'.join(path)}: {step} is not a table")
    key = path[-1]
    if key not in node:
        node.append(key, tomlkit.array())
    array = node[key]
    if not isinstance(array, Array):
        raise ValueError(f"{'.'.join(path)} is not an array")
    like = next((item for item in array if isinstance(item, String)), None)
    array.append(_string(value, like))
    if created:
        node.add(tomlkit.nl())  # a new table is set off from the next one by a blank line
    out = tomlkit.dumps(document)
    if not body.endswith("\n\n"):
        out = out.rstrip("\n") + ("\n" if body.endswith("\n") or not body else "")
    return _back(out, ending)


def toml_list(text: str, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], list[str]]]:
    """(key path, its strings) of every array at ``path`` (a ``"*"`` step matches every key)."""
    document = _parse_toml(_lf(text)[0])
    found: list[tuple[tuple[str, ...], list[str]]] = []

    def walk(node: Any, rest: tuple[str, ...], at: tuple[str, ...]) -> None:
        if not rest:
            if isinstance(node, Array):
                found.append((at, [str(item) for item in node if isinstance(item, str)]))
            return
        if isinstance(node, (dict, Table)) and not isinstance(node, AoT):
            for key in (list(node.keys()) if rest[0] == "*" else [rest[0]] if rest[0] in node else []):
                walk(node[key], rest[1:], (*at, key))

    walk(document, path, ())
    return found


# --- INI ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Option:
    section: str
    key: str
    start: int          # index of the ``key = value`` line among the file's lines
    lines: tuple[str, ...]


@dataclass(frozen=True)
class _Section:
    name: str
    start: int          # index of the header line
    end: int            # index after its last line
    options: tuple[_Option, ...]


def _updater(text: str) -> ConfigUpdater:
    updater = ConfigUpdater(strict=False)
    try:
        updater.read_string(text)
    except (ParsingError, ValueError) as exc:
        raise ValueError(f"not a valid INI file: {exc}") from exc
    return updater


def _layout(text: str) -> list[_Section]:
    """Where each section and option of an INI text starts (line indices of ``text.splitlines()``)."""
    at = 0
    sections: list[_Section] = []
    for block in _updater(text).iter_blocks():
        if not isinstance(block, Section):
            at += len(block.lines)
            continue
        start = at
        at += len(block.lines)
        options = []
        for inner in block.iter_blocks():
            if isinstance(inner, Option):
                options.append(_Option(block.name, inner.key, at, tuple(line.rstrip("\n") for line in inner.lines)))
            at += len(inner.lines)
        sections.append(_Section(block.name, start, at, tuple(options)))
    return sections


def ini_read(text: str) -> dict[str, dict[str, str]]:
    """section → option → value (multi-line values joined by newlines, as configparser gives them);
    ValueError when it is not a valid INI file."""
    updater = _updater(_lf(text)[0])
    return {section.name: {key: str(option.value or "") for key, option in section.items()}
            for section in updater.iter_sections()}


_CONTINUATION = re.compile(r"^(\s*)(.*?)(\s+[#;].*)?$")


def _split(line: str, first: bool, key: str) -> tuple[str, str, str]:
    """(head, content, tail) of one raw line of an option: head is ``key = `` or the indentation,
    tail an inline comment."""
    if first:
        found = re.match(rf"^(\s*{re.escape(key)}\s*[=:]\s*)(.*)$", line, re.IGNORECASE)
        if not found:
            return line, "", ""
        head, rest = found.group(1), found.group(2)
        inner = _CONTINUATION.match(rest)
        assert inner is not None
        return head + inner.group(1), inner.group(2), inner.group(3) or ""
    found = _CONTINUATION.match(line)
    assert found is not None
    return found.group(1), found.group(2), found.group(3) or ""


def ini_list(text: str, section: str, key: str) -> list[str] | None:
    """The items of a list-valued option (comment lines, blank lines and inline comments left out);
    None when the option is missing."""
    for found in _layout(_lf(text)[0]):
        if found.name == section:
            for option in found.options:
                if option.key == key:
                    items = [_split(line, i == 0, key)[1] for i, line in enumerate(option.lines)]
                    return [item for item in items if item and not item.startswith(("#", ";"))]
    return None


def ini_sections(text: str) -> list[str]:
    """The section names, in order."""
    return [section.name for section in _layout(_lf(text)[0])]


def ini_map_list(text: str, select: Callable[[str, str], bool], fn: Callable[[str], str | None]) -> str:
    """Each item of the list-valued options ``select(section, key)`` picks — one per line, the first
    possibly on the ``key =`` line — replaced by ``fn(item)`` where that is not None (comment lines,
    blank lines and inline comments stay); the text unchanged when nothing was replaced."""
    body, ending = _lf(text)
    lines = body.split("\n")
    changed = False
    for section in _layout(body):
        for option in section.options:
            if not select(section.name, option.key):
                continue
            for offset, line in enumerate(option.lines):
                head, content, tail = _split(line, offset == 0, option.key)
                if not content or content.startswith(("#", ";")):
                    continue
                new = fn(content)
                if new is not None and new != content:
                    lines[option.start + offset] = head + new + tail
                    changed = True
    return _back("\n".join(lines), ending) if changed else text


def ini_append_list(text: str, section: str, key: str, value: str, *, create_section: bool = False) -> str | None:
    """``value`` added as the last item of the list option ``key`` in ``section`` — indented like the
    option's other lines (4 spaces when it has none) — or a new ``key =`` option at the end of the
    section; a new section at the end of the file when ``create_section``, else None when the section
    is missing."""
    body, ending = _lf(text)
    lines = body.split("\n")
    layout = {s.name: s for s in _layout(body)}
    found = layout.get(section)
    if found is None:
        if not create_section:
            return None
        while lines and lines[-1] == "":
            lines.pop()
        lines += ([""] if lines else []) + [f"[{section}]", f"{key} =", f"    {value}", ""]
        return _back("\n".join(lines), ending)
    option = next((o for o in found.options if o.key == key.lower() or o.key == key), None)
    if option is None:
        last = max((i for i in range(found.start, found.end) if lines[i].strip()), default=found.start)
        lines[last + 1:last + 1] = [f"{key} =", f"    {value}"]
        return _back("\n".join(lines), ending)
    filled = [offset for offset, line in enumerate(option.lines) if line.strip()]
    indents = [_split(line, False, key)[0] for line in option.lines[1:] if line.strip()]
    indent = next((i for i in reversed(indents) if i), "    ")
    at = option.start + filled[-1] + 1
    lines[at:at] = [indent + value]
    return _back("\n".join(lines), ending)
