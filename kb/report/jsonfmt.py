"""``--format json``: the report document itself (valid against schemas/diagnosis.schema.json).

The bytes are exactly ``json.dumps(doc, indent=2, ensure_ascii=False)``'s. On Python before 3.14 the
standard library encodes an indented document in pure Python, one generator per container (about 120 ms
for a 20,000-failure report, a seventh of ``kb diagnose``'s CPU); :func:`dumps_indented` builds the same
text with one list of pieces, leaving the strings to the same C escaper (measured: 2-3× faster). Anything
it does not know (a key that is not a str, a value not made of dict/list/tuple/str/int/float/bool/None)
falls back to ``json.dumps``, so the output never differs; tests/test_report_json.py checks both agree.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring  # the C escaper when available
from typing import Any

from . import renderer

__all__ = ["render_json", "dumps_indented"]

_INFINITY = float("inf")


class _Unknown(Exception):
    """A value :func:`dumps_indented` leaves to ``json.dumps``."""


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)


def _encode(value: Any, indent: str, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif kind is int:
        out.append(int.__repr__(value))
    elif kind is float:
        out.append(_float(value))
    elif kind is dict:  # the dict and list loops are alike on purpose: a shared helper costs 50% (measured)
        if not value:
            out.append("{}")
            return
        inner = indent + "  "
        opening = "{\n" + inner
        separator = ",\n" + inner
        for key, item in value.items():
            if type(key) is not str:
                raise _Unknown
            out.append(opening)
            opening = separator
            out.append(encode_basestring(key))
            out.append(": ")
            _encode(item, inner, out)
        out.append("\n" + indent + "}")
    elif kind is list or kind is tuple:
        if not value:
            out.append("[]")
            return
        inner = indent + "  "
        opening = "[\n" + inner
        separator = ",\n" + inner
        for item in value:
            out.append(opening)
            opening = separator
            _encode(item, inner, out)
        out.append("\n" + indent + "]")
    else:
        raise _Unknown


def dumps_indented(doc: Any) -> str:
    """``json.dumps(doc, indent=2, ensure_ascii=False)``, the same text, built faster."""
    out: list[str] = []
    try:
        _encode(doc, "", out)
    except (_Unknown, RecursionError):
        return json.dumps(doc, indent=2, ensure_ascii=False)
    return "".join(out)


@renderer("json", raw=True)
def render_json(doc: dict[str, Any]) -> str:
    return dumps_indented(doc) + "\n"
