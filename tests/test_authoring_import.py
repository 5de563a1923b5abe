"""What ``kb rules import``, ``lint``, ``export``, ``test`` and ``suggest`` decide, called as the library
functions the CLI calls (:mod:`kb.authoring`): an import is validated, copied and loaded with the other
packs, and one that clashes is refused with the user packs and the knowledge base left as they were; lint
picks the named packs, else the user packs, else the built-in ones; a pack by name; a draft rule per
cluster of recorded failures, its ``no_match`` example taken from the other clusters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import kb.rulepack
from kb.authoring import clusters, draft_rule, drafts, find_pack, import_pack, lint_packs, scaffold, user_pack_files
from kb.diagnose import diagnose
from kb.engine.matcher import compile_rule_regex
from kb.errors import ReportError, RuleError
from kb.rulepack import builtin_packs, dump_pack
from kb.store import open_store

from .conftest import CORPUS, REAL

pytestmark = pytest.mark.backends  # the store calls on SQLite and on PostgreSQL (conftest)


def _rule(rule_id: str = "mine-1", regex: str = "zzz-unique") -> dict[str, Any]:
    return {"id": rule_id, "title": "t", "explanation": "e", "source": "https://example.org/x", "prior": 0.5,
            "match": {"regex": regex}, "symptom": "direct",
            "remedies": [{"kind": "manual", "description": "d", "risk": "low"}],
            "examples": {"match": [f"ValueError: {regex}"], "no_match": ["ValueError: other"]}}


def _pack(path: Path, name: str, rule: dict[str, Any] | None = None) -> Path:
    path.write_text(dump_pack({"pack": name, "version": "1", "rules": [rule or _rule()]}))
    return path


def test_an_import_is_copied_beside_the_kb_and_loaded(tmp_path: Path, kb_db: str) -> None:
    source = _pack(tmp_path / "a.yaml", "a")
    with open_store(kb_db) as store:
        assert user_pack_files(kb_db) == []
        target, created = import_pack(source, store)
        assert created and target == store.rules_dir / "a.yaml"
        assert target.read_bytes() == source.read_bytes()
        found = store.rule_doc("mine-1")
        assert found is not None and found[0] == "a"  # loaded by this store, not only at the next open
        assert import_pack(source, store) == (target, False)  # the same bytes again: nothing new
        assert user_pack_files(kb_db) == [str(target)]


def test_an_import_that_clashes_leaves_the_user_packs_and_the_kb_as_they_were(tmp_path: Path, kb_db: str) -> None:
    with open_store(kb_db) as store:
        import_pack(_pack(tmp_path / "a.yaml", "a"), store)
        rules = store.rule_list()
        with pytest.raises(RuleError, match="id 'mine-1' is already defined in .*a.yaml"):
            import_pack(_pack(tmp_path / "b.yaml", "b"), store)  # another pack, the same rule id
        assert sorted(p.name for p in store.rules_dir.iterdir()) == ["a.yaml"]
        assert store.rule_list() == rules
    with open_store(kb_db) as store:  # the next open finds nothing half-imported
        assert store.rule_list() == rules


def test_an_import_named_like_a_builtin_pack_is_refused_and_removed(tmp_path: Path, kb_db: str) -> None:
    with open_store(kb_db) as store:
        with pytest.raises(RuleError, match="the name 'python-core' is taken by builtin:"):
            import_pack(_pack(tmp_path / "core.yaml", "python-core", _rule("mine-2")), store)
        assert not (store.rules_dir / "python-core.yaml").exists()
        assert store.rule_doc("mine-2") is None


def test_an_import_never_replaces_a_different_pack_of_that_name(tmp_path: Path, kb_db: str) -> None:
    with open_store(kb_db) as store:
        first = _pack(tmp_path / "a.yaml", "a")
        target, _ = import_pack(first, store)
        other = _pack(tmp_path / "a2.yaml", "a", _rule("mine-3", "yyy-unique"))
        with pytest.raises(RuleError, match="a different pack named 'a' is already there"):
            import_pack(other, store)
        assert target.read_bytes() == first.read_bytes()
        assert store.rule_doc("mine-3") is None


def test_an_invalid_pack_writes_nothing(tmp_path: Path, kb_db: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pack: broken\nversion: 1\nrules: [")
    with open_store(kb_db) as store:
        with pytest.raises(RuleError, match="bad.yaml: not valid YAML"):
            import_pack(bad, store)
        assert not store.rules_dir.exists() or not any(store.rules_dir.iterdir())


def test_lint_takes_the_builtin_packs_when_there_are_no_user_packs(kb_db: str) -> None:
    with open_store(kb_db) as store:
        found = lint_packs(store)
        assert found.builtin_only and found.user_dir == store.rules_dir
    assert sorted(p.origin for p in found.packs) == sorted(origin for origin, _ in builtin_packs())
    assert found.rules == sum(len(p.doc.get("rules") or []) for p in found.packs) > 0


def _broken_builtin() -> tuple[str, bytes]:
    """A built-in pack the JSON Schema refuses (its rule has no explanation) but its shape and lint pass."""
    rule = _rule("broken-1", "xxx-unique")
    del rule["explanation"]
    return "builtin:broken.yaml", dump_pack({"pack": "broken", "version": "1", "rules": [rule]}).encode()


def test_lint_checks_what_it_lints_in_full_and_the_builtin_packs_it_compares_with_trusted(
        tmp_path: Path, kb_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = [*builtin_packs(), _broken_builtin()]
    with open_store(kb_db) as store:
        monkeypatch.setattr(kb.rulepack, "builtin_packs", lambda: shipped)
        with pytest.raises(RuleError, match="builtin:broken.yaml: /rules/0: 'explanation' is a required property"):
            lint_packs(store)  # the built-in packs are what is linted: the schema check runs
        found = lint_packs(store, [_pack(tmp_path / "a.yaml", "a")])  # they are only compared with
        assert [p.name for p in found.packs] == ["a"]
        bad = tmp_path / "bad.yaml"
        bad.write_text("pack: bad\nversion: '1'\nrules: [{id: x}]\n")
        with pytest.raises(RuleError, match="bad.yaml: /rules/0"):
            lint_packs(store, [bad])  # a pack being linted is always checked in full


def test_an_import_validates_the_new_pack_not_the_builtin_ones_again(
        tmp_path: Path, kb_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    schema_errors = kb.rulepack.schema_errors

    def counted(doc: Any, schema: str) -> Any:
        checked.append(str(doc.get("pack")))
        return schema_errors(doc, schema)

    with open_store(kb_db) as store:
        monkeypatch.setattr(kb.rulepack, "schema_errors", counted)
        kb.rulepack._VALID.clear()  # nothing validated earlier in this process counts
        import_pack(_pack(tmp_path / "a.yaml", "a"), store)  # every pack is loaded again, the new one checked
        assert checked == ["a"]
        assert store.rule_doc("mine-1") is not None and store.counts()["rules"] > 1


def test_a_user_pack_reloads_only_the_builtin_packs_whose_rows_it_replaces(tmp_path: Path, kb_db: str) -> None:
    def reloaded(store: Any) -> set[str]:
        return {name for name, at in store.query("SELECT name, loaded_at FROM packs") if at != "before"}

    with open_store(kb_db) as store:
        counts = store.counts()
        with store.write():
            store.query("UPDATE packs SET loaded_at = 'before'")
        import_pack(_pack(tmp_path / "a.yaml", "a"), store)  # a rule of its own: no built-in pack is touched
        assert reloaded(store) == {"a"}
        mine = _pack(tmp_path / "b.yaml", "a", _rule("py-no-module-named", "zzz-unique"))
        (store.rules_dir / "a.yaml").write_bytes(mine.read_bytes())  # edited: now it replaces a built-in rule
        store.seed_builtin()
        assert reloaded(store) == {"a", "python-core"}
        assert store.query("SELECT pack FROM rules WHERE id = ?", ["py-no-module-named"]) == [("a",)]
        assert store.rule_doc("mine-1") is None
        with store.write():
            store.query("UPDATE packs SET loaded_at = 'before'")
        (store.rules_dir / "a.yaml").unlink()  # gone: the pack whose rule it replaced is loaded again
        store.seed_builtin()
        assert reloaded(store) == {"python-core"}
        assert store.query("SELECT pack FROM rules WHERE id = ?", ["py-no-module-named"]) == [("python-core",)]
        assert store.counts() == counts


@pytest.mark.sqlite_only
def test_linting_a_pack_without_codemods_leaves_libcst_unimported(tmp_path: Path, kb_db: str) -> None:
    """LibCST takes half a second to import: `kb rules lint` and `kb rules test` of a pack whose remedies name
    no codemod do without it."""
    code = ("import sys; from pathlib import Path; from kb.authoring import lint_packs; from kb.ruletest import "
            "test_packs; from kb.store import open_store\n"
            f"store = open_store({kb_db!r}); lint_packs(store, [{str(tmp_path / 'a.yaml')!r}])\n"
            f"assert all(r.ok for r in test_packs([{str(tmp_path / 'a.yaml')!r}]))\n"
            "print('libcst' in sys.modules)")
    rule = _rule()
    rule["remedies"].append({"kind": "dependency-pin", "template": "pin-dependency", "params": {"requirement": "x<2"},
                             "description": "pin x below 2", "risk": "medium"})
    _pack(tmp_path / "a.yaml", "a", rule)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


def test_lint_takes_the_user_packs_else_the_named_ones(tmp_path: Path, kb_db: str) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_text(scaffold(None, rule_id="my-rule"))
    with open_store(kb_db) as store:
        target, _ = import_pack(_pack(tmp_path / "a.yaml", "a"), store)
        mine = lint_packs(store)
        named = lint_packs(store, [draft])
    assert [p.origin for p in mine.packs] == [str(target)] and not mine.builtin_only and mine.rules == 1
    assert mine.warnings == [f"{target}: /rules/0 (mine-1): one match example; real variants (other names, "
                             f"numbers) show the regex is not too narrow"]
    assert [p.origin for p in named.packs] == [str(draft)] and not named.builtin_only
    assert any("title still has the TODO placeholder" in w for w in named.warnings)


def test_a_pack_by_name_builtin_or_user(tmp_path: Path, kb_db: str) -> None:
    with open_store(kb_db) as store:
        assert find_pack(store, "test-behaviour").origin.startswith("builtin:")
        with pytest.raises(RuleError, match="no pack named 'a'"):
            find_pack(store, "a")
        target, _ = import_pack(_pack(tmp_path / "a.yaml", "a"), store)
        assert find_pack(store, "a").origin == str(target)


def test_a_draft_per_cluster_with_the_other_clusters_as_neighbours(kb_db: str) -> None:
    reports = [REAL / "configargparse-1.2.3" / "report.xml", *sorted((CORPUS / "reports").rglob("*.xml"))[:40]]
    for report in reports:
        try:
            diagnose([report], db=kb_db)
        except ReportError:  # the corpus keeps broken reports too
            continue
    with open_store(kb_db) as store:
        found = clusters(store, limit=8)
    assert len(found) >= 3
    drafted = drafts(found)
    assert len(drafted) == len(found)
    for cluster, draft in zip(found, drafted, strict=True):
        regex = compile_rule_regex(draft["match"]["regex"])
        assert all(regex.search(m) for m in cluster.messages)  # its own failures match
        others = [(c.exception, m) for c in found if c is not cluster for m in c.messages]
        assert draft == draft_rule(cluster.exception, cluster.messages, neighbours=others)
    # a no_match example is a real recorded failure of another cluster, never a placeholder, where one exists
    real = [d for d in drafted if "TODO" not in d["examples"]["no_match"][0]]
    assert real, drafted
    messages = {f"{c.exception}: {m}" if c.exception else m for c in found for m in c.messages}
    assert all(d["examples"]["no_match"][0] in messages for d in real)
