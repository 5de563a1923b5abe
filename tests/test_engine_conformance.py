"""Every stage-2 backend gives the same diagnoses (DESIGN §10 "Engine backends").

durable-rules runs stage 2 where it loads (Python < 3.13), CLIPS where it cannot; both must say the
same thing. Three levels, each parametrized over the backends that load here (one that does not is
skipped with the reason):

- every corpus report (reports, reports-extra) and both inputs of every real labelled case, diagnosed
  end to end through each backend: the whole report document equals the first backend's (durable's
  where it loads);
- hand-written stage-2 fact sets for the semantics that can drift between engines (a cause id
  derived twice, version verdicts, missing fields, unhandled and duplicate facts), with the derived
  facts durable gives written out: on Python ≥ 3.13, where durable cannot run, this is what holds
  CLIPS to durable;
- where both load, random stage-2 fact sets (Hypothesis) derive the same facts.

With ``KB_CI=1`` (``.ci/run``) a missing backend fails instead of skipping: the CI Python has both,
a Python ≥ 3.13 has CLIPS.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from kb.diagnose import diagnose
from kb.engine import runner
from kb.errors import KbError

from .conftest import CORPUS, REAL

LOADED = [name for name in runner.BACKENDS if not runner.unavailable(name)]
REFERENCE = LOADED[0] if LOADED else None


def _backend_params() -> list[Any]:
    return [pytest.param(name, id=name, marks=pytest.mark.skipif(
        bool(runner.unavailable(name)), reason=f"{name} backend not installed here: {runner.unavailable(name)}"))
        for name in runner.BACKENDS]


def _inputs() -> list[Path]:
    paths = []
    for name in ("reports", "reports-extra"):
        expected = json.loads((CORPUS / name / "expected.json").read_text(encoding="utf-8"))
        paths += [CORPUS / name / rel for rel in expected["files"]]
    for case in sorted(p for p in REAL.iterdir() if (p / "label.json").exists()):
        paths += [case / "report.xml", case / "pytest.txt"]
    return paths


INPUTS = _inputs()


@contextmanager
def _engine(name: str) -> Iterator[None]:
    before = os.environ.get("KB_ENGINE")
    os.environ["KB_ENGINE"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("KB_ENGINE", None)
        else:
            os.environ["KB_ENGINE"] = before


_diagnosed: dict[tuple[str, Path], Any] = {}


def _diagnoses(name: str, path: Path, db: Path) -> Any:
    """The report document for ``path`` through backend ``name`` (once per session), or the error."""
    if (name, path) not in _diagnosed:
        with _engine(name):
            try:
                _diagnosed[name, path] = diagnose([path], db=db, record=False)
            except KbError as exc:
                _diagnosed[name, path] = {"error": str(exc)}
    return _diagnosed[name, path]


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One KB (and owner cache) for every backend, so they see the same knowledge and owner facts."""
    return tmp_path_factory.mktemp("conformance") / "kb.sqlite"


def test_the_backends_ci_needs_are_installed() -> None:
    if os.environ.get("KB_CI") != "1":
        pytest.skip("KB_CI is not set: a missing backend is skipped, not failed")
    wanted = ["clips"] if sys.version_info >= (3, 13) else list(runner.BACKENDS)
    assert {name: runner.unavailable(name) for name in wanted} == {name: "" for name in wanted}


def test_forcing_a_backend_that_cannot_load_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KB_ENGINE", "prolog")
    with pytest.raises(KbError) as info:
        runner.backend()
    assert str(info.value) == "KB_ENGINE=prolog: no stage-2 backend named 'prolog' (choose durable or clips)"
    for name in runner.BACKENDS:
        monkeypatch.setenv("KB_ENGINE", name.upper())
        if runner.unavailable(name):
            with pytest.raises(KbError, match=f"^KB_ENGINE={name}: ") as info:
                runner.backend()
            assert "\n" not in str(info.value)
        else:
            assert runner.backend() == name
    monkeypatch.delenv("KB_ENGINE")
    assert runner.backend() == REFERENCE


@pytest.mark.parametrize("path", INPUTS, ids=[p.relative_to(CORPUS).as_posix() for p in INPUTS])
@pytest.mark.parametrize("name", _backend_params())
def test_same_diagnoses(name: str, path: Path, shared_db: Path) -> None:
    assert REFERENCE is not None
    got = _diagnoses(name, path, shared_db)
    expected = _diagnoses(REFERENCE, path, shared_db)
    # the keys, rules, confidences and tests first (the clearest message), then the whole document
    def summary(doc: Any) -> Any:
        return [(c["key"], c["rule"], c["confidence"], c["tests"]) for c in doc.get("root_causes", [])]
    assert summary(got) == summary(expected)
    assert got == expected


# --- stage 2 alone: what durable derives, written out ------------------------------------------------

def _sym(sym: str, kind: str, **fields: str) -> dict[str, Any]:
    base = {"module": "", "name": "", "tail": "", "param": "", "top": "", "parent": "", "rule": "r"}
    return {"type": "symptom", "sym": sym, "kind": kind, **base, **fields}


def _api(ident: str, module: str, name: str, rk: int = 3_010_000, **fields: Any) -> dict[str, Any]:
    base = {"kind": "removed", "package": "python", "tail": name.rsplit(".", 1)[-1], "param": "", "change": ""}
    return {"type": "api", "id": ident, "module": module, "name": name, "rk": rk, **base, **fields}


def _cause(sym: str, owner: str, via: str, package: str = "", rk: int = 0) -> dict[str, Any]:
    return {"type": "cause", "id": f"{sym}|{owner}", "sym": sym, "owner": owner, "via": via, "package": package,
            "rk": rk}


def _env(package: str, vk: int) -> dict[str, Any]:
    return {"type": "env", "package": package, "vk": vk}


def _option(owner: str, rank: int = 0) -> dict[str, Any]:
    return {"type": "option", "owner": owner, "rank": rank}


def _remedy(cause: str, owner: str, rank: int = 0) -> dict[str, Any]:
    return {"type": "remedy", "cause": cause, "owner": owner, "rank": rank}


def _check(cause: str, verdict: str) -> dict[str, Any]:
    return {"type": "check", "cause": cause, "verdict": verdict}


#: (input facts, the derived facts durable-rules 2.0.28 gives, in chain()'s canonical order)
STAGE2: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    # a builtins row meets name_exact and attribute_by_name with one cause id: durable keeps the exact row
    "one-cause-id-twice": (
        [_sym("S0", "missing_attribute", module="builtins", name="DataFrame.append"),
         _api("obj", "builtins", "DataFrame.append", package="pandas", rk=2_000_000),
         _env("pandas", 2_001_000), _env("pandas", 2_002_000), _option("api:obj")],
        [_cause("S0", "api:obj", "exact-row", "pandas", 2_000_000), _check("S0|api:obj", "satisfied"),
         _remedy("S0|api:obj", "api:obj")]),
    # the same symptom through a name-only row of another module, and an older environment
    "name-only-and-contradicted": (
        [_sym("S0", "missing_attribute", module="builtins", name="Series.iteritems"),
         _api("ser", "pandas", "Series.iteritems", package="pandas", rk=2_000_000),
         _env("pandas", 1_005_003), _option("api:ser"), _option("api:ser", 1)],
        [_cause("S0", "api:ser", "name-only-row", "pandas", 2_000_000), _check("S0|api:ser", "contradicted"),
         _remedy("S0|api:ser", "api:ser"), _remedy("S0|api:ser", "api:ser", 1)]),
    # modules (exact and parent), a distribution, a direct rule, a generic owner; S10 sorts after S2
    "every-owner-kind": (
        [_sym("S10", "missing_module", module="distutils.util", top="distutils", parent="distutils"),
         _api("du", "distutils", "", rk=3_012_000), _sym("S2", "missing_module", module="yaml", top="yaml"),
         {"type": "dist", "import": "yaml", "distribution": "PyYAML"},
         _sym("S1", "direct", rule="pytest-nose"), _sym("S3", "missing_name", module="mod", name="gone"),
         {"type": "owner", "sym": "S3", "key": "mod.gone", "okind": "stdlib"},
         _env("python", 3_012_001), _option("api:du"), _option("dist:yaml"), _option("rule:pytest-nose"),
         _option("gen:mod.gone")],
        [_cause("S1", "rule:pytest-nose", "pattern"), _cause("S2", "dist:yaml", "distribution"),
         _cause("S3", "gen:mod.gone", "owner"), _cause("S10", "api:du", "exact-row", "python", 3_012_000),
         _check("S10|api:du", "satisfied"),
         _remedy("S1|rule:pytest-nose", "rule:pytest-nose"), _remedy("S2|dist:yaml", "dist:yaml"),
         _remedy("S3|gen:mod.gone", "gen:mod.gone"), _remedy("S10|api:du", "api:du")]),
    # calls: a keyword-only row explains a bad call only; a removed parameter an unexpected one
    "calls": (
        [_sym("S0", "bad_call", tail="f"), _sym("S1", "unexpected_kwarg", tail="f", param="loop"),
         _api("kw", "m", "f", change="param-keyword-only", kind="signature-changed", param="x"),
         _api("loop", "m", "f", change="param-removed", kind="signature-changed", param="loop"),
         _sym("S2", "changed_behaviour", module="m", name="f"), _api("beh", "m", "f", kind="behaviour-changed")],
        [_cause("S0", "api:kw", "name-only-row", "python", 3_010_000),
         _cause("S1", "api:loop", "name-only-row", "python", 3_010_000),
         _cause("S2", "api:beh", "exact-row", "python", 3_010_000)]),
    # strings are data: quotes, parentheses, regex and CLIPS metacharacters, non-ASCII
    "strings-are-data": (
        [_sym("S0", "missing_name", module='m"(x) ?v $?w &|~ \\d+ ;', name="ñ€"),
         _api('a"b', 'm"(x) ?v $?w &|~ \\d+ ;', "ñ€", rk=0)],
        [_cause("S0", 'api:a"b', "exact-row", "python", 0)]),
    # a row without a removal version gets no verdict; a field a fact lacks matches nothing
    "no-version-and-missing-fields": (
        [_sym("S0", "missing_name", module="m", name="n"), _api("nov", "m", "n", rk=0), _env("python", 3_011_000),
         {"type": "api", "id": "bare", "package": "python", "rk": 1}, _sym("S1", "missing_module", module="m")],
        [_cause("S0", "api:nov", "exact-row", "python", 0)]),
    # facts no rule reads, and the same fact twice, derive nothing and raise nothing
    "unhandled-and-duplicate": (
        [_env("x", 1), {"type": "dist", "import": "yaml", "distribution": "PyYAML"},
         {"type": "dist", "import": "yaml", "distribution": "PyYAML"}, {"type": "unknown", "x": 1}],
        []),
}


@pytest.mark.parametrize("case", list(STAGE2))
@pytest.mark.parametrize("name", _backend_params())
def test_stage2_derives_what_durable_derives(name: str, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    facts, expected = STAGE2[case]
    monkeypatch.setenv("KB_ENGINE", name)
    assert runner.chain(json.loads(json.dumps(facts))) == expected


# --- both backends on random fact sets ----------------------------------------------------------------

_words = st.sampled_from(["", "a", "a.b", "b", "builtins", "f", "x"])
_kinds = st.sampled_from(["missing_name", "missing_attribute", "missing_module", "unexpected_kwarg",
                          "missing_argument", "bad_call", "changed_behaviour", "direct"])
_symptoms = st.builds(lambda i, kind, module, name, tail, param, parent: _sym(
    f"S{i}", kind, module=module, name=name, tail=tail, param=param, parent=parent, top=parent or module),
    st.integers(0, 12), _kinds, _words, _words, _words, _words, _words)
_rows = st.builds(lambda i, module, name, param, kind, change, package, rk: _api(
    f"r{i}", module, name, rk=rk, param=param, kind=kind, change=change, package=package),
    st.integers(0, 6), _words, _words, _words, st.sampled_from(["removed", "behaviour-changed", "signature-changed"]),
    st.sampled_from(["", "param-removed", "param-required", "param-keyword-only"]),
    st.sampled_from(["python", "pandas"]), st.sampled_from([0, 1_000_000, 3_010_000]))
_others = st.one_of(
    st.builds(_env, st.sampled_from(["python", "pandas", "x"]), st.sampled_from([999_999, 1_000_000, 3_011_000])),
    st.builds(lambda m: {"type": "dist", "import": m, "distribution": m.upper()}, _words),
    st.builds(lambda i, key: {"type": "owner", "sym": f"S{i}", "key": key, "okind": "stdlib"},
              st.integers(0, 12), _words),
    st.builds(lambda kind, ident, rank: _option(f"{kind}:{ident}", rank),
              st.sampled_from(["api", "dist", "gen", "rule"]), st.sampled_from(["r0", "r1", "a", "b", "r"]),
              st.integers(0, 2)),
)


@pytest.mark.skipif(len(LOADED) < 2, reason=f"needs two backends; only {LOADED} load here")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_symptoms, _rows, _others), max_size=40))
def test_random_fact_sets_derive_the_same_facts(facts: list[dict[str, Any]]) -> None:
    # one row per id, as core sends them (durable raises MessageObservedException on a second)
    rows = {f["id"]: f for f in reversed(facts) if f["type"] == "api"}
    facts = [f for f in facts if f["type"] != "api" or rows[f["id"]] is f]
    derived = {}
    for name in LOADED:
        with _engine(name):
            derived[name] = runner.chain(json.loads(json.dumps(facts)))
    assert derived[LOADED[1]] == derived[LOADED[0]]
