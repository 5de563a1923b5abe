"""Rule authoring: the README's worked example run command by command, impact on a good and an
over-broad rule, lint warnings, user packs and their precedence, suggest's clusters, stats and
the learning loop (recorded outcomes move confidence the way the evidence points)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kb.authoring import clusters, template
from kb.diagnose import diagnose
from kb.rulepack import dump_pack, load_document
from kb.store import open_store

from .conftest import KbCli
from .readme import ROOT, block

pytestmark = pytest.mark.backends  # the history and the fixes on SQLite and on PostgreSQL (conftest)

CONFIGARGPARSE = ROOT / "tests/corpus/real/configargparse-1.2.3/report.xml"


def _edit(path: Path) -> None:
    """The README's edit: its YAML snippet's keys replace the drafted rule's."""
    doc = load_document(path.read_text())
    doc["rules"][0].update(load_document(block("authoring-edit")))
    doc["description"] = "Help-text changes of the standard library's argparse"
    path.write_text(dump_pack(doc))


@pytest.mark.builtin_packs
@pytest.mark.sqlite_only  # 12 commands through the CLI (37 s); each store call it makes is tested on both
def test_the_readme_worked_example(tmp_path: Path, kb_cli: KbCli) -> None:
    db = tmp_path / ".kb" / "kb.sqlite"
    outputs: dict[str, str] = {}
    for line in filter(None, (line.split("  #", 1)[0].strip() for line in block("authoring").splitlines())):
        args = line.split()[1:]
        args = [str(tmp_path / a) if a == "argparse-help.yaml" else a for a in args]
        if args[:2] == ["rules", "lint"]:
            _edit(tmp_path / "argparse-help.yaml")
        done = kb_cli(*args, env={"KB_DB": str(db)})
        assert done.returncode == 0, f"{line}: {done.stderr}"
        outputs[" ".join(line.split()[1:3])] = done.stdout
    assert "Root causes: none known" in outputs["diagnose tests/corpus/real/configargparse-1.2.3/report.xml"]
    assert outputs["suggest"].startswith("1. 5 failure(s) in 5 test(s): AssertionError: Regex didn't match: "
                                         "<Q> not found in <Q>")
    assert "kb rules new --from-failure 1 -o FILE" in outputs["suggest"]
    assert outputs["rules lint"].strip().endswith("1 pack(s), 1 rule(s): valid, 0 warning(s)")
    assert "all passed" in outputs["rules test"]
    impact = outputs["rules impact"]
    newly = re.findall(r"#\d+ \(run \d+\)  (\S+)", impact)
    assert "newly explained: 5" in impact and "no longer explained: 0" in impact
    assert sorted(newly) == sorted(t for t in _configargparse_tests()), impact  # exactly those five
    assert "warning" not in impact
    # imported: kb diagnose now names the cause on its own
    again = kb_cli("diagnose", str(CONFIGARGPARSE), env={"KB_DB": str(db)})
    assert "argparse's help heading 'optional arguments:' is 'options:'" in again.stdout
    assert (db.parent / "rules" / "argparse-help.yaml").exists()
    every = kb_cli("rules", "test", env={"KB_DB": str(db)})  # no PACKS: the built-in packs and the user packs
    assert every.returncode == 0 and "argparse-options-heading" in every.stdout


def _configargparse_tests() -> list[str]:
    """The five help-text tests of the case (its label: 5 failures, all this cause)."""
    return [f"tests/test_configargparse.py::{t}" for t in (
        "TestBasicUseCases::testBasicCase2", "TestBasicUseCases::testBasicCase2_WithGroups",
        "TestBasicUseCases::testMutuallyExclusiveArgs", "TestMisc::testConstructor_ConfigFileArgs",
        "TestMisc::test_FormatHelp")]


def test_impact_warns_about_an_over_broad_rule(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    db = kb_db
    reports = sorted((ROOT / "tests/corpus/reports").rglob("*.xml"))[:40]
    for report in [CONFIGARGPARSE, *reports]:
        kb_cli("diagnose", str(report), env={"KB_DB": str(db)})
    broad = tmp_path / "broad.yaml"
    broad.write_text(dump_pack({"pack": "broad", "version": "1", "rules": [{
        "id": "any-assertion", "title": "Some assertion failed", "explanation": "Too broad on purpose.",
        "source": "https://docs.python.org/3/reference/simple_stmts.html#assert", "prior": 0.5,
        "match": {"regex": "."}, "symptom": "direct",
        "remedies": [{"kind": "manual", "description": "look at it", "risk": "medium"}],
        "examples": {"match": ["AssertionError: assert 1 == 2"], "no_match": ["AssertionError: "]}}]}))
    done = kb_cli("rules", "impact", str(broad), env={"KB_DB": str(db)})
    assert done.returncode == 0, done.stderr
    assert re.search(r"warning: rule any-assertion newly explains \d+ failure\(s\) of \d+ different message "
                     r"shapes, but its examples show 1: it is probably over-broad", done.stdout), done.stdout


def test_lint_warnings_and_errors(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    db = kb_db
    draft = tmp_path / "draft.yaml"
    assert kb_cli("rules", "new", "--id", "my-rule", "-o", str(draft), env={"KB_DB": str(db)}).returncode == 0
    assert kb_cli("rules", "new", "-o", str(draft), env={"KB_DB": str(db)}).returncode == 1  # never overwrites
    lint = kb_cli("rules", "lint", str(draft), env={"KB_DB": str(db)})
    assert lint.returncode == 0 and "title still has the TODO placeholder" in lint.stdout
    assert kb_cli("rules", "lint", "--strict", str(draft), env={"KB_DB": str(db)}).returncode == 1
    doc = load_document(draft.read_text())
    doc["rules"][0]["match"]["regex"] = "No module named '(?P<mod>[\\w.]+)'"
    doc["rules"][0]["examples"]["match"] = ["ModuleNotFoundError: No module named 'yaml'"]
    doc["rules"][0]["match"].pop("exception")
    draft.write_text(dump_pack(doc))
    lint = kb_cli("rules", "lint", str(draft), env={"KB_DB": str(db)}).stdout
    assert "capture(s) mod are not used" in lint
    assert "also matches every example of py-no-module-named" in lint  # shadows a built-in rule
    doc["rules"][0]["match"]["regex"] = "(a+)+$"
    draft.write_text(dump_pack(doc))
    bad = kb_cli("rules", "lint", str(draft), env={"KB_DB": str(db)})
    assert bad.returncode == 1 and "backtrack" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_user_packs_load_beside_the_kb_and_win_over_builtins(kb_db: str, kb_cli: KbCli) -> None:
    db = kb_db
    store = open_store(db)
    rules = store.rules_dir
    rules.mkdir(parents=True)
    [builtin] = store.query_dicts("SELECT * FROM rules WHERE id = ?", ["py-no-module-named"])
    store.close()
    doc = {"pack": "mine", "version": "1", "rules": [{
        "id": "py-no-module-named", "title": "My own take on {module}", "explanation": "x",
        "source": "https://example.org/x", "prior": 0.9, "match": {"regex": builtin["regex"]},
        "symptom": "missing_module", "examples": {"match": ["ModuleNotFoundError: No module named 'x'"],
                                                  "no_match": ["ValueError: x"]}}]}
    (rules / "mine.yaml").write_text(dump_pack(doc))
    store = open_store(db)
    [row] = store.query_dicts("SELECT * FROM rules WHERE id = ?", ["py-no-module-named"])
    assert row["pack"] == "mine" and row["prior"] == 0.9
    store.close()
    (rules / "mine.yaml").unlink()  # gone: the built-in rule is back
    store = open_store(db)
    assert store.query("SELECT pack FROM rules WHERE id = ?", ["py-no-module-named"]) == [("python-core",)]
    store.close()
    (rules / "broken.yaml").write_text("pack: broken\nversion: 1\nrules: [")
    bad = kb_cli("diagnose", str(CONFIGARGPARSE), env={"KB_DB": str(db)})
    assert bad.returncode == 1 and "broken.yaml: not valid YAML" in bad.stderr


def test_templates_mask_what_varies() -> None:
    assert template("module 'numpy' has no attribute 'float'") == "module <Q> has no attribute <Q>"
    assert template("No such file: /tmp/abc/def.txt at line 12") == "No such file: <PATH> at line <N>"
    assert template("object at 0x7fab failed\nsecond line") == "object at <HEX> failed"
    assert template("didn't match: \"a\nb\" here") == "didn't match: <Q> here"


def test_suggest_clusters_and_stats(tmp_path: Path, kb_db: str, kb_cli: KbCli) -> None:
    db = kb_db
    kb_cli("diagnose", str(CONFIGARGPARSE), env={"KB_DB": str(db)})
    kb_cli("diagnose", str(ROOT / "tests/corpus/real/pyjwt-1.5.3/report.xml"), env={"KB_DB": str(db)})
    store = open_store(db)
    found = clusters(store)
    store.close()
    assert [(len(c.failures), c.exception) for c in found] == [(5, "AssertionError")]  # pyjwt is diagnosed
    stats = kb_cli("rules", "stats", env={"KB_DB": str(db)}).stdout
    assert re.search(r"py-cannot-import-name\s+1\s+0\s+0\s+0\s+0\s+\d\.\d\d → \d\.\d\d", stats), stats


@pytest.mark.parametrize(("verdicts", "direction"), [(["verified"] * 3, 1), (["rolled back"] * 3, -1)])
def test_recorded_outcomes_move_confidence_with_the_evidence(tmp_path: Path, verdicts: list[str],
                                                             direction: int, kb_db: str) -> None:
    db = kb_db
    report = ROOT / "tests/corpus/real/pyjwt-1.5.3/report.xml"
    before = diagnose([report], db=db)["root_causes"][0]
    store = open_store(db)
    for verdict in verdicts:
        store.record_outcome(before["key"], before["rule"], verdict, {"fix": "x"})
    store.close()
    after = diagnose([report], db=db)["root_causes"][0]
    assert (after["confidence"] - before["confidence"]) * direction > 0.02
    learned = after["confidence_breakdown"]["learned"]
    assert learned["attempts"] == 3 and learned["verified"] == (3 if direction > 0 else 0)


def test_an_import_that_clashes_leaves_the_user_packs_as_they_were(tmp_path: Path, kb_cli: KbCli) -> None:
    db = tmp_path / ".kb" / "kb.sqlite"
    rule = {"id": "mine-1", "title": "t", "explanation": "e", "source": "https://example.org/x", "prior": 0.5,
            "match": {"regex": "zzz-unique"}, "symptom": "direct",
            "remedies": [{"kind": "manual", "description": "d", "risk": "low"}],
            "examples": {"match": ["ValueError: zzz-unique"], "no_match": ["ValueError: other"]}}
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text(dump_pack({"pack": "a", "version": "1", "rules": [rule]}))
    second.write_text(dump_pack({"pack": "b", "version": "1", "rules": [rule]}))  # the same rule id
    assert kb_cli("rules", "import", str(first), env={"KB_DB": str(db)}).returncode == 0
    clash = kb_cli("rules", "import", str(second), env={"KB_DB": str(db)})
    assert clash.returncode == 1 and "'mine-1' is already defined" in clash.stderr
    assert sorted(p.name for p in (db.parent / "rules").iterdir()) == ["a.yaml"]
    assert kb_cli("rules", "show", "mine-1", env={"KB_DB": str(db)}).stdout.startswith("# pack: a")
