"""pytest-configuration remedies: add a ``markers`` or ``filterwarnings`` entry where the project
configures pytest.

The file is the one pytest itself would read, in its order: ``pytest.ini`` ([pytest]),
``pyproject.toml`` ([tool.pytest.ini_options]), ``tox.ini`` ([pytest]), ``setup.cfg``
([tool:pytest]). The marker line goes into the existing ``markers`` setting, or a new one right
under the section header (the same for ``filterwarnings`` entries). Line edits only: comments and layout of the file stay as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["config_file", "add_setting"]

_SECTIONS = (("pytest.ini", "[pytest]"), ("pyproject.toml", "[tool.pytest.ini_options]"),
             ("tox.ini", "[pytest]"), ("setup.cfg", "[tool:pytest]"))


def config_file(root: Path) -> tuple[Path, str] | None:
    """(file, section header) of the project's pytest configuration, as pytest would choose it."""
    for name, header in _SECTIONS:
        path = root / name
        if path.is_file() and not path.is_symlink():
            text = path.read_text("utf-8", errors="replace")
            if name == "pytest.ini" or any(line.strip() == header for line in text.splitlines()):
                return path, header
    return None


def add_setting(lines: list[str], header: str, key: str, marker_line: str, toml: bool) -> list[str] | None:
    """The lines with ``marker_line`` added to the list setting ``key`` (``markers``,
    ``filterwarnings``) under ``header`` (None: the section is missing; the lines unchanged: it is
    there already — a marker by name, other entries verbatim).

    ``lines`` keep their endings; new lines use the file's first line ending.
    """
    ending = next((line[len(line.rstrip("\r\n")):] for line in lines if line.endswith(("\n", "\r"))), "\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")
                and not lines[i].startswith((" ", "\t"))), len(lines))
    name = marker_line.split(":", 1)[0].strip() if key == "markers" else marker_line
    body = "".join(lines[start:end])
    if re.search(rf"(?m)^\s*(?:{re.escape(key)}\s*=\s*\[?\s*)?[\"']?{re.escape(name)}\s*(:|[\"'\r\n]|$)", body):
        return list(lines)  # already registered
    for i in range(start + 1, end):
        if re.match(rf"\s*{re.escape(key)}\s*=", lines[i]):
            if toml:
                if "]" in lines[i]:  # markers = ["a", "b"] on one line
                    closing = lines[i].rindex("]")
                    inner = lines[i][:closing].rstrip()
                    sep = "" if inner.endswith("[") else ", "
                    return [*lines[:i], f'{inner}{sep}{_toml_str(marker_line)}{lines[i][closing:]}', *lines[i + 1:]]
                last = next(j for j in range(i + 1, end) if lines[j].strip().startswith("]"))
                indent = "    "
                return [*lines[:last], f'{indent}{_toml_str(marker_line)},{ending}', *lines[last:]]
            last = i
            while last + 1 < end and lines[last + 1].startswith((" ", "\t")) and lines[last + 1].strip():
                last += 1
            return [*lines[: last + 1], f"    {marker_line}{ending}", *lines[last + 1:]]
    new = f'{key} = [{_toml_str(marker_line)}]{ending}' if toml else f"{key} ={ending}    {marker_line}{ending}"
    return [*lines[: start + 1], new, *lines[start + 1:]]


def _toml_str(text: str) -> str:
    """A TOML string for ``text``: a literal '...' string when it holds backslashes or double quotes
    (regex escapes in filterwarnings entries are not valid TOML basic-string escapes)."""
    if ("\\" in text or '"' in text) and "'" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
