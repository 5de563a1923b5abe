"""What became of the fixes a ``kb fix`` or ``kb heal`` planned, counted from the events of the rounds
loop (:mod:`kb.fix.rounds`), and the exit status that makes: ``kb fix`` exits 1 when a fix was rolled
back and 3 when ``--apply`` applied nothing although there were causes to fix; ``kb heal`` exits 0
only when its last round's tests all passed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .rounds import HealRound
from .types import Event

__all__ = ["Tally", "heal_status", "FIX_ROLLED_BACK", "FIX_NOTHING_APPLIED"]

#: ``kb fix`` exit statuses beyond 0 (done), 1 (kb could not) and 2 (usage)
FIX_ROLLED_BACK = 1
FIX_NOTHING_APPLIED = 3


class Tally(Counter[str]):
    """Planned fixes by what became of them: ``planned`` or ``not planned`` (no fix kb can carry out) when
    planned; then an applied fix's verdict (``verified``, ``plausible``, ``rolled back``, ``failed``) or
    ``not applied`` (refused by the gate or declined). A count never seen is 0."""

    def add(self, event: Event) -> None:
        """Count one event of the rounds loop (other kinds — rounds, stops, notes — count nothing)."""
        if event.kind == "plan":
            self["planned" if event.item is not None and event.item.remedy is not None else "not planned"] += 1
        elif event.kind in ("refused", "declined"):
            self["not applied"] += 1
        elif event.kind == "outcome" and event.outcome is not None:
            self[event.outcome.verdict] += 1

    @property
    def applied(self) -> int:
        """Fixes kb applied and kept (verified, or plausible when not verified)."""
        return self["verified"] + self["plausible"]

    def status(self, applying: bool) -> int:
        """``kb fix``'s exit status: 1 when a fix was rolled back; 3 when ``applying`` (``--apply``), there
        were causes to fix and none was applied (declined, refused by the gate, or no fix kb can carry out);
        else 0 (a dry run, nothing to fix, or fixes that held)."""
        if self["rolled back"] or self["failed"]:
            return FIX_ROLLED_BACK
        if applying and not self.applied and (self["planned"] or self["not planned"]):
            return FIX_NOTHING_APPLIED
        return 0


def heal_status(rounds: Sequence[HealRound]) -> int:
    """``kb heal``'s exit status: 0 when the last round's tests all passed; 1 when some still fail, the
    test command could not run or wrote no report, or no round ran."""
    last = rounds[-1] if rounds else None
    if last is None or last.problem:
        return 1
    return 0 if last.failing == 0 else 1
