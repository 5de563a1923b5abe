"""Versions, requirements and distribution names — the only module that imports ``packaging``."""

from __future__ import annotations

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = ["normalise", "requirement_name", "requirement_floor", "parse_version", "release_bound", "sort_versions"]


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
