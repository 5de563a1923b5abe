"""What a project declares it depends on (names read through :mod:`kb.pep440`).

Owner facts say whether the project *declares* a distribution (a name that went missing from a
declared dependency points at a newer release of it; a module nobody declares may be a typo).
Read, in the project root: ``requirements*.txt`` / ``constraints*.txt`` (and ``requirements/``),
``setup.cfg`` (``install_requires``, ``extras_require``, ``tests_require``), ``pyproject.toml``
(``[project]`` dependencies and optional dependencies, ``[dependency-groups]``, Poetry's tables),
``tox.ini`` (every ``deps``) and ``setup.py`` (string literals in those keywords, read with
``ast``, never executed); and the release each requirement is written for (``==``, ``~=``, ``>=``),
a lock file (``poetry.lock``, ``uv.lock``, ``pdm.lock``) winning. Names are PEP 503-normalised;
what cannot be parsed is skipped. Read once per diagnosed run.
"""

from __future__ import annotations

import ast
import configparser
import re
from dataclasses import dataclass, field
from pathlib import Path

from .pep440 import normalise, requirement_floor, requirement_name

__all__ = ["Declared", "declared", "normalise"]

#: a declaration file larger than this is not read (a project's requirements are small)
MAX_BYTES = 1024 * 1024
_SETUP_KEYWORDS = ("install_requires", "tests_require", "extras_require", "setup_requires")


@dataclass(frozen=True)
class Declared:
    """The distributions a project declares, and where it says so."""

    names: frozenset[str] = frozenset()
    files: tuple[str, ...] = ()
    #: the project's own distribution name(s) (setup.cfg / pyproject / setup.py metadata)
    own: frozenset[str] = field(default_factory=frozenset)
    #: normalised name → the release the project locks, else the one its requirement is written for
    wanted: dict[str, str] = field(default_factory=dict)

    def __contains__(self, dist: str) -> bool:
        return normalise(dist) in self.names

    def get(self, name: str) -> str:
        """``name`` normalised when the project declares a distribution of that name, else ""."""
        key = normalise(name)
        return key if key in self.names else ""


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_BYTES or path.is_symlink():
            return ""
        return path.read_text("utf-8", errors="replace")
    except OSError:
        return ""


def _lines(text: str) -> list[str]:
    """The requirement lines of a text, environment markers cut off."""
    return [head for line in text.splitlines() if (head := line.split(";", 1)[0]).strip()]


def _ini(text: str) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return parser


def _setup_cfg(text: str) -> tuple[list[str], set[str]]:
    parser = _ini(text)
    if parser is None:
        return [], set()
    found: list[str] = []
    for key in ("install_requires", "tests_require", "setup_requires"):
        found += _lines(parser.get("options", key, fallback=""))
    if parser.has_section("options.extras_require"):
        for _key, value in parser.items("options.extras_require"):
            found += _lines(value)
    own = {normalise(parser.get("metadata", "name"))} if parser.has_option("metadata", "name") else set()
    return found, own


def _tox(text: str) -> tuple[list[str], set[str]]:
    parser = _ini(text)
    if parser is None:
        return [], set()
    found: list[str] = []
    for section in parser.sections():
        if section == "tox" or section.startswith("testenv"):
            found += [line.split(":", 1)[-1] if re.match(r"^\s*[\w,{}-]+:\s", line) else line
                      for line in _lines(parser.get(section, "deps", fallback=""))]
    return found, set()


def _pyproject(text: str) -> tuple[list[str], set[str]]:
    from .config import parse_toml

    data = parse_toml(text)
    found: list[str] = []
    own: set[str] = set()
    project = data.get("project")
    if not isinstance(project, dict):
        project = {}
    if isinstance(project.get("name"), str):
        own.add(normalise(project["name"]))
    groups: list[object] = [project.get("dependencies")]
    optional = project.get("optional-dependencies")
    if isinstance(optional, dict):
        groups.extend(optional.values())
    dependency_groups = data.get("dependency-groups")
    if isinstance(dependency_groups, dict):
        groups.extend(dependency_groups.values())
    for group in groups:
        if isinstance(group, list):
            found += [item for item in group if isinstance(item, str)]
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    if isinstance(poetry, dict):
        tables = [poetry.get("dependencies"), poetry.get("dev-dependencies")]
        tables.extend(g.get("dependencies") for g in (poetry.get("group") or {}).values() if isinstance(g, dict))
        for table in tables:
            if isinstance(table, dict):  # Poetry's constraints (^2.0) are not PEP 440: the names only
                found += [name for name in table if name.lower() != "python"]
        if isinstance(poetry.get("name"), str):
            own.add(normalise(poetry["name"]))
    return found, own


def _setup_py(text: str) -> tuple[list[str], set[str]]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return [], set()
    found: list[str] = []
    own: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in _SETUP_KEYWORDS:
            found += [head for sub in ast.walk(node.value) if isinstance(sub, ast.Constant)
                      and isinstance(sub.value, str) for head in _lines(sub.value)]
        elif isinstance(node, ast.keyword) and node.arg == "name" and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            own.add(normalise(node.value.value))
    return found, own


def _lock_versions(root: Path) -> dict[str, str]:
    """name → version from a lock file (poetry.lock, uv.lock, pdm.lock: ``[[package]]`` tables)."""
    from .config import parse_toml

    found: dict[str, str] = {}
    for name in ("poetry.lock", "uv.lock", "pdm.lock"):
        text = _read(root / name)
        packages = parse_toml(text).get("package") if text else None
        for package in packages if isinstance(packages, list) else []:
            if isinstance(package, dict) and isinstance(package.get("name"), str) and \
                    isinstance(package.get("version"), str):
                found.setdefault(normalise(package["name"]), package["version"])
    return found


def declared(root: Path | None) -> Declared:
    """Everything ``root`` declares (empty when there is no root)."""
    if root is None or not root.is_dir():
        return Declared()
    requirements: list[str] = []
    own: set[str] = set()
    files: list[str] = []
    for folder in (root, root / "requirements"):
        if not folder.is_dir():
            continue
        patterns = ("*.txt",) if folder.name == "requirements" else ("requirements*.txt", "constraints*.txt",
                                                                      "*requirements*.txt")
        for path in sorted({p for pattern in patterns for p in folder.glob(pattern)}):
            found = [line for line in _lines(_read(path)) if requirement_name(line)]
            if found:
                requirements += found
                files.append(str(path.relative_to(root)))
    readers = {"setup.cfg": _setup_cfg, "pyproject.toml": _pyproject, "setup.py": _setup_py, "tox.ini": _tox}
    for name, reader in readers.items():
        text = _read(root / name)
        if text:
            found, mine = reader(text)
            requirements += found
            own |= mine
            files.append(name)
    # the walrus binds in this function's scope: `dist`, not the loop's `name` (a str), holds str | None
    names = {dist for line in requirements if (dist := requirement_name(line))}
    wanted: dict[str, str] = {}
    for line in requirements:
        floor = requirement_floor(line)
        if floor:
            wanted.setdefault(*floor)
    wanted.update(_lock_versions(root))
    return Declared(frozenset(names - own), tuple(files), frozenset(own), wanted)
