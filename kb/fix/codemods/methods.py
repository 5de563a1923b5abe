"""Codemods on test classes and functions: ``rename-method`` (nose-style ``setUp`` on a plain class)
and the quarantine mark (an xfail that lapses on a date)."""

from __future__ import annotations

import os.path
from collections.abc import Collection

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from .core import Params, codemod

__all__ = ["quarantine"]

_CODE = cst.Module([])


def _olds(params: Params) -> list[str]:
    """``old`` as a list: a list, or one name or comma-separated names (what a pack's schema allows)."""
    old = params["old"]
    names = [str(o) for o in old] if isinstance(old, list | tuple) else str(old).split(",")
    return [n.strip() for n in names if n.strip()]


class _RenameMethod(cst.CSTTransformer):
    """Rename the first ``def <old>`` directly in each class whose bases name none of ``skip``, and the
    ``self.<old>(...)`` calls in that class; a class that already defines ``new`` is left alone."""

    def __init__(self, olds: list[str], new: str, skip: list[str]) -> None:
        super().__init__()
        self.olds, self.new, self.skip = olds, new, skip
        self.classes: list[str | None] = []  # per enclosing class: the method name being renamed
        self.defs: set[cst.CSTNode] = set()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        bases = " ".join(_CODE.code_for_node(b.value) for b in node.bases)
        methods = [s for s in node.body.body if isinstance(s, cst.FunctionDef)]
        found = next((m for m in methods if m.name.value in self.olds), None)
        if any(name in bases for name in self.skip) or any(m.name.value == self.new for m in methods) or not found:
            self.classes.append(None)
            return
        self.defs.add(found)
        self.classes.append(found.name.value)

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self.classes.pop()
        return updated

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        if original in self.defs:
            return updated.with_changes(name=cst.Name(self.new))
        return updated

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        renamed = self.classes[-1] if self.classes else None
        func = updated.func
        if (renamed and isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
                and func.value.value == "self" and func.attr.value == renamed):
            return updated.with_changes(func=func.with_changes(attr=cst.Name(self.new)))
        return updated


@codemod("rename-method", required={"old": "identifiers", "new": "identifier"}, optional={"skip_bases": "bases"},
         needles=lambda params: [n for n in ("def", os.path.commonprefix(_olds(params))) if n])
def rename_method(module: cst.Module, params: Params) -> cst.Module:
    skip = [b.strip() for b in str(params.get("skip_bases") or "").split(",") if b.strip()]
    return module.visit(_RenameMethod(_olds(params), str(params["new"]), skip))


class _Quarantine(cst.CSTTransformer):
    def __init__(self, tests: Collection[str], mark: cst.Decorator) -> None:
        super().__init__()
        self.tests, self.mark = set(tests), mark
        self.scope: list[str | None] = []  # class names; None for a function (nothing inside one is a test)
        self.marked = 0

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.scope.append(node.name.value)

    def leave_ClassDef(self, original: cst.ClassDef, updated: cst.ClassDef) -> cst.ClassDef:
        self.scope.pop()
        return updated

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scope.append(None)

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        self.scope.pop()
        if None in self.scope:
            return updated
        name = "::".join([*(s for s in self.scope if s), updated.name.value])
        if name not in self.tests or any("xfail" in _CODE.code_for_node(d.decorator) for d in updated.decorators):
            return updated
        self.marked += 1
        return updated.with_changes(decorators=[*updated.decorators, self.mark])


def quarantine(module: cst.Module, tests: Collection[str], until: str, reason: str) -> cst.Module:
    """See codemods.quarantine (``until`` is validated there)."""
    condition = f"__import__('datetime').date.today().isoformat() < {until!r}"
    mark = cst.Decorator(cst.parse_expression(f"pytest.mark.xfail({condition!r}, reason={reason!r}, strict=False)"))
    visitor = _Quarantine(tests, mark)
    marked = module.visit(visitor)
    if not visitor.marked:
        return module
    context = CodemodContext()
    AddImportsVisitor.add_needed_import(context, "pytest")
    return AddImportsVisitor(context).transform_module(marked)
