"""Small wording helpers shared by the people-facing renderers."""

from __future__ import annotations

from typing import Any

#: how many affected tests are named before "+N more"
EXAMPLE_TESTS = 3


def summary_line(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    line = (f"{s['tests']} tests: {s['passed']} passed, {s['failures']} failed, "
            f"{s['errors']} errors, {s['skipped']} skipped")
    if s.get("suite_errors"):
        line += f", {s['suite_errors']} suite-level error(s)"
    return line


def example_tests(tests: list[str]) -> str:
    shown = ", ".join(tests[:EXAMPLE_TESTS])
    more = len(tests) - EXAMPLE_TESTS
    return shown + (f" (+{more} more)" if more > 0 else "")


def confidence_terms(cause: dict[str, Any]) -> str:
    b = cause["confidence_breakdown"]
    parts = [f"prior {b['prior']:.2f}"]
    for name, value in b["terms"].items():
        if value:
            parts.append(f"{name} {value:+.2f}")
    learned = b.get("learned") or {}
    if learned.get("attempts"):
        parts.append(f"verified {learned['verified']}/{learned['attempts']}")
    return ", ".join(parts) + f" → {cause['confidence']:.2f}"


def remedy_line(remedy: dict[str, Any]) -> str:
    tail = f" (template {remedy['template']})" if remedy.get("template") else ""
    url = f" — {remedy['url']}" if remedy.get("url") and remedy["kind"] == "manual" else ""
    return f"[{remedy['kind']}, {remedy['risk']} risk] {remedy['description']}{tail}{url}"


def location_text(loc: dict[str, Any] | None) -> str:
    if not loc:
        return ""
    line = f":{loc['line']}" if loc.get("line") else ""
    count = f" ({loc['count']}×)" if loc.get("count", 1) > 1 else ""
    return f"{loc['file']}{line}{count}"
