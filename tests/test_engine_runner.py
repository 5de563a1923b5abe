"""durable-rules hazards (DESIGN §5), one test each, against the real library."""

from __future__ import annotations

import threading

from kb.engine import runner


def _facts(n: int) -> list[dict]:
    facts: list[dict] = [{"type": "env", "package": "python", "vk": runner.version_key("3.11.7")}]
    for i in range(n):
        facts.append({"type": "symptom", "sym": f"S{i}", "kind": "missing_name", "rule": "r",
                      "module": f"mod{i}", "name": "Gone", "tail": "", "param": "", "top": "", "parent": ""})
        facts.append({"type": "api", "id": f"row{i}", "package": "python", "module": f"mod{i}",
                      "name": "Gone", "tail": "Gone", "param": "", "rk": runner.version_key("3.10")})
        facts.append({"type": "option", "owner": f"api:row{i}", "rank": 0})
    return facts


def test_version_key() -> None:
    assert runner.version_key("3.11.7") == 3_011_007
    assert runner.version_key("82") == 82_000_000
    assert runner.version_key("2.0rc1") == 2_000_000
    assert runner.version_key("") == 0
    assert runner.version_key("x") == 0


def test_chain_derives_cause_check_and_remedy() -> None:
    derived = runner.chain(_facts(1))
    kinds = sorted(f["type"] for f in derived)
    assert kinds == ["cause", "check", "remedy"]
    check = next(f for f in derived if f["type"] == "check")
    assert check["verdict"] == "satisfied"


def test_version_contradicted_by_older_environment() -> None:
    facts = _facts(1)
    facts[0]["vk"] = runner.version_key("3.9.18")
    derived = runner.chain(facts)
    assert [f["verdict"] for f in derived if f["type"] == "check"] == ["contradicted"]


def test_no_timer_threads_are_started() -> None:
    runner.chain(_facts(1))
    timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert timers == []


def test_register_rulesets_gets_a_copy() -> None:
    runner.chain(_facts(1))
    # durable deletes the "run" key of every rule it registers; ours must be intact
    assert all("run" in rule for rule in runner.DEFINITION.values())


def test_unhandled_and_duplicate_facts_do_not_raise() -> None:
    assert runner.chain([{"type": "env", "package": "x", "vk": 1}]) == []
    fact = {"type": "dist", "import": "yaml", "distribution": "PyYAML"}
    assert runner.chain([dict(fact), dict(fact)]) == []


def test_all_actions_have_run_when_chain_returns() -> None:
    derived = runner.chain(_facts(300))
    assert sum(1 for f in derived if f["type"] == "cause") == 300
    assert sum(1 for f in derived if f["type"] == "remedy") == 300


def test_sessions_are_deleted_so_the_1024_cap_is_never_reached() -> None:
    for _ in range(1100):
        assert len(runner.chain(_facts(1))) == 3


def test_regex_metacharacters_are_plain_data_to_durable() -> None:
    facts = _facts(1)
    facts[1]["module"] = facts[2]["module"] = r"^mod\d$"
    derived = runner.chain(facts)
    assert any(f["type"] == "cause" for f in derived)


def test_ruleset_size_does_not_grow_with_the_knowledge_base() -> None:
    """Knowledge is rows, not durable rules: far below the ~512-sibling hang and the 4,096-rule error."""
    assert len(runner.DEFINITION) < 20


def test_one_fact_per_distinct_symptom_and_only_candidates(tmp_path) -> None:
    from kb.engine import Engine, FailureFact
    from kb.store import SqliteStore

    store = SqliteStore(tmp_path / "kb.sqlite")
    facts = [FailureFact(i, "ImportError", "collection", "cannot import name 'Mapping' from 'collections'")
             for i in range(500)]
    facts += [FailureFact(1000 + i, "ImportError", "collection", f"cannot import name 'X{i}' from 'nowhere'")
              for i in range(50)]
    result = Engine(store.rules()).run(facts, store, {"python": "3.11"})
    assert result.stats["symptoms"] == 51  # distinct symptoms, not failures
    assert result.stats["candidate_symptoms"] == 1  # only one has knowledge behind it
    assert [len(c.failures) for c in result.causes] == [500]
    assert len(result.undiagnosed) == 50


def test_environment_versions_match_package_names_case_insensitively(tmp_path) -> None:
    from kb.engine import Engine, FailureFact
    from kb.store import SqliteStore

    store = SqliteStore(tmp_path / "kb.sqlite")
    fact = FailureFact(1, "TypeError", "call", "load() missing 1 required positional argument: 'Loader'",
                       "data = yaml.load(stream)")
    [cause] = Engine(store.rules()).run([fact], store, {"pyyaml": "6.0.1"}).causes
    assert cause.breakdown["version"] == "satisfied"
    [older] = Engine(store.rules()).run([fact], store, {"pyyaml": "5.4"}).causes
    assert older.breakdown["version"] == "contradicted" and older.confidence < cause.confidence
