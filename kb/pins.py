"""Dependency-pin remedies: write a version constraint where the project declares the dependency,
and install it into the environment the tests run in (restoring the old version on rollback).

Declarations looked at, in the project root: ``requirements*.txt`` / ``constraints*.txt`` (also in
a ``requirements/`` folder), ``setup.cfg``, ``pyproject.toml`` and ``setup.py``. A pin is merged
with what is there: lower bounds and exclusions stay, upper bounds and exact pins give way to the
new constraint, environment markers are kept. When the project does not declare the dependency
(it comes in transitively), the constraint is added where the project lists its *test*
dependencies — the ``deps`` of tox.ini's ``[testenv]``, else a test/dev requirements file — and
when it has neither, nothing is planned and kb says where the pin should go.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["split_requirement", "merge", "pin_line", "declaration_files", "installed_version", "install", "test_python",
           "environment", "test_declarations", "add_requirement", "conflicts"]

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_requirement(text: str) -> tuple[str, str, str]:
    """``"setuptools>=40; python_version>'3'"`` → ("setuptools", ">=40", "; python_version>'3'")."""
    found = _NAME.match(text)
    if not found:
        return "", "", text
    name = found.group(1)
    rest = text[found.end():]
    marker = ""
    if ";" in rest:
        rest, marker = rest.split(";", 1)
        marker = ";" + marker
    extras = ""
    if rest.lstrip().startswith("["):
        close = rest.find("]")
        extras, rest = rest[: close + 1].strip(), rest[close + 1:]
    return name + extras, rest.strip(), marker


def merge(existing: str, new: str) -> str:
    """Merge two specifier sets: keep the existing lower bounds and exclusions, take the new bounds."""
    kept = [s.strip() for s in existing.split(",") if s.strip().startswith((">", "!=")) and s.strip()]
    added = [s.strip() for s in new.split(",") if s.strip()]
    return ",".join(dict.fromkeys(kept + added))


def pin_line(line: str, requirement: str, quoted: bool) -> str:
    """The line with the requirement on ``requirement``'s distribution pinned (unchanged if absent)."""
    name, spec, _ = split_requirement(requirement)
    wanted = _norm(name)
    if quoted:
        def replace(found: re.Match[str]) -> str:
            quote, body = found.group(1), found.group(2)
            dist, old_spec, marker = split_requirement(body)
            if _norm(dist.split("[")[0]) != wanted:
                return found.group(0)
            return f"{quote}{dist}{merge(old_spec, spec)}{marker.rstrip()}{quote}"
        return re.sub(r"([\"'])([A-Za-z0-9][^\"'\n]{0,300})\1", replace, line)
    stripped = line.strip()
    if not stripped or stripped.startswith(("#", "-", "[")) or "=" in stripped.split(" ", 1)[0][:1]:
        return line
    comment = ""
    body = line
    found_comment = re.search(r"\s+#", body)
    if found_comment:
        body, comment = body[: found_comment.start()], body[found_comment.start():]
    indent = body[: len(body) - len(body.lstrip())]
    dist, old_spec, marker = split_requirement(body.strip())
    if not dist or _norm(dist.split("[")[0]) != wanted:
        return line
    if "=" in body and body.split("=", 1)[0].strip().isidentifier() and not old_spec.startswith(("=", "==")):
        return line  # "key = value" in setup.cfg, not a requirement
    marker = f" {marker.strip()}" if marker else ""
    return f"{indent}{dist}{merge(old_spec, spec)}{marker}{comment}"


def declaration_files(root: Path) -> list[tuple[Path, bool]]:
    """(file, requirements-are-quoted) for every dependency declaration in the project root."""
    found: list[tuple[Path, bool]] = []
    for folder in (root, root / "requirements"):
        if folder.is_dir():
            for pattern in ("requirements*.txt", "constraints*.txt", "*.txt" if folder.name == "requirements" else ""):
                if pattern:
                    found.extend((p, False) for p in sorted(folder.glob(pattern)) if not p.is_symlink())
    for name, quoted in (("setup.cfg", False), ("pyproject.toml", True), ("setup.py", True)):
        path = root / name
        if path.is_file() and not path.is_symlink():
            found.append((path, quoted))
    return list(dict.fromkeys(found))


TEST_REQUIREMENTS = ("requirements-test*.txt", "requirements_test*.txt", "test-requirements*.txt",
                     "test_requirements*.txt", "requirements-dev*.txt", "requirements_dev*.txt",
                     "dev-requirements*.txt", "requirements/test*.txt", "requirements/dev*.txt")


def test_declarations(root: Path) -> list[Path]:
    """Where the project lists its test dependencies: tox.ini (with a [testenv] deps), then test/dev
    requirements files."""
    found: list[Path] = []
    tox = root / "tox.ini"
    if tox.is_file() and not tox.is_symlink():
        found.append(tox)
    for pattern in TEST_REQUIREMENTS:
        found.extend(p for p in sorted(root.glob(pattern)) if p.is_file() and not p.is_symlink())
    return list(dict.fromkeys(found))


def add_requirement(lines: list[str], requirement: str, tox: bool) -> list[str] | None:
    """``lines`` with ``requirement`` added as a new line (tox.ini: at the end of ``[testenv]``'s
    ``deps``); None when there is no place for it. Lines keep their endings."""
    ending = next((line[len(line.rstrip("\r\n")):] for line in lines if line.endswith(("\n", "\r"))), "\n")
    if not tox:
        body = list(lines)
        if body and not body[-1].endswith(("\n", "\r")):
            body[-1] += ending
        return [*body, requirement + ending]
    start = next((i for i, line in enumerate(lines) if line.strip() == "[testenv]"), None)
    if start is None:
        return None
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            return None
        if re.match(r"deps\s*=", lines[i]):
            last, indent = i, "    "
            while last + 1 < len(lines) and lines[last + 1][:1] in (" ", "\t") and lines[last + 1].strip():
                last += 1
                indent = lines[last][: len(lines[last]) - len(lines[last].lstrip())]
            tail = lines[last] if lines[last].endswith(("\n", "\r")) else lines[last] + ending
            return [*lines[:last], tail, f"{indent}{requirement}{ending}", *lines[last + 1:]]
    return None


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
