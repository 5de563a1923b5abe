"""Report renderers, by name: ``@renderer("text")`` registers one; ``render(doc, "text")`` uses it.

A renderer takes the report document (``schemas/diagnosis.schema.json``) and returns text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..terminal import safe_text

__all__ = ["renderer", "render", "formats"]

Renderer = Callable[[dict[str, Any]], str]
_RENDERERS: dict[str, Renderer] = {}


def renderer(name: str) -> Callable[[Renderer], Renderer]:
    def register(func: Renderer) -> Renderer:
        _RENDERERS[name] = func
        return func

    return register


def formats() -> list[str]:
    return sorted(_RENDERERS)


def render(doc: dict[str, Any], name: str) -> str:
    """The report in format ``name``; text for people (not JSON, which escapes by itself) has every control
    character escaped (:func:`kb.terminal.safe_text`): report content is shown, never obeyed by a terminal."""
    out = _RENDERERS[name](doc)
    return out if name == "json" else safe_text(out)


# the built-in renderers register themselves on import
from . import jsonfmt, markdown, text  # noqa: E402,F401
