"""Quarantine: mark the cause's tests ``xfail`` with a reason and an expiry date written into the
mark's condition, so the mark lapses by itself and the test counts again (the only remedy allowed
to add an xfail; a person approves it)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from .registry import Context, remedy
from .sources import Source, planned_from
from .types import Planned

__all__ = ["plan_quarantine", "QUARANTINE_DAYS", "quarantine_targets"]

QUARANTINE_DAYS = 30


def quarantine_targets(tests: list[str]) -> dict[str, set[str]]:
    """File → the test functions to mark ("test_x" or "Class::test_x"), parameters dropped."""
    by_file: dict[str, set[str]] = {}
    for test in tests:
        path, _, rest = test.partition("::")
        if rest:
            by_file.setdefault(path, set()).add(rest.split("[", 1)[0])
    return by_file


@remedy("quarantine")
def plan_quarantine(spec: dict[str, Any], ctx: Context, today: date | None = None) -> Planned | None:
    from .codemods import quarantine

    if spec.get("template") != "quarantine":
        return None
    params = dict(spec.get("params") or {})
    until = ((today or date.today()) + timedelta(days=int(params.get("days", QUARANTINE_DAYS)))).isoformat()
    reason = f"kb quarantine until {until}: {params.get('reason') or spec.get('description', '')}".strip()
    by_file = quarantine_targets(ctx.tests)
    rewritten: list[tuple[Source, str]] = []
    for source in ctx.sources():
        names = next((n for p, n in by_file.items() if source.rel == p or source.rel.endswith("/" + p)), None)
        if names:
            text = quarantine(source.text, names, until, reason)
            if text != source.text:
                rewritten.append((source, text))
    planned = planned_from(rewritten, check=False)
    if not planned.changes:
        planned.refused = "none of the cause's tests was found in the project's files"
    return planned
