"""Fix templates: sandboxed Jinja (the only jinja2 importer), StrictUndefined, package ``kb.fixes``.

A text template renders one line of text from ``params`` (the remedy's parameters) and may use
the filters of :mod:`kb.edits`: ``pin-dependency`` a requirement line, ``register-marker`` and
``filterwarnings`` a pytest configuration entry. Templates that change Python code are LibCST
codemods (:mod:`kb.fix.codemods`); their names count as fix templates too (packs are linted
against :func:`template_names`). A template that fails — an undefined name, a reach for Python
internals — is a FixError.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from . import edits
from .errors import FixError

__all__ = ["render_template", "template_names", "text_template_names"]


@lru_cache(maxsize=1)
def _env() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=jinja2.PackageLoader("kb.fixes", ""),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    for name in edits.__all__:
        env.filters[name] = _strict(getattr(edits, name))
    return env


def _strict(func: Callable[..., str]) -> Callable[..., str]:
    """Filters see StrictUndefined arguments as errors, not as objects to stringify."""

    def filter_(*args: Any) -> str:
        for arg in args:
            if isinstance(arg, jinja2.Undefined):
                arg._fail_with_undefined_error()
        return func(*args)

    return filter_


def text_template_names() -> list[str]:
    """The Jinja templates (each renders a line of text)."""
    return sorted(name[:-3] for name in _env().list_templates() if name.endswith(".j2"))


@lru_cache(maxsize=1)
def _text_names() -> frozenset[str]:
    return frozenset(text_template_names())


def is_text_template(name: str) -> bool:
    """Whether ``name`` is one of the Jinja text templates (asked without importing the codemods)."""
    return name in _text_names()


def template_names() -> list[str]:
    """Every fix template a remedy may name: the Jinja text templates and the codemods."""
    from .fix.codemods import CODEMODS  # here, not at the top: kb.fix imports this module

    return sorted({*text_template_names(), *CODEMODS})


def render_template(name: str, *, line: str = "", params: dict[str, Any] | None = None) -> str:
    try:
        template = _env().get_template(f"{name}.j2")
        return template.render(line=line, params=params or {})
    except jinja2.TemplateNotFound:
        if name in template_names():
            raise FixError(f"fix template {name!r} edits Python source: kb.fix.codemods applies it") from None
        raise FixError(f"fix template {name!r} does not exist (have: {', '.join(template_names())})") from None
    except SecurityError as exc:
        raise FixError(f"fix template {name!r} refused by the sandbox: {exc}") from None
    except jinja2.TemplateError as exc:
        raise FixError(f"fix template {name!r}: {exc}") from None
