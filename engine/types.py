"""Plain values the engine takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Rule", "FailureFact", "FailureLike", "Symptom", "ApiRow", "Distribution", "Owner", "Remedy", "Cause", "SYMPTOM_FIELDS",
           "OWNER_KINDS", "LAYERS", "GENERIC_KINDS"]

#: the named captures (after normalisation) each symptom kind needs
SYMPTOM_FIELDS: dict[str, tuple[str, ...]] = {
    "missing_name": ("module", "name"),
    "missing_attribute": ("owner", "name"),
    "unexpected_kwarg": ("callable", "param"),
    "missing_argument": ("callable", "param"),
    "missing_module": ("module",),
    "bad_call": ("callable",),
    "changed_behaviour": ("module", "name"),
    "direct": (),
}


@dataclass(frozen=True)
class Remedy:
    kind: str  # code-edit | dependency-pin | test-config | manual
    description: str
    risk: str  # low | medium | critical
    template: str | None = None
    params: tuple[tuple[str, Any], ...] = ()
    url: str | None = None

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Remedy:
        return cls(
            kind=doc["kind"],
            description=doc["description"],
            risk=doc["risk"],
            template=doc.get("template"),
            params=tuple(sorted((doc.get("params") or {}).items())),
            url=doc.get("url"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "description": self.description, "risk": self.risk}
        out["template"] = self.template
        out["params"] = dict(self.params)
        if self.url:
            out["url"] = self.url
        return out


@dataclass(frozen=True)
class Rule:
    """A stage-1 symptom pattern (one entry of a pack's ``rules``)."""

    id: str
    title: str
    explanation: str
    source: str
    prior: float
    regex: str
    symptom: str
    category: str = ""
    exceptions: tuple[str, ...] = ()  # empty: any exception type
    phases: tuple[str, ...] = ()  # empty: any phase
    literal: str | None = None  # required substring (lower-cased), None: always a candidate
    ignore_case: bool = False
    field: str = "message"  # "message" or "text"
    set: tuple[tuple[str, str], ...] = ()
    remedies: tuple[Remedy, ...] = ()
    since: tuple[str, str] | None = None  # (distribution, version): a symptom of that release onwards


@dataclass(frozen=True)
class FailureFact:
    id: int
    exception: str
    phase: str
    message: str
    text: str = ""
    #: earlier exceptions of a chained traceback, (type, message), oldest first: a wrapper
    #: exception (``ValueError: object has no __init__ method``) often hides the real cause
    chain: tuple[tuple[str, str], ...] = ()


class FailureLike(Protocol):
    """What the engine reads of a failure: a :class:`FailureFact`, or any object with these attributes
    (the app passes its own failure objects, rather than copy every failure of a large run)."""

    @property
    def id(self) -> int: ...

    @property
    def exception(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def message(self) -> str: ...

    @property
    def text(self) -> str: ...

    @property
    def chain(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True)
class Symptom:
    """A normalised, regex-free fact: one per distinct (rule, kind, fields)."""

    rule: str
    kind: str
    fields: tuple[tuple[str, str], ...]
    failures: tuple[int, ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return dict(self.fields).get(key, default)


@dataclass(frozen=True)
class ApiRow:
    id: str
    package: str
    module: str
    name: str
    kind: str
    source: str
    param: str = ""
    replacement: str = ""
    deprecated_in: str = ""
    removed_in: str = ""
    note: str = ""
    remedies: tuple[Remedy, ...] = ()
    #: which layer of knowledge the row comes from (DESIGN §10): curated | learned | mined
    layer: str = "curated"
    #: signature-changed rows: param-removed | param-required | param-keyword-only ("" when not said)
    change: str = ""

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module


@dataclass(frozen=True)
class Distribution:
    import_name: str
    distribution: str
    source: str = ""
    note: str = ""


#: where the module a symptom names lives, in the interpreter the tests ran with
OWNER_KINDS = ("stdlib", "distribution", "absent", "project", "unknown")
#: symptom kinds that name a module or callable: their owner is resolved, and when no row explains
#: them a generic cause is reasoned from the owner facts
GENERIC_KINDS = ("missing_name", "missing_attribute", "missing_module", "unexpected_kwarg", "missing_argument",
                 "bad_call")
#: knowledge layers, highest precedence first; "generic" causes are reasoned from owner facts
LAYERS = ("curated", "learned", "mined", "generic")


@dataclass(frozen=True)
class Owner:
    """Who owns the module a symptom names (DESIGN §10 "owner facts").

    ``kind``: ``stdlib``; ``distribution`` (installed: ``distribution`` and ``version``);
    ``absent`` (a module no installed distribution provides; ``distribution`` is the one that
    would, when known); ``project`` (the project's own code: a bug, not an API change); ``unknown``.
    """

    module: str
    kind: str
    distribution: str = ""
    version: str = ""
    declared: bool = False  # the project declares the distribution (setup.cfg, pyproject, requirements, tox)
    python: str = ""  # the tests' Python version
    how: str = ""  # how it was resolved, for the evidence
    #: the owner is only inferred (a distribution named after the module, a callee named by a bare word,
    #: a standard-library name that may as well be newer than the tests' Python): a generic cause on it
    #: stays below a coin flip
    guessed: bool = False
    #: the release the project declares or locks (``>=2.0``, ``==2.0``, a lock file), when it says
    wanted: str = ""

    def describe(self) -> str:
        """One evidence line."""
        if self.kind == "distribution":
            what = f"installed distribution {self.distribution} {self.version or '(version not reported)'}"
            what += ", declared by the project" if self.declared else ", not declared by the project"
            what += f" (it asks for {self.wanted})" if self.wanted else ""
        elif self.kind == "stdlib":
            what = f"the standard library of Python {self.python or '(version unknown)'}"
        elif self.kind == "absent":
            dist = f"{self.distribution} (a guess: the module's own name)" if self.guessed else self.distribution
            what = f"no installed distribution; it is provided by {dist or 'an unknown distribution'}"
            what += ", declared by the project" if self.declared else ""
        elif self.kind == "project":
            what = "the project's own code (a bug there is not an API change)"
        else:
            what = "unknown"
        return f"owner of {self.module}: {what}" + (f" — {self.how}" if self.how else "")


@dataclass
class Cause:
    """A root cause: one per API row / missing distribution / direct rule, with every failure it explains."""

    key: str
    rule: Rule
    title: str
    category: str
    explanation: str
    source: str
    failures: list[int]
    symptoms: list[Symptom]
    confidence: float
    breakdown: dict[str, Any]
    remedies: list[Remedy]
    evidence: list[str] = field(default_factory=list)
    api: ApiRow | None = None
    distribution: Distribution | None = None
    owner: Owner | None = None
    layer: str = "curated"
    also_considered: list[str] = field(default_factory=list)
