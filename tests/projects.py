"""Generated projects for the tests that run kb on real files: one writer, shared."""

from __future__ import annotations

from pathlib import Path


def write_project(root: Path, files: dict[str, str] | dict[str, str | bytes]) -> Path:
    """Write ``files`` (path relative to ``root`` → text or bytes) under ``root``; returns ``root``."""
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return root
