"""``--format sarif``: SARIF 2.1.0 for code scanning (GitHub's upload-sarif, GitLab, IDE viewers).

One result per root cause at its "where" location (its other locations as ``relatedLocations``), under
the kb rule that found it; each rule entry's ``helpUri`` is the upstream source of its first cause.
Undiagnosed failures are results of the rule ``kb/undiagnosed`` at the failure's location. Levels:
:mod:`kb.report.findings`. The affected tests, the confidence and the remedies are in each result's
``properties``. Valid against the OASIS 2.1.0 schema (``tests/corpus/sarif-schema-2.1.0.json``).
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from . import renderer
from .findings import UNDIAGNOSED_RULE, Finding, Place, failure_text, findings

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_UNDIAGNOSED_HELP = ("A test failed in a way no kb rule explains. kb lists it so it is never hidden; "
                     "`kb suggest` drafts a rule from such failures.")


def _uri(path: str) -> str:
    """A file as a URI reference: relative paths stay relative (resolved against the checkout), absolute
    ones become ``file://`` URIs."""
    posix = path.replace("\\", "/")
    if posix.startswith("/"):
        return PurePosixPath(posix).as_uri()
    return quote(posix, safe="/-._~")


def _location(place: Place, index: int | None = None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(place.path)}}
    if place.line:
        physical["region"] = {"startLine": place.line}
    return {**({"id": index} if index is not None else {}), "physicalLocation": physical}


def _is_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _rule(finding: Finding) -> dict[str, Any]:
    if finding.cause is None:
        return {"id": UNDIAGNOSED_RULE, "name": "Undiagnosed",
                "shortDescription": {"text": "A failure no kb rule explains"},
                "help": {"text": _UNDIAGNOSED_HELP}, "defaultConfiguration": {"level": "warning"}}
    cause = finding.cause
    explanation = cause["explanation"]
    entry: dict[str, Any] = {
        "id": finding.rule,
        "shortDescription": {"text": explanation.split(". ", 1)[0].rstrip(".") + "."},
        "fullDescription": {"text": explanation},
        "help": {"text": explanation + (f" Source: {cause['source']}" if cause.get("source") else "")},
        "defaultConfiguration": {"level": finding.level},
        "properties": {"tags": [cause["category"]]},
    }
    if _is_url(cause.get("source") or ""):
        entry["helpUri"] = cause["source"]
    return entry


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    if finding.cause is not None:
        cause = finding.cause
        text = finding.title
        properties: dict[str, Any] = {
            "tests": finding.tests, "confidence": cause["confidence"], "category": cause["category"],
            "remedies": [r["description"] for r in cause.get("remedies", [])]}
        if cause.get("source"):
            properties["source"] = cause["source"]
    else:
        item = finding.failure or {}
        text = f"{item['test']}: {failure_text(item)}"
        properties = {"tests": finding.tests, "exception": item.get("exception", "")}
    result: dict[str, Any] = {
        "ruleId": finding.rule, "ruleIndex": rule_index, "level": finding.level, "message": {"text": text},
        "partialFingerprints": {"kbFinding/v1": finding.fingerprint}, "properties": properties,
    }
    if finding.place:
        result["locations"] = [_location(finding.place)]
    if finding.others:
        result["relatedLocations"] = [_location(p, i) for i, p in enumerate(finding.others, 1)]
    return result


def sarif_log(doc: dict[str, Any]) -> dict[str, Any]:
    """The SARIF log (one run) for a report document."""
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    results = []
    for finding in findings(doc):
        if finding.rule not in index:
            index[finding.rule] = len(rules)
            rules.append(_rule(finding))
        results.append(_result(finding, index[finding.rule]))
    summary = doc.get("summary", {})
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "kb", "version": doc.get("kb_version", ""), "rules": rules}},
            "results": results,
            "properties": {"sources": list(doc.get("sources", [])), "summary": dict(summary)},
        }],
    }


@renderer("sarif", raw=True)
def render_sarif(doc: dict[str, Any]) -> str:
    return json.dumps(sarif_log(doc), indent=2) + "\n"
