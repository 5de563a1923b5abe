"""SARIF 2.1.0 checking for the tests: the published OASIS schema (a copy in tests/corpus)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

__all__ = ["SCHEMA", "sarif_errors"]

SCHEMA = json.loads((Path(__file__).parent / "corpus" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


def sarif_errors(log: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
