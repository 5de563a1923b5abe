"""Dependency pins: the constraint is merged into the project's own declarations as a person would
write it (:func:`kb.pins.plan_pin`: ``packaging`` for requirements, format-preserving TOML/INI editors,
setup.py through its syntax tree), dependents that the pin would break are pinned along with it or the
pin is refused with the conflict named, and the requirements are installed where the tests run."""

from __future__ import annotations

from typing import Any

from .registry import Context, remedy
from .sources import Source, planned_from
from .types import Planned

__all__ = ["plan_dependency_pin"]


@remedy("dependency-pin")
def plan_dependency_pin(spec: dict[str, Any], ctx: Context) -> Planned | None:
    from ..pins import plan_pin

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
