"""Codemods that move or rename a name: ``rename-attribute`` and ``replace-import``.

Uses are found by qualified name (LibCST's QualifiedNameProvider), so every import spelling of a
module counts (``import numpy as np``, ``import numpy``, ``from PIL import Image``); the imports the
new name needs are added with LibCST's AddImportsVisitor.
"""

from __future__ import annotations

from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor
from libcst.metadata import QualifiedNameProvider

from .core import (
    Params,
    canonical,
    codemod,
    dotted,
    dotted_expr,
    drop_items,
    imported_names,
    is_builtin,
    refers_to,
    wrapped,
)

__all__: list[str] = []


def _last(name: Any) -> str:
    return str(name).rsplit(".", 1)[-1]


class _Rename(cst.CSTTransformer):
    """Rename attribute uses of ``old`` to ``new``.

    ``old`` dotted: Attribute chains whose qualified name is ``old`` (see refers_to); the part the
    two names share keeps the code's own spelling (``np.float`` → ``np.float64``), the rest is
    replaced. ``absolute`` (replace-import): ``new`` is a full module path, the whole chain is
    replaced and ``import <module>`` added. ``old`` bare: every ``<expr>.old`` and every name
    bound by ``from X import old``. ``arity``: a renamed call unpacked into exactly that many
    targets is sliced to them (the new callable returns a longer tuple).
    """

    METADATA_DEPENDENCIES = (QualifiedNameProvider,)

    def __init__(self, context: CodemodContext, old: str, new: str, *, absolute: bool = False,
                 arity: int | None = None, owner: str | None = None) -> None:
        super().__init__()
        self.context, self.old, self.new, self.absolute, self.arity = context, old, new, absolute, arity
        self.owner = owner
        self.bare = "." not in old
        self.in_import = 0
        self.renamed: set[cst.CSTNode] = set()
        self.unpacked: set[cst.CSTNode] = set()
        self.from_modules: set[str] = set()  # X of `from X import old` (uses of the name are renamed)

    def visit_Module(self, node: cst.Module) -> None:
        if self.bare:
            self.from_modules = _from_modules(node, self.old)

    # imports: only `from X import old` is touched, and only for a bare old
    def visit_Import(self, node: cst.Import) -> bool:
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        return False

    def leave_ImportFrom(self, original: cst.ImportFrom, updated: cst.ImportFrom) -> cst.ImportFrom:
        if not self.bare or updated.relative or isinstance(updated.names, cst.ImportStar) or updated.module is None:
            return updated
        names = list(updated.names)
        have_new = any(isinstance(a.name, cst.Name) and a.name.value == self.new and not a.asname for a in names)
        out = []
        for alias in names:
            if isinstance(alias.name, cst.Name) and alias.name.value == self.old:
                if not alias.asname and have_new:  # `from m import new, old` → `from m import new`
                    self.renamed.add(original)
                    continue
                alias = alias.with_changes(name=cst.Name(self.new))
                self.renamed.add(original)
            out.append(alias)
        if len(out) < len(names):
            out[-1] = out[-1].with_changes(comma=names[-1].comma)
        return updated.with_changes(names=out)

    def visit_Assign(self, node: cst.Assign) -> None:
        if self.arity and isinstance(node.value, cst.Call) and len(node.targets) == 1:
            target = node.targets[0].target
            if (isinstance(target, cst.Tuple | cst.List) and len(target.elements) == self.arity
                    and not any(isinstance(e, cst.StarredElement) for e in target.elements)):
                self.unpacked.add(node.value)

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if original in self.unpacked and original.func in self.renamed:  # `a, b = f(x)` → `a, b = g(x)[:2]`
            upper = cst.Integer(str(self.arity))
            return cst.Subscript(value=updated, slice=[cst.SubscriptElement(cst.Slice(None, upper))])
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        if not self.bare or original.value != self.old or not self.from_modules:
            return updated
        resolved = imported_names(self.get_metadata(QualifiedNameProvider, original, set()))
        if any(f"{module}.{self.old}" in resolved for module in self.from_modules):
            self.renamed.add(original)
            return updated.with_changes(value=self.new)
        return updated

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        if self.bare:
            if original.attr.value != self.old or self._other_module(original.value):
                return updated
            self.renamed.add(original)
            return updated.with_changes(attr=cst.Name(self.new))
        if original.attr.value != _last(self.old):
            return updated
        qnames = self.get_metadata(QualifiedNameProvider, original, set())
        if not refers_to(original, self.old, qnames):
            return updated
        replaced = self._replace(original, updated)
        if replaced is not updated:
            self.renamed.add(original)
        return replaced

    def _other_module(self, receiver: cst.BaseExpression) -> bool:
        """A bare rename's receiver is an imported module other than the one that changed (``owner``, the
        cause's owner): ``warnings.warn`` is not ``logging``'s ``warn``."""
        if not self.owner:
            return False
        modules = imported_names(self.get_metadata(QualifiedNameProvider, receiver, set()))
        return bool(modules) and not any(m == self.owner or m.startswith(self.owner + ".")
                                         or self.owner.startswith(m + ".") for m in modules)

    def _replace(self, original: cst.Attribute, updated: cst.Attribute) -> cst.BaseExpression:
        old, new = canonical(self.old).split("."), canonical(self.new).split(".")
        if self.absolute:  # only a chain that resolves through an import of the old module
            if self.old not in imported_names(self.get_metadata(QualifiedNameProvider, original, set())):
                return updated
            AddImportsVisitor.add_needed_import(self.context, self.new.rsplit(".", 1)[0])
            return dotted_expr(self.new).with_changes(lpar=updated.lpar, rpar=updated.rpar)
        shared = 0
        while shared < min(len(old), len(new)) - 1 and old[shared] == new[shared]:
            shared += 1
        added = self.new.split(".")[shared:]
        levels = len(old) - shared  # attributes of the chain that spell the changed part of the name
        base: cst.BaseExpression | None = updated
        for level in range(levels):
            if isinstance(base, cst.Attribute):
                base = base.value
            elif isinstance(base, cst.Name) and level == levels - 1:
                base = None  # the chain spells exactly the old name
            else:
                return updated  # the code spells less of the name than the edit needs
        if base is None:  # the whole chain is replaced: `np.float` → `float`, `imp.reload` → `importlib.reload`
            spelled = (dotted(original) or "").split(".", 1)[0]
            if canonical(spelled) != canonical(self.old.split(".", 1)[0]) and not is_builtin(added[0]):
                # a local alias (`import botocore…urllib3.connectionpool as cpool` in a try block): where the
                # new module must come from, and under which guard, is the code's to say
                return updated
            self._import_for_head(original, added[0])
            return dotted_expr(".".join(added)).with_changes(lpar=updated.lpar, rpar=updated.rpar)
        if len(added) == 1 and is_builtin(added[0]) and shared == 0:
            return updated  # `x.np.float` is not numpy's float
        node = base
        for part in added:
            node = cst.Attribute(value=node, attr=cst.Name(part))
        middle = added[:-1]
        resolved = imported_names(self.get_metadata(QualifiedNameProvider, _strip(original, len(old) - shared), set()))
        if middle and resolved and all(part == part.lower() for part in middle):
            # `collections.Mapping` → `collections.abc.Mapping` needs `import collections.abc`
            AddImportsVisitor.add_needed_import(self.context, ".".join([min(resolved), *middle]))
        return node.with_changes(lpar=updated.lpar, rpar=updated.rpar)

    def _import_for_head(self, original: cst.Attribute, head: str) -> None:
        """Bind the new head name the way the old one was bound (``from M import h`` / ``import h``)."""
        if is_builtin(head):
            return
        root: cst.BaseExpression = original
        while isinstance(root, cst.Attribute):
            root = root.value
        for name in imported_names(self.get_metadata(QualifiedNameProvider, root, set())):
            module, _, _ = name.rpartition(".")
            if module:
                AddImportsVisitor.add_needed_import(self.context, module, head)
            else:
                AddImportsVisitor.add_needed_import(self.context, head)
            return


def _from_modules(module: cst.Module, name: str) -> set[str]:
    """X of every absolute ``from X import name`` (without ``as``) in the module."""
    found: set[str] = set()

    class Imports(cst.CSTVisitor):
        def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
            if not node.relative and node.module is not None and not isinstance(node.names, cst.ImportStar):
                if any(dotted(a.name) == name and not a.asname for a in node.names):
                    found.add(dotted(node.module) or "")
            return False

    module.visit(Imports())
    return found


def _strip(node: cst.Attribute, levels: int) -> cst.BaseExpression:
    """The receiver ``levels`` attributes down the chain (an original node, so metadata knows it)."""
    out: cst.BaseExpression = node
    for _ in range(levels):
        assert isinstance(out, cst.Attribute)
        out = out.value
    return out


def _rename(module: cst.Module, old: str, new: str, *, absolute: bool = False, arity: int | None = None,
            owner: str | None = None) -> cst.Module:
    context = CodemodContext()
    renamer = _Rename(context, old, new, absolute=absolute, arity=arity, owner=owner)
    changed = wrapped(module).visit(renamer)
    if not renamer.renamed:
        return module
    if not context.scratch.get(AddImportsVisitor.CONTEXT_KEY):
        return changed  # no import to add: skip a second pass over the tree
    return AddImportsVisitor(context).transform_module(changed)


@codemod("rename-attribute", required={"old": "dotted", "new": "dotted"},
         optional={"arity": "count", "owner": "dotted"}, needles=lambda params: [_last(params["old"])])
def rename_attribute(module: cst.Module, params: Params) -> cst.Module:
    arity, owner = params.get("arity"), params.get("owner")
    return _rename(module, str(params["old"]), str(params["new"]), arity=int(arity) if arity else None,
                   owner=str(owner) if owner else None)


class _MoveImport(cst.CSTTransformer):
    """``from module import a, name as x`` → ``from module import a`` + ``from new_module import name as x``."""

    def __init__(self, module: str, name: str, new_module: str, new_name: str | None) -> None:
        super().__init__()
        self.module, self.name, self.new_module, self.new_name = module, name, new_module, new_name

    def _moved(self, alias: cst.ImportAlias) -> cst.ImportAlias:
        alias = alias.with_changes(comma=cst.MaybeSentinel.DEFAULT)
        if self.new_name and self.new_name != self.name:
            return alias.with_changes(name=cst.Name(self.new_name),
                                      asname=alias.asname or cst.AsName(name=cst.Name(self.name)))
        return alias

    def leave_SimpleStatementLine(self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
                                  ) -> cst.SimpleStatementLine | cst.FlattenSentinel[cst.SimpleStatementLine]:
        body: list[cst.BaseSmallStatement] = []
        added: list[cst.ImportFrom] = []
        for statement in updated.body:
            if (isinstance(statement, cst.ImportFrom) and not statement.relative and statement.module is not None
                    and dotted(statement.module) == self.module and not isinstance(statement.names, cst.ImportStar)):
                names = list(statement.names)
                moved = [a for a in names if dotted(a.name) == self.name]
                if moved:
                    added.append(cst.ImportFrom(module=dotted_expr(self.new_module),
                                                names=[self._moved(a) for a in moved]))
                    kept = drop_items(names, lambda a: dotted(a.name) == self.name)
                    if not kept:
                        continue
                    statement = statement.with_changes(names=kept)
            body.append(statement)
        if not added:
            return updated
        if not body:  # the whole line moved: it keeps its comment and blank lines
            return updated.with_changes(body=[added[0]]) if len(added) == 1 else cst.FlattenSentinel(
                [updated.with_changes(body=[added[0]]), *(cst.SimpleStatementLine([a]) for a in added[1:])])
        if isinstance(body[-1], cst.BaseSmallStatement) and not isinstance(body[-1].semicolon, cst.MaybeSentinel):
            body[-1] = body[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
        return cst.FlattenSentinel([updated.with_changes(body=body), *(cst.SimpleStatementLine([a]) for a in added)])


@codemod("replace-import", required={"module": "dotted", "name": "identifier", "new_module": "dotted"},
         optional={"new_name": "identifier"},
         needles=lambda params: [str(params["module"]).split(".", 1)[0], str(params["name"])])
def replace_import(module: cst.Module, params: Params) -> cst.Module:
    name, new_name = str(params["name"]), params.get("new_name")
    moved = module.visit(_MoveImport(str(params["module"]), name, str(params["new_module"]),
                                     str(new_name) if new_name else None))
    # `import module` … `module.name` → `new_module.name`, importing new_module
    return _rename(moved, f"{params['module']}.{name}", f"{params['new_module']}.{new_name or name}", absolute=True)
