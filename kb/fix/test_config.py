"""Test-configuration remedies (the ``test-config`` remedy kind): register a marker or ignore one deprecation
(by its exact message) in the pytest configuration pytest itself reads.

The file is the one pytest (9) itself reads, the first found in the root of: ``pytest.toml``,
``.pytest.toml`` (a ``[pytest]`` table, native TOML), ``pytest.ini``, ``.pytest.ini`` (``[pytest]``; these
count even when empty), ``pyproject.toml`` with ``[tool.pytest]`` (native TOML: values are lists) or
``[tool.pytest.ini_options]``, ``tox.ini`` with ``[pytest]``, ``setup.cfg`` with ``[tool:pytest]``. The
entry is appended to the existing list setting, or the setting is added to the section. TOML is edited
through tomlkit, INI through configupdater's structure (:mod:`kb.fix.config_files`): comments, layout,
quoting and line endings stay; new INI lines are indented like the setting's other lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..templates import render_template
from .registry import Context, remedy
from .sources import Source, planned_from
from .types import Planned

__all__ = ["plan_test_config", "CONFIG_KEYS", "config_file", "plan_setting"]

#: (file, kind, section or table path) in the order pytest looks for them
_CANDIDATES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("pytest.toml", "toml", ("pytest",)), (".pytest.toml", "toml", ("pytest",)),
    ("pytest.ini", "ini", ("pytest",)), (".pytest.ini", "ini", ("pytest",)),
    ("pyproject.toml", "toml", ("tool", "pytest")), ("tox.ini", "ini", ("pytest",)),
    ("setup.cfg", "ini", ("tool:pytest",)),
)
MAX_BYTES = 1024 * 1024


def _read(path: Path) -> str | None:
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_BYTES:
            return None
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def config_file(root: Path) -> tuple[str, str, tuple[str, ...]] | None:
    """(file name, "toml" or "ini", the section / table path its settings live in) of the project's
    pytest configuration, as pytest would choose it; None when it has none."""
    from .config_files import ini_sections, toml_read

    for name, kind, where in _CANDIDATES:
        text = _read(root / name)
        if text is None:
            continue
        text = text.removeprefix("\ufeff")
        try:
            if name in ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini"):
                return name, kind, where
            if kind == "ini":
                if where[0] in ini_sections(text):
                    return name, kind, where
                continue
            tool = toml_read(text).get("tool")
            pytest = tool.get("pytest") if isinstance(tool, dict) else None
            if isinstance(pytest, dict):
                native = [key for key in pytest if key != "ini_options"]
                return name, kind, where if native or "ini_options" not in pytest else (*where, "ini_options")
        except ValueError:
            continue
    return None


def _name(entry: str) -> str:
    """A marker line's name: ``slow(reason): description`` → ``slow``."""
    return re.split(r"[:(]", entry, maxsplit=1)[0].strip()


def plan_setting(root: Path, key: str, entry: str) -> tuple[str, bytes, bytes] | str:
    """(file relative to ``root``, bytes before, bytes after) with ``entry`` added to the list setting
    ``key`` (``markers`` or ``filterwarnings``) of the project's pytest configuration, or one sentence
    saying why not (no configuration; ``already registered`` — a marker by its name, other entries
    verbatim; a setting that is not a list)."""
    from .config_files import ini_append_list, ini_list, toml_append_string, toml_read

    found = config_file(root)
    if found is None:
        return ("no pytest configuration (pytest.toml, pytest.ini, pyproject.toml [tool.pytest], tox.ini [pytest], "
                "setup.cfg [tool:pytest]) to register it in")
    name, kind, where = found
    before = (root / name).read_bytes()
    text = before.decode("utf-8")
    bom = text.startswith("\ufeff")
    text = text.removeprefix("\ufeff")
    label = f"{name} [{'.'.join(where)}] {key}"
    try:
        if kind == "toml":
            node: object = toml_read(text)
            for step in (*where, key):
                node = node.get(step) if isinstance(node, dict) else None
            if node is not None and not isinstance(node, list):
                return f"{label} is not a list: add {entry!r} by hand"
            present = [str(item) for item in node or []]
        else:
            present = ini_list(text, where[0], key) or []
    except ValueError as exc:
        return f"{name} cannot be read: {exc}"
    same = (lambda item: _name(item) == _name(entry)) if key == "markers" else (lambda item: item.strip() == entry.strip())
    if any(same(item) for item in present):
        return f"{label}: already registered"
    if kind == "toml":
        after = toml_append_string(text, (*where, key), entry)
    else:
        new = ini_append_list(text, where[0], key, entry, create_section=True)
        if new is None:
            return f"{label}: there is no place for it"
        after = new
    return name, before, (("\ufeff" if bom else "") + after).encode("utf-8")


#: template → the pytest setting its rendered line goes into
CONFIG_KEYS = {"register-marker": "markers", "filterwarnings": "filterwarnings"}


@remedy("test-config")
def plan_test_config(spec: dict[str, Any], ctx: Context) -> Planned | None:
    template = spec.get("template")
    if template not in CONFIG_KEYS:
        return None
    entry = render_template(template, params=spec.get("params") or {})
    found = plan_setting(ctx.root, CONFIG_KEYS[template], entry)
    if isinstance(found, str):
        return Planned(refused=found)
    rel, before, after = found
    source = Source(ctx.root / rel, rel, "utf-8", before.decode("utf-8"))
    planned = planned_from([(source, after.decode("utf-8"))], check=False, where=(rel,))
    planned.changes = {rel: (before, after)}  # byte-exact, whatever the decoding did
    return planned
