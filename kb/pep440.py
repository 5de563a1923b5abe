"""Versions, requirements and distribution names — the only module that imports ``packaging``."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = ["normalise", "requirement_name", "requirement_floor", "parse_version", "release_bound", "sort_versions",
           "requirement_parts", "merge_requirement", "specifier_allows", "specifiers_overlap", "marker_applies",
           "release_ceilings", "upper_bound", "version_key"]


def normalise(name: str) -> str:
    """PEP 503: ``Flask_WTF`` → ``flask-wtf``."""
    return str(canonicalize_name(name))


def requirement_name(text: str) -> str | None:
    """The normalised distribution name of a requirement line, or None if it is not one."""
    text = text.split(" #", 1)[0].strip()
    if not text or text.startswith(("#", "-", "[")):
        return None
    try:
        return normalise(Requirement(text).name)
    except InvalidRequirement:
        return None


def requirement_floor(text: str) -> tuple[str, str] | None:
    """(normalised name, the version the requirement is written for) — ``==V``, ``~=V``, ``>=V``, ``<=V``,
    ``===V`` — or None when it names no such version."""
    text = text.split(" #", 1)[0].strip()
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    for wanted in ("==", "===", "~=", "<=", ">="):
        for spec in requirement.specifier:
            if spec.operator == wanted and "*" not in spec.version:
                return normalise(requirement.name), spec.version
    return None


def parse_version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def release_bound(text: str) -> str:
    """The release part of a version, at most three numbers (``2.0.0rc1`` → ``2.0.0``); "" if unparsable."""
    version = parse_version(text)
    return ".".join(str(n) for n in version.release[:3]) if version else ""


def sort_versions(texts: list[str], *, final_only: bool = True) -> list[str]:
    """Valid versions in ascending order (pre-, dev- and post-releases dropped when ``final_only``)."""
    parsed = [(v, t) for t in texts if (v := parse_version(t)) is not None
              and not (final_only and (v.is_prerelease or v.is_devrelease or v.is_postrelease))]
    return [t for _v, t in sorted(parsed)]


# --- requirements and specifiers, for writing pins -------------------------------------------------

def _requirement(text: str) -> Requirement:
    """``text`` as a requirement (a trailing `` # comment`` cut off); ValueError when it is not one."""
    try:
        return Requirement(text.split(" #", 1)[0].strip())
    except InvalidRequirement as exc:
        raise ValueError(f"not a requirement: {text!r}") from exc


def requirement_parts(text: str) -> tuple[str, tuple[str, ...], str, str] | None:
    """(name as written, sorted extras, specifier, marker) of a requirement line; None if it is not one.
    The specifier keeps the order it was written in: ``"numpy>=1.7,<2; python_version>'3'"`` →
    ``("numpy", (), ">=1.7,<2", 'python_version > "3"')``."""
    try:
        requirement = _requirement(text)
    except ValueError:
        return None
    return (requirement.name, tuple(sorted(requirement.extras)), _ordered(requirement),
            str(requirement.marker) if requirement.marker else "")


def _ordered(requirement: Requirement) -> str:
    """The requirement's specifiers in the order they were written (``str(SpecifierSet)`` sorts them)."""
    return ",".join(str(spec) for spec in requirement.specifier)


def _format(requirement: Requirement, specs: list[Specifier]) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}{extras}{','.join(str(s) for s in specs)}{marker}"


def _probes(specs: Iterable[Specifier]) -> list[Version]:
    """Versions at, just above and just below every version the specifiers name: between two of them a
    specifier set cannot change its mind, so these decide emptiness and inclusion for these sets."""
    found: set[Version] = {Version("0"), Version("99999")}
    for spec in specs:
        version = parse_version(spec.version.removesuffix(".*"))
        if version is None:
            continue
        found.add(version)
        release = list(version.release)
        if spec.version.endswith(".*") or spec.operator == "~=":
            release = release[:-1] if spec.operator == "~=" and len(release) > 1 else release
            release[-1] += 1  # the first release past the prefix (== 1.4.* → 1.5, ~= 1.4.2 → 1.5)
            found.add(Version(".".join(map(str, release))))
        for i, number in enumerate(release):
            found.add(Version(".".join(map(str, [*release[:i], number + 1]))))
            if number:
                found.add(Version(".".join(map(str, [*release[:i], number - 1, 99999]))))
        found.add(Version(".".join(map(str, [*version.release, 0, 1]))))
    return sorted(found)


def _within(inner: list[Specifier], outer: list[Specifier], probes: list[Version]) -> bool:
    """Every probe version ``inner`` allows, ``outer`` allows too."""
    return all(all(s.contains(v, prereleases=True) for s in outer) for v in probes
               if all(s.contains(v, prereleases=True) for s in inner))


def _meet(a: list[Specifier], b: list[Specifier], probes: list[Version]) -> bool:
    return any(all(s.contains(v, prereleases=True) for s in (*a, *b)) for v in probes)


def merge_requirement(existing: str, pin: str) -> str | None:
    """``existing`` with ``pin``'s specifiers merged in, as a person would write it; None when
    ``existing`` already implies the pin (nothing to write). Name spelling, extras, markers, lower
    bounds and exclusions stay, upper bounds tighter than the pin stay; bounds the pin contradicts or
    makes redundant (all but exclusions) give way (``==2.0`` under ``<2``). Existing specifiers first, then the new ones:
    ``numpy>=1.7`` + ``numpy<2`` → ``numpy>=1.7,<2``. ValueError when either is not a requirement or
    ``existing`` is a direct URL reference (it names no versions to bound)."""
    old, new = _requirement(existing), _requirement(pin)
    if old.url:
        raise ValueError(f"{existing!r} is a direct reference: it takes no version bounds")
    old_specs, new_specs = list(old.specifier), list(new.specifier)
    probes = _probes([*old_specs, *new_specs])
    if _within(old_specs, new_specs, probes) and _meet(old_specs, [], probes):
        return None
    kept = [spec for spec in old_specs
            if _meet([spec], new_specs, probes)
            and not (spec.operator != "!=" and _within(new_specs, [spec], probes))]
    added = [spec for spec in new_specs if not _within(kept, [spec], probes) and str(spec) not in map(str, kept)]
    return _format(old, kept + added)


def specifier_allows(spec: str, version: str) -> bool:
    """Whether the specifier set ``spec`` (``">=2,<3"``, "" for any) allows ``version`` (pre-releases
    count as versions here); False when either does not parse."""
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False


def specifiers_overlap(a: str, b: str, versions: Iterable[str] = ()) -> bool:
    """Whether some version satisfies both specifier sets: among ``versions`` when given (the releases
    one knows of), else any version at all. True when either does not parse (nothing to say)."""
    try:
        first, second = list(SpecifierSet(a)), list(SpecifierSet(b))
    except InvalidSpecifier:
        return True
    known = [v for text in versions if (v := parse_version(text)) is not None]
    return _meet(first, second, known or _probes([*first, *second]))


def marker_applies(marker: str, environment: dict[str, str]) -> bool:
    """Whether an environment marker holds in ``environment`` (PEP 508 names; ``extra`` is "" unless
    given, so requirements of an extra do not apply); True for no marker or one that does not parse."""
    if not marker:
        return True
    try:
        return Marker(marker).evaluate({"extra": "", **environment})
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True


def release_ceilings(version: str) -> list[str]:
    """Upper bounds a person would try to stay below an installed release, loosest last:
    ``3.0.0`` → ``["3"]``, ``3.2.1`` → ``["3", "3.2"]``, ``0.5.2`` → ``["0.5"]`` ([] when unparsable).
    The first is :func:`upper_bound`."""
    parsed = parse_version(version)
    if parsed is None:
        return []
    release = [*parsed.release, 0, 0][:3]
    found = [upper_bound(version)]
    if release[0] and release[1]:
        found.append(f"{release[0]}.{release[1]}")
    return [bound for bound in dict.fromkeys(found) if bound]


def upper_bound(version: str) -> str:
    """Below the installed major (``2.0.1`` → ``2``); for 0.x, below the installed minor (``0.5.2`` →
    ``0.5``); for 0.0.x, below the installed release itself (``0.0.5`` → ``0.0.5``); "" when not known."""
    parsed = parse_version(version)
    if parsed is None:
        return ""
    major, minor, micro = [*parsed.release, 0, 0][:3]
    if major:
        return str(major)
    if minor:
        return f"0.{minor}"
    return f"0.0.{micro}" if len(parsed.release) >= 3 else ""


def version_key(version: str) -> tuple[int, ...]:
    """A sort key of a version's release numbers (``"3.11.7"`` → (3, 11, 7)); () when unparsable."""
    parsed = parse_version(version)
    return tuple(parsed.release) if parsed else ()
