"""Planning: each root cause's first remedy kb can carry out becomes edits, a diff and requirements
to install. Nothing is written. A forward-compatible code edit is preferred to a pin when both are
known (the pin freezes the project on an old release; the edit keeps it working on the new one)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FixError
from . import code_edit, isolation, pin, quarantine, test_config  # noqa: F401  (they register their remedy kinds)
from .registry import Context, planner
from .sources import installed_location
from .types import FixPlan, RemedyPlan

__all__ = ["plan_fix", "ordered_remedies"]

#: the order in which remedy kinds are tried; kinds not named keep the pack's order after these
_PREFERENCE = {"code-edit": 0, "dependency-pin": 1}


def ordered_remedies(remedies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Code edits before pins; otherwise the order the knowledge gives (stable)."""
    return sorted(remedies, key=lambda r: _PREFERENCE.get(str(r.get("kind")), 2))


def plan_fix(report: dict[str, Any], root: str | Path, *, python: str | None = None,
             test_command: list[str] | None = None) -> FixPlan:
    """Plan the changes for every root cause of a diagnosis report (nothing is written)."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FixError(f"{root}: not a directory")
    refused = installed_location(root)
    if refused:
        raise FixError(f"{root}: {refused}; kb only edits a project's own files")
    shared = Context(root, python=python, test_command=test_command)
    plans: list[RemedyPlan] = []
    for cause in report["root_causes"]:
        plan = RemedyPlan(cause.get("key", cause["rule"]), cause["title"], cause["confidence"], None,
                          rule=cause["rule"], tests=list(cause.get("tests", [])),
                          neighbours=list(cause.get("neighbours", [])),
                          orders=[list(order) for order in cause.get("orders") or []],
                          guard=dict(cause.get("guard") or {}))
        ctx = Context(root, plan.tests, python, test_command, shared.sources(),
                      owner=(cause.get("owner") or {}).get("module") or None)
        reasons: list[str] = []
        for spec in ordered_remedies(list(cause["remedies"])):
            func = planner(str(spec.get("kind")))
            planned = func(spec, ctx) if func else None
            if planned is None:
                continue
            if planned.ok:
                plan.take(spec, planned)
                break
            reasons.append(planned.refused or f"template {spec.get('template')} found nothing to change under {root}")
        if plan.remedy is None:
            if reasons:
                plan.skipped = "; ".join(reasons)
            elif cause["remedies"]:
                first = cause["remedies"][0]
                plan.skipped = (f"kb cannot apply this remedy itself (no fix template); do it by hand: "
                                f"[{first['kind']}] {first['description']}")
            else:
                plan.skipped = "no remedy known"
        plans.append(plan)
    return FixPlan(root, plans)
