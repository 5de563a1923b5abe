"""What a ``kb fix`` or ``kb heal`` starts from: its options — the flags, the project's configuration
for what they leave open, the versions installed where the tests run — and, for ``kb fix`` given
reports, the diagnosed report with the run it came from as the baseline regressions are judged against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .rounds import baseline_of
from .types import FixOptions

__all__ = ["fix_options", "diagnose_for_fix"]


def fix_options(root: str | Path, test_command: Sequence[str] | None = None, *, apply: bool = False,
                yes: bool = False, max_risk: str = "low", min_confidence: float | None = None,
                allow_critical: bool = False, verify: bool = True, max_rounds: int = 8,
                timeout: float | None = None, interactive: bool = False,
                cache_dir: Path | None = None) -> FixOptions:
    """Options for fixing the project at ``root``: ``min_confidence`` and ``test_command`` default to the
    project's configuration (:func:`kb.config.load_config`), which also says whether unasked fixes are
    allowed at all; the environment is the versions installed for the tests' interpreter (the test
    command's Python, else this one), which make version-aware rules precise (asked once and kept in
    ``cache_dir``, the KB's cache, while that environment is unchanged)."""
    from ..config import load_config
    from ..testenv import environment, test_python

    config = load_config(root)
    options = FixOptions(
        apply=apply, yes=yes, max_risk=max_risk,
        min_confidence=min_confidence if min_confidence is not None else config.min_confidence,
        allow_critical=allow_critical, allow_auto_fix=config.allow_auto_fix, interactive=interactive,
        verify=verify, test_command=list(test_command or ()) or list(config.test_command) or None,
        max_rounds=max_rounds, timeout=timeout)
    options.environment = environment(test_python(options.test_command), cache_dir)
    return options


def diagnose_for_fix(reports: Sequence[str], store: Any, options: FixOptions, root: str | Path, *,
                     stdin: BinaryIO | None = None) -> dict[str, Any]:
    """Read ``reports`` (files, folders, ``-`` for ``stdin``), diagnose them with ``options.environment``
    and record the run; the run becomes ``options.baseline`` (the tests that ran and failed before a fix)."""
    from ..diagnose import diagnose_run
    from ..ingest import read_reports
    from ..testenv import test_python

    run = read_reports(list(reports), stdin=stdin)
    run.add_environment(options.environment)
    options.baseline = baseline_of(run)
    return diagnose_run(run, store, record=True, python=test_python(options.test_command), root=root)
