"""JSON Schema validation of every document kb writes or loads — the only jsonschema importer.

Schemas live in the ``kb.schemas`` package (``schemas/*.schema.json`` in the source tree).
Validators are built once per (schema, $defs entry) and cached.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from .errors import KbError

__all__ = ["load_schema", "validate", "errors"]


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema ``schemas/<name>.schema.json``."""
    text = resources.files("kb.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(name: str, definition: str | None) -> Any:
    schema = load_schema(name)
    if definition:
        schema = {**schema, "$ref": f"#/$defs/{definition}"}
        schema = {k: v for k, v in schema.items() if k not in ("required", "properties", "type", "additionalProperties")}
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=None)


def errors(doc: Any, name: str, definition: str | None = None) -> list[tuple[str, str]]:
    """Every violation as (path inside the document, reason), best first."""
    found = []
    for error in sorted(_validator(name, definition).iter_errors(doc), key=lambda e: list(e.absolute_path)):
        path = "/" + "/".join(str(p) for p in error.absolute_path)
        found.append((path, error.message if len(error.message) < 300 else error.message[:297] + "..."))
    return found


def validate(doc: Any, name: str, definition: str | None = None, *, what: str = "document",
             error: type[KbError] = KbError) -> None:
    """Raise ``error`` naming ``what``, the path inside the document and the reason."""
    problems = errors(doc, name, definition)
    if problems:
        path, reason = problems[0]
        raise error(f"{what}: {path}: {reason}")
