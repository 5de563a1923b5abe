"""``--format text``: for people — root causes first, then what kb could not explain."""

from __future__ import annotations

import re
from typing import Any

from ..terminal import BOLD, CYAN, DIM, YELLOW, style
from . import painter, renderer
from .common import confidence_terms, example_tests, location_text, remedy_line, summary_line

_TITLE = re.compile(r"^\d+\. ")


@renderer("text")
def render_text(doc: dict[str, Any]) -> str:
    out = [f"kb {doc['kb_version']}: {summary_line(doc)}  [{', '.join(doc['sources'])}]"]
    for warning in doc.get("warnings", []):
        out.append(f"warning: {warning}")
    causes = doc["root_causes"]
    out.append("")
    out.append(f"Root causes ({len(causes)})" if causes else "Root causes: none known")
    for n, cause in enumerate(causes, 1):
        out.append(f"{n}. {cause['title']}")
        out.append(f"   confidence {cause['confidence']:.2f}  ·  {len(cause['tests'])} test(s)  ·  "
                   f"rule {cause['rule']}  ·  {cause['category']}")
        out.append(f"   tests: {example_tests(cause['tests'])}")
        if cause.get("locations"):
            out.append("   where: " + ", ".join(location_text(loc) for loc in cause["locations"][:5]))
        out.append(f"   why: {cause['explanation']}")
        out.append("   evidence:")
        out.extend(f"     - {item}" for item in cause["evidence"])
        out.append(f"   confidence: {confidence_terms(cause)}")
        if cause["remedies"]:
            out.append("   suggested fix:")
            out.extend(f"     {i}. {remedy_line(r)}" for i, r in enumerate(cause["remedies"], 1))
        for other in cause.get("also_considered", []):
            out.append(f"   also considered: {other}")
    undiagnosed = doc["undiagnosed"]
    if undiagnosed:
        out.append("")
        out.append(f"Undiagnosed ({len(undiagnosed)}): no known pattern")
        for item in undiagnosed:
            where = location_text(item.get("location"))
            head = f"{item['exception']}: " if item["exception"] else ""
            message = item["message"].splitlines()[0] if item["message"].strip() else ""
            said = f"{head}{message[:160]}" or "(the report gives no message)"
            out.append(f"  - {item['test']}: {said}" + (f"  ({where})" if where else ""))
    if doc.get("run_id") is not None:
        out.append("")
        out.append(f"recorded as run {doc['run_id']}")
    return "\n".join(out) + "\n"


@painter("text")
def paint_text(text: str) -> str:
    """Colour on a terminal: the section headings bold, each cause's title bold and its confidence line dim,
    the undiagnosed heading yellow. Only whole lines the renderer wrote are styled."""
    out = []
    for line in text.split("\n"):
        if line.startswith(("Root causes", "kb ")) and not line.startswith("kb: "):
            line = style(line, BOLD)
        elif line.startswith("Undiagnosed ("):
            line = style(line, BOLD, YELLOW)
        elif _TITLE.match(line):
            line = style(line, BOLD, CYAN)
        elif line.startswith("   confidence "):
            line = style(line, DIM)
        out.append(line)
    return "\n".join(out)
