"""The README as the tests read it: its text and its marked fenced blocks."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["ROOT", "README", "block"]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def block(marker: str) -> str:
    """The fenced block that follows ``<!-- marker -->`` in the README."""
    found = re.search(rf"<!-- {marker} -->\s*```[a-z]*\n(.*?)```", README, re.S)
    assert found, f"README has no block marked {marker}"
    return found.group(1)
