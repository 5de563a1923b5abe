"""Where a dependency the project does not declare goes: where the test command gets its test
dependencies (the order is in :mod:`kb.fix.pin`'s docstring)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .declarations import TEST_EXTRAS, TEST_REQUIREMENTS, Files, Place, setup_extras

__all__ = ["test_place"]


# --- where an undeclared (test or transitive) dependency goes -------------------------------------

def _runs_tox(command: Sequence[str]) -> bool:
    if not command:
        return False
    if Path(command[0]).name in ("tox", "tox4"):
        return True
    return any(a == "-m" and b == "tox" for a, b in zip(command, command[1:], strict=False))


def _named_files(command: Sequence[str], root: Path) -> list[str]:
    """Requirement/constraint files the test command names (``-r F``, ``-c F``, ``--constraint=F``)."""
    found: list[str] = []
    for i, arg in enumerate(command):
        value = None
        if arg in ("-r", "-c", "--requirement", "--constraint") and i + 1 < len(command):
            value = command[i + 1]
        elif arg.startswith(("--requirement=", "--constraint=")):
            value = arg.split("=", 1)[1]
        elif arg.startswith(("-r", "-c")) and len(arg) > 2 and arg[2:].endswith(".txt"):
            value = arg[2:]
        if value and (root / value).is_file():
            found.append(Path(os.path.relpath(root / value, root)).as_posix())
    return found


def _tox_place(files: Files) -> Place | None:
    from .config_files import ini_sections

    text = files.read("tox.ini")
    try:
        if text is not None and "testenv" in ini_sections(text):
            return Place("tox.ini", "ini", "tox.ini [testenv] deps", ("testenv", "deps"))
    except ValueError:
        pass
    return None


def test_place(files: Files, command: Sequence[str]) -> Place | None:
    """Where the test command gets its test dependencies (the module docstring's order)."""
    from .config_files import ini_read, toml_read

    if _runs_tox(command) and (place := _tox_place(files)):
        return place
    for rel in _named_files(command, files.root):
        return Place(rel, "lines", rel)
    pyproject = files.read("pyproject.toml")
    try:
        data = toml_read(pyproject) if pyproject is not None else {}
    except ValueError:
        data = {}
    project = data.get("project")
    if not isinstance(project, dict):
        project = {}
    optional = project.get("optional-dependencies")
    if not isinstance(optional, dict):
        optional = {}
    for extra in TEST_EXTRAS:
        if isinstance(optional.get(extra), list):
            label = f"pyproject.toml [project.optional-dependencies] {extra}"
            return Place("pyproject.toml", "toml", label, ("project", "optional-dependencies", extra))
    setup_cfg = files.read("setup.cfg")
    try:
        cfg = ini_read(setup_cfg) if setup_cfg is not None else {}
    except ValueError:
        cfg = {}
    for extra in TEST_EXTRAS:
        if extra in cfg.get("options.extras_require", {}):
            label = f"setup.cfg [options.extras_require] {extra}"
            return Place("setup.cfg", "ini", label, ("options.extras_require", extra))
    setup_py = files.read("setup.py")
    extras = setup_extras(setup_py) if setup_py is not None else []
    for extra in TEST_EXTRAS:
        if extra in extras:
            return Place("setup.py", "setup.py", f"setup.py extras_require[{extra!r}]", ("extras_require", extra))
    groups = data.get("dependency-groups")
    if not isinstance(groups, dict):
        groups = {}
    for group in TEST_EXTRAS:
        if isinstance(groups.get(group), list):
            return Place("pyproject.toml", "toml", f"pyproject.toml [dependency-groups] {group}",
                          ("dependency-groups", group))
    for pattern in TEST_REQUIREMENTS:
        for path in sorted(files.root.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(files.root).as_posix()
                return Place(rel, "lines", rel)
    if place := _tox_place(files):
        return place
    # no test dependencies anywhere: a new `test` extra where the project keeps its metadata
    if project and "optional-dependencies" not in (project.get("dynamic") or []):
        return Place("pyproject.toml", "toml", "pyproject.toml [project.optional-dependencies] test (a new test extra)",
                      ("project", "optional-dependencies", "test"))
    if "options" in cfg or "metadata" in cfg:
        return Place("setup.cfg", "ini", "setup.cfg [options.extras_require] test (a new test extra)",
                      ("options.extras_require", "test"))
    if setup_py is not None:
        return Place("setup.py", "setup.py", "setup.py extras_require['test'] (a new test extra)",
                      ("extras_require", "test"))
    return None


