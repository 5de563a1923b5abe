"""``--format json``: the report document itself (valid against schemas/diagnosis.schema.json)."""

from __future__ import annotations

import json
from typing import Any

from . import renderer


@renderer("json", raw=True)
def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
