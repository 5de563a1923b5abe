"""What the codemods share: the registry, how a dotted name is matched, comma-keeping list edits.

Part of the :mod:`kb.fix.codemods` family, the only modules that import LibCST.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import libcst as cst
from libcst.metadata import MetadataWrapper, QualifiedName, QualifiedNameSource

__all__ = ["Codemod", "REGISTRY", "codemod", "ALIASES", "spellings", "canonical", "dotted", "tail", "refers_to",
           "imported_names", "dotted_expr", "drop_items", "append_item", "calls_match", "is_builtin"]

#: conventional import aliases: a qualified name is found under either spelling (np.bool, numpy.bool)
ALIASES = {"np": "numpy", "pd": "pandas"}

Params = Mapping[str, Any]


@dataclass(frozen=True)
class Codemod:
    """One registered source edit: the kinds of its parameters (see codemods.check_params), the
    substrings a file must contain before it can apply, and the edit of a parsed module."""

    name: str
    run: Callable[[cst.Module, Params], cst.Module]
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    needles: Callable[[Params], list[str]] = lambda params: []


REGISTRY: dict[str, Codemod] = {}


def codemod(name: str, *, required: dict[str, str], optional: dict[str, str] | None = None,
            needles: Callable[[Params], list[str]]) -> Callable[[Callable[[cst.Module, Params], cst.Module]],
                                                                  Callable[[cst.Module, Params], cst.Module]]:
    """Register ``run(module, params) -> module`` as the codemod serving fix template ``name``."""

    def register(run: Callable[[cst.Module, Params], cst.Module]) -> Callable[[cst.Module, Params], cst.Module]:
        REGISTRY[name] = Codemod(name, run, required, optional or {}, needles)
        return run

    return register


def canonical(name: str) -> str:
    head, dot, rest = name.partition(".")
    return ALIASES.get(head, head) + dot + rest


def spellings(name: str) -> set[str]:
    """``np.float`` → {np.float, numpy.float}; ``numpy.float`` → the same; other names → themselves."""
    head, dot, rest = name.partition(".")
    out = {name, canonical(name)}
    out.update(alias + dot + rest for alias, module in ALIASES.items() if module == head)
    return out


def is_builtin(name: str) -> bool:
    return "." not in name and hasattr(builtins, name)


def dotted(node: cst.CSTNode) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, None for anything else (a call, a subscript)."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def tail(node: cst.BaseExpression) -> list[str]:
    """The attribute names a chain ends with, whatever its receiver: ``foo().yaml.load`` → [yaml, load]."""
    names: list[str] = []
    while isinstance(node, cst.Attribute):
        names.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        names.append(node.value)
    return names[::-1]


def imported_names(qnames: Collection[QualifiedName]) -> set[str]:
    return {q.name for q in qnames if q.source is QualifiedNameSource.IMPORT}


def refers_to(node: cst.BaseExpression, target: str, qnames: Collection[QualifiedName]) -> bool:
    """Whether ``node`` names ``target`` (a pack's dotted name, e.g. ``asyncio.Lock``, ``np.float``,
    ``Image.ANTIALIAS``, ``MetaData``).

    When the chain resolves through an import, its qualified name decides: equal to the target or
    ending with it (``PIL.Image.ANTIALIAS`` for ``Image.ANTIALIAS``), so ``janus.Queue`` is not
    ``asyncio.Queue``. Otherwise (``self.yaml.load``, a name never imported) the syntactic chain must
    end with the target.
    """
    targets = spellings(target)
    resolved = imported_names(qnames)
    if resolved:
        return any(q == t or q.endswith("." + t) for q in resolved for t in targets)
    names = tail(node)
    return any(names[-len(t.split(".")):] == t.split(".") for t in targets)


def calls_match(call: cst.Call, target: str, qnames: Callable[[cst.CSTNode], Collection[QualifiedName]]) -> bool:
    return isinstance(call.func, (cst.Name, cst.Attribute)) and refers_to(call.func, target, qnames(call.func))


def dotted_expr(name: str) -> cst.Attribute | cst.Name:
    """The expression for a dotted name (validated by check_params before it gets here)."""
    head, *rest = name.split(".")
    node: cst.Attribute | cst.Name = cst.Name(head)
    for part in rest:
        node = cst.Attribute(value=node, attr=cst.Name(part))
    return node


T = TypeVar("T", cst.Arg, cst.Element, cst.ImportAlias)


def drop_items(items: Sequence[T], drop: Callable[[T], bool]) -> list[T]:
    """``items`` without the dropped ones, commas fixed: the new last item takes the trailing comma
    (and, for arguments, the whitespace before the closing bracket) of the old last one."""
    kept = [item for item in items if not drop(item)]
    if kept and items and kept[-1] is not items[-1]:
        last = items[-1]
        changes: dict[str, Any] = {"comma": _keep_comment(kept[-1].comma, last.comma)}
        if isinstance(last, cst.Arg):
            changes["whitespace_after_arg"] = last.whitespace_after_arg
        kept[-1] = kept[-1].with_changes(**changes)
    return kept


def _keep_comment(own: Any, taken: Any) -> Any:
    """The separator ``taken`` from a dropped last item, with the comment the new last item had on its line
    (``OrderedDict,  # why`` keeps ``# why`` when the ``Mapping,`` after it goes)."""
    mine = own.whitespace_after if isinstance(own, cst.Comma) else None
    if not (isinstance(mine, cst.ParenthesizedWhitespace) and mine.first_line.comment):
        return taken
    theirs = taken.whitespace_after if isinstance(taken, cst.Comma) else None
    if isinstance(theirs, cst.ParenthesizedWhitespace):
        return taken.with_changes(whitespace_after=theirs.with_changes(first_line=mine.first_line))
    # the dropped item had no comma: the bracket follows on the next line, as it did after the dropped item
    return own.with_changes(whitespace_after=mine.with_changes(last_line=cst.SimpleWhitespace("")))


def _plain(whitespace: cst.BaseParenthesizableWhitespace) -> cst.BaseParenthesizableWhitespace:
    """The same whitespace without a comment on its first line (a copied separator must not copy a comment)."""
    if isinstance(whitespace, cst.ParenthesizedWhitespace) and whitespace.first_line.comment:
        return whitespace.with_changes(first_line=cst.TrailingWhitespace(newline=whitespace.first_line.newline),
                                       empty_lines=[])
    return whitespace


def append_item(items: Sequence[T], item: T, opening: cst.BaseParenthesizableWhitespace) -> list[T]:
    """``items`` plus ``item`` at the end in the list's own layout: one-per-line lists get a new line with
    the same indentation, a trailing comma stays trailing, a comment stays on its line. ``opening`` is
    the whitespace after the opening bracket (where a one-item multi-line list keeps its indentation)."""
    if not items:
        return [item]
    last = items[-1]
    previous = items[-2].comma if len(items) > 1 else None
    if isinstance(previous, cst.Comma):
        sep = previous.with_changes(whitespace_after=_plain(previous.whitespace_after))
    elif isinstance(opening, cst.ParenthesizedWhitespace):
        sep = cst.Comma(whitespace_after=_plain(opening))
    else:
        sep = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    own = last.comma.whitespace_after if isinstance(last.comma, cst.Comma) else None
    if isinstance(own, cst.ParenthesizedWhitespace) and isinstance(last.comma, cst.Comma):
        # `b,  # why⏎]`: b keeps its comma and comment, the new item takes the line break to the bracket
        indent = sep.whitespace_after.last_line if isinstance(sep.whitespace_after, cst.ParenthesizedWhitespace) \
            else own.last_line
        sep = last.comma.with_changes(whitespace_after=own.with_changes(last_line=indent))
        item = item.with_changes(comma=last.comma.with_changes(whitespace_after=_plain(own)))
    else:
        item = item.with_changes(comma=last.comma)
    changes: dict[str, Any] = {"comma": sep}
    if isinstance(last, cst.Arg) and isinstance(item, cst.Arg):
        item = item.with_changes(whitespace_after_arg=last.whitespace_after_arg)
        changes["whitespace_after_arg"] = cst.SimpleWhitespace("")
    # not [*items[:-1], ...]: mypy rejects a starred item of a constrained TypeVar's sequence (list-item)
    return list(items[:-1]) + [last.with_changes(**changes), item]


#: the last modules' metadata (scope analysis is most of a codemod's cost): the causes of one plan are each
#: planned on the same original source, so its parse and metadata serve them all
_WRAPPERS: dict[int, tuple[cst.Module, MetadataWrapper]] = {}


def wrapped(module: cst.Module) -> MetadataWrapper:
    """A metadata wrapper of ``module`` itself (no copy), shared by the codemods that visit it."""
    hit = _WRAPPERS.get(id(module))
    if hit is not None and hit[0] is module:
        return hit[1]
    if len(_WRAPPERS) >= 16:
        _WRAPPERS.clear()
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    _WRAPPERS[id(module)] = (module, wrapper)
    return wrapper
