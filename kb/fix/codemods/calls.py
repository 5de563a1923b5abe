"""Codemods that edit the arguments of calls: ``drop-kwarg``, ``add-kwarg``, ``replace-kwarg-value``,
``positional-to-keyword``.

A call matches a pack's ``callable`` by qualified name (any import spelling) or, when its receiver
is not an import (``self.yaml.load``), by how its attribute chain ends (see core.refers_to).
Arguments keep their layout: commas, line breaks and comments of the other arguments stay.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import ClassVar

import libcst as cst
from libcst.metadata import ProviderT, QualifiedNameProvider

from .core import Params, append_item, calls_match, codemod, drop_items, wrapped

__all__: list[str] = []


def _last(name: object) -> str:
    return str(name).rsplit(".", 1)[-1]


class _Calls(cst.CSTTransformer):
    """Apply ``edit(call)`` to every call of ``callable`` (every call when it is None)."""

    # libcst's own declaration (an unannotated tuple here would make the subclass's () an error)
    METADATA_DEPENDENCIES: ClassVar[Collection[ProviderT]] = (QualifiedNameProvider,)

    def __init__(self, callable: str | None, edit: Callable[[cst.Call], cst.Call]) -> None:
        super().__init__()
        self.callable, self.edit = callable, edit

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if self.callable is not None and not calls_match(
                original, self.callable, lambda node: self.get_metadata(QualifiedNameProvider, node, set())):
            return updated
        return self.edit(updated)


def _edit_calls(module: cst.Module, callable: str | None, edit: Callable[[cst.Call], cst.Call]) -> cst.Module:
    if callable is None:
        class Plain(_Calls):
            METADATA_DEPENDENCIES = ()

        return module.visit(Plain(None, edit))
    return wrapped(module).visit(_Calls(callable, edit))


def _keyword(arg: cst.Arg) -> str | None:
    return arg.keyword.value if arg.keyword is not None else None


@codemod("drop-kwarg", required={"callable": "dotted", "param": "identifier"},
         needles=lambda params: [str(params["param"]), _last(params["callable"])])
def drop_kwarg(module: cst.Module, params: Params) -> cst.Module:
    param = str(params["param"])

    def edit(call: cst.Call) -> cst.Call:
        if not any(_keyword(a) == param for a in call.args):
            return call
        args = drop_items(call.args, lambda a: _keyword(a) == param)
        if not args:  # `Lock(\n    loop=loop,\n)` → `Lock()`
            return call.with_changes(args=[], whitespace_before_args=cst.SimpleWhitespace(""))
        return call.with_changes(args=args)

    return _edit_calls(module, str(params["callable"]), edit)


def _positional(call: cst.Call) -> list[cst.Arg]:
    return [a for a in call.args if a.keyword is None and not a.star]


@codemod("add-kwarg", required={"callable": "dotted", "param": "identifier", "value": "literal"},
         optional={"position": "index"}, needles=lambda params: [_last(params["callable"])])
def add_kwarg(module: cst.Module, params: Params) -> cst.Module:
    """``position`` (default 1): where the parameter may already be passed positionally — a call with
    more positional arguments than that is left alone (``yaml.load(f, Loader)``)."""
    param, value = str(params["param"]), cst.parse_expression(str(params["value"]))
    position = int(params.get("position", 1))

    def edit(call: cst.Call) -> cst.Call:
        if any(_keyword(a) == param or a.star for a in call.args) or len(_positional(call)) > position:
            return call
        arg = cst.Arg(value=value, keyword=cst.Name(param),
                      equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        return call.with_changes(args=append_item(call.args, arg, call.whitespace_before_args))

    return _edit_calls(module, str(params["callable"]), edit)


@codemod("replace-kwarg-value", required={"param": "identifier", "old": "text", "new": "text"},
         optional={"callable": "dotted"}, needles=lambda params: [str(params["param"]), str(params["old"])])
def replace_kwarg_value(module: cst.Module, params: Params) -> cst.Module:
    """``param='old'`` → ``param='new'``: only a plain string literal, its prefix and quotes kept."""
    param, old, new = str(params["param"]), str(params["old"]), str(params["new"])

    def edit(call: cst.Call) -> cst.Call:
        args = list(call.args)
        for n, arg in enumerate(args):
            value = arg.value
            if (_keyword(arg) == param and isinstance(value, cst.SimpleString) and "b" not in value.prefix.lower()
                    and value.evaluated_value == old):
                args[n] = arg.with_changes(value=value.with_changes(
                    value=f"{value.prefix}{value.quote}{new}{value.quote}"))
        return call.with_changes(args=args)

    callable = params.get("callable")
    return _edit_calls(module, str(callable) if callable else None, edit)


@codemod("positional-to-keyword", required={"callable": "dotted", "position": "index", "param": "identifier"},
         needles=lambda params: [_last(params["callable"])])
def positional_to_keyword(module: cst.Module, params: Params) -> cst.Module:
    """``f(a, b)`` → ``f(a, param=b)`` for the positional argument at ``position`` — only when it is
    the last positional one (a positional argument may not follow a keyword) and no ``*args`` come before it."""
    param, position = str(params["param"]), int(params["position"])

    def edit(call: cst.Call) -> cst.Call:
        args = list(call.args)
        if any(_keyword(a) == param for a in args):
            return call
        leading = args[:position + 1]
        if len(leading) <= position or any(a.keyword is not None or a.star for a in leading):
            return call
        if any(a.keyword is None and not a.star for a in args[position + 1:]) or any(a.star == "*" for a in args):
            return call
        args[position] = args[position].with_changes(
            keyword=cst.Name(param), equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        return call.with_changes(args=args)

    return _edit_calls(module, str(params["callable"]), edit)
