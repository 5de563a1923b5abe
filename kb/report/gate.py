"""CI gates: the exit status ``--fail-on`` asks of a report (``kb diagnose``, ``kb run``).

``never``: 0. ``undiagnosed``: 1 when some failure has no known cause. ``cause``: 1 when a root cause was
found. ``any``: 1 when any test failed or errored (suite-level errors included). ``status`` (``kb run`` only): the test command's own
exit status.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FAIL_ON", "RUN_FAIL_ON", "gate_status"]

#: ``kb diagnose --fail-on`` choices, the default first
FAIL_ON = ("never", "undiagnosed", "cause", "any")
#: ``kb run --fail-on`` choices, the default first
RUN_FAIL_ON = ("status", *FAIL_ON)


def gate_status(doc: dict[str, Any], fail_on: str, command_status: int | None = None) -> int:
    """0 or 1 for ``fail_on`` on the report ``doc``; for ``status``, ``command_status`` (a status that is
    no exit code — unknown, negative for a signal, above 255 — becomes 1)."""
    summary = doc.get("summary", {})
    if fail_on == "status":
        status = command_status if command_status is not None else 1
        return status if 0 <= status < 256 else 1
    if fail_on == "undiagnosed":
        return 1 if summary.get("undiagnosed", len(doc.get("undiagnosed", []))) else 0
    if fail_on == "cause":
        return 1 if doc.get("root_causes") else 0
    if fail_on == "any":
        failed = summary.get("failures", 0) + summary.get("errors", 0) + summary.get("suite_errors", 0)
        return 1 if failed or doc.get("root_causes") or doc.get("undiagnosed") else 0
    if fail_on == "never":
        return 0
    raise ValueError(f"unknown --fail-on {fail_on!r}")
