"""What the CI formats (SARIF, GitHub annotations, GitLab code quality) share: one finding per root cause
and one per undiagnosed failure, each with a place in the code, a level and a stable fingerprint.

A root cause is placed at its first "where" location (the line most of its failures were raised at),
else at the file of its first test; an undiagnosed failure at its own location, else at its test's file.
The level comes from the confidence, on the same scale ``kb fix --yes`` uses:

=========================  ==========  =====================  ===============
finding                    level       GitHub command         GitLab severity
=========================  ==========  =====================  ===============
cause, confidence ≥ 0.8    ``error``   ``::error``            ``major``
cause, 0.5 ≤ conf. < 0.8   ``warning`` ``::warning``          ``minor``
cause, confidence < 0.5    ``note``    ``::notice``           ``info``
undiagnosed failure        ``warning`` ``::warning``          ``minor``
=========================  ==========  =====================  ===============

0.8 is the least confidence ``--yes`` applies a fix at by default; 0.5 is a rule's neutral prior (below it
kb is guessing). An undiagnosed failure is a real failure kb cannot explain: a warning, never hidden.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "Place", "findings", "level_of", "test_file", "failure_text", "UNDIAGNOSED_RULE", "ERROR_AT",
           "WARNING_AT"]

#: the confidence from which a cause is an error (kb fix --yes's default --min-confidence)
ERROR_AT = 0.8
#: the confidence from which a cause is a warning (a rule's neutral prior)
WARNING_AT = 0.5
#: the rule id undiagnosed failures are reported under (kb's own rule ids never contain "/")
UNDIAGNOSED_RULE = "kb/undiagnosed"


@dataclass(frozen=True)
class Place:
    """A file (as the report names it: relative to the project, or absolute) and a line (None: unknown)."""

    path: str
    line: int | None = None


@dataclass(frozen=True)
class Finding:
    """One thing a CI system should show: a root cause or an undiagnosed failure."""

    rule: str
    title: str
    level: str  # "error" | "warning" | "note"
    tests: list[str]
    place: Place | None  # None: the report names no file for it
    others: list[Place] = field(default_factory=list)  # a cause's other "where" locations
    fingerprint: str = ""
    cause: dict[str, Any] | None = None  # the root cause itself (None for an undiagnosed failure)
    failure: dict[str, Any] | None = None  # the undiagnosed failure itself


def level_of(confidence: float) -> str:
    """``error`` from :data:`ERROR_AT`, ``warning`` from :data:`WARNING_AT`, else ``note``."""
    return "error" if confidence >= ERROR_AT else "warning" if confidence >= WARNING_AT else "note"


def test_file(test: str) -> str | None:
    """The file part of a test id (``tests/test_a.py::T::t`` → ``tests/test_a.py``) when it looks like a
    path; a Java or .NET class name (``com.acme.FooTest``) is not one."""
    head = test.split("::", 1)[0].strip()
    return head if head and ("/" in head or head.endswith(".py")) else None


def _place(loc: dict[str, Any] | None) -> Place | None:
    if not loc or not loc.get("file"):
        return None
    line = loc.get("line")
    return Place(str(loc["file"]), line if isinstance(line, int) and line >= 1 else None)


def _fingerprint(*parts: str) -> str:
    """A stable id for the same finding across runs (the line is left out: code moves, the finding stays)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _from_test(tests: list[str]) -> Place | None:
    path = next((p for p in map(test_file, tests) if p), None)
    return Place(path) if path else None


def findings(doc: dict[str, Any]) -> list[Finding]:
    """The report's root causes (most confident first, as the report orders them), then its undiagnosed
    failures."""
    found: list[Finding] = []
    for cause in doc.get("root_causes", []):
        places = [p for p in map(_place, cause.get("locations") or []) if p]
        place = places[0] if places else _from_test(cause["tests"])
        found.append(Finding(
            rule=cause["rule"], title=cause["title"], level=level_of(cause["confidence"]), tests=list(cause["tests"]),
            place=place, others=places[1:],
            fingerprint=_fingerprint(cause["rule"], cause.get("key") or cause["title"], place.path if place else ""),
            cause=cause))
    for item in doc.get("undiagnosed", []):
        place = _place(item.get("location")) or _from_test([item["test"]])
        found.append(Finding(
            rule=UNDIAGNOSED_RULE, title=f"{item['test']} failed; no kb rule explains it", level="warning",
            tests=[item["test"]], place=place,
            fingerprint=_fingerprint(UNDIAGNOSED_RULE, item["test"], item.get("phase") or "", item.get("exception") or ""),
            failure=item))
    return found


def failure_text(item: dict[str, Any]) -> str:
    """An undiagnosed failure's exception and message, as the report gives them."""
    head = f"{item['exception']}: " if item.get("exception") else ""
    message = (item.get("message") or "").strip()
    return f"{head}{message}".strip() or "(the report gives no message)"
