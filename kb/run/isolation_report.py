"""What ``kb isolate`` found, as a diagnosis: the verdict as a ``KbVerdict`` fact the test-behaviour pack
turns into a cause, the test's own failure for a deterministic one, and — when kb saw what the polluter
(or the setter) changes — an ``isolation-fixture`` remedy ``kb fix --last`` can apply: an autouse fixture
beside the victim that restores that state (or provides it, for a test that needs a setter). The remedy
carries the orders that prove it: the failing order and the victim alone must both pass afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models import Run
from .investigate import Isolation
from .isolate import AS_FACTS, Verdict, with_verdicts

__all__ = ["IsolationReport", "diagnose_isolation", "describe_change", "fixture_remedy"]

#: changes the fixture can undo or provide (the others are described, not written)
_FIXABLE = ("global", "environ")


def _subject(change: dict[str, Any]) -> str:
    """What a global or environment change is about: ``module.NAME`` or ``$NAME``."""
    if change.get("kind") == "global":
        return f"{change.get('module')}.{change.get('name')}"
    return f"${change.get('name')}"


def describe_change(change: dict[str, Any]) -> str:
    kind = change.get("kind")
    if kind == "global":
        return f"{_subject(change)}: {change.get('before')} → {change.get('after')}"
    if kind == "environ":
        return f"{_subject(change)}: {change.get('before')!r} → {change.get('after')!r}"
    if kind == "module":
        return f"module {change.get('name')} imported"
    if kind == "file":
        return f"file {change.get('name')} {'created' if change.get('after') else 'removed'} in the working directory"
    return f"working directory {change.get('before')} → {change.get('after')}"


def fixture_remedy(verdict: Verdict, before: list[str] | None = None) -> tuple[dict[str, Any], list[list[str]]] | None:
    """The isolation-fixture remedy for ``verdict`` and the orders that verify it (None: nothing to write):
    the reproducer, the test alone, and the whole order it failed in (``before`` it, then it)."""
    changes = [c for c in verdict.state if c.get("kind") in _FIXABLE]
    if not changes:
        return None
    names = ", ".join(_subject(c) for c in changes[:3])
    if verdict.kind == "order-dependent" and verdict.polluters:
        other, mode = ", ".join(verdict.polluters), "restore"
        description = f"Add an autouse fixture beside the test that restores what {other} changes ({names})"
        orders = [[*verdict.polluters, verdict.test], [verdict.test]]
    elif verdict.kind == "needs-setup" and verdict.providers:
        other, mode = ", ".join(verdict.providers), "provide"
        description = f"Add an autouse fixture beside the test that sets up what it takes from {other} ({names})"
        orders = [[verdict.test], [*verdict.providers, verdict.test]]
    else:
        return None
    failing = [*(before or []), verdict.test]
    if len(failing) > 1 and failing not in orders:
        orders.append(failing)
    return ({"kind": "isolation-fixture", "template": "isolation-fixture", "risk": "medium",
             "description": description, "url": "https://docs.pytest.org/en/stable/how-to/monkeypatch.html",
             "params": {"victim": verdict.test, "mode": mode, "other": other, "changes": changes}}, orders)


@dataclass
class IsolationReport:
    """What ``kb isolate`` found: the isolation (verdict, order, reproducer) and the verdict's diagnosis."""

    isolation: Isolation
    #: the diagnosis document of the verdict (None: there was nothing to diagnose)
    diagnosis: dict[str, Any] | None = None

    @property
    def verdict(self) -> Verdict:
        return self.isolation.verdict

    @property
    def root_causes(self) -> list[dict[str, Any]]:
        return self.diagnosis["root_causes"] if self.diagnosis else []

    def as_dict(self) -> dict[str, Any]:
        """The verdict with how it was reached and its root causes (``kb isolate --json``)."""
        done = self.isolation
        return {**done.verdict.as_dict(), "tests_before": done.before, "order": done.order.source,
                "reproduce": done.reproduce, "reproduced": done.reproduced, "notes": done.notes,
                "root_causes": self.root_causes}


def diagnose_isolation(done: Isolation, store: Any, root: str | Path) -> IsolationReport:
    """Diagnose and record the verdict (see the module docstring): a deterministic failure whose cause is
    an API change, a missing dependency or the environment becomes ``environment-dependent``."""
    from ..diagnose import diagnose_run

    verdict = done.verdict
    offered = fixture_remedy(verdict, done.order.tests[: done.before])

    def amend(report: dict[str, Any]) -> None:
        for cause in report["root_causes"]:
            if offered and verdict.test in cause.get("tests", []):
                cause["remedies"].insert(0, offered[0])
                cause["orders"] = offered[1]
                if done.guard:
                    cause["guard"] = done.guard

    base = Run(sources=["kb isolate"], format="kb-isolate", tests=1, passed=1)
    diagnosis = None
    if verdict.kind in AS_FACTS:
        diagnosis = diagnose_run(with_verdicts(base, [verdict]), store, root=root, amend=amend)
    elif done.alone is not None and verdict.kind == "deterministic":
        diagnosis = diagnose_run(done.alone, store, root=root)
        if any(c.get("api_change") or c["category"] in ("missing-dependency", "environment")
               for c in diagnosis["root_causes"]):
            verdict.kind = "environment-dependent"
    store.record_verdicts(diagnosis.get("run_id") if diagnosis else None, [verdict.as_dict()])
    return IsolationReport(done, diagnosis)
