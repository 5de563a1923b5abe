"""Text fix templates (Jinja): golden cases, the sandbox, StrictUndefined; the names packs are linted against."""

from __future__ import annotations

import pytest

from kb.errors import FixError
from kb.fix.codemods import CODEMODS
from kb.rulepack import golden_cases
from kb.templates import render_template, template_names, text_template_names

CASES = [(c["template"], c["params"], c["after"]) for c in golden_cases() if c["template"] not in CODEMODS]


@pytest.mark.parametrize(("name", "params", "after"), CASES)
def test_golden(name: str, params: dict, after: str) -> None:
    assert render_template(name, params=params) == after


def test_every_template_has_a_golden_case() -> None:
    assert set(template_names()) == {c["template"] for c in golden_cases()}


def test_template_names_are_the_text_templates_and_the_codemods() -> None:
    assert set(text_template_names()) == {"pin-dependency", "register-marker", "filterwarnings"}
    assert set(template_names()) == set(text_template_names()) | CODEMODS


def test_strict_undefined() -> None:
    with pytest.raises(FixError, match="register-marker"):
        render_template("register-marker", params={})


def test_unknown_template() -> None:
    with pytest.raises(FixError, match="does not exist"):
        render_template("no-such-template")


def test_a_codemod_is_not_rendered_as_text() -> None:
    with pytest.raises(FixError, match="codemods"):
        render_template("drop-kwarg", params={"callable": "f", "param": "loop"})


def test_sandbox_refuses_python_internals() -> None:
    import jinja2

    from kb import templates

    env = templates._env()
    hostile = env.from_string("{{ line.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(jinja2.exceptions.SecurityError):
        hostile.render(line="x", params={})
