"""kb's rule engine, installed as ``kb.engine``.

It stands alone: it takes rules, failure facts and a lookup for knowledge rows, and returns
findings. It knows nothing about SQLite, click or files (DESIGN §2).

Stage 1 (:mod:`kb.engine.matcher`): an index by exception type and one Aho-Corasick
automaton per bucket over each rule's required literal picks candidate rules; Python ``re``
with named captures turns a failure into a :class:`Symptom`.

Stage 2 (:mod:`kb.engine.runner`): forward chaining over normalised, regex-free facts —
symptom + API-change row (+ environment) → cause → remedy — on durable-rules where it loads
(Python < 3.13), else on CLIPS (:mod:`kb.engine.clips_runner`, clipspy); ``KB_ENGINE=durable|clips``
forces one. Both give the same diagnoses (tests/test_engine_conformance.py).
"""

from __future__ import annotations

from .confidence import Evidence, confidence
from .core import Engine, EngineResult
from .matcher import Matcher, regex_hazard, required_literal
from .types import ApiRow, Cause, Distribution, FailureFact, FailureLike, Owner, Remedy, Rule, Symptom

__all__ = [
    "ApiRow",
    "Cause",
    "Distribution",
    "Engine",
    "EngineResult",
    "Evidence",
    "FailureFact",
    "FailureLike",
    "Matcher",
    "Owner",
    "Remedy",
    "Rule",
    "Symptom",
    "confidence",
    "regex_hazard",
    "required_literal",
]
