"""Generic causes (DESIGN §10): what kb says about a symptom no row explains, from its owner facts.

A name missing from an installed distribution, from the standard library, a module no installed
distribution provides, a call whose signature no longer fits: each gets a title, a category, an
explanation, a source a person can read and remedies — honest about being reasoned, not looked up.
"""

from __future__ import annotations

from ..pep440 import upper_bound
from .types import Owner, Remedy, Symptom

__all__ = ["CALL_KINDS", "WHATS_NEW", "key", "qualname", "title", "category", "explanation", "source", "remedies",
           "upper_bound", "outdated"]

#: where a person reads what changed in the standard library
WHATS_NEW = "https://docs.python.org/3/whatsnew/index.html"
#: symptoms about a call's arguments
CALL_KINDS = ("unexpected_kwarg", "missing_argument", "bad_call")


def qualname(symptom: Symptom) -> str:
    """What the symptom names: ``module.name``, a module, or a callable."""
    if symptom.kind in ("missing_name", "missing_attribute"):
        return f"{symptom.get('module')}.{symptom.get('name')}"
    if symptom.kind == "missing_module":
        return symptom.get("module")
    return symptom.get("callable")


def key(symptom: Symptom, owner: Owner) -> str:
    """One generic cause per owner and named API: ``numpy:numpy.float``, ``python:inspect.getargspec``,
    ``absent:pytest-mock``, ``python:argparse:HelpFormatter()``."""
    if owner.kind == "absent":
        return f"absent:{(owner.distribution or owner.module).lower()}"
    where = "python" if owner.kind == "stdlib" else owner.distribution
    if symptom.kind in CALL_KINDS:
        return f"{where}:{owner.module}:{symptom.get('callable')}()"
    return f"{where}:{qualname(symptom)}"


def _call_detail(symptom: Symptom) -> str:
    param = symptom.get("param")
    if symptom.kind == "unexpected_kwarg":
        return f"it no longer accepts {param}="
    if symptom.kind == "missing_argument":
        return f"it now requires {param}"
    return "it takes other positional arguments"


def outdated(owner: Owner) -> bool:
    """The installed release is older than the one the project declares or locks: the code is newer than
    the environment, not the other way round."""
    from .runner import version_key

    return bool(owner.version and owner.wanted) and 0 < version_key(owner.version) < version_key(owner.wanted)


def _installed(owner: Owner) -> str:
    return f"{owner.distribution} {owner.version} (installed)" if owner.version else f"{owner.distribution} (installed)"


def title(symptom: Symptom, owner: Owner) -> str:
    what = qualname(symptom)
    if owner.kind == "absent":
        dist = owner.distribution or owner.module.split(".", 1)[0]
        return f"{dist} is not installed: module '{owner.module}' comes from it"
    if symptom.kind in CALL_KINDS:
        where = f"Python {owner.python}" if owner.kind == "stdlib" else _installed(owner)
        return f"the signature of {owner.module}.{what}() changed in {where}: {_call_detail(symptom)}"
    noun = f"module {what}" if symptom.kind == "missing_module" else what
    python = f"Python {owner.python}" if owner.python else "the tests' Python"
    if owner.kind == "stdlib" and not owner.guessed:
        return f"{noun} was removed from the standard library: it is not in {python}"
    if owner.kind == "stdlib":
        return (f"{noun} is not in the standard library of {python}: removed in a later Python than the code "
                f"was written for, or added in a newer one than the tests ran on")
    if outdated(owner):
        return (f"{noun} is not in {_installed(owner)}, older than the {owner.distribution} {owner.wanted} "
                f"the project asks for")
    return f"{noun} is not in {_installed(owner)}; the code was written for an earlier {owner.distribution}"


def category(symptom: Symptom, owner: Owner) -> str:
    if owner.kind == "absent":
        return "missing-dependency"
    if outdated(owner):
        return "outdated-dependency"
    return "signature-changed" if symptom.kind in CALL_KINDS else "removed-api"


def explanation(owner: Owner) -> str:
    if owner.kind == "absent":
        return ("The code imports a module that no installed distribution provides: a dependency (often a "
                "test-only one) is not installed in the environment the tests ran in.")
    if outdated(owner):
        return (f"The code uses an API that the installed {owner.distribution} {owner.version} does not have yet: "
                f"the project asks for {owner.distribution} {owner.wanted}, and the environment the tests ran in "
                "has an older release.")
    where = "the standard library" if owner.kind == "stdlib" else f"the installed {owner.distribution}"
    return (f"The code uses an API that {where} does not have (any more): it was written against an earlier "
            "release, and a later one removed, moved or changed it. No row of the knowledge base names this "
            "change, so kb reasoned it from where the module comes from; `kb knowledge learn --last` mines the "
            "releases for the exact one.")


def source(owner: Owner) -> str:
    """Where a person reads about the change: the distribution's PyPI page, or Python's What's New."""
    if owner.kind == "stdlib":
        return WHATS_NEW
    return f"https://pypi.org/project/{owner.distribution or owner.module.split('.', 1)[0]}/"


def remedies(symptom: Symptom, owner: Owner) -> list[Remedy]:
    what = qualname(symptom)
    if owner.kind == "absent":
        dist = owner.distribution or owner.module.split(".", 1)[0]
        return [Remedy(kind="dependency-pin", risk="medium", template="pin-dependency",
                       params=(("requirement", dist),), url=source(owner),
                       description=f"Add {dist} to the project's test dependencies and install it")]
    if owner.kind == "stdlib":
        return [Remedy(kind="manual", risk="medium", url=WHATS_NEW,
                       description=f"Port by hand away from {what} (Python's What's New says what replaced it)")]
    if outdated(owner):
        requirement = f"{owner.distribution}>={owner.wanted}"
        return [Remedy(kind="dependency-pin", risk="medium", template="pin-dependency",
                       params=(("requirement", requirement),), url=source(owner),
                       description=f"Install {requirement}, the release the project asks for")]
    found = []
    bound = upper_bound(owner.version)
    if bound:
        requirement = f"{owner.distribution}<{bound}"
        found.append(Remedy(kind="dependency-pin", risk="medium", template="pin-dependency",
                            params=(("requirement", requirement),), url=source(owner),
                            description=f"Pin {requirement}: the releases before the installed {owner.version}, "
                                        f"which lacks {what}"))
    port = f"{owner.distribution} {owner.version}" if owner.version else owner.distribution
    found.append(Remedy(kind="manual", risk="medium", url=source(owner),
                        description=f"Port by hand to {port}'s API (its changelog says what replaced {what})"))
    return found
