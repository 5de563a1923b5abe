"""The one confidence formula (DESIGN §4), with its breakdown.

Evidence is combined in log-odds space, starting from the rule's authored prior::

    logit(p) = logit(prior) + match + version + mention + support + layer + declared

- match: how specific the join is — an exact API row (module + name) beats a row found by
  name only, which beats a bare wording match;
- version: the environment satisfies the row's ``removed_in`` bound (up) or contradicts it
  (strongly down); unknown leaves it alone;
- mention: the failure text names the changed API (``asyncio.Lock(``) — corroboration for
  joins that had to ignore the module;
- support: several failures and several independent wordings agreeing raise it, with
  diminishing returns;
- layer: where the knowledge came from (DESIGN §10) — a curated row (cited by a person) counts in
  full, a learned row (mined on demand for this project) a little less, a shipped mined row
  (griffe's breakage detection, no person read it) less again;
- declared: for causes reasoned from owner facts (match ``owner``), the project declaring the
  distribution that lost the name makes "the code was written for an earlier release" likelier.
  A generic cause whose distribution is only guessed from the module name (match ``owner-guess``:
  "No module named 'x'" and nothing knows x) stays below a coin flip: it may as well be a typo.
  A generic cause's support counts half (``GENERIC_SUPPORT``): many failures agreeing show that
  they share one cause, not that kb's reasoned explanation of it is the right one.

Then the learned record: a Beta posterior whose prior mean is ``p`` with weight
``LEARNED_WEIGHT`` pseudo-observations, updated by verified / failed fixes of that rule::

    final = (p * W + verified) / (W + verified + failed)

so a rule whose fixes keep failing loses confidence and one whose fixes keep working gains it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Evidence", "confidence", "MATCH_WEIGHTS", "VERSION_WEIGHTS", "LAYER_WEIGHTS", "LEARNED_WEIGHT"]

MATCH_WEIGHTS = {"exact-row": 1.2, "name-only-row": 0.4, "distribution": 0.6, "owner": 0.4, "owner-guess": -0.6,
                 "pattern": 0.0}
#: a generic cause's support counts half: many failures agreeing show one cause, not that the
#: reasoned explanation of it is right
GENERIC_SUPPORT = 0.5
LAYER_WEIGHTS = {"curated": 0.0, "learned": -0.2, "mined": -0.4, "generic": 0.0}
DECLARED_WEIGHT = 0.3
VERSION_WEIGHTS = {"satisfied": 0.8, "contradicted": -2.5, "unknown": 0.0, "n/a": 0.0}
MENTION_WEIGHT = 0.6
SUPPORT_PER_DOUBLING = 0.25
SUPPORT_CAP = 1.0
AGREEMENT_WEIGHT = 0.3
LEARNED_WEIGHT = 4.0


@dataclass(frozen=True)
class Evidence:
    prior: float
    match: str = "pattern"  # exact-row | name-only-row | distribution | owner | owner-guess | pattern
    version: str = "n/a"  # satisfied | contradicted | unknown | n/a
    mentioned: bool = False
    failures: int = 1
    wordings: int = 1  # distinct symptom rules that agree
    verified: int = 0  # learned record: fixes verified
    failed: int = 0  # learned record: fixes that failed or were rolled back
    layer: str = "curated"  # curated | learned | mined | generic
    declared: bool = False  # owner facts: the project declares the distribution


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def confidence(ev: Evidence) -> tuple[float, dict[str, Any]]:
    """Return (confidence in [0, 1], breakdown) for one cause."""
    terms = {
        "match": MATCH_WEIGHTS[ev.match],
        "version": VERSION_WEIGHTS[ev.version],
        "mention": MENTION_WEIGHT if ev.mentioned else 0.0,
        "support": min(SUPPORT_CAP, SUPPORT_PER_DOUBLING * math.log2(max(1, ev.failures))
                       + AGREEMENT_WEIGHT * max(0, ev.wordings - 1)),
    }
    if ev.layer != "curated":
        terms["layer"] = LAYER_WEIGHTS[ev.layer]
    if ev.layer == "generic":
        terms["support"] *= GENERIC_SUPPORT
    if ev.declared:
        terms["declared"] = DECLARED_WEIGHT
    z = _logit(ev.prior) + sum(terms.values())
    evidence_p = 1 / (1 + math.exp(-z))
    attempts = ev.verified + ev.failed
    final = (evidence_p * LEARNED_WEIGHT + ev.verified) / (LEARNED_WEIGHT + attempts)
    breakdown = {
        "prior": ev.prior,
        "match": ev.match,
        "version": ev.version,
        "layer": ev.layer,
        "terms": {k: round(v, 4) for k, v in terms.items()},
        "evidence": round(evidence_p, 4),
        "learned": {"verified": ev.verified, "attempts": attempts},
        "final": round(final, 4),
    }
    return round(final, 4), breakdown
