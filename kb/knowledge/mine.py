"""Mine breaking changes from two releases with griffe — the only module that imports griffe.

griffe reads both releases statically (nothing is imported or run) into API trees; kb walks the
old tree against the new one and keeps the changes a failing test can show:

- a module, or a module-level object, that is gone → ``removed`` (``cannot import name``,
  ``module has no attribute``, ``No module named``); when an object of that name exists in exactly
  one other module of the new release → ``moved`` with that replacement;
- a public method or class attribute that is gone → ``removed`` (name ``Class.member``);
- a parameter removed (not swallowed by ``**kwargs``) → ``signature-changed`` (``unexpected keyword``);
- a required parameter added → ``signature-changed`` (``missing 1 required argument``);
- a positional-or-keyword parameter made keyword-only → ``signature-changed`` (``takes N positional
  arguments``).

Noise filtered out, as griffe's own breakage list would carry it: annotation-only and default-only
changes, return types, attribute values, moved positions, base classes; objects under test
packages; names a module imports (``import os``, ``from .compat import str``) unless it re-exports them on
purpose (a package ``__init__`` or ``__all__``); names that a module's ``__getattr__`` may still
serve (deprecation shims). Names with a leading underscore are dropped (no failure a user meets
names them), but the public names of private modules are kept — ``from _pytest.compat import x``
and ``from pkg._compat import text_type`` are exactly what old plugins and old code import.
Replacements name the one public place an object lives now (a re-export beats the private
definition).

Each change becomes an API-change row of the pack schema: version bounds (``removed_in`` the newer
release), the newer release's page as ``source``, both releases in ``note``, and remedies (pin below
the removing release; port by hand).
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import griffe
except ImportError as exc:  # pragma: no cover - depends on the extra
    from ..errors import KbError

    raise KbError("mining needs griffe: pip install 'kb-selfheal[mine]'") from exc

from ..pep440 import normalise, release_bound

__all__ = ["Change", "compare_trees", "compare_safely", "compare_releases", "importable_tops", "rows_for", "load_tree",
           "SKIP_PACKAGES"]

#: sub-packages that are not API (tests, examples, vendored copies of other projects)
SKIP_PACKAGES = frozenset({"tests", "test", "testing_utils", "_tests", "examples", "docs", "benchmarks",
                           "_vendor", "vendor", "vendored", "_vendored", "externals", "conftest",
                           "setup", "setup_common"})
_NOT_TOPS = frozenset({"setup", "conftest", "tests", "test", "docs", "doc", "examples", "benchmarks", "tasks",
                       "noxfile", "fabfile", "build", "scripts", "tools", "ci"})

logging.getLogger("griffe").setLevel(logging.CRITICAL + 1)  # a release griffe cannot read is skipped, quietly
#: the standard library's top-level names (of the Python kb runs on; the same for every 3.x but a few)
_STDLIB = frozenset(sys.stdlib_module_names)


@dataclass(frozen=True)
class Change:
    module: str
    name: str  # "" for a whole module; "Class.member" for members
    kind: str  # removed | moved | signature-changed
    param: str = ""
    change: str = ""  # for signature-changed: param-removed | param-required | param-keyword-only
    replacement: str = ""


def importable_tops(root: Path) -> dict[str, Path]:
    """Top-level import names of an unpacked release → the folder to search them in.

    A wheel has its packages at the top (``top_level.txt`` names them when present); an sdist
    has one ``name-version/`` folder holding them, perhaps under ``src/``.
    """
    bases = [root]
    if root.is_dir():
        inner = [p for p in root.iterdir() if p.is_dir() and not p.name.endswith((".dist-info", ".data"))]
        if len(inner) == 1 and not (inner[0] / "__init__.py").exists():
            bases = [inner[0]]
    found: dict[str, Path] = {}
    for base in [*bases, *(b / "src" for b in bases), *(b / "lib" for b in bases)]:
        if not base.is_dir():
            continue
        listed: set[str] = set()
        for info in base.glob("*.dist-info/top_level.txt"):
            listed |= {line.strip() for line in info.read_text("utf-8", "replace").split() if line.strip()}
        for entry in sorted(base.iterdir()):
            name = entry.name[:-3] if entry.suffix == ".py" else entry.name
            if not name.isidentifier() or name in _NOT_TOPS or (listed and name not in listed):
                continue
            if (entry.is_dir() and ((entry / "__init__.py").exists() or name in listed)) or \
                    (entry.is_file() and entry.suffix == ".py"):
                found.setdefault(name, base)
        if found:
            break
    return found


def load_tree(top: str, search: Path) -> Any | None:
    """griffe's static API tree of ``top`` under ``search`` (None if griffe cannot read it)."""
    try:
        return griffe.load(top, search_paths=[str(search)], allow_inspection=False, resolve_aliases=False,
                           try_relative_path=False, find_stubs_package=False)
    except Exception:  # noqa: BLE001 - griffe raises many kinds on odd sources; a release it cannot read is skipped
        return None


def _skipped(path: str) -> bool:
    return any(part in SKIP_PACKAGES for part in path.split(".")[1:])


def _members(obj: Any) -> dict[str, Any]:
    try:
        return dict(obj.members)
    except Exception:  # noqa: BLE001
        return {}


def _is_module(obj: Any) -> bool:
    return not obj.is_alias and obj.is_module


def _listed(module: Any, name: str) -> bool:
    """``name`` is in the module's ``__all__``."""
    try:
        exports = module.exports
    except Exception:  # noqa: BLE001
        exports = None
    return bool(exports) and name in {str(e) if isinstance(e, str) else getattr(e, "name", str(e)) for e in exports}


def _reexported(module: Any, name: str) -> bool:
    """A name a module deliberately offers although it is defined elsewhere."""
    if _listed(module, name):
        return True
    return bool(module.filepath and Path(str(module.filepath)).name == "__init__.py" and not name.startswith("_"))


def _kept_alias(module: Any, name: str, alias: Any) -> bool:
    """An imported name counts as API only where the module offers it on purpose: a package's
    ``__init__`` or ``__all__`` (``flask.Markup``), never an incidental ``import os`` or helper import,
    nor a standard-library name a package ``__init__`` happens to import (``from typing import Generic``)
    unless ``__all__`` lists it."""
    try:
        target = str(alias.target_path)
    except Exception:  # noqa: BLE001
        return False
    if "." not in target:
        return False
    if target.split(".", 1)[0] in _STDLIB:
        return _listed(module, name)
    return _reexported(module, name)


def _index(tree: Any) -> dict[str, list[str]]:
    """Name → paths of every module, module-level class/function and deliberate re-export in a tree
    (where a removed object may have moved to)."""
    index: dict[str, list[str]] = {}
    stack = [tree]
    while stack:
        module = stack.pop()
        index.setdefault(module.name, []).append(module.path)
        for name, member in _members(module).items():
            if member.is_alias:
                if not name.startswith("_") and _reexported(module, name):
                    index.setdefault(name, []).append(f"{module.path}.{name}")
                continue
            if _is_module(member):
                if not _skipped(member.path):
                    stack.append(member)
            elif member.is_class or member.is_function:
                index.setdefault(name, []).append(member.path)
    return index


def _private_path(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


def _moved(name: str, old_path: str, index: dict[str, list[str]]) -> str:
    """The one public place the object lives now ("" when there is none, or several)."""
    candidates = [p for p in dict.fromkeys(index.get(name, []))
                  if p != old_path and not p.startswith(old_path + ".")]
    public = [p for p in candidates if not _private_path(p)]
    if len(public) > 1:  # a re-export and the definition: the shortest path is the one to import
        shortest = min(public, key=lambda p: p.count("."))
        public = [shortest] if sum(p.count(".") == shortest.count(".") for p in public) == 1 else public
    return public[0] if len(public) == 1 else ""


def _param_changes(old: Any, new: Any) -> Iterator[tuple[str, str]]:
    kinds = griffe.ParameterKind
    variadic = (kinds.var_positional, kinds.var_keyword)
    try:
        old_params, new_params = list(old.parameters), list(new.parameters)
    except Exception:  # noqa: BLE001
        return
    by_name = {p.name: p for p in new_params}
    has_var_kw = any(p.kind is kinds.var_keyword for p in new_params)
    old_names = {p.name for p in old_params}
    for p in old_params:
        if p.name in ("self", "cls") or p.kind in variadic:
            continue
        q = by_name.get(p.name)
        if q is None:
            if has_var_kw and p.kind in (kinds.keyword_only, kinds.positional_or_keyword):
                continue
            yield p.name, "param-removed"
        elif p.kind is kinds.positional_or_keyword and q.kind is kinds.keyword_only:
            yield p.name, "param-keyword-only"
    for q in new_params:
        if q.name not in old_names and q.kind not in variadic and q.default is None and q.name not in ("self", "cls"):
            yield q.name, "param-required"


def _function_changes(module: str, name: str, old: Any, new: Any) -> Iterator[Change]:
    if old.is_alias or new.is_alias or not (old.is_function and new.is_function):
        return  # (checked in this order: asking an alias its kind would resolve it)
    if any(part.startswith("_") for part in name.split(".")):
        return
    for param, change in _param_changes(old, new):
        if param.startswith("_"):
            continue  # "__x" parameters are positional-only by convention (stubs)
        yield Change(module, name, "signature-changed", param, change)


def _class_changes(module: str, cls: str, old: Any, new: Any) -> Iterator[Change]:
    new_members = _members(new)
    for name, member in _members(old).items():
        if member.is_alias:
            continue
        if name == "__init__":
            counterpart = new_members.get("__init__")
            if counterpart is not None:
                yield from _function_changes(module, cls, member, counterpart)
            continue
        if name.startswith("_"):
            continue
        counterpart = new_members.get(name)
        if counterpart is None:
            if not _inherits_elsewhere(new):
                yield Change(module, f"{cls}.{name}", "removed")
        elif not counterpart.is_alias and member.is_function:
            yield from _function_changes(module, f"{cls}.{name}", member, counterpart)


def _inherits_elsewhere(cls: Any) -> bool:
    """A class with bases may inherit the member from a base griffe did not merge: do not claim it is gone."""
    try:
        return bool(cls.bases) and any(str(b) not in ("object", "") for b in cls.bases)
    except Exception:  # noqa: BLE001
        return True


def compare_trees(old: Any, new: Any | None, *, private: bool = True) -> list[Change]:
    """The changes from ``old`` (a griffe module tree) to ``new`` (None: the whole top is gone).

    ``private``: walk private modules too (``_pytest.compat``, ``pkg._compat``): their public names are what
    plugins and old code import.
    """
    changes: list[Change] = []
    index = _index(new) if new is not None else {}
    stack: list[tuple[Any, Any | None]] = [(old, new)]
    while stack:
        old_mod, new_mod = stack.pop()
        if _skipped(old_mod.path):
            continue
        if new_mod is None:
            changes.append(Change(old_mod.path, "", *(("moved", "", "", r) if (r := _moved_module(old_mod, index))
                                                      else ("removed",))))
            continue
        new_members = _members(new_mod)
        dynamic = "__getattr__" in new_members  # names may still resolve at run time (deprecation shims)
        for name, member in _members(old_mod).items():
            if name.startswith("__"):
                continue
            counterpart = new_members.get(name)
            if _is_module(member):
                if (counterpart is None or _is_module(counterpart)) and (private or not name.startswith("_")):
                    stack.append((member, counterpart))
                continue
            if name.startswith("_"):
                continue  # private names: no symptom a user meets names them
            if member.is_alias and not _kept_alias(old_mod, name, member):
                continue
            if counterpart is None and dynamic:
                continue
            if counterpart is None:
                target = _moved(name, f"{old_mod.path}.{name}", index)
                changes.append(Change(old_mod.path, name, "moved" if target else "removed", replacement=target))
                continue
            if member.is_alias or counterpart.is_alias:
                continue  # never resolve an alias: its target may be in another distribution
            if member.is_class and counterpart.is_class:
                changes.extend(_class_changes(old_mod.path, name, member, counterpart))
            elif member.is_function:
                changes.extend(_function_changes(old_mod.path, name, member, counterpart))
    return changes


def compare_safely(old: Any, new: Any | None, *, private: bool = True) -> list[Change]:
    """:func:`compare_trees`, but a tree griffe cannot walk (an alias cycle, a broken source) yields no
    changes rather than stopping the whole mining run."""
    try:
        return compare_trees(old, new, private=private)
    except Exception as exc:  # noqa: BLE001 - griffe's errors are many and not all exported
        logging.getLogger(__name__).warning("skipped %s: %s", getattr(old, "path", old), exc)
        return []


def compare_releases(old_tops: dict[str, Path], new_tops: dict[str, Path], *, private: bool = True,
                     present: frozenset[str] = frozenset()) -> list[Change]:
    """The changes between two releases, given each one's top-level modules (name → the folder to read it
    from). A top missing from ``new_tops`` is removed — unless ``present`` says it still exists without a
    source (a standard-library module rewritten in C); a new tree griffe cannot read is not a removal."""
    changes: list[Change] = []
    for top, base in sorted(old_tops.items()):
        if top in present and top not in new_tops:
            continue
        old_tree = load_tree(top, base)
        if old_tree is None:
            continue
        new_tree = load_tree(top, new_tops[top]) if top in new_tops else None
        if top in new_tops and new_tree is None:
            continue
        changes.extend(compare_safely(old_tree, new_tree, private=private))
    return changes


def _moved_module(module: Any, index: dict[str, list[str]]) -> str:
    candidates = [p for p in index.get(module.name, []) if p != module.path]
    return candidates[0] if len(candidates) == 1 and module.name not in ("utils", "compat", "core", "base") else ""


_ID_SAFE = re.compile(r"[^a-z0-9._-]+")


def rows_for(changes: list[Change], *, package: str, old_version: str, new_version: str, old_url: str,
             new_url: str, stdlib: bool = False, prefix: str = "mined",
             files: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """API-change rows (pack schema) for ``changes`` between two releases of ``package``; ids start
    with ``prefix`` (``mined`` for the shipped pack, ``learned`` for rows mined on demand)."""
    bound = release_bound(new_version)
    slug = _ID_SAFE.sub("-", normalise(package) if not stdlib else "python")
    rows = []
    seen: set[str] = set()
    read = f", read from {files[0]} and {files[1]}" if files else ""
    for c in changes:
        if not _identifier(c.module) or (c.name and not _identifier(c.name)):
            continue
        key = f"{c.module}|{c.name}|{c.param}|{c.change}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:12]  # noqa: S324 - an id, not security
        row_id = f"{prefix}.{slug}.{bound}.{digest}"
        if row_id in seen:
            continue
        seen.add(row_id)
        what = f"{c.module}.{c.name}" if c.name else c.module
        detail = {"param-removed": f"parameter {c.param} removed", "param-required": f"parameter {c.param} added "
                  "as required", "param-keyword-only": f"parameter {c.param} made keyword-only"}.get(c.change, c.kind)
        row: dict[str, Any] = {
            "id": row_id, "package": "python" if stdlib else package, "module": c.module, "name": c.name,
            "kind": c.kind, "removed_in": bound, "source": new_url,
            "note": (f"Found by griffe comparing {'Python' if stdlib else package} {old_version} ({old_url}) with "
                     f"{new_version} ({new_url}){read}: {what}: {detail}."),
        }
        if c.param:
            row["param"] = c.param
            row["change"] = c.change
        if c.replacement and _identifier(c.replacement):
            row["replacement"] = c.replacement
        if not stdlib:
            requirement = f"{package}<{bound}"
            row["remedies"] = [
                {"kind": "dependency-pin", "template": "pin-dependency", "params": {"requirement": requirement},
                 "description": f"Pin {requirement}: the releases before the one that changed {what}",
                 "risk": "medium", "url": new_url},
            ]
        rows.append(row)
    return rows


def _identifier(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))
