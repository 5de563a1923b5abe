"""``--format github``: GitHub Actions workflow commands, one annotation per root cause and per undiagnosed
failure (``::error file=F,line=N,title=T::message``), shown on the pull request's diff and the run page.

Escaping is the one ``@actions/core`` uses (``packages/core/src/command.ts``): in the message ``%``, CR and
LF become ``%25``, ``%0D`` and ``%0A``; in property values ``:`` and ``,`` also become ``%3A`` and ``%2C``
— so a test name or message can neither end the command nor start a forged one. Levels:
:mod:`kb.report.findings` (``note`` is GitHub's ``notice``). GitHub shows at most 10 annotations of each
level per step; causes come first, most confident first. A report with no failures prints nothing.
"""

from __future__ import annotations

from typing import Any

from . import renderer
from .common import example_tests
from .findings import Finding, failure_text, findings

_COMMAND = {"error": "error", "warning": "warning", "note": "notice"}


def escape_data(text: str) -> str:
    """A workflow command's message."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value (``file=``, ``title=``…)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _message(finding: Finding) -> str:
    if finding.cause is None:
        item = finding.failure or {}
        return f"{item['test']}\n{failure_text(item)}"
    cause = finding.cause
    lines = [f"confidence {cause['confidence']:.2f} · {len(finding.tests)} test(s) · rule {finding.rule} · "
             f"{cause['category']}",
             f"tests: {example_tests(finding.tests)}"]
    if finding.others:
        lines.append("also at: " + ", ".join(f"{p.path}:{p.line}" if p.line else p.path for p in finding.others))
    if cause.get("remedies"):
        lines.append(f"fix: {cause['remedies'][0]['description']}")
    if cause.get("source"):
        lines.append(f"source: {cause['source']}")
    return "\n".join(lines)


def annotation(finding: Finding) -> str:
    """One workflow command for ``finding``."""
    props = []
    if finding.place:
        props.append(f"file={escape_property(finding.place.path)}")
        if finding.place.line:
            props.append(f"line={finding.place.line}")
    title = finding.title if finding.cause else "kb: undiagnosed failure"
    props.append(f"title={escape_property(title)}")
    return f"::{_COMMAND[finding.level]} {','.join(props)}::{escape_data(_message(finding))}"


@renderer("github")
def render_github(doc: dict[str, Any]) -> str:
    lines = [annotation(f) for f in findings(doc)]
    return "".join(line + "\n" for line in lines)
