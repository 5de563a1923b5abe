"""Report renderers, by name: ``@renderer("text")`` registers one; ``render(doc, "text")`` uses it.

A renderer takes the report document (``schemas/diagnosis.schema.json``) and returns text. People's
formats (text, Markdown, GitHub workflow commands) have every control character escaped after rendering;
JSON formats (``raw=True``) escape their content themselves. ``@painter("text")`` adds terminal colour to a
format's rendered text, for ``render(..., colour=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..terminal import safe_text

__all__ = ["renderer", "painter", "render", "formats"]

Renderer = Callable[[dict[str, Any]], str]
Painter = Callable[[str], str]
_RENDERERS: dict[str, Renderer] = {}
_RAW: set[str] = set()
_PAINTERS: dict[str, Painter] = {}


def renderer(name: str, *, raw: bool = False) -> Callable[[Renderer], Renderer]:
    """Register a renderer; ``raw``: its output is JSON, which escapes control characters by itself."""
    def register(func: Renderer) -> Renderer:
        _RENDERERS[name] = func
        if raw:
            _RAW.add(name)
        return func

    return register


def painter(name: str) -> Callable[[Painter], Painter]:
    """Register the colouring of format ``name``'s escaped text (ANSI styles added after escaping, so only
    kb's own styles reach the terminal)."""
    def register(func: Painter) -> Painter:
        _PAINTERS[name] = func
        return func

    return register


def formats() -> list[str]:
    return sorted(_RENDERERS)


def render(doc: dict[str, Any], name: str, *, colour: bool = False) -> str:
    """The report in format ``name``; text for people (not JSON, which escapes by itself) has every control
    character escaped (:func:`kb.terminal.safe_text`): report content is shown, never obeyed by a terminal.
    ``colour``: add the format's terminal colours, if it has any."""
    out = _RENDERERS[name](doc)
    if name in _RAW:
        return out
    out = safe_text(out)
    return _PAINTERS[name](out) if colour and name in _PAINTERS else out


# the built-in renderers register themselves on import
from . import github, gitlab, jsonfmt, markdown, sarif, text  # noqa: E402,F401
