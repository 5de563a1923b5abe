"""The environment the tests run in: which interpreter, what is installed there (and what requires
what), and pip to change it (install, uninstall, a resolver dry run, ``pip check``). Every question is
asked by running that interpreter; the project is never imported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .pep440 import marker_applies, normalise, requirement_parts, sort_versions

__all__ = ["test_python", "command_python", "find_python", "environment", "installed_version", "dependents", "dry_run",
           "install", "uninstall", "conflicts", "TIMEOUT"]

#: seconds pip's resolver may take
TIMEOUT = 120

# --- dependents of the pinned distribution --------------------------------------------------------

_DEPENDENTS = r"""
import importlib.metadata as m, json, os, platform, sys
info = sys.implementation.version
version = "{}.{}.{}".format(info.major, info.minor, info.micro)
if info.releaselevel != "final":
    version += info.releaselevel[0] + str(info.serial)
env = {"implementation_name": sys.implementation.name, "implementation_version": version, "os_name": os.name,
       "platform_machine": platform.machine(), "platform_release": platform.release(),
       "platform_system": platform.system(), "platform_version": platform.version(),
       "python_full_version": platform.python_version(),
       "platform_python_implementation": platform.python_implementation(),
       "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform}
dists = []
for dist in m.distributions():
    name = dist.metadata["Name"]
    if name:
        dists.append([name, dist.version, list(dist.requires or [])])
print(json.dumps({"env": env, "dists": dists}))
"""


def dependents(python: str, dist: str) -> dict[str, tuple[str, str]]:
    """Installed distributions of ``python``'s environment that require ``dist`` (their requirement's
    marker holding there; requirements of extras left out): name → (installed version, its specifier
    on ``dist``). Read by a small script run with ``python``; the project is never imported. Empty
    when the script cannot run."""
    try:
        done = subprocess.run([python, "-I", "-c", _DEPENDENTS], capture_output=True, text=True, timeout=TIMEOUT)
        facts = json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}
    wanted = normalise(dist)
    found: dict[str, tuple[str, str]] = {}
    seen: set[str] = set()
    for name, version, requires in facts.get("dists", []):
        key = normalise(name)
        if key in seen or key == wanted:
            continue
        seen.add(key)  # the first of a name on sys.path is the one imported
        for text in requires:
            parts = requirement_parts(text)
            if parts and normalise(parts[0]) == wanted and marker_applies(parts[3], facts.get("env", {})):
                found[name] = (version, parts[2])
                break
    return found


def dry_run(python: str, requirements: Sequence[str]) -> tuple[bool | None, str]:
    """Whether pip can install ``requirements`` together into ``python``'s environment: True, False
    (their dependencies conflict, or a requirement has no release), None (pip could not tell)."""
    try:
        done = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
                               *requirements], capture_output=True, text=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, str(exc)
    if done.returncode == 0:
        return True, ""
    error = done.stderr
    last = next((line.strip() for line in reversed(error.splitlines()) if line.strip()), "pip failed")
    if "conflicting dependencies" in error or "ResolutionImpossible" in error or "No matching distribution" in error:
        return False, last
    return None, last


# --- the environment the tests run in -------------------------------------------------------------

def installed_version(python: str, dist: str) -> str | None:
    code = ("import importlib.metadata as m, sys\n"
            "try:\n    print(m.version(sys.argv[1]))\nexcept m.PackageNotFoundError:\n    pass\n")
    done = subprocess.run([python, "-c", code, dist], capture_output=True, text=True)
    return done.stdout.strip() or None


def environment(python: str, cache_dir: Path | None = None) -> dict[str, str]:
    """``{"python": "3.11.7", "<distribution>": "<version>", ...}`` of ``python``'s environment: the
    facts that let version-aware rules say whether an API row applies (empty when it cannot run).
    Asked through the owner probe (:func:`kb.owners.probe`): one question, the first of each name on
    ``sys.path`` being the one the tests import; with ``cache_dir`` (the KB's ``.kb/cache``) the answer is
    kept there while the interpreter and its site-packages are unchanged, as diagnose keeps it."""
    from .owners import probe

    facts = probe(python, cache_dir)
    if not facts:
        return {}
    found = {str(name).lower(): str(version) for name, version in (facts.get("dists") or {}).items()}
    found["python"] = str(facts.get("python", ""))
    return found


def install(python: str, requirements: Sequence[str]) -> str | None:
    """pip-install into ``python``'s environment; returns None or pip's last error line."""
    done = subprocess.run([python, "-m", "pip", "install", "-q", *requirements], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or ["pip failed"])[-1]


def conflicts(python: str) -> set[str]:
    """``pip check``'s complaints about ``python``'s environment (requirements installed
    distributions no longer satisfy)."""
    done = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
    return set() if done.returncode == 0 else {line.strip() for line in done.stdout.splitlines() if line.strip()}


def command_python(command: Sequence[str] | None) -> str | None:
    """The Python a test command starts with (``venv/bin/python -m pytest``), or None."""
    if command and Path(command[0]).name.startswith("python"):
        return command[0]
    return None


def test_python(command: Sequence[str] | None) -> str:
    """The interpreter the tests run with: the test command's, when it starts with a Python."""
    return command_python(command) or sys.executable


def find_python(version: str) -> str | None:
    """``3.12`` → the ``python3.12`` on PATH, else the newest pyenv 3.12.x (by version: 3.12.10 after 3.12.9;
    final releases before pre-releases); a path (``./py``, ``/usr/bin/python3``) is taken as it is; None when
    there is no such interpreter."""
    import os
    import shutil

    if os.path.sep in version or version.startswith("."):
        return version
    found = shutil.which(f"python{version}")
    if found:
        return found
    found_in = {path.parents[1].name: path
                for path in Path(os.path.expanduser("~/.pyenv/versions")).glob(f"{version}.*/bin/python{version}")}
    ordered = sort_versions(list(found_in)) or sort_versions(list(found_in), final_only=False)
    return str(found_in[ordered[-1]]) if ordered else None


def uninstall(python: str, names: Sequence[str]) -> str | None:
    """pip-uninstall from ``python``'s environment; returns None or pip's last error line."""
    done = subprocess.run([python, "-m", "pip", "uninstall", "-y", "-q", *names], capture_output=True, text=True)
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or ["pip failed"])[-1]
