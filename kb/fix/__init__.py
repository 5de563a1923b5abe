"""SelfCorrectionModule: plan → gate → back up → apply → verify → roll back → record.

- :mod:`kb.fix.plan` turns each root cause's first remedy kb can carry out into edits, a ``git
  apply``-compatible diff and requirements to install; one planner per remedy kind
  (:mod:`kb.fix.registry`: :mod:`~kb.fix.code_edit` with LibCST codemods, :mod:`~kb.fix.pin`,
  :mod:`~kb.fix.test_config`, :mod:`~kb.fix.quarantine`). Nothing is written by planning.
- :mod:`kb.fix.gate` decides who approves (risk, confidence as shown, the project's configuration).
- :mod:`kb.fix.transaction` applies one fix: journal and backups first, atomic writes, installs,
  a metadata check of edited packaging files, verification (:mod:`kb.fix.verify`), roll back, record.
- :mod:`kb.fix.rounds` runs the loop: ``fix_rounds`` from a report, ``heal`` from the test command.

Guards: paths stay inside the root (symlinks, virtual environments, site-packages, VCS and build
folders are skipped), files keep their encoding, newline style and final newline, strings and
comments are never edited, and an edit that would not parse or only hides a failure is refused.
"""

from __future__ import annotations

from .gate import gate
from .plan import plan_fix
from .rounds import HealRound, baseline_of, fix_rounds, heal
from .sources import SKIP_DIRS, silences, unified_diff
from .transaction import apply_fix, recover, restore_environment, undo_fix
from .types import Baseline, Edit, Event, FixOptions, FixPlan, Outcome, Planned, RemedyPlan

__all__ = ["Edit", "Planned", "RemedyPlan", "FixPlan", "Outcome", "FixOptions", "Event", "Baseline", "HealRound",
           "plan_fix", "gate", "apply_fix", "fix_rounds", "heal", "baseline_of", "undo_fix", "recover", "restore_environment",
           "silences", "unified_diff", "SKIP_DIRS"]
