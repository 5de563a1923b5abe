"""Edited packaging files must still build metadata: setup.py still answers ``--version``, setup.cfg and
pyproject.toml still parse with valid requirements."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..pep440 import requirement_parts

__all__ = ["check_metadata"]

#: seconds ``setup.py --version`` may take
TIMEOUT = 120


_SETUP_VERSION = """
import sys
source = sys.stdin.read()
sys.argv = ["setup.py", "--version"]
sys.path.insert(0, ".")
exec(compile(source, "setup.py", "exec"), {"__name__": "__main__", "__file__": "setup.py"})
"""


def _setup_version(root: Path, python: str, source: str) -> str | None:
    try:
        done = subprocess.run([python, "-c", _SETUP_VERSION], input=source, cwd=root, capture_output=True, text=True,
                              timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()), "it failed")


def check_metadata(root: Path, python: str, files: Iterable[str],
                   changes: Mapping[str, tuple[bytes, bytes]] | None = None) -> str | None:
    """Whether the packaging files ``files`` (relative paths) still build metadata: setup.py runs
    ``python setup.py --version`` (in ``root``), setup.cfg and pyproject.toml parse and every requirement
    in their dependency keys parses. Read from disk, or from ``changes``' "after" bytes when given (what
    :func:`plan_pin` checks before anything is written). None when fine, else one sentence. A setup.py
    that did not run before the change either is not held against it."""
    from .config_files import ini_read, toml_read

    for rel in files:
        name = rel.rsplit("/", 1)[-1]
        if name not in ("setup.py", "setup.cfg", "pyproject.toml"):
            continue
        try:
            data = changes[rel][1] if changes and rel in changes else (root / rel).read_bytes()
            text = data.decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            return f"{rel} cannot be read: {exc}"
        requirements: list[str] = []
        try:
            if name == "setup.py":
                why = _setup_version(root, python, text)
                if why and changes and rel in changes:
                    if _setup_version(root, python, changes[rel][0].decode("utf-8-sig")) is not None:
                        why = None  # it did not run before the change either
                if why:
                    return f"{rel} no longer builds metadata: python setup.py --version fails: {why}"
                continue
            if name == "setup.cfg":
                cfg = ini_read(text)
                options = cfg.get("options", {})
                values = [options.get(k, "") for k in ("install_requires", "tests_require")]
                values += list(cfg.get("options.extras_require", {}).values())
                requirements = [item.split(" #", 1)[0].strip() for value in values for item in value.splitlines()]
                requirements = [item for item in requirements if item and not item.startswith("#")]
            else:
                data_ = toml_read(text)
                project = data_.get("project", {})
                groups = [project.get("dependencies", []), *project.get("optional-dependencies", {}).values(),
                          *data_.get("dependency-groups", {}).values()]
                requirements = [item for group in groups for item in group if isinstance(item, str)]
        except (ValueError, AttributeError, TypeError) as exc:
            return f"{rel} no longer parses: {exc}"
        bad = next((item for item in requirements if requirement_parts(item) is None), None)
        if bad is not None:
            return f"{rel} no longer builds metadata: {bad!r} is not a valid requirement"
    return None


