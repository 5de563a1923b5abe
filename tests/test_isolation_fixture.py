"""kb isolate's remedy: an autouse fixture in the victim's module that restores what a polluter changed (or
provides what a setter set up), written only from names and literals, and proven by re-running the exact
test orders through kb's order plugin. The proofs are kb's own runs (:func:`kb.run.ordered.run_order`, real
pytest processes), not pytester's: a fixture that held only in-process would prove nothing."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kb.fix import FixOptions, RemedyPlan, plan_fix
from kb.fix.isolation import fixture_name, plan_isolation_fixture
from kb.fix.registry import Context, planner
from kb.fix.types import Planned
from kb.fix.verify import verify
from kb.run.ordered import run_order

from .faults import make_project

VICTIM = "tests/test_003.py::test_0039"
POLLUTER = "tests/test_002.py::test_0020"
SETTER = "tests/test_001.py::test_setup"
TEST_MODULE = "def test_0039():\n    import shared_state\n    assert shared_state.LEAKS == []\n"
LEAKS = {"kind": "global", "module": "shared_state", "name": "LEAKS", "before": "[]", "after": "[20]"}
FOO = {"kind": "environ", "name": "FOO", "before": None, "after": "1"}
PYTEST = [sys.executable, "-m", "pytest"]


def _spec(changes: list[dict[str, Any]], mode: str = "restore", victim: str = VICTIM,
          other: str = POLLUTER) -> dict[str, Any]:
    return {"kind": "isolation-fixture", "template": "isolation-fixture", "risk": "medium", "description": "d",
            "params": {"victim": victim, "mode": mode, "other": other, "changes": changes}}


def _plan(root: Path, spec: dict[str, Any], text: str = TEST_MODULE, path: str = "tests/test_003.py") -> Planned:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(text.encode())
    planned = plan_isolation_fixture(spec, Context(root))
    assert planned is not None
    return planned


def _after(planned: Planned, path: str = "tests/test_003.py") -> str:
    assert planned.refused is None, planned.refused
    return planned.changes[path][1].decode()


def _fixture_of(text: str) -> str:
    return text[text.index("@pytest.fixture(autouse=True)"):]


def test_restore_mode_puts_back_the_globals_and_unsets_the_variables_the_polluter_set(tmp_path: Path) -> None:
    text = _after(_plan(tmp_path, _spec([LEAKS, FOO])))
    assert text.startswith("import pytest\n")
    assert _fixture_of(text) == (
        '@pytest.fixture(autouse=True)\n'
        'def _kb_isolate_test_0039(request, monkeypatch):\n'
        '    """kb isolate: restore the state tests/test_002.py::test_0020 leaves behind, which made '
        'tests/test_003.py::test_0039 fail after it."""\n'
        "    if request.node.name != 'test_0039':\n"
        '        return\n'
        '    import shared_state\n'
        '\n'
        '    shared_state.LEAKS = []\n'
        '    monkeypatch.delenv("FOO", raising=False)\n')


def test_provide_mode_sets_what_the_setter_left(tmp_path: Path) -> None:
    changes = [{"kind": "global", "module": "shared_state", "name": "REGISTRY", "before": "{}",
                "after": "{'db': 'ready'}"},
               {"kind": "environ", "name": "DB_URL", "before": None, "after": "sqlite://"},
               {"kind": "environ", "name": "OLD", "before": "x", "after": None},
               {"kind": "global", "module": "shared_state", "name": "CREATED", "before": None, "after": "(1, 2.5)"}]
    text = _after(_plan(tmp_path, _spec(changes, "provide", other=SETTER)))
    assert _fixture_of(text) == (
        '@pytest.fixture(autouse=True)\n'
        'def _kb_isolate_test_0039(request, monkeypatch):\n'
        '    """kb isolate: provide the state tests/test_003.py::test_0039 needs, which only '
        'tests/test_001.py::test_setup set up before."""\n'
        "    if request.node.name != 'test_0039':\n"
        '        return\n'
        '    import shared_state\n'
        '\n'
        "    shared_state.REGISTRY = {'db': 'ready'}\n"
        '    monkeypatch.setenv("DB_URL", \'sqlite://\')\n'
        '    monkeypatch.delenv("OLD", raising=False)\n'
        '    shared_state.CREATED = (1, 2.5)\n')


def test_a_dotted_module_is_imported_whole_and_a_global_the_polluter_added_is_deleted(tmp_path: Path) -> None:
    changes = [{"kind": "global", "module": "pkg.state", "name": "CACHE",
                "before": "{'a': [1, None, True], 'b': set()}", "after": "{}"},
               {"kind": "global", "module": "pkg", "name": "ADDED", "before": None, "after": "3"}]
    fixture = _fixture_of(_after(_plan(tmp_path, _spec(changes))))
    assert fixture.splitlines()[5:] == [
        "    import pkg.state",  # binds pkg as well: no second import
        "",
        "    pkg.state.CACHE = {'a': [1, None, True], 'b': set()}",
        '    monkeypatch.delattr(pkg, "ADDED", raising=False)']


def test_a_value_that_is_not_a_literal_is_left_out_and_alone_it_is_refused(tmp_path: Path) -> None:
    hostile = [{"kind": "global", "module": "shared_state", "name": "OBJ", "before": before, "after": "1"}
               for before in ("<object object at 0x7f>", "__import__('os').system('echo hi')", "[1, 2" + "…",
                              "nan", "[" * 5000 + "]" * 5000)]
    fixture = _fixture_of(_after(_plan(tmp_path, _spec([*hostile, LEAKS]))))
    assert "OBJ" not in fixture and "__import__" not in fixture and 'shared_state.LEAKS = []' in fixture
    refused = _plan(tmp_path, _spec(hostile)).refused
    assert refused == ("the state tests/test_002.py::test_0020 changes is not a module global or an environment "
                       "variable kb can restore: a global whose value is not a Python literal")


def test_state_kb_cannot_set_is_named_in_one_line(tmp_path: Path) -> None:
    changes = [{"kind": "file", "name": ".cache", "before": None, "after": "present"},
               {"kind": "module", "name": "numpy", "before": None, "after": "imported"},
               {"kind": "cwd", "name": "", "before": "/a", "after": "/b"}]
    assert _plan(tmp_path, _spec(changes, "provide", other=SETTER)).refused == (
        "the state tests/test_001.py::test_setup changes is not a module global or an environment variable kb can "
        "provide: cwd change, file change, module change")
    assert _plan(tmp_path, _spec([])).refused.endswith("kb can restore: no change was recorded")


@pytest.mark.parametrize("change", [
    {"kind": "global", "module": "os; import x", "name": "A", "before": "1", "after": "2"},
    {"kind": "global", "module": "shared_state", "name": "A)\nimport os\n(", "before": "1", "after": "2"},
    {"kind": "global", "module": "class.x", "name": "A", "before": "1", "after": "2"},
    {"kind": "global", "module": "monkeypatch", "name": "A", "before": "1", "after": "2"},
    {"kind": "global", "module": "shared_state", "name": "A", "before": 1, "after": 2},
    {"kind": "environ", "name": "FOO\")\nimport os\n(\"", "before": None, "after": "1"},
    {"kind": "environ", "name": "A-B", "before": None, "after": "1"},
    {"kind": "environ", "name": "FOO", "before": ["x"], "after": "1"},
    "not a change",
], ids=["module-code", "name-code", "keyword-module", "monkeypatch-module", "value-not-text", "env-code", "env-dash",
        "env-not-text", "not-a-dict"])
def test_hostile_names_never_reach_the_code(tmp_path: Path, change: Any) -> None:
    planned = _plan(tmp_path, _spec([change]))
    assert planned.refused is not None and "\n" not in planned.refused and not planned.changes
    text = _after(_plan(tmp_path, _spec([change, LEAKS])))
    assert "import os" not in text and "import x" not in text and "A-B" not in text


def _only_names_and_literals(text: str) -> None:
    """The fixture's body is its docstring, imports and monkeypatch calls whose arguments are names and literals."""
    tree = ast.parse(text)
    fixtures = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("_kb_")]
    assert len(fixtures) == 1
    doc, guard, *rest = fixtures[0].body
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and "\n" not in doc.value.value
    # the guard: it acts for the victim only, whose name is a string literal
    assert isinstance(guard, ast.If) and ast.unparse(guard.test).startswith("request.node.name != ")
    assert isinstance(guard.test, ast.Compare) and isinstance(guard.test.comparators[0], ast.Constant)
    assert [type(b) for b in guard.body] == [ast.Return] and not guard.orelse
    for statement in rest:
        if isinstance(statement, ast.Import):
            continue
        if isinstance(statement, ast.Assign):  # module.NAME = <literal>
            assert [type(t) for t in statement.targets] == [ast.Attribute]
            ast.literal_eval(statement.value)
            continue
        assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
        call = statement.value
        assert ast.unparse(call.func).startswith("monkeypatch.")
        for arg in [*call.args, *(k.value for k in call.keywords)]:
            if not isinstance(arg, ast.Name | ast.Attribute):
                ast.literal_eval(arg)


@pytest.mark.parametrize(("victim", "other", "shown"), [
    ('tests/test_003.py::test_0039[a"""\nimport os\n"""]', POLLUTER,
     "made tests/test_003.py::test_0039[a????import os????] fail"),
    (VICTIM, 'tests/x.py::t"""); import os; ("""\r\n\\',
     "restore the state tests/x.py::t???); import os; (?????? leaves"),
    ("tests/test_003.py::Test\\x::test_0039[\u2028é\x00]", "tests/x.py::t\u2029", "state tests/x.py::t? leaves"),
])
def test_hostile_node_ids_are_escaped_in_the_docstring(tmp_path: Path, victim: str, other: str, shown: str) -> None:
    text = _after(_plan(tmp_path, _spec([LEAKS], victim=victim, other=other)))
    _only_names_and_literals(text)
    tree = ast.parse(text)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported == {"pytest", "shared_state"}  # the ids' text stays inside the docstring
    doc = ast.get_docstring(next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("_kb")))
    assert doc is not None and doc.isascii() and doc.isprintable() and not set(doc) & set('"\\\r\n')
    assert shown in doc
    assert "\n    def " not in text and text.count("def _kb_isolate_test_0039(request, monkeypatch):") == 1


@pytest.mark.parametrize(("victim", "name"), [
    ("tests/t.py::TestA::test_b[1-x]", "_kb_isolate_test_b"),
    ("tests/t.py::test_é", "_kb_isolate_test__"),
    ("tests/t.py::test_a;import os", "_kb_isolate_test_a_import_os"),
])
def test_the_fixture_is_named_for_the_victims_function(victim: str, name: str) -> None:
    assert fixture_name(victim) == name and name.isidentifier()


def test_pytest_is_imported_once_and_after_the_modules_header(tmp_path: Path) -> None:
    header = '"""Tests."""\nfrom __future__ import annotations\n\nimport pytest\n\n\n'
    text = _after(_plan(tmp_path, _spec([LEAKS]), header + TEST_MODULE))
    assert text.count("import pytest") == 1 and text.startswith(header)
    future = '"""Tests."""\nfrom __future__ import annotations\n\n'
    plain = _after(_plan(tmp_path, _spec([LEAKS]), future + TEST_MODULE))
    assert plain.count("import pytest") == 1 and plain.index("import annotations") < plain.index("import pytest")
    _only_names_and_literals(plain)
    # planned again on the edited module: the fixture is there, nothing more to write
    again = _plan(tmp_path, _spec([LEAKS]), plain)
    assert again.refused == "tests/test_003.py does not parse or already defines _kb_isolate_test_0039"


def test_the_files_newline_style_is_kept(tmp_path: Path) -> None:
    text = _after(_plan(tmp_path, _spec([LEAKS]), TEST_MODULE.replace("\n", "\r\n")))
    assert "\n" not in text.replace("\r\n", "")
    _only_names_and_literals(text)


def test_the_victims_module_must_be_found_once(tmp_path: Path) -> None:
    assert _plan(tmp_path, _spec([LEAKS], victim="tests/test_999.py::test_x")).refused == (
        "the module of tests/test_999.py::test_x: not found in the project's files")
    for folder in ("a", "b"):
        _plan(tmp_path, _spec([LEAKS]), path=f"{folder}/tests/test_003.py")
    (tmp_path / "tests" / "test_003.py").unlink(missing_ok=True)
    assert _plan(tmp_path, _spec([LEAKS]), path="a/tests/test_003.py").refused == (
        "the module of tests/test_003.py::test_0039: several files match")


def test_other_templates_and_incomplete_params_are_not_planned(tmp_path: Path) -> None:
    assert plan_isolation_fixture({**_spec([LEAKS]), "template": "quarantine"}, Context(tmp_path)) is None
    assert _plan(tmp_path, _spec([LEAKS], mode="undo")).refused.startswith("isolation fixture: needs a victim")


def test_plan_fix_knows_the_kind_and_carries_the_orders(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_003.py").write_text(TEST_MODULE)
    orders = [[POLLUTER, VICTIM], [VICTIM]]
    cause = {"key": "order:x", "rule": "order-dependent", "title": "t", "confidence": 0.9, "tests": [VICTIM],
             "remedies": [_spec([LEAKS])], "orders": orders}
    plan = plan_fix({"root_causes": [cause]}, tmp_path).plans[0]
    assert planner("isolation-fixture") is plan_isolation_fixture
    assert plan.kind == "isolation-fixture" and plan.orders == orders and "_kb_isolate_test_0039" in plan.diff


def test_only_the_diagnosis_schema_knows_the_kind() -> None:
    schemas = Path(__file__).parent.parent / "schemas"
    diagnosis = json.loads((schemas / "diagnosis.schema.json").read_text())
    assert "isolation-fixture" in diagnosis["$defs"]["remedy"]["properties"]["kind"]["enum"]
    assert "isolation-fixture" not in (schemas / "rule-pack.schema.json").read_text()


def _write(root: Path, planned: Planned) -> None:
    assert planned.ok, planned.refused
    for rel, (_old, new) in planned.changes.items():
        (root / rel).write_bytes(new)


def _verify(root: Path, orders: list[list[str]]) -> Any:
    item = RemedyPlan("order:x", "order-dependent", 0.9, _spec([]), tests=[orders[0][-1]], orders=orders)
    return verify(item, root, None, FixOptions(test_command=PYTEST, timeout=120))


def test_the_fixture_makes_the_victim_pass_after_its_polluter_through_real_pytest(tmp_path: Path) -> None:
    info = make_project(tmp_path, tests=20, faults=("polluter",))
    victim, polluter = str(info["victim"]), info["polluters"][0]  # type: ignore[index]
    changes = run_order([polluter], tmp_path, PYTEST, state_around=polluter).state
    assert {"kind": "global", "module": "shared_state", "name": "LEAKS", "before": "[]", "after": "[10]"} in changes
    orders = [[polluter, victim], [victim]]
    before = _verify(tmp_path, orders)
    assert (before.held, before.note, before.scope) == (False, f"{victim} still fails in the order {polluter} {victim}",
                                                         "orders")
    planned = plan_isolation_fixture(_spec(changes, victim=victim, other=polluter), Context(tmp_path))
    assert planned is not None
    _write(tmp_path, planned)
    for order in orders:
        assert run_order(order, tmp_path, PYTEST).outcomes == dict.fromkeys(order, "passed")
    after = _verify(tmp_path, orders)
    assert (after.held, after.run, after.after) == (True, None, None)
    assert after.note == ("the victim passes after the tests that make it fail (2 tests) and alone; re-ran 2 order(s) through "
                          "kb's order plugin")
    missing = _verify(tmp_path, [[polluter, "tests/test_001.py::test_nope"]])
    assert not missing.held and "did not run" in missing.note


def test_provide_mode_lets_a_test_that_needs_a_setter_pass_alone(tmp_path: Path) -> None:
    info = make_project(tmp_path, tests=20, faults=("needs-setup",))
    provider, dependent = str(info["provider"]), str(info["dependent"])
    assert run_order([dependent], tmp_path, PYTEST).failed(dependent) is True
    changes = run_order([provider], tmp_path, PYTEST, state_around=provider).state
    planned = plan_isolation_fixture(_spec(changes, "provide", victim=dependent, other=provider), Context(tmp_path))
    assert planned is not None
    _write(tmp_path, planned)
    assert "shared_state.REGISTRY = {'db': 'ready'}" in planned.diff
    assert run_order([dependent], tmp_path, PYTEST).outcomes == {dependent: "passed"}


def test_the_fixture_acts_for_the_victim_only_so_its_module_neighbours_keep_their_state(tmp_path: Path) -> None:
    """A brittle neighbour that takes its state from the polluter (pydash's test_unique_id cases) still passes
    after the victim's fixture lands: the fixture returns at once for every other test of the module."""
    root = tmp_path / "p"
    (root / "tests").mkdir(parents=True)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly\n")
    (root / "shared_state.py").write_text("COUNTER = 0\n")
    (root / "tests" / "test_ids.py").write_text(
        "import shared_state\n\n\n"
        "def test_first():\n    shared_state.COUNTER += 1\n    assert shared_state.COUNTER == 1\n\n\n"
        "def test_second():  # brittle: needs test_first before it\n    shared_state.COUNTER += 1\n"
        "    assert shared_state.COUNTER == 2\n\n\n"
        "def test_victim():  # order-dependent: fails after test_first\n    assert shared_state.COUNTER == 0\n")
    command = [sys.executable, "-m", "pytest"]
    polluter, victim = "tests/test_ids.py::test_first", "tests/test_ids.py::test_victim"
    changes = run_order([polluter], root, command, state_around=polluter).state
    ctx = Context(root, [victim])
    planned = plan_isolation_fixture(_spec(changes, victim=victim, other=polluter), ctx)
    assert planned is not None and planned.ok, planned
    for rel, (_, after) in planned.changes.items():
        (root / rel).write_bytes(after)
    order = run_order([polluter, "tests/test_ids.py::test_second", victim], root, command)
    assert order.outcomes == {polluter: "passed", "tests/test_ids.py::test_second": "passed", victim: "passed"}


def test_a_fixture_that_breaks_a_module_neighbour_does_not_hold(tmp_path: Path) -> None:
    """The setter is also the polluter: the victim's fixture puts G back, and the test after it, which needs
    the setter's G, fails in the module's usual order — the guard run catches it, so the fix rolls back."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly\n")
    (tmp_path / "shared_state.py").write_text("G = 0\n")
    (tmp_path / "tests" / "test_m.py").write_text(
        "import shared_state\n\n\ndef test_setter():\n    shared_state.G = 1\n\n\n"
        "def test_victim():\n    assert shared_state.G == 0\n\n\n"
        "def test_neighbour():\n    assert shared_state.G == 1\n")
    setter, victim, neighbour = (f"tests/test_m.py::{n}" for n in ("test_setter", "test_victim", "test_neighbour"))
    changes = run_order([setter], tmp_path, PYTEST, state_around=setter).state
    planned = plan_isolation_fixture(_spec(changes, victim=victim, other=setter), Context(tmp_path, [victim]))
    assert planned is not None and planned.ok
    for rel, (_, after) in planned.changes.items():
        (tmp_path / rel).write_bytes(after)
    item = RemedyPlan("c", "t", 0.8, {"kind": "isolation-fixture"}, tests=[victim], orders=[[setter, victim], [victim]],
                      guard={"order": [setter, victim, neighbour], "passed": [setter, neighbour]})
    done = verify(item, tmp_path, None, FixOptions(test_command=PYTEST, timeout=120))
    assert not done.held and f"first: {neighbour}" in done.note
    item.guard = {}
    assert verify(item, tmp_path, None, FixOptions(test_command=PYTEST, timeout=120)).held  # the orders alone hold


def test_a_class_attribute_the_polluter_sets_is_put_back(tmp_path: Path) -> None:
    """Polluters often set a class attribute (mccabe's McCabeChecker.max_complexity on its real suite)."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:randomly\n")
    (tmp_path / "checker.py").write_text("class Checker:\n    max_complexity = -1\n\n    def run(self):\n"
                                          "        return self.max_complexity\n")
    (tmp_path / "tests" / "test_c.py").write_text(
        "from checker import Checker\n\n\ndef test_polluter():\n    Checker.max_complexity = 10\n\n\n"
        "def test_victim():\n    assert Checker().run() == -1\n")
    polluter, victim = "tests/test_c.py::test_polluter", "tests/test_c.py::test_victim"
    changes = run_order([polluter], tmp_path, PYTEST, state_around=polluter).state
    assert {"kind": "global", "module": "checker", "name": "Checker.max_complexity", "before": "-1",
            "after": "10"} in changes
    planned = plan_isolation_fixture(_spec(changes, victim=victim, other=polluter), Context(tmp_path, [victim]))
    assert planned is not None and planned.ok and "checker.Checker.max_complexity = -1" in planned.diff
    for rel, (_, after) in planned.changes.items():
        (tmp_path / rel).write_bytes(after)
    assert run_order([polluter, victim], tmp_path, PYTEST).failed(victim) is False


def test_a_polluter_named_like_a_silencer_still_gets_its_fixture(tmp_path: Path) -> None:
    """The fixture's docstring names the tests; a test called test_..._exception is not an added except:
    measured on mccabe's and knack's real suites, where the silencing check refused the fixture."""
    planned = _plan(tmp_path, _spec([LEAKS], other="tests/test_002.py::test_raises_exception_when_skipped"))
    assert planned.ok, planned.refused
    assert "test_raises_exception_when_skipped" in planned.diff
