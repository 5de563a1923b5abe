"""Hostile rule packs, one regression test per hole the reliability campaign found: code in remedy
parameters, regexes that backtrack for ever, values that crash later (NaN, huge integers), YAML that
exhausts the stack, NUL bytes, symlinks in the user packs folder, very large packs. Every refusal is
one line naming the pack file, exit status 1.

The commands run in-process through kb's entry point (conftest's ``run_kb``: the same one-line errors and
exit statuses), so the built-in packs are read and checked once per test process rather than once per
command. Two stay real processes with a timeout, because a hang is what they guard against: the
polynomial regex on a long message and lint on a FIFO — a hang there fails the test instead of hanging
the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from kb.cli import cli
from kb.errors import FixError, RuleError
from kb.fix import codemods
from kb.rulepack import MAX_DEPTH, MAX_RULES, dump_pack, parse_pack
from kb.validate import errors as schema_errors

from .conftest import Ran, run_kb

ROOT = Path(__file__).resolve().parent.parent


def _rule(**changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": "boom-rule", "title": "Boom", "explanation": "It went boom.", "source": "https://example.org/boom",
        "prior": 0.5, "match": {"regex": "boom (?P<what>\\w+)!", "exception": ["RuntimeError"]},
        "symptom": "direct",
        "remedies": [{"kind": "manual", "description": "Stop the {what} going boom", "risk": "low"}],
        "examples": {"match": ["RuntimeError: boom thing!", "RuntimeError: boom other!"],
                     "no_match": ["RuntimeError: quiet"]},
    }
    rule.update(changes)
    return rule


def _pack(tmp_path: Path, *rules: dict[str, Any], name: str = "hostile", text: str | None = None) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text if text is not None else dump_pack({"pack": name, "version": "1", "rules": list(rules)}))
    return path


def _invoke(*args: str, db: Path) -> Any:
    return CliRunner().invoke(cli, [*args, "--db", str(db)], catch_exceptions=True)


def _kb(*args: str, db: Path) -> Ran:
    """``kb ARGS`` in this process, from the checkout, on the KB ``db``."""
    return run_kb(*args, env={"KB_DB": str(db)}, cwd=ROOT)


def _kb_process(*args: str, db: Path, timeout: float) -> subprocess.CompletedProcess:
    """A real process, for the commands that could hang: a hang fails the test instead of hanging the suite."""
    return subprocess.run([sys.executable, "-m", "kb", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "KB_DB": str(db)}, stdin=subprocess.DEVNULL, timeout=timeout)


def _refused(done: Ran | subprocess.CompletedProcess, *words: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("kb: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


# ---------------------------------------------------------------- 1. typed remedy parameters

INJECTION = "collections.abc import Mapping; __import__('os').system('touch PWNED')  #"


def _code_edit(template: str, **params: Any) -> dict[str, Any]:
    return {"kind": "code-edit", "template": template, "params": params, "description": "Edit it", "risk": "low"}


@pytest.mark.parametrize("command", [["rules", "lint"], ["rules", "import"], ["rules", "test"]])
def test_code_in_remedy_params_is_refused_up_front(tmp_path: Path, command: list[str]) -> None:
    pack = _pack(tmp_path, _rule(remedies=[_code_edit("replace-import", module="collections", name="Mapping",
                                                      new_module=INJECTION)]))
    done = _kb(*command, str(pack), db=tmp_path / ".kb" / "kb.sqlite")
    _refused(done, str(pack), "/rules/0/remedies/0/params/new_module")
    assert not (tmp_path / ".kb" / "rules" / "hostile.yaml").exists()
    assert not (ROOT / "PWNED").exists()


@pytest.mark.parametrize(("template", "params"), [
    ("replace-import", {"module": "os", "name": "path", "new_module": "os", "extra": "x"}),  # unknown parameter
    ("replace-import", {"module": "os", "name": "path"}),  # new_module missing
    ("drop-kwarg", {"callable": "f", "param": "class"}),  # a keyword
    ("rename-attribute", {"old": "a.b", "new": "c\n"}),  # a trailing line break
    ("add-kwarg", {"callable": "f", "param": "p", "value": "__import__('os')"}),  # a call, not a literal
    ("rename-attribute", {"old": "a", "new": "b", "arity": 0}),
    ("quarantine", {"until": "tomorrow"}),
    ("pin-dependency", {"requirement": "requests<3\n--index-url http://evil"}),
    ("filterwarnings", {"action": "ignore", "message": "x\n[tool:pytest]"}),
    ("no-such-template", {}),
])
def test_the_schema_types_each_templates_params(template: str, params: dict[str, Any]) -> None:
    doc = {"pack": "p", "version": "1", "rules": [_rule(remedies=[_code_edit(template, **params)])]}
    assert schema_errors(doc, "rule-pack")


@pytest.mark.parametrize(("template", "params"), [
    ("replace-import", {"module": "collections", "name": "Mapping", "new_module": "collections.abc"}),
    ("replace-kwarg-value", {"param": "freq", "old": "{alias}", "new": "{new}"}),  # filled from captures
    ("rename-attribute", {"old": "{module}.{name}", "new": "x.y", "arity": 4}),
    ("rename-method", {"old": ["setUp", "setup"], "new": "setup_method", "skip_bases": "TestCase, a.B"}),
    ("add-kwarg", {"callable": "yaml.load", "param": "Loader", "value": "-1.5e3"}),
    ("add-kwarg", {"callable": "f", "param": "p", "value": "'text'"}),
    ("register-marker", {"marker": "{mark}"}),
])
def test_well_typed_params_pass_both_checks(template: str, params: dict[str, Any]) -> None:
    doc = {"pack": "p", "version": "1", "rules": [_rule(remedies=[_code_edit(template, **params)])]}
    assert schema_errors(doc, "rule-pack") == []
    from kb.ruletest import check_remedy_params

    check_remedy_params({"template": template, "params": params})


_SAMPLES = ["a", "a.b", "a.b.c", "_x1", "class", "a.class", "1a", "a..b", "a.", ".a", "", " a", "a ", "a\n",
            "é", "a b", "a,b", "a, b", " a , b ", "a,,b", "a,", "True", "None", "0", "-1", "+2.5", "1_000", "1__0",
            "007", "0x1F", "1e5", ".5", "5.", "'s'", '"s"', "'it''s'", "'a\\n'", "f'x'", "b'x'", "...", "x()",
            "[1]", "a;b", "a'b", "{x}", "{x}.y", "{x.y}", "{x:>9}", "2024-01-31", "2024-1-31", 0, 1, 5, -1, True, 1.0]


@pytest.mark.parametrize("template", sorted(codemods.CODEMODS))
def test_what_the_schema_admits_check_params_admits(template: str) -> None:
    """The schema may be stricter than codemods.check_params, never looser: a pack that imports
    cleanly cannot fail at plan time for its parameter types."""
    from kb.fix.codemods.core import REGISTRY

    kinds = dict(REGISTRY[template].required, **REGISTRY[template].optional) if template in REGISTRY else \
        {"days": "count", "reason": "any", "until": "date"}
    base = {name: {"dotted": "a.b", "identifier": "a", "identifiers": "a", "bases": "A", "literal": "1",
                   "text": "t", "count": 1, "index": 0, "date": "2024-01-01", "any": "r"}[kind]
            for name, kind in kinds.items()}
    for name in kinds:
        for value in _SAMPLES:
            params = {**base, name: value}
            if isinstance(value, str) and "{" in value:
                continue  # placeholders are checked once filled, at plan time
            doc = {"pack": "p", "version": "1", "rules": [_rule(remedies=[_code_edit(template, **params)])]}
            if schema_errors(doc, "rule-pack"):
                continue
            try:
                codemods.check_params(template, params)
            except FixError as exc:
                pytest.fail(f"{template}.{name} = {value!r}: the schema admits it, check_params refuses: {exc}")


def test_format_fields_in_filled_text_are_refused() -> None:
    """Titles, descriptions and params get {capture}s filled with str.format: no attribute, index or spec."""
    for text in ("{what:>999999999}", "{what.__class__}", "{what[0]}", "{what!r}"):
        doc = {"pack": "p", "version": "1", "rules": [_rule(title=text)]}
        assert schema_errors(doc, "rule-pack"), text


# ---------------------------------------------------------------- 2. regexes run in linear time

@pytest.mark.parametrize(("regex", "reason"), [
    ("boom(?=(a+)+$)", "lookarounds"),
    ("(?P<x>boom)(?P=x)", "backreferences"),
    ("boom(?<=m)", "lookarounds"),
    ("(boom)?(?(1)a|b)", "conditionals"),
])
def test_regexes_re2_cannot_run_are_refused(tmp_path: Path, regex: str, reason: str) -> None:
    pack = _pack(tmp_path, _rule(match={"regex": regex}))
    for command in (["rules", "lint"], ["rules", "import"]):
        done = _kb(*command, str(pack), db=tmp_path / ".kb" / "kb.sqlite")
        _refused(done, str(pack), "boom-rule", "RE2", reason)


def _report(path: Path, message: str) -> Path:
    from xml.sax.saxutils import quoteattr

    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1" failures="1">'
        f'<testcase classname="tests.test_x" name="test_x"><failure message={quoteattr(message)}>'
        f'E   {message[:200]}</failure></testcase></testsuite></testsuites>', "utf-8")
    return path


@pytest.mark.builtin_packs
def test_a_polynomial_regex_on_a_long_message_finishes(tmp_path: Path) -> None:
    """``boom.*.*.*.*.*.*.*.*!`` backtracks for hours in Python's re on 50,000 characters; RE2 is linear."""
    db = tmp_path / ".kb" / "kb.sqlite"
    regex = "boom" + ".*" * 8 + "!"
    pack = _pack(tmp_path, _rule(match={"regex": regex, "exception": ["RuntimeError"]},
                                 examples={"match": ["RuntimeError: boom!", "RuntimeError: boom it!"],
                                           "no_match": ["RuntimeError: boom"]}))
    assert _kb("rules", "import", str(pack), db=db).returncode == 0
    report = _report(tmp_path / "report.xml", "RuntimeError: boom" + "a" * 50_000)
    done = _kb_process("diagnose", str(report), "--no-record", "--format", "json", db=db, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    assert _kb("rules", "test", db=db).returncode == 0  # the rule's own examples are short


# ---------------------------------------------------------------- 3. pack values

@pytest.mark.parametrize(("text", "words"), [
    ("pack: p\nversion: '1'\nrules:\n- {prior: .nan}\n", ["/rules/0/prior", "nan"]),
    ("pack: p\nversion: '1'\nrules:\n- {prior: -.inf}\n", ["/rules/0/prior", "inf"]),
    ("pack: p\nversion: '1'\ndescription: x\nrules: []\nlayer: " + "9" * 100_000 + "\n", ["integer of 100000 digits"]),
    ("pack: p\nversion: '1'\nn: 10000000000000\n", ["/n", "out of range"]),
    ("pack: p\nversion: '1'\nrules: " + "[" * 100_000 + "]" * 100_000 + "\n", ["nest"]),
    ("pack: p\nversion: '1'\nrules: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n",
     [f"nested deeper than {MAX_DEPTH}"]),
    ('{"pack": "p", "version": "1", "rules": ' + "[" * 100_000 + "]" * 100_000 + "}", ["nest"]),
    ("pack: p\x00\nversion: '1'\n", ["#x0000"]),
    ("a: &x [1]\nb: *x\n", ["aliases"]),
])
def test_hostile_values_are_one_line_refusals(tmp_path: Path, text: str, words: list[str]) -> None:
    with pytest.raises(RuleError) as refused:
        parse_pack(text.encode(), "hostile.yaml")
    message = str(refused.value)
    assert message.startswith("hostile.yaml: ") and "\n" not in message, message
    for word in words:
        assert word in message, message
    pack = _pack(tmp_path, text=text)
    _refused(_kb("rules", "lint", str(pack), db=tmp_path / "kb.sqlite"), str(pack), *words)


@pytest.mark.builtin_packs
def test_a_bad_pack_in_the_rules_folder_is_named_by_every_command(tmp_path: Path) -> None:
    """Refused, not skipped: knowledge is never silently dropped; the line says which file to fix."""
    db = tmp_path / ".kb" / "kb.sqlite"
    rules = db.parent / "rules"
    rules.mkdir(parents=True)
    bad = rules / "deep.yaml"
    bad.write_text("pack: deep\nversion: '1'\nrules: " + "[" * 100_000 + "]" * 100_000 + "\n")
    for command in (["rules", "list"], ["rules", "lint"], ["rules", "test"], ["rules", "stats"]):
        _refused(_kb(*command, db=db), str(bad))
    bad.unlink()
    assert _kb("rules", "list", db=db).returncode == 0


def test_import_never_writes_through_a_symlink(tmp_path: Path) -> None:
    db = tmp_path / ".kb" / "kb.sqlite"
    rules = db.parent / "rules"
    rules.mkdir(parents=True)
    outside = tmp_path / "outside.yaml"
    (rules / "hostile.yaml").symlink_to(outside)  # dangling
    pack = _pack(tmp_path / ".." / tmp_path.name, _rule())
    done = _kb("rules", "import", str(pack), db=db)
    _refused(done, "symlink", "hostile.yaml")
    assert not outside.exists()
    (rules / "hostile.yaml").unlink()
    (rules / "hostile.yaml").mkdir()
    _refused(_kb("rules", "import", str(pack), db=db), "not a regular file")


def test_lint_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pack.yaml"
    os.mkfifo(fifo)
    _refused(_kb_process("rules", "lint", str(fifo), db=tmp_path / "kb.sqlite", timeout=30), "not a regular file")


def test_cli_in_process_gives_one_line(tmp_path: Path) -> None:
    pack = _pack(tmp_path, _rule(prior=float("nan")), name="nan")
    result = _invoke("rules", "lint", str(pack), db=tmp_path / "kb.sqlite")
    assert result.exit_code == 1 and isinstance(result.exception, RuleError)
    assert "/rules/0/prior" in str(result.exception) and "\n" not in str(result.exception)


# ---------------------------------------------------------------- 4. big packs

def test_a_pack_beyond_the_rule_cap_is_refused_before_validation() -> None:
    doc = {"pack": "big", "version": "1", "rules": [{"id": f"r{i}"} for i in range(MAX_RULES + 1)]}
    with pytest.raises(RuleError, match=f"at most {MAX_RULES}"):
        parse_pack(json.dumps(doc).encode(), "big.json")


def test_shadowing_lint_uses_the_index_not_every_pair(tmp_path: Path) -> None:
    """2,000 rules: the old pairwise check compiled four million regex pairs; the index runs a few per example."""
    from kb.authoring import lint_pack

    rules = [_rule(id=f"r{i:04d}", match={"regex": f"cond{i:04d} in (?P<what>\\w+)"},
                   examples={"match": [f"RuntimeError: cond{i:04d} in a", f"RuntimeError: cond{i:04d} in b"],
                             "no_match": ["RuntimeError: other"]}) for i in range(2000)]
    rules.append(_rule(id="broad", match={"regex": "cond0007 in"}))
    pack = parse_pack(dump_pack({"pack": "many", "version": "1", "rules": rules}).encode(), "many.yaml")
    warnings = lint_pack(pack)
    shadows = [w for w in warnings if "shadows" in w]
    assert shadows == ["many.yaml: rule broad also matches every example of r0007 (many.yaml): it shadows it"]
