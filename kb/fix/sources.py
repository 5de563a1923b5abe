"""The project's files as the fix stage reads and rewrites them.

Paths stay inside the root: symlinks, virtual environments, site-packages, VCS and build folders
are skipped. Files keep their encoding (PEP 263 cookie or BOM), newline style and final newline:
edits are computed on text and written back in the file's own encoding. An edit that only hides
a failure (an added ``except`` or skip/xfail mark, a removed assertion) is refused by
:func:`silences`.
"""

from __future__ import annotations

import difflib
import io
import os
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .types import Edit, Planned

__all__ = ["SKIP_DIRS", "MAX_FILE_BYTES", "Source", "python_files", "read_source", "unified_diff",
           "planned_from", "silences", "installed_location"]

SKIP_DIRS = {".git", ".hg", ".svn", ".kb", ".tox", ".nox", ".venv", "venv", "env", ".env", "site-packages",
             "node_modules", "build", "dist", "__pycache__", ".mypy_cache", ".pytest_cache", ".eggs"}
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_FILES = 20_000


@dataclass
class Source:
    path: Path
    rel: str  # relative to the root, "/"-separated
    encoding: str
    text: str

    def encode(self, text: str) -> bytes:
        return text.encode(self.encoding)

    @property
    def data(self) -> bytes:
        return self.encode(self.text)


def python_files(root: Path) -> Iterator[Path]:
    count = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                         and not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder) / name
                if path.is_symlink():
                    continue
                count += 1
                if count > MAX_FILES:
                    return
                yield path


def _decoded(path: Path, root: Path, data: bytes, encoding: str) -> Source | None:
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None
    # newline="" semantics: keep "\r\n" and "\r" as they are (decode does not translate)
    return Source(path, path.relative_to(root).as_posix(), encoding, text)


def read_source(path: Path, root: Path) -> Source | None:
    """A Python file in the encoding it declares (None: unreadable, too big, or not decodable)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) > MAX_FILE_BYTES:
        return None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return None
    return _decoded(path, root, data, encoding)


def unified_diff(rel: str, old: list[str], new: list[str]) -> str:
    """A ``git apply``-compatible unified diff of one file (lines keep their endings)."""
    out = [f"diff --git a/{rel} b/{rel}\n"]
    body = list(difflib.unified_diff(old, new, fromfile=f"a/{rel}", tofile=f"b/{rel}", n=3))
    if not body:
        return ""
    for line in body:
        if line.endswith(("\n", "\r")):
            out.append(line)
        else:  # the file's last line has no newline
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _edits(rel: str, old: list[str], new: list[str]) -> list[Edit]:
    found: list[Edit] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        before = "".join(old[i1:i2])
        after = "".join(new[j1:j2])
        found.append(Edit(rel, i1 + 1, before.rstrip("\r\n"), after.rstrip("\r\n")))
    return found


def planned_from(sources: list[tuple[Source, str]], *, check: bool = True, where: tuple[str, ...] = ()) -> Planned:
    """The plan of rewriting each source to its new text: edits, one diff, the bytes before and after.
    With ``check``, an edit that only hides a failure refuses the whole plan."""
    planned = Planned(where=where)
    diffs: list[str] = []
    for source, text in sources:
        if text == source.text:
            continue
        old, new = source.text.splitlines(keepends=True), text.splitlines(keepends=True)
        edits = _edits(source.rel, old, new)
        if check:
            for edit in edits:
                why = silences(edit.before, edit.after)
                if why:
                    return Planned(refused=f"{source.rel}:{edit.line}: the edit {why}: it would hide the failure, refused")
        planned.edits.extend(edits)
        diffs.append(unified_diff(source.rel, old, new))
        planned.changes[source.rel] = (source.data, source.encode(text))
    planned.diff = "".join(diffs)
    return planned


_SILENCERS = ("except", "pytest.skip", "pytest.mark.skip", "pytest.mark.xfail", "pytest.xfail", "unittest.skip",
              "@skip")


def silences(before: str, after: str) -> str | None:
    """Why an edit only hides a failure instead of fixing it, or None.

    Refused outside an explicit quarantine remedy: adding exception handlers or skip/xfail
    marks, and removing assertions or test functions.
    """
    for marker in _SILENCERS:
        if marker in after and marker not in before:
            return f"adds {marker!r}"
    for marker in ("self.assert", "assert", "def test"):
        if before.count(marker) > after.count(marker):
            return f"removes {marker!r}"
    return None


def installed_location(root: Path) -> str | None:
    """Why ``root`` is not a project kb may edit: the standard library, an installed package
    (site-packages, an interpreter's own paths) or a virtual environment; None when it is fine."""
    import sysconfig

    if "site-packages" in root.parts or "dist-packages" in root.parts:
        return "inside an installed package (site-packages)"
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path and (root == Path(path).resolve() or Path(path).resolve() in root.parents):
            return f"inside this interpreter's {key} ({path})"
    for folder in (root, *root.parents):
        if (folder / "pyvenv.cfg").is_file():
            return f"inside the virtual environment {folder}"
    return None
