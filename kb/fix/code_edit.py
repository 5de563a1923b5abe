"""Code edits: a remedy's template names a LibCST codemod (:mod:`kb.fix.codemods`) and its params say
what to rename, move, add or drop. Every project file that can contain the API is rewritten (a removed
import is fixed in every module that has it, not only the one in the traceback); an edit that would
not parse or only hides the failure is refused."""

from __future__ import annotations

import ast
from typing import Any

from ..errors import FixError
from .registry import Context, remedy
from .sources import Source, planned_from
from .types import Planned

__all__ = ["plan_code_edit"]


@remedy("code-edit")
def plan_code_edit(spec: dict[str, Any], ctx: Context) -> Planned | None:
    from .codemods import CODEMODS, check_params, needles, transform

    template = spec.get("template")
    if not template:
        return None
    if template == "quarantine":  # an expiring xfail is its own remedy kind, approved by a person
        return Planned(refused="as a code edit, quarantine adds 'pytest.mark.xfail': it would hide the failure, refused")
    if template not in CODEMODS:
        return Planned(refused=f"template {template} is not a code edit")
    params = dict(spec.get("params") or {})
    if template == "rename-attribute" and "." not in str(params.get("old", ".")) and ctx.owner:
        params.setdefault("owner", ctx.owner)  # `.warn` of logging is not `warnings.warn`
    try:
        check_params(template, params)
    except FixError as exc:
        return Planned(refused=f"template {template}: {exc}")
    wanted = needles(template, params)
    rewritten: list[tuple[Source, str]] = []
    for source in ctx.sources():
        if not all(n in source.text for n in wanted):
            continue
        text = transform(template, params, source.text)
        if text == source.text:
            continue
        try:
            ast.parse(text, filename=source.rel)
        except (SyntaxError, ValueError) as exc:
            return Planned(refused=f"the edited {source.rel} would not parse (line {getattr(exc, 'lineno', '?')}): refused")
        rewritten.append((source, text))
    planned = planned_from(rewritten)
    if not planned.changes and planned.refused is None:
        planned.refused = f"template {template} found nothing to change under {ctx.root}"
    return planned
