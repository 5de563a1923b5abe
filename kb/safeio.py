"""Atomic file writes (temp file in the same directory, fsync, ``os.replace``), and the making of a project's
``.kb`` folder with its ``.gitignore``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import KbError

__all__ = ["write_bytes_atomic", "write_text_atomic", "make_kb_dir", "GITIGNORE", "REPO_MARKERS", "CACHE_DIR"]


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise KbError(f"{target}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise KbError(f"{target}: cannot write: {exc.strerror or exc}") from None


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


#: what marks a repository's root (a file in a git worktree or submodule, a folder otherwise): where the walk up
#: for a project's ``.kb`` folder (kb.storage.find_home) and its configuration (kb.config.config_files) stops
REPO_MARKERS = (".git", ".hg")

#: the folder in a project's ``.kb`` where kb keeps what it can ask again (interpreter probes)
CACHE_DIR = "cache"

#: what a ``.kb`` folder kb makes holds in its own ``.gitignore``: everything kb writes there (the knowledge base,
#: journal, backups, caches) stays out of git, while the files a person writes there stay committable
GITIGNORE = """\
# Written by kb: its knowledge base, journal and backups stay out of git.
# Your config.toml and rule packs in rules/ are yours to commit.
*
!config.toml
!rules/
!rules/*.yaml
!rules/*.yml
"""


def make_kb_dir(folder: Path) -> None:
    """Create a project's ``.kb`` folder if needed and give it a ``.gitignore`` (:data:`GITIGNORE`) unless it has
    one: called when kb first puts its own state there, so ``git status`` stays clean. An existing ``.gitignore``
    (or a symlink in its place) is left alone: a person who wants ``.kb`` committed decides."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / ".gitignore", os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(GITIGNORE)
