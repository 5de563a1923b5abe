"""``--format markdown``: for pull-request comments and CI job summaries."""

from __future__ import annotations

from typing import Any

from . import renderer
from .common import confidence_terms, example_tests, location_text, remedy_line, summary_line


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


@renderer("markdown")
def render_markdown(doc: dict[str, Any]) -> str:
    out = ["# kb diagnosis", "", f"**{summary_line(doc)}** — {', '.join(f'`{s}`' for s in doc['sources'])}", ""]
    causes = doc["root_causes"]
    out.append(f"## Root causes ({len(causes)})")
    out.append("")
    if not causes:
        out.append("No known root cause.")
    for n, cause in enumerate(causes, 1):
        out.append(f"### {n}. {_cell(cause['title'])}")
        out.append("")
        out.append(f"- **confidence** {cause['confidence']:.2f} ({confidence_terms(cause)})")
        out.append(f"- **tests** ({len(cause['tests'])}): {_cell(example_tests(cause['tests']))}")
        if cause.get("locations"):
            out.append("- **where**: " + ", ".join(f"`{location_text(loc)}`" for loc in cause["locations"][:5]))
        out.append(f"- **why**: {_cell(cause['explanation'])}")
        out.append(f"- **rule** `{cause['rule']}` · {cause['category']} · [source]({cause.get('source', '')})")
        out.append("")
        out.append("Evidence:")
        out.extend(f"- {_cell(item)}" for item in cause["evidence"])
        if cause["remedies"]:
            out.append("")
            out.append("Suggested fix:")
            out.extend(f"{i}. {_cell(remedy_line(r))}" for i, r in enumerate(cause["remedies"], 1))
        out.append("")
    undiagnosed = doc["undiagnosed"]
    if undiagnosed:
        out.append(f"## Undiagnosed ({len(undiagnosed)})")
        out.append("")
        out.append("| test | exception | message |")
        out.append("|---|---|---|")
        for item in undiagnosed:
            message = item["message"].splitlines()[0] if item["message"] else ""
            out.append(f"| `{_cell(item['test'])}` | {_cell(item['exception'])} | {_cell(message[:160])} |")
    return "\n".join(out) + "\n"
