"""Dependency pins: write a version constraint where the project declares the dependency, as a person
would, and install it into the environment the tests run in.

:func:`plan_pin` plans; nothing is written. Requirements are parsed and merged by :mod:`kb.pep440`
(``packaging``); TOML and INI files are edited format-preservingly by :mod:`kb.fix.config_files`;
setup.py through its syntax tree by :mod:`kb.fix.codemods`.

Declarations looked at (the root, and a ``requirements/`` folder): ``requirements*.txt`` and
``constraints*.txt`` (only the matching requirement line changes: comments, ``-r``/``-c`` lines, options
and markers stay), ``setup.cfg`` (``[options] install_requires``/``tests_require``,
``[options.extras_require]``), ``pyproject.toml`` (``[project] dependencies``,
``[project.optional-dependencies]``, ``[dependency-groups]``), ``setup.py`` (``install_requires``,
``tests_require``, ``extras_require``) and ``tox.ini`` (every testenv's ``deps``). Every declaration
of the dependency is merged with the pin (:func:`kb.pep440.merge_requirement`: existing bounds stay).
A dependency declared in Poetry's tables is refused (Poetry's constraint syntax is not PEP 440: the
refusal says what to run).

**Already constrained.** When every declaration already implies the pin, that is not a refusal: the
plan has no file changes, ``where`` says ``already declared as '…' (file key)``, and ``install`` still
holds the pin — the environment is what needs it.

**Not declared** (the dependency comes in transitively, or only the tests use it): it goes where the
test command gets its test dependencies, first found of —
1. the command runs tox (``tox …`` / ``python -m tox …``): tox.ini ``[testenv] deps``;
2. a requirements/constraints file the command names (``-r FILE``, ``-c FILE``, ``--constraint=FILE``);
3. the project's test extra — ``[project.optional-dependencies]``, setup.cfg
   ``[options.extras_require]``, setup.py ``extras_require``; the first key of test, tests, testing,
   dev — or a ``[dependency-groups]`` group of those names;
4. a test/dev requirements file that exists (``requirements-test*.txt``, ``test-requirements*.txt``,
   ``requirements/test*.txt``, …);
5. tox.ini ``[testenv] deps``, when there is one;
6. none of those, but the project has packaging metadata (pyproject ``[project]``, setup.cfg, setup.py):
   a new ``test`` extra there — what a maintainer would add (``where`` says so);
7. otherwise nothing is planned and ``refused`` names where the pin should go.

**Dependents.** With ``python`` (the tests' interpreter) given, installed distributions that require the
dependency are read (:func:`dependents`). One whose requirement the pin would break — no version
allowed by both, or pip's resolver (a ``--dry-run``) cannot install the pin next to the installed
release — is pinned along, below its installed major (``flask<3`` for Flask 3.0.0), else below its
installed minor, whichever pip resolves together with the pin; it is merged where the project declares
it, else added where the pin went, and installed with the pin. When neither resolves the whole pin is
refused, the conflict named.

**Metadata.** Edited packaging files must still build metadata (:func:`check_metadata`): a plan that
breaks them is refused.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .pep440 import (marker_applies, merge_requirement, normalise, release_ceilings, requirement_parts,
                     specifiers_overlap)

__all__ = ["PinPlan", "plan_pin", "dependents", "check_metadata", "installed_version", "install", "test_python",
           "environment", "conflicts", "TEST_EXTRAS", "TEST_REQUIREMENTS"]

#: extras / dependency groups that hold test dependencies, in the order they are preferred
TEST_EXTRAS = ("test", "tests", "testing", "dev")
#: test/dev requirements files (relative to the root), in the order they are preferred
TEST_REQUIREMENTS = ("requirements-test*.txt", "requirements_test*.txt", "test-requirements*.txt",
                     "test_requirements*.txt", "requirements-dev*.txt", "requirements_dev*.txt",
                     "dev-requirements*.txt", "requirements/test*.txt", "requirements/dev*.txt")
#: a declaration file larger than this is not read
MAX_BYTES = 1024 * 1024
#: seconds pip's resolver and ``setup.py --version`` may take
TIMEOUT = 120


@dataclass(frozen=True)
class PinPlan:
    """What pinning a requirement takes: file changes (nothing written yet), where they go, what to
    install for verification, or why nothing can be planned."""

    #: path relative to the root ("/"-separated) → (bytes before, bytes after)
    changes: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)
    #: human-readable places: "setup.py install_requires", "tox.ini [testenv] deps", ...
    where: tuple[str, ...] = ()
    #: requirements to pip-install for verification: the pin, plus the dependents pinned along
    install: tuple[str, ...] = ()
    #: one sentence when nothing can be planned (then ``changes`` is empty)
    refused: str | None = None


class _Refused(Exception):
    """Planning stops: the message is the plan's ``refused`` sentence."""


# --- the project's files, read once and edited in memory ------------------------------------------

class _Files:
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
        raise _Refused(f"'{requirement}' is pinned with hashes: regenerate that file with '{new}' (pip-compile)")
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


def _setup_extras(text: str) -> list[str]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    return [k.value for node in ast.walk(tree) if isinstance(node, ast.keyword) and node.arg == "extras_require"
            and isinstance(node.value, ast.Dict) for k in node.value.keys
            if isinstance(k, ast.Constant) and isinstance(k.value, str)]


def _codemods() -> object:
    try:
        from .fix import codemods
    except ImportError as exc:
        raise _Refused(f"setup.py cannot be edited here ({exc})") from exc
    return codemods


# --- places a requirement can be added to ---------------------------------------------------------

@dataclass(frozen=True)
class _Place:
    """Somewhere a new requirement line can go."""

    rel: str
    kind: str                     # "lines", "ini", "toml", "setup.py"
    label: str
    key: tuple[str, ...] = ()     # ini: (section, option); toml: key path; setup.py: (keyword, extra or "")

    def add(self, files: _Files, requirement: str) -> None:
        from .fix.config_files import ini_append_list, toml_append_string

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
            raise _Refused(f"{self.label}: there is no place for '{requirement}' there")
        files.write(self.rel, new)


# --- merging a pin into every declaration ---------------------------------------------------------

@dataclass
class _Declared:
    label: str
    existing: str
    merged: str | None
    place: _Place


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
            raise _Refused(str(exc)) from exc
        found.append((item, merged))
        return merged

    return merge


def _merge_all(files: _Files, requirement: str) -> list[_Declared]:
    """Merge ``requirement`` into every declaration of its distribution; what was found where."""
    from .fix.config_files import ini_map_list, ini_read, ini_sections, toml_list, toml_map_strings, toml_read

    declared: list[_Declared] = []

    def run(rel: str, label: str, place: _Place, edit: Callable[[str, Callable[[str], str | None]], str]) -> None:
        text = files.read(rel)
        if text is None:
            return
        found: list[tuple[str, str | None]] = []
        try:
            files.write(rel, edit(text, _merger(requirement, found)))
        except ValueError as exc:
            if found:
                raise _Refused(f"{rel}: {exc}") from exc
            return
        declared.extend(_Declared(label, item, merged, place) for item, merged in found)

    for rel in _line_files(files.root):
        run(rel, rel, _Place(rel, "lines", rel), _lines)
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
                run("setup.cfg", label, _Place("setup.cfg", "ini", label, (section, key)),
                    lambda t, fn, s=section, k=key: ini_map_list(t, lambda a, b: (a, b) == (s, k), fn))
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
                run("pyproject.toml", where, _Place("pyproject.toml", "toml", where, at),
                    lambda t, fn, at=at: toml_map_strings(t, at, fn))
        _refuse_poetry(data, requirement)
    if (text := files.read("setup.py")) is not None:
        labels = _setup_py_places(text)
        name = normalise(requirement_parts(requirement)[0])  # type: ignore[index]
        label = labels.get(name, "install_requires")
        keyword, _, extra = label.partition("[")
        place = _Place("setup.py", "setup.py", f"setup.py {label}", (keyword, extra.strip("[]'\"")))
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
                run("tox.ini", label, _Place("tox.ini", "ini", label, (section, "deps")),
                    lambda t, fn, s=section: ini_map_list(t, lambda a, b: (a, b) == (s, "deps"),
                                                          lambda item: _in_line(item, fn, tox=True)))
    return declared


def _refuse_poetry(data: dict, requirement: str) -> None:
    tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
    poetry = tool.get("poetry") if isinstance(tool.get("poetry"), dict) else {}
    tables = [poetry.get("dependencies"), poetry.get("dev-dependencies"),
              *(g.get("dependencies") for g in (poetry.get("group") or {}).values() if isinstance(g, dict))]
    name = normalise(requirement_parts(requirement)[0])  # type: ignore[index]
    for table in tables:
        for key, constraint in (table or {}).items() if isinstance(table, dict) else []:
            if normalise(key) == name:
                raise _Refused(f"pyproject.toml declares {key} in Poetry's tables ({constraint!r}, Poetry's syntax), "
                               f"which kb does not edit: run poetry add '{requirement}'")


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


def _tox_place(files: _Files) -> _Place | None:
    from .fix.config_files import ini_sections

    text = files.read("tox.ini")
    try:
        if text is not None and "testenv" in ini_sections(text):
            return _Place("tox.ini", "ini", "tox.ini [testenv] deps", ("testenv", "deps"))
    except ValueError:
        pass
    return None


def _test_place(files: _Files, command: Sequence[str]) -> _Place | None:
    """Where the test command gets its test dependencies (the module docstring's order)."""
    from .fix.config_files import ini_read, toml_read

    if _runs_tox(command) and (place := _tox_place(files)):
        return place
    for rel in _named_files(command, files.root):
        return _Place(rel, "lines", rel)
    pyproject = files.read("pyproject.toml")
    try:
        data = toml_read(pyproject) if pyproject is not None else {}
    except ValueError:
        data = {}
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    optional = project.get("optional-dependencies") if isinstance(project.get("optional-dependencies"), dict) else {}
    for extra in TEST_EXTRAS:
        if isinstance(optional.get(extra), list):
            label = f"pyproject.toml [project.optional-dependencies] {extra}"
            return _Place("pyproject.toml", "toml", label, ("project", "optional-dependencies", extra))
    setup_cfg = files.read("setup.cfg")
    try:
        cfg = ini_read(setup_cfg) if setup_cfg is not None else {}
    except ValueError:
        cfg = {}
    for extra in TEST_EXTRAS:
        if extra in cfg.get("options.extras_require", {}):
            label = f"setup.cfg [options.extras_require] {extra}"
            return _Place("setup.cfg", "ini", label, ("options.extras_require", extra))
    setup_py = files.read("setup.py")
    extras = _setup_extras(setup_py) if setup_py is not None else []
    for extra in TEST_EXTRAS:
        if extra in extras:
            return _Place("setup.py", "setup.py", f"setup.py extras_require[{extra!r}]", ("extras_require", extra))
    groups = data.get("dependency-groups") if isinstance(data.get("dependency-groups"), dict) else {}
    for group in TEST_EXTRAS:
        if isinstance(groups.get(group), list):
            return _Place("pyproject.toml", "toml", f"pyproject.toml [dependency-groups] {group}",
                          ("dependency-groups", group))
    for pattern in TEST_REQUIREMENTS:
        for path in sorted(files.root.glob(pattern)):
            if path.is_file() and not path.is_symlink():
                rel = path.relative_to(files.root).as_posix()
                return _Place(rel, "lines", rel)
    if place := _tox_place(files):
        return place
    # no test dependencies anywhere: a new `test` extra where the project keeps its metadata
    if project and "optional-dependencies" not in (project.get("dynamic") or []):
        return _Place("pyproject.toml", "toml", "pyproject.toml [project.optional-dependencies] test (a new test extra)",
                      ("project", "optional-dependencies", "test"))
    if "options" in cfg or "metadata" in cfg:
        return _Place("setup.cfg", "ini", "setup.cfg [options.extras_require] test (a new test extra)",
                      ("options.extras_require", "test"))
    if setup_py is not None:
        return _Place("setup.py", "setup.py", "setup.py extras_require['test'] (a new test extra)",
                      ("extras_require", "test"))
    return None


# --- dependents of the pinned distribution --------------------------------------------------------

_DEPENDENTS = r"""
import importlib.metadata as m, json, os, platform, sys
info = sys.implementation.version
version = "{}.{}.{}".format(info.major, info.minor, info.micro)
if info.releaselevel != "final":
    version += info.releaselevel[0] + str(info.serial)
env = {"implementation_name": sys.implementation.name, "implementation_version": version, "os_name": os.name,
       "platform_machine": platform.machine(), "platform_release": platform.release(),
       "platform_system": platform.system(), "platform_version": platform.version(),
       "python_full_version": platform.python_version(),
       "platform_python_implementation": platform.python_implementation(),
       "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform}
dists = []
for dist in m.distributions():
    name = dist.metadata["Name"]
    if name:
        dists.append([name, dist.version, list(dist.requires or [])])
print(json.dumps({"env": env, "dists": dists}))
"""


def dependents(python: str, dist: str) -> dict[str, tuple[str, str]]:
    """Installed distributions of ``python``'s environment that require ``dist`` (their requirement's
    marker holding there; requirements of extras left out): name → (installed version, its specifier
    on ``dist``). Read by a small script run with ``python``; the project is never imported. Empty
    when the script cannot run."""
    try:
        done = subprocess.run([python, "-I", "-c", _DEPENDENTS], capture_output=True, text=True, timeout=TIMEOUT)
        facts = json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    wanted = normalise(dist)
    found: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    for name, version, requires in facts.get("dists", []):
        key = normalise(name)
        if key in seen or key == wanted:
            continue
        seen.add(key)  # the first of a name on sys.path is the one imported
        for text in requires:
            parts = requirement_parts(text)
            if parts and normalise(parts[0]) == wanted and marker_applies(parts[3], facts.get("env", {})):
                found[name] = (version, parts[2])
                break
    return found


def _dry_run(python: str, requirements: Sequence[str]) -> tuple[bool | None, str]:
    """Whether pip can install ``requirements`` together into ``python``'s environment: True, False
    (their dependencies conflict, or a requirement has no release), None (pip could not tell)."""
    try:
        done = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
                               *requirements], capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if done.returncode == 0:
        return True, ""
    error = done.stderr
    last = next((line.strip() for line in reversed(error.splitlines()) if line.strip()), "pip failed")
    if "conflicting dependencies" in error or "ResolutionImpossible" in error or "No matching distribution" in error:
        return False, last
    return None, last


def _pins_along(python: str, requirement: str) -> list[str]:
    """The dependents' pins that let ``requirement`` be installed (module docstring); _Refused when a
    dependent cannot be pinned so."""
    name, _extras, spec, _marker = requirement_parts(requirement)  # type: ignore[misc]
    found = dependents(python, name)
    if not found:
        return []
    clashing = [dep for dep, (_v, needs) in found.items() if not specifiers_overlap(needs, spec)]
    if not clashing:
        together, _why = _dry_run(python, [requirement, *(f"{dep}=={v}" for dep, (v, _n) in found.items())])
        if together is not False:
            return []
        clashing = [dep for dep, (v, _n) in found.items() if _dry_run(python, [requirement, f"{dep}=={v}"])[0] is False]
    pins: list[str] = []
    for dep in clashing:
        version, needs = found[dep]
        why = ""
        for ceiling in release_ceilings(version):
            ok, why = _dry_run(python, [requirement, *pins, f"{dep}<{ceiling}"])
            if ok:
                pins.append(f"{dep}<{ceiling}")
                break
        else:
            detail = f"; pip: {why}" if why else ""
            raise _Refused(f"pinning {requirement} conflicts with the installed {dep} {version} "
                           f"(requires {name}{needs}), and no earlier {dep} release allows it{detail}")
    return pins


# --- metadata check -------------------------------------------------------------------------------

_SETUP_VERSION = """
import sys
source = sys.stdin.read()
sys.argv = ["setup.py", "--version"]
sys.path.insert(0, ".")
exec(compile(source, "setup.py", "exec"), {"__name__": "__main__", "__file__": "setup.py"})
"""


def _setup_version(root: Path, python: str, source: str) -> str | None:
    try:
        done = subprocess.run([python, "-c", _SETUP_VERSION], input=source, cwd=root, capture_output=True, text=True,
                              timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()), "it failed")


def check_metadata(root: Path, python: str, files: Iterable[str],
                   changes: Mapping[str, tuple[bytes, bytes]] | None = None) -> str | None:
    """Whether the packaging files ``files`` (relative paths) still build metadata: setup.py runs
    ``python setup.py --version`` (in ``root``), setup.cfg and pyproject.toml parse and every requirement
    in their dependency keys parses. Read from disk, or from ``changes``' "after" bytes when given (what
    :func:`plan_pin` checks before anything is written). None when fine, else one sentence. A setup.py
    that did not run before the change either is not held against it."""
    from .fix.config_files import ini_read, toml_read

    for rel in files:
        name = rel.rsplit("/", 1)[-1]
        if name not in ("setup.py", "setup.cfg", "pyproject.toml"):
            continue
        try:
            data = changes[rel][1] if changes and rel in changes else (root / rel).read_bytes()
            text = data.decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            return f"{rel} cannot be read: {exc}"
        requirements: list[str] = []
        try:
            if name == "setup.py":
                why = _setup_version(root, python, text)
                if why and changes and rel in changes:
                    if _setup_version(root, python, changes[rel][0].decode("utf-8-sig")) is not None:
                        why = None  # it did not run before the change either
                if why:
                    return f"{rel} no longer builds metadata: python setup.py --version fails: {why}"
                continue
            if name == "setup.cfg":
                cfg = ini_read(text)
                options = cfg.get("options", {})
                values = [options.get(k, "") for k in ("install_requires", "tests_require")]
                values += list(cfg.get("options.extras_require", {}).values())
                requirements = [item.split(" #", 1)[0].strip() for value in values for item in value.splitlines()]
                requirements = [item for item in requirements if item and not item.startswith("#")]
            else:
                data_ = toml_read(text)
                project = data_.get("project", {})
                groups = [project.get("dependencies", []), *project.get("optional-dependencies", {}).values(),
                          *data_.get("dependency-groups", {}).values()]
                requirements = [item for group in groups for item in group if isinstance(item, str)]
        except (ValueError, AttributeError, TypeError) as exc:
            return f"{rel} no longer parses: {exc}"
        bad = next((item for item in requirements if requirement_parts(item) is None), None)
        if bad is not None:
            return f"{rel} no longer builds metadata: {bad!r} is not a valid requirement"
    return None


# --- planning -------------------------------------------------------------------------------------

def plan_pin(root: Path, requirement: str, *, python: str | None = None,
             test_command: Sequence[str] | None = None) -> PinPlan:
    """Plan pinning ``requirement`` (``"numpy<2"``) in the project at ``root`` (the module docstring
    says where it goes); nothing is written. ``python`` is the tests' interpreter: with it, installed
    dependents the pin would break are pinned along, and an edited setup.py is run with it (without it:
    no dependents are looked at, and kb's own interpreter runs setup.py)."""
    parts = requirement_parts(requirement)
    if parts is None or not parts[2]:
        return PinPlan(refused=f"not a version constraint: {requirement!r}")
    files = _Files(root)
    try:
        declared = _merge_all(files, requirement)
        where: list[str] = []
        if declared:
            written = [d for d in declared if d.merged is not None]
            where += [d.label for d in written]
            if not written:
                where += [f"already declared as '{d.existing}' ({d.label})" for d in declared]
            place = (written or declared)[0].place
        else:
            found = _test_place(files, test_command or [])
            if found is None:
                raise _Refused(f"the project does not declare {parts[0]} and has no place for test dependencies "
                               f"(tox.ini [testenv] deps, a test extra, requirements-test.txt): add '{requirement}' "
                               f"where its tests get their dependencies")
            found.add(files, requirement)
            place = found
            where.append(found.label)
        along = _pins_along(python, requirement) if python else []
        for pin in along:
            pinned = [d for d in _merge_all(files, pin)]
            if pinned:
                where += [d.label for d in pinned if d.merged is not None and d.label not in where]
            else:
                place.add(files, pin)
                where += [place.label] if place.label not in where else []
        changes = files.changes()
        broken = check_metadata(root, python or sys.executable, changes, changes) if changes else None
        if broken:
            raise _Refused(broken)
    except _Refused as exc:
        return PinPlan(refused=str(exc))
    return PinPlan(changes, tuple(dict.fromkeys(where)), (requirement, *along))


# --- the environment the tests run in -------------------------------------------------------------

def installed_version(python: str, dist: str) -> str | None:
    code = ("import importlib.metadata as m, sys\n"
            "try:\n    print(m.version(sys.argv[1]))\nexcept m.PackageNotFoundError:\n    pass\n")
    done = subprocess.run([python, "-c", code, dist], capture_output=True, text=True)
    return done.stdout.strip() or None


def environment(python: str) -> dict[str, str]:
    """``{"python": "3.11.7", "<distribution>": "<version>", ...}`` of ``python``'s environment: the
    facts that let version-aware rules say whether an API row applies (empty when it cannot run).
    Asked through the owner probe (:func:`kb.owners.probe`): one question, the first of each name on
    ``sys.path`` being the one the tests import."""
    from .owners import probe

    facts = probe(python)
    if not facts:
        return {}
    found = {str(name).lower(): str(version) for name, version in (facts.get("dists") or {}).items()}
    found["python"] = str(facts.get("python", ""))
    return found


def install(python: str, requirements: Sequence[str]) -> str | None:
    """pip-install into ``python``'s environment; returns None or pip's last error line."""
    done = subprocess.run([python, "-m", "pip", "install", "-q", *requirements], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or ["pip failed"])[-1]


def conflicts(python: str) -> set[str]:
    """``pip check``'s complaints about ``python``'s environment (requirements installed
    distributions no longer satisfy)."""
    done = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    return set() if done.returncode == 0 else {line.strip() for line in done.stdout.splitlines() if line.strip()}


def test_python(command: Sequence[str] | None) -> str:
    """The interpreter the tests run with: the test command's, when it starts with a Python."""
    if command and Path(command[0]).name.startswith("python"):
        return command[0]
    return sys.executable
