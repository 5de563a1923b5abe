"""Project configuration: ``.kb/config.toml`` or ``[tool.kb]`` in ``pyproject.toml`` (the only TOML reader).

Keys (all optional): ``allow_auto_fix`` (bool, default true: false refuses ``kb fix --apply
--yes``), ``min_confidence`` (float, default 0.8), ``test_command`` (list of strings, default
this interpreter's ``-m pytest``). ``.kb/config.toml`` wins over ``pyproject.toml``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from .errors import KbError

__all__ = ["Config", "load_config", "parse_toml"]


@dataclass(frozen=True)
class Config:
    allow_auto_fix: bool = True
    min_confidence: float = 0.8
    test_command: tuple[str, ...] = ()


def _read(path: Path, table: str | None) -> dict:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise KbError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KbError(f"{path}: not valid TOML: {exc}") from None
    if table:
        data = data.get("tool", {}).get(table, {})
    return data if isinstance(data, dict) else {}


def parse_toml(text: str) -> dict:
    """A TOML document as a dict; empty when it is not valid TOML (for reading project metadata)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def load_config(root: str | Path) -> Config:
    root = Path(root)
    data: dict = {}
    if (root / "pyproject.toml").is_file():
        data.update(_read(root / "pyproject.toml", "kb"))
    if (root / ".kb" / "config.toml").is_file():
        data.update(_read(root / ".kb" / "config.toml", None))
    where = str(root / ".kb" / "config.toml")
    allow = data.get("allow_auto_fix", True)
    minimum = data.get("min_confidence", 0.8)
    command = data.get("test_command", [])
    if not isinstance(allow, bool):
        raise KbError(f"{where}: allow_auto_fix must be true or false")
    if not isinstance(minimum, (int, float)) or not 0 <= minimum <= 1:
        raise KbError(f"{where}: min_confidence must be a number between 0 and 1")
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise KbError(f"{where}: test_command must be a list of strings")
    return Config(allow, float(minimum), tuple(command))
