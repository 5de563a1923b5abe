"""Fix templates: golden before/after cases, the sandbox, StrictUndefined."""

from __future__ import annotations

import pytest

from kb.errors import FixError
from kb.rulepack import golden_cases
from kb.templates import render_template, template_names

CASES = [(c["template"], c["params"], c["before"], c["after"]) for c in golden_cases()]


@pytest.mark.parametrize(("name", "params", "before", "after"), CASES)
def test_golden(name: str, params: dict, before: str, after: str) -> None:
    assert render_template(name, line=before, params=params) == after


def test_every_template_has_a_golden_case() -> None:
    assert set(template_names()) == {name for name, *_ in CASES}


def test_strict_undefined() -> None:
    with pytest.raises(FixError, match="drop-kwarg"):
        render_template("drop-kwarg", line="f(loop=1)", params={})


def test_unknown_template() -> None:
    with pytest.raises(FixError, match="does not exist"):
        render_template("no-such-template")


def test_sandbox_refuses_python_internals() -> None:
    import jinja2

    from kb import templates

    env = templates._env()
    hostile = env.from_string("{{ line.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        hostile.render(line="x", params={})
