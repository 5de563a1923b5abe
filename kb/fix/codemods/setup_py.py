"""setup.py requirements through the syntax tree: the string literals given to ``setup()`` as
``install_requires=``/``tests_require=``/``setup_requires=`` and in ``extras_require=``, directly
or through a module-level name bound to the literal. setup.py is never executed."""

from __future__ import annotations

from collections.abc import Callable

import libcst as cst

from .core import append_item, dotted

__all__ = ["requirement_lists", "edit_strings", "append_requirement"]

REQUIREMENT_KEYWORDS = ("install_requires", "tests_require", "setup_requires")
_SETUP = {"setup", "setuptools.setup", "distutils.core.setup"}


def _bindings(module: cst.Module) -> dict[str, cst.BaseExpression]:
    """Module-level ``name = <literal>`` (the last one wins)."""
    out: dict[str, cst.BaseExpression] = {}
    for statement in module.body:
        if isinstance(statement, cst.SimpleStatementLine):
            for small in statement.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target,
                                                                                           cst.Name):
                    out[small.targets[0].target.value] = small.value
                elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) and small.value:
                    out[small.target.value] = small.value
    return out


def _setup_keywords(module: cst.Module) -> dict[str, cst.BaseExpression]:
    found: dict[str, cst.BaseExpression] = {}

    class Calls(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            if dotted(node.func) in _SETUP:
                found.update((a.keyword.value, a.value) for a in node.args if a.keyword is not None)

    module.visit(Calls())
    bound = _bindings(module)
    return {k: bound.get(v.value, v) if isinstance(v, cst.Name) else v for k, v in found.items()}


def requirement_lists(module: cst.Module) -> dict[tuple[str, str | None], cst.List | cst.Tuple]:
    """(keyword, extra) → the list literal of requirements (given directly or through a module-level
    name); extra is None outside extras_require."""
    keywords = _setup_keywords(module)
    bound = _bindings(module)
    out: dict[tuple[str, str | None], cst.List | cst.Tuple] = {}
    for keyword in REQUIREMENT_KEYWORDS:
        value = keywords.get(keyword)
        if isinstance(value, cst.List | cst.Tuple):
            out[keyword, None] = value
    extras = keywords.get("extras_require")
    if isinstance(extras, cst.Dict):
        for element in extras.elements:
            if not (isinstance(element, cst.DictElement) and isinstance(element.key, cst.SimpleString)):
                continue
            value = bound.get(element.value.value, element.value) if isinstance(element.value, cst.Name) \
                else element.value
            if isinstance(value, cst.List | cst.Tuple) and isinstance(element.key.evaluated_value, str):
                out["extras_require", element.key.evaluated_value] = value
    return out


def _literal(text: str, like: cst.SimpleString | None) -> str:
    """``text`` as a string literal in the quote style of ``like`` (double quotes without one)."""
    prefix = like.prefix if like is not None else ""
    quote = like.quote if like is not None else '"'
    if "r" in prefix.lower() and any(c in text for c in (quote[0], "\\", "\n")):
        prefix = prefix.lower().replace("r", "")  # a raw literal cannot hold it: escape instead
    if "r" not in prefix.lower():
        text = text.replace("\\", "\\\\").replace(quote[0], "\\" + quote[0])
        if len(quote) == 1:
            text = text.replace("\n", "\\n").replace("\r", "\\r")
    return f"{prefix}{quote}{text}{quote}"


def _strings(lists: list[cst.List | cst.Tuple]) -> list[cst.SimpleString]:
    return [e.value for seq in lists for e in seq.elements
            if isinstance(e, cst.Element) and isinstance(e.value, cst.SimpleString)
            and "b" not in e.value.prefix.lower()
            and isinstance(e.value.evaluated_value, str)]


def edit_strings(module: cst.Module, edit: Callable[[str], str | None]) -> cst.Module:
    targets = {id(s): s for s in _strings(list(requirement_lists(module).values()))}

    class Replace(cst.CSTTransformer):
        def leave_SimpleString(self, original: cst.SimpleString, updated: cst.SimpleString) -> cst.SimpleString:
            if id(original) not in targets:
                return updated
            text = original.evaluated_value
            assert isinstance(text, str)
            new = edit(text)
            return updated if new is None or new == text else updated.with_changes(value=_literal(new, original))

    return module.visit(Replace()) if targets else module


def append_requirement(module: cst.Module, requirement: str, keyword: str, extra: str | None) -> cst.Module | None:
    lists = requirement_lists(module)
    found = lists.get((keyword, extra))
    if found is None and extra is not None and "extras_require" not in _setup_keywords(module):
        return _add_extras(module, requirement, extra)
    if not isinstance(found, cst.List) or sum(seq is found for seq in lists.values()) > 1:
        return None  # not a list literal, or one shared with another keyword (the edit would reach both)
    strings = _strings([found])
    element = cst.Element(cst.SimpleString(_literal(requirement, strings[0] if strings else None)))
    elements, closing = list(found.elements), found.rbracket.whitespace_before
    if (elements and isinstance(elements[-1].comma, cst.Comma) and isinstance(closing, cst.ParenthesizedWhitespace)
            and isinstance(elements[-1].comma.whitespace_after, cst.SimpleWhitespace)
            and not elements[-1].comma.whitespace_after.value):
        # LibCST keeps the line break (and comment) after a trailing comma with the bracket; the comma
        # takes it, so the new item goes on the next line and the comment stays with its item
        elements[-1] = elements[-1].with_changes(comma=elements[-1].comma.with_changes(whitespace_after=closing))
        closing = cst.SimpleWhitespace("")
    new = found.with_changes(elements=append_item(elements, element, found.lbracket.whitespace_after),
                             rbracket=found.rbracket.with_changes(whitespace_before=closing))

    class Replace(cst.CSTTransformer):
        def leave_List(self, original: cst.List, updated: cst.List) -> cst.List:
            return new if original is found else updated

    return module.visit(Replace())


def _add_extras(module: cst.Module, requirement: str, extra: str) -> cst.Module | None:
    """``setup(...)`` without ``extras_require=`` gets ``extras_require={"<extra>": ["<requirement>"]}`` as its
    last argument, in the call's layout (None: there is no single setup() call)."""
    calls: list[cst.Call] = []

    class Calls(cst.CSTVisitor):
        def visit_Call(self, node: cst.Call) -> None:
            if dotted(node.func) in _SETUP:
                calls.append(node)

    module.visit(Calls())
    if len(calls) != 1 or any(a.star for a in calls[0].args):
        return None
    call = calls[0]
    like = next((s for s in _strings(list(requirement_lists(module).values()))), None)
    value = cst.parse_expression(f"{{{_literal(extra, like)}: [{_literal(requirement, like)}]}}")
    arg = cst.Arg(value=value, keyword=cst.Name("extras_require"),
                  equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                        whitespace_after=cst.SimpleWhitespace("")))
    new = call.with_changes(args=append_item(list(call.args), arg, call.whitespace_before_args))

    class Replace(cst.CSTTransformer):
        def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
            return new if original is call else updated

    return module.visit(Replace())
