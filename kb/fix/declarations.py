"""A project's dependency declarations, read once and edited in memory: requirements/constraints files
and tox deps line by line, setup.cfg/tox.ini as INI and pyproject.toml as TOML (format-preserving,
:mod:`kb.fix.config_files`), setup.py through its syntax tree (:mod:`kb.fix.codemods`). Requirements are
parsed and merged by :mod:`kb.pep440` (``packaging``): :func:`merge_all` merges a pin into every
declaration of its distribution, keeping existing bounds. Used by :mod:`kb.fix.pin`."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..pep440 import merge_requirement, normalise, requirement_parts

__all__ = ["Refused", "Files", "Place", "Declared", "merge_all", "setup_extras", "TEST_EXTRAS", "TEST_REQUIREMENTS"]

#: extras / dependency groups that hold test dependencies, in the order they are preferred
TEST_EXTRAS = ("test", "tests", "testing", "dev")
#: test/dev requirements files (relative to the root), in the order they are preferred
TEST_REQUIREMENTS = ("requirements-test*.txt", "requirements_test*.txt", "test-requirements*.txt",
                     "test_requirements*.txt", "requirements-dev*.txt", "requirements_dev*.txt",
                     "dev-requirements*.txt", "requirements/test*.txt", "requirements/dev*.txt")
#: a declaration file larger than this is not read
MAX_BYTES = 1024 * 1024



class Refused(Exception):
    """Planning stops: the message is the plan's ``refused`` sentence."""


# --- the project's files, read once and edited in memory ------------------------------------------

class Files:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.before: dict[str, bytes] = {}
        self.text: dict[str, str] = {}
        self._bom: set[str] = set()

    def read(self, rel: str) -> str | None:
        if rel not in self.text:
            path = self.root / rel
            try:
                if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_BYTES:
                    return None
                data = path.read_bytes()
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                return None
            if text.startswith("\ufeff"):
                self._bom.add(rel)
                text = text[1:]
            self.before[rel], self.text[rel] = data, text
        return self.text[rel]

    def write(self, rel: str, text: str) -> None:
        self.before.setdefault(rel, b"")
        self.text[rel] = text

    def changes(self) -> dict[str, tuple[bytes, bytes]]:
        found = {}
        for rel, text in self.text.items():
            after = (("\ufeff" if rel in self._bom else "") + text).encode("utf-8")
            if after != self.before[rel]:
                found[rel] = (self.before[rel], after)
        return found


def _line_files(root: Path) -> list[str]:
    found: list[str] = []
    for folder, patterns in ((root, ("requirements*.txt", "constraints*.txt")), (root / "requirements", ("*.txt",))):
        if folder.is_dir():
            found += [p.relative_to(root).as_posix() for pattern in patterns for p in sorted(folder.glob(pattern))
                      if p.is_file() and not p.is_symlink()]
    return list(dict.fromkeys(found))


# --- one requirement inside a line of a requirements file or a tox deps entry ---------------------

_OPTIONS = re.compile(r"\s+(?=--?[A-Za-z])|\s*\\$")
_FACTORS = re.compile(r"^([\w,!.{}-]+:\s+)")


def _in_line(line: str, fn: Callable[[str], str | None], *, tox: bool = False, hashed: bool = False) -> str | None:
    """``line`` with its requirement replaced by ``fn(requirement)`` (None: unchanged); comments,
    ``--hash`` options, a continuation backslash and, in tox, a factor prefix stay."""
    indent = line[: len(line) - len(line.lstrip())]
    content, comment = line.strip(), ""
    if found := re.search(r"\s+#", content):
        content, comment = content[: found.start()], content[found.start():]
    prefix = ""
    if tox and (found := _FACTORS.match(content)):
        prefix, content = found.group(1), content[found.end():]
    if not content or content.startswith(("#", "-", "{", ".", "/")):
        return None
    cut = _OPTIONS.search(content)
    requirement, options = (content[: cut.start()], content[cut.start():]) if cut else (content, "")
    new = fn(requirement)
    if new is None or new == requirement:
        return None
    if hashed or "--hash" in options:
        raise Refused(f"'{requirement}' is pinned with hashes: regenerate that file with '{new}' (pip-compile)")
    return f"{indent}{prefix}{new}{options}{comment}"


def _lines(text: str, fn: Callable[[str], str | None]) -> str:
    lines = text.split("\n")
    changed = False
    for i, line in enumerate(lines):
        ending = "\r" if line.endswith("\r") else ""
        logical = [line]  # the line and its continuation lines (``\`` at the end), where hashes go
        while logical[-1].rstrip().endswith("\\") and i + len(logical) < len(lines):
            logical.append(lines[i + len(logical)])
        new = _in_line(line.removesuffix("\r"), fn, hashed=any("--hash" in part for part in logical))
        if new is not None:
            lines[i], changed = new + ending, True
    return "\n".join(lines) if changed else text


def _append_line(text: str, requirement: str) -> str:
    ending = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith("\n"):
        text += ending
    return text + requirement + ending


# --- setup.py: read with ast (where is the requirement?), edited by kb.fix.codemods -------------

def _setup_py_places(text: str) -> dict[str, str]:
    """normalised distribution name → the setup() keyword holding its first requirement string
    (``install_requires``, ``extras_require['test']``)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.keyword) and node.arg in ("install_requires", "tests_require", "extras_require")):
            continue
        pairs: list[tuple[str, ast.AST]] = [(node.arg, node.value)]
        if isinstance(node.value, ast.Dict):
            pairs = [(f"extras_require[{k.value!r}]", v) for k, v in zip(node.value.keys, node.value.values, strict=True)
                     if isinstance(k, ast.Constant)]
        for label, value in pairs:
            for sub in ast.walk(value):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and (parts := requirement_parts(sub.value)):
                    found.setdefault(normalise(parts[0]), label)
    return found


def setup_extras(text: str) -> list[str]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    return [k.value for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg == "extras_require"
            and isinstance(node.value, ast.Dict) for k in node.value.keys
            if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def _codemods() -> object:
    try:
        from . import codemods
    except ImportError as exc:
        raise Refused(f"setup.py cannot be edited here ({exc})") from exc
    return codemods


# --- places a requirement can be added to ---------------------------------------------------------

@dataclass(frozen=True)
class Place:
    """Somewhere a new requirement line can go."""

    rel: str
    kind: str                     # "lines", "ini", "toml", "setup.py"
    label: str
    key: tuple[str, ...] = ()     # ini: (section, option); toml: key path; setup.py: (keyword, extra or "")

    def add(self, files: Files, requirement: str) -> None:
        from .config_files import ini_append_list, toml_append_string

        text = files.read(self.rel) or ""
        if self.kind == "lines":
            new: str | None = _append_line(text, requirement)
        elif self.kind == "ini":
            new = ini_append_list(text, self.key[0], self.key[1], requirement, create_section=True)
        elif self.kind == "toml":
            new = toml_append_string(text, self.key, requirement)
        else:
            keyword, extra = self.key
            new = _codemods().add_setup_requirement(text, requirement, keyword=keyword,  # type: ignore[attr-defined]
                                                    extra=extra or None)
        if new is None:
            raise Refused(f"{self.label}: there is no place for '{requirement}' there")
        files.write(self.rel, new)


# --- merging a pin into every declaration ---------------------------------------------------------

@dataclass
class Declared:
    label: str
    existing: str
    merged: str | None
    place: Place


def _merger(requirement: str, found: list[tuple[str, str | None]]) -> Callable[[str], str | None]:
    """A function for the file editors: the merged requirement for one of the same distribution."""
    name = normalise(requirement_parts(requirement)[0])  # type: ignore[index]

    def merge(item: str) -> str | None:
        parts = requirement_parts(item)
        if parts is None or normalise(parts[0]) != name:
            return None
        try:
            merged = merge_requirement(item, requirement)
        except ValueError as exc:
            raise Refused(str(exc)) from exc
        found.append((item, merged))
        return merged

    return merge


def merge_all(files: Files, requirement: str) -> list[Declared]:
    """Merge ``requirement`` into every declaration of its distribution; what was found where."""
    from .config_files import ini_map_list, ini_read, ini_sections, toml_list, toml_map_strings, toml_read

    declared: list[Declared] = []

    def run(rel: str, label: str, place: Place, edit: Callable[[str, Callable[[str], str | None]], str]) -> None:
        text = files.read(rel)
        if text is None:
            return
        found: list[tuple[str, str | None]] = []
        try:
            files.write(rel, edit(text, _merger(requirement, found)))
        except ValueError as exc:
            if found:
                raise Refused(f"{rel}: {exc}") from exc
            return
        declared.extend(Declared(label, item, merged, place) for item, merged in found)

    for rel in _line_files(files.root):
        run(rel, rel, Place(rel, "lines", rel), _lines)
    if (text := files.read("setup.cfg")) is not None:
        try:
            sections = ini_sections(text)
        except ValueError:
            sections = []
        extras = tuple(ini_read(text).get("options.extras_require", {})) if sections else ()
        for section, keys in (("options", ("install_requires", "tests_require")), ("options.extras_require", extras)):
            if section not in sections:
                continue
            for key in keys:
                label = f"setup.cfg [{section}] {key}"

                def edit_cfg(t: str, fn: Callable[[str], str | None], s: str = section, k: str = key) -> str:
                    return ini_map_list(t, lambda a, b: (a, b) == (s, k), fn)

                run("setup.cfg", label, Place("setup.cfg", "ini", label, (section, key)), edit_cfg)
    if (text := files.read("pyproject.toml")) is not None:
        try:
            data = toml_read(text)
        except ValueError:
            data = {}
        for path, label in ((("project", "dependencies"), "[project] dependencies"),
                            (("project", "optional-dependencies", "*"), "[project.optional-dependencies]"),
                            (("dependency-groups", "*"), "[dependency-groups]")):
            for at, _items in toml_list(text, path) if data else []:
                where = f"pyproject.toml {label}" + (f" {at[-1]}" if "*" in path else "")

                def edit_toml(t: str, fn: Callable[[str], str | None], at: tuple[str, ...] = at) -> str:
                    return toml_map_strings(t, at, fn)

                run("pyproject.toml", where, Place("pyproject.toml", "toml", where, at), edit_toml)
        refuse_poetry(data, requirement)
    if (text := files.read("setup.py")) is not None:
        labels = _setup_py_places(text)
        name = normalise(requirement_parts(requirement)[0])  # type: ignore[index]
        label = labels.get(name, "install_requires")
        keyword, _, extra = label.partition("[")
        place = Place("setup.py", "setup.py", f"setup.py {label}", (keyword, extra.strip("[]'\"")))
        run("setup.py", place.label, place,
            lambda t, fn: _codemods().edit_setup_requirements(t, fn))  # type: ignore[attr-defined]
    if (text := files.read("tox.ini")) is not None:
        try:
            sections = ini_sections(text)
        except ValueError:
            sections = []
        for section in sections:
            if section == "tox" or section.startswith("testenv"):
                label = f"tox.ini [{section}] deps"

                def edit_tox(t: str, fn: Callable[[str], str | None], s: str = section) -> str:
                    return ini_map_list(t, lambda a, b: (a, b) == (s, "deps"), lambda item: _in_line(item, fn, tox=True))

                run("tox.ini", label, Place("tox.ini", "ini", label, (section, "deps")), edit_tox)
    return declared


def refuse_poetry(data: dict, requirement: str) -> None:
    tool = data.get("tool")
    if not isinstance(tool, dict):
        tool = {}
    poetry = tool.get("poetry")
    if not isinstance(poetry, dict):
        poetry = {}
    tables = [poetry.get("dependencies"), poetry.get("dev-dependencies"),
              *(g.get("dependencies") for g in (poetry.get("group") or {}).values() if isinstance(g, dict))]
    name = normalise(requirement_parts(requirement)[0])  # type: ignore[index]
    for table in tables:
        for key, constraint in (table or {}).items() if isinstance(table, dict) else []:
            if normalise(key) == name:
                raise Refused(f"pyproject.toml declares {key} in Poetry's tables ({constraint!r}, Poetry's syntax), "
                               f"which kb does not edit: run poetry add '{requirement}'")


