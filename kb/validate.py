"""JSON Schema validation of every document kb writes or loads — the only jsonschema importer.

Schemas live in the ``kb.schemas`` package (``schemas/*.schema.json`` in the source tree).
Validators are built once per (schema, $defs entry) and cached.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from .errors import KbError

__all__ = ["load_schema", "validate", "errors", "numbers"]

#: JSON's safe integers: beyond them readers lose precision
MAX_SAFE_INT = 2**53


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``schemas/<name>.schema.json``."""
    text = resources.files("kb.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


#: an array's item schema kb's documents use most (test ids, sources, names)
_STRINGS = {"type": "string"}


def _items(original: Any) -> Any:
    """jsonschema's ``items`` keyword with a fast first look: items of ``{"type": "string"}`` that are all
    strings have nothing to report, so they are not visited one by one (a diagnosis lists every test it
    explains: 20,000 ids cost 45 ms that way); anything else goes through the keyword as it is."""

    def items(validator: Any, item_schema: Any, instance: Any, schema: Any) -> Any:
        if item_schema == _STRINGS and isinstance(instance, list) and all(isinstance(i, str) for i in instance):
            return
        yield from original(validator, item_schema, instance, schema)

    return items


#: allOf lists already looked at, by id: (the list itself, its cases or None)
_SEEN_ALL_OF: dict[int, tuple[list[Any], tuple[str, dict[str, list[tuple[int, Any]]]] | None]] = {}


def _cases(subschemas: list[Any]) -> tuple[str, dict[str, list[tuple[int, Any]]]] | None:
    """``(key, {constant: [(index, subschema), ...]})`` when every subschema of an allOf is one case of a
    switch on a key — ``{"if": {"required": [key], "properties": {key: {"const": "..."}}}, "then": ...}``,
    one key, string constants — as a pack remedy's ``params`` are typed per ``template``; else None."""
    key: str | None = None
    table: dict[str, list[tuple[int, Any]]] = {}
    for index, sub in enumerate(subschemas):
        if not isinstance(sub, dict) or set(sub) != {"if", "then"}:
            return None
        cond = sub["if"]
        if not isinstance(cond, dict) or set(cond) != {"required", "properties"}:
            return None
        required, properties = cond["required"], cond["properties"]
        if not (isinstance(required, list) and len(required) == 1 and isinstance(properties, dict)
                and list(properties) == required):
            return None
        constant = properties[required[0]]
        if not (isinstance(constant, dict) and set(constant) == {"const"} and isinstance(constant["const"], str)):
            return None
        if key is None:
            key = required[0]
        elif key != required[0]:
            return None
        table.setdefault(constant["const"], []).append((index, sub))
    return (key, table) if key is not None else None


def _all_of(original: Any) -> Any:
    """jsonschema's ``allOf`` keyword, going straight to the case that applies when the list is a switch on a
    key (:func:`_cases`) and the instance an object: the ``if`` of every other case fails (the key is missing
    or holds another value, and only a string equals a string constant), so it can report nothing. The case
    that applies is descended into as the keyword would (its ``if``, then its ``then``): the same errors, at
    the same paths. A pack remedy's ``params`` are typed by 11 such cases: checking all of them was about
    half of a pack's validation. Any other allOf, or instance, goes through the keyword as it is."""

    def all_of(validator: Any, subschemas: Any, instance: Any, schema: Any) -> Any:
        if isinstance(instance, dict) and isinstance(subschemas, list):
            seen = _SEEN_ALL_OF.get(id(subschemas))
            if seen is None or seen[0] is not subschemas:
                seen = _SEEN_ALL_OF[id(subschemas)] = (subschemas, _cases(subschemas))
            cases = seen[1]
            if cases is not None:
                key, table = cases
                value = instance.get(key)
                for index, sub in table.get(value, ()) if isinstance(value, str) else ():
                    yield from validator.descend(instance, sub, schema_path=index)
                return
        yield from original(validator, subschemas, instance, schema)

    return all_of


@lru_cache(maxsize=None)
def _validator(name: str, definition: str | None) -> Any:
    schema = load_schema(name)
    if definition:
        schema = {**schema, "$ref": f"#/$defs/{definition}"}
        schema = {k: v for k, v in schema.items() if k not in ("required", "properties", "type", "additionalProperties")}
    cls = jsonschema.validators.validator_for(schema)
    # "integer" means a Python int: JSON Schema counts 1.0 as one, the code reading the value does not
    strict = jsonschema.validators.extend(cls, validators={"items": _items(cls.VALIDATORS["items"]),
                                                           "allOf": _all_of(cls.VALIDATORS["allOf"])},
                                          type_checker=cls.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)))
    return strict(schema, format_checker=None)


def numbers(doc: Any, *, max_int: int = MAX_SAFE_INT) -> list[tuple[str, str]]:
    """NaN, infinities and integers beyond ±``max_int`` as (path, reason): JSON Schema's ``minimum``
    and ``maximum`` do not catch them (every comparison with NaN is false) and JSON cannot carry them."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:  # iterative: the depth of a document is its reader's business
        node, path = stack.pop()
        if isinstance(node, bool):
            continue
        if isinstance(node, float) and not math.isfinite(node):
            found.append((path or "/", f"{node} is not a number a document may hold"))
        elif isinstance(node, int) and abs(node) > max_int:
            found.append((path or "/", f"integer out of range (at most ±{max_int:.0e})"))
        elif isinstance(node, dict):
            stack.extend((v, f"{path}/{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{path}/{i}") for i, v in enumerate(node))
    return sorted(found)


def _message(error: Any) -> str:
    """jsonschema's message, or for a failed ``pattern`` the schema's description of what is wanted."""
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator in ("pattern", "not") and schema.get("description") and isinstance(error.instance, str):
        return f"{error.instance[:80]!r} is not {schema['description']}"
    return str(error.message)


def errors(doc: Any, name: str, definition: str | None = None) -> list[tuple[str, str]]:
    """Every violation as (path inside the document, reason), best first; numbers first (``numbers``)."""
    found = numbers(doc)
    if found:
        return found
    for error in sorted(_validator(name, definition).iter_errors(doc), key=lambda e: list(e.absolute_path)):
        path = "/" + "/".join(str(p) for p in error.absolute_path)
        message = _message(error)
        found.append((path, message if len(message) < 300 else message[:297] + "..."))
    return found


def validate(doc: Any, name: str, definition: str | None = None, *, what: str = "document",
             error: type[KbError] = KbError) -> None:
    """Raise ``error`` naming ``what``, the path inside the document and the reason."""
    problems = errors(doc, name, definition)
    if problems:
        path, reason = problems[0]
        raise error(f"{what}: {path}: {reason}")
