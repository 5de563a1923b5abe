"""Source edits as LibCST codemods: the fix templates that change Python code, quarantine marks,
kb isolate's fixtures and setup.py requirements.

Each template is one registered function (``@codemod`` in ``names``, ``calls``,
``methods``) that walks the concrete syntax tree, so aliases, attribute receivers and calls
split over lines are found by construction, formatting and comments are kept, and strings and
comments are never edited. This module is the public face; LibCST is imported only in this package
(the one place kb rewrites Python source).

Pack parameters are data from possibly shared packs: ``check_params`` admits names and plain
literals only, never code.
"""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any

import libcst as cst

from ...errors import FixError
from . import calls, isolation, methods, names, setup_py  # noqa: F401  (they register)
from .core import REGISTRY
from .isolation import Setting, is_attribute, is_dotted, is_env_name, is_identifier, literal_text, safe_text
from .prefilter import may_change

__all__ = ["CODEMODS", "needles", "check_params", "transform", "quarantine", "Setting", "isolation_fixture",
           "is_attribute", "is_dotted", "is_env_name", "is_identifier", "literal_text", "safe_text",
           "edit_setup_requirements",
           "add_setup_requirement"]

#: fix templates served by codemods; ``quarantine`` is valid in packs but applied through quarantine()
CODEMODS: frozenset[str] = frozenset([*REGISTRY, "quarantine"])

_QUARANTINE = {"days": "count", "reason": "any", "until": "date"}


def _identifier(text: str) -> bool:
    return text.isidentifier() and not keyword.iskeyword(text) and text.isascii()


def _dotted(text: str) -> bool:
    return all(_identifier(part) for part in text.split("."))


def _literal(text: str) -> bool:
    """A dotted name or a plain literal: number, string, True/False/None (a sign allowed on a number)."""
    if _dotted(text):
        return True
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return False
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        node = node.operand
        return isinstance(node, ast.Constant) and isinstance(node.value, int | float | complex)
    return isinstance(node, ast.Constant) and not isinstance(node.value, bytes | type(Ellipsis))


_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dotted": (lambda v: isinstance(v, str) and _dotted(v), "a dotted Python name"),
    "identifier": (lambda v: isinstance(v, str) and _identifier(v), "a Python identifier"),
    "identifiers": (lambda v: (isinstance(v, str) and all(_identifier(x.strip()) for x in v.split(","))) or (
        isinstance(v, list) and bool(v) and all(isinstance(x, str) and _identifier(x) for x in v)),
        "a Python identifier, comma-separated identifiers or a list of them"),
    "bases": (lambda v: isinstance(v, str) and all(_dotted(b.strip()) for b in v.split(",") if b.strip()),
              "comma-separated class names"),
    "literal": (lambda v: isinstance(v, str) and _literal(v), "a dotted name or a plain literal (number, string, "
                                                              "True/False/None)"),
    "text": (lambda v: isinstance(v, str) and v != "" and not re.search(r"[\"'\\\r\n]", v),
             "plain text without quotes, backslashes or line breaks"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer"),
    "index": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a non-negative integer"),
    "date": (lambda v: isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) is not None, "a YYYY-MM-DD date"),
    "any": (lambda v: isinstance(v, str | int | float), "a plain value"),
}


def check_params(template: str, params: Mapping[str, Any]) -> None:
    """FixError (one sentence) unless ``params`` are what ``template`` needs: names are dotted Python
    identifiers, ``value`` a dotted name or plain literal — never code (a shared pack cannot inject any)."""
    if template == "quarantine":
        required: Mapping[str, str] = {}
        optional: Mapping[str, str] = _QUARANTINE
    elif template in REGISTRY:
        required, optional = REGISTRY[template].required, REGISTRY[template].optional
    else:
        raise FixError(f"fix template {template!r} is not a codemod (have: {', '.join(sorted(CODEMODS))})")
    for name in required:
        if params.get(name) in (None, ""):
            raise FixError(f"fix template {template!r} needs the parameter {name!r}")
    for name, kind in {**required, **optional}.items():
        value = params.get(name)
        if value is None:
            continue
        check, what = _KINDS[kind]
        if not check(value):
            raise FixError(f"fix template {template!r}: parameter {name!r} must be {what}, not {str(value)[:80]!r}")


def needles(template: str, params: Mapping[str, Any]) -> list[str]:
    """Substrings that must all occur in a file's text before ``template`` can change it (a cheap
    filter before parsing); never excludes a file the codemod would change."""
    if template == "quarantine":
        return ["def"]
    if template not in REGISTRY:
        raise FixError(f"fix template {template!r} is not a codemod (have: {', '.join(sorted(CODEMODS))})")
    return [n for n in REGISTRY[template].needles(params) if n]


@lru_cache(maxsize=16)
def _parse(source: str) -> cst.Module | None:
    """The module of ``source`` (cached: every cause of a plan starts from the same original text)."""
    try:
        return cst.parse_module(source)
    except (cst.ParserSyntaxError, RecursionError, ValueError):
        return None


def transform(template: str, params: Mapping[str, Any], source: str) -> str:
    """The module's new source text, or ``source`` itself when nothing applies or it does not parse."""
    check_params(template, params)
    if template == "quarantine":
        raise FixError("fix template 'quarantine' is applied through kb.fix.codemods.quarantine(), not transform()")
    if not all(needle in source for needle in needles(template, params)) or not may_change(template, params, source):
        return source
    module = _parse(source)
    if module is None:
        return source
    return REGISTRY[template].run(module, params).code


def quarantine(source: str, tests: Collection[str], until: str, reason: str) -> str:
    """``@pytest.mark.xfail(<until-date condition>, reason=..., strict=False)`` above each named test
    (``test_x`` or ``Class::test_x``) that has no xfail mark yet, and ``import pytest`` when missing.
    The condition compares today's ISO date with ``until``, so the mark lapses by itself on that day."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", until):
        raise FixError(f"quarantine: until must be a YYYY-MM-DD date, not {until!r}")
    module = _parse(source) if "def" in source else None
    if module is None:
        return source
    return methods.quarantine(module, tests, until, reason).code


def isolation_fixture(source: str, name: str, doc: str, settings: Sequence[Setting], only: str | None = None) -> str:
    """``source`` with an autouse fixture ``name`` appended that sets each of ``settings`` through
    monkeypatch (see codemods.isolation) for the test ``only`` (all of the module's when None), and
    ``import pytest`` when missing; ``source`` itself when it
    does not parse, already defines ``name`` or nothing is to be set. FixError for a name or value that is
    not a plain name or literal. The result is parsed again before it is returned."""
    module = _parse(source)
    if module is None:
        return source
    code = isolation.fixture(module, name, doc, settings, only).code
    if code != source and _parse(code) is None:
        raise FixError(f"isolation fixture {name}: the edited module does not parse")
    return code


def edit_setup_requirements(source: str, edit: Callable[[str], str | None]) -> str:
    """setup.py with ``edit(text)`` applied to every requirement string given to setup() (see
    setup_py); None from ``edit`` leaves a literal as it is. The quote style is kept."""
    module = _parse(source)
    if module is None:
        return source
    return setup_py.edit_strings(module, edit).code


def add_setup_requirement(source: str, requirement: str, *, keyword: str = "install_requires",
                          extra: str | None = None) -> str | None:
    """setup.py with ``requirement`` appended to setup()'s ``keyword`` list (``extras_require[extra]``
    with ``extra``) in the list's own layout; None when that list is not a literal kb can edit."""
    module = _parse(source)
    if module is None:
        return None
    changed = setup_py.append_requirement(module, requirement, "extras_require" if extra else keyword, extra)
    return None if changed is None else changed.code
