"""Fix templates: golden before/after cases, the sandbox, StrictUndefined."""

from __future__ import annotations

import pytest

from kb.errors import FixError
from kb.templates import render_template, template_names

CASES = [
    ("drop-kwarg", {"param": "loop"}, "    self._mutex = asyncio.Lock(loop=loop)", "    self._mutex = asyncio.Lock()"),
    ("drop-kwarg", {"param": "loop"}, "c = asyncio.Condition(m, loop=loop)", "c = asyncio.Condition(m)"),
    ("drop-kwarg", {"param": "loop"}, "asyncio.wait(tasks, loop=self.loop, timeout=1)",
     "asyncio.wait(tasks, timeout=1)"),
    ("drop-kwarg", {"param": "loop"}, "asyncio.gather(a, loop=make(1, 2))", "asyncio.gather(a)"),
    ("drop-kwarg", {"param": "loop"}, "x = looper(loop_count=1)", "x = looper(loop_count=1)"),
    ("replace-import", {"module": "collections", "name": "Mapping", "new_module": "collections.abc"},
     "from collections import Mapping", "from collections.abc import Mapping"),
    ("replace-import", {"module": "collections", "name": "Mapping", "new_module": "collections.abc"},
     "    from collections import OrderedDict, Mapping  # why",
     "    from collections import OrderedDict  # why\n    from collections.abc import Mapping"),
    ("replace-import", {"module": "collections", "name": "Mapping", "new_module": "collections.abc"},
     "from collections import OrderedDict", "from collections import OrderedDict"),
    ("add-kwarg", {"callable": "yaml.load", "param": "Loader", "value": "yaml.SafeLoader"},
     "data = yaml.load(stream)", "data = yaml.load(stream, Loader=yaml.SafeLoader)"),
    ("add-kwarg", {"callable": "yaml.load", "param": "Loader", "value": "yaml.SafeLoader"},
     "data = yaml.load(s, Loader=X)", "data = yaml.load(s, Loader=X)"),
    ("rename-attribute", {"old": "tostring", "new": "tobytes"}, "b = arr.tostring()", "b = arr.tobytes()"),
    ("rename-attribute", {"old": "collections.Mapping", "new": "collections.abc.Mapping"},
     "isinstance(x, collections.Mapping)", "isinstance(x, collections.abc.Mapping)"),
    ("pin-dependency", {"requirement": "setuptools<82"}, "", "setuptools<82"),
]


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
