"""Dependency pins (the ``dependency-pin`` remedy kind): write a version constraint where the project declares the dependency, as a person
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
dependency are read (:func:`kb.testenv.dependents`). One whose requirement the pin would break — no version
allowed by both, or pip's resolver (a ``--dry-run``) cannot install the pin next to the installed
release — is pinned along, below its installed major (``flask<3`` for Flask 3.0.0), else below its
installed minor, whichever pip resolves together with the pin; it is merged where the project declares
it, else added where the pin went, and installed with the pin. When neither resolves the whole pin is
refused, the conflict named.

**Metadata.** Edited packaging files must still build metadata (:func:`kb.fix.metadata.check_metadata`): a
plan that breaks them is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pep440 import release_ceilings, requirement_parts, specifiers_overlap
from ..testenv import dependents, dry_run
from .declarations import Files, Refused, merge_all
from .metadata import check_metadata
from .placement import test_place
from .registry import Context, remedy
from .sources import Source, planned_from
from .types import Planned

__all__ = ["PinPlan", "plan_pin", "plan_dependency_pin"]


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


def _pins_along(python: str, requirement: str) -> list[str]:
    """The dependents' pins that let ``requirement`` be installed (module docstring); Refused when a
    dependent cannot be pinned so."""
    name, _extras, spec, _marker = requirement_parts(requirement)  # type: ignore[misc]
    found = dependents(python, name)
    if not found:
        return []
    clashing = [dep for dep, (_v, needs) in found.items() if not specifiers_overlap(needs, spec)]
    if not clashing:
        together, _why = dry_run(python, [requirement, *(f"{dep}=={v}" for dep, (v, _n) in found.items())])
        if together is not False:
            return []
        clashing = [dep for dep, (v, _n) in found.items() if dry_run(python, [requirement, f"{dep}=={v}"])[0] is False]
    pins: list[str] = []
    for dep in clashing:
        version, needs = found[dep]
        why = ""
        for ceiling in release_ceilings(version):
            ok, why = dry_run(python, [requirement, *pins, f"{dep}<{ceiling}"])
            if ok:
                pins.append(f"{dep}<{ceiling}")
                break
        else:
            detail = f"; pip: {why}" if why else ""
            raise Refused(f"pinning {requirement} conflicts with the installed {dep} {version} "
                           f"(requires {name}{needs}), and no earlier {dep} release allows it{detail}")
    return pins


def plan_pin(root: Path, requirement: str, *, python: str | None = None,
             test_command: Sequence[str] | None = None) -> PinPlan:
    """Plan pinning ``requirement`` (``"numpy<2"``; a bare name adds a missing dependency) in the project at ``root`` (the module docstring
    says where it goes); nothing is written. ``python`` is the tests' interpreter: with it, installed
    dependents the pin would break are pinned along, and an edited setup.py is run with it (without it:
    no dependents are looked at, and kb's own interpreter runs setup.py)."""
    parts = requirement_parts(requirement)
    if parts is None:
        return PinPlan(refused=f"not a requirement: {requirement!r}")
    files = Files(root)
    try:
        declared = merge_all(files, requirement)
        where: list[str] = []
        if declared:
            written = [d for d in declared if d.merged is not None]
            where += [d.label for d in written]
            if not written:
                where += [f"already declared as '{d.existing}' ({d.label})" for d in declared]
            place = (written or declared)[0].place
        else:
            found = test_place(files, test_command or [])
            if found is None:
                raise Refused(f"the project does not declare {parts[0]} and has no place for test dependencies "
                               f"(tox.ini [testenv] deps, a test extra, requirements-test.txt): add '{requirement}' "
                               f"where its tests get their dependencies")
            found.add(files, requirement)
            place = found
            where.append(found.label)
        along = _pins_along(python, requirement) if python else []
        for pin in along:
            pinned = [d for d in merge_all(files, pin)]
            if pinned:
                where += [d.label for d in pinned if d.merged is not None and d.label not in where]
            else:
                place.add(files, pin)
                where += [place.label] if place.label not in where else []
        changes = files.changes()
        broken = check_metadata(root, python or sys.executable, changes, changes) if changes else None
        if broken:
            raise Refused(broken)
    except Refused as exc:
        return PinPlan(refused=str(exc))
    return PinPlan(changes, tuple(dict.fromkeys(where)), (requirement, *along))


@remedy("dependency-pin")
def plan_dependency_pin(spec: dict[str, Any], ctx: Context) -> Planned | None:
    requirement = str((spec.get("params") or {}).get("requirement") or "")
    if not requirement:
        return None
    pin = plan_pin(ctx.root, requirement, python=ctx.python, test_command=ctx.test_command)
    if pin.refused:
        return Planned(refused=pin.refused)
    sources = [(Source(ctx.root / rel, rel, "utf-8", before.decode("utf-8")), after.decode("utf-8"))
               for rel, (before, after) in sorted(pin.changes.items())]
    planned = planned_from(sources, check=False, where=tuple(pin.where))
    planned.install = tuple(pin.install)
    return planned
