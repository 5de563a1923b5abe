"""Project configuration: ``.kb/config.toml`` or ``[tool.kb]`` in ``pyproject.toml`` (the only TOML reader).

Keys (all optional): ``allow_auto_fix`` (bool, default true: false refuses ``kb fix --apply
--yes``), ``min_confidence`` (float, default 0.8), ``test_command`` (list of strings, default
this interpreter's ``-m pytest``). ``.kb/config.toml`` wins over ``pyproject.toml``, key by key; both are
looked for from the project folder up to the repository's root (:func:`config_files`).
A bad value is an error naming the file it came from; an unknown key is a one-line warning naming
the file, the key and the closest known key (a misspelt key would otherwise be ignored in silence).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import KbError
from .safeio import REPO_MARKERS

__all__ = ["Config", "KEYS", "config_files", "load_config", "parse_toml"]


@dataclass(frozen=True)
class Config:
    allow_auto_fix: bool = True
    min_confidence: float = 0.8
    test_command: tuple[str, ...] = ()


#: the keys a configuration may set: Config's fields, so a new setting is known where it is declared
KEYS: tuple[str, ...] = tuple(f.name for f in fields(Config))


def _warn_on_stderr(message: str) -> None:
    print(f"kb: warning: {message}", file=sys.stderr)


def _read(path: Path, table: str | None) -> tuple[dict[str, Any], str]:
    """The settings in ``path`` (``[tool.<table>]`` when ``table``) and how errors name where they came from."""
    where = f"{path} [tool.{table}]" if table else str(path)
    try:
        data: Any = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise KbError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KbError(f"{path}: not valid TOML: {exc}") from None
    if table:
        data = data.get("tool", {})
        data = data.get(table, {}) if isinstance(data, dict) else {}
    if not isinstance(data, dict):
        raise KbError(f"{where}: must be a table of settings")
    return data, where


def parse_toml(text: str) -> dict:
    """A TOML document as a dict; empty when it is not valid TOML (for reading project metadata)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def config_files(root: str | Path) -> list[tuple[Path, str | None]]:
    """The files the configuration of the project at ``root`` comes from, weakest first, each with the
    table its settings are in: the nearest ``pyproject.toml`` and the nearest ``.kb`` folder's ``config.toml``,
    found walking up from ``root`` to the repository's root (or the folder with the project's ``.kb``) — so a
    command run from a subfolder, or with ``--root`` naming one, still obeys the project's settings (an
    ``allow_auto_fix = false`` at the top is not skipped)."""
    pyproject: Path | None = None
    home: Path | None = None
    here = Path(root).resolve()
    for folder in (here, *here.parents):
        if pyproject is None and (folder / "pyproject.toml").is_file():
            pyproject = folder / "pyproject.toml"
        if (folder / ".kb").is_dir():
            home = folder / ".kb"
            break
        if any((folder / marker).exists() for marker in REPO_MARKERS):
            break
    found: list[tuple[Path, str | None]] = [(pyproject, "kb")] if pyproject else []
    if home is not None and (home / "config.toml").is_file():
        found.append((home / "config.toml", None))
    return found


def load_config(root: str | Path, warn: Callable[[str], None] = _warn_on_stderr) -> Config:
    """The configuration of the project at ``root`` (:func:`config_files`); ``warn`` gets one line per
    unknown key."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}  # key -> the file (and table) its value came from
    for path, table in config_files(root):
        data, where = _read(path, table)
        for key, value in data.items():
            if key in KEYS:
                values[key], origin[key] = value, where
                continue
            close = difflib.get_close_matches(key, KEYS, n=1)
            warn(f"{where}: unknown key {key!r} ignored" + (f" (did you mean {close[0]!r}?)" if close else ""))
    allow = values.get("allow_auto_fix", True)
    minimum = values.get("min_confidence", 0.8)
    command = values.get("test_command", [])
    if not isinstance(allow, bool):
        raise KbError(f"{origin['allow_auto_fix']}: allow_auto_fix must be true or false")
    if isinstance(minimum, bool) or not isinstance(minimum, (int, float)) or not 0 <= minimum <= 1:
        raise KbError(f"{origin['min_confidence']}: min_confidence must be a number between 0 and 1")
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise KbError(f"{origin['test_command']}: test_command must be a list of strings")
    return Config(allow, float(minimum), tuple(command))
