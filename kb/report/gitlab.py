"""``--format gitlab``: a GitLab code-quality report (``artifacts: reports: codequality``), one issue per
root cause and per undiagnosed failure, shown in the merge request's widget and diff.

Each issue has the fields GitLab requires: ``description``, ``check_name`` (the kb rule, or
``kb/undiagnosed``), ``fingerprint`` (a SHA-256 of the rule, the cause and its file — not the line, so
the same cause is the same issue when code moves; GitLab compares them between branches),
``severity`` (:mod:`kb.report.findings`) and ``location.path`` with ``location.lines.begin``. GitLab
needs a path and a line on every issue: a finding with no file in the report gets its test's name as
the path, and line 1 when the line is unknown.
"""

from __future__ import annotations

import json
from typing import Any

from . import renderer
from .findings import Finding, failure_text, findings

SEVERITY = {"error": "major", "warning": "minor", "note": "info"}


def issue(finding: Finding) -> dict[str, Any]:
    """One code-quality issue for ``finding``."""
    if finding.cause is not None:
        cause = finding.cause
        description = (f"{finding.title} (kb rule {finding.rule}, confidence {cause['confidence']:.2f}, "
                       f"{len(finding.tests)} test(s))")
    else:
        item = finding.failure or {}
        description = f"{item['test']}: {failure_text(item).splitlines()[0]} (undiagnosed: no kb rule explains it)"
    path = finding.place.path if finding.place else finding.tests[0].split("::", 1)[0]
    line = finding.place.line if finding.place and finding.place.line else 1
    return {"description": description, "check_name": finding.rule, "fingerprint": finding.fingerprint,
            "severity": SEVERITY[finding.level], "location": {"path": path, "lines": {"begin": line}}}


@renderer("gitlab", raw=True)
def render_gitlab(doc: dict[str, Any]) -> str:
    return json.dumps([issue(f) for f in findings(doc)], indent=2) + "\n"
