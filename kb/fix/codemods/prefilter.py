"""A fast first look before LibCST: could this template change this module at all?

LibCST's parse and scope analysis cost about 0.2 s for a 150-line module; the standard library's
``ast`` sees the same module in about a millisecond. This filter only answers "certainly not" (no call of
that name, no such keyword, no such attribute, definition or import) and is otherwise permissive: it
never excludes a module the codemod would change (aliased imports count as the name they import).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from .core import spellings

__all__ = ["may_change"]


def _last(name: Any) -> str:
    return str(name).rsplit(".", 1)[-1]


def _spellings(imports: list[ast.Import | ast.ImportFrom], name: str) -> set[str]:
    """``name`` and the local names it is imported as (``from yaml import load as yload``)."""
    found = {name}
    for node in imports:
        found.update(a.asname for a in node.names if a.asname and _last(a.name) == name)
    return found


def _called(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _chain(node: ast.expr) -> tuple[list[str], bool]:
    """The names an attribute chain ends with (``foo().yaml.load`` → [yaml, load]) and whether its
    receiver is a plain name (the chain then starts with that name)."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
    return names[::-1], isinstance(node, ast.Name)


def _import_paths(imports: list[ast.Import | ast.ImportFrom]) -> dict[str, set[str]]:
    """The qualified names the module's imports bind, by local name (``import a.b`` binds ``a`` → a;
    ``import numpy as np``, np → numpy; ``from m import x as y``, y → m.x); a relative import's name maps to
    "" (unknown here: it may be anything)."""
    bound: dict[str, set[str]] = {}
    for node in imports:
        if isinstance(node, ast.Import):
            for a in node.names:
                local = a.asname or a.name.split(".", 1)[0]
                bound.setdefault(local, set()).add(a.name if a.asname else local)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                path = f"{node.module}.{a.name}" if node.module and not node.level else ""
                bound.setdefault(a.asname or a.name, set()).add(path)
    return bound


def _qualified(chain: list[str], named: bool, bound: dict[str, set[str]]) -> set[str] | None:
    """The qualified names an attribute chain (:func:`_chain`) resolves to through the module's imports
    (:func:`_import_paths`: ``np.float`` after ``import numpy as np`` → numpy.float); None when one of them is a
    relative import's (unknown here: it may be anything)."""
    paths = bound.get(chain[0], set()) if named else set()
    if "" in paths:
        return None
    return {".".join([path, *chain[1:]]) for path in paths}


def _calls(tree: ast.Module, callable_: Any) -> list[ast.Call]:
    """The calls that may be of ``callable_`` as the call codemods decide it (core.refers_to): a dotted name
    matches a chain that resolves through an import to it (or to a name ending with it), or, not resolved,
    a chain that ends with it (``self.yaml.load``); ``json.load`` after ``import json`` is not ``yaml.load``.
    Imports are taken module-wide (LibCST sees them per scope): a superset of what the codemod resolves."""
    calls: list[ast.Call] = []
    imports: list[ast.Import | ast.ImportFrom] = []
    for node in ast.walk(tree):  # one pass over the module
        if isinstance(node, ast.Call):
            calls.append(node)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(node)
    names = _spellings(imports, _last(callable_))
    found = [n for n in calls if _called(n) in names]
    if "." not in str(callable_) or not found:
        return found
    targets = spellings(str(callable_))
    bound = _import_paths(imports)
    kept = []
    for call in found:
        chain, named = _chain(call.func)
        if any(chain[-len(t.split(".")):] == t.split(".") for t in targets):
            kept.append(call)  # what an unresolved chain needs (kept whatever the imports: they are per scope)
            continue
        qualified = _qualified(chain, named, bound)
        if qualified is None or any(q == t or q.endswith("." + t) for q in qualified for t in targets):
            kept.append(call)
    return kept


def _with_keyword(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    return any(k.arg == params["param"] for n in _calls(tree, params["callable"]) for k in n.keywords)


def _lacking_keyword(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    return any(all(k.arg != params["param"] for k in n.keywords) for n in _calls(tree, params["callable"]))


def _keyword_value(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    calls = _calls(tree, params["callable"]) if params.get("callable") else \
        [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    return any(k.arg == params["param"] and isinstance(k.value, ast.Constant) and k.value.value == params["old"]
               for n in calls for k in n.keywords)


def _defines(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    old = params["old"]
    olds = {o.strip() for o in (old if isinstance(old, list) else str(old).split(","))}
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in olds for n in ast.walk(tree))


def _renamed_attribute(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    """rename-attribute changes ``<expr>.last`` only, plus, for a bare ``old``, ``from X import old`` and the
    names it binds: a module where ``last`` is only a plain name (the builtin ``bool`` when ``np.bool`` is
    renamed) is not changed (each such module cost a LibCST pass: 20 s of ``kb fix`` on a 200-module project)."""
    old = str(params["old"])
    last, bare = _last(old), "." not in old
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == last:
            return True
        if bare and isinstance(node, ast.ImportFrom) and any(a.name == old for a in node.names):
            return True
    return False


def _imported_from(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    """replace-import changes ``from module import name`` (absolute) and the chains ``<x>.name`` that resolve
    through an import to ``module.name`` (``import collections`` … ``collections.Mapping``): a module that only
    uses the name as imported from elsewhere (``from collections.abc import Mapping``) is not changed."""
    module, name = str(params["module"]), str(params["name"])
    imports: list[ast.Import | ast.ImportFrom] = []
    chains: list[ast.Attribute] = []
    for node in ast.walk(tree):  # one pass over the module
        if isinstance(node, ast.ImportFrom):
            if not node.level and node.module == module and any(a.name == name for a in node.names):
                return True
            imports.append(node)
        elif isinstance(node, ast.Import):
            imports.append(node)
        elif isinstance(node, ast.Attribute) and node.attr == name:
            chains.append(node)
    if not chains:
        return False
    bound = _import_paths(imports)
    wanted = f"{module}.{name}"
    for node in chains:
        qualified = _qualified(*_chain(node), bound)
        if qualified is None or wanted in qualified:
            return True
    return False


_CHECKS: dict[str, Callable[[ast.Module, Mapping[str, Any]], bool]] = {
    "drop-kwarg": _with_keyword,
    "add-kwarg": _lacking_keyword,
    "positional-to-keyword": lambda tree, params: bool(_calls(tree, params["callable"])),
    "replace-kwarg-value": _keyword_value,
    "rename-attribute": _renamed_attribute,
    "replace-import": _imported_from,
    "rename-method": _defines,
}


def may_change(template: str, params: Mapping[str, Any], source: str) -> bool:
    """False only when ``template`` certainly finds nothing to change in ``source``."""
    check = _CHECKS.get(template)
    if check is None:
        return True
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True  # LibCST decides
    return check(tree, params)
