"""The built-in rule packs (package data), and what the store needs to know whether they changed — kept
apart from :mod:`kb.rulepack` so that a run whose knowledge base is up to date reads the packs' bytes
and hashes them without importing YAML or the schema validator."""

from __future__ import annotations

import hashlib
from importlib import resources

__all__ = ["builtin_packs", "digest"]


def builtin_packs() -> list[tuple[str, bytes]]:
    """(origin, bytes) of every built-in pack shipped in ``kb/packs``, sorted by file name."""
    folder = resources.files("kb.packs")
    found = [(f"builtin:{entry.name}", entry.read_bytes())
             for entry in folder.iterdir() if entry.name.endswith((".yaml", ".yml", ".json.gz"))]
    return sorted(found)


def digest(data: bytes) -> str:
    """The sha256 a pack is recorded under (the store reloads a built-in pack when it changes)."""
    return hashlib.sha256(data).hexdigest()
