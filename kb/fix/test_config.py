"""Test-configuration remedies: register a marker or ignore one deprecation (by its exact message) in
the pytest configuration pytest itself reads (:func:`kb.pytestconfig.plan_setting`)."""

from __future__ import annotations

from typing import Any

from ..templates import render_template
from .registry import Context, remedy
from .sources import Source, planned_from
from .types import Planned

__all__ = ["plan_test_config", "CONFIG_KEYS"]

#: template → the pytest setting its rendered line goes into
CONFIG_KEYS = {"register-marker": "markers", "filterwarnings": "filterwarnings"}


@remedy("test-config")
def plan_test_config(spec: dict[str, Any], ctx: Context) -> Planned | None:
    from ..pytestconfig import plan_setting

    template = spec.get("template")
    if template not in CONFIG_KEYS:
        return None
    entry = render_template(template, params=spec.get("params") or {})
    found = plan_setting(ctx.root, CONFIG_KEYS[template], entry)
    if isinstance(found, str):
        return Planned(refused=found)
    rel, before, after = found
    source = Source(ctx.root / rel, rel, "utf-8", before.decode("utf-8"))
    planned = planned_from([(source, after.decode("utf-8"))], check=False, where=(rel,))
    planned.changes = {rel: (before, after)}  # byte-exact, whatever the decoding did
    return planned
