"""The fix journal: every change kb makes to a project is written down *before* it happens.

Layout under the project's ``.kb/``::

    journal/<id>.json     what will change: files, sha256 before/after, state
    backups/<id>/<path>   the bytes of every file before the change

A fix moves through states ``applying`` → ``applied`` → ``verified`` | ``plausible`` | ``rolled back``;
``kb undo`` moves it through ``undoing`` to ``undone``. The process changing a project holds the
journal's lock (``.kb/journal.lock``, an advisory ``flock`` the kernel drops when the process dies) from
the journal entry to the verdict. :meth:`Journal.recover` — which every kb command runs first — takes
that lock without waiting; when it gets it, nobody is mid-change, so an entry left in ``applying`` or
``applied`` (killed while writing, installing or verifying) is rolled back, one left in ``undoing`` is
undone to the end, and the temp files a kill left next to the project's files and in ``.kb`` are
removed. All writes are atomic (temp file + fsync + ``os.replace``). ``.kb`` and its folders must be
real directories inside the root: kb refuses to write through a symlink.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import FixError
from .safeio import make_kb_dir, write_bytes_atomic

__all__ = ["FileChange", "Entry", "Journal", "sha256", "project_of"]

STATES = ("applying", "applied", "verified", "plausible", "failed", "rolled back", "undoing", "undone")
#: states that only a running kb process may be in: found without the lock holder, they were interrupted
INTERRUPTED = ("applying", "applied", "undoing")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FileChange:
    path: str  # relative to the project root
    before: str  # sha256 of the bytes before
    after: str  # sha256 of the bytes kb writes


@dataclass
class Entry:
    id: str
    created_at: str
    root: str
    cause: str
    rule: str
    title: str
    remedy: dict[str, Any]
    diff: str
    files: list[FileChange]
    state: str = "applying"
    history: list[list[str]] = field(default_factory=list)  # [state, timestamp, note]
    tests: dict[str, Any] = field(default_factory=dict)
    #: for dependency pins: {"python", "dist", "requirement", "previous"} to restore on undo
    env: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, data: dict[str, Any]) -> Entry:
        data = dict(data)
        data["files"] = [FileChange(**f) for f in data["files"]]
        return cls(**data)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def project_of(start: str | Path) -> Path | None:
    """The nearest folder upward from ``start`` that has a kb journal (the project kb last changed there)."""
    start = Path(start)
    for folder in (start, *start.parents):
        if (folder / ".kb" / "journal").is_dir():
            return folder
    return None


class Journal:
    """The journal and backups of one project (``<root>/.kb``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.folder = self.root / ".kb" / "journal"
        self.backups = self.root / ".kb" / "backups"

    def _check_dirs(self) -> None:
        """``.kb`` and its journal folders are real directories (never symlinks) inside the root."""
        for folder in (self.root / ".kb", self.folder, self.backups):
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise FixError(f"{folder}: not a real directory inside the project (a symlink or a file); "
                               f"kb writes its journal and backups only inside {self.root}")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the project's journal lock (FixError at once when another kb process holds it)."""
        import fcntl

        self._check_dirs()
        make_kb_dir(self.root / ".kb")
        fd = os.open(self.root / ".kb" / "journal.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FixError(f"{self.root}: another kb process is changing this project; "
                               f"try again when it is done") from None
            yield
        finally:
            os.close(fd)

    def _path(self, fix_id: str) -> Path:
        if not fix_id.replace("-", "").isalnum():
            raise FixError(f"{fix_id}: not a fix id")
        return self.folder / f"{fix_id}.json"

    def _target(self, rel: str) -> Path:
        """The project file for a journal path; refuses anything outside the root."""
        path = (self.root / rel).resolve()
        if path != self.root and self.root not in path.parents:
            raise FixError(f"{rel}: outside the project root {self.root}")
        return path

    def save(self, entry: Entry) -> None:
        self._check_dirs()
        self.folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(self._path(entry.id), json.dumps(asdict(entry), indent=1).encode("utf-8"))

    def load(self, fix_id: str) -> Entry:
        try:
            return Entry.load(json.loads(self._path(fix_id).read_text("utf-8")))
        except FileNotFoundError:
            raise FixError(f"no fix {fix_id} in {self.folder}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise FixError(f"{self._path(fix_id)}: unreadable journal entry: {exc}") from None

    def entries(self) -> list[Entry]:
        if not self.folder.is_dir():
            return []
        return sorted((self.load(p.stem) for p in self.folder.glob("*.json")), key=lambda e: e.id)

    def set_state(self, entry: Entry, state: str, note: str = "") -> None:
        entry.state = state
        entry.history.append([state, _now(), note])
        self.save(entry)

    def begin(self, *, cause: str, rule: str, title: str, remedy: dict[str, Any], diff: str,
              changes: dict[str, tuple[bytes, bytes]]) -> Entry:
        """Journal first, then back up every file; returns the entry in state ``applying``."""
        for rel in changes:
            self._target(rel)  # refuse escapes before anything is written
        fix_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f-") + secrets.token_hex(2)  # sorts by time
        entry = Entry(id=fix_id, created_at=_now(), root=str(self.root), cause=cause, rule=rule, title=title,
                      remedy=remedy, diff=diff,
                      files=[FileChange(rel, sha256(old), sha256(new)) for rel, (old, new) in sorted(changes.items())])
        entry.history.append(["applying", entry.created_at, ""])
        self.save(entry)
        for rel, (old, _new) in changes.items():
            write_bytes_atomic(self._backup(fix_id, rel), old)
        return entry

    def _backup(self, fix_id: str, rel: str) -> Path:
        self._check_dirs()
        path = self.backups / fix_id / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, entry: Entry, changes: dict[str, tuple[bytes, bytes]]) -> None:
        """Write the new bytes of every file (atomically, one file at a time), then mark ``applied``."""
        for rel, (_old, new) in sorted(changes.items()):
            write_bytes_atomic(self._target(rel), new)
        self.set_state(entry, "applied")

    def restore(self, entry: Entry, state: str, note: str = "") -> list[str]:
        """Put back the backed-up bytes of every file that differs from them; returns the paths restored."""
        restored = []
        for change in entry.files:
            target = self._target(change.path)
            current = target.read_bytes() if target.exists() else None
            try:
                backup = (self.backups / entry.id / change.path).read_bytes()
            except FileNotFoundError:
                # killed while backing up: files are only written after every backup exists
                if current is not None and sha256(current) == change.before:
                    continue
                raise FixError(f"{change.path}: no backup for fix {entry.id} and the file has changed") from None
            if current != backup:
                write_bytes_atomic(target, backup)
                restored.append(change.path)
        self.set_state(entry, state, note)
        return restored

    def undo(self, fix_id: str, *, force: bool = False) -> list[str]:
        """Restore every byte of a recorded fix (refuses files changed since, unless ``force``); the entry
        is ``undoing`` while files are restored, so a kill in between is finished by :meth:`recover`."""
        entry = self.load(fix_id)
        if entry.state in ("rolled back", "undone"):
            raise FixError(f"fix {fix_id} is already {entry.state}")
        if not force:
            for change in entry.files:
                target = self._target(change.path)
                current = sha256(target.read_bytes()) if target.exists() else ""
                if current not in (change.after, change.before):
                    raise FixError(f"{change.path} changed since fix {fix_id}; use --force to restore it anyway")
        self.set_state(entry, "undoing")
        return self.restore(entry, "undone")

    def recover(self) -> list[Entry]:
        """Finish what a killed kb left (see the module docstring): returns the entries recovered, each with
        the state it was found in as ``entry.history[-2][0]``. Nothing is done while another kb process holds
        the lock (it is mid-change, not dead)."""
        if not self.folder.is_dir():
            return []
        try:
            with self.lock():
                return self._recover()
        except FixError:
            return []

    def _recover(self) -> list[Entry]:
        recovered = []
        for entry in self.entries():
            if entry.state in INTERRUPTED:
                if entry.state == "undoing":
                    self.restore(entry, "undone", "recovered: the undo was interrupted and is now complete")
                else:
                    self.restore(entry, "rolled back", "recovered: interrupted before it was verified"
                                 if entry.state == "applied" else "recovered after an interrupted apply")
                recovered.append(entry)
            for change in entry.files:
                target = self._target(change.path)
                for stray in target.parent.glob(f".{target.name}.*.tmp"):
                    stray.unlink(missing_ok=True)
        for folder in (self.folder, self.backups):
            for stray in folder.rglob(".*.tmp") if folder.is_dir() else []:
                if not stray.is_symlink():
                    stray.unlink(missing_ok=True)
        return recovered

    def backup_bytes(self, fix_id: str, rel: str) -> bytes | None:
        """The bytes a file had before fix ``fix_id`` (None: that fix did not change it)."""
        self._path(fix_id)  # a fix id, not a path
        path = self.backups / fix_id / rel
        try:
            return path.read_bytes() if self.backups in path.resolve().parents else None
        except OSError:
            return None
