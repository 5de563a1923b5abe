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

__all__ = ["may_change"]


def _last(name: Any) -> str:
    return str(name).rsplit(".", 1)[-1]


def _spellings(tree: ast.Module, name: str) -> set[str]:
    """``name`` and the local names it is imported as (``from yaml import load as yload``)."""
    found = {name}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            found.update(a.asname for a in node.names if a.asname and _last(a.name) == name)
    return found


def _called(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _calls(tree: ast.Module, callable_: Any) -> list[ast.Call]:
    names = _spellings(tree, _last(callable_))
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _called(n) in names]


def _with_keyword(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    return any(k.arg == params["param"] for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords)


def _lacking_keyword(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    return any(all(k.arg != params["param"] for k in n.keywords) for n in _calls(tree, params["callable"]))


def _keyword_value(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    return any(k.arg == params["param"] and isinstance(k.value, ast.Constant) and k.value.value == params["old"]
               for n in ast.walk(tree) if isinstance(n, ast.Call) for k in n.keywords)


def _name_used(tree: ast.Module, name: str) -> bool:
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr == name) or (isinstance(node, ast.Name) and node.id == name):
            return True
        if isinstance(node, ast.ImportFrom) and any(_last(a.name) == name for a in node.names):
            return True
    return False


def _defines(tree: ast.Module, params: Mapping[str, Any]) -> bool:
    old = params["old"]
    olds = {o.strip() for o in (old if isinstance(old, list) else str(old).split(","))}
    return any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in olds for n in ast.walk(tree))


_CHECKS: dict[str, Callable[[ast.Module, Mapping[str, Any]], bool]] = {
    "drop-kwarg": _with_keyword,
    "add-kwarg": _lacking_keyword,
    "positional-to-keyword": lambda tree, params: bool(_calls(tree, params["callable"])),
    "replace-kwarg-value": _keyword_value,
    "rename-attribute": lambda tree, params: _name_used(tree, _last(params["old"])),
    "replace-import": lambda tree, params: _name_used(tree, str(params["name"])),
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
