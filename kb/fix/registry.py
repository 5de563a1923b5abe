"""Remedy kinds, one planner each: ``@remedy("code-edit")`` registers the function that turns a remedy
of that kind into a :class:`~kb.fix.types.Planned` change (or None when it is not one kb carries out).

The planners live in their own modules (:mod:`kb.fix.code_edit`, :mod:`kb.fix.pin`, :mod:`kb.fix.isolation`,
:mod:`kb.fix.test_config`, :mod:`kb.fix.quarantine`); :mod:`kb.fix.plan` imports them so they register.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sources import Source, python_files, read_source
from .types import Planned

__all__ = ["Context", "Planner", "remedy", "planner", "kinds"]


@dataclass
class Context:
    """What a planner may look at: the project, the cause's tests and the tests' interpreter and command."""

    root: Path
    tests: list[str] = field(default_factory=list)
    python: str | None = None
    test_command: list[str] | None = None
    _sources: list[Source] | None = None
    #: the module the cause's failures trace to (its owner fact), when known
    owner: str | None = None

    def sources(self) -> list[Source]:
        """The project's own Python files (read once per plan)."""
        if self._sources is None:
            self._sources = [s for s in (read_source(p, self.root) for p in python_files(self.root)) if s is not None]
        return self._sources


Planner = Callable[[dict[str, Any], Context], Planned | None]
_PLANNERS: dict[str, Planner] = {}


def remedy(kind: str) -> Callable[[Planner], Planner]:
    """Register the planner of one remedy kind."""
    def register(func: Planner) -> Planner:
        if kind in _PLANNERS:
            raise ValueError(f"remedy kind {kind!r} registered twice")
        _PLANNERS[kind] = func
        return func
    return register


def planner(kind: str) -> Planner | None:
    return _PLANNERS.get(kind)


def kinds() -> list[str]:
    return sorted(_PLANNERS)
