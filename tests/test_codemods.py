"""LibCST codemods (kb.fix.codemods): every golden case, then what the golden file cannot say —
refused parameters, layout and newline style kept, unparsable files left alone, setup.py edits."""

from __future__ import annotations

import ast
from typing import Any

import pytest

from kb.errors import FixError
from kb.fix import codemods
from kb.fix.codemods import (
    CODEMODS,
    add_setup_requirement,
    check_params,
    edit_setup_requirements,
    needles,
    quarantine,
    transform,
)
from kb.fix.codemods.prefilter import may_change
from kb.rulepack import golden_cases

CASES = [c for c in golden_cases() if c["template"] in CODEMODS]


def _run(case: dict[str, Any], source: str) -> str:
    params = case["params"]
    if case["template"] == "quarantine":
        return quarantine(source, params["tests"], params["until"], params["reason"])
    return transform(case["template"], params, source)


@pytest.mark.parametrize("case", CASES, ids=[f"{n}-{c['template']}" for n, c in enumerate(CASES, 1)])
def test_golden(case: dict[str, Any]) -> None:
    after = _run(case, case["before"])
    assert after == case["after"]
    ast.parse(after)
    assert _run(case, after) == after  # idempotent


@pytest.mark.parametrize("case", [c for c in CASES if c["template"] != "quarantine"],
                         ids=lambda c: c["template"])
def test_needles_never_exclude_a_changed_file(case: dict[str, Any]) -> None:
    if case["before"] != case["after"]:
        assert all(n in case["before"] for n in needles(case["template"], case["params"]))


@pytest.mark.parametrize("case", [c for c in CASES if c["template"] != "quarantine"],
                         ids=lambda c: c["template"])
def test_the_prefilter_never_excludes_a_changed_file(case: dict[str, Any]) -> None:
    if case["before"] != case["after"]:
        assert may_change(case["template"], case["params"], case["before"])


def test_a_dotted_rename_skips_modules_that_only_use_the_last_name_plainly() -> None:
    """``np.bool`` → ``bool``: the builtin ``bool`` in a module is not numpy's (kb fix parsed every such module)."""
    params = {"old": "np.bool", "new": "bool"}
    plain = "def f(x: bool) -> bool:\n    return bool(x)\n"
    assert not may_change("rename-attribute", params, plain) and transform("rename-attribute", params, plain) == plain
    used = "import numpy as np\nflag = np.bool(1)\n"
    assert may_change("rename-attribute", params, used)
    assert transform("rename-attribute", params, used) == "import numpy as np\nflag = bool(1)\n"
    bare = {"old": "tostring", "new": "tobytes"}  # a bare name: `from m import tostring` binds it too
    assert may_change("rename-attribute", bare, "from m import tostring\n")
    assert not may_change("rename-attribute", bare, "tostring = 1\n")


@pytest.mark.parametrize(("source", "may"), [
    ("import json\ndata = json.load(f)\n", False),  # another module's load: not yaml.load
    ("data = loader.load(f)\n", False),  # a local object's method
    ("import yaml\ndata = yaml.load(f)\n", True),
    ("import yaml as y\ndata = y.load(f)\n", True),
    ("from yaml import load as yload\ndata = yload(f)\n", True),
    ("data = self.yaml.load(f)\n", True),  # not imported: the chain's end decides
    ("from shared import yaml\ndata = yaml.load(f)\n", True),
])
def test_a_call_prefilter_looks_at_which_load_is_called(source: str, may: bool) -> None:
    params = {"callable": "yaml.load", "param": "Loader", "value": "yaml.SafeLoader"}
    assert may_change("add-kwarg", params, source) is may
    if not may:
        assert transform("add-kwarg", params, source) == source


@pytest.mark.parametrize(("source", "may"), [
    ("from collections.abc import Mapping\nx: Mapping = {}\n", False),  # the name, already from the new module
    ("import collections.abc\nx = collections.abc.Mapping\n", False),
    ("def f(collections):\n    return collections.Mapping\n", False),  # not an import: not the module
    ("from collections import Mapping\n", True),
    ("from collections import OrderedDict, Mapping as M\n", True),
    ("import collections\nx = collections.Mapping\n", True),
    ("import collections as c\nx = c.Mapping\n", True),
    ("from . import collections\nx = collections.Mapping\n", True),  # relative: unknown here, LibCST decides
])
def test_the_replace_import_prefilter_looks_at_where_the_name_comes_from(source: str, may: bool) -> None:
    """kb fix on a project that already imports ``Mapping`` from ``collections.abc`` ran LibCST over every such
    module (kb's own checkout: 10 modules, 2 of its 3.5 s)."""
    params = {"module": "collections", "name": "Mapping", "new_module": "collections.abc"}
    assert may_change("replace-import", params, source) is may
    if not may:
        assert transform("replace-import", params, source) == source
    elif not source.startswith("from ."):
        assert transform("replace-import", params, source) != source


def test_every_codemod_has_a_fix_and_a_noop_case() -> None:
    for template in CODEMODS:
        mine = [c for c in CASES if c["template"] == template]
        assert any(c["before"] != c["after"] for c in mine), template
        assert any(c["before"] == c["after"] for c in mine), template


@pytest.mark.parametrize(("template", "params", "why"), [
    ("replace-import", {"module": "collections", "name": "Mapping",
                        "new_module": "collections.abc import Mapping; __import__('os').system('x')  #"}, "new_module"),
    ("add-kwarg", {"callable": "yaml.load", "param": "Loader", "value": "__import__('os')"}, "value"),
    ("add-kwarg", {"callable": "yaml.load", "param": "Loader", "value": "f'{x}'"}, "value"),
    ("add-kwarg", {"callable": "yaml.load", "param": "Loader=1, x", "value": "1"}, "param"),
    ("drop-kwarg", {"callable": "asyncio.Lock"}, "param"),
    ("rename-attribute", {"old": "a.b", "new": "c d"}, "new"),
    ("rename-attribute", {"old": "getargspec", "new": "getfullargspec", "arity": "4"}, "arity"),
    ("replace-kwarg-value", {"param": "freq", "old": "M", "new": "ME'); os.system('x"}, "new"),
    ("positional-to-keyword", {"callable": "f", "position": -1, "param": "x"}, "position"),
    ("rename-method", {"old": "setUp; import os", "new": "setup_method"}, "old"),
    ("no-such-codemod", {}, "not a codemod"),
])
def test_check_params_refuses(template: str, params: dict[str, Any], why: str) -> None:
    with pytest.raises(FixError, match=why):
        check_params(template, params)
    if template in CODEMODS:
        with pytest.raises(FixError):
            transform(template, params, "import os\n")


@pytest.mark.parametrize("value", ["yaml.SafeLoader", "True", "None", "3", "-1.5", "'safe'", '"x"'])
def test_check_params_admits_names_and_plain_literals(value: str) -> None:
    check_params("add-kwarg", {"callable": "yaml.load", "param": "Loader", "value": value})


def test_pack_placeholders_are_plain_text() -> None:
    check_params("replace-kwarg-value", {"param": "freq", "old": "{alias}", "new": "{new}"})
    check_params("quarantine", {"days": 30, "reason": "flaky: failed {failed} of {runs} runs"})


def test_crlf_newlines_are_kept() -> None:
    source = "import asyncio\r\n\r\nlock = asyncio.Lock(\r\n    loop=loop,\r\n)\r\nx = 1\r\n"
    assert transform("drop-kwarg", {"callable": "asyncio.Lock", "param": "loop"}, source) == \
        "import asyncio\r\n\r\nlock = asyncio.Lock()\r\nx = 1\r\n"


def test_crlf_import_added() -> None:
    source = "import collections\r\nok = collections.Mapping\r\n"
    after = transform("rename-attribute", {"old": "collections.Mapping", "new": "collections.abc.Mapping"}, source)
    assert after == "import collections\r\nimport collections.abc\r\n\r\nok = collections.abc.Mapping\r\n"


def test_no_final_newline_is_kept() -> None:
    assert transform("rename-attribute", {"old": "tostring", "new": "tobytes"}, "b = a.tostring()") == "b = a.tobytes()"


def test_unparsable_source_is_returned_unchanged() -> None:
    source = "b = a.tostring(\nprint 'python 2'\n"
    assert transform("rename-attribute", {"old": "tostring", "new": "tobytes"}, source) is source


def test_without_the_needles_nothing_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(source: str) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(codemods, "_parse", fail)
    source = "x = 1\n"
    assert transform("drop-kwarg", {"callable": "asyncio.Lock", "param": "loop"}, source) is source


def test_aliased_import_needle_is_the_last_segment() -> None:
    assert needles("rename-attribute", {"old": "numpy.float", "new": "float"}) == ["float"]
    source = "import numpy as np\nx = np.float(1)\n"
    assert all(n in source for n in needles("rename-attribute", {"old": "numpy.float", "new": "float"}))
    assert transform("rename-attribute", {"old": "numpy.float", "new": "float"}, source) == \
        "import numpy as np\nx = float(1)\n"


def test_formatting_and_comments_elsewhere_are_kept() -> None:
    source = ("import asyncio  # async\n\n\n"
              "async def main( a ,b ):  # odd spacing\n"
              "    await asyncio.sleep( 1 ,loop = a )  # sleep\n"
              "    return {'k' :b}\n")
    assert transform("drop-kwarg", {"callable": "asyncio.sleep", "param": "loop"}, source) == source.replace(
        "asyncio.sleep( 1 ,loop = a )", "asyncio.sleep( 1 )")


def test_quarantine_adds_import_pytest_once() -> None:
    source = ('"""Tests."""\nfrom __future__ import annotations\n\n\n'
              'def test_a():\n    pass\n\n\ndef test_b():\n    pass\n')
    after = quarantine(source, ["test_a", "test_b"], "2026-12-24", "flaky")
    assert after.count("import pytest") == 1
    assert after.count("@pytest.mark.xfail(") == 2
    assert after.startswith('"""Tests."""\nfrom __future__ import annotations\nimport pytest\n')
    assert quarantine(after, ["test_a", "test_b"], "2026-12-24", "flaky") == after


def test_quarantine_keeps_an_existing_import_and_refuses_a_bad_date() -> None:
    source = "import pytest\n\nclass TestA:\n    async def test_x(self):\n        pass\n"
    after = quarantine(source, ["TestA::test_x"], "2026-01-02", "r")
    assert after.count("import pytest") == 1 and "    @pytest.mark.xfail(" in after
    with pytest.raises(FixError, match="YYYY-MM-DD"):
        quarantine(source, ["TestA::test_x"], "2026-1-2'); x('", "r")


SETUP = '''\
from setuptools import setup

requirements = [
    "numpy>=1.20",
    'requests',  # http
]
dev_requirements = ["black"]

setup(
    name="demo",
    version=open("VERSION").read(),
    install_requires=requirements,
    tests_require=["pytest"],
    extras_require={"docs": ["sphinx"], "dev": dev_requirements},
    classifiers=["numpy"],
)
'''


def test_edit_setup_requirements_edits_only_requirements() -> None:
    seen: list[str] = []

    def edit(text: str) -> str | None:
        seen.append(text)
        return "numpy>=1.20,<2" if text == "numpy>=1.20" else None

    after = edit_setup_requirements(SETUP, edit)
    assert sorted(seen) == ["black", "numpy>=1.20", "pytest", "requests", "sphinx"]
    assert after == SETUP.replace('"numpy>=1.20"', '"numpy>=1.20,<2"')


def test_edit_setup_requirements_keeps_quotes_and_escapes() -> None:
    source = "import setuptools\nsetuptools.setup(install_requires=['a'])\n"
    assert edit_setup_requirements(source, lambda t: "a; python_version<'3.11'") == \
        "import setuptools\nsetuptools.setup(install_requires=['a; python_version<\\'3.11\\''])\n"


def test_add_setup_requirement_to_a_multi_line_list() -> None:
    after = add_setup_requirement(SETUP, "setuptools<82")
    assert after == SETUP.replace("    'requests',  # http\n", "    'requests',  # http\n    \"setuptools<82\",\n")


def test_add_setup_requirement_to_a_one_line_list_and_an_extra() -> None:
    assert add_setup_requirement(SETUP, "pytest-cov", keyword="tests_require") == \
        SETUP.replace('tests_require=["pytest"]', 'tests_require=["pytest", "pytest-cov"]')
    assert add_setup_requirement(SETUP, "furo", extra="docs") == SETUP.replace('["sphinx"]', '["sphinx", "furo"]')
    assert add_setup_requirement(SETUP, "ruff", extra="dev") == SETUP.replace('["black"]', '["black", "ruff"]')


def test_add_setup_requirement_refuses_what_is_not_a_literal() -> None:
    assert add_setup_requirement(SETUP, "x", keyword="setup_requires") is None
    assert add_setup_requirement(SETUP, "x", extra="nope") is None
    shared = SETUP.replace('"dev": dev_requirements', '"dev": requirements')
    assert add_setup_requirement(shared, "x", extra="dev") is None  # it would reach install_requires too
    assert add_setup_requirement("from setuptools import setup\nsetup(install_requires=read())\n", "x") is None
    assert add_setup_requirement("setup(", "x") is None


def test_a_bare_rename_leaves_other_modules_alone_when_the_owner_is_known() -> None:
    """``warn`` → ``warning`` for logging (the cause's owner) must not reach ``warnings.warn``."""
    source = "import logging\nimport warnings\n\nlogging.getLogger().warn('a')\nwarnings.warn('b')\nlogging.warn('c')\n"
    edited = transform("rename-attribute", {"old": "warn", "new": "warning", "owner": "logging"}, source)
    assert edited == ("import logging\nimport warnings\n\nlogging.getLogger().warning('a')\nwarnings.warn('b')\n"
                      "logging.warning('c')\n")


def test_a_module_spelled_by_a_local_alias_is_not_given_a_guessed_import() -> None:
    """vcrpy imports urllib3's connectionpool `as cpool` inside try blocks: moving the name to another module
    would need an import under the same guard, which is the code's to write (the pin is the fix there)."""
    source = ("try:\n    import botocore.vendored.requests.packages.urllib3.connectionpool as cpool\n"
              "except ImportError:\n    pass\nelse:\n    V = cpool.VerifiedHTTPSConnection\n")
    params = {"old": "connectionpool.VerifiedHTTPSConnection", "new": "connection.HTTPSConnection"}
    assert transform("rename-attribute", params, source) == source
