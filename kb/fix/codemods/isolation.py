"""The isolation fixture: an autouse pytest fixture appended to a test module that sets the module globals
and environment variables an order-dependent test needs (what a polluter changed, put back; or what a
setter provided, provided). Globals are assigned (what the test itself then changes stays, as in an order
where it passed); environment variables go through ``monkeypatch``, which restores them after the test.
It acts for the victim only (``request.node.name``): the module's other tests may rely on that state as
their neighbours leave it (a brittle test whose setter is the polluter — measured on pydash's
``test_unique_id``, where a module-wide reset broke the next case).

Only names and literals reach the code: module names are dotted Python names, attribute and environment
variable names identifiers, values the ``repr`` of a Python literal (checked again here, whatever the
caller did), and the docstring is printable ASCII without quotes or backslashes.
"""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from ...errors import FixError

__all__ = ["Setting", "fixture", "is_identifier", "is_attribute", "is_dotted", "is_env_name", "literal_text",
           "safe_text"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED = {"monkeypatch", "request"}  # an import of that name would hide the fixture's own argument


@dataclass(frozen=True)
class Setting:
    """One thing the fixture sets before each test: the global ``module.name``, or with no ``module`` the
    environment variable ``name``; ``present`` False deletes it instead."""

    module: str | None
    name: str
    value: object = None
    present: bool = True


def is_identifier(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and _IDENTIFIER.fullmatch(text) is not None and not keyword.iskeyword(text)


def is_dotted(text: object) -> TypeGuard[str]:
    """A module name kb may import: dotted identifiers, not ``monkeypatch`` (it would hide the fixture's argument)."""
    return (isinstance(text, str) and all(is_identifier(part) for part in text.split("."))
            and text.split(".")[0] not in _RESERVED)


def is_attribute(text: object) -> TypeGuard[str]:
    """A module global (``NAME``) or a class attribute of the module (``Class.NAME``)."""
    return isinstance(text, str) and 1 <= len(text.split(".")) <= 2 and all(is_identifier(p) for p in text.split("."))


def is_env_name(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and _IDENTIFIER.fullmatch(text) is not None


def literal_text(value: object) -> str | None:
    """``repr(value)`` when it reads back as a Python literal with the same value, else None."""
    try:
        text = repr(value)
        return text if ast.literal_eval(text) == value else None
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def safe_text(text: str, limit: int = 300) -> str:
    """``text`` as printable ASCII with no quote, backslash or line break (each becomes ``?``): safe
    inside a triple-quoted docstring."""
    return "".join(c if " " <= c <= "~" and c not in "\"\\" else "?" for c in text[:limit])


def _line(setting: Setting) -> tuple[str | None, str]:
    """(the module to import or None, the monkeypatch call) for one setting."""
    name = f'"{setting.name}"'  # checked below: a plain name, no quote inside
    if setting.module is None:
        if not is_env_name(setting.name):
            raise FixError(f"isolation fixture: {safe_text(setting.name, 80)!r} is not an environment variable name")
        if not setting.present:
            return None, f"monkeypatch.delenv({name}, raising=False)"
        if not isinstance(setting.value, str):
            raise FixError(f"isolation fixture: the environment variable {setting.name} needs a string value")
        return None, f"monkeypatch.setenv({name}, {setting.value!r})"
    if not is_dotted(setting.module) or not is_attribute(setting.name):
        raise FixError(f"isolation fixture: {safe_text(f'{setting.module}.{setting.name}', 80)!r} is not a module "
                       f"global kb can set")
    if not setting.present:
        owner, _, attr = f"{setting.module}.{setting.name}".rpartition(".")
        return setting.module, f'monkeypatch.delattr({owner}, "{attr}", raising=False)'
    value = literal_text(setting.value)
    if value is None:
        raise FixError(f"isolation fixture: the value of {setting.module}.{setting.name} is not a Python literal")
    # a plain assignment, not monkeypatch.setattr: the victim starts from the value a fresh import gives, and
    # what it changes itself stays, as in the order where it passed (monkeypatch's undo also undid the victim's
    # own increment of pydash's ID_COUNTER, which the next case of that real test relies on)
    return setting.module, f"{setting.module}.{setting.name} = {value}"


def _defines(module: cst.Module, name: str) -> bool:
    return any(isinstance(s, cst.FunctionDef) and s.name.value == name for s in module.body)


def fixture(module: cst.Module, name: str, doc: str, settings: Sequence[Setting], only: str | None = None
            ) -> cst.Module:
    """``module`` with the fixture ``name`` appended (and ``import pytest`` when missing); unchanged when it
    already defines ``name`` or there is nothing to set. ``only``: the test (its node name, parameters
    included) the fixture acts for; the others return at once."""
    if not is_identifier(name):
        raise FixError(f"isolation fixture: {safe_text(name, 80)!r} is not a function name")
    if not settings or _defines(module, name):
        return module
    lines = [_line(s) for s in settings]
    imports = list(dict.fromkeys(m for m, _ in lines if m))
    imports = [m for m in imports if not any(other.startswith(m + ".") for other in imports)]  # `import a.b` binds a
    indent, newline = module.default_indent, module.default_newline
    guard = [f"if request.node.name != {only!r}:", f"{indent}return"] if only is not None else []
    body = [f'"""{safe_text(doc, 1000)}"""', *guard, *(f"import {m}" for m in imports), *([""] if imports else []),
            *(call for _, call in lines)]
    arguments = "request, monkeypatch" if only is not None else "monkeypatch"
    text = newline.join(["@pytest.fixture(autouse=True)", f"def {name}({arguments}):",
                         *(indent + b if b else "" for b in body)]) + newline
    added = cst.parse_module(text, config=module.config_for_parsing).body
    blank = [cst.EmptyLine(), cst.EmptyLine()] if module.body else []
    first = added[0]
    if isinstance(first, cst.FunctionDef):
        added = [first.with_changes(leading_lines=blank), *added[1:]]
    changed = module.with_changes(body=[*module.body, *added])
    context = CodemodContext()
    AddImportsVisitor.add_needed_import(context, "pytest")
    return AddImportsVisitor(context).transform_module(changed)
