"""The gate: may this planned fix be applied now, and who must approve it?

*low* and *medium* risk fixes are approved at the terminal, or unattended with ``--yes`` up to
``--max-risk`` (``low`` by default; ``medium`` for CI bots and scheduled jobs); *critical* ones
always need ``--allow-critical`` and a person at the terminal. ``--yes`` also requires the cause's
confidence, as printed (two decimals), to be at least ``--min-confidence``, and the project not to
have turned automation off (``allow_auto_fix = false``). Quarantine (an expiring xfail) hides
failures, so it is never applied unattended.
"""

from __future__ import annotations

from .types import RISKS, RemedyPlan

__all__ = ["gate", "shown"]


def shown(confidence: float) -> float:
    """The confidence as the user sees it (two decimals): thresholds compare this value."""
    return round(confidence + 0.0, 2)


def gate(item: RemedyPlan, *, yes: bool, min_confidence: float, allow_critical: bool, allow_auto_fix: bool,
         interactive: bool, max_risk: str = "low") -> str | None:
    """Why this remedy may not be applied now (None: it may, subject to approval when not ``yes``)."""
    risk = item.risk if item.risk in RISKS else "critical"
    if risk == "critical":
        if not allow_critical:
            return "critical risk: needs --allow-critical"
        if not interactive:
            return "critical risk: needs a person at the terminal to approve it"
        return None
    if yes:
        if item.kind == "quarantine":
            return "quarantine hides failures: a person approves it at the terminal (run without --yes)"
        if not allow_auto_fix:
            return "allow_auto_fix is off in this project's kb configuration"
        if RISKS.index(risk) > RISKS.index(max_risk if max_risk in RISKS[:2] else "low"):
            return (f"{risk} risk: --yes applies only up to --max-risk {max_risk} "
                    f"(add --max-risk {risk}, or approve it at the terminal without --yes)")
        if shown(item.confidence) < shown(min_confidence):
            return f"confidence {shown(item.confidence):.2f} is below --min-confidence {min_confidence:.2f}"
        return None
    if not interactive:
        return "needs approval at a terminal (or --yes, with --max-risk for medium-risk remedies)"
    return None
